"""What the Python tests share: the guest modules and the ``wasp`` binary built by cargo,
real ``wasp node`` processes on 127.0.0.1, and Python programs run as child processes.

``scripts/test`` builds what these need (``cargo build -p wasp-cli -p wasp-fixtures``) and
installs the package in a virtual environment first; missing pieces fail the tests, with
how to build them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

import wasp

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
GUESTS = TARGET / "wasp-guests" / "wasm32-wasip1" / "release"
WASP = Path(os.environ.get("WASP_BIN", TARGET / "debug" / "wasp"))

#: The bound on any single wait of a test: a hung test is a failed test.
TIMEOUT = 60.0


def under_ci() -> bool:
    """Whether the tests run under CI: ``CI=true``, the one rule of every test and script
    of the project (Rust: ``wasp_fixtures::under_ci``; shell: ``scripts/lib.sh``)."""
    return os.environ.get("CI") == "true"


def unavailable(why: str) -> None:
    """A tool a test needs is missing: the test skips, except under ``CI=true``, where it
    must run (CI installs what the tests need), and so fails."""
    if under_ci():
        pytest.fail(f"{why} (required under CI=true)")
    pytest.skip(why)


def sum_primes_reference(n: int) -> int:
    """The sum of the primes below ``n``, by a sieve: what pp's sum_primes must return."""
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return sum(i for i in range(n) if sieve[i])


def _built(path: Path) -> Path:
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build it with `cargo build -p wasp-cli -p wasp-fixtures` "
            "(scripts/test does)"
        )
    return path


@pytest.fixture(scope="session")
def sum_primes_path() -> Path:
    return _built(GUESTS / "sum_primes_guest.wasm")


@pytest.fixture(scope="session")
def sum_primes(sum_primes_path: Path) -> wasp.Module:
    return wasp.Module(sum_primes_path)


@pytest.fixture(scope="session")
def testjobs() -> wasp.Module:
    return wasp.Module(_built(GUESTS / "wasp_testjobs.wasm"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def runner_path() -> Path:
    """wasp's Python runner, built once (``python -m wasp.runner``; ``WASP_PYTHON_RUNNER``
    if set), and named to the child processes and nodes the tests start."""
    path = wasp.runner.path()
    os.environ[wasp.runner.RUNNER_VARIABLE] = str(path)
    return path


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory, runner_path: Path) -> Path:
    """A compiled-code cache shared by the tests of Python jobs (servers and nodes): the
    runner compiles in seconds, once per session rather than per test."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture
def client(cache_dir: Path) -> Iterator[wasp.Client]:
    with wasp.Client(workers=2, cache_dir=cache_dir) as client:
        yield client


SECRET = "a7" * 32


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.key"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


class Node:
    """A ``wasp node`` process on 127.0.0.1, with its own identity, cache and log."""

    def __init__(
        self,
        directory: Path,
        secret_file: Path,
        workers: int,
        extra: list[str],
        cache_dir: Optional[Path] = None,
    ):
        self.directory = directory
        self.log = directory / "node.log"
        command = [
            str(_built(WASP)),
            "node",
            "--listen",
            "127.0.0.1:0",
            "--secret-file",
            str(secret_file),
            "--workers",
            str(workers),
            "--identity-dir",
            str(directory / "identity"),
            "--cache-dir",
            str(cache_dir or directory / "cache"),
            "--client-timeout",
            "2s",
            *extra,
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": "info,wasp=debug"},
            )
        line = _read_line(self.process, TIMEOUT)
        # `wasp node <id> listening on <addr>`
        words = line.split()
        if len(words) != 6:
            self.kill()
            pytest.fail(f"wasp node printed {line!r}; its log:\n{self.log.read_text()}")
        self.id = words[2]
        self.address = words[5]

    def kill(self) -> None:
        """SIGKILL, and reaped."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line a process prints, within ``timeout`` seconds."""
    result: list[str] = []
    reader = threading.Thread(
        target=lambda: result.append(process.stdout.readline().decode()), daemon=True
    )
    reader.start()
    reader.join(timeout)
    if not result:
        process.kill()
        pytest.fail(f"no output from {process.args[0]} within {timeout} s")
    # Keep the pipe drained for as long as the process lives.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return result[0]


@pytest.fixture
def nodes(tmp_path: Path, secret_file: Path) -> Iterator[callable]:
    """Starts nodes: ``nodes(count, workers=1, extra=[], cache_dir=None)`` (each its own
    cache unless given one); all are killed at the end."""
    started: list[Node] = []

    def start(
        count: int = 1,
        workers: int = 1,
        extra: Optional[list[str]] = None,
        cache_dir: Optional[Path] = None,
    ) -> list[Node]:
        fresh = []
        for _ in range(count):
            directory = Path(tempfile.mkdtemp(dir=tmp_path, prefix="node-"))
            node = Node(directory, secret_file, workers, extra or [], cache_dir)
            started.append(node)
            fresh.append(node)
        return fresh

    yield start
    for node in started:
        node.kill()


def run_python(
    code: str, *args: str, timeout: float = TIMEOUT, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess:
    """Runs Python ``code`` in a child process (this interpreter), to its end."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


#: Put before a child's code: Ctrl-C raises ``KeyboardInterrupt`` in it, as in a terminal.
#: A shell without job control (CI's, or ``cmd &``) starts its background commands with
#: SIGINT ignored; children inherit that, and Python leaves an ignored SIGINT ignored.
CTRL_C_AS_IN_A_TERMINAL = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
)


def start_python(code: str, *args: str) -> subprocess.Popen:
    """Starts Python ``code`` in a child process, its stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-u", "-c", CTRL_C_AS_IN_A_TERMINAL + code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt(process: subprocess.Popen) -> None:
    """Ctrl-C: SIGINT to the child."""
    process.send_signal(signal.SIGINT)
