"""Exact probabilities with Fraction, as arguments and as results."""

from fractions import Fraction

from executors import executor


def both(p, q):
    return p * q


def either(p, q):
    return p + q - p * q


def expected(outcomes):
    return sum(value * p for value, p in outcomes)


def main():
    die = Fraction(1, 6)
    with executor() as ex:
        print(repr(ex.submit(both, die, die).result()))
        print(repr(ex.submit(either, Fraction(1, 2), Fraction(1, 3)).result()))
        print(repr(ex.submit(expected, [[value, die] for value in range(1, 7)]).result()))


if __name__ == "__main__":
    main()
