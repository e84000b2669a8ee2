"""On the caller: a Python function's result and exception, built from untrusted data.

A result is decoded by ``python/src/values.rs`` into plain types; an instance of one of the
caller's classes is built here, and only if its class travelled with the job (a hostile job
cannot make the caller build anything else), without running its ``__init__`` (as pickle
does not). A job's exception comes back described (see ``wasp_runner._failure``): the caller
raises an exception of the same class where it has it (one of its own that travelled, or a
built-in), that is also a :class:`wasp.JobFailed`, with the same arguments and attributes,
and the sandbox's traceback as its cause.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import dataclasses
import enum
import sys
import threading
from typing import Any, Callable, Optional

from .. import _wasp
from .._errors import JobExited, JobFailed, RemoteTraceback

#: What separates a failed call's traceback from the description of its exception.
MARKER = "\n\x1ewasp-exception "

#: Classes (by module and top-level name) that travelled with a job.
Classes = frozenset[tuple[str, str]]

_MISSING = object()


def instance_builder(classes: Classes) -> Callable[[str, str, int, Any], Any]:
    """What builds, for ``values.rs``, the instances of the caller's classes a result holds:
    only of ``classes``."""

    def build(module: str, qualname: str, kind: int, state: Any) -> Any:
        cls = _class_of(classes, module, qualname)
        if cls is None or not isinstance(cls, type):
            raise TypeError(
                f"the result holds an instance of {module}.{qualname}, a class that did not "
                "travel with the job"
            )
        return _BUILDERS.get(kind, _unknown)(cls, state)

    return build


def _class_of(classes: Classes, module: str, qualname: str) -> Any:
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    if (module, qualname.partition(".")[0]) not in classes:
        return None
    value: Any = sys.modules.get(module)
    for part in qualname.split("."):
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            return None
    return value


def _dataclass(cls: type, state: Any) -> Any:
    if not dataclasses.is_dataclass(cls) or not isinstance(state, dict):
        raise TypeError(f"the result's {cls.__qualname__} is not a dataclass as it is here")
    names = [field.name for field in dataclasses.fields(cls)]
    if set(state) != set(names):
        raise TypeError(f"the result's {cls.__qualname__} has other fields than it has here")
    instance = cls.__new__(cls)
    for name in names:
        object.__setattr__(instance, name, state[name])
    return instance


def _namedtuple(cls: type, state: Any) -> Any:
    fields = getattr(cls, "_fields", None)
    if not issubclass(cls, tuple) or fields is None or not isinstance(state, list):
        raise TypeError(f"the result's {cls.__qualname__} is not a namedtuple as it is here")
    if len(state) != len(fields):
        raise TypeError(f"the result's {cls.__qualname__} has other fields than it has here")
    return tuple.__new__(cls, state)


def _enum(cls: type, state: Any) -> Any:
    if not issubclass(cls, enum.Enum) or not isinstance(state, list) or len(state) != 2:
        raise TypeError(f"the result's {cls.__qualname__} is not an enum as it is here")
    name, value = state
    member = cls.__members__.get(name) if isinstance(name, str) else None
    if member is not None:
        return member
    try:
        return cls(value)  # a combination of flags
    except (ValueError, TypeError):
        raise TypeError(f"{cls.__qualname__} has no member {name!r} here") from None


def _object(cls: type, state: Any) -> Any:
    if not _plain(cls) or not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise TypeError(f"the result's {cls.__qualname__} is not a plain class as it is here")
    instance = object.__new__(cls) if cls.__new__ is object.__new__ else cls.__new__(cls)
    if hasattr(instance, "__dict__"):
        vars(instance).update(state)
    else:
        for name, value in state.items():
            object.__setattr__(instance, name, value)
    return instance


def _unknown(cls: type, state: Any) -> Any:
    raise TypeError(f"the result holds a {cls.__qualname__} of an unknown kind")


_BUILDERS: dict[int, Callable[[type, Any], Any]] = {
    0: _dataclass,
    1: _namedtuple,
    2: _enum,
    3: _object,
}


def _plain(cls: type) -> bool:
    """Whether instances of ``cls`` are plain objects: their state is their attributes."""
    for base in cls.__mro__[1:]:
        if base is object:
            return True
        if base.__module__ == "builtins" and not issubclass(base, BaseException):
            return False
    return True


# Exceptions.

#: Built-in exceptions a job's exception is never made into: raising them on the caller
#: would stop its program or its loops.
_NOT_RAISED = (SystemExit, KeyboardInterrupt, GeneratorExit, StopIteration, StopAsyncIteration)

#: How wasp words a failed job's message before the job's own text.
_FAILED = "job failed: "

_combined: dict[type, type] = {}
_combined_lock = threading.Lock()


def failed(
    message: str, stdout: bytes, stderr: bytes, worker: str, classes: Classes
) -> BaseException:
    """The exception for a Python function job that raised: see the module's doc."""
    text, marker, described = message.partition(MARKER)
    text = text[len(_FAILED) :] if text.startswith(_FAILED) else text
    if not marker:
        return JobFailed(message, stdout=stdout, stderr=stderr, worker=worker)
    try:
        fields = _wasp.decode_value(base64.b64decode(described), None)
        module, qualname, builtin, args, state, shown, status = fields
    except (ValueError, TypeError, binascii.Error):
        return JobFailed(text, stdout=stdout, stderr=stderr, worker=worker)
    if status is not None:
        return JobExited(
            f"the job called sys.exit({status})\n{text}",
            stdout=stdout,
            stderr=stderr,
            worker=worker,
            status=status,
        )
    cls = _exception_class(classes, module, qualname, builtin)
    combined = _with_job_failed(cls)
    error: Any = combined.__new__(combined)
    error.args = _decoded(args, classes, tuple) or (shown,)
    attributes = _decoded(state, classes, dict)
    if attributes:
        with contextlib.suppress(TypeError):
            vars(error).update(attributes)
    error.message = text
    error.traceback = text
    error.stdout = stdout
    error.stderr = stderr
    error.worker = worker
    error.__cause__ = RemoteTraceback(text)
    return error


