"""What both APIs (pp's ``Server`` and ``Client``) stand on: a native server, its
dispatcher thread, outcomes read into values or exceptions, fork and exit safety."""

from __future__ import annotations

import atexit
import itertools
import os
import sys
import threading
import traceback
import weakref
from typing import Any, Callable, Optional

from . import _functions, _wasp, runner
from ._errors import JobError, job_error
from ._module import JobRef, Module

#: How long a server with no local worker waits, when made, for its first node.
NODE_WAIT = 10.0

#: The name of the thread that runs callbacks.
DISPATCHER = "wasp-dispatcher"

FORKED_MESSAGE = (
    "this wasp server was made before os.fork(): its threads do not exist in the child "
    "process; make a new one in the child (or use the 'spawn' start method)"
)


class Outcome:
    """How a job ended: its value, or the exception to raise, and what it printed."""

    # A plain class with slots: one is made per job, and a frozen dataclass costs more.
    __slots__ = ("duration", "error", "fuel_used", "stderr", "stdout", "value", "worker")

    def __init__(
        self,
        value: Any,
        error: Optional[JobError],
        stdout: bytes,
        stderr: bytes,
        duration: float,
        worker: str,
        fuel_used: Optional[int],
    ) -> None:
        self.value = value
        self.error = error
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.worker = worker
        self.fuel_used = fuel_used

    def unwrap(self) -> Any:
        """The value, or raise the job's exception."""
        if self.error is not None:
            raise self.error
        return self.value


def read_outcome(job: _wasp.NativeJob) -> Outcome:
    """The outcome of a finished native job, decoded once."""
    ok, payload, stdout, stderr, duration, worker, fuel_used = job.outcome()
    if ok:
        return Outcome(payload, None, stdout, stderr, duration, worker, fuel_used)
    error = job_error(payload, stdout, stderr, worker)
    return Outcome(None, error, stdout, stderr, duration, worker, fuel_used)


class Dispatcher:
    """The one thread that runs callbacks and completes futures, with the GIL.

    Jobs finish on wasp's worker and network threads, which never wait for Python: they
    push a token, and this thread runs the handler registered for it. A handler that raises
    is reported on stderr (and counted), never lost, and never stops the others. The thread
    runs while handlers are pending (and a second after), so an idle server holds none.
    """

    _IDLE = 1.0

    def __init__(self, native: _wasp.NativeServer) -> None:
        self._native = native
        self._handlers: dict[int, Callable[[], None]] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self.errors = 0

    def watch(self, job: _wasp.NativeJob, handler: Callable[[], None]) -> None:
        """Runs ``handler`` on the dispatcher thread once ``job`` finishes."""
        token = next(self._tokens)
        with self._lock:
            self._handlers[token] = handler
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=DISPATCHER, daemon=True)
                self._thread.start()
        self._native.watch(job, token)

    def _run(self) -> None:
        idle = 0.0
        while True:
            tokens = self._native.next_completions(0.1)
            for token in tokens:
                with self._lock:
                    handler = self._handlers.pop(token, None)
                if handler is not None:
                    self._call(handler)
            with self._lock:
                if self._handlers:
                    idle = 0.0
                    continue
                idle = 0.0 if tokens else idle + 0.1
                if self._stopping or idle >= self._IDLE:
                    self._thread = None
                    return

    def _call(self, handler: Callable[[], None]) -> None:
        try:
            handler()
        except BaseException:
            self.errors += 1
            print(
                "wasp: a job's callback raised (the job's result is unaffected):",
                file=sys.stderr,
            )
            traceback.print_exc()

    def stop(self, timeout: float = 5.0) -> None:
        """Lets the thread end once the handlers pending now have run."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


#: How many times this process is a fork()ed child of the one that imported wasp: a
#: server made in another generation has no threads here.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class Core:
    """A native server with its dispatcher: what ``Server`` and ``Client`` share."""

    def __init__(self, reuse_instances: bool = False, **settings: Any) -> None:
        self._generation = _generation
        #: Whether jobs may run in an instance kept from an earlier job (see ``Client``).
        self.reuse_instances = bool(reuse_instances)
        self.native = _wasp.NativeServer(**settings)
        self.dispatcher = Dispatcher(self.native)
        self.groups: set[str] = set()
        _live.add(self)

    def require_a_node(self, peers: list[str], workers: Optional[int]) -> None:
        """With no local worker, nothing runs without a node: waits (up to
        ``NODE_WAIT`` seconds) for one of the listed ``peers``, and raises
        ``ConnectionError`` saying why each is missing (a wrong secret, unreachable), so
        that a misconfiguration is an error now rather than jobs that wait for ever."""
        # Discovery and rendezvous directories are open-ended (a batch system may start the
        # nodes much later): jobs wait in the queue for them.
        if workers != 0 or not any(peer != "*" and not peer.startswith("dir:") for peer in peers):
            return
        try:
            self.native.wait_for_nodes(1, NODE_WAIT)
        except BaseException:
            self.close()
            raise

    def check(self) -> None:
        """Raises if the server was made before a fork (the native server raises if it was
        closed)."""
        if self._generation != _generation:
            raise RuntimeError(FORKED_MESSAGE)

    def submit(
        self,
        job: JobRef,
        args: tuple[Any, ...],
        group: Optional[str] = None,
        timeout: Optional[float] = None,
        max_memory: Optional[int] = None,
        max_output: Optional[int] = None,
        fuel: Optional[int] = None,
        block: bool = True,
        depfuncs: tuple[Any, ...] = (),
        modules: tuple[str, ...] = (),
    ) -> Optional[_wasp.NativeJob]:
        """Submits ``job(*args)``; with ``block=False``, ``None`` if the queue is full.

        ``job`` is a job of a module, or a Python function (run by wasp's Python runner,
        with ``depfuncs`` and ``modules`` as in pp)."""
        if self._generation != _generation:
            raise RuntimeError(FORKED_MESSAGE)
        if type(job) is not JobRef:
            job, args = python_job(job, args, depfuncs, modules)
        if group is not None:
            self.groups.add(group)
        # Positional: the native call is on every job's path.
        try:
            return self.native.submit(
                job.module._native,
                job.name,
                args,
                group,
                timeout,
                max_memory,
                max_output,
                fuel,
                block,
                self.reuse_instances,
            )
        except TypeError as error:
            if job.module is not _runner_module:
                raise
            # The function's arguments are the runner's third: name them as the caller did.
            raise TypeError(str(error).replace("args[2]", "args", 1)) from None

    def close(self) -> None:
        """Stops the server (once): queued jobs are cancelled, running ones stopped."""
        if self._generation != _generation or self.native.closed():
            return
        self.dispatcher.stop()
        self.native.close()


#: The Python runner's module, once a Python function was submitted.
_runner_module: Optional[Module] = None


def python_job(
    func: Any, args: tuple[Any, ...], depfuncs: tuple[Any, ...], modules: tuple[str, ...]
) -> tuple[JobRef, tuple[Any, ...]]:
    """The runner's job and arguments for the Python function ``func(*args)``."""
    global _runner_module
    if not callable(func):
        raise TypeError(
            "a job is a Python function or a function of a wasp module "
            f"(wasp.Module(path).name), not {func!r}"
        )
    call = _functions.call_of(func, args, depfuncs, modules)
    if _runner_module is None:
        _runner_module = runner.module()
    return JobRef(_runner_module, "python"), call


_live: weakref.WeakSet[Core] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Servers left open are closed at exit, in order, before the interpreter goes."""
    for core in list(_live):
        core.close()
