"""Parallel Python's semantics for the ported programs' native runs (``import pp`` there).

pp ships a job's code and the values it reads when the job is submitted, so each job here
is a process forked at ``submit``: it runs the caller's objects as they were then. Its
result or exception comes back pickled. Where pp printed a failed job's traceback and
returned ``None``, ``job()`` raises the exception, as wasp's does.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any, Callable, Optional

_FORK = multiprocessing.get_context("fork")


def _run(connection: Any, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        outcome = (True, func(*args))
    except BaseException as error:  # the job's exception goes back to the caller
        outcome = (False, error)
    connection.send(outcome)
    connection.close()


class _Task:
    """A submitted job: call it for its result."""

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        callback: Optional[Callable[..., Any]],
        callbackargs: tuple[Any, ...],
    ) -> None:
        self._finished = threading.Event()
        self._outcome: tuple[bool, Any] = (False, None)
        receiver, sender = _FORK.Pipe(duplex=False)
        process = _FORK.Process(target=_run, args=(sender, func, args), daemon=True)
        process.start()
        sender.close()
        waiter = threading.Thread(
            target=self._collect, args=(receiver, process, callback, callbackargs), daemon=True
        )
        waiter.start()

    def _collect(self, receiver, process, callback, callbackargs) -> None:
        try:
            self._outcome = receiver.recv()
        except EOFError:
            self._outcome = (False, RuntimeError("the job's process died"))
        process.join()
        if callback is not None:
            ok, value = self._outcome
            callback(*callbackargs, value if ok else None)
        self._finished.set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self) -> None:
        self._finished.wait()

    def __call__(self, raw_result: bool = False) -> Any:
        self.wait()
        ok, value = self._outcome
        if not ok:
            raise value
        return value


class Server:
    """pp's job server, on processes forked at each submit."""

    def __init__(
        self,
        ncpus: Any = "autodetect",
        ppservers: tuple[str, ...] = (),
        secret: Optional[str] = None,
        **settings: Any,
    ) -> None:
        self._ncpus = 2 if ncpus == "autodetect" else ncpus
        self._tasks: dict[str, list[_Task]] = {}
        self._jobs = 0

    def submit(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...] = (),
        depfuncs: tuple[Any, ...] = (),
        modules: tuple[str, ...] = (),
        callback: Optional[Callable[..., Any]] = None,
        callbackargs: tuple[Any, ...] = (),
        group: str = "default",
        globals: Optional[dict[str, Any]] = None,
    ) -> _Task:
        for name in modules:
            __import__(name)
        task = _Task(func, args, callback, callbackargs)
        self._tasks.setdefault(group, []).append(task)
        self._jobs += 1
        return task

    def wait(self, group: Optional[str] = None) -> None:
        groups = [group] if group is not None else list(self._tasks)
        for name in groups:
            for task in self._tasks.get(name, ()):
                task.wait()

    def get_ncpus(self) -> int:
        return self._ncpus

    def set_ncpus(self, ncpus: Any = "autodetect") -> None:
        self._ncpus = 2 if ncpus == "autodetect" else ncpus

    def get_active_nodes(self) -> dict[str, int]:
        return {"local": self._ncpus}

    def print_stats(self) -> None:
        print("Job execution statistics:")
        print(f" {self._jobs} jobs, local")

    def destroy(self) -> None:
        self.wait()


class Template:
    """pp's template, ``Template(job_server, func, depfuncs=(), modules=(), callback=None,
    callbackargs=(), group="default", globals=None)``: a job's every part but its
    arguments."""

    def __init__(self, job_server: Server, func: Callable[..., Any], *parts: Any, **named: Any):
        self.job_server = job_server
        self.func = func
        self.parts = parts
        self.named = named

    def submit(self, *args: Any) -> _Task:
        return self.job_server.submit(self.func, args, *self.parts, **self.named)
