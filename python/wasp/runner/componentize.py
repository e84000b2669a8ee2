"""Building wasp's Python runner with componentize-py (for wheels, ``scripts/test``, and
runners with packages): the same inputs give the same bytes.

A build writes two files into a directory: ``runner.wasm``, the component, and
``runner.json``, what it is (the key of its inputs, its sha256, the modules inside it, the
packages baked in).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .. import _wasp

#: What the runner is built with, pinned: the same inputs give the same runner.
COMPONENTIZE_PY_VERSION = "0.25.1"
MSGPACK_VERSION = "1.1.2"

#: The component's world, in the package's WIT (``runtime/wit/wasp.wit``).
WORLD = "python-runner"

#: The longest a build may take (a hung build fails instead of holding the runner's lock).
BUILD_TIMEOUT = 900.0

#: The time of every staged file (2000-01-01), whatever the day of the build.
STAGED_TIME = 946684800

#: The runner's file and its description, in a runner's directory.
WASM = "runner.wasm"
MANIFEST = "runner.json"

_GUEST = Path(__file__).parent / "guest"

#: The caller's modules the runner's program shares, by the name it imports them by.
_SHARED = {"wasp_factory.py": Path(__file__).parent.parent / "_ship" / "factory.py"}


@dataclass(frozen=True)
class Package:
    """A pure-Python distribution to bake into a runner: its name, version, its files'
    root, the files to copy (relative to the root), and the modules to import at build."""

    name: str
    version: str
    root: Path
    files: tuple[str, ...]
    modules: tuple[str, ...]


def program() -> list[Path]:
    """The files of the runner's program, in a fixed order."""
    return [
        *sorted(_GUEST.glob("*.py")),
        *sorted((_GUEST / "stubs").glob("*.py")),
        *(_SHARED[name] for name in sorted(_SHARED)),
    ]


def key(modules: Sequence[str], packages: Sequence[Package] = ()) -> str:
    """The identity of a runner build: a hash of everything that goes into it."""
    digest = hashlib.sha256()
    parts = [
        _wasp.WIT,
        *(source.read_text(encoding="utf-8") for source in program()),
        repr(tuple(modules)),
        COMPONENTIZE_PY_VERSION,
        MSGPACK_VERSION,
    ]
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    for package in packages:
        digest.update(f"{package.name}=={package.version}\0".encode())
        for name in package.files:
            digest.update(name.encode() + b"\0")
            digest.update(hashlib.sha256((package.root / name).read_bytes()).digest())
    return digest.hexdigest()[:24]


def build(
    directory: Path, modules: Sequence[str], packages: Sequence[Package] = ()
) -> dict[str, Any]:
    """Builds the runner into ``directory`` (``runner.wasm`` and ``runner.json``); returns
    its description.

    Raises ``ImportError`` if componentize-py or msgpack is missing or of another version,
    ``RuntimeError`` with componentize-py's output if the build fails or takes longer than
    :data:`BUILD_TIMEOUT`."""
    check_tools()
    directory.mkdir(parents=True, exist_ok=True)
    optional = [module for package in packages for module in package.modules]
    with tempfile.TemporaryDirectory(prefix="wasp-runner-") as work:
        app = Path(work) / "app"
        _stage(app, modules, optional, packages)
        wit = Path(work) / "wasp.wit"
        wit.write_text(_wasp.WIT, encoding="utf-8")
        partial = Path(work) / WASM
        command = [
            *_componentize_py(),
            "-d",
            str(wit),
            "-w",
            WORLD,
            "componentize",
            "wasp_runner",
            "-p",
            str(app),
            "-o",
            str(partial),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"building wasp's Python runner took longer than {BUILD_TIMEOUT:.0f} s"
            ) from None
        if done.returncode != 0:
            raise RuntimeError(
                f"building wasp's Python runner failed ({' '.join(command)}):\n"
                f"{done.stdout}{done.stderr}"
            )
        data = partial.read_bytes()
    manifest = {
        "key": key(modules, packages),
        "sha256": hashlib.sha256(data).hexdigest(),
        "modules": list(modules),
        "packages": {package.name: package.version for package in packages},
    }
    # Whole or not at all: another process may be looking for it.
    _write(directory / WASM, data)
    _write(directory / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def read_manifest(directory: Path) -> Optional[dict[str, Any]]:
    """The description of the runner in ``directory``, if there is one."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _write(path: Path, data: bytes) -> None:
    staged = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    staged.write_bytes(data)
    os.replace(staged, path)


def check_tools() -> None:
    """Raises ``ImportError`` unless the pinned componentize-py and msgpack are installed."""
    from importlib import metadata

    for package, pinned in (
        ("componentize-py", COMPONENTIZE_PY_VERSION),
        ("msgpack", MSGPACK_VERSION),
    ):
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            found = None
        if found != pinned:
            have = "is missing" if found is None else f"is {found}"
            raise ImportError(
                f"building wasp's Python runner needs {package}=={pinned} ({package} {have}): "
                f"pip install {package}=={pinned} msgpack=={MSGPACK_VERSION}"
            )


def _stage(
    app: Path, modules: Sequence[str], optional: Sequence[str], packages: Sequence[Package]
) -> None:
    """The runner's sources in ``app``: its program, the modules to import (``modules``
    must import; of ``optional``, the packages' modules, those that import), msgpack's
    pure-Python code (its C extension cannot run inside the sandbox), and the packages."""
    import msgpack  # type: ignore[import-untyped]

    app.mkdir()
    for source in sorted(_GUEST.glob("*.py")):
        shutil.copy(source, app / source.name)
    for name, source in _SHARED.items():
        shutil.copy(source, app / name)
    for stub in sorted((_GUEST / "stubs").glob("*.py")):
        shutil.copy(stub, app / stub.name)
    listed = "\n".join(f"    {name!r}," for name in modules)
    optional_listed = "\n".join(f"    {name!r}," for name in optional)
    (app / "wasp_runner_modules.py").write_text(
        '"""The modules the runner imports when built: all of MODULES, and those of\n'
        'OPTIONAL (the packages\' modules) that import."""\n\n'
        f"MODULES = (\n{listed}\n)\n\nOPTIONAL = (\n{optional_listed}\n)\n",
        encoding="utf-8",
    )
    source = Path(msgpack.__file__).parent
    target = app / "msgpack"
    target.mkdir()
    for file in source.glob("*.py"):
        shutil.copy(file, target / file.name)
    for package in packages:
        for name in package.files:
            destination = app / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(package.root / name, destination)
    # Python's import system notes the times of the files and directories it reads, and the
    # snapshot keeps them: one fixed time, so that the same inputs give the same bytes.
    for path in sorted(app.rglob("*"), reverse=True):
        os.utime(path, (STAGED_TIME, STAGED_TIME))
    os.utime(app, (STAGED_TIME, STAGED_TIME))


def _componentize_py() -> list[str]:
    """The componentize-py command of this interpreter's environment."""
    script = Path(sys.executable).parent / "componentize-py"
    if script.exists():
        return [str(script)]
    found = shutil.which("componentize-py")
    if found is None:
        raise ImportError(
            f"componentize-py=={COMPONENTIZE_PY_VERSION} is not installed "
            f"(pip install componentize-py=={COMPONENTIZE_PY_VERSION})"
        )
    return [found]
