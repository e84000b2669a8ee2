"""``Module``: a WebAssembly module of jobs, and ``JobRef``: one of its jobs."""

from __future__ import annotations

import os
from typing import Optional, Union

from . import _wasp


class Module:
    """A WebAssembly module of wasp jobs (built with the wasp-guest SDK, ``wasp build``).

    Loading checks the module (valid WebAssembly, the wasp ABI, no imports beyond the
    sandbox's) without compiling it: a server compiles it once, on first use, and keeps the
    compiled code on disk. Each job the module exports is an attribute::

        module = wasp.Module("sum_primes_guest.wasm")
        job = module.sum_primes          # a JobRef, to submit

    ``source`` may also name a module in an OCI registry, ``"oci://host[:port]/repository[:tag]"``
    or ``"...@sha256:<digest>"``: it is pulled (see ``Module.pull``).

    Raises ``OSError`` if the file cannot be read, ``ValueError`` if it is not a wasp module.
    """

    __slots__ = ("_native",)

    def __init__(self, source: Union[str, os.PathLike[str], bytes]) -> None:
        if isinstance(source, str) and source.startswith("oci://"):
            self._native = _wasp.NativeModule.pull(source)
        else:
            self._native = _wasp.NativeModule(source)

    @classmethod
    def _of_wasp(cls, path: Union[str, os.PathLike[str]]) -> Module:
        """A module wasp built (its Python runner), whose function bodies are validated when
        it is compiled rather than now: most of a 21 MB component's load, and code compiled
        from it is kept on disk, so a new process would redo it for nothing. All else is
        checked as for any module."""
        module = cls.__new__(cls)
        module._native = _wasp.NativeModule(path, True)
        return module

    @classmethod
    def pull(cls, reference: str, *, token: Optional[str] = None) -> Module:
        """Pulls the module ``reference`` names from an OCI registry.

        ``reference`` is ``"oci://host[:port]/repository[:tag]"`` (tag ``latest`` if none) or
        ``"...@sha256:<digest>"``. The registry is asked with ``token`` if given, else the
        token in ``WASP_REGISTRY_TOKEN``, else the credentials ``docker login`` or ``podman
        login`` saved. Plain HTTP is used only for registries on this machine. The layer's
        digest is checked as it arrives, then the module is loaded as from a file. Nodes that
        pull from that registry themselves (``wasp node --pull-from``) are told where the
        module is instead of being sent it.

        Raises ``FileNotFoundError`` (no such repository, tag or digest),
        ``PermissionError`` (credentials refused), ``ConnectionError`` (registry
        unreachable), ``ValueError`` (a malformed reference, not a wasm module artifact,
        bytes that do not match their digest, not a wasp module), ``OSError`` (other
        registry errors).
        """
        module = cls.__new__(cls)
        module._native = _wasp.NativeModule.pull(reference, token)
        return module

    @property
    def source(self) -> Optional[str]:
        """Where the module was pulled from, pinned by digest
        (``"host[:port]/repository@sha256:..."``), or None for a module from a file."""
        return self._native.source

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
