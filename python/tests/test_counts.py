"""Counts that add up: a job is counted before its outcome is delivered to anyone, so a
program that reads ``progress()`` or ``stats()`` (or pp's ``get_stats()``) right after
collecting its results finds every one of them counted, with nothing left queued or
running. A thousand batches of eight, each way a result reaches Python: ``result()``,
``as_completed``, and pp's ``job()`` with a callback."""

from __future__ import annotations

import concurrent.futures

from conftest import TIMEOUT

import wasp

BATCHES = 1_000
JOBS = 8


def _check_counts(client: wasp.Client, group: str, done_in_group: int, done: int) -> None:
    progress = client.progress(group)
    assert progress is not None
    assert (progress.finished, progress.queued, progress.running) == (done_in_group, 0, 0), progress
    stats = client.stats()
    assert (stats.finished, stats.queued, stats.running) == (done, 0, 0), str(stats)
    assert sum(worker.jobs for worker in stats.workers) == done, str(stats)


def test_counts_add_up_once_every_future_has_its_result(client, testjobs):
    for batch in range(BATCHES):
        futures = [client.submit(testjobs.add_one, x) for x in range(JOBS)]
        assert [future.result(TIMEOUT) for future in futures] == list(range(1, JOBS + 1))
        done = (batch + 1) * JOBS
        _check_counts(client, "default", done, done)


def test_counts_add_up_once_as_completed_has_every_future(client, testjobs):
    for batch in range(BATCHES):
        group = f"batch-{batch}"
        view = client.options(group=group)
        futures = [view.submit(testjobs.add_one, x) for x in range(JOBS)]
        results = [future.result() for future in concurrent.futures.as_completed(futures, TIMEOUT)]
        assert sorted(results) == list(range(1, JOBS + 1))
        _check_counts(client, group, JOBS, (batch + 1) * JOBS)


def test_pp_statistics_add_up_once_every_job_has_its_result(testjobs, cache_dir):
    server = wasp.Server(2, cache_dir=cache_dir)
    seen = []
    try:
        for batch in range(BATCHES):
            jobs = [
                server.submit(testjobs.add_one, (x,), callback=seen.append) for x in range(JOBS)
            ]
            assert [job() for job in jobs] == list(range(1, JOBS + 1))
            done = (batch + 1) * JOBS
            assert server.get_stats()["local"].njobs == done
            progress = server.get_progress("default")
            assert (progress.finished, progress.queued, progress.running) == (done, 0, 0)
    finally:
        server.destroy()
    assert len(seen) == BATCHES * JOBS
