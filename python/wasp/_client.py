"""``Client``: wasp's Python API with ``concurrent.futures`` futures, bounded maps, groups
and statistics as data."""

from __future__ import annotations

import concurrent.futures
import os
import queue
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import _base
from typing import Any, Callable, Optional, Union

from . import _wasp
from ._core import Core, Dispatcher, read_outcome
from ._errors import QueueFull, job_error
from ._module import JobRef
from ._stats import GroupSummary, Progress, Stats

PathLike = Union[str, os.PathLike]


class _Waiters(list):
    """A future's list of waiters (``concurrent.futures.wait`` and ``as_completed`` add
    theirs): the first waiter added makes the future's job report its end."""

    __slots__ = ("future",)

    def __init__(self, future: WaspFuture) -> None:
        self.future = weakref.ref(future)

    def append(self, waiter: Any) -> None:
        future = self.future()
        if future is not None:
            future._watch()
        super().append(waiter)


#: Guards the making of futures' condition variables against their settling.
_LAZY = threading.Lock()

_DONE = (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED, _base.FINISHED)


class WaspFuture(concurrent.futures.Future):
    """A job's future: a real ``concurrent.futures.Future``.

    ``concurrent.futures.wait``, ``as_completed``, ``add_done_callback`` and
    ``asyncio.wrap_future`` work with it. ``result()`` waits for the job itself (with the GIL
    released), so a single job's round trip costs no thread hop; Ctrl-C there raises
    ``KeyboardInterrupt`` and cancels the job. ``cancel()`` cancels the job, where it is
    queued or running, on nodes too. Done-callbacks run on wasp's one dispatcher thread.

    A future is cheap until something waits on it besides ``result()``: only then (a
    done-callback, ``wait``, ``as_completed``) is its job's end reported to the dispatcher,
    and its condition variable and lists made (``concurrent.futures`` reads them, as
    ``_condition``, ``_waiters`` and ``_done_callbacks``, and finds them made on first use).
    A million futures are then a million objects for the garbage collector to walk, not
    seven million.
    """

    def __init__(self, job: _wasp.NativeJob, dispatcher: Dispatcher) -> None:
        # Not Future.__init__: what it makes is made on first use (see the class).
        self._state = _base.PENDING
        self._result: Any = None
        self._exception: Optional[BaseException] = None
        self._job = job
        self._dispatcher = dispatcher
        self._watched = False
        self._cond: Optional[threading.Condition] = None
        self._waiter_list: Optional[_Waiters] = None
        self._callback_list: Optional[list] = None

    @property
    def _condition(self) -> threading.Condition:
        if self._cond is None:
            with _LAZY:
                if self._cond is None:
                    self._cond = threading.Condition()
        return self._cond

    @property
    def _waiters(self) -> _Waiters:
        if self._waiter_list is None:
            with _LAZY:
                if self._waiter_list is None:
                    self._waiter_list = _Waiters(self)
        return self._waiter_list

    @property
    def _done_callbacks(self) -> list:
        if self._callback_list is None:
            with _LAZY:
                if self._callback_list is None:
                    self._callback_list = []
        return self._callback_list

    @property
    def job_id(self) -> int:
        """The job's id within its server."""
        return self._job.id

    def _watch(self) -> None:
        """Has the dispatcher settle the future when its job ends (once)."""
        if not self._watched:
            self._watched = True
            self._dispatcher.watch(self._job, self._settle)

    def _settle(self) -> None:
        """Moves the finished job's outcome into the future, unless it is already done."""
        ok, payload, stdout, stderr, _, worker, _ = self._job.outcome()
        if ok:
            result, error = payload, None
        else:
            result, error = None, job_error(payload, stdout, stderr, worker)
        with _LAZY:
            if self._cond is None:
                # Nobody waits on the condition, nor has a callback: nothing to notify.
                if self._state == _base.PENDING:
                    self._result, self._exception = result, error
                    self._state = _base.FINISHED
                return
        try:
            if error is None:
                self.set_result(result)
            else:
                self.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass  # settled meanwhile by another thread, or cancelled

    def done(self) -> bool:
        if self._state == _base.PENDING and self._job.done():
            self._settle()
        return self._state in _DONE

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return self._state in (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED)

    def add_done_callback(self, fn: Callable[[concurrent.futures.Future], object]) -> None:
        self._watch()
        super().add_done_callback(fn)

    def result(self, timeout: Optional[float] = None) -> Any:
        self._wait(timeout)
        if self._state == _base.FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result
        return super().result(timeout=0)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        self._wait(timeout)
        if self._state == _base.FINISHED:
            return self._exception
        return super().exception(timeout=0)

    def _wait(self, timeout: Optional[float]) -> None:
        if self._state != _base.PENDING:
            return
        try:
            finished = self._job.wait(timeout)
        except KeyboardInterrupt:
            # Ctrl-C while waiting for the job: it is no longer wanted.
            self.cancel()
            raise
        if finished:
            self._settle()

    def cancel(self) -> bool:
        if self.done():
            return self.cancelled()  # a finished job's result stands
        self._job.cancel()
        return super().cancel()


