"""Future.running(): true while the job runs, false once it is done."""

import time

from executors import executor


def crunch(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return seconds


def main():
    with executor() as ex:
        future = ex.submit(crunch, 1.0)
        give_up = time.monotonic() + 30
        while not future.running() and not future.done() and time.monotonic() < give_up:
            time.sleep(0.01)
        print("running() while it runs:", future.running(), "done():", future.done())
        print("result:", future.result())
        print("running() after:", future.running(), "done():", future.done())


if __name__ == "__main__":
    main()
