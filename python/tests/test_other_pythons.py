"""The package on the oldest and the newest CPython it claims that this machine has (3.9,
and 3.13 or later): the futures are lazy there (their ``Future`` is the one wasp knows),
and what travels is found the same way, whatever the caller's Python. A few of the ported
programs (see ``test_ported.py``) run with that interpreter natively and through wasp, and
print the same.

The package's native part is abi3: the interpreter imports it from the source tree, where
``maturin develop`` left it (``scripts/test``)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest
from conftest import REPO, TIMEOUT, unavailable
from test_ported import PORTED, SUPPORT

#: The programs run on each interpreter: the Executor's API, values and exceptions.
PROGRAMS = (
    "executor_api",
    "executor_running",
    "executor_map_timeout",
    "cancellation",
    "tuples",
    "dataclass_values",
    "exception_subclass",
    "mylib_modules",
)


def _interpreter(version: str, newer: bool = False) -> Optional[str]:
    """A CPython ``version`` (``newer``: the latest of it or later ones) on this machine:
    pyenv's, else ``pythonX.Y`` on the PATH; one that runs."""
    minor = int(version.split(".")[1])
    minors = range(minor + 9, minor - 1, -1) if newer else [minor]
    for candidate in minors:
        found = sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{candidate}.*/bin/python3"))
        )
        on_path = shutil.which(f"python3.{candidate}")
        for python in [*reversed(found), *([on_path] if on_path else [])]:
            works = subprocess.run([python, "-c", "pass"], capture_output=True, check=False)
            if works.returncode == 0:
                return python
    return None


INTERPRETERS = {"oldest (3.9)": ("3.9", False), "newest (3.13 or later)": ("3.13", True)}


def _run(python: str, program: str, mode: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    directory = PORTED / program
    script = directory / "main.py" if directory.is_dir() else PORTED / f"{program}.py"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SUPPORT), str(REPO / "python")]),
        "PYTHONHASHSEED": "0",
        "PORTED_MODE": mode,
    }
    return subprocess.run(
        [python, str(script)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TIMEOUT * 2,
        check=False,
    )


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("which", INTERPRETERS)
def test_a_program_prints_the_same_on_another_python(which: str, program: str, tmp_path: Path):
    python = _interpreter(*INTERPRETERS[which])
    if python is None:
        unavailable(f"no CPython {INTERPRETERS[which][0]} on this machine (pyenv or PATH)")
        return
    native = _run(python, program, "native", tmp_path)
    assert native.returncode == 0, native.stderr
    ported = _run(python, program, "wasp", tmp_path)
    assert ported.returncode == 0, ported.stderr[-3000:]
    assert ported.stdout == native.stdout, (python, ported.stdout, native.stdout)


@pytest.mark.parametrize("which", INTERPRETERS)
def test_futures_are_lazy_on_another_python(which: str):
    python = _interpreter(*INTERPRETERS[which])
    if python is None:
        unavailable(f"no CPython {INTERPRETERS[which][0]} on this machine (pyenv or PATH)")
        return
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    probe = "import wasp._future as f; print(f.LAZY)"
    found = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, env=env, timeout=TIMEOUT
    )
    assert found.stdout.strip() == "True", (python, found.stdout, found.stderr)
