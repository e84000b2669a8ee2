"""The wheels ``scripts/wheels.sh`` builds, as a user without Rust gets them.

The x86-64 wheel (``WASP_WHEEL_X86_64``) is installed into a fresh virtual environment with
no ``cargo`` or ``rustc`` on ``PATH`` and a home of its own (no cache of this machine's):
pp's sum_primes program runs with ``import wasp as pp``, a Python function runs as a job,
and a node started by the wheel's own ``wasp`` command serves that environment's client,
running its first Python job on the runner's code the wheel ships.
The aarch64 wheel (``WASP_WHEEL_AARCH64``) is checked for its tags and the machine of its
ELF files, then installed by pip for Debian's aarch64 CPython, which runs pp's sum_primes
with it under qemu-user (``scripts/aarch64-python.sh``). CI builds both wheels first;
without them these tests skip, except under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
from conftest import REPO, TIMEOUT, sum_primes_reference, unavailable

PROGRAM = Path(__file__).parent / "programs" / "sum_primes.py"
#: What a machine without Rust has on its PATH (the environment's bin/ comes first).
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: ELF's e_machine for each architecture.
MACHINES = {"x86_64": 62, "aarch64": 183}
#: pip may fetch the package's dependencies from PyPI.
INSTALL_TIMEOUT = 600


def wheel_path(arch: str) -> Path:
    variable = f"WASP_WHEEL_{arch.upper()}"
    path = os.environ.get(variable)
    if not path:
        unavailable(f"{variable} is not set (build the wheels with scripts/wheels.sh)")
    return Path(path)


class Installed:
    """A virtual environment with the wheel installed, and a home of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "venv" / "bin"
        self.home = root / "home"
        self.home.mkdir()
        self.env = {
            "PATH": f"{self.bin}:{SYSTEM_PATH}",
            "HOME": str(self.home),
            "VIRTUAL_ENV": str(root / "venv"),
            "LANG": "C.UTF-8",
        }

    def run(self, *args: str, timeout: float = TIMEOUT, **env: str) -> str:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **env},
            cwd=self.root,
        )
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Installed]:
    wheel = wheel_path("x86_64")
    root = tmp_path_factory.mktemp("wheel")
    venv.create(root / "venv", with_pip=True, symlinks=True)
    place = Installed(root)
    for tool in ("cargo", "rustc", "rustup"):
        assert shutil.which(tool, path=place.env["PATH"]) is None, f"{tool} is on PATH"
    place.run(
        str(place.bin / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        str(wheel),
        timeout=INSTALL_TIMEOUT,
    )
    yield place


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "an ELF file"
    return int.from_bytes(data[18:20], "little")


def wheel_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        names = [
            name
            for name in archive.namelist()
            if name.endswith(("/WHEEL", "_wasp.abi3.so", "/scripts/wasp", "runner.wasm"))
        ]
        return {name: archive.read(name) for name in names}


def member(members: dict[str, bytes], suffix: str) -> bytes:
    found = [data for name, data in members.items() if name.endswith(suffix)]
    assert len(found) == 1, f"one {suffix} in the wheel: {sorted(members)}"
    return found[0]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_wheel_is_abi3_manylinux_and_holds_its_machines_code(arch):
    members = wheel_members(wheel_path(arch))
    tags = member(members, "/WHEEL").decode()
    assert f"Tag: cp39-abi3-manylinux_2_17_{arch}" in tags, tags
    assert f"Tag: cp39-abi3-manylinux2014_{arch}" in tags, tags
    assert elf_machine(member(members, "/_wasp.abi3.so")) == MACHINES[arch]
    assert elf_machine(member(members, "/scripts/wasp")) == MACHINES[arch]
    runner = member(members, "/runner.wasm")
    assert runner[:4] == b"\0asm", "the Python runner is WebAssembly"


def test_the_wheels_wasp_is_the_command_of_the_environment(installed):
    wasp = shutil.which("wasp", path=installed.env["PATH"])
    assert wasp == str(installed.bin / "wasp")
    assert elf_machine(Path(wasp).read_bytes()[:20]) == MACHINES["x86_64"]
    assert installed.run("wasp", "--version").startswith("wasp ")


def sum_primes_module() -> Path:
    module = REPO / "target" / "wasp-guests" / "wasm32-wasip1" / "release" / "sum_primes_guest.wasm"
    if not module.exists():
        pytest.fail(f"{module} is missing: `cargo build -p wasp-fixtures` builds it")
    return module


def run_program(installed: Installed, ncpus: str, **env: str) -> str:
    module = sum_primes_module()
    return installed.run("python", str(PROGRAM), ncpus, SUM_PRIMES_WASM=str(module), **env)


def check_sums(output: str) -> None:
    for n in (100, 100000, 100700):
        assert f"Sum of primes below {n} is {sum_primes_reference(n)}\n" in output, output
    assert "Job execution statistics:" in output


def test_pps_sum_primes_runs_from_the_wheel(installed):
    output = run_program(installed, "2")
    assert output.startswith("Starting pp with 2 workers\n"), output
    check_sums(output)


def test_a_python_function_runs_as_a_job_from_the_wheel(installed):
    script = installed.root / "squares.py"
    script.write_text(
        "import wasp as pp\n"
        "def squares(n):\n"
        "    return sum(i * i for i in range(n))\n"
        "server = pp.Server(1)\n"
        "job = server.submit(squares, (1000,))\n"
        "print(job())\n"
    )
    output = installed.run("python", str(script), timeout=300)
    assert output.strip() == str(sum(i * i for i in range(1000))), output


#: The CPU features of x86-64-v3, the baseline the wheel's runner code is compiled for.
X86_64_V3 = {"avx", "avx2", "bmi1", "bmi2", "fma", "abm", "sse4_2", "popcnt", "cx16"}


def runs_the_baseline() -> bool:
    """Whether this CPU has x86-64-v3's features (a CPU without them compiles the runner,
    as without shipped code)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return X86_64_V3.issubset(line.split(":", 1)[1].split())
    return False


def first_job_counts(installed: Installed, home: str) -> str:
    """A new process's first Python job, with a home of its own (no disk cache, as on a
    machine that never ran wasp): how many modules it compiled and loaded, as "C L"."""
    script = installed.root / "first_job.py"
    script.write_text(
        "import wasp\n"
        "def add_one(x):\n"
        "    return x + 1\n"
        "with wasp.Client(workers=1) as client:\n"
        "    assert client.submit(add_one, 1).result() == 2\n"
        "    cache = client.stats().cache\n"
        "    print(cache.compiled, cache.loaded_from_disk)\n"
    )
    (installed.root / home).mkdir()
    output = installed.run("python", str(script), timeout=300, HOME=str(installed.root / home))
    return " ".join(output.split())


def test_the_wheels_first_python_job_runs_shipped_code_without_compiling(installed):
    assert first_job_counts(installed, "first-home") == ("0 1" if runs_the_baseline() else "1 0")


def test_shipped_code_as_open_as_the_package_is_loaded_and_more_open_is_not(installed):
    package = next((installed.root / "venv").glob("lib/python3*/site-packages/wasp"))
    code = package / "runner" / "code"
    (shipped,) = code.glob("*.cwasm")
    extension = package / "_wasp.abi3.so"
    modes = {path: path.stat().st_mode for path in (code, shipped, extension)}
    try:
        # As `umask 002` installs it: the extension and the code writable by the group.
        for path in modes:
            path.chmod(path.stat().st_mode | 0o020)
        loaded = "0 1" if runs_the_baseline() else "1 0"
        assert first_job_counts(installed, "umask-002-home") == loaded
        # Code others may write, beside an extension they may not: compiled instead.
        shipped.chmod(shipped.stat().st_mode | 0o002)
        assert first_job_counts(installed, "open-code-home") == "1 0"
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


class Node:
    def __init__(self, process: subprocess.Popen, address: str, monitor: Optional[str]) -> None:
        self.process = process
        self.address = address
        self.monitor = monitor

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=TIMEOUT)


def start_node(installed: Installed, secret: Path, *flags: str, cache: str = "node-cache") -> Node:
    """The wheel's `wasp node` on a free port, with a compiled-code cache of its own; its
    monitor too, if ``flags`` ask for one (the line that says where follows the address)."""
    own = [
        "--secret-file",
        str(secret),
        "--workers",
        "2",
        "--cache-dir",
        str(installed.root / cache),
    ]
    process = subprocess.Popen(
        ["wasp", "node", "--listen", "127.0.0.1:0", *own, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=installed.env,
    )
    lines: list[str] = []
    expected = 2 if "--metrics" in flags else 1
    try:
        while process.stdout and len(lines) < expected:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        if len(lines) < expected:
            process.kill()
    assert lines and "listening on" in lines[0], lines
    monitor = lines[1].rsplit(" on ", 1)[1].strip() if len(lines) > 1 else None
    return Node(process, lines[0].rsplit("listening on ", 1)[1].strip(), monitor)


def cluster_secret(installed: Installed) -> Path:
    """The environment's cluster secret, made by the wheel's `wasp secret new` once."""
    secret = installed.root / "cluster.key"
    if not secret.exists():
        secret.write_text(installed.run("wasp", "secret", "new"))
        secret.chmod(0o600)
    return secret


def test_a_node_started_by_the_wheels_wasp_serves_its_client(installed):
    secret = cluster_secret(installed)
    node = start_node(installed, secret)
    try:
        output = run_program(installed, "0", PPSERVERS=node.address, SECRET_FILE=str(secret))
    finally:
        node.stop()
    assert output.startswith("Starting pp with 0 workers\n"), output
    check_sums(output)
    assert node.address in output and "local/" not in output, output


def node_first_job_counts(installed: Installed, *flags: str, cache: str) -> str:
    """A fresh node's first Python job (the wheel's `wasp node`, a compiled-code cache of its
    own): how many modules the node compiled and loaded, as "C L", from its metrics."""
    secret = cluster_secret(installed)
    node = start_node(installed, secret, "--metrics", "127.0.0.1:0", *flags, cache=cache)
    try:
        script = installed.root / "node_first_job.py"
        script.write_text(
            "import sys, urllib.request, wasp\n"
            "def add_one(x):\n"
            "    return x + 1\n"
            "with wasp.Client(workers=0, peers=[sys.argv[1]], secret_file=sys.argv[2]) as client:\n"
            "    assert client.submit(add_one, 1).result() == 2\n"
            "scrape = urllib.request.urlopen(sys.argv[3] + 'metrics', timeout=30)\n"
            "metrics = scrape.read().decode()\n"
            "counts = dict(line.rpartition(' ')[::2] for line in metrics.splitlines())\n"
            "print(counts['wasp_modules_compiled_total'], counts['wasp_disk_cache_hits_total'])\n"
        )
        # Without the code, the node compiles the runner: seconds, more on a busy machine.
        output = installed.run(
            "python", str(script), node.address, str(secret), str(node.monitor), timeout=300
        )
    finally:
        node.stop()
    return " ".join(output.split())


def test_a_node_from_the_wheel_runs_its_first_python_job_on_the_shipped_code(installed):
    # The wheel's wasp finds the package's code beside it, in the environment's site-packages.
    loaded = "0 1" if runs_the_baseline() else "1 0"
    assert node_first_job_counts(installed, cache="node-cache-shipped") == loaded
    # Given another directory, it looks there instead: nothing there, so it compiles.
    empty = installed.root / "no-code"
    empty.mkdir()
    flags = ("--shipped-code-dir", str(empty))
    assert node_first_job_counts(installed, *flags, cache="node-cache-none") == "1 0"
    # Told to look nowhere, it compiles too.
    assert node_first_job_counts(installed, "--no-shipped-code", cache="node-cache-off") == "1 0"


def aarch64_python(directory: Path) -> list[str]:
    """The command that runs Debian's aarch64 CPython under qemu-user."""
    made = subprocess.run(
        [str(REPO / "scripts" / "aarch64-python.sh"), str(directory)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    if made.returncode != 0:
        unavailable(f"no aarch64 CPython under qemu-user: {made.stderr.strip()}")
    return made.stdout.split()


def test_the_aarch64_wheel_runs_pps_sum_primes_under_qemu(tmp_path):
    wheel = wheel_path("aarch64")
    python = aarch64_python(REPO / "target" / "aarch64-python")
    asked = "import platform, sys; print(sys.version_info[1], platform.libc_ver()[1])"
    minor, glibc = subprocess.run(
        [*python, "-c", asked], capture_output=True, text=True, timeout=TIMEOUT, check=True
    ).stdout.split()
    site = tmp_path / "site-packages"
    # pip installs the wheel and its dependencies for that interpreter (aarch64, CPython 3.x,
    # its glibc), as pip running there would: the wheel's tags must be ones it accepts.
    newest = int(glibc.split(".")[1])
    tags = ["manylinux2014_aarch64"]
    tags += [f"manylinux_2_{glibc_minor}_aarch64" for glibc_minor in range(17, newest + 1)]
    target = ["--target", str(site), *(f"--platform={tag}" for tag in tags)]
    interpreter = ["--implementation", "cp", "--python-version", f"3.{minor}"]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, *target, *interpreter, "--only-binary=:all:", str(wheel)],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    wasp = site / "bin" / "wasp"
    assert elf_machine(wasp.read_bytes()[:20]) == MACHINES["aarch64"]
    qemu = python[: python.index("-L") + 2]
    version = subprocess.run(
        [*qemu, str(wasp), "--version"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert version.stdout.startswith("wasp "), version.stderr
    done = subprocess.run(
        [*python, str(PROGRAM), "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PYTHONPATH": str(site),
            "SUM_PRIMES_WASM": str(sum_primes_module()),
            "HOME": str(tmp_path),
            "PATH": SYSTEM_PATH,
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Starting pp with 2 workers\n"), done.stdout
    check_sums(done.stdout)
