"""The modern API: real ``concurrent.futures`` futures (``as_completed``, ``wait``,
callbacks, ``asyncio``), bounded maps, groups, resizing, statistics as data, and the GIL
released while jobs run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import sys
import threading
import time
import weakref

import pytest
from conftest import TIMEOUT

import wasp
from wasp import _client
from wasp._future import LAZY, LazyFuture, WaspFuture


@pytest.fixture(params=[LazyFuture, WaspFuture], ids=["lazy", "public-api"])
def future_kind(request, monkeypatch):
    """The tests of futures run with both kinds: the lazy one a Client makes where this
    Python's Future is the one wasp knows, and the one that uses only Future's public
    methods, made where it is not."""
    monkeypatch.setattr(_client, "_FUTURE", request.param)
    return request.param


@pytest.fixture
def client(future_kind, client):
    return client


def test_futures_are_lazy_on_this_python(cache_dir, testjobs):
    # A future read only through result() makes no condition and is never handed to the
    # dispatcher thread: that is what keeps a future's cost near the Rust API's.
    assert LAZY
    with wasp.Client(workers=1, cache_dir=cache_dir) as client:
        future = client.submit(testjobs.add_one, 1)
        assert type(future) is LazyFuture
        assert future.result(TIMEOUT) == 2
        assert future._lazy_condition is None and not future._watched
        assert future.done() and not future.cancelled() and future.exception() is None
        # Something that waits on it otherwise makes them, on first use.
        waited = client.submit(testjobs.add_one, 2)
        assert concurrent.futures.wait([waited], timeout=TIMEOUT).done == {waited}
        assert waited._lazy_condition is not None and waited._watched
        assert waited.result() == 3


def test_futures_of_a_closed_client_can_still_be_waited_for(future_kind, testjobs, cache_dir):
    # The with block closes the client (its dispatcher thread goes); its jobs have ended,
    # and everything that waits on their futures still sees them end.
    with wasp.Client(workers=2, cache_dir=cache_dir) as client:
        futures = [client.submit(testjobs.add_one, x) for x in range(5)]
        late = client.submit(testjobs.add_one, 41)
        awaited = client.submit(testjobs.add_one, 9)
    assert sorted(f.result() for f in concurrent.futures.as_completed(futures, TIMEOUT)) == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert len(concurrent.futures.wait(futures, timeout=TIMEOUT).done) == 5
    seen = []
    late.add_done_callback(lambda f: seen.append(f.result()))
    assert seen == [42]

    async def main():
        return await asyncio.wait_for(asyncio.wrap_future(awaited), TIMEOUT)

    assert asyncio.run(main()) == 10


def test_a_future_cancelled_from_two_threads_at_once_is_cancelled_once(client, testjobs, caplog):
    # The caller's cancel() and the dispatcher (a callback makes it watch) settle the same
    # cancelled job at once; switching threads often makes them meet inside Future's
    # two-step cancel, which the second would find half done.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for _ in range(20):
            futures = [client.submit(testjobs.busy_ms, 600_000) for _ in range(50)]
            for future in futures:
                future.add_done_callback(lambda _f: time.sleep(0.0005))
            for future in futures:
                assert future.cancel()
                assert future.cancelled()
            done = concurrent.futures.wait(futures, timeout=TIMEOUT).done
            assert len(done) == 50
    finally:
        sys.setswitchinterval(interval)
    assert client._core.dispatcher.errors == 0
    assert not [r for r in caplog.records if r.name == "concurrent.futures"]


def test_a_watch_while_the_dispatcher_goes_idle_is_not_lost(client, testjobs, monkeypatch):
    # The dispatcher ends after a moment with nothing to do; a watch that comes just as it
    # decides to end (held there by this stand-in for a thread switch) gets a new one.
    dispatcher = client._core.dispatcher
    real = dispatcher._native
    deciding = threading.Event()

    class Slow:
        def __getattr__(self, name):
            return getattr(real, name)

        def watched(self):
            count = real.watched()
            if count == 0 and threading.current_thread().name == "wasp-dispatcher":
                deciding.set()
                time.sleep(0.3)
            return count

    monkeypatch.setattr(dispatcher, "_native", Slow())
    monkeypatch.setattr(dispatcher, "_IDLE", 0.05)
    first = client.submit(testjobs.add_one, 0)
    first.add_done_callback(lambda _f: None)  # starts the dispatcher
    assert deciding.wait(TIMEOUT)
    late = client.submit(testjobs.busy_ms, 50)
    # Not yet finished when watched: only the dispatcher can settle it for `wait`.
    assert concurrent.futures.wait([late], timeout=TIMEOUT).done == {late}


def test_a_failed_futures_result_leaves_no_cycle(client, testjobs):
    future = client.submit(testjobs.checked_sqrt, -1.0)
    with pytest.raises(wasp.JobError):
        future.result(TIMEOUT)
    client.wait(timeout=TIMEOUT)
    time.sleep(0.3)  # the dispatcher lets go of what it ran
    gc.disable()
    try:
        gone = weakref.ref(future)
        del future
        assert gone() is None, "freed by its reference count, not the cycle collector"
    finally:
        gc.enable()


def test_submit_returns_a_future(client, sum_primes):
    future = client.submit(sum_primes.sum_primes, 100)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(TIMEOUT) == 1060
    assert future.done() and not future.cancelled()


def test_as_completed_and_wait_work_on_wasp_futures(client, sum_primes):
    inputs = [10, 100, 1000, 10_000]
    futures = {client.submit(sum_primes.sum_primes, n): n for n in inputs}
    results = {}
    for future in concurrent.futures.as_completed(futures, timeout=TIMEOUT):
        results[futures[future]] = future.result()
    assert results == {10: 17, 100: 1060, 1000: 76127, 10_000: 5736396}
    more = [client.submit(sum_primes.sum_primes, n) for n in inputs]
    done, pending = concurrent.futures.wait(more, timeout=TIMEOUT)
    assert len(done) == 4 and not pending


def test_wasp_futures_can_be_awaited(client, sum_primes):
    async def main():
        futures = [asyncio.wrap_future(client.submit(sum_primes.sum_primes, n)) for n in (10, 100)]
        return await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)

    assert asyncio.run(main()) == [17, 1060]


def test_done_callbacks_run_once_on_the_dispatcher_thread(client, sum_primes):
    seen = []
    finished = threading.Event()

    def record(future):
        seen.append((threading.current_thread().name, future.result()))
        if len(seen) == 10:
            finished.set()

    for n in range(10):
        client.submit(sum_primes.sum_primes, n * 10).add_done_callback(record)
    assert finished.wait(TIMEOUT)
    # Callbacks run in order on the one dispatcher thread: once a later job's callback has
    # run, a duplicate of an earlier one would have run before it.
    later = threading.Event()
    client.submit(sum_primes.sum_primes, 10).add_done_callback(lambda _f: later.set())
    assert later.wait(TIMEOUT)
    assert len(seen) == 10
    threads = {name for name, _ in seen}
    assert threads <= {"wasp-dispatcher", threading.current_thread().name}, threads


def test_a_raising_callback_is_reported_and_harms_nothing(client, sum_primes, caplog):
    finished = threading.Event()

    def boom(_future):
        raise RuntimeError("the callback's own bug")

    first = client.submit(sum_primes.sum_primes, 100)
    first.add_done_callback(boom)
    # A future's callbacks run in order: once this one has run, boom's report is made.
    reported = threading.Event()
    first.add_done_callback(lambda _f: reported.set())
    second = client.submit(sum_primes.sum_primes, 10)
    second.add_done_callback(lambda _f: finished.set())
    assert first.result(TIMEOUT) == 1060
    assert reported.wait(TIMEOUT) and finished.wait(TIMEOUT), (
        "the dispatcher goes on after a raising callback"
    )
    # concurrent.futures reports a raising done-callback through its logger, with the
    # callback's exception; a raising pp callback is wasp's to report (see test_pp): both
    # keep the result.
    reports = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert len(reports) == 1, reports
    assert "exception calling callback" in reports[0].getMessage()
    assert "the callback's own bug" in str(reports[0].exc_info[1])
    assert second.result(TIMEOUT) == 17


def test_a_raising_pp_callback_is_reported_on_stderr(sum_primes, cache_dir, capfd):
    server = wasp.Server(1, cache_dir=cache_dir)
    try:

        def boom(result):
            raise ValueError(f"callback saw {result}")

        job = server.submit(sum_primes.sum_primes, (100,), callback=boom)
        assert job() == 1060
        server.wait()
        later = server.submit(sum_primes.sum_primes, (10,))
        assert later() == 17
    finally:
        # Stopping the server joins its dispatcher thread, so what it printed is all
        # written before it is read (reading while it writes could lose a write).
        server.destroy()
    assert "callback saw 1060" in capfd.readouterr().err
    assert server._core.dispatcher.errors == 1


def test_cancel_a_future(client, testjobs):
    long = client.submit(testjobs.busy_ms, 600_000)
    assert long.cancel()
    assert long.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        long.result(TIMEOUT)
    # The workers are free.
    assert client.submit(testjobs.add_one, 1).result(TIMEOUT) == 2


def test_a_finished_future_is_not_cancelled_and_reads_as_done(client, testjobs):
    future = client.submit(testjobs.add_one, 1)
    client.wait(timeout=TIMEOUT)  # the job has ended; its future has not been read
    assert not future.cancel()
    assert future.done() and not future.cancelled()
    assert future.exception() is None and future.result() == 2
    assert "finished" in repr(future)
    # Waiting and callbacks on a future that is already settled.
    assert concurrent.futures.wait([future], timeout=TIMEOUT).done == {future}
    seen = []
    future.add_done_callback(seen.append)
    assert seen == [future]


def test_waiting_on_futures_whose_jobs_ended_unseen(client, testjobs):
    futures = [client.submit(testjobs.add_one, x) for x in range(50)]
    client.wait(timeout=TIMEOUT)  # every job has ended; no future has been read
    done, pending = concurrent.futures.wait(futures, timeout=TIMEOUT)
    assert (len(done), pending) == (50, set())
    finished = list(concurrent.futures.as_completed(futures, timeout=TIMEOUT))
    assert sorted(f.result() for f in finished) == list(range(1, 51))


def test_groups_are_waited_for_and_cancelled(client, testjobs):
    fast = [client.options(group="fast").submit(testjobs.add_one, x) for x in range(5)]
    slow = [client.options(group="slow").submit(testjobs.busy_ms, 600_000) for _ in range(4)]
    summary = client.wait("fast", timeout=TIMEOUT)
    assert (summary.submitted, summary.finished, summary.pending) == (5, 5, 0)
    assert [f.result(TIMEOUT) for f in fast] == [1, 2, 3, 4, 5]
    assert client.cancel("slow") == 4
    for future in slow:
        # A job cancelled by its group is a cancelled future.
        with pytest.raises(concurrent.futures.CancelledError):
            future.result(TIMEOUT)
        assert future.cancelled()
    assert client.wait("slow", timeout=TIMEOUT).pending == 0


def test_map_keeps_input_order_or_yields_as_they_finish(client, testjobs):
    inputs = [(12 - i) * 5 for i in range(12)]
    assert list(client.map(testjobs.busy_ms, inputs)) == inputs
    unordered = list(client.map(testjobs.busy_ms, inputs, ordered=False))
    assert sorted(unordered) == sorted(inputs)
    # Several iterables are zipped, as the built-in map does.
    assert list(client.map(testjobs.repeat, ["a", "b"], [2, 3])) == ["aa", "bbb"]


def test_map_keeps_a_bounded_window(client, testjobs):
    seen_ahead = []

    def progress(done, total):
        stats = client.stats()
        seen_ahead.append(stats.submitted - stats.finished)

    results = list(client.map(testjobs.add_one, range(2_000), window=10, progress=progress))
    assert results == [x + 1 for x in range(2_000)]
    assert max(seen_ahead) <= 10


def test_map_raises_the_first_error_and_cancels_the_rest(client, testjobs):
    values = iter(client.map(testjobs.busy_or_fail, [1, -1, *([600_000] * 50)]))
    assert next(values) == 1
    with pytest.raises(wasp.JobFailed, match="asked to fail"):
        next(values)
    # The long jobs still in flight were cancelled: nothing is pending.
    assert client.wait(timeout=TIMEOUT).pending == 0


def test_a_full_queue(testjobs, cache_dir):
    with wasp.Client(workers=0, max_queued=2, cache_dir=cache_dir) as client:
        client.submit(testjobs.add_one, 1)
        client.submit(testjobs.add_one, 2)
        with pytest.raises(wasp.QueueFull):
            client.options(block=False).submit(testjobs.add_one, 3)
        client.workers = 1
        assert client.submit(testjobs.add_one, 3).result(TIMEOUT) == 4


def test_workers_can_be_changed_at_run_time(client, testjobs):
    assert client.workers == 2
    client.workers = 1
    assert client.workers == 1
    assert client.submit(testjobs.add_one, 1).result(TIMEOUT) == 2
    client.workers = 3
    assert list(client.map(testjobs.add_one, range(30))) == list(range(1, 31))


def test_statistics_are_data(client, sum_primes):
    list(client.map(sum_primes.sum_primes, [10, 100]))
    client.wait(timeout=TIMEOUT)
    stats = client.stats()
    assert isinstance(stats, wasp.Stats)
    assert (stats.submitted, stats.finished, stats.failed) == (2, 2, 0)
    assert sum(worker.jobs for worker in stats.workers) == 2
    assert stats.nodes == []
    assert "Job execution statistics" in str(stats)


def test_other_threads_run_while_a_job_is_waited_for(client, testjobs):
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        assert client.submit(testjobs.busy_ms, 300).result(TIMEOUT) == 300
    finally:
        stop.set()
        thread.join()
    # The other thread kept running while this one waited (the GIL was released).
    assert len(ticks) > 20, len(ticks)
