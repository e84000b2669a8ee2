//! The pool: many jobs across all workers, callbacks, groups, map, async waiting, and
//! resizing under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasp::{JobError, JobOptions};
use wasp_tests::{TIMEOUT, block_on, server, sum_primes, testjobs, wait};

#[test]
fn many_jobs_across_all_workers_match_the_native_computation() {
    let (server, _dir) = server(2);
    let module = sum_primes();
    let inputs: Vec<u64> = (0..40).map(|i| 1_000 + 997 * i).collect();
    let jobs: Vec<_> = inputs
        .iter()
        .map(|&n| server.submit::<u64, _>(&module, "sum_primes", (n,)))
        .collect();
    for (&n, job) in inputs.iter().zip(&jobs) {
        assert_eq!(
            wait(job),
            Ok(sum_primes_guest::sum_primes(n)),
            "sum_primes({n})"
        );
    }
    let stats = server.stats();
    assert_eq!(stats.finished, 40);
    assert_eq!(stats.workers.iter().map(|w| w.jobs).sum::<u64>(), 40);
    assert!(
        stats.workers.iter().all(|w| w.jobs > 0),
        "every worker took work: {stats}"
    );
}

#[test]
fn callbacks_see_every_result_before_waiters_are_released() {
    let (server, _dir) = server(2);
    let module = testjobs();
    let total = Arc::new(AtomicU64::new(0));
    let jobs: Vec<_> = (0..20i64)
        .map(|x| {
            let job = server.submit::<i64, _>(&module, "add_one", (x,));
            let total = total.clone();
            job.on_complete(move |result| {
                total.fetch_add(result.unwrap() as u64, Ordering::SeqCst);
            });
            job
        })
        .collect();
    for job in &jobs {
        wait(job).unwrap();
    }
    assert_eq!(total.load(Ordering::SeqCst), (1..=20).sum::<u64>());

    // A callback on a finished job runs at once; a panicking callback harms nothing.
    let seen = Arc::new(Mutex::new(None));
    let seen_by_callback = seen.clone();
    jobs[0].on_complete(|_| panic!("callback bug"));
    jobs[0].on_complete(move |result| *seen_by_callback.lock().unwrap() = Some(result));
    assert_eq!(*seen.lock().unwrap(), Some(Ok(1)));
    assert_eq!(wait(&jobs[0]), Ok(1));
}

#[test]
fn groups_are_waited_for_separately() {
    let (server, _dir) = server(2);
    let module = testjobs();
    let slow = JobOptions::new().group("slow");
    let fast = JobOptions::new().group("fast");
    let slow_job = server.submit_with::<u64, _>(&module, "busy_ms", (300u64,), &slow);
    for x in 0..5i64 {
        drop(server.submit_with::<i64, _>(&module, "add_one", (x,), &fast));
    }
    drop(server.submit_with::<f64, _>(&module, "checked_sqrt", (-1.0,), &fast));
    let summary = server.wait_group_timeout("fast", TIMEOUT);
    assert_eq!(
        (summary.submitted, summary.finished, summary.failed),
        (6, 6, 1)
    );
    let summary = server.wait_group_timeout("slow", TIMEOUT);
    assert_eq!(summary.pending(), 0);
    assert!(slow_job.is_finished());
    assert_eq!(server.wait_all().pending(), 0);
}

#[test]
fn map_returns_results_in_input_order() {
    let (server, _dir) = server(2);
    let module = testjobs();
    // Earlier inputs take longer, so they finish last: order must come from the inputs.
    let inputs: Vec<(u64,)> = (0..12).map(|i| ((12 - i) * 5,)).collect();
    let results: Vec<u64> = server
        .map(&module, "busy_ms", inputs.clone())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, inputs.iter().map(|(ms,)| *ms).collect::<Vec<_>>());
}

/// `map` submits ahead of the consumer, a bounded window at a time: with 2 workers and no
/// node, at most 16 jobs (8 per worker) beyond those consumed, however many inputs remain.
#[test]
fn map_over_many_inputs_keeps_a_bounded_window() {
    let (server, _dir) = server(2);
    let window = 16;
    let results = server.map(&testjobs(), "add_one", (0..2_000i64).map(|x| (x,)));
    let mut consumed = 0u64;
    let mut widest = 0;
    for result in results {
        assert_eq!(result, Ok(consumed as i64 + 1));
        consumed += 1;
        let ahead = server.stats().submitted - consumed;
        widest = widest.max(ahead);
        assert!(
            ahead <= window,
            "{ahead} jobs submitted ahead of the consumer"
        );
    }
    assert_eq!(consumed, 2_000);
    assert!(widest > 1, "the window is used: {widest}");
}

/// `Job` is a `Future` that wakes its task: the executor polls again only when woken.
#[test]
fn a_job_can_be_awaited() {
    let (server, _dir) = server(1);
    let job = server.submit::<u64, _>(&testjobs(), "busy_ms", (100u64,));
    let (result, wakes) = block_on(job);
    assert_eq!(result, Ok(100));
    assert!(wakes >= 1, "finished while pending, so it was woken");
    // A job cancelled while awaited wakes its task too.
    let job = server.submit::<u64, _>(&testjobs(), "busy_ms", (10_000u64,));
    let cancel = job.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        assert!(cancel.cancel());
    });
    let (result, wakes) = block_on(job);
    assert!(matches!(result, Err(JobError::Cancelled(_))), "{result:?}");
    assert!(wakes >= 1);
    canceller.join().unwrap();
    assert_eq!(
        block_on(server.submit::<u64, _>(&sum_primes(), "sum_primes", (100u64,))).0,
        Ok(1060)
    );
}

