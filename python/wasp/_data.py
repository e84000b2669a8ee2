"""Values put once (``Client.put``) and jobs' results taken by other jobs: what a job's
arguments may hold besides values.

A :class:`Ref` stands for a value put once on a client: its bytes are hashed (blake3),
kept by the client, and sent to a node once, when the first job that takes it goes there;
every job that takes it carries 43 bytes in its arguments, not the value. A job's future
(``WaspFuture``, pp's ``Job``) given as an argument stands for that job's result: the job
that takes it waits, queued on the server and not in the caller, until that job has
finished, and fails with :class:`~wasp.DependencyFailed` if it failed or was cancelled.

For a Python function, each of these travels pickled as ``wasp_runner_bundle.taken(i)``:
the call's arguments end with a list of ``[how, reference]``, which the server replaces
with the values themselves (see ``wasp_proto::refs``), and the runner reads item ``i``
when the call is unpickled (``how``: :data:`PICKLED`, :data:`PLAIN`, :data:`PYTHON`). For
a module's job, the reference is the argument itself (a value put with
``encoding="msgpack"`` or as ``bytes``, or a job's future).
"""

from __future__ import annotations

from typing import Any, Optional

from . import _wasp
from ._ship.walk import TAKEN

#: How the runner reads a taken value: a pickle (a value put by ``put(value)``), plain
#: MessagePack (bytes, ``encoding="msgpack"``, a module's job's result), or a Python
#: function's result (MessagePack with ``wasp_runner_codec``'s extension types).
PICKLED, PLAIN, PYTHON = 0, 1, 2

#: How a value is put: ``put``'s ``encoding``.
ENCODINGS = ("pickle", "msgpack", "bytes")


class Ref:
    """A value put once on a client (``Client.put``, pp's ``Server.put``), to pass to as
    many of its jobs as need it, as an argument or anywhere inside one (a list, a dict, an
    object's attribute).

    The value was encoded once, when it was put: as a pickle (the default; inside the
    sandbox the job gets an equal value of the same type), as MessagePack
    (``encoding="msgpack"``, the values a module's job reads), or, for ``bytes``, as they
    are. Keep the ``Ref`` while jobs are being submitted with it: the client keeps the
    value while a ``Ref`` or an unfinished job holds it.

    ``hash`` is the blake3 hash of the encoded bytes (hex), ``size`` their length.
    """

    __slots__ = ("__weakref__", "_encoding", "_native", "_needs", "_owner")

    def __init__(
        self,
        native: _wasp.NativeRef,
        owner: object,
        encoding: str,
        needs: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._native = native
        #: The server the value was put on (its jobs only may take it).
        self._owner = owner
        self._encoding = encoding
        #: The caller's globals (module, name) the value's pickle refers to (its classes).
        self._needs = needs

    @property
    def hash(self) -> str:
        """The blake3 hash of the value's encoded bytes, in hex."""
        return self._native.hash

    @property
    def size(self) -> int:
        """The size of the value's encoded bytes."""
        return self._native.size

    @property
    def encoding(self) -> str:
        """How the value was encoded: ``"pickle"``, ``"msgpack"`` or ``"bytes"``."""
        return self._encoding

    @property
    def _wasp_native(self) -> _wasp.NativeRef:
        """The native reference, for a module's job's arguments (``values/encode.rs``)."""
        if self._encoding == "pickle":
            raise TypeError(
                "a value put pickled cannot be read by a module's job: put it with "
                "encoding='msgpack' (or as bytes)"
            )
        return self._native

    def _wasp_take(self) -> tuple[int, Any, tuple[tuple[str, str], ...], object]:
        """How a Python function's call takes it: (how, native, needs, owner)."""
        how = PICKLED if self._encoding == "pickle" else PLAIN
        return how, self._native, self._needs, self._owner

    def __reduce__(self) -> Any:
        raise TypeError(
            "a wasp.Ref cannot be pickled: it stands for a value on its client; pass it to "
            "that client's jobs"
        )

    def __repr__(self) -> str:
        return f"<wasp.Ref {self.hash[:12]} {self.size} bytes, {self._encoding}>"


TAKEN.add(Ref)


def take_job(submitted: Any, owner: object) -> tuple[int, Any, tuple[tuple[str, str], ...], object]:
    """How a Python function's call takes the result of job ``submitted`` (a
    ``_core.Submitted``): a Python function's result is read with its classes."""
    classes: Optional[frozenset[tuple[str, str]]] = submitted.classes
    if classes is None:
        return PLAIN, submitted.native, (), owner
    return PYTHON, submitted.native, tuple(sorted(classes)), owner


__all__ = ["ENCODINGS", "PICKLED", "PLAIN", "PYTHON", "Ref", "take_job"]
