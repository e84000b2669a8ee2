"""The exceptions wasp raises.

A job that produced no result raises a :class:`JobError`, one subclass per way a job can
end, each carrying what the job printed (``stdout``, ``stderr``), where it ran (``worker``)
and the fields of its kind (a timeout's ``timeout``, a refused limit's ``limit``...).
Configuration errors are ``ValueError`` (a bad setting) and ``OSError`` (a file that
cannot be read), with wasp's own message.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, ClassVar


class WaspError(Exception):
    """Anything wasp raises that is not a ``ValueError``, ``OSError`` or ``TypeError``."""


class JobError(WaspError):
    """A job produced no result.

    Attributes:
        stdout: what the job wrote to its standard output (bytes, bounded).
        stderr: what it wrote to its standard error (bytes, bounded).
        worker: where it ran (``"local/0"``, ``"node 10.0.0.5:7878"``; empty if it never
            ran).
        kind: the kind of failure, as wasp names it (``"timeout"``, ``"panic"``...).
    """

    kind: ClassVar[str] = "job_error"

    def __init__(
        self,
        message: str,
        *,
        stdout: bytes = b"",
        stderr: bytes = b"",
        worker: str = "",
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stdout = stdout
        self.stderr = stderr
        self.worker = worker
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def output(self) -> str:
        """What the job printed, stdout then stderr, as text."""
        text = (self.stdout + self.stderr).decode("utf-8", "replace")
        return text


class JobFailed(JobError):
    """The job returned an error (a Rust ``Err``; in Python jobs, an exception).

    A Python function's exception is raised as an exception of its own class that is also
    a ``JobFailed``: ``except ValueError`` catches a job's ``ValueError`` (or a subclass of
    the caller's), with its arguments and attributes; ``traceback`` is the sandbox's
    traceback (also the exception's ``__cause__``, so an uncaught one shows it)."""

    kind = "failed"
    traceback: str = ""


class RemoteTraceback(Exception):
    """The traceback of an exception raised inside the sandbox (the cause of the exception
    the caller sees)."""

    def __init__(self, traceback: str) -> None:
        super().__init__(traceback)
        self.traceback = traceback

    def __str__(self) -> str:
        return self.traceback


class JobPanicked(JobError):
    """The job panicked; the message is the panic's."""

    kind = "panic"


class JobTrapped(JobError):
    """The job trapped (``trap``: stack overflow, out-of-bounds access...)."""

    kind = "trap"
    trap: str


class JobTimeout(JobError, TimeoutError):
    """The job ran past its wall-clock ``timeout`` (seconds) and was stopped (also a
    ``TimeoutError``)."""

    kind = "timeout"
    timeout: float


class JobMemoryLimit(JobError):
    """The job tried to grow its memory past ``limit`` bytes."""

    kind = "memory_limit"
    limit: int


class JobOutputLimit(JobError):
    """The job wrote more than ``limit`` bytes on ``stream`` (``"stdout"``/``"stderr"``)."""

    kind = "output_limit"
    stream: str
    limit: int


class JobFuelExhausted(JobError):
    """The job used its whole fuel budget (``limit`` units)."""

    kind = "fuel_exhausted"
    limit: int


class JobExited(JobError):
    """The job called ``exit`` with ``status`` instead of returning (a Python job:
    ``sys.exit(status)``; the caller's program goes on)."""

    kind = "exited"
    status: int


class JobForbidden(JobError):
    """The job tried something the sandbox forbids (waiting), and was stopped."""

    kind = "forbidden"


class JobCancelled(JobError, concurrent.futures.CancelledError):
    """The job was cancelled before it finished (by its caller, its group's cancel, or a
    shutdown); also a ``concurrent.futures.CancelledError``."""

    kind = "cancelled"


class NodeLost(JobError):
    """The nodes running the job were lost ``attempts`` times (last: ``node``)."""

    kind = "node_lost"
    attempts: int
    node: str


class JobRefused(JobError):
    """A node refused the job (see the subclasses)."""

    kind = "refused"


class LimitRefused(JobRefused):
    """A node refused a limit the job asked for: ``limit``, ``asked``, ``allowed``."""

    kind = "limit_refused"
    limit: str
    asked: str
    allowed: str


class ModuleRefused(JobRefused):
    """A node refused the job's module (its allow-list, or the module's size)."""

    kind = "module_refused"


class BadArguments(JobError):
    """The job could not decode its arguments into its parameter types."""

    kind = "bad_arguments"


class UnknownFunction(JobError):
    """The module has no job ``function`` (it has ``available``)."""

    kind = "unknown_function"
    function: str
    available: list[str]


class BadResult(JobError):
    """The job's result could not be read as Python values."""

    kind = "bad_result"


class ResultTooLarge(JobError):
    """The job's result and output (``size`` bytes) exceed what a node sends back."""

    kind = "result_too_large"
    size: int
    limit: int


class JobAbiError(JobError):
    """The job broke the wasp ABI (a hand-written module gone wrong)."""

    kind = "abi"


class JobModuleError(JobError):
    """The job's module could not be compiled or instantiated."""

    kind = "module"


class JobInternalError(JobError):
    """wasp failed while running the job (a bug in wasp, reported rather than hidden)."""

    kind = "internal"


class QueueFull(WaspError):
    """The queue is at its bound (``max_queued``): nothing was submitted."""


_KINDS: dict[str, type[JobError]] = {
    cls.kind: cls
    for cls in (
        JobFailed,
        JobPanicked,
        JobTrapped,
        JobTimeout,
        JobMemoryLimit,
        JobOutputLimit,
        JobFuelExhausted,
        JobExited,
        JobForbidden,
        JobCancelled,
        NodeLost,
        LimitRefused,
        ModuleRefused,
        BadArguments,
        UnknownFunction,
        BadResult,
        ResultTooLarge,
        JobAbiError,
        JobModuleError,
        JobInternalError,
    )
}


def job_error(
    error: tuple[str, str, dict[str, Any]], stdout: bytes, stderr: bytes, worker: str
) -> JobError:
    """The exception for a job's ``(kind, message, fields)``."""
    kind, message, fields = error
    cls = _KINDS.get(kind, JobInternalError)
    return cls(message, stdout=stdout, stderr=stderr, worker=worker, **fields)
