"""``WaspFuture``: a job's ``concurrent.futures.Future``, cheap until something besides
``result()`` waits on it.

A plain ``Future`` makes a condition variable (with its lock), a list of waiters and a list
of callbacks when it is made, and an executor settles it when its work ends. For a job
that costs a few microseconds those objects, and a thread that settles every future, cost
more than the job: a million futures would be seven million objects for the garbage
collector to walk. A ``LazyFuture``, what a ``Client`` makes, makes them on first use
instead, and its job's end is reported to the dispatcher thread only once something waits
on it that is not ``result()``: a done-callback (``add_done_callback``, ``asyncio.wrap_future``), or
``concurrent.futures.wait`` / ``as_completed`` (which add a waiter to the future's list of
waiters). ``result()``, ``exception()`` and ``done()`` ask the job itself.

This reads ``Future``'s own attributes (``_condition``, ``_waiters``, ``_done_callbacks``,
``_state``, ``_result``, ``_exception``), unchanged from Python 3.2 to today, which
``wait`` and ``as_completed`` use. If a Python's ``Future`` holds other attributes, futures
are plain ``WaspFuture``s instead, made by ``Future.__init__`` and settled by the
dispatcher as soon as their jobs end (``LAZY`` is false): slower, never wrong.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import weakref
from concurrent.futures import Future, _base
from typing import Any, Callable, Optional

from ._core import Dispatcher, Submitted
from ._errors import JobCancelled
from ._ship.walk import TAKEN

#: The attributes ``Future.__init__`` makes, as this module knows them.
_FUTURE_ATTRIBUTES = {
    "_condition",
    "_state",
    "_result",
    "_exception",
    "_waiters",
    "_done_callbacks",
}

#: Whether this Python's ``Future`` is the one this module knows: then futures are lazy.
LAZY = set(vars(concurrent.futures.Future())) == _FUTURE_ATTRIBUTES

#: Guards making a future's condition and lists against settling it without them.
_MAKING = threading.Lock()

_PENDING = _base.PENDING
_FINISHED = _base.FINISHED
_CANCELLED = (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED)
_DONE = (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED, _base.FINISHED)


class _Waiters(list):  # type: ignore[type-arg]
    """A future's list of waiters: ``wait`` and ``as_completed`` add theirs, and the first
    one added has the job's end reported to the dispatcher, which then settles the future
    and so wakes them."""

    __slots__ = ("future",)

    def __init__(self, future: LazyFuture) -> None:
        super().__init__()
        # Weak: the future holds its list, and a cycle would wait for the collector.
        self.future = weakref.ref(future)

    def append(self, waiter: Any) -> None:
        # First the waiter, then the watch, which settles the future at once (notifying
        # the waiter) if its job has ended.
        super().append(waiter)
        future = self.future()
        if future is not None:
            future._watch()


class WaspFuture(concurrent.futures.Future[Any]):
    """A job's future: a ``concurrent.futures.Future``, settled when its job ends.

    ``concurrent.futures.wait``, ``as_completed``, ``add_done_callback`` and
    ``asyncio.wrap_future`` work with it. ``result()`` waits for the job itself (with the GIL
    released, Ctrl-C heard: it cancels the job and raises ``KeyboardInterrupt``).
    ``running()`` is true while a worker or a node runs the job. ``cancel()`` cancels the
    job wherever it is, queued or running, on nodes too, and returns ``False`` if it had
    finished. Done-callbacks run on wasp's one dispatcher thread: one that waits for another
    future should call its ``result()``, which waits for the job itself, not
    ``concurrent.futures.wait``, which would wait for this very thread.

    A future is also an argument for another job of the same client (anywhere inside its
    arguments): that job takes this one's result, waiting on the server (not in the
    caller) until this one has finished, and fails with ``DependencyFailed`` if it failed
    or was cancelled.
    """

    def __init__(self, submitted: Submitted, dispatcher: Dispatcher) -> None:
        # This class uses only Future's public methods: the dispatcher settles the future
        # as soon as its job ends (see the module for the lazy kind a Client makes).
        super().__init__()
        self._submitted = submitted
        dispatcher.watch(submitted.native, self._settle)

    @property
    def job_id(self) -> int:
        """The job's id within its server."""
        return self._submitted.native.id

    @property
    def _wasp_native(self) -> Any:
        """The native job, for a module's job's arguments (``values/encode.rs``)."""
        return self._submitted.native

    def _wasp_take(self) -> tuple[int, Any, tuple[tuple[str, str], ...], object]:
        """How a Python function's call takes this job's result (see ``wasp._data``)."""
        return self._submitted._wasp_take()

    def _settle(self) -> None:
        """Moves the finished job's outcome into the future (the dispatcher and a waiting
        caller may race to: the first wins, the other finds it done)."""
        if super().done():
            return
        self._finish(*self._outcome())

    def _outcome(self) -> tuple[Any, Optional[BaseException]]:
        """The finished job's value and error; an outcome that cannot be read is the
        error (a future is always settled, never left pending for its waiters)."""
        try:
            return self._submitted.value_or_error()
        except Exception as error:
            return None, error

    def _finish(self, value: Any, error: Optional[BaseException]) -> None:
        """Settles the future through Future's methods, notifying who waits."""
        try:
            if isinstance(error, JobCancelled):
                # Cancelled by its group, a shutdown, or this future: it is cancelled.
                self._cancel_once()
            elif error is None:
                self.set_result(value)
            else:
                self.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass  # settled meanwhile by the other

    def _cancel_once(self) -> None:
        """Cancels the future and notifies its waiters, once: Future does it in two steps
        (``cancel``, then ``set_running_or_notify_cancel``), and two threads taking both
        would make the second's second step raise."""
        claim = object()
        if vars(self).setdefault("_canceller", claim) is claim:
            if Future.cancel(self):
                self.set_running_or_notify_cancel()
            return
        # Another thread is cancelling it: wait until it has (a few bytecodes at most).
        with contextlib.suppress(concurrent.futures.CancelledError):
            Future.exception(self, None)

    def done(self) -> bool:
        if not super().done() and self._submitted.native.done():
            self._settle()
        return super().done()

    def running(self) -> bool:
        return not self.done() and self._submitted.native.running()

    def cancel(self) -> bool:
        if self.done():
            return self.cancelled()
        if not self._submitted.native.cancel():
            # It finished meanwhile: its result stands.
            self._settle()
            return self.cancelled()
        self._settle()
        return True

    def result(self, timeout: Optional[float] = None) -> Any:
        try:
            self._wait(timeout)
            return super().result(timeout=0)
        finally:
            # A raised exception's traceback holds this frame: no cycle through it.
            del self

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        self._wait(timeout)
        return super().exception(timeout=0)

    def _settled(self) -> bool:
        """Whether the future holds its outcome already."""
        return Future.done(self)

    def _wait(self, timeout: Optional[float]) -> None:
        """Waits for the job, at most ``timeout`` seconds, and settles the future if it
        has ended."""
        if self._settled():
            return
        try:
            finished = self._submitted.wait(timeout)
        except KeyboardInterrupt:
            # Ctrl-C while waiting for the job: it is no longer wanted.
            self.cancel()
            raise
        if finished:
            self._settle()


