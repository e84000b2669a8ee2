"""What both APIs (pp's ``Server`` and ``Client``) stand on: a native server, its
dispatcher thread, calls prepared for the sandbox, outcomes read into values or exceptions,
fork and exit safety."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback
import weakref
from typing import Any, Callable, Optional

from . import _ship, _wasp, runner
from ._errors import job_error
from ._module import JobRef, Module
from ._ship import results

#: How long a server with no local worker waits, when made, for its first node.
NODE_WAIT = 10.0

#: The name of the thread that runs callbacks.
DISPATCHER = "wasp-dispatcher"

FORKED_MESSAGE = (
    "this wasp server was made before os.fork(): its threads do not exist in the child "
    "process; make a new one in the child (or use the 'spawn' start method)"
)

#: The limits and options of one submission, by name (``None``: the server's default).
LIMITS = ("timeout", "max_memory", "max_output", "fuel")


class Outcome:
    """How a job ended: its value, or the exception to raise, and what it printed."""

    # A plain class with slots: one is made per job, and a frozen dataclass costs more.
    __slots__ = ("duration", "error", "fuel_used", "stderr", "stdout", "value", "worker")

    def __init__(
        self,
        value: Any,
        error: Optional[BaseException],
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


class Submitted:
    """A submitted job: the native job, and for a Python function, the classes that
    travelled with it (its result may hold their instances)."""

    __slots__ = ("classes", "generation", "native")

    def __init__(
        self, native: _wasp.NativeJob, classes: Optional[results.Classes], generation: int
    ) -> None:
        self.native = native
        self.classes = classes
        #: The fork generation of the server (see ``check_generation``).
        self.generation = generation

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits for the job (``RuntimeError`` in a ``fork()``ed child: its server's threads
        are not there); returns whether it finished."""
        check_generation(self.generation)
        return self.native.wait(timeout)

    def outcome(self) -> Outcome:
        """The outcome of the finished job, decoded."""
        return read_outcome(self.native, self.classes)


def read_outcome(job: _wasp.NativeJob, classes: Optional[results.Classes] = None) -> Outcome:
    """The outcome of a finished native job, decoded once (``classes``: a Python function's,
    whose results and exceptions may be of those classes)."""
    builder = None if classes is None else results.instance_builder(classes)
    ok, payload, stdout, stderr, duration, worker, fuel_used = job.outcome(builder)
    if ok:
        return Outcome(payload, None, stdout, stderr, duration, worker, fuel_used)
    error: BaseException
    kind, message, _ = payload
    if classes is not None and kind == "failed" and results.is_python_failure(message):
        error = results.failed(message, stdout, stderr, worker, classes)
    else:
        error = job_error(payload, stdout, stderr, worker)
    return Outcome(None, error, stdout, stderr, duration, worker, fuel_used)


