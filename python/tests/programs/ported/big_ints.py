"""Number theory with integers beyond 64 bits, as arguments and as results."""

import math

from executors import executor

MODULUS = 2**127 - 1  # a Mersenne prime


def power_mod(base, exponent):
    return pow(base, exponent, MODULUS)


def factorial(n):
    return math.factorial(n)


def describe(n):
    return [type(n).__name__, len(str(n)), n % 1000]


def total(values):
    return sum(values)


def main():
    with executor() as ex:
        print(repr(ex.submit(power_mod, 3, 2**100).result()))
        print(repr(ex.submit(factorial, 30).result()))
        print(repr(ex.submit(describe, -(2**80) + 7).result()))
        print(repr(ex.submit(total, [2**64, 2**64, -1]).result()))


if __name__ == "__main__":
    main()
