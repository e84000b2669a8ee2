"""Executor.map's timeout: the deadline for the whole iteration, from the call of map,
raising TimeoutError where the next result is late."""

import concurrent.futures
import time

from executors import executor


def crunch(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return f"done in {seconds}s"


def main():
    with executor() as ex:
        print(list(ex.map(crunch, [0.0, 0.1], timeout=30)))
        results = ex.map(crunch, [0.0, 1.5], timeout=0.5)
        try:
            for result in results:
                print("got", result)
        except (TimeoutError, concurrent.futures.TimeoutError):  # one since Python 3.11
            print("map timed out: TimeoutError")


if __name__ == "__main__":
    main()
