//! Each hostile or broken job ends in a typed error that names what happened, and the pool
//! goes on serving: every test ends by running a good job on the same (single) worker.

use std::time::Duration;
use wasp::{JobError, JobOptions, Server, TrapKind};
use wasp_tests::{testjobs, wait};

fn assert_still_serving(server: &Server) {
    let job = server.submit::<i64, _>(&testjobs(), "add_one", (41i64,));
    assert_eq!(
        wait(&job),
        Ok(42),
        "the pool stopped serving after a hostile job"
    );
}

fn one_worker(
    options: impl FnOnce(wasp::ServerBuilder) -> wasp::ServerBuilder,
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = options(wasp_tests::builder(&dir).workers(1))
        .build()
        .unwrap();
    (server, dir)
}

#[test]
fn an_infinite_loop_times_out() {
    let (server, _dir) = one_worker(|b| b.timeout(Duration::from_millis(300)));
    let job = server.submit::<u64, _>(&testjobs(), "spin", ());
    assert_eq!(
        wait(&job),
        Err(JobError::Timeout(Duration::from_millis(300)))
    );
    assert_still_serving(&server);
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let (server, _dir) = one_worker(|b| b.max_memory(32 << 20));
    let job = server.submit::<u64, _>(&testjobs(), "memory_bomb", ());
    assert_eq!(wait(&job), Err(JobError::MemoryLimit { limit: 32 << 20 }));
    assert_still_serving(&server);
}

#[test]
fn unbounded_recursion_is_a_stack_overflow_trap() {
    let (server, _dir) = one_worker(|b| b);
    let job = server.submit::<u64, _>(&testjobs(), "recurse", (0u64,));
    match wait(&job) {
        // Rust keeps its own stack in linear memory: depending on which overflows first, the
        // guard is wasmtime's call-stack limit or the bottom of memory.
        Err(JobError::Trap {
            kind: TrapKind::StackOverflow | TrapKind::MemoryOutOfBounds,
        }) => {}
        other => panic!("expected a stack overflow trap, got {other:?}"),
    }
    assert_still_serving(&server);
}

#[test]
fn an_unreachable_instruction_is_named() {
    let (server, _dir) = one_worker(|b| b);
    let job = server.submit::<u32, _>(&testjobs(), "trap_unreachable", ());
    assert_eq!(
        wait(&job),
        Err(JobError::Trap {
            kind: TrapKind::Unreachable
        })
    );
    assert_still_serving(&server);
}

#[test]
fn a_panic_carries_its_message() {
    let (server, _dir) = one_worker(|b| b);
    let job = server.submit::<u32, _>(&testjobs(), "panics", ("the sky is falling",));
    let output = job.wait_output();
    match output.result {
        Err(JobError::Panic(message)) => {
            assert!(message.starts_with("the sky is falling (at "), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the sky is falling"),
        "the panic is also on stderr: {stderr}"
    );
    assert_still_serving(&server);
}

#[test]
fn printing_megabytes_hits_the_output_limit() {
    let (server, _dir) = one_worker(|b| b);
    let job = server.submit::<u64, _>(&testjobs(), "print_lots", (8u64 << 20,));
    let output = job.wait_output();
    assert_eq!(
        output.result,
        Err(JobError::OutputLimit {
            stream: "stdout".into(),
            limit: wasp::DEFAULT_MAX_OUTPUT
        })
    );
    assert_eq!(
        output.stdout.len() as u64,
        wasp::DEFAULT_MAX_OUTPUT,
        "what fits is kept"
    );
    assert_still_serving(&server);
}

#[test]
fn proc_exit_is_reported_as_an_exit() {
    let (server, _dir) = one_worker(|b| b);
    // WASI allows statuses below 126 only; the others (found by fuzzing) are exits too.
    for status in [3, 126, 255, -1, i32::MAX] {
        let job = server.submit::<u32, _>(&testjobs(), "exit", (status,));
        assert_eq!(wait(&job), Err(JobError::Exited(status)), "status {status}");
    }
    assert_still_serving(&server);
}

#[test]
fn a_job_cannot_sleep_past_its_timeout() {
    let (server, _dir) = one_worker(|b| b.timeout(Duration::from_millis(500)));
    // A job that slept its hour would outlast the test's bounded wait.
    let job = server.submit::<u64, _>(&testjobs(), "sleep_secs", (3600u64,));
    match wait(&job) {
        Err(JobError::Forbidden(what)) => assert!(what.contains("sleep"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert_still_serving(&server);
}

#[test]
fn a_per_job_timeout_overrides_no_default() {
    let (server, _dir) = one_worker(|b| b);
    let options = JobOptions::new().timeout(Duration::from_millis(200));
    let job = server.submit_with::<u64, _>(&testjobs(), "spin", (), &options);
    assert_eq!(
        wait(&job),
        Err(JobError::Timeout(Duration::from_millis(200)))
    );
    assert_still_serving(&server);
}

#[test]
fn dropping_the_server_cancels_queued_and_running_jobs() {
    let (server, _dir) = one_worker(|b| b);
    let running = server.submit::<u64, _>(&testjobs(), "spin", ());
    let queued = server.submit::<i64, _>(&testjobs(), "add_one", (1i64,));
    // Once the worker has started the spinning job.
    let deadline = std::time::Instant::now() + wasp_tests::TIMEOUT;
    while server.stats().running == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(server);
    assert!(matches!(wait(&running), Err(JobError::Cancelled(_))));
    assert!(matches!(wait(&queued), Err(JobError::Cancelled(_))));
}
