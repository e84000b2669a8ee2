"""Orders as dataclasses (a field(default_factory=...), a frozen one as a dict key), as
arguments and as results."""

from dataclasses import dataclass, field

from executors import executor


@dataclass(frozen=True)
class Sku:
    code: str
    size: str = "M"


@dataclass
class Order:
    number: int
    lines: list = field(default_factory=list)
    note: str = ""

    def add(self, sku, quantity):
        self.lines.append((sku, quantity))


def fill(order, stock):
    filled = Order(order.number, note="filled")
    for sku, quantity in order.lines:
        filled.add(sku, min(quantity, stock.get(sku, 0)))
    return filled


def count(order):
    return sum(quantity for _, quantity in order.lines)


def main():
    order = Order(7)
    order.add(Sku("tee"), 3)
    order.add(Sku("cap", "L"), 1)
    stock = {Sku("tee"): 2, Sku("cap", "L"): 5}
    with executor() as ex:
        print(repr(ex.submit(fill, order, stock).result()))
        print(repr(ex.submit(count, order).result()))
        print(repr(ex.submit(fill, Order(8), {}).result()))


if __name__ == "__main__":
    main()
