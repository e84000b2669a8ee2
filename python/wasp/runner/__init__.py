"""wasp's Python runner: CPython in a WebAssembly component, which runs Python job functions
in the sandbox.

The runner ships prebuilt inside the package (``wasp/runner/runner.wasm``, with
``runner.json`` saying what it is): installing needs no build, and a machine's first Python
job costs only its compilation (seconds, once per machine: the compiled code is kept on
disk). A ``Client`` with local workers starts that compilation in the background when it is
made; ``python -m wasp.runner`` does it ahead. Nodes need no Python at all: a node receives
the runner like any module, once, and keeps its compiled code on disk.

Only the standard modules in :data:`MODULES` (and what they import) exist inside the
sandbox: they are imported when the runner is built, and the sandbox has no files to import
others from. ``Client(packages=[...])`` bakes installed pure-Python packages into a runner of
their own (built once per machine with componentize-py, kept in the cache directory)::

    python -m wasp.runner                      # the runner's path, compiled ahead
    python -m wasp.runner --packages sympy     # a runner with sympy (and mpmath)
    python -m wasp.runner build DIR            # builds the default runner into DIR

``WASP_PYTHON_RUNNER=/path/to/runner.wasm`` uses a runner built elsewhere.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from .. import _wasp
from .._module import JobRef, Module
from . import componentize as _build
from .packages import PackageError, PackagesArg, resolve

#: The standard modules inside the sandbox: pure computation, no files, network, processes
#: or threads (``os`` and ``sys`` are there, and see an empty sandbox: no files,
#: environment or arguments). A job may import these (or name them in pp's ``modules``);
#: nothing else, but the packages of a runner with packages.
MODULES: tuple[str, ...] = (
    "abc",
    "argparse",
    "array",
    "ast",
    "base64",
    "binascii",
    "bisect",
    "bz2",
    "calendar",
    "cmath",
    "codecs",
    "collections",
    "collections.abc",
    "colorsys",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "dis",
    "enum",
    "fnmatch",
    "fractions",
    "functools",
    "graphlib",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "logging",
    "math",
    "numbers",
    "operator",
    "os",
    "pathlib",
    "pickle",
    "pprint",
    "queue",
    "random",
    "re",
    "reprlib",
    "secrets",
    "shlex",
    "statistics",
    "string",
    "struct",
    "sys",
    "textwrap",
    "threading",
    "time",
    "timeit",
    "tokenize",
    "tomllib",
    "traceback",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib.parse",
    "uuid",
    "warnings",
    "weakref",
    "zlib",
)

#: The variable naming a runner built elsewhere.
RUNNER_VARIABLE = "WASP_PYTHON_RUNNER"

#: The prebuilt runner's directory: the package's own.
PACKAGED = Path(__file__).parent

#: Where the x86-64 wheel ships the prebuilt runner's code, compiled ahead for the
#: architecture's baseline (``wasp precompile``): a server loads it rather than compile the
#: runner on a fresh machine (a CPU without the baseline's features compiles it as before).
SHIPPED_CODE = PACKAGED / "code"


def native_server(**settings: Any) -> _wasp.NativeServer:
    """A native server with ``settings`` that loads the shipped code (``SHIPPED_CODE``),
    trusted as far as the package's own extension module (a package installed under
    ``umask 002`` is writable by its owner's group, extension and code alike)."""
    return _wasp.NativeServer(
        shipped_code_dir=str(SHIPPED_CODE), shipped_with=str(_wasp.__file__), **settings
    )


COMPONENTIZE_PY_VERSION = _build.COMPONENTIZE_PY_VERSION
MSGPACK_VERSION = _build.MSGPACK_VERSION

__all__ = [
    "MODULES",
    "PACKAGED",
    "RUNNER_VARIABLE",
    "SHIPPED_CODE",
    "PackageError",
    "PackagesArg",
    "Runner",
    "available_modules",
    "build",
    "cache_dir",
    "get",
    "has_module",
    "module",
    "path",
    "prepare",
    "resolve",
]

_lock = threading.RLock()


class Runner:
    """One runner: its file, its module (loaded once), the modules inside it."""

    def __init__(self, wasm: Path, manifest: Optional[dict[str, Any]]) -> None:
        #: The component's file.
        self.wasm = wasm
        #: What ``runner.json`` says of it (``None`` for a runner given by path alone).
        self.manifest = manifest
        self._module: Optional[Module] = None
        self._job: Optional[JobRef] = None
        self._available: Optional[frozenset[str]] = None
        self._lock = threading.Lock()

    def module(self) -> Module:
        """The runner as a :class:`wasp.Module` (read and checked once)."""
        found = self._module
        if found is not None:
            return found  # every Python job's path, once read
        with self._lock:
            if self._module is None:
                self._module = Module._of_wasp(self.wasm)
            return self._module

    def job(self) -> JobRef:
        """The runner's job function, which runs every Python call."""
        found = self._job
        if found is None:
            found = self._job = JobRef(self.module(), "python")
        return found

    def available(self) -> frozenset[str]:
        """Every module inside the runner."""
        if self._available is None:
            listed = (self.manifest or {}).get("available")
            if isinstance(listed, list):
                self._available = frozenset(map(str, listed))
            else:
                self._available = frozenset(_ask(self.module())[0])
        return self._available

    def has_module(self, name: str) -> bool:
        """Whether module ``name`` is inside the runner."""
        return name in self.available()


