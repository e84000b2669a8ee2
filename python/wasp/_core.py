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
from ._data import ENCODINGS, Ref, take_job
from ._errors import job_error
from ._module import JobRef
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

    __slots__ = ("classes", "generation", "native", "owner")

    def __init__(
        self,
        native: _wasp.NativeJob,
        classes: Optional[results.Classes],
        generation: int,
        owner: object = None,
    ) -> None:
        self.native = native
        self.classes = classes
        #: The fork generation of the server (see ``check_generation``).
        self.generation = generation
        #: The server (``Core``) it was submitted to: only its jobs may take its result.
        self.owner = owner

    def _wasp_take(self) -> tuple[int, Any, tuple[tuple[str, str], ...], object]:
        """How a Python function's call takes this job's result (see ``wasp._data``)."""
        return take_job(self, self.owner)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits for the job (``RuntimeError`` in a ``fork()``ed child: its server's threads
        are not there); returns whether it finished."""
        # check_generation, inlined: this is on every job's path.
        if self.generation != _generation:
            raise RuntimeError(FORKED_MESSAGE)
        return self.native.wait(timeout)

    def outcome(self) -> Outcome:
        """The outcome of the finished job, decoded."""
        if self.classes is None:
            # read_outcome for a module's job that succeeded, inlined: pp's every job.
            ok, payload, stdout, stderr, duration, worker, fuel_used = self.native.outcome(None)
            if ok:
                return Outcome(payload, None, stdout, stderr, duration, worker, fuel_used)
        return read_outcome(self.native, self.classes)

    def value_or_error(self) -> tuple[Any, Optional[BaseException]]:
        """The finished job's value and ``None``, or ``None`` and its exception: what a
        future keeps of its outcome."""
        if self.classes is None:
            # A module's job that succeeded needs no Outcome: this is every job's path.
            native = self.native.outcome(None)
            if native[0]:
                return native[1], None
        outcome = read_outcome(self.native, self.classes)
        return outcome.value, outcome.error


def read_outcome(job: _wasp.NativeJob, classes: Optional[results.Classes] = None) -> Outcome:
    """The outcome of a finished native job, decoded once (``classes``: a Python function's,
    whose results and exceptions may be of those classes)."""
    builder = None if classes is None else results.instance_builder(classes)
    ok, payload, stdout, stderr, duration, worker, fuel_used = job.outcome(builder)
    if ok:
        return Outcome(payload, None, stdout, stderr, duration, worker, fuel_used)
    error = _job_exception(payload, stdout, stderr, worker, classes)
    return Outcome(None, error, stdout, stderr, duration, worker, fuel_used)


def _job_exception(
    payload: Any,
    stdout: bytes,
    stderr: bytes,
    worker: str,
    classes: Optional[results.Classes],
) -> BaseException:
    """The exception of a job's error ``(kind, message, fields)``; a dependency's failure
    is the cause of the :class:`DependencyFailed` (its own output is not here)."""
    kind, message, fields = payload
    if classes is not None and kind == "failed" and results.is_python_failure(message):
        return results.failed(message, stdout, stderr, worker, classes)
    if kind == "dependency":
        cause = _job_exception(fields["error"], b"", b"", "", classes)
        error = job_error((kind, message, {**fields, "error": cause}), stdout, stderr, worker)
        error.__cause__ = cause
        return error
    return job_error(payload, stdout, stderr, worker)


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
        """Runs ``handler`` on the dispatcher thread once ``job`` finishes (on this thread,
        at once, if the server was closed: its jobs have all finished)."""
        self._native.watch(job, handler)
        # Under the lock: the thread decides to end under it, after seeing nothing watched
        # (and the handler is counted as watched before this).
        with self._lock:
            closed = self._stopping
            if self._thread is None and not closed:
                thread = threading.Thread(target=self._run, name=DISPATCHER, daemon=True)
                self._thread = thread
                try:
                    thread.start()
                except BaseException:
                    self._thread = None  # the next watch tries again
                    raise
        if closed:
            self._run_finished()

    def _run(self) -> None:
        idle = 0.0
        native = self._native
        while True:
            # Called in a function of their own: no handler (and the future it settles) is
            # kept alive by this frame while it waits for the next.
            ran = self._call_all(native.next_completions(0.1))
            with self._lock:
                if ran or (native.watched() and not self._stopping):
                    idle = 0.0
                    continue
                idle += 0.1
                if self._stopping or idle >= self._IDLE:
                    self._thread = None
                    return

    def _call_all(self, handlers: list[Callable[[], None]]) -> int:
        for handler in handlers:
            self._call(handler)
        return len(handlers)

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
        self._run_finished()

    def _run_finished(self) -> None:
        """Runs, on the calling thread, the handlers of the jobs that have finished."""
        for _ in range(1000):
            if not self._call_all(self._native.next_completions(0.0)):
                break


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

    def __init__(
        self, reuse_instances: bool = False, packages: runner.PackagesArg = (), **settings: Any
    ) -> None:
        self.generation = _generation
        #: Whether jobs may run in an instance kept from an earlier job (see ``Client``).
        self.reuse_instances = bool(reuse_instances)
        # Packages are checked now: one that cannot go into the sandbox is refused here.
        self._packages = runner.resolve(packages) if packages else ()
        self._asked_packages = packages
        self._runner: Optional[runner.Runner] = None
        self._runner_ready = threading.Event()
        self._runner_error: Optional[BaseException] = None
        self._native = runner.native_server(**settings)
        self.dispatcher = Dispatcher(self._native)
        self.groups: set[str] = set()
        _live.add(self)
        # The machine's first Python job should not wait for the runner's compilation: it
        # starts now, into the machine's cache (a server with a cache directory of its own
        # compiles at its first Python job, as do the tests').
        compile_here = (
            settings.get("workers") != 0
            and settings.get("cache_dir") is None
            and not settings.get("no_cache")
        )
        threading.Thread(
            target=self._find_runner, args=(compile_here,), name="wasp-runner", daemon=True
        ).start()

    def _find_runner(self, compile_here: bool) -> None:
        """Finds (or builds, for packages) the Python runner, and compiles it for the local
        workers, in the background: the first Python job then does not pay for that. A
        server that never runs a Python function pays nothing but this thread."""
        try:
            self._runner = runner.get(self._asked_packages)
            if compile_here and not self._native.closed():
                self._native.prepare(self._runner.module()._native)
        except BaseException as error:  # told to the first Python submit
            self._runner_error = error
        finally:
            self._runner_ready.set()

    def python_runner(self) -> runner.Runner:
        """The runner of this server's Python jobs (waiting for its background search)."""
        found = self._runner
        if found is not None:
            return found  # every Python job's path, once the search is done
        while not self._runner_ready.wait(0.05):
            pass  # in slices: Ctrl-C is heard
        if self._runner is None:
            if isinstance(self._runner_error, runner.PackageError):
                raise self._runner_error
            # Found again here, to raise its error where the job was submitted.
            self._runner = runner.get(self._asked_packages)
        return self._runner

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
        cache: Optional[bool] = None,
    ) -> Optional[Submitted]:
        """Submits ``job(*args, **kwargs)``; with ``block=False``, ``None`` if the queue is
        full.

        ``job`` is a job of a module (then ``kwargs`` must be empty), or a Python function
        or other callable (run by wasp's Python runner, with ``depfuncs`` and ``modules``
        as in pp). ``cache``: whether the result cache answers it (``None``: the
        server's setting)."""
        if self.generation != _generation:
            raise RuntimeError(FORKED_MESSAGE)
        native = self._native
        classes = None
        if type(job) is JobRef:
            if kwargs:
                raise TypeError(
                    f"a module's job takes positional arguments only, not {sorted(kwargs)}"
                )
        else:
            job, args, classes = python_job(
                self.python_runner(), job, args, kwargs or {}, depfuncs, modules, self
            )
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
            cache,
        )
        if submitted is None:
            return None
        return Submitted(submitted, classes, self.generation, self)

    def put(self, value: Any, encoding: Optional[str] = None) -> Ref:
        """Puts ``value`` once (see ``Client.put``)."""
        native = self.native
        if encoding is None:
            encoding = "bytes" if type(value) is bytes else "pickle"
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding is one of {', '.join(ENCODINGS)}, not {encoding!r}")
        needs: tuple[tuple[str, str], ...] = ()
        if encoding == "pickle":
            try:
                data, needs = _ship.put_value(value, self.python_runner().has_module)
            except _ship.Unshippable as error:
                raise error.within(f"the value put ({_ship.describe(value)})") from None
            made = native.put(data)
        elif encoding == "bytes":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"encoding='bytes' puts bytes, not {_ship.describe(value)}")
            made = native.put(bytes(value))
        else:
            made = native.put(value, encode=True)
        return Ref(made, self, encoding, needs)

    def close(self) -> None:
        """Stops the server now (once): queued jobs are cancelled, running ones stopped,
        whatever other threads are doing; callbacks of what finished run before it
        returns."""
        if self.generation != _generation or self._native.closed():
            return
        self._native.close()
        self.dispatcher.drain()


def python_job(
    python: runner.Runner,
    function: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    depfuncs: tuple[Any, ...],
    modules: tuple[str, ...],
    owner: object = None,
) -> tuple[JobRef, tuple[Any, ...], results.Classes]:
    """The job and arguments of runner ``python`` for the Python call
    ``function(*args, **kwargs)`` on server ``owner``, and the classes that travel with
    it."""
    shipment = _ship.prepare(function, args, kwargs, depfuncs, modules, python.has_module, owner)
    call: tuple[Any, ...] = (_ship.FORMAT_CALL, shipment.bundle, shipment.call)
    if shipment.takes:
        call += (shipment.takes,)
    return python.job(), call, shipment.classes


_live: weakref.WeakSet[Core] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Servers left open are closed at exit, in order, before the interpreter goes."""
    for core in list(_live):
        core.close()
