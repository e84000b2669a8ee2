"""Jobs that use generator functions as helpers: an endless one and a chunking one."""

import itertools

from executors import executor


def primes():
    found = []
    for n in itertools.count(2):
        if all(n % p for p in found):
            found.append(n)
            yield n


def chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def first_primes(count):
    return list(itertools.islice(primes(), count))


def chunk_sums(items):
    return [sum(chunk) for chunk in chunks(items, 3)]


def main():
    with executor() as ex:
        print(ex.submit(first_primes, 10).result())
        print(ex.submit(chunk_sums, list(range(10))).result())


if __name__ == "__main__":
    main()