#: Runners found or built in this process, by the packages asked for.
_runners: dict[tuple[str, ...], Runner] = {}


def cache_dir() -> Path:
    """Where runners built on this machine are kept: ``$XDG_CACHE_HOME/wasp/python-runner``
    (by default ``~/.cache/wasp/python-runner``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "wasp" / "python-runner"


def get(packages: PackagesArg = ()) -> Runner:
    """The runner with ``packages``: the one ``WASP_PYTHON_RUNNER`` names (without
    packages), the packaged one, or one built on this machine (built now if missing).
    Raises :class:`PackageError` for packages that cannot go into the sandbox."""
    asked = _asked(packages)
    with _lock:
        found = _runners.get(asked)
        if found is None:
            found = _runners[asked] = _locate(resolve(asked) if asked else ())
        return found


def _asked(packages: PackagesArg) -> tuple[str, ...]:
    if isinstance(packages, (str, os.PathLike)):
        return (os.fspath(packages),)
    return tuple(os.fspath(package) for package in packages)


def _locate(packages: tuple[_build.Package, ...]) -> Runner:
    given = os.environ.get(RUNNER_VARIABLE, "").strip()
    if given and not packages:
        wasm = Path(given)
        return Runner(wasm, _build.read_manifest(wasm.parent) if wasm.name == _build.WASM else None)
    key = _build.key(MODULES, packages)
    if not packages:
        manifest = _build.read_manifest(PACKAGED)
        if (
            manifest is not None
            and manifest.get("key") == key
            and (PACKAGED / _build.WASM).exists()
        ):
            return Runner(PACKAGED / _build.WASM, manifest)
    directory = cache_dir() / key
    manifest = _build.read_manifest(directory)
    if manifest is None or manifest.get("key") != key:
        what = "with " + ", ".join(p.name for p in packages) if packages else "(no prebuilt one)"
        print(
            f"wasp: building a Python runner {what} into {directory} (once per machine)",
            file=sys.stderr,
        )
        manifest = build(directory, packages)
    return Runner(directory / _build.WASM, manifest)


def build(directory: Path, packages: tuple[_build.Package, ...] = ()) -> dict[str, Any]:
    """Builds a runner into ``directory`` (see :mod:`wasp.runner.componentize`), asks it which
    modules it holds, and compiles it on this machine (its code kept in the disk cache);
    returns its description."""
    manifest = _build.build(directory, MODULES, packages)
    runner = Module(directory / _build.WASM)
    available, unimported = _ask(runner)
    manifest["available"] = sorted(available)
    manifest["unimported"] = unimported
    missing = [p.name for p in packages if not any(m in available for m in p.modules[:1])]
    if missing:
        first = next(iter(unimported.items()), ("", ""))
        raise PackageError(
            f"package(s) {', '.join(missing)} do not import inside the sandbox ({first[0]}: "
            f"{first[1]}): they need what the sandbox lacks"
        )
    _build._write(directory / _build.MANIFEST, _json(manifest))
    return manifest


def _json(manifest: dict[str, Any]) -> bytes:
    import json

    return json.dumps(manifest, indent=1).encode()


def path(packages: PackagesArg = ()) -> Path:
    """The runner's ``.wasm`` (with ``packages``: a runner of its own, built if missing).
    Raises :class:`PackageError` for packages that cannot go into the sandbox."""
    return get(packages).wasm


def module(packages: PackagesArg = ()) -> Module:
    """The runner as a :class:`wasp.Module` (loaded once per process)."""
    return get(packages).module()


def has_module(name: str, packages: PackagesArg = ()) -> bool:
    """Whether the runner has module ``name`` (a job may import it, and values of its types
    may travel)."""
    return name in available_modules(packages)


def available_modules(packages: PackagesArg = ()) -> frozenset[str]:
    """Every module inside the runner: those of :data:`MODULES`, what they import, and the
    packages'."""
    return get(packages).available()


def prepare(packages: PackagesArg = ()) -> Path:
    """Compiles the runner on this machine now, into the disk cache (or finds it compiled
    there, or shipped with the package: ``SHIPPED_CODE``): a first Python job then costs no
    compilation. Returns the runner's path."""
    runner = get(packages)
    server = native_server(workers=1)
    try:
        server.prepare(runner.module()._native)
    finally:
        server.close()
    return runner.wasm


def _ask(runner: Module) -> tuple[list[str], dict[str, str]]:
    """The runner's ``sys.modules``, and the packages' modules that did not import when it
    was built (and why), as it reports them (the request ``[0]``)."""
    server = native_server(workers=1)
    try:
        job = server.submit(runner._native, "python", [0])
        assert job is not None
        job.wait(None)
        ok, payload, _, stderr, *_ = job.outcome()
    finally:
        server.close()
    if not ok:
        raise RuntimeError(f"wasp's Python runner did not start: {payload[1]}\n{stderr!r}")
    modules, unimported = payload
    return [str(name) for name in modules], {str(k): str(v) for k, v in unimported.items()}