#[test]
fn set_workers_grows_and_shrinks_under_load_without_losing_jobs() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let jobs: Vec<_> = (0..60u64)
        .map(|i| server.submit::<u64, _>(&module, "busy_ms", (5 + i % 3,)))
        .collect();
    server.set_workers(4).unwrap();
    assert_eq!(server.workers(), 4);
    std::thread::sleep(Duration::from_millis(50));
    server.set_workers(1).unwrap();
    let more: Vec<_> = (0..20u64)
        .map(|i| server.submit::<u64, _>(&module, "busy_ms", (i % 2,)))
        .collect();
    server.set_workers(3).unwrap();
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(wait(job), Ok(5 + i as u64 % 3));
    }
    for (i, job) in more.iter().enumerate() {
        assert_eq!(wait(job), Ok(i as u64 % 2));
    }
    // A job counts in the totals an instant after its waiters are released.
    assert_eq!(server.wait_all_timeout(TIMEOUT).pending(), 0);
    let stats = server.stats();
    assert_eq!(stats.finished, 80);
    assert_eq!(stats.workers.iter().map(|w| w.jobs).sum::<u64>(), 80);
    assert!(
        stats.workers.len() >= 4,
        "grew to at least 4 threads: {stats}"
    );
    // Shrinking is real: surplus threads exit.
    server.set_workers(1).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while server.stats().workers.iter().filter(|w| w.active).count() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "workers did not retire"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn with_zero_workers_jobs_wait_until_workers_are_added() {
    let (server, _dir) = server(0);
    let job = server.submit::<i64, _>(&testjobs(), "add_one", (1i64,));
    // Nobody can take it: it waits in the queue.
    assert_eq!((server.stats().queued, server.stats().running), (1, 0));
    assert!(!job.is_finished());
    server.set_workers(1).unwrap();
    assert_eq!(wait(&job), Ok(2));
}

#[test]
fn too_many_workers_is_a_config_error() {
    let (server, _dir) = server(1);
    let err = server
        .set_workers(wasp::MAX_CONCURRENT_INSTANCES as usize + 1)
        .unwrap_err();
    assert!(err.to_string().contains("workers"), "{err}");
    assert_eq!(server.workers(), 1);
}

/// The fault: each resize added rows to the statistics for good. A new worker takes a
/// retired worker's row, so the table stays about as large as the largest pool.
#[test]
fn resizing_again_and_again_keeps_the_worker_table_bounded() {
    let (server, _dir) = server(1);
    let module = testjobs();
    for round in 0..100usize {
        server.set_workers(1 + round % 4).unwrap();
        if round % 10 == 0 {
            let job = server.submit::<i64, _>(&module, "add_one", (1i64,));
            assert_eq!(wait(&job), Ok(2));
        }
    }
    let stats = server.stats();
    // At most four workers at once; a retiring worker frees its row an instant after it
    // stops counting, so a few more rows may have been needed.
    assert!(
        stats.workers.len() <= 8,
        "{} rows:\n{stats}",
        stats.workers.len()
    );
    assert_eq!(stats.workers.iter().map(|w| w.jobs).sum::<u64>(), 10);
}

/// A job is counted before anyone sees its outcome: once every result of a batch is in
/// (waited for, awaited, or seen by a callback), the group's progress, the server's totals
/// and the workers' rows all count the whole batch, with nothing left queued or running.
/// A thousand batches, so that a count made after the results are delivered would show.
#[test]
fn counts_add_up_as_soon_as_every_result_is_in() {
    const BATCHES: u64 = 1_000;
    const JOBS: u64 = 8;
    let (server, _dir) = server(2);
    let server = Arc::new(server);
    let module = testjobs();
    let failed_in_callbacks = Arc::new(AtomicU64::new(0));
    for batch in 0..BATCHES {
        let group = format!("batch-{batch}");
        let options = JobOptions::new().group(&group);
        let jobs: Vec<_> = (0..JOBS as i64)
            .map(|x| server.submit_with::<i64, _>(&module, "add_one", (x,), &options))
            .collect();
        // A callback sees its own job counted in its group.
        let probe = Arc::downgrade(&server);
        let failed = failed_in_callbacks.clone();
        let name = group.clone();
        jobs[0].on_complete(move |_| {
            let counted = probe
                .upgrade()
                .map(|server| server.group_summary(&name).finished);
            if counted == Some(0) {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        });
        for (x, job) in jobs.iter().enumerate() {
            assert_eq!(wait(job), Ok(x as i64 + 1));
        }
        let progress = server.progress(&group).expect("the group has counters");
        assert_eq!(
            (progress.finished, progress.queued, progress.running),
            (JOBS, 0, 0),
            "batch {batch}: {progress:?}"
        );
        let stats = server.stats();
        let done = (batch + 1) * JOBS;
        assert_eq!(
            (stats.finished, stats.queued, stats.running),
            (done, 0, 0),
            "batch {batch}"
        );
        assert_eq!(
            stats.workers.iter().map(|w| w.jobs).sum::<u64>(),
            done,
            "batch {batch}"
        );
    }
    assert_eq!(
        failed_in_callbacks.load(Ordering::SeqCst),
        0,
        "a callback ran before its job was counted"
    );
}
