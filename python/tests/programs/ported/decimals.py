"""An invoice in Decimal money: Decimals as arguments and as results, their exponent
kept."""

from decimal import ROUND_HALF_UP, Decimal

from executors import executor

CENT = Decimal("0.01")


def line_total(price, quantity):
    return (price * quantity).quantize(CENT, rounding=ROUND_HALF_UP)


def with_tax(amount, rate):
    return (amount * (1 + rate)).quantize(CENT, rounding=ROUND_HALF_UP)


def main():
    with executor() as ex:
        order = [("19.99", 3), ("0.10", 7)]
        lines = [ex.submit(line_total, Decimal(price), n) for price, n in order]
        totals = [line.result() for line in lines]
        print(repr(totals))
        print(repr(ex.submit(with_tax, sum(totals), Decimal("0.21")).result()))
        print(repr(ex.submit(line_total, Decimal("2.50"), 2).result()))


if __name__ == "__main__":
    main()
