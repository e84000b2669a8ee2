"""Python jobs as people write them (issue 20): ordinary user programs, each run natively
and through wasp, must print the same; what truly cannot travel is refused at submit.

Each program under ``programs/ported`` (a file, or a directory with its ``main.py`` and
the user's own modules) chooses its executor with one switch, ``PORTED_MODE`` (see
``programs/ported/support/executors.py``):

- ``native``: what the program was written for: the standard library's
  ``ProcessPoolExecutor`` (forked workers), or pp's semantics (a job runs the caller's
  objects as they were at submit);
- ``wasp``: ``wasp.Client(workers=2)``, or ``wasp`` as ``pp``;
- ``wasp-node``: ``wasp.Client(workers=0, peers=[node])``, one real ``wasp node`` (two
  workers, as the pools above) shared by the whole file; the few programs whose deadlines
  assume its workers are theirs have it to themselves.

wasp's output must equal the native run's, line for line (a statistics table printed by
pp's ``print_stats()`` is compared up to its header). The refusal programs must, on wasp,
catch the exception named in ``REFUSALS`` from ``submit`` and print its message, which
must name what cannot travel. Programs run as child processes, several at a time, each
bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import difflib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from conftest import SECRET, TIMEOUT, Node

import wasp

PORTED = Path(__file__).parent / "programs" / "ported"
SUPPORT = PORTED / "support"

#: The programs that use what cannot travel: the exception ``submit`` must raise (the
#: program catches that type and prints ``refused at submit: <message>``), and the words
#: its message must hold (case-insensitive): the thing's name.
REFUSALS = {
    "refuse_c_function": ("TypeError", ["gethostbyname"]),
    "refuse_closure": ("TypeError", ["record", "lock"]),
    "refuse_missing_module": ("ImportError", ["subprocess"]),
    "refuse_open_file": ("TypeError", ["LOG"]),
}

#: pp's ``print_stats()`` table: it differs between executors by nature.
STATISTICS = "Job execution statistics:"

WASP_MODES = ("wasp", "wasp-node")

#: Programs run at once: they mostly wait (for a node, for a worker).
PARALLEL = 4

#: Programs whose output depends on the node's two workers being theirs alone (a deadline
#: shorter than another program's jobs): on the node, each runs while no other does.
ALONE_ON_THE_NODE = {"cancellation", "executor_map_timeout"}


def _programs() -> list[str]:
    """Each program's name: a file's stem, or a directory's name."""
    files = [path.stem for path in PORTED.glob("*.py")]
    directories = [path.parent.name for path in PORTED.glob("*/main.py")]
    return sorted(files + directories)


def _script(program: str) -> Path:
    directory = PORTED / program
    return directory / "main.py" if directory.is_dir() else PORTED / f"{program}.py"


@dataclass
class Run:
    """What a program did in one mode."""

    mode: str
    returncode: Optional[int]
    stdout: str
    stderr: str

    @property
    def hung(self) -> bool:
        return self.returncode is None

    def describe(self) -> str:
        """How it ended, in a line: the defect's kind and the exception."""
        if self.hung:
            return f"hung: killed after {TIMEOUT:.0f} s"
        if self.returncode == 0:
            return "exited 0"
        return f"{_failure_kind(self.stderr)}: {_exception_of(self.stderr)}"


