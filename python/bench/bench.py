"""wasp's Python API against the Rust API, pp, ppft, multiprocessing and
concurrent.futures, all in one run on this machine: ratios are what to read.

Run it with ``scripts/bench-python`` (a virtual environment with pp 1.7.0 and ppft 1.7.8
from PyPI, and the package built in release). Prints a Markdown table.

1. Trivial jobs (``add_one``) on 2 workers: jobs per second, all submitted at once, and a
   single job's submit-to-result round trip; wasp through the Python API (pp's ``Server``
   and ``Client`` futures) and through the Rust API (the baseline), and pp, ppft,
   ``multiprocessing.Pool`` and ``ProcessPoolExecutor`` running the same function in Python;
   and wasp running that Python function in its sandbox (the Python runner).
2. pp's seed program (8 sums of primes near 100,000), on 1 and 2 workers: wasp with the Rust
   guest, wasp with the Python function in its sandbox, and pp and ppft running the Python
   function natively.
3. CPU-bound Python: pp's sum_primes set and three kernels of other shapes (n-body floats,
   dicts and strings, recursion), natively in this interpreter and in wasp's sandbox.
4. Evaluating untrusted programs: HumanEval's problems (right and wrong solutions) and
   hostile programs, in wasp and in a process-per-program harness (``untrusted.py``).
5. The first Python job: on a fresh server and node (the runner compiled, or its code found
   where the x86-64 wheel installs it; the runner shipped to the node), on a new server and
   a restarted node (their disk caches), and in a new process
   (``import wasp``, then from ``wasp.Client(...)`` to the result).

Each way run from Python is warmed up for half a second before it is measured; the Rust
API's baseline takes the median of its rounds.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import math
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import untrusted

import wasp
import wasp.runner

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


def nbody(steps):
    """The n-body kernel: five bodies' positions and velocities, in floats."""
    bodies = [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47841760435743],
        [4.84, -1.16, -0.10, 0.606, 2.81, -0.025, 0.0377],
        [8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.0113],
        [12.89, -15.11, -0.22, 1.08, 0.868, -0.010, 0.0017],
        [15.37, -25.91, 0.179, 0.979, 0.594, -0.034, 0.0020],
    ]
    dt = 0.01
    for _ in range(steps):
        for i in range(5):
            bi = bodies[i]
            for j in range(i + 1, 5):
                bj = bodies[j]
                dx, dy, dz = bi[0] - bj[0], bi[1] - bj[1], bi[2] - bj[2]
                d2 = dx * dx + dy * dy + dz * dz
                mag = dt / (d2 * d2**0.5)
                mi, mj = bi[6] * mag, bj[6] * mag
                bi[3] -= dx * mj
                bi[4] -= dy * mj
                bi[5] -= dz * mj
                bj[3] += dx * mi
                bj[4] += dy * mi
                bj[5] += dz * mi
        for b in bodies:
            b[0] += dt * b[3]
            b[1] += dt * b[4]
            b[2] += dt * b[5]
    return round(sum(b[0] + b[1] + b[2] for b in bodies), 6)


def word_counts(lines):
    """The dict/string kernel: words made, split, counted in a dict, the top ten sorted."""
    words = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
    counts = {}
    for n in range(lines):
        line = " ".join(f"{words[(n * k) % 8]}{(n + k) % 97}" for k in range(12))
        for word in line.split():
            key = word.upper()[:6]
            counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:10]
    return [f"{word}={count}" for word, count in top]


