"""Parallel Python's API: pp's own sum_primes program, ported by changing its import, prints
pp's numbers, locally and on two wasp nodes; and the rest of pp's ``Server``."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import TIMEOUT

import wasp

PROGRAM = Path(__file__).parent / "programs" / "sum_primes.py"

#: What pp printed for its example (pp-internals, section 4).
PP_SUMS = {
    100: 1060,
    100000: 454396537,
    100100: 454996777,
    100200: 455898156,
    100300: 456700218,
    100400: 457603451,
    100500: 458407033,
    100600: 459412387,
    100700: 460217613,
}


def run_program(sum_primes_path: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, str(PROGRAM), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={"SUM_PRIMES_WASM": str(sum_primes_path), **env, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def check_pp_numbers(output: str) -> None:
    for n, total in PP_SUMS.items():
        assert f"Sum of primes below {n} is {total}\n" in output, output
    assert "Job execution statistics:" in output


def test_pps_sum_primes_program_prints_pps_numbers_locally(sum_primes_path):
    output = run_program(sum_primes_path, "2", env={})
    assert output.startswith("Starting pp with 2 workers\n"), output
    check_pp_numbers(output)
    assert "local/0" in output and "local/1" in output


def test_pps_sum_primes_program_prints_pps_numbers_on_two_nodes(
    sum_primes_path, nodes, secret_file
):
    first, second = nodes(2)
    env = {"PPSERVERS": f"{first.address},{second.address}", "SECRET_FILE": str(secret_file)}
    output = run_program(sum_primes_path, "0", env=env)
    assert output.startswith("Starting pp with 0 workers\n"), output
    check_pp_numbers(output)
    # Both nodes did work; no local worker did.
    rows = [line for line in output.splitlines() if "(x86_64" in line or "(aarch64" in line]
    assert len(rows) == 2, output
    assert "local/" not in output


def test_submit_checks_its_arguments_as_pp_does(sum_primes, cache_dir):
    server = wasp.Server(1, cache_dir=cache_dir)
    try:
        with pytest.raises(TypeError, match="args argument must be a tuple"):
            server.submit(sum_primes.sum_primes, [100])
        with pytest.raises(TypeError, match="modules argument must contain strings"):
            server.submit(sum_primes.sum_primes, (100,), (), (1,))
        with pytest.raises(ImportError, match="the standard module '_socket' is not in"):
            server.submit(socket.gethostname, ())
        with pytest.raises(TypeError, match="a job is a Python function"):
            server.submit(100, (100,))
        with pytest.raises(TypeError, match="ppservers argument must be a tuple"):
            wasp.Server(1, ppservers="node:7878")
    finally:
        server.destroy()


def test_callbacks_groups_and_ncpus(sum_primes, cache_dir):
    server = wasp.Server(1, cache_dir=cache_dir)
    seen = []
    lock = threading.Lock()

    def record(tag, result):
        with lock:
            seen.append((tag, result))

    try:
        assert server.get_ncpus() == 1
        server.set_ncpus(2)
        assert server.get_ncpus() == 2
        for n in (10, 100):
            server.submit(
                sum_primes.sum_primes, (n,), callback=record, callbackargs=(n,), group="g1"
            )
        other = server.submit(sum_primes.sum_primes, (1000,), group="g2")
        server.wait("g1")
        with lock:
            assert sorted(seen) == [(10, 17), (100, 1060)]
        server.wait()
        assert other() == 76127
        assert other.finished
        assert server.get_active_nodes() == {"local": 2}
        stats = server.get_stats()
        assert stats["local"].njobs == 3
        assert stats["local"].ncpus == 2
    finally:
        server.destroy()
    with pytest.raises(RuntimeError, match="closed"):
        server.submit(sum_primes.sum_primes, (1,))


def test_a_job_prints_what_it_printed_when_called(testjobs, cache_dir, capsys):
    server = wasp.Server(1, cache_dir=cache_dir)
    try:
        job = server.submit(testjobs.greet, ("pp",))
        assert job() == "greeted pp"
        captured = capsys.readouterr()
        assert "hello, pp" in captured.out
        assert "a note on stderr" in captured.err
        job()  # printed once, as pp does
        assert capsys.readouterr().out == ""
    finally:
        server.destroy()


def test_a_server_with_only_unreachable_or_refusing_nodes_says_so(nodes, tmp_path):
    (node,) = nodes(1)
    wrong = tmp_path / "wrong.key"
    wrong.write_text("b8" * 32)
    with pytest.raises(ConnectionError, match="wrong cluster secret"):
        wasp.Server(0, ppservers=(node.address,), secret_file=wrong)
