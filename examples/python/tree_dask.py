"""The tree reduction of wasp's graph benchmark (``bench --only graph``), with Dask's
futures: ``leaves`` sum_primes leaves (``sum_primes(leaf + i % 100)``), summed by tasks of
``fan_in`` results each, level by level to one root, all submitted before the first result,
on a ``LocalCluster`` of 2 single-threaded worker processes.

    python tree_dask.py LEAVES FAN_IN LEAF

Prints ``SECONDS SUM`` on its last line: the time from the first submission to the root's
result (after a warm-up tree), and the root's sum.
"""

import math
import sys
import time

from dask.distributed import Client, LocalCluster


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    limit = math.ceil(math.sqrt(n))
    i = 2
    while i <= limit:
        if n % i == 0:
            return False
        i += 1
    return True


def sum_primes(n):
    return sum(x for x in range(2, n) if is_prime(x))


def total(values):
    return sum(values)


def tree(client, leaves, fan_in, leaf):
    level = client.map(sum_primes, [leaf + i % 100 for i in range(leaves)], pure=False)
    while len(level) > 1:
        level = [
            client.submit(total, level[i : i + fan_in], pure=False)
            for i in range(0, len(level), fan_in)
        ]
    return level[0].result()


def main():
    leaves, fan_in, leaf = (int(arg) for arg in sys.argv[1:4])
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        tree(client, 100, fan_in, leaf)
        start = time.perf_counter()
        result = tree(client, leaves, fan_in, leaf)
        elapsed = time.perf_counter() - start
    print(f"{elapsed} {result}")


if __name__ == "__main__":
    main()
