//! A bounded queue: `submit` waits for room, `try_submit` fails at once, nothing is lost;
//! and waits with huge timeouts mean "no deadline", never a panic.

use std::sync::mpsc;
use std::time::Duration;
use wasp::{JobOptions, QueueFull};
use wasp_tests::{TIMEOUT, builder, testjobs, wait};

#[test]
fn a_full_queue_refuses_try_submit_and_makes_submit_wait() {
    let dir = tempfile::tempdir().unwrap();
    let server = builder(&dir).workers(0).max_queued(3).build().unwrap();
    let module = testjobs();
    let options = JobOptions::new();
    let queued: Vec<_> = (0..3i64)
        .map(|x| {
            server
                .try_submit_with::<i64, _>(&module, "add_one", (x,), &options)
                .expect("room for three")
        })
        .collect();
    let full = server.try_submit_with::<i64, _>(&module, "add_one", (3i64,), &options);
    let full: QueueFull = full.unwrap_err();
    assert_eq!(full.max, 3);
    assert!(full.to_string().contains("queue is full"), "{full}");
    assert!(!server.wait_for_room(Duration::from_millis(10)));
    // A failing call takes no room: it is answered at once.
    let unknown = server.try_submit_with::<i64, _>(&module, "no_such_job", (), &options);
    assert!(unknown.is_ok());
    std::thread::scope(|scope| {
        let (submitted, blocked) = mpsc::channel();
        let (server, module) = (&server, &module);
        scope.spawn(move || {
            let job = server.submit::<i64, _>(module, "add_one", (3i64,));
            submitted.send(()).unwrap();
            assert_eq!(wait(&job), Ok(4));
        });
        // The producer waits while the queue is full ...
        assert!(blocked.recv_timeout(Duration::from_millis(200)).is_err());
        // ... and goes on once workers take jobs.
        server.set_workers(1).unwrap();
        blocked
            .recv_timeout(TIMEOUT)
            .expect("the producer got room");
    });
    for (x, job) in (0..).zip(&queued) {
        assert_eq!(wait(job), Ok(x + 1));
    }
    assert!(server.wait_for_room(TIMEOUT));
}

/// Many jobs through a small bound: all run, in order of submission, none lost.
#[test]
fn a_bounded_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = builder(&dir).workers(2).max_queued(4).build().unwrap();
    let module = testjobs();
    let jobs: Vec<_> = (0..2_000i64)
        .map(|x| {
            let job = server.submit::<i64, _>(&module, "add_one", (x,));
            assert!(server.stats().queued <= 4, "the bound holds");
            job
        })
        .collect();
    for (x, job) in (0..).zip(&jobs) {
        assert_eq!(wait(job), Ok(x + 1));
    }
    assert_eq!(server.wait_all_timeout(TIMEOUT).finished, 2_000);
}

#[test]
fn a_zero_bound_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = builder(&dir).max_queued(0).build().unwrap_err();
    assert!(error.to_string().contains("max_queued"), "{error}");
}

/// `Instant::now() + timeout` panics past the clock's range: a huge timeout must mean
/// "no deadline".
#[test]
fn huge_timeouts_are_no_deadline() {
    let (server, _dir) = wasp_tests::server(1);
    let job = server.submit::<i64, _>(&testjobs(), "add_one", (1i64,));
    assert_eq!(job.wait_timeout(Duration::MAX), Some(Ok(2)));
    assert_eq!(server.wait_all_timeout(Duration::MAX).pending(), 0);
    assert_eq!(
        server
            .wait_group_timeout("default", Duration::MAX)
            .pending(),
        0
    );
    assert!(server.wait_for_room(Duration::MAX));
    assert_eq!(server.wait_for_nodes(0, Duration::MAX).unwrap(), 0);
}
