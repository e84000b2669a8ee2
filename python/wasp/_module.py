"""``Module``: a WebAssembly module of jobs, and ``JobRef``: one of its jobs."""

from __future__ import annotations

import os
from typing import Union

from . import _wasp


class Module:
    """A WebAssembly module of wasp jobs (built with the wasp-guest SDK, ``wasp build``).

    Loading checks the module (valid WebAssembly, the wasp ABI, no imports beyond the
    sandbox's) without compiling it: a server compiles it once, on first use, and keeps the
    compiled code on disk. Each job the module exports is an attribute::

        module = wasp.Module("sum_primes_guest.wasm")
        job = module.sum_primes          # a JobRef, to submit

    Raises ``OSError`` if the file cannot be read, ``ValueError`` if it is not a wasp module.
    """

    __slots__ = ("_native",)

    def __init__(self, source: Union[str, os.PathLike[str], bytes]) -> None:
        self._native = _wasp.NativeModule(source)

    @property
    def jobs(self) -> list[str]:
        """The names of the jobs the module exports, sorted."""
        return self._native.jobs

    @property
    def hash(self) -> str:
        """The module's identity: the blake3 hash of its bytes, in hex."""
        return self._native.hash

    def job(self, name: str) -> JobRef:
        """The job ``name`` (for names that are not identifiers, or are a method's)."""
        if name not in self._native.jobs:
            raise AttributeError(
                f"module {self.hash[:12]} has no job {name!r} (it has: "
                f"{', '.join(self._native.jobs)})"
            )
        return JobRef(self, name)

    def __getattr__(self, name: str) -> JobRef:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.job(name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._native.jobs})

    def __repr__(self) -> str:
        return f"<wasp.Module {self.hash[:12]} jobs={self._native.jobs}>"


class JobRef:
    """A job of a module: what ``submit`` takes (``module.sum_primes``)."""

    __slots__ = ("module", "name")

    def __init__(self, module: Module, name: str) -> None:
        self.module = module
        self.name = name

    def __repr__(self) -> str:
        return f"<wasp job {self.name} of module {self.module.hash[:12]}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, JobRef)
            and other.name == self.name
            and other.module.hash == self.module.hash
        )

    def __hash__(self) -> int:
        return hash((self.module.hash, self.name))
