"""Parallel Python's API (``pp.Server``), so that pp programs port by changing the import.

::

    import wasp as pp

    job_server = pp.Server(ppservers=("node1:7878",), secret_file="cluster.key")
    job = job_server.submit(module.sum_primes, (100,))
    print(job())
    job_server.print_stats()

What differs from pp, and why:

- ``func`` is a plain Python function, as in pp, which runs in wasp's Python runner: in a
  WebAssembly sandbox, with the standard modules of :data:`wasp.runner.MODULES` and no
  files, network or environment. Its source travels with its ``depfuncs`` and ``modules``,
  as in pp, and the global constants it reads; what cannot travel (a lambda, a closure, a C
  function, a global that is not a constant) fails at ``submit`` saying why. ``func`` may
  also be a job of a WebAssembly module (``wasp.Module(path).name``); its ``depfuncs`` and
  ``modules`` are then checked and unused (the module holds its code).
- Results cross as MessagePack: tuples come back as lists.
- A job that fails raises its :class:`~wasp.JobError` from ``job()`` (pp printed a
  traceback and returned ``None``); its callback then gets ``None``, as pp's did.
- Beyond pp: ``put(value)`` puts a value once for many jobs (a ``wasp.Ref``), and a
  ``Job`` in another job's ``args`` stands for its result (that job waits on the server;
  see :meth:`wasp.Client.put` and ``wasp.DependencyFailed``).
- ``ppservers`` entries without a port get wasp's (7878); any entry with ``*`` turns on
  discovery on the LAN; nodes need the cluster secret (``secret`` or ``secret_file``).
- ``restart``, ``proto`` and ``socket_timeout`` are accepted and have no effect: every job
  runs in a fresh sandbox (as if ``restart=True``), values cross as MessagePack, and a
  node's silence is detected by heartbeats (``node_timeout``).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from . import runner
from ._core import DISPATCHER, Core, Outcome, Submitted
from ._data import Ref
from ._module import JobRef
from ._ship.walk import TAKEN
from ._stats import Progress

#: The port of a ``ppservers`` entry that gives none (``wasp node --listen 0.0.0.0:7878``).
DEFAULT_PORT = 7878


@dataclass
class Statistics:
    """pp's per-node statistics (``get_stats()``): workers, job time, job count."""

    ncpus: int
    time: float
    njobs: int
    rworker: Optional[str] = None


class Job:
    """A submitted job (pp's ``_Task``): call it for its result."""

    # One per job: slots keep it small and quick to make.
    __slots__ = (
        "__weakref__",
        "_called_back",
        "_native",
        "_outcome",
        "_printed",
        "_submitted",
        "callback",
        "callbackargs",
        "group",
        "tid",
    )

    def __init__(
        self,
        submitted: Submitted,
        group: str,
        callback: Optional[Callable[..., Any]],
        callbackargs: tuple[Any, ...],
    ) -> None:
        self._submitted = submitted
        self._native = submitted.native
        self.group = group
        self.tid = submitted.native.id
        self.callback = callback
        self.callbackargs = callbackargs
        self._outcome: Optional[Outcome] = None
        self._printed = False
        # Set once the callback has run: as in pp, the job is done only after it. Made
        # only for a job with a callback.
        self._called_back = None if callback is None else threading.Event()

    @property
    def finished(self) -> bool:
        """Whether the job has finished."""
        return self._native.done()

    def wait(self) -> None:
        """Waits for the job to finish, and its callback to have run, as pp does (Ctrl-C
        cancels it and raises ``KeyboardInterrupt``)."""
        try:
            self._submitted.wait()
            called_back = self._called_back
            if called_back is not None and threading.current_thread().name != DISPATCHER:
                while not called_back.wait(0.05):
                    pass
        except KeyboardInterrupt:
            self._native.cancel()
            raise

    def cancel(self) -> bool:
        """Cancels the job (not in pp): it ends as cancelled, and stops where it runs.
        Returns whether it was still unfinished."""
        return self._native.cancel()

    def _read(self) -> Outcome:
        if self._outcome is None:
            self.wait()
            self._outcome = self._submitted.outcome()
        return self._outcome

    def __call__(self, raw_result: bool = False) -> Any:
        """The job's result, waiting for it. What the job printed is printed here, once,
        as pp does. A job that failed raises its ``JobError`` (with its output attached).
        ``raw_result`` is accepted for pp's sake and has no effect."""
        outcome = self._outcome or self._read()
        if not self._printed:
            self._printed = True
            if outcome.stdout:
                print(outcome.stdout.decode("utf-8", "replace"), end="")
            if outcome.stderr:
                print(outcome.stderr.decode("utf-8", "replace"), end="", file=sys.stderr)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    def _run_callback(self) -> None:
        assert self.callback is not None and self._called_back is not None
        try:
            outcome = self._read()
            result = outcome.value if outcome.error is None else None
            self.callback(*self.callbackargs, result)
        finally:
            self._called_back.set()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "pending"
        return f"<wasp.Job {self.tid} group={self.group!r} {state}>"

    @property
    def _wasp_native(self) -> Any:
        """The native job, for a module's job's arguments (``values/encode.rs``)."""
        return self._native

    def _wasp_take(self) -> tuple[int, Any, tuple[tuple[str, str], ...], object]:
        """How a Python function's call takes this job's result (see ``wasp._data``)."""
        return self._submitted._wasp_take()


