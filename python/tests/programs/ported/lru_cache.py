"""Dynamic programming with functools.lru_cache and functools.cache, on a helper and on the
job itself."""

import functools

from executors import executor


@functools.cache
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fib_sum(n):
    return sum(fib(i) for i in range(n))


@functools.cache
def ways(amount, coins):
    if amount == 0:
        return 1
    if amount < 0 or not coins:
        return 0
    return ways(amount - coins[0], coins) + ways(amount, coins[1:])


def main():
    with executor() as ex:
        print(ex.submit(fib_sum, 60).result())
        print(ex.submit(ways, 100, (50, 25, 10, 5, 1)).result())
        print(list(ex.map(fib, [10, 90])))


if __name__ == "__main__":
    main()
