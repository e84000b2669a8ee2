"""Shapes of this script built on bases from its own module: `shapes.Base`,
`shapes.Polygon`."""

import shapes
from executors import executor


class Hexagon(shapes.Polygon):
    name = "hexagon"
    sides = 6


class Circle(shapes.Base):
    name = "circle"

    def __init__(self, radius):
        self.radius = radius

    def perimeter(self):
        return shapes.circumference(self.radius)


def describe(kind, size):
    return {"hexagon": Hexagon, "circle": Circle}[kind](size).describe()


def main():
    with executor() as ex:
        print(ex.submit(describe, "hexagon", 2).result())
        print(ex.submit(describe, "circle", 1).result())


if __name__ == "__main__":
    main()