def fib(n):
    """The recursion kernel."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


#: The CPU-bound kernels against native CPython: (name, function, argument, its helpers).
KERNELS = (
    ("n-body, floats (nbody 60,000 steps)", nbody, 60_000),
    ("dict and strings (word_counts 40,000 lines)", word_counts, 40_000),
    ("recursion (fib 30)", fib, 30),
)


def bench_kernels(repeats: int) -> list[tuple[str, float, float]]:
    """Each kernel natively (this interpreter) and in wasp's sandbox (1 worker): the
    median times."""
    rows = []
    with wasp.Client(workers=1) as client:
        client.submit(add_one, 1).result()  # the runner, compiled
        sandboxed = time_set(lambda n: client.submit(sum_primes, n).result, max(repeats // 3, 1))
        native = time_set(lambda n: lambda: sum_primes(n), max(repeats // 3, 1))
        rows.append(("pp's sum_primes set (8 jobs, one at a time)", native, sandboxed))
        for name, kernel, argument in KERNELS:
            expected = kernel(argument)
            native_times, sandboxed_times = [], []
            for _ in range(max(repeats // 3, 1)):
                start = time.perf_counter()
                kernel(argument)
                native_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert client.submit(kernel, argument).result() == expected
                sandboxed_times.append(time.perf_counter() - start)
            rows.append((name, statistics.median(native_times), statistics.median(sandboxed_times)))
    return rows


#: Seconds of jobs each way runs before it is measured.
WARM_UP = 0.5


def rate_and_round_trip(
    submit: Callable[[int], Callable[[], int]], jobs: int, trips: int
) -> tuple[float, float]:
    """Jobs per second (all submitted, then all waited for) and the mean round trip, after
    half a second of jobs: a steady state, not a start (a new client's first Python jobs
    instantiate the runner until the sandbox has checked, once, that it can be put back)."""
    warm_until = time.perf_counter() + WARM_UP
    while time.perf_counter() < warm_until:
        for handle in [submit(x) for x in range(50)]:
            handle()
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


def bench_api_overhead(
    trivial: wasp.Module, jobs: int, trips: int, rounds: int
) -> list[tuple[str, float, float]]:
    """The same module's jobs through the Rust API, pp's API and futures: what each
    Python API adds per job. The three take turns, ``rounds`` times, and each reports its
    median rate: a shared machine's slow moments then fall on all three alike."""
    job = trivial.add_one
    server = wasp.Server(2)
    client = wasp.Client(workers=2)
    try:
        ways: list[tuple[str, Callable[[], tuple[float, float]]]] = [
            (
                "wasp, Rust API",
                lambda: wasp._wasp._rust_api_baseline(trivial._native, "add_one", jobs, trips, 2),
            ),
            (
                "wasp, Python, pp's API (Server)",
                lambda: rate_and_round_trip(lambda x: server.submit(job, (x,)), jobs, trips),
            ),
            (
                "wasp, Python, Client futures",
                lambda: rate_and_round_trip(lambda x: client.submit(job, x).result, jobs, trips),
            ),
        ]
        measured: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in ways}
        for _ in range(rounds):
            for name, run in ways:
                measured[name].append(run())
    finally:
        server.destroy()
        client.close()
    return [
        (
            name,
            statistics.median(rate for rate, _ in runs),
            statistics.median(trip for _, trip in runs),
        )
        for name, runs in measured.items()
    ]


