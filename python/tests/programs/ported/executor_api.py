"""wasp.Client where a concurrent.futures.Executor is expected: library code typed against
Executor, submit(fn, /, *args, **kwargs) (a keyword named fn goes to the job), map over
several iterables with chunksize, asyncio's run_in_executor, shutdown, the context
manager."""

import asyncio
import concurrent.futures

from executors import executor


def label(n, fn="square", sep=":"):
    return f"{fn}{sep}{n * n}"


def add(a, b):
    return a + b


def squares_report(pool: concurrent.futures.Executor) -> list:
    """Library code, written for any Executor."""
    futures = [pool.submit(label, n, sep="=") for n in range(4)]
    return sorted(future.result() for future in concurrent.futures.as_completed(futures))


async def offload(pool):
    loop = asyncio.get_running_loop()
    return await asyncio.gather(*(loop.run_in_executor(pool, add, n, 10) for n in range(3)))


def main():
    with executor() as ex:
        print(isinstance(ex, concurrent.futures.Executor))
        print(ex.submit(label, 4, fn="cube").result())
        print(ex.submit(label, n=5, sep="->").result())
        print(squares_report(ex))
        print(list(ex.map(add, [1, 2, 3], [10, 20, 30])))
        print(list(ex.map(add, range(7), range(100, 107), chunksize=3)))
        print(asyncio.run(offload(ex)))
        futures = [ex.submit(add, n, n) for n in range(4)]
        ex.shutdown(wait=True, cancel_futures=False)
        print([future.done() for future in futures], [future.result() for future in futures])
        try:
            ex.submit(add, 1, 2)
        except RuntimeError:
            print("submit after shutdown: RuntimeError")


if __name__ == "__main__":
    main()