def _exception_of(stderr: str) -> str:
    """The exception a program died of: the first line after its traceback's frames, and
    the last line of a message of several lines (a job's traceback)."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "Traceback (most recent call last):"]
    if not starts:
        return lines[-1].strip() if lines else "(nothing on stderr)"
    rest = lines[starts[-1] + 1 :]
    header = next((i for i, line in enumerate(rest) if line and not line[0].isspace()), None)
    if header is None:
        return "(a traceback without its exception)"
    exception = rest[header].replace("wasp._errors.", "wasp.")
    tail = [line for line in rest[header + 1 :] if line.strip()]
    return f"{exception} [...] {tail[-1].strip()}" if tail else exception


def _failure_kind(stderr: str) -> str:
    """Where a program that died failed: in the job (its error reached the caller), in
    ``submit`` or ``map`` (wasp refused the job, or took it wrongly), or elsewhere (an API
    wasp lacks)."""
    if re.search(r"^wasp\._errors\.\w+", stderr, re.MULTILINE):
        return "failed at run"
    frames = re.findall(r'File "[^"]*[/\\]wasp[/\\](\w+)[/\\.]', stderr)
    functions = re.findall(r'File "[^"]*[/\\]wasp[/\\][^"]*", line \d+, in (\w+)', stderr)
    if "_ship" in frames or any(function in ("submit", "map") for function in functions):
        return "refused at submit"
    return "error"


def _run(program: str, mode: str, env: dict[str, str], cwd: Path) -> Run:
    """Runs ``program`` in ``mode`` to its end, or kills it (and its children) after
    ``TIMEOUT`` seconds."""
    process = subprocess.Popen(
        [sys.executable, str(_script(program))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env={**env, "PORTED_MODE": mode},
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        returncode: Optional[int] = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        returncode = None
    return Run(mode, returncode, stdout, stderr)


class NodeTurns:
    """Who may use the shared node: any number of programs together, or one of
    ``ALONE_ON_THE_NODE`` by itself (waiting programs of those go first)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sharing = 0
        self._alone = False
        self._waiting_alone = 0

    @contextlib.contextmanager
    def turn(self, alone: bool) -> Iterator[None]:
        with self._changed:
            if alone:
                self._waiting_alone += 1
                self._changed.wait_for(lambda: not self._alone and self._sharing == 0)
                self._waiting_alone -= 1
                self._alone = True
            else:
                self._changed.wait_for(lambda: not self._alone and not self._waiting_alone)
                self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                if alone:
                    self._alone = False
                else:
                    self._sharing -= 1
                self._changed.notify_all()


class Runs:
    """Every selected program's runs, started together (``PARALLEL`` at once) and waited
    for by each test."""

    def __init__(self, env: dict[str, str], workspace: Path) -> None:
        self._env = env
        self._workspace = workspace
        self._pool = concurrent.futures.ThreadPoolExecutor(PARALLEL, "ported")
        self._runs: dict[tuple[str, str], concurrent.futures.Future[Run]] = {}
        self._lock = threading.Lock()
        self._node = NodeTurns()

    def start(self, program: str, mode: str) -> None:
        with self._lock:
            if (program, mode) not in self._runs:
                self._runs[program, mode] = self._pool.submit(self._run, program, mode)

    def _run(self, program: str, mode: str) -> Run:
        cwd = Path(tempfile.mkdtemp(dir=self._workspace, prefix=f"{program}-{mode}-"))
        if mode != "wasp-node":
            return _run(program, mode, self._env, cwd)
        with self._node.turn(alone=program in ALONE_ON_THE_NODE):
            return _run(program, mode, self._env, cwd)

    def get(self, program: str, mode: str) -> Run:
        self.start(program, mode)
        return self._runs[program, mode].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _selected(session: pytest.Session) -> list[tuple[str, str]]:
    """The (program, mode) pairs of this file's selected tests."""
    pairs = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if item.path == Path(__file__) and callspec is not None and "program" in callspec.params:
            pairs.append((callspec.params["program"], callspec.params["mode"]))
    return pairs


@pytest.fixture(scope="module")
def ported_secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ported-secret") / "cluster.key"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def ported_node(
    tmp_path_factory: pytest.TempPathFactory, shared_cache: Path, ported_secret_file: Path
) -> Iterator[Node]:
    """One ``wasp node`` (2 workers) for every program of the node mode, sharing the
    programs' cache of compiled code."""
    node = Node(
        tmp_path_factory.mktemp("ported-node"),
        ported_secret_file,
        2,
        [],
        _module_cache(shared_cache),
    )
    yield node
    node.kill()


