"""``Client``: wasp as a ``concurrent.futures.Executor``, with limits per job through
``options()``, bounded maps, groups and statistics as data."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from typing import Any, Callable, Optional, Union

from . import _ship, runner
from ._core import Core, Submitted
from ._data import Ref
from ._errors import QueueFull
from ._future import LAZY, LazyFuture, WaspFuture
from ._module import JobRef
from ._ship.walk import sandbox_function
from ._stats import GroupSummary, Progress, Stats

PathLike = Union[str, "os.PathLike[str]"]

#: The futures a Client makes: lazy where this Python's ``Future`` is the one wasp knows.
_FUTURE: type[WaspFuture] = LazyFuture if LAZY else WaspFuture

#: What ``options()`` takes: a job's limits, its group, whether ``submit`` waits for room
#: in a bounded queue, and whether the result cache answers it.
OPTIONS = ("timeout", "max_memory", "max_output", "fuel", "group", "block", "cache")


class Client(concurrent.futures.Executor):
    """A wasp server for Python, and a ``concurrent.futures.Executor``: local workers, and
    nodes if given. Use it as a context manager (leaving waits for the jobs, as
    ``Executor.shutdown`` does), or call ``shutdown()`` or ``close()``::

        with wasp.Client(workers=4) as client:
            future = client.submit(sum_primes, 100_000)
            print(future.result())
            for total in client.map(sum_primes, range(100_000, 100_800, 100)):
                print(total)
            slow = client.options(timeout=10, group="night")
            print(slow.submit(sum_primes, 1_000_000).result())

    ``submit(fn, /, *args, **kwargs)`` passes every keyword to the job, as
    ``Executor.submit`` does: a job's limits and group go through ``options()``. A job is a
    Python function (or another callable that can travel), run in wasp's Python runner (see
    :mod:`wasp.runner`), or a function of a WebAssembly module (``wasp.Module(path).name``).

    Settings (each optional):

    - ``workers``: local workers (default: one per available CPU; ``0``: nodes only).
    - ``peers``: nodes, as ``"host:port"`` (a name stands for every address it resolves
      to), ``"*"`` to discover nodes on the LAN, or ``"dir:PATH"``, a rendezvous directory.
    - ``secret`` (64 hex digits, a passphrase, or 32 bytes) or ``secret_file``: the
      cluster secret the nodes were started with; ``insecure=True`` for nodes started with
      ``--insecure`` (loopback only).
    - ``timeout`` (seconds), ``max_memory``, ``max_output`` (bytes), ``fuel``: the default
      limits of every job (``options()`` sets others per job). A limit not given is not
      asked of nodes: each gives its own value.
    - ``max_queued``: bound the queue; ``submit`` then waits for room
      (``options(block=False)``: raises ``QueueFull``).
    - ``cache_dir``, ``no_cache``: where compiled code is kept on disk.
    - ``cache``: answer every job from the result cache when it can (default ``False``;
      ``options(cache=True)`` asks per job): a job run before with the same code and
      arguments returns its stored result without running. Only jobs that read neither the
      clock nor random numbers, and ended by themselves, are stored; results are kept on
      this machine's disk (``results`` in ``cache_dir``, else the user's cache directory;
      bounded, least recently used first out; ``wasp cache stats|clear``).
    - ``node_timeout`` (seconds), ``max_retries``: when a silent node counts as lost, and
      how many times a job may lose its node.
    - ``resolve_interval`` (seconds, default 5): how often peer names are resolved again and
      rendezvous directories read again, to find nodes that came or went.
    - ``reuse_instances``: for trusted code only. Python functions (and other components'
      jobs) may then run in an interpreter kept from an earlier job of this client on the
      same worker, rather than a fresh one: many more short jobs per second, but the jobs
      share that interpreter's state (globals, imported modules, caches), as pp's workers
      do. An interpreter whose job timed out, trapped or hit a limit is not kept. Default:
      a fresh sandbox per job.
    - ``packages``: installed pure-Python distributions (names, or a requirements file)
      that Python functions may import inside the sandbox. They (and what they require) are
      baked into a runner of their own, built once per machine (componentize-py must be
      installed then) and, like any module, shipped once to each node and compiled there
      once. A package with compiled code is refused here (``ValueError``), naming its file.
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
        cache: bool = False,
        node_timeout: Optional[float] = None,
        resolve_interval: Optional[float] = None,
        max_retries: Optional[int] = None,
        reuse_instances: bool = False,
        packages: runner.PackagesArg = (),
        metrics: Optional[str] = None,
        metrics_token: Optional[str] = None,
    ) -> None:
        if isinstance(peers, str):
            raise TypeError('peers is a list of "host:port" strings, not one string')
        peers = list(peers)
        self._core = Core(
            reuse_instances=reuse_instances,
            packages=packages,
            workers=workers,
            peers=peers,
            secret=secret,
            secret_file=None if secret_file is None else os.fspath(secret_file),
            insecure=insecure,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            no_cache=no_cache,
            cache=bool(cache),
            node_timeout=node_timeout,
            resolve_interval=resolve_interval,
            max_retries=max_retries,
            max_queued=max_queued,
            timeout=timeout,
            max_memory=max_memory,
            max_output=max_output,
            fuel=fuel,
            metrics=metrics,
            metrics_token=metrics_token,
        )
        self._shutdown = False
        self._shutdown_lock = threading.Lock()
        self._defaults = Options(self, {})
        self._core.require_a_node(peers, workers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        # As Executor's, but when the block raised, jobs not yet running are cancelled
        # rather than run before the error is seen.
        self.shutdown(wait=True, cancel_futures=error is not None)

    def close(self) -> None:
        """Stops the server now: queued jobs are cancelled, running ones stopped (on nodes
        too), nodes let go, whatever other threads are doing. ``shutdown()`` lets jobs
        finish first."""
        with self._shutdown_lock:
            self._shutdown = True
        self._core.close()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``Executor.shutdown``: no more submissions; with ``cancel_futures``, jobs not yet
        running are cancelled; with ``wait``, returns once every job has finished (and
        then closes the server), else returns at once and the server closes when they
        have."""
        with self._shutdown_lock:
            self._shutdown = True
        if self._core.native.closed():
            return
        if cancel_futures:
            self._core.native.cancel_queued()
        if wait:
            self._core.native.wait_group(None, None)
            self._core.close()
        else:
            threading.Thread(
                target=self._close_when_idle, name="wasp-shutdown", daemon=True
            ).start()

    def _close_when_idle(self) -> None:
        self._core.native.wait_group(None, None)
        self._core.close()

    def options(self, **options: Any) -> Options:
        """A view of this client whose ``submit`` and ``map`` give their jobs these
        ``options``: ``timeout`` (seconds), ``max_memory``, ``max_output`` (bytes),
        ``fuel``, ``group`` (a name to wait for or cancel together), ``block`` (``False``:
        raise ``QueueFull`` rather than wait for room in a bounded queue), ``cache``
        (whether the result cache answers them; see the class)."""
        return self._defaults.options(**options)

    def put(self, value: Any, *, encoding: Optional[str] = None) -> Ref:
        """Puts ``value`` once, and returns the :class:`~wasp.Ref` to pass to jobs in its
        place: the value is encoded and hashed here once, sent to each node once (when
        the first job that takes it goes there) and kept there, however many jobs take it.

        ``encoding``: ``"pickle"`` (the default; a Python function gets an equal value of
        the same type, as with any argument), ``"msgpack"`` (what a module's job reads:
        the types of MessagePack) or ``"bytes"`` (the default for ``bytes``: they are the
        value). Raises ``TypeError`` for what cannot travel, and ``ValueError`` for a value
        over the client's maximum (1 GiB)."""
        self._check_open()
        return self._core.put(value, encoding)

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError("the client was shut down")

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> WaspFuture:
        """Submits ``fn(*args, **kwargs)`` and returns its future (see the class for what
        ``fn`` may be; ``options()`` for limits). Raises ``TypeError`` at once for what
        cannot travel to the sandbox, saying what and what to do instead, and
        ``RuntimeError`` after ``shutdown()``."""
        if self._shutdown:
            raise RuntimeError("cannot submit a job after shutdown")
        submitted = self._core.submit(fn, args, kwargs)
        assert submitted is not None  # a submission that may wait always finds room
        return _FUTURE(submitted, self._core.dispatcher)

    def map(
        self,
        fn: Any,
        *iterables: Iterable[Any],
        timeout: Optional[float] = None,
        chunksize: int = 1,
        ordered: bool = True,
        window: Optional[int] = None,
        progress: Union[bool, Callable[[int, Optional[int]], None]] = False,
        buffersize: Optional[int] = None,
    ) -> Iterator[Any]:
        """``Executor.map``: ``fn`` on each item of ``iterables`` (zipped), results in
        input order. See :meth:`Options.map` (``buffersize``, as Python 3.14 names it, is
        ``window``)."""
        return self._defaults.map(
            fn,
            *iterables,
            timeout=timeout,
            chunksize=chunksize,
            ordered=ordered,
            window=window or buffersize,
            progress=progress,
        )

    def _submit(
        self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Submitted:
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot submit a job after shutdown")
        submitted = self._core.submit(fn, args, kwargs, **options)
        if submitted is None:
            raise QueueFull("the queue is full (max_queued): nothing was submitted")
        return submitted

    def _future(self, submitted: Submitted) -> WaspFuture:
        return _FUTURE(submitted, self._core.dispatcher)

    def wait(self, group: Optional[str] = None, timeout: Optional[float] = None) -> GroupSummary:
        """Waits until ``group`` (every job, for ``None``) has nothing pending, at most
        ``timeout`` seconds. Ctrl-C raises ``KeyboardInterrupt`` and cancels the group."""
        try:
            summary = self._core.native.wait_group(group, timeout)
        except KeyboardInterrupt:
            self.cancel(group)
            raise
        return GroupSummary(*summary)

    def cancel(self, group: Optional[str] = None) -> int:
        """Cancels every unfinished job of ``group`` (of every group, for ``None``); returns
        how many."""
        native = self._core.native
        groups = [group] if group is not None else [*self._core.groups, "default"]
        return sum(native.cancel_group(name) for name in groups)

    @property
    def workers(self) -> int:
        """The number of local workers."""
        return self._core.native.workers()

    @workers.setter
    def workers(self, count: int) -> None:
        self._core.native.set_workers(count)

    def capacity(self) -> int:
        """Local workers plus the workers of the connected nodes."""
        return self._core.native.capacity()

    def wait_for_nodes(self, count: int, timeout: float = 10.0) -> int:
        """Waits until ``count`` nodes are connected; raises ``ConnectionError`` saying why
        each missing node is missing (e.g. a wrong secret)."""
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


class Options:
    """A view of a :class:`Client` whose jobs get these options (see
    :meth:`Client.options`): the same ``submit`` and ``map``."""

    __slots__ = ("_client", "_options")

    def __init__(self, client: Client, options: dict[str, Any]) -> None:
        self._client = client
        self._options = options

    def options(self, **options: Any) -> Options:
        """This view with more options (those given replace this view's)."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(unknown)}: options are {', '.join(OPTIONS)}"
            )
        return Options(self._client, {**self._options, **options})

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> WaspFuture:
        """Submits ``fn(*args, **kwargs)`` with this view's options; see
        :meth:`Client.submit`."""
        client = self._client
        return client._future(client._submit(fn, args, kwargs, self._options))

    def map(
        self,
        fn: Any,
        *iterables: Iterable[Any],
        timeout: Optional[float] = None,
        chunksize: int = 1,
        ordered: bool = True,
        window: Optional[int] = None,
        progress: Union[bool, Callable[[int, Optional[int]], None]] = False,
    ) -> Iterator[Any]:
        """``fn`` on each item of ``iterables`` (zipped, as the built-in ``map``), results
        in input order (``ordered=False``: as they finish).

        ``timeout`` is the deadline for the whole iteration, as in ``Executor.map``: past it,
        the next result raises ``TimeoutError`` and what is left is cancelled. ``chunksize``
        runs that many calls of a Python function in one job (fewer, larger jobs: less
        overhead per call; a module's job ignores it). At most ``window`` jobs are in
        flight (default: 8 per worker and node), so an endless iterable is fine. The first
        call to fail raises its exception where its result would be; the jobs still in
        flight are then cancelled, as they are when the iterator is closed early or Ctrl-C
        interrupts it. ``progress=True`` draws a progress bar on stderr; a callable gets
        ``(done, total)`` (``total`` is ``None`` for iterables without a length).
        """
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        client = self._client
        total = _length(iterables)
        report = _progress(progress, total)
        window = window or max(8 * client._core.native.capacity(), 16)
        deadline = None if timeout is None else time.monotonic() + timeout
        calls: Iterator[tuple[Any, ...]] = zip(*iterables)
        if type(fn) is not JobRef:
            _ship.check_callable(fn)
        chunked = chunksize > 1 and type(fn) is not JobRef
        if chunked:
            calls = _chunks(calls, chunksize)
            fn = _ChunkCall(fn)
        batches = _Map(client, fn, calls, self._options, window, deadline)
        results = batches.ordered() if ordered else batches.unordered()
        if chunked:
            results = (value for chunk in results for value in chunk)
        return _reporting(results, report)


class _Map:
    """One ``map``: a bounded window of jobs in flight."""

    def __init__(
        self,
        client: Client,
        fn: Any,
        calls: Iterator[tuple[Any, ...]],
        options: dict[str, Any],
        window: int,
        deadline: Optional[float],
    ) -> None:
        self.client = client
        self.fn = fn
        self.calls = calls
        self.options = options
        self.window = window
        self.deadline = deadline
        self.exhausted = False

    def _next(self) -> Optional[Submitted]:
        if self.exhausted:
            return None
        args = next(self.calls, None)
        if args is None:
            self.exhausted = True
            return None
        return self.client._submit(self.fn, args, {}, self.options)

    def _left(self) -> Optional[float]:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise concurrent.futures.TimeoutError()
        return left

    def ordered(self) -> Iterator[Any]:
        in_flight: deque[Submitted] = deque()
        try:
            while True:
                while len(in_flight) < self.window:
                    submitted = self._next()
                    if submitted is None:
                        break
                    in_flight.append(submitted)
                if not in_flight:
                    return
                head = in_flight.popleft()
                try:
                    if not head.wait(self._left()):
                        raise concurrent.futures.TimeoutError()
                except BaseException:
                    head.native.cancel()
                    raise
                yield head.outcome().unwrap()
        finally:
            for submitted in in_flight:
                submitted.native.cancel()

    def unordered(self) -> Iterator[Any]:
        finished: queue.SimpleQueue[Submitted] = queue.SimpleQueue()
        in_flight: set[Submitted] = set()
        dispatcher = self.client._core.dispatcher
        try:
            while True:
                while len(in_flight) < self.window:
                    submitted = self._next()
                    if submitted is None:
                        break
                    in_flight.add(submitted)
                    dispatcher.watch(submitted.native, functools.partial(finished.put, submitted))
                if not in_flight:
                    return
                submitted = _get(finished, self._left)
                in_flight.discard(submitted)
                yield submitted.outcome().unwrap()
        finally:
            for submitted in in_flight:
                submitted.native.cancel()


class _ChunkCall:
    """A chunk of calls of a Python function, as one job: inside the sandbox it is
    ``functools.partial(wasp_runner_bundle.run_chunk, function)``, called with the chunk's
    argument tuples."""

    __slots__ = ("function",)

    def __init__(self, function: Any) -> None:
        self.function = function

    def __call__(self, chunk: list[tuple[Any, ...]]) -> list[Any]:
        return [self.function(*args) for args in chunk]

    def __reduce__(self) -> tuple[Any, ...]:
        return functools.partial, (sandbox_function("run_chunk"), self.function)


def _chunks(calls: Iterator[tuple[Any, ...]], size: int) -> Iterator[tuple[Any, ...]]:
    while True:
        chunk = [args for _, args in zip(range(size), calls)]
        if not chunk:
            return
        yield (chunk,)


def _reporting(results: Iterator[Any], report: Callable[..., None]) -> Iterator[Any]:
    done = 0
    try:
        for value in results:
            done += 1
            report(done)
            yield value
    finally:
        # Closing the jobs' iterator now cancels what is still in flight.
        close = getattr(results, "close", None)
        if close is not None:
            close()
        report(done, final=True)


def _get(finished: queue.SimpleQueue[Submitted], left: Callable[[], Optional[float]]) -> Any:
    """The next finished job, waiting in slices so that Ctrl-C is heard."""
    while True:
        remaining = left()
        try:
            return finished.get(timeout=0.05 if remaining is None else min(0.05, remaining))
        except queue.Empty:
            continue


def _length(iterables: tuple[Iterable[Any], ...]) -> Optional[int]:
    lengths = [len(it) for it in iterables if isinstance(it, Sized)]
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


__all__ = ["Client", "Options", "WaspFuture"]
