"""Geometry with collections.namedtuple points, as arguments and as results."""

from collections import namedtuple

from executors import executor

Point = namedtuple("Point", "x y")
Segment = namedtuple("Segment", ["start", "end"])


def midpoint(segment):
    return Point((segment.start.x + segment.end.x) / 2, (segment.start.y + segment.end.y) / 2)


def shift(point, dx):
    return point._replace(x=point.x + dx)


def fields(point):
    return [type(point).__name__, point._fields, point == (point.x, point.y)]


def main():
    with executor() as ex:
        print(repr(ex.submit(midpoint, Segment(Point(0, 0), Point(4, 2))).result()))
        print(repr(ex.submit(shift, Point(1, 1), 2).result()))
        print(repr(ex.submit(fields, Point(3, 4)).result()))


if __name__ == "__main__":
    main()