TAKEN.add(Job)


class Server:
    """Parallel Python's job server, on wasp: a pool of sandboxed workers (``ncpus``) and
    remote nodes (``ppservers``, each a ``wasp node``).

    Keyword-only settings beyond pp's: ``secret_file``, ``insecure``, ``cache_dir``,
    ``timeout``, ``max_memory``, ``fuel``, ``max_queued``, ``node_timeout``,
    ``reuse_instances``, ``packages`` (see :class:`wasp.Client`). A server left without
    ``destroy()`` is shut down at exit.
    """

    def __init__(
        self,
        ncpus: Union[int, str] = "autodetect",
        ppservers: Union[tuple[str, ...], list[str]] = (),
        secret: Optional[str] = None,
        restart: bool = False,
        proto: int = 2,
        socket_timeout: float = 3600,
        *,
        secret_file: Optional[Union[str, os.PathLike[str]]] = None,
        insecure: bool = False,
        cache_dir: Optional[Union[str, os.PathLike[str]]] = None,
        timeout: Optional[float] = None,
        max_memory: Optional[int] = None,
        fuel: Optional[int] = None,
        max_queued: Optional[int] = None,
        node_timeout: Optional[float] = None,
        reuse_instances: bool = False,
        packages: runner.PackagesArg = (),
        metrics: Optional[str] = None,
        metrics_token: Optional[str] = None,
    ) -> None:
        if not isinstance(ppservers, (tuple, list)):
            raise TypeError("ppservers argument must be a tuple")
        del restart, proto, socket_timeout  # see the module's notes
        workers = _ncpus(ncpus)
        peers = [_peer(entry) for entry in ppservers]
        self._core = Core(
            reuse_instances=reuse_instances,
            packages=packages,
            workers=workers,
            peers=peers,
            secret=secret,
            secret_file=None if secret_file is None else os.fspath(secret_file),
            insecure=insecure,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            timeout=timeout,
            max_memory=max_memory,
            fuel=fuel,
            max_queued=max_queued,
            node_timeout=node_timeout,
            metrics=metrics,
            metrics_token=metrics_token,
        )
        self._core.require_a_node(peers, workers)
        # Jobs whose callbacks have not run yet, by group.
        self._awaiting_callbacks: dict[str, set[Job]] = {}

    def submit(
        self,
        func: Union[JobRef, Callable[..., Any]],
        args: tuple[Any, ...] = (),
        depfuncs: tuple[Any, ...] = (),
        modules: tuple[str, ...] = (),
        callback: Optional[Callable[..., Any]] = None,
        callbackargs: tuple[Any, ...] = (),
        group: str = "default",
        globals: Optional[dict[str, Any]] = None,
    ) -> Job:
        """Submits ``func(*args)`` and returns its job; ``callback(*callbackargs, result)``
        runs when it finishes, on wasp's dispatcher thread (a callback that raises is
        reported on stderr)."""
        if not (
            isinstance(args, tuple)
            and isinstance(depfuncs, tuple)
            and isinstance(modules, tuple)
            and isinstance(callbackargs, tuple)
        ):
            # Which one, said as pp says it (checked at once above: every job's path).
            _check_tuple("args", args)
            _check_tuple("depfuncs", depfuncs)
            _check_tuple("modules", modules)
            _check_tuple("callbackargs", callbackargs)
        if modules and not all(isinstance(module, str) for module in modules):
            raise TypeError("modules argument must contain strings")
        if globals is not None and not isinstance(globals, dict):
            raise TypeError("globals argument must be a dictionary")
        submitted = self._core.submit(func, args, group=group, depfuncs=depfuncs, modules=modules)
        assert submitted is not None
        job = Job(submitted, group, callback, callbackargs)
        if callback is not None:
            self._awaiting_callbacks.setdefault(group, set()).add(job)
            self._core.dispatcher.watch(submitted.native, lambda: self._call_back(job))
        return job

    def put(self, value: Any, encoding: Optional[str] = None) -> Ref:
        """Puts ``value`` once, to pass to many jobs (not in pp): see
        :meth:`wasp.Client.put`."""
        return self._core.put(value, encoding)

    def _call_back(self, job: Job) -> None:
        try:
            job._run_callback()
        finally:
            self._awaiting_callbacks[job.group].discard(job)

    def wait(self, group: Optional[str] = None) -> None:
        """Waits for every job of ``group`` (of every group, for ``None``). Ctrl-C cancels
        them and raises ``KeyboardInterrupt``."""
        self._core.check()
        try:
            self._core.native.wait_group(group, None)
            # As in pp, a job's callback has run when the job counts as done.
            groups = [group] if group is not None else list(self._awaiting_callbacks)
            for name in groups:
                for job in list(self._awaiting_callbacks.get(name, ())):
                    job.wait()
        except KeyboardInterrupt:
            groups = [group] if group is not None else [*self._core.groups, "default"]
            for name in groups:
                self._core.native.cancel_group(name)
            raise

    def get_ncpus(self) -> int:
        """The number of local workers."""
        return self._core.native.workers()

    def set_ncpus(self, ncpus: Union[int, str] = "autodetect") -> None:
        """Grows or shrinks the local pool (shrinking is real: surplus workers exit)."""
        self._core.check()
        workers = _ncpus(ncpus)
        self._core.native.set_workers(workers if workers is not None else _available_cpus())

    def get_active_nodes(self) -> dict[str, int]:
        """Workers per place: ``"local"``, and each connected node's ``"host:port"``."""
        nodes = {"local": self.get_ncpus()}
        for node in self._core.native.stats()["nodes"]:
            if node["connected"]:
                nodes[node["address"]] = node["workers"]
        return nodes

    def get_stats(self) -> dict[str, Statistics]:
        """pp's statistics: per place, its workers, total job time and job count."""
        stats = self._core.native.stats()
        local = stats["workers"]
        result = {
            "local": Statistics(
                ncpus=stats["target_workers"],
                time=sum(w["busy"] for w in local),
                njobs=sum(w["jobs"] for w in local),
            )
        }
        for node in stats["nodes"]:
            result[node["address"]] = Statistics(
                ncpus=node["workers"], time=node["busy"], njobs=node["jobs"]
            )
        return result

    @property
    def metrics_address(self) -> Optional[str]:
        """Where the monitor listens (``"host:port"``), if ``metrics`` was given."""
        return self._core.native.monitor_address()

    def get_progress(self, group: str = "default") -> Optional[Progress]:
        """How far ``group`` has got (done, failed, running, queued, rate, ETA), or
        ``None`` if it has no jobs."""
        native = self._core.native.progress(group)
        return None if native is None else Progress.from_native(native)

    def print_stats(self) -> None:
        """Prints the statistics table, laid out as pp's."""
        print(self._core.native.stats_table())

    def destroy(self) -> None:
        """Shuts the server down: queued jobs are cancelled, running ones stopped."""
        self._core.close()


