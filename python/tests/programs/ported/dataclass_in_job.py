"""A particle simulation whose job builds @dataclass objects, with dataclasses.field
defaults, inside the job; only numbers cross."""

import math
from dataclasses import dataclass, field

from executors import executor

GRAVITY = -9.81


@dataclass
class Particle:
    x: float
    v: float
    trail: list = field(default_factory=list)
    label: str = field(default="p", repr=False)

    def step(self, dt):
        self.trail.append(self.x)
        self.v += GRAVITY * dt
        self.x += self.v * dt


def simulate(height, steps):
    particle = Particle(height, 0.0)
    for _ in range(steps):
        particle.step(0.1)
    return [round(particle.x, 6), len(particle.trail), repr(particle)[:12]]


def fall_time(height):
    return round(math.sqrt(2 * height / -GRAVITY), 4)


def main():
    with executor() as ex:
        print(ex.submit(simulate, 100.0, 10).result())
        print(list(ex.map(fall_time, [5.0, 20.0])))


if __name__ == "__main__":
    main()