def _decoded(data: Any, classes: Classes, kind: type) -> Any:
    if not isinstance(data, bytes):
        return None
    try:
        value = _wasp.decode_value(data, instance_builder(classes))
    except (ValueError, TypeError):
        return None
    if kind is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    return value if isinstance(value, kind) else None


def _exception_class(classes: Classes, module: Any, qualname: Any, builtin: Any) -> type:
    """The caller's class of a job's exception: its own (if it travelled), else the
    built-in one it derives from, else ``Exception``."""
    found = _class_of(classes, module, qualname)
    if isinstance(found, type) and issubclass(found, BaseException):
        cls = found
    elif module == "builtins" and isinstance(getattr(builtins, str(qualname), None), type):
        cls = getattr(builtins, str(qualname))
    else:
        cls = getattr(builtins, str(builtin), Exception)
    if (
        not isinstance(cls, type)
        or not issubclass(cls, BaseException)
        or issubclass(cls, _NOT_RAISED)
    ):
        return Exception
    return cls


def _with_job_failed(cls: type) -> type:
    """``cls`` that is also a ``JobFailed`` (made once per class)."""
    if cls is Exception:
        return JobFailed
    with _combined_lock:
        combined = _combined.get(cls)
        if combined is None:
            try:
                combined = type(
                    cls.__name__,
                    (cls, JobFailed),
                    {
                        "__module__": cls.__module__,
                        "__qualname__": cls.__qualname__,
                        "__doc__": cls.__doc__,
                        "__reduce__": _reduce_as(cls),
                        "__str__": cls.__str__,
                    },
                )
            except TypeError:  # a layout that cannot be combined: JobFailed alone
                combined = JobFailed
            _combined[cls] = combined
        return combined


def _reduce_as(cls: type) -> Callable[[BaseException], Any]:
    def reduce(self: BaseException) -> Any:
        # Pickled, it is the job's exception class again (this class exists only here).
        return cls, self.args, dict(vars(self))

    return reduce


def is_python_failure(message: Optional[str]) -> bool:
    """Whether a failed job's message describes a Python exception."""
    return isinstance(message, str) and MARKER in message