class Template:
    """pp's template: a job's function, ``depfuncs``, ``modules``, callback and group,
    submitted again and again with new arguments (``Template(server, f).submit(x)`` is
    ``server.submit(f, (x,))``)."""

    def __init__(
        self,
        job_server: Server,
        func: Union[JobRef, Callable[..., Any]],
        depfuncs: tuple[Any, ...] = (),
        modules: tuple[str, ...] = (),
        callback: Optional[Callable[..., Any]] = None,
        callbackargs: tuple[Any, ...] = (),
        group: str = "default",
        globals: Optional[dict[str, Any]] = None,
    ) -> None:
        self.job_server = job_server
        self.func = func
        self.depfuncs = depfuncs
        self.modules = modules
        self.callback = callback
        self.callbackargs = callbackargs
        self.group = group
        self.globals = globals

    def submit(self, *args: Any) -> Job:
        """Submits the template's function with ``args``; returns its job."""
        return self.job_server.submit(
            self.func,
            args,
            self.depfuncs,
            self.modules,
            self.callback,
            self.callbackargs,
            self.group,
            self.globals,
        )


def _ncpus(ncpus: Union[int, str]) -> Optional[int]:
    if ncpus == "autodetect":
        return None
    if not isinstance(ncpus, int) or isinstance(ncpus, bool):
        raise TypeError("ncpus must be an int or 'autodetect'")
    if ncpus < 0:
        raise ValueError("ncpus must be an integer >= 0")
    return ncpus


def _available_cpus() -> int:
    """The CPUs this process may use (its affinity), as wasp's default worker count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _peer(entry: str) -> str:
    """A ``ppservers`` entry as a wasp peer: ``*`` anywhere is discovery."""
    if not isinstance(entry, str):
        raise TypeError(f"ppservers entries are 'host' or 'host:port' strings, not {entry!r}")
    if "*" in entry:
        return "*"
    if entry.startswith("[") or entry.count(":") == 1:
        return entry
    return f"{entry}:{DEFAULT_PORT}"


def _check_tuple(name: str, value: object) -> None:
    if not isinstance(value, tuple):
        raise TypeError(f"{name} argument must be a tuple")
