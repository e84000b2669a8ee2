"""Where a module's code comes from, which decides how it reaches the sandbox.

- The caller's own modules (files of theirs: the script, ``mylib.py`` beside it, a project
  installed in editable mode) travel as source, definition by definition.
- Standard modules travel by name: the runner has its own copy (if it was built with it).
- Installed distributions (anything under a ``site-packages``) travel by name too, and only
  if the runner was built with them (``packages=``); otherwise they are refused at submit.
"""

from __future__ import annotations

import enum
import os
import sys
import sysconfig
import types
from functools import lru_cache
from typing import Optional


class Origin(enum.Enum):
    """How a module reaches the sandbox."""

    #: The caller's own code: its definitions travel as source.
    USER = "user"
    #: Referred to by name: the runner imports its own copy.
    BY_NAME = "by name"


def _stdlib_names() -> frozenset[str]:
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return frozenset(names)
    # Python 3.9: the standard library is what lives in its directory.
    return frozenset()


_STDLIB = _stdlib_names()


def top_name(name: str) -> str:
    """``"a"`` for ``"a.b.c"``."""
    return name.partition(".")[0]


def is_standard(name: str) -> bool:
    """Whether ``name`` is a module of Python's standard library."""
    top = top_name(name)
    if top in _STDLIB:
        return True
    module = sys.modules.get(name)
    return module is not None and _in_stdlib_dir(getattr(module, "__file__", None))


def origin(module: types.ModuleType) -> Origin:
    """How ``module`` reaches the sandbox."""
    return _origin_of(module.__name__, getattr(module, "__file__", None))


@lru_cache(maxsize=4096)
def _origin_of(name: str, file: Optional[str]) -> Origin:
    if name == "__main__":
        return Origin.USER
    if is_standard(name) or file is None:
        return Origin.BY_NAME
    if _installed(file) or not file.endswith(".py"):
        return Origin.BY_NAME
    return Origin.USER


def _installed(file: str) -> bool:
    parts = os.path.normpath(file).split(os.sep)
    return "site-packages" in parts or "dist-packages" in parts


def _in_stdlib_dir(file: Optional[str]) -> bool:
    if not file:
        return False
    stdlib = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
    path = os.path.realpath(file)
    for key in ("stdlib", "platstdlib"):
        root = os.path.realpath(stdlib[key])
        if path.startswith(root + os.sep) and not _installed(path):
            return True
    return False


def is_user_module(name: str) -> bool:
    """Whether the loaded module ``name`` is the caller's own (travels as source)."""
    module = sys.modules.get(name)
    return module is not None and origin(module) is Origin.USER
