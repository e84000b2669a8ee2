"""One script, two runs, with the pricing helper redefined between them (as a notebook
cell or a later section of a script does): each run must use the helper as it is when
its jobs are submitted."""

from executors import executor

BASKETS = [[10.0, 20.0], [5.0, 5.0, 5.0]]


def discount(price):
    return price * 0.9


def checkout(prices):
    return round(sum(discount(price) for price in prices), 2)


with executor() as ex:
    print("10% off:", list(ex.map(checkout, BASKETS)))


def discount(price):
    return max(price - 3.0, 0.0)


with executor() as ex:
    print("3 off each:", list(ex.map(checkout, BASKETS)))
