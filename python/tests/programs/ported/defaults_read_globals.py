"""Pricing jobs whose default arguments read module globals: constants, a helper
function, and keyword-only defaults."""

from executors import executor

VAT = 0.21
DIGITS = 2
CURRENCY = "EUR"


def identity(value):
    return value


def price(amount, rate=VAT, digits=DIGITS):
    return round(amount * (1 + rate), digits)


def label(amount, *, currency=CURRENCY, formatter=identity):
    return f"{formatter(amount)} {currency}"


def main():
    with executor() as ex:
        print(ex.submit(price, 10.0).result())
        print(ex.submit(price, 10.0, 0.06).result())
        print(ex.submit(label, 12.5).result())
        print(list(ex.map(price, [1.0, 2.5])))


if __name__ == "__main__":
    main()
