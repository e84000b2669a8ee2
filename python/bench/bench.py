"""wasp's Python API against the Rust API, pp, ppft, multiprocessing and
concurrent.futures, all in one run on this machine: ratios are what to read.

Run it with ``scripts/bench-python`` (a virtual environment with pp 1.7.0 and ppft 1.7.8
from PyPI, and the package built in release). Prints a Markdown table.

1. Trivial jobs (``add_one``) on 2 workers: jobs per second, all submitted at once, and a
   single job's submit-to-result round trip; wasp through the Python API (pp's ``Server``
   and ``Client`` futures) and through the Rust API (the baseline), and pp, ppft,
   ``multiprocessing.Pool`` and ``ProcessPoolExecutor`` running the same function in Python.
2. pp's seed program (8 sums of primes near 100,000): wasp with the Rust guest against pp
   running it in pure Python, on 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Callable

import wasp

INPUTS = (100000, 100100, 100200, 100300, 100400, 100500, 100600, 100700)


def add_one(x):
    return x + 1


def isprime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    max = int(math.ceil(math.sqrt(n)))
    i = 2
    while i <= max:
        if n % i == 0:
            return False
        i += 1
    return True


def sum_primes(n):
    return sum([x for x in range(2, n) if isprime(x)])


def rate_and_round_trip(
    submit: Callable[[int], Callable[[], int]], jobs: int, trips: int
) -> tuple[float, float]:
    """Jobs per second (all submitted, then all waited for) and the mean round trip."""
    submit(0)()
    start = time.perf_counter()
    handles = [submit(x) for x in range(jobs)]
    for x, handle in enumerate(handles):
        assert handle() == x + 1
    rate = jobs / (time.perf_counter() - start)
    times = []
    for x in range(trips):
        start = time.perf_counter()
        assert submit(x)() == x + 1
        times.append(time.perf_counter() - start)
    return rate, statistics.mean(times)


def bench_trivial(trivial: wasp.Module, jobs: int, trips: int) -> list[tuple[str, float, float]]:
    rows = []
    rate, trip = wasp._wasp._rust_api_baseline(trivial._native, "add_one", jobs, trips, 2)
    rows.append(("wasp, Rust API", rate, trip))
    server = wasp.Server(2)
    job = trivial.add_one
    rows.append(
        (
            "wasp, Python, pp's API (Server)",
            *rate_and_round_trip(lambda x: server.submit(job, (x,)), jobs, trips),
        )
    )
    server.destroy()
    with wasp.Client(workers=2) as client:
        rows.append(
            (
                "wasp, Python, Client futures",
                *rate_and_round_trip(lambda x: client.submit(job, x).result, jobs, trips),
            )
        )
    for name, module in (("pp 1.7.0", "pp"), ("ppft 1.7.8", "ppft")):
        try:
            pp = __import__(module)
        except ImportError:
            print(f"{name}: not installed, skipped")
            continue
        server = pp.Server(2, ppservers=())
        rows.append(
            (
                name,
                *rate_and_round_trip(
                    lambda x, s=server: s.submit(add_one, (x,)),
                    max(jobs // 20, 1000),
                    min(trips, 500),
                ),
            )
        )
        server.destroy()
    with multiprocessing.Pool(2) as pool:
        rows.append(
            (
                "multiprocessing.Pool",
                *rate_and_round_trip(
                    lambda x: pool.apply_async(add_one, (x,)).get, jobs // 5, trips
                ),
            )
        )
    with concurrent.futures.ProcessPoolExecutor(2) as executor:
        rows.append(
            (
                "ProcessPoolExecutor",
                *rate_and_round_trip(
                    lambda x: executor.submit(add_one, x).result, jobs // 20, min(trips, 500)
                ),
            )
        )
    return rows


def bench_sum_primes(guest: wasp.Module, repeats: int) -> list[tuple[str, float]]:
    rows = []
    for workers in (1, 2):
        server = wasp.Server(workers)
        [job() for job in [server.submit(guest.sum_primes, (n,)) for n in INPUTS]]
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jobs = [server.submit(guest.sum_primes, (n,)) for n in INPUTS]
            results = [job() for job in jobs]
            assert results[0] == 454396537
            times.append(time.perf_counter() - start)
        server.destroy()
        rows.append((f"wasp (Rust guest), {workers} worker(s)", statistics.median(times)))
        try:
            import pp
        except ImportError:
            continue
        server = pp.Server(workers, ppservers=())
        times = []
        for _ in range(max(repeats // 3, 1)):
            start = time.perf_counter()
            jobs = [server.submit(sum_primes, (n,), (isprime,), ("math",)) for n in INPUTS]
            results = [job() for job in jobs]
            assert results[0] == 454396537
            times.append(time.perf_counter() - start)
        server.destroy()
        rows.append((f"pp 1.7.0 (pure Python), {workers} worker(s)", statistics.median(times)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guests", type=Path, required=True, help="the built guest modules")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    jobs, trips, repeats = (20_000, 1_000, 3) if args.quick else (100_000, 5_000, 9)
    trivial = wasp.Module(args.guests / "trivial_guest.wasm")
    guest = wasp.Module(args.guests / "sum_primes_guest.wasm")

    print("| trivial jobs, 2 workers | jobs/s | round trip (mean) |")
    print("|---|---|---|")
    rows = bench_trivial(trivial, jobs, trips)
    rust_rate = rows[0][1]
    pp_rate = next((rate for name, rate, _ in rows if name.startswith("pp ")), None)
    for name, rate, trip in rows:
        note = ""
        if name.startswith("wasp, Python"):
            per_job = (1 / rate - 1 / rust_rate) * 1e6
            note = f" ({per_job:+.1f} us per job vs Rust"
            if pp_rate:
                note += f", {rate / pp_rate:.0f}x pp"
            note += ")"
        print(f"| {name} | {rate:,.0f}{note} | {trip * 1e6:.1f} us |")
    print()
    print("| pp's sum_primes set (8 jobs) | median time |")
    print("|---|---|")
    for name, seconds in bench_sum_primes(guest, repeats):
        print(f"| {name} | {seconds * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