class Client:
    """A wasp server for Python: local workers, and nodes if given.

    Use it as a context manager (or call ``close()``)::

        with wasp.Client(workers=4) as client:
            future = client.submit(module.sum_primes, 100_000, timeout=10)
            print(future.result())
            for total in client.map(module.sum_primes, range(100_000, 100_800, 100)):
                print(total)

    Settings (each optional):

    - ``workers``: local workers (default: one per available CPU; ``0``: nodes only).
    - ``peers``: nodes, as ``"host:port"`` (a name stands for every address it resolves
      to), or ``"*"`` to discover nodes on the LAN.
    - ``secret`` (64 hex digits, a passphrase, or 32 bytes) or ``secret_file``: the
      cluster secret the nodes were started with; ``insecure=True`` for nodes started with
      ``--insecure`` (loopback only).
    - ``timeout`` (seconds), ``max_memory``, ``max_output`` (bytes), ``fuel``: the default
      limits of every job (each job may ask for others). A limit not given is not asked of
      nodes: each gives its own value.
    - ``max_queued``: bound the queue; ``submit`` then waits for room
      (``block=False``: raises ``QueueFull``).
    - ``cache_dir``, ``no_cache``: where compiled code is kept on disk.
    - ``node_timeout`` (seconds), ``max_retries``: when a silent node counts as lost, and
      how many times a job may lose its node.
    - ``reuse_instances``: for trusted code only. Python functions (and other components'
      jobs) may then run in an interpreter kept from an earlier job of this client on the
      same worker, rather than a fresh one: about 10 times as many short jobs per second,
      but the jobs share that interpreter's state (globals, imported modules, caches), as
      pp's workers do. An interpreter whose job timed out, trapped or hit a limit is not
      kept. Default: a fresh sandbox per job.
    - ``metrics``: serve Prometheus metrics, health probes, a JSON status and a live
      dashboard over HTTP on this address (``"127.0.0.1:9464"``; port 0 picks one, see
      ``metrics_address``). Loopback only, unless ``metrics_token`` is given: then
      everything but the probes needs ``Authorization: Bearer <token>``.

    With ``workers=0`` and listed peers, waits (up to 10 s) for one of them, and raises
    ``ConnectionError`` saying why each is missing (a wrong secret, unreachable). Raises
    ``ValueError`` for a bad setting, ``OSError`` for a secret file that cannot be read.
    """

    def __init__(
        self,
        workers: Optional[int] = None,
        peers: Iterable[str] = (),
        *,
        secret: Union[str, bytes, None] = None,
        secret_file: Optional[PathLike] = None,
        insecure: bool = False,
        timeout: Optional[float] = None,
        max_memory: Optional[int] = None,
        max_output: Optional[int] = None,
        fuel: Optional[int] = None,
        max_queued: Optional[int] = None,
        cache_dir: Optional[PathLike] = None,
        no_cache: bool = False,
        node_timeout: Optional[float] = None,
        max_retries: Optional[int] = None,
        reuse_instances: bool = False,
        metrics: Optional[str] = None,
        metrics_token: Optional[str] = None,
    ) -> None:
        if isinstance(peers, str):
            raise TypeError('peers is a list of "host:port" strings, not one string')
        peers = list(peers)
        self._core = Core(
            reuse_instances=reuse_instances,
            workers=workers,
            peers=peers,
            secret=secret,
            secret_file=None if secret_file is None else os.fspath(secret_file),
            insecure=insecure,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            no_cache=no_cache,
            node_timeout=node_timeout,
            max_retries=max_retries,
            max_queued=max_queued,
            timeout=timeout,
            max_memory=max_memory,
            max_output=max_output,
            fuel=fuel,
            metrics=metrics,
            metrics_token=metrics_token,
        )
        self._core.require_a_node(peers, workers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the server: queued jobs are cancelled, running ones stopped, nodes let go.
        Wait first (``wait()``) to let jobs finish."""
        self._core.close()

    def submit(
        self,
        job: Union[JobRef, Callable[..., Any]],
        *args: Any,
        timeout: Optional[float] = None,
        max_memory: Optional[int] = None,
        max_output: Optional[int] = None,
        fuel: Optional[int] = None,
        group: Optional[str] = None,
        block: bool = True,
    ) -> WaspFuture:
        """Submits ``job(*args)`` and returns its future. ``job`` is a job of a module, or
        a Python function (run in wasp's Python runner; see :mod:`wasp.runner`).

        The limits override the client's for this job. With a bounded queue, waits for
        room (Ctrl-C raises ``KeyboardInterrupt``), or with ``block=False`` raises
        ``QueueFull``. Arguments that cannot cross (see the README's values) raise
        ``TypeError`` naming them.
        """
        native = self._core.submit(job, args, group, timeout, max_memory, max_output, fuel, block)
        if native is None:
            raise QueueFull("the queue is full (max_queued): nothing was submitted")
        return WaspFuture(native, self._core.dispatcher)

    def map(
        self,
        job: Union[JobRef, Callable[..., Any]],
        *iterables: Iterable[Any],
        ordered: bool = True,
        window: Optional[int] = None,
        timeout: Optional[float] = None,
        max_memory: Optional[int] = None,
        fuel: Optional[int] = None,
        group: Optional[str] = None,
        progress: Union[bool, Callable[[int, Optional[int]], None]] = False,
    ) -> Iterator[Any]:
        """Runs ``job`` on each item of ``iterables`` (zipped, as the built-in ``map``),
        yielding results in input order (``ordered=False``: as they finish).

        At most ``window`` jobs are in flight (default: 8 per worker and node), so an
        endless iterable is fine: backpressure. The first job to fail raises its
        ``JobError`` where its result would be; the jobs still in flight are then cancelled,
        as they are when the iterator is closed early or Ctrl-C interrupts it.
        ``progress=True`` draws a progress bar on stderr; a callable gets ``(done, total)``
        (``total`` is ``None`` for iterables without a length).
        """
        limits = {"timeout": timeout, "max_memory": max_memory, "fuel": fuel}
        total = _length(iterables)
        report = _progress(progress, total)
        window = window or max(8 * self._core.native.capacity(), 16)
        calls = zip(*iterables)
        if ordered:
            return self._map_ordered(job, calls, window, group, limits, report)
        return self._map_unordered(job, calls, window, group, limits, report)

    def _map_ordered(self, job, calls, window, group, limits, report) -> Iterator[Any]:
        in_flight: deque[_wasp.NativeJob] = deque()
        done = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(in_flight) < window:
                    args = next(calls, None)
                    if args is None:
                        exhausted = True
                        break
                    in_flight.append(self._core.submit(job, args, group=group, **limits))
                if not in_flight:
                    return
                head = in_flight.popleft()
                try:
                    head.wait()
                except KeyboardInterrupt:
                    head.cancel()
                    raise
                value = read_outcome(head).unwrap()
                done += 1
                report(done)
                yield value
        finally:
            for native in in_flight:
                native.cancel()
            report(done, final=True)

    def _map_unordered(self, job, calls, window, group, limits, report) -> Iterator[Any]:
        finished: queue.SimpleQueue[_wasp.NativeJob] = queue.SimpleQueue()
        in_flight: set[_wasp.NativeJob] = set()
        done = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(in_flight) < window:
                    args = next(calls, None)
                    if args is None:
                        exhausted = True
                        break
                    native = self._core.submit(job, args, group=group, **limits)
                    in_flight.add(native)
                    self._core.dispatcher.watch(native, lambda n=native: finished.put(n))
                if not in_flight:
                    return
                native = _get(finished)
                in_flight.discard(native)
                value = read_outcome(native).unwrap()
                done += 1
                report(done)
                yield value
        finally:
            for native in in_flight:
                native.cancel()
            report(done, final=True)

    def wait(self, group: Optional[str] = None, timeout: Optional[float] = None) -> GroupSummary:
        """Waits until ``group`` (every job, for ``None``) has nothing pending, at most
        ``timeout`` seconds. Ctrl-C raises ``KeyboardInterrupt`` and cancels the group."""
        self._core.check()
        try:
            summary = self._core.native.wait_group(group, timeout)
        except KeyboardInterrupt:
            self.cancel(group)
            raise
        return GroupSummary(*summary)

    def cancel(self, group: Optional[str] = None) -> int:
        """Cancels every unfinished job of ``group`` (of every group, for ``None``); returns
        how many."""
        self._core.check()
        groups = [group] if group is not None else [*self._core.groups, "default"]
        return sum(self._core.native.cancel_group(name) for name in groups)

    @property
    def workers(self) -> int:
        """The number of local workers."""
        return self._core.native.workers()

    @workers.setter
    def workers(self, count: int) -> None:
        self._core.check()
        self._core.native.set_workers(count)

    def capacity(self) -> int:
        """Local workers plus the workers of the connected nodes."""
        return self._core.native.capacity()

    def wait_for_nodes(self, count: int, timeout: float = 10.0) -> int:
        """Waits until ``count`` nodes are connected; raises ``ConnectionError`` saying why
        each missing node is missing (e.g. a wrong secret)."""
        self._core.check()
        return self._core.native.wait_for_nodes(count, timeout)

    @property
    def metrics_address(self) -> Optional[str]:
        """Where the monitor listens (``"host:port"``), if ``metrics`` was given."""
        return self._core.native.monitor_address()

    def progress(self, group: str = "default") -> Optional[Progress]:
        """How far ``group`` has got (done, failed, running, queued, rate, ETA), or
        ``None`` if it has no jobs (or was forgotten, long after it finished)."""
        native = self._core.native.progress(group)
        return None if native is None else Progress.from_native(native)

    def groups_progress(self, limit: int = 20) -> list[Progress]:
        """The progress of up to ``limit`` groups: those with jobs pending first."""
        return [Progress.from_native(native) for native in self._core.native.groups_progress(limit)]

    def stats(self) -> Stats:
        """The statistics, as data (``str()`` of it is pp's table)."""
        native = self._core.native
        return Stats.from_native(native.stats(), native.stats_table())

    @property
    def callback_errors(self) -> int:
        """How many done-callbacks raised (each was reported on stderr)."""
        return self._core.dispatcher.errors


def _get(finished: queue.SimpleQueue) -> Any:
    """The next finished job, waiting in slices so that Ctrl-C is heard."""
    while True:
        try:
            return finished.get(timeout=0.05)
        except queue.Empty:
            continue


def _length(iterables: tuple[Iterable[Any], ...]) -> Optional[int]:
    lengths = [len(it) for it in iterables if hasattr(it, "__len__")]
    if len(lengths) < len(iterables) or not lengths:
        return None
    return min(lengths)


def _progress(
    progress: Union[bool, Callable[[int, Optional[int]], None]], total: Optional[int]
) -> Callable[..., None]:
    """A reporter of the map's progress: none, the caller's, or a bar on stderr."""
    if callable(progress):
        return lambda done, final=False: progress(done, total)
    if not progress:
        return lambda done, final=False: None
    started = time.monotonic()
    shown = [0.0]

    def bar(done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - shown[0] < 0.1:
            return
        shown[0] = now
        rate = done / max(now - started, 1e-9)
        if total:
            filled = int(30 * done / total)
            left = (total - done) / rate if rate else 0.0
            line = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} jobs, "
            line += f"{rate:.0f}/s, eta {left:.0f}s"
        else:
            line = f"{done} jobs, {rate:.0f}/s"
        end = "\n" if final else ""
        print(f"\r{line}", end=end, file=sys.stderr, flush=True)

    return bar