class LazyFuture(WaspFuture):
    """A :class:`WaspFuture` whose condition and lists are made on first use, and whose
    job's end is reported to the dispatcher only once something besides ``result()``
    waits on it (see the module). What a ``Client`` makes where ``LAZY`` holds."""

    # Until set on the instance: fewer attributes to set on every job's path.
    _watched = False
    _result: Any = None
    _exception: Optional[BaseException] = None
    _lazy_condition: Optional[threading.Condition] = None
    _lazy_waiters: Optional[_Waiters] = None
    _lazy_callbacks: Optional[list[Callable[[Any], object]]] = None

    def __init__(self, submitted: Submitted, dispatcher: Dispatcher) -> None:
        # Not Future.__init__: what it makes is made on first use (see the module).
        self._submitted = submitted
        self._dispatcher = dispatcher
        self._state = _PENDING

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        if self._lazy_condition is None:
            with _MAKING:
                if self._lazy_condition is None:
                    self._lazy_condition = threading.Condition()
        return self._lazy_condition

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        if self._lazy_waiters is None:
            with _MAKING:
                if self._lazy_waiters is None:
                    self._lazy_waiters = _Waiters(self)
        return self._lazy_waiters

    @property
    def _done_callbacks(self) -> list[Callable[[Any], object]]:
        if self._lazy_callbacks is None:
            with _MAKING:
                if self._lazy_callbacks is None:
                    self._lazy_callbacks = []
        return self._lazy_callbacks

    def _watch(self) -> None:
        """Settles the future now if its job has ended, or else has the dispatcher settle
        it when the job ends (once). Settling here keeps waiting for a closed client's
        futures working: its dispatcher is gone, and its jobs have all ended."""
        if self._watched:
            return
        self._watched = True
        native = self._submitted.native
        if native.done():
            self._settle()
        else:
            self._dispatcher.watch(native, self._settle)

    def _settle(self) -> None:
        if self._state != _PENDING:
            return
        value, error = self._outcome()
        with _MAKING:
            if self._lazy_condition is None:
                # Nobody waits on the condition and there is no callback (both make it
                # first): there is nothing to notify.
                if self._state == _PENDING:
                    if error is None:
                        self._result, self._state = value, _FINISHED
                    elif isinstance(error, JobCancelled):
                        self._state = _base.CANCELLED_AND_NOTIFIED
                    else:
                        self._exception, self._state = error, _FINISHED
                return
        self._finish(value, error)

    def add_done_callback(self, fn: Callable[[concurrent.futures.Future[Any]], object]) -> None:
        self._watch()
        super().add_done_callback(fn)

    def done(self) -> bool:
        if self._state == _PENDING and self._submitted.native.done():
            self._settle()
        return self._state in _DONE

    def cancelled(self) -> bool:
        return self.done() and self._state in _CANCELLED

    def result(self, timeout: Optional[float] = None) -> Any:
        try:
            if self._state == _PENDING:
                self._wait(timeout)
            # Read as Future.result reads them, without its condition (nothing changes a
            # finished future).
            if self._state == _FINISHED:
                if self._exception is not None:
                    raise self._exception
                return self._result
            return Future.result(self, timeout=0)
        finally:
            # A raised exception's traceback holds this frame: no cycle through it.
            del self

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if self._state == _PENDING:
            self._wait(timeout)
        if self._state == _FINISHED:
            return self._exception
        return Future.exception(self, timeout=0)

    def _settled(self) -> bool:
        # Without asking Future, which would make the condition.
        return self._state != _PENDING


# A future is an argument another job takes (see ``wasp._data``), whatever its kind.
TAKEN.update((WaspFuture, LazyFuture))
