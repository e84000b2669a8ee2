"""Unit conversions submitted as functools.partial of the user's functions."""

import functools

from executors import executor

USD_PER_EUR = 1.08


def convert(rate, amount, digits=2):
    return round(amount * rate, digits)


def power(base, exponent):
    return base**exponent


def main():
    to_usd = functools.partial(convert, USD_PER_EUR)
    cube = functools.partial(power, exponent=3)
    with executor() as ex:
        print(ex.submit(to_usd, 10.0).result())
        print(list(ex.map(cube, [1, 2, 3])))
        print(ex.submit(functools.partial(to_usd, digits=0), 99.0).result())


if __name__ == "__main__":
    main()
