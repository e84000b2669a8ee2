//! Jobs that take other jobs' results: chains, diamonds and fan-ins submitted up front,
//! failures and cancellations passed on with the job that failed named, large results
//! taken as data.

use wasp::{Job, JobError, JobId, JobOptions};
use wasp_tests::{server, testjobs, wait};

#[test]
fn a_chain_is_submitted_up_front_and_runs_in_order() {
    let (server, _dir) = server(2);
    let module = testjobs();
    let mut last = server.submit::<i64, _>(&module, "add_one", (0i64,));
    let mut chain = vec![last.clone()];
    for _ in 0..50 {
        last = server.submit::<i64, _>(&module, "add_one", (&last,));
        chain.push(last.clone());
    }
    assert_eq!(wait(&last), Ok(51));
    for (i, job) in chain.iter().enumerate() {
        assert_eq!(wait(job), Ok(i as i64 + 1));
    }
    assert_eq!(server.stats().held, 0);
}

#[test]
fn diamonds_and_fan_ins_take_each_result_once_where_it_is_passed() {
    let (server, _dir) = server(2);
    let module = testjobs();
    let top = server.submit::<i64, _>(&module, "add_one", (1i64,));
    let left = server.submit::<i64, _>(&module, "add_one", (&top,));
    let right = server.submit::<i64, _>(&module, "add_one", (&top,));
    let bottom = server.submit::<u64, _>(&module, "sum_list", (vec![&left, &right, &top],));
    assert_eq!(wait(&bottom), Ok(3 + 3 + 2));

    let leaves: Vec<Job<i64>> = (0..100i64)
        .map(|n| server.submit(&module, "add_one", (n,)))
        .collect();
    let total = server.submit::<u64, _>(&module, "sum_list", (&leaves,));
    assert_eq!(wait(&total), Ok((1..=100).sum()));
}

#[test]
fn a_failure_fails_what_takes_it_naming_the_job_that_failed() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let failing = server.submit::<f64, _>(&module, "checked_sqrt", (-1.0f64,));
    let taker = server.submit::<f64, _>(&module, "checked_sqrt", (&failing,));
    let next = server.submit::<f64, _>(&module, "checked_sqrt", (&taker,));
    let Err(JobError::Dependency {
        dependency,
        failed,
        error,
    }) = wait(&taker)
    else {
        panic!("{:?}", wait(&taker));
    };
    assert_eq!((dependency, failed), (failing.id().0, failing.id().0));
    assert!(matches!(*error, JobError::Failed(ref why) if why.contains("square root")));
    let Err(error @ JobError::Dependency { .. }) = wait(&next) else {
        panic!("{:?}", wait(&next));
    };
    assert!(matches!(
        &error,
        JobError::Dependency { dependency, failed, .. } if *dependency == taker.id().0 && *failed == failing.id().0
    ));
    assert!(
        error
            .to_string()
            .contains(&format!("because {} failed", failing.id())),
        "{error}"
    );
    assert_eq!(error.kind(), "dependency");
}

/// A failure at the head of a long chain reaches its end without a deep call stack.
#[test]
fn a_failure_runs_down_a_long_chain() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let blocker = server.submit::<u64, _>(&module, "busy_ms", (100u64,));
    let head = server.submit::<i64, _>(&module, "busy_or_fail", (-1i64,));
    let mut last = head.clone();
    for _ in 0..20_000 {
        last = server.submit::<i64, _>(&module, "add_one", (&last,));
    }
    assert!(matches!(
        wait(&last),
        Err(JobError::Dependency { failed, .. }) if failed == head.id().0
    ));
    wait(&blocker).unwrap();
    server.wait_all();
    assert_eq!(server.stats().held, 0);
}

#[test]
fn cancelling_a_job_cancels_what_takes_it_and_not_what_it_takes() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let slow = server.submit::<u64, _>(&module, "busy_ms", (10_000u64,));
    let taker = server.submit::<u64, _>(&module, "busy_ms", (&slow,));
    assert!(slow.cancel());
    assert!(matches!(
        wait(&taker),
        Err(JobError::Dependency { error, .. }) if matches!(*error, JobError::Cancelled(_))
    ));

    let quick = server.submit::<i64, _>(&module, "add_one", (1i64,));
    let held = server.submit::<u64, _>(&module, "busy_ms", (10_000u64,));
    let waiting = server.submit::<i64, _>(&module, "add_one", (&held,));
    assert!(waiting.cancel(), "a held job is cancelled at once");
    assert!(matches!(wait(&waiting), Err(JobError::Cancelled(_))));
    assert_eq!(wait(&quick), Ok(2));
    held.cancel();
}

#[test]
fn cancelling_a_group_cancels_its_held_jobs() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let slow = server.submit::<u64, _>(&module, "busy_ms", (10_000u64,));
    let options = JobOptions::new().group("tree");
    let held: Vec<_> = (0..5)
        .map(|_| server.submit_with::<u64, _>(&module, "busy_ms", (&slow,), &options))
        .collect();
    assert_eq!(server.stats().held, 5);
    assert_eq!(server.cancel_group("tree"), 5);
    for job in &held {
        assert!(matches!(wait(job), Err(JobError::Cancelled(_))));
    }
    assert_eq!(server.stats().held, 0);
    assert_eq!(server.wait_group("tree").pending(), 0);
    slow.cancel();
}

/// A result of 1 MiB or more goes in as data: the job receives it whole all the same.
#[test]
fn large_results_are_taken_as_data() {
    let (server, _dir) = server(2);
    let module = testjobs();
    let big = server.submit::<serde_bytes::ByteBuf, _>(&module, "bytes_of", (3u32 << 20,));
    let takers: Vec<_> = (0..3)
        .map(|_| server.submit::<(u64, u64), _>(&module, "checksum", (&big,)))
        .collect();
    let sum: u64 = (0..(3u32 << 20)).map(|i| u64::from((i % 251) as u8)).sum();
    for taker in &takers {
        assert_eq!(wait(taker), Ok((3 << 20, sum)));
    }
}

/// A job of another server cannot be taken, even one with the same number here.
#[test]
fn only_this_servers_jobs_can_be_taken() {
    let (server, _dir) = server(1);
    let (other, _other_dir) = wasp_tests::server(1);
    let module = testjobs();
    let here = server.submit::<i64, _>(&module, "add_one", (1i64,));
    let elsewhere = other.submit::<i64, _>(&module, "add_one", (1i64,));
    assert_eq!(here.id(), elsewhere.id());
    let job = server.submit::<i64, _>(&module, "add_one", (&elsewhere,));
    assert!(
        matches!(wait(&job), Err(JobError::BadArguments(why)) if why.contains("not a job of this server"))
    );
    let mut raw = vec![0x91];
    raw.extend_from_slice(&here.to_msgpack());
    let job = server.submit_raw::<i64>(&module, "add_one", raw, &JobOptions::new());
    assert_eq!(wait(&job), Ok(3));
}

/// The handle of a job taken may be dropped: the job that takes it still gets its result.
#[test]
fn a_dropped_handle_still_feeds_its_taker() {
    let (server, _dir) = server(1);
    let module = testjobs();
    let first = server.submit::<i64, _>(&module, "busy_or_fail", (50i64,));
    let second = server.submit::<i64, _>(&module, "add_one", (&first,));
    drop(first);
    assert_eq!(wait(&second), Ok(51));
    let id: JobId = second.id();
    assert!(id.0 > 0);
}