def bench_trivial(
    trivial: wasp.Module, jobs: int, trips: int, rounds: int
) -> list[tuple[str, float, float]]:
    rows = list(bench_api_overhead(trivial, jobs, trips, rounds))
    with wasp.Client(workers=2) as client:
        rows.append(
            (
                "wasp, Python function (Python runner), Client",
                *rate_and_round_trip(
                    lambda x: client.submit(add_one, x).result,
                    jobs // 5,
                    min(trips, 500),
                ),
            )
        )
    with wasp.Client(workers=2, reuse_instances=True) as client:
        rows.append(
            (
                "wasp, Python function, reuse_instances=True",
                *rate_and_round_trip(lambda x: client.submit(add_one, x).result, jobs // 5, trips),
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


def time_set(submit: Callable[[int], Callable[[], int]], repeats: int) -> float:
    """The median time of pp's sum_primes set (8 jobs), all submitted then waited for."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jobs = [submit(n) for n in INPUTS]
        results = [job() for job in jobs]
        assert results[0] == 454396537
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_sum_primes(guest: wasp.Module, repeats: int) -> list[tuple[str, float]]:
    rows = []
    for workers in (1, 2):
        server = wasp.Server(workers)
        server.submit(sum_primes, (100,), (isprime,), ("math",))()  # the runner, compiled
        [job() for job in [server.submit(guest.sum_primes, (n,)) for n in INPUTS]]
        rust = time_set(lambda n, s=server: s.submit(guest.sum_primes, (n,)), repeats)
        rows.append((f"wasp (Rust guest), {workers} worker(s)", rust))
        python = time_set(
            lambda n, s=server: s.submit(sum_primes, (n,), (isprime,), ("math",)),
            max(repeats // 3, 1),
        )
        rows.append((f"wasp (Python function, in the sandbox), {workers} worker(s)", python))
        server.destroy()
        for name, module in (("pp 1.7.0", "pp"), ("ppft 1.7.8", "ppft")):
            try:
                pp = __import__(module)
            except ImportError:
                continue
            server = pp.Server(workers, ppservers=())
            native = time_set(
                lambda n, s=server: s.submit(sum_primes, (n,), (isprime,), ("math",)),
                max(repeats // 3, 1),
            )
            server.destroy()
            rows.append((f"{name} (native CPython), {workers} worker(s)", native))
    return rows


#: A new process's first Python job, timed inside it: `import wasp`, then a client made
#: and the job's result back (the runner compiled and in the disk cache at argv[1]).
NEW_PROCESS = """
import sys, time
start = time.perf_counter()
import wasp
imported = time.perf_counter()
def add_one(x):
    return x + 1
with wasp.Client(workers=1, cache_dir=sys.argv[1]) as client:
    assert client.submit(add_one, 1).result() == 2
    answered = time.perf_counter()
print(imported - start, answered - imported)
"""


def first_job_in_a_new_process(cache: Path) -> list[tuple[str, float]]:
    """A new process's first Python job (the median of five processes): its `import wasp`,
    and from `wasp.Client(...)` to the job's result."""
    script = cache.parent / "first_job.py"  # a file: a job's function needs its source
    script.write_text(NEW_PROCESS)
    timings = []
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, str(script), str(cache)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the new process failed:\n{done.stderr}")
        last_line = done.stdout.strip().splitlines()[-1]
        timings.append([float(seconds) for seconds in last_line.split()])
    imported, answered = (statistics.median(column) for column in zip(*timings))
    return [
        ("new process: `import wasp`", imported),
        ("new process: from `wasp.Client(...)` to the first result", answered),
    ]


@contextlib.contextmanager
def shipped_code(directory: Path) -> Iterator[None]:
    """New clients look for the runner's shipped code in ``directory`` meanwhile."""
    packaged = wasp.runner.SHIPPED_CODE
    wasp.runner.SHIPPED_CODE = directory
    try:
        yield
    finally:
        wasp.runner.SHIPPED_CODE = packaged


def first_python_job(wasp_bin: Path) -> list[tuple[str, float]]:
    """The first Python job: on a fresh server (the runner compiled) and on a new one with
    the disk cache; on a fresh node (the runner shipped and compiled) and on the node
    restarted (its disk cache); on a fresh server and a fresh node that find the runner's
    code compiled ahead, as the x86-64 wheel installs it."""
    rows = []
    with tempfile.TemporaryDirectory() as work:
        cache = Path(work) / "local-cache"
        # No shipped code (a checkout, or an aarch64 wheel): the runner is compiled.
        with shipped_code(Path(work) / "no-shipped-code"):
            for label in (
                "fresh local server (compiles the runner)",
                "new local server (disk cache)",
            ):
                start = time.perf_counter()
                with wasp.Client(workers=1, cache_dir=cache) as client:
                    assert client.submit(add_one, 1).result() == 2
                rows.append((label, time.perf_counter() - start))
        # What the x86-64 wheel ships: the runner's code compiled ahead (not timed).
        shipped = Path(work) / "shipped-code"
        subprocess.run(
            [str(wasp_bin), "precompile", str(wasp.runner.path()), "--out", str(shipped)],
            check=True,
            capture_output=True,
            timeout=600,
        )
        with shipped_code(shipped):
            start = time.perf_counter()
            with wasp.Client(workers=1, cache_dir=Path(work) / "fresh-cache") as client:
                assert client.submit(add_one, 1).result() == 2
                compiled = client.stats().cache.compiled
            took = time.perf_counter() - start
        how = "code shipped" if not compiled else "compiled: this CPU lacks the baseline's features"
        rows.append((f"fresh local server, x86-64 wheel ({how})", took))
        rows.extend(first_job_in_a_new_process(cache))
        key = Path(work) / "cluster.key"
        key.write_text("a7" * 32 + "\n")
        key.chmod(0o600)
        node_cache = Path(work) / "node-cache"
        # The wheel's code as its `wasp node` finds it, given here: this `wasp` is a checkout's.
        with_code = ["--shipped-code-dir", str(shipped)]
        for label, cache_dir, code in (
            ("fresh node (runner shipped and compiled)", node_cache, ["--no-shipped-code"]),
            ("restarted node (disk cache)", node_cache, ["--no-shipped-code"]),
            (
                f"fresh node with the x86-64 wheel's code ({how})",
                Path(work) / "wheel-node",
                with_code,
            ),
        ):
            node = subprocess.Popen(
                [
                    str(wasp_bin),
                    "node",
                    "--listen",
                    "127.0.0.1:0",
                    "--secret-file",
                    str(key),
                    "--workers",
                    "1",
                    "--identity-dir",
                    str(Path(work) / "identity"),
                    "--cache-dir",
                    str(cache_dir),
                    *code,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                address = node.stdout.readline().split()[-1]
                with wasp.Client(workers=0, peers=[address], secret_file=key) as client:
                    start = time.perf_counter()
                    assert client.submit(add_one, 1).result() == 2
                    rows.append((label, time.perf_counter() - start))
            finally:
                node.kill()
                node.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guests", type=Path, required=True, help="the built guest modules")
    parser.add_argument("--wasp", type=Path, required=True, help="the wasp binary (nodes)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    jobs, trips, repeats = (20_000, 1_000, 3) if args.quick else (100_000, 5_000, 9)
    rounds = 5 if args.quick else 9
    trivial = wasp.Module(args.guests / "trivial_guest.wasm")
    guest = wasp.Module(args.guests / "sum_primes_guest.wasm")

    print("| trivial jobs, 2 workers | jobs/s | round trip (mean) |")
    print("|---|---|---|")
    rows = bench_trivial(trivial, jobs, trips, rounds)
    rust_rate = rows[0][1]
    pp_rate = next((rate for name, rate, _ in rows if name.startswith("pp ")), None)
    for name, rate, trip in rows:
        note = ""
        if name.startswith("wasp, Python"):
            per_job = (1 / rate - 1 / rust_rate) * 1e6
            note = f" ({per_job:+.1f} us per job vs Rust"
            if pp_rate:
                ratio = rate / pp_rate
                note += f", {ratio:.0f}x pp" if ratio >= 10 else f", {ratio:.2f}x pp"
            note += ")"
        print(f"| {name} | {rate:,.0f}{note} | {trip * 1e6:.1f} us |")
    print()
    print("| pp's sum_primes set (8 jobs) | median time |")
    print("|---|---|")
    for name, seconds in bench_sum_primes(guest, repeats):
        print(f"| {name} | {seconds * 1e3:.1f} ms |")
    print()
    print(
        f"| CPU-bound Python, 1 worker (native: CPython {sys.version.split()[0]}) "
        "| native | in the sandbox | ratio |"
    )
    print("|---|---|---|---|")
    for name, native, sandboxed in bench_kernels(repeats):
        print(
            f"| {name} | {native * 1e3:.0f} ms | {sandboxed * 1e3:.0f} ms "
            f"| {sandboxed / native:.2f}x |"
        )
    print()
    print("| evaluating untrusted programs (HumanEval), 2 workers | result |")
    print("|---|---|")
    with wasp.Client(workers=2) as client:
        for row in untrusted.compare(untrusted.humaneval_programs(), client):
            print(row)
    print()
    print("| the first Python job | time |")
    print("|---|---|")
    for name, seconds in first_python_job(args.wasp):
        shown = f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
        print(f"| {name} | {shown} |")


if __name__ == "__main__":
    main()
