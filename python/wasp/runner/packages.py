"""The caller's packages inside the sandbox: installed pure-Python distributions, named or
listed in a requirements file, with what they require, baked into a runner of their own.

A distribution with compiled code (a ``.so``, a ``.pyd``) cannot run inside the sandbox
(CPython in WebAssembly loads no native extensions): it is refused here, naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Optional, Union

from .componentize import Package

#: Files that are compiled code.
_NATIVE = (".so", ".pyd", ".dylib", ".dll")

#: Directories of a package that are its tests, not imported at build.
_TESTS = frozenset({"tests", "test", "testing", "conftest"})

#: What a requirement's name ends at: a version, extras, a marker, a URL.
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PackageError(ValueError):
    """A package that cannot go into the sandbox (not installed, or compiled code)."""


PackagesArg = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]]


def resolve(packages: PackagesArg) -> tuple[Package, ...]:
    """The distributions ``packages`` names (names, or paths of requirements files), with
    those they require, in a fixed order.

    Raises :class:`PackageError` for a distribution that is not installed or holds
    compiled code."""
    if isinstance(packages, (str, os.PathLike)):
        packages = [packages]
    wanted: list[str] = []
    for entry in packages:
        text = os.fspath(entry)
        if os.path.isfile(text) or text.endswith(".txt"):
            wanted += _requirements(Path(text))
        else:
            wanted.append(text)
    found: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, Optional[str]]] = [(name, None) for name in wanted]
    while pending:
        name, needed_by = pending.pop(0)
        canonical = _canonical(name)
        if canonical in found:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            because = f" (required by {needed_by})" if needed_by else ""
            raise PackageError(
                f"package {name!r}{because} is not installed here: pip install {name}, then "
                "wasp bakes it into the runner"
            ) from None
        found[canonical] = distribution
        for requirement in distribution.requires or ():
            if _applies(requirement):
                match = _NAME.match(requirement)
                if match:
                    pending.append((match.group(1), distribution.metadata["Name"]))
    return tuple(_package(found[name]) for name in sorted(found))


def _requirements(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise PackageError(f"cannot read the requirements file {path}: {error}") from None
    names = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _NAME.match(line)
        if match:
            names.append(match.group(1))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(requirement: str) -> bool:
    """Whether a requirement applies here: not an extra's, and its marker holds."""
    if ";" not in requirement:
        return True
    marker = requirement.split(";", 1)[1]
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:  # without packaging, markers that name no extra are taken
        return True
    return bool(Marker(marker).evaluate())


def _package(distribution: metadata.Distribution) -> Package:
    name = distribution.metadata["Name"]
    files = [Path(str(file)) for file in distribution.files or ()]
    native = next((file for file in files if file.suffix in _NATIVE), None)
    if native is not None:
        raise PackageError(
            f"package {name!r} holds compiled code ({native}), which cannot run inside the "
            "sandbox (CPython in WebAssembly loads no native extensions): use a pure-Python "
            "package, or compute that part here and pass its result to the job"
        )
    root = Path(str(distribution.locate_file("")))
    code = [
        str(file)
        for file in files
        if not file.is_absolute()
        and ".." not in file.parts
        and not file.parts[0].endswith((".dist-info", ".egg-info", ".data"))
        and file.parts[0] != "__pycache__"
        and "__pycache__" not in file.parts
        and file.suffix not in (".pyc",)
        and (root / file).is_file()
    ]
    return Package(
        name=name,
        version=distribution.version,
        root=root,
        files=tuple(sorted(code)),
        modules=tuple(_modules(code)),
    )


def _modules(files: list[str]) -> list[str]:
    """The modules to import when the runner is built: every module of the package but its
    tests (only what is imported then exists inside the sandbox)."""
    modules = []
    for file in files:
        path = Path(file)
        if path.suffix != ".py" or _TESTS & set(path.parts) or path.stem.startswith("test_"):
            continue
        parts = list(path.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and all(part.isidentifier() for part in parts):
            modules.append(".".join(parts))
    return sorted(set(modules), key=lambda name: (name.count("."), name))
