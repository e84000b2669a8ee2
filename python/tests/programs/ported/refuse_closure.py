"""Refused: a closure over live state (a lock and a list its maker keeps)."""

import threading

from executors import executor


def make_recorder():
    lock = threading.Lock()
    seen = []

    def record(item):
        with lock:
            seen.append(item)
        return len(seen)

    return record, seen


def main():
    record, seen = make_recorder()
    with executor() as ex:
        try:
            future = ex.submit(record, "a")
        except TypeError as error:
            print("refused at submit:", error)
        else:
            print(future.result(), seen)


if __name__ == "__main__":
    main()
