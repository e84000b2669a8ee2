//! Cancelling: a job or a group completes at once as cancelled, queued jobs never run,
//! running ones are stopped and free their worker, and finished ones keep their result.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use wasp::{JobError, JobOptions};
use wasp_tests::{TIMEOUT, server, testjobs, wait};

/// A job that would hold its worker far longer than any bounded wait of these tests.
const FOR_EVER: u64 = 3_600_000;

fn is_cancelled<T: std::fmt::Debug>(result: &Result<T, JobError>) -> bool {
    matches!(result, Err(JobError::Cancelled(_)))
}

#[test]
fn a_running_job_is_stopped_and_its_worker_serves_the_next() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let long = server.submit::<u64, _>(&module, "busy_ms", (FOR_EVER,));
    let next = server.submit::<i64, _>(&module, "add_one", (1i64,));
    // Running once the queue has handed it to the worker.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while server.stats().running == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(long.cancel());
    assert!(is_cancelled(&wait(&long)));
    // The only worker was freed: the next job runs.
    assert_eq!(wait(&next), Ok(2));
    assert!(!long.cancel(), "cancelled once");
}

#[test]
fn a_queued_job_never_runs() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let ran = Arc::new(AtomicUsize::new(0));
    let blocker = server.submit::<u64, _>(&module, "busy_ms", (200u64,));
    let queued = server.submit::<u64, _>(&module, "busy_ms", (FOR_EVER,));
    let answers = ran.clone();
    queued.on_complete(move |result| {
        assert!(is_cancelled(&result), "{result:?}");
        answers.fetch_add(1, Ordering::SeqCst);
    });
    assert!(queued.cancel());
    assert!(is_cancelled(&wait(&queued)));
    assert_eq!(wait(&blocker), Ok(200));
    let summary = server.wait_all_timeout(TIMEOUT);
    assert_eq!(summary.pending(), 0);
    assert_eq!(ran.load(Ordering::SeqCst), 1, "its callback ran once");
    // Only the blocker ran on the worker.
    let stats = server.stats();
    let ran_jobs: u64 = stats.workers.iter().map(|worker| worker.jobs).sum();
    assert!(ran_jobs <= 2, "{stats}");
    assert_eq!((stats.finished, stats.failed), (2, 1));
}

#[test]
fn a_finished_job_keeps_its_result() {
    let (server, _dir) = server(1);
    let job = server.submit::<i64, _>(&testjobs(), "add_one", (41i64,));
    assert_eq!(wait(&job), Ok(42));
    assert!(!job.cancel());
    assert_eq!(wait(&job), Ok(42));
}

#[test]
fn a_group_is_cancelled_and_the_others_go_on() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let doomed = JobOptions::new().group("doomed");
    let kept = JobOptions::new().group("kept");
    let cancelled: Vec<_> = (0..50)
        .map(|_| server.submit_with::<u64, _>(&module, "busy_ms", (FOR_EVER,), &doomed))
        .collect();
    let others: Vec<_> = (0..5i64)
        .map(|x| server.submit_with::<i64, _>(&module, "add_one", (x,), &kept))
        .collect();
    assert_eq!(server.cancel_group("doomed"), 50);
    for job in &cancelled {
        assert!(is_cancelled(&wait(job)));
    }
    let summary = server.wait_group_timeout("doomed", TIMEOUT);
    assert_eq!(
        (summary.submitted, summary.finished, summary.failed),
        (50, 50, 50)
    );
    for (x, job) in (0..).zip(&others) {
        assert_eq!(wait(job), Ok(x + 1));
    }
    assert_eq!(server.cancel_group("doomed"), 0, "nothing left to cancel");
    assert_eq!(server.cancel_group("no such group"), 0);
    assert_eq!(server.wait_all_timeout(TIMEOUT).pending(), 0);
}

#[test]
fn dropping_a_map_half_way_cancels_what_it_submitted_ahead() {
    let (server, _dir) = server(1);
    let module = testjobs();
    {
        let mut results = server.map(&module, "busy_ms", (0..100u64).map(|i| (i % 2,)));
        assert_eq!(results.next().map(|r| r.unwrap()), Some(0));
    }
    // The jobs submitted ahead were cancelled: nothing is left pending, and the worker is
    // free for what comes next.
    let summary = server.wait_all_timeout(TIMEOUT);
    assert_eq!(summary.pending(), 0);
    assert!(
        summary.submitted < 100,
        "map submits a window ahead, not everything"
    );
    let next = server.submit::<i64, _>(&module, "add_one", (1i64,));
    assert_eq!(wait(&next), Ok(2));
}
