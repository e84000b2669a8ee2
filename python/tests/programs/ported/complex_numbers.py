"""Quadratic roots and phasors with complex numbers, as arguments and as results."""

import cmath

from executors import executor


def roots(a, b, c):
    disc = cmath.sqrt(b * b - 4 * a * c)
    return [(-b + disc) / (2 * a), (-b - disc) / (2 * a)]


def rotate(z, quarter_turns):
    return z * 1j**quarter_turns


def magnitude(z):
    return [type(z).__name__, abs(z)]


def main():
    with executor() as ex:
        print(repr(ex.submit(roots, 1, 2, 5).result()))
        print(repr(ex.submit(rotate, 1 + 2j, 1).result()))
        print(repr(ex.submit(magnitude, 3 + 4j).result()))
        print(repr(ex.submit(rotate, complex(2, -1), 2).result()))


if __name__ == "__main__":
    main()
