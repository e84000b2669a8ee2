"""A job past its time limit: the caller's `except TimeoutError` catches it. Natively the
limit is a deadline on the wait; on wasp it is the job's own limit, set per job with
client.options(timeout=...) or for every job in the constructor."""

import concurrent.futures
import time

from executors import NATIVE, executor


def crunch(seconds):
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
    return rounds


def outcome(future, wait):
    try:
        future.result(timeout=wait)
    except (TimeoutError, concurrent.futures.TimeoutError):  # one class since Python 3.11
        return "timed out (a TimeoutError)"
    return "finished"


def main():
    with executor() as ex:
        if NATIVE:
            print("per job:", outcome(ex.submit(crunch, 1.5), 0.5))
        else:
            print("per job:", outcome(ex.options(timeout=0.5).submit(crunch, 1.5), None))
        print("short job:", ex.submit(crunch, 0.01).result() > 0)
    with executor(timeout=0.5) as ex:
        wait = 0.5 if NATIVE else None
        print("default limit:", outcome(ex.submit(crunch, 1.5), wait))


if __name__ == "__main__":
    main()