def _module_cache(shared_cache: Path) -> Path:
    """Where the programs' servers keep compiled code: ``$XDG_CACHE_HOME/wasp/modules``
    with ``XDG_CACHE_HOME`` set to ``shared_cache``."""
    return shared_cache / "wasp" / "modules"


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    shared_cache: Path,
    runner_path: Path,
) -> Iterator[Runs]:
    selected = _selected(request.session)
    env = {
        **os.environ,
        "PYTHONPATH": str(SUPPORT),
        "PYTHONHASHSEED": "0",
        "XDG_CACHE_HOME": str(shared_cache),
    }
    with wasp.Client(workers=1, cache_dir=_module_cache(shared_cache)) as warm:
        # The runner compiles once, here, rather than in the first programs at once.
        assert warm.submit(_ready).result(TIMEOUT)
    if any(mode == "wasp-node" for _, mode in selected):
        node = request.getfixturevalue("ported_node")
        secret_file = request.getfixturevalue("ported_secret_file")
        env["PORTED_PEERS"] = node.address
        env["PORTED_SECRET_FILE"] = str(secret_file)
        with wasp.Client(workers=0, peers=[node.address], secret_file=secret_file) as remote:
            assert remote.submit(_ready).result(TIMEOUT)
    all_runs = Runs(env, tmp_path_factory.mktemp("ported-runs"))
    for program, mode in selected:
        if program not in REFUSALS:
            all_runs.start(program, "native")
        all_runs.start(program, mode)
    yield all_runs
    all_runs.close()


def _ready() -> bool:
    return True


def _comparable(stdout: str) -> str:
    """The output up to pp's statistics table, whose numbers differ by nature."""
    head, found, _ = stdout.partition(STATISTICS)
    return head + found


def _check_same_output(program: str, native: Run, ported: Run) -> None:
    assert native.returncode == 0, (
        f"the native run of {program} failed, so the program itself is wrong:\n{native.stderr}"
    )
    expected, got = _comparable(native.stdout), _comparable(ported.stdout)
    if ported.returncode == 0 and got == expected:
        return
    kind = "wrong result" if ported.returncode == 0 else ported.describe()
    diff = "\n".join(
        difflib.unified_diff(
            expected.splitlines(), got.splitlines(), "native", ported.mode, lineterm=""
        )
    )
    pytest.fail(
        f"{program} on {ported.mode}: {kind}\n{diff}\n--- stderr ---\n{ported.stderr[-3000:]}",
        pytrace=False,
    )


def _check_refused(program: str, ported: Run) -> None:
    exception, words = REFUSALS[program]
    refusals = [
        line for line in ported.stdout.splitlines() if line.startswith("refused at submit:")
    ]
    if ported.returncode != 0 or not refusals:
        how = "it ran" if ported.returncode == 0 else ported.describe()
        pytest.fail(
            f"{program} on {ported.mode}: not refused at submit with a {exception} ({how})\n"
            f"--- stdout ---\n{ported.stdout}--- stderr ---\n{ported.stderr[-3000:]}",
            pytrace=False,
        )
    message = refusals[0].lower()
    missing = [word for word in words if word.lower() not in message]
    assert not missing, f"{program}: the refusal does not name {missing}: {refusals[0]}"


@pytest.mark.parametrize("mode", WASP_MODES)
@pytest.mark.parametrize("program", _programs())
def test_a_ported_program_prints_what_it_prints_natively(runs: Runs, program: str, mode: str):
    ported = runs.get(program, mode)
    if program in REFUSALS:
        _check_refused(program, ported)
    else:
        _check_same_output(program, runs.get(program, "native"), ported)


def test_every_refusal_program_exists():
    assert set(REFUSALS) <= set(_programs())
