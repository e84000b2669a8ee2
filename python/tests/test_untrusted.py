"""The verdict logic of the untrusted-programs benchmark (``python/bench/untrusted.py``):
the sandbox and the process-per-program harness give a program the same verdict, and a
hostile program gets its verdict in the sandbox without leaving a trace."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

import wasp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import untrusted
from untrusted import FAILED, PASSED, TIMED_OUT, Program

ADD = "def add(a, b):\n    return a + b\n"
CHECK = "\ndef check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n"

PROGRAMS = [
    (Program("right", ADD + CHECK), PASSED),
    (Program("wrong", "def add(a, b):\n    return a - b\n" + CHECK), FAILED),
    (Program("raises", "def add(a, b):\n    raise KeyError(a)\n" + CHECK), FAILED),
    (Program("syntax error", "def add(a, b)\n    return a\n" + CHECK), FAILED),
    (Program("loops", "while True:\n    pass\n"), TIMED_OUT),
    # Large steps: the memory cap is met in a few, well within the time limit, however
    # loaded the machine.
    (Program("eats memory", "x = []\nwhile True:\n    x.append(bytearray(32 << 20))\n"), FAILED),
]


@pytest.fixture
def quick_timeout(monkeypatch):
    monkeypatch.setattr(untrusted, "TIMEOUT", 1.0)


def test_both_evaluators_give_each_program_its_verdict(shared_cache, quick_timeout):
    programs = [program for program, _ in PROGRAMS]
    expected = [verdict for _, verdict in PROGRAMS]
    with wasp.Client(workers=2, cache_dir=shared_cache) as client:
        assert untrusted.evaluate_in_wasp(client, programs) == expected
    assert untrusted.evaluate_in_processes(programs) == expected


def test_hostile_programs_fail_in_the_sandbox_and_leave_no_trace(
    shared_cache, quick_timeout, tmp_path
):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        hostile = untrusted.hostile_programs(tmp_path, listener.getsockname()[1])
        with wasp.Client(workers=2, cache_dir=shared_cache) as client:
            described = untrusted.describe_in_wasp(client, hostile)
        assert untrusted.traces(tmp_path, listener) == []
    verdicts = dict(zip((program.name for program in hostile), described))
    assert verdicts["endless loop"].startswith(TIMED_OUT), verdicts
    for name in set(verdicts) - {"endless loop"}:
        # A Python exception of its own type (MemoryError, RecursionError, ...), each also
        # a wasp.JobFailed: describe_in_wasp names the type.
        assert verdicts[name].startswith(f"{FAILED} ("), verdicts
        assert "JobTimeout" not in verdicts[name], verdicts


def test_traces_are_seen_where_a_program_leaves_them(quick_timeout, tmp_path):
    """The harness runs a file-writing program as it is: the trace check sees the file."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        (writes,) = [
            program
            for program in untrusted.hostile_programs(tmp_path, listener.getsockname()[1])
            if program.name == "writes a file"
        ]
        assert untrusted.evaluate_in_processes([writes]) == [PASSED]
        assert untrusted.traces(tmp_path, listener) == ["file written"]
