"""Currency conversion against module-level dicts (a nested one too)."""

from executors import executor

RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.86}
FEES = {"card": {"fixed": 0.25, "percent": 1.5}, "bank": {"fixed": 1.0, "percent": 0.0}}


def convert(amount, currency):
    return round(amount * RATES[currency], 2)


def fee(amount, method):
    rule = FEES[method]
    return round(rule["fixed"] + amount * rule["percent"] / 100, 2)


def main():
    with executor() as ex:
        print(ex.submit(convert, 100.0, "GBP").result())
        print(ex.submit(fee, 200.0, "card").result())
        print(sorted(ex.submit(convert, 1.0, c).result() for c in RATES))


if __name__ == "__main__":
    main()
