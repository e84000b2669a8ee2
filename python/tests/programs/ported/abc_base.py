"""Shapes with an abstract base written abc.ABC, and abstract methods."""

import abc
import math

from executors import executor


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self): ...

    def describe(self):
        return f"{type(self).__name__} of area {self.area():.2f}"


class Circle(Shape):
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius**2


class Square(Shape):
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side**2


def describe_all(specs):
    kinds = {"circle": Circle, "square": Square}
    return [kinds[kind](size).describe() for kind, size in specs]


def abstract_refused():
    try:
        Shape()
    except TypeError:
        return "Shape cannot be made"
    return "Shape was made"


def main():
    with executor() as ex:
        print(ex.submit(describe_all, [["circle", 1.0], ["square", 3]]).result())
        print(ex.submit(abstract_refused).result())


if __name__ == "__main__":
    main()