class Dispatcher:
    """The one thread that runs callbacks and completes futures, with the GIL.

    Jobs finish on wasp's worker and network threads, which never wait for Python: they
    queue the handler registered for the job, and this thread runs it. A handler that
    raises is reported on stderr (and counted), never lost, and never stops the others. The
    thread runs while handlers are pending (and a second after), so an idle server holds
    none.
    """

    _IDLE = 1.0

    def __init__(self, native: _wasp.NativeServer) -> None:
        self._native = native
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self.errors = 0

    def watch(self, job: _wasp.NativeJob, handler: Callable[[], None]) -> None:
        """Runs ``handler`` on the dispatcher thread once ``job`` finishes."""
        self._native.watch(job, handler)
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(target=self._run, name=DISPATCHER, daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        idle = 0.0
        native = self._native
        while True:
            handlers = native.next_completions(0.1)
            for handler in handlers:
                self._call(handler)
            with self._lock:
                if handlers or (native.watched() and not self._stopping):
                    idle = 0.0
                    continue
                idle += 0.1
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

    def drain(self) -> None:
        """Runs, on the calling thread, the handlers of jobs that have finished (a closed
        server's jobs have all finished, cancelled if nothing else), then lets the
        dispatcher thread end."""
        with self._lock:
            self._stopping = True
        for _ in range(1000):
            handlers = self._native.next_completions(0.0)
            if not handlers:
                break
            for handler in handlers:
                self._call(handler)


#: How many times this process is a fork()ed child of the one that imported wasp: a
#: server made in another generation has no threads here.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def check_generation(generation: int) -> None:
    """Raises ``RuntimeError`` in a child made by ``fork()`` after ``generation``."""
    if generation != _generation:
        raise RuntimeError(FORKED_MESSAGE)


class Core:
    """A native server with its dispatcher: what ``Server`` and ``Client`` share."""

    def __init__(self, reuse_instances: bool = False, **settings: Any) -> None:
        self.generation = _generation
        #: Whether jobs may run in an instance kept from an earlier job (see ``Client``).
        self.reuse_instances = bool(reuse_instances)
        self._native = _wasp.NativeServer(**settings)
        self.dispatcher = Dispatcher(self._native)
        self.groups: set[str] = set()
        _live.add(self)

    @property
    def native(self) -> _wasp.NativeServer:
        """The native server; ``RuntimeError`` in a ``fork()``ed child (its threads are not
        there)."""
        if self.generation != _generation:
            raise RuntimeError(FORKED_MESSAGE)
        return self._native

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
        check_generation(self.generation)

    def submit(
        self,
        job: Any,
        args: tuple[Any, ...],
        kwargs: Optional[dict[str, Any]] = None,
        group: Optional[str] = None,
        timeout: Optional[float] = None,
        max_memory: Optional[int] = None,
        max_output: Optional[int] = None,
        fuel: Optional[int] = None,
        block: bool = True,
        depfuncs: tuple[Any, ...] = (),
        modules: tuple[str, ...] = (),
    ) -> Optional[Submitted]:
        """Submits ``job(*args, **kwargs)``; with ``block=False``, ``None`` if the queue is
        full.

        ``job`` is a job of a module (then ``kwargs`` must be empty), or a Python function
        or other callable (run by wasp's Python runner, with ``depfuncs`` and ``modules``
        as in pp)."""
        native = self.native
        classes = None
        if type(job) is JobRef:
            if kwargs:
                raise TypeError(
                    f"a module's job takes positional arguments only, not {sorted(kwargs)}"
                )
        else:
            job, args, classes = python_job(job, args, kwargs or {}, depfuncs, modules)
        if group is not None:
            self.groups.add(group)
        # Positional: the native call is on every job's path.
        submitted = native.submit(
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
        return None if submitted is None else Submitted(submitted, classes, self.generation)

    def close(self) -> None:
        """Stops the server now (once): queued jobs are cancelled, running ones stopped,
        whatever other threads are doing; callbacks of what finished run before it
        returns."""
        if self.generation != _generation or self._native.closed():
            return
        self._native.close()
        self.dispatcher.drain()


#: The Python runner's module, once a Python function was submitted.
_runner_module: Optional[Module] = None


def python_job(
    function: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    depfuncs: tuple[Any, ...],
    modules: tuple[str, ...],
) -> tuple[JobRef, tuple[Any, ...], results.Classes]:
    """The runner's job and arguments for the Python call ``function(*args, **kwargs)``,
    and the classes that travel with it."""
    global _runner_module
    shipment = _ship.prepare(function, args, kwargs, depfuncs, modules)
    if _runner_module is None:
        _runner_module = runner.module()
    return (
        JobRef(_runner_module, "python"),
        (_ship.FORMAT_CALL, shipment.bundle, shipment.call),
        shipment.classes,
    )


_live: weakref.WeakSet[Core] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Servers left open are closed at exit, in order, before the interpreter goes."""
    for core in list(_live):
        core.close()
