"""wasp's Python runner: CPython in a WebAssembly component, which runs Python job functions
in the sandbox.

The runner is built once per machine, on first use (about 15 seconds), by componentize-py
from pinned versions (``componentize-py`` and ``msgpack``, dependencies of this package),
and kept in the cache directory (``~/.cache/wasp/python-runner``). Nodes need no Python at
all: a node receives the runner like any module, once, and keeps its compiled code on disk.

Only the standard modules in :data:`MODULES` exist inside the sandbox (they are imported
when the runner is built; the sandbox has no files to import others from)::

    python -m wasp.runner          # builds the runner if needed, prints its path

``WASP_PYTHON_RUNNER=/path/to/runner.wasm`` uses a runner built elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Optional

from .. import _wasp
from .._module import Module

#: The standard modules inside the sandbox: pure computation, no files, network, processes
#: or threads (``os`` and ``sys`` are there, and see an empty sandbox: no files,
#: environment or arguments). A job may import these (or name them in pp's ``modules``);
#: nothing else.
MODULES: tuple[str, ...] = (
    "abc",
    "array",
    "base64",
    "binascii",
    "bisect",
    "calendar",
    "cmath",
    "collections",
    "collections.abc",
    "colorsys",
    "contextlib",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fractions",
    "functools",
    "graphlib",
    "hashlib",
    "heapq",
    "hmac",
    "itertools",
    "json",
    "math",
    "numbers",
    "operator",
    "os",
    "pickle",
    "pprint",
    "random",
    "re",
    "statistics",
    "string",
    "struct",
    "sys",
    "textwrap",
    "time",
    "types",
    "typing",
    "unicodedata",
    "zlib",
)

#: What the runner is built with, pinned: the same inputs give the same runner.
COMPONENTIZE_PY_VERSION = "0.25.1"
MSGPACK_VERSION = "1.1.2"

#: The component's world, in the package's WIT (``runtime/wit/wasp.wit``).
WORLD = "python-runner"

#: The variable naming a runner built elsewhere.
RUNNER_VARIABLE = "WASP_PYTHON_RUNNER"

_GUEST = Path(__file__).parent / "guest"

#: The runner's program: its files, and the caller's module it shares (staged under the
#: name the runner imports it by).
_SHARED = {"wasp_factory.py": Path(__file__).parent.parent / "_ship" / "factory.py"}
_lock = threading.RLock()
_module: Optional[Module] = None
_available: Optional[frozenset[str]] = None


def cache_dir() -> Path:
    """Where built runners are kept: ``$XDG_CACHE_HOME/wasp/python-runner`` (by default
    ``~/.cache/wasp/python-runner``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "wasp" / "python-runner"


def build_key() -> str:
    """The identity of a runner build: a hash of everything that goes into it."""
    digest = hashlib.sha256()
    for part in (
        _wasp.WIT,
        *(source.read_text(encoding="utf-8") for source in _program()),
        repr(MODULES),
        COMPONENTIZE_PY_VERSION,
        MSGPACK_VERSION,
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _program() -> list[Path]:
    """The files of the runner's program, in a fixed order."""
    return [*sorted(_GUEST.glob("*.py")), *(_SHARED[name] for name in sorted(_SHARED))]


def path(build_if_missing: bool = True) -> Path:
    """The runner's ``.wasm``: ``WASP_PYTHON_RUNNER`` if set, else the one built on this
    machine (built now if missing, unless ``build_if_missing`` is false: then
    ``FileNotFoundError``)."""
    given = os.environ.get(RUNNER_VARIABLE, "").strip()
    if given:
        return Path(given)
    built = cache_dir() / f"runner-{build_key()}.wasm"
    if not built.exists():
        if not build_if_missing:
            raise FileNotFoundError(f"wasp's Python runner is not built yet ({built})")
        build(built)
    return built


def has_module(name: str) -> bool:
    """Whether the runner has module ``name`` (a job may import it, and values of its types
    may travel)."""
    return name in available_modules()


def available_modules() -> frozenset[str]:
    """Every module inside the runner: those of :data:`MODULES` and what they import.

    Read once per runner from the cache directory, where the first call on a machine
    writes what the runner itself reports (running it once, which also leaves its compiled
    code on disk for the first job)."""
    global _available
    with _lock:
        if _available is None:
            _available = _load_available()
        return _available


def _load_available() -> frozenset[str]:
    runner = _module_locked()
    manifest = cache_dir() / f"modules-{runner.hash[:32]}.txt"
    try:
        return frozenset(manifest.read_text(encoding="utf-8").split())
    except OSError:
        pass
    names = _ask_modules(runner)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    staged = manifest.with_suffix(f".tmp-{os.getpid()}")
    staged.write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    os.replace(staged, manifest)
    return frozenset(names)


def _ask_modules(runner: Module) -> list[str]:
    """The runner's ``sys.modules``, as it reports it (the request ``[0]``)."""
    server = _wasp.NativeServer(workers=1)
    try:
        job = server.submit(runner._native, "python", [0])
        assert job is not None
        job.wait(None)
        ok, payload, _, stderr, *_ = job.outcome()
    finally:
        server.close()
    if not ok:
        raise RuntimeError(f"wasp's Python runner did not start: {payload[1]}\n{stderr!r}")
    return [str(name) for name in payload]


def module() -> Module:
    """The runner as a :class:`wasp.Module` (loaded once per process, built if missing)."""
    with _lock:
        return _module_locked()


def _module_locked() -> Module:
    global _module
    if _module is None:
        _module = Module(path())
    return _module


def build(output: Path) -> None:
    """Builds the runner into ``output`` with componentize-py (about 15 seconds).

    Raises ``RuntimeError`` with componentize-py's output if the build fails, and
    ``ImportError`` if a pinned build dependency is missing or of another version."""
    _check_versions()
    output.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"wasp: building the Python runner (once per machine) into {output}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="wasp-runner-") as work:
        app = Path(work) / "app"
        _stage(app)
        wit = Path(work) / "wasp.wit"
        wit.write_text(_wasp.WIT, encoding="utf-8")
        partial = Path(work) / "runner.wasm"
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
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"building wasp's Python runner failed ({' '.join(command)}):\n"
                f"{done.stdout}{done.stderr}"
            )
        # Whole or not at all: another process may be looking for it.
        staged = output.with_suffix(f".tmp-{os.getpid()}")
        shutil.copyfile(partial, staged)
        os.replace(staged, output)


def _check_versions() -> None:
    from importlib import metadata

    for package, pinned in (
        ("componentize-py", COMPONENTIZE_PY_VERSION),
        ("msgpack", MSGPACK_VERSION),
    ):
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            raise ImportError(
                f"building wasp's Python runner needs {package}=={pinned} "
                f"(pip install {package}=={pinned})"
            ) from None
        if found != pinned:
            raise ImportError(
                f"building wasp's Python runner needs {package}=={pinned}, found {found} "
                f"(pip install {package}=={pinned})"
            )


def _stage(app: Path) -> None:
    """The runner's sources in ``app``: its program, the module list, and msgpack's
    pure-Python code (its C extension cannot run inside the sandbox)."""
    import msgpack

    app.mkdir()
    for source in sorted(_GUEST.glob("*.py")):
        shutil.copy(source, app / source.name)
    for name, source in _SHARED.items():
        shutil.copy(source, app / name)
    modules = "\n".join(f"    {name!r}," for name in MODULES)
    (app / "wasp_runner_modules.py").write_text(
        f'"""The modules the runner imports when built."""\n\nMODULES = (\n{modules}\n)\n',
        encoding="utf-8",
    )
    source = Path(msgpack.__file__).parent
    target = app / "msgpack"
    target.mkdir()
    for file in source.glob("*.py"):
        shutil.copy(file, target / file.name)


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
