//! Shared helpers of wasp's end-to-end tests (`integration/`): the guest modules, servers
//! with a private disk cache, and bounded waits.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use wasp::{Job, JobError, JobOutput, Module, Server, ServerBuilder};

/// How long any single wait in a test may take before the test fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The sum_primes example module.
pub fn sum_primes() -> Module {
    Module::from_file(wasp_fixtures::SUM_PRIMES_GUEST).expect("sum_primes module loads")
}

/// The module of test jobs (`tests/guests/testjobs`).
pub fn testjobs() -> Module {
    Module::from_file(wasp_fixtures::WASP_TESTJOBS).expect("testjobs module loads")
}

/// A builder whose disk cache lives in `dir`, so tests never touch the user's cache.
pub fn builder(dir: &tempfile::TempDir) -> ServerBuilder {
    Server::builder().cache_dir(dir.path().join("cache"))
}

/// A server with `workers` workers and a private disk cache.
pub fn server(workers: usize) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = builder(&dir)
        .workers(workers)
        .build()
        .expect("server builds");
    (server, dir)
}

/// Waits for `job`, failing the test instead of hanging past [`TIMEOUT`].
pub fn wait<T: serde::de::DeserializeOwned>(job: &Job<T>) -> Result<T, JobError> {
    job.wait_timeout(TIMEOUT)
        .unwrap_or_else(|| panic!("{job:?} did not finish within {TIMEOUT:?}"))
}

/// Waits for `job` and returns its whole output, failing the test instead of hanging past
/// [`TIMEOUT`].
pub fn wait_output<T: serde::de::DeserializeOwned>(job: &Job<T>) -> JobOutput<T> {
    let _finished = wait(job);
    job.wait_output()
}

/// Runs a future to completion on this thread, polling it again only when its waker is
/// called: a minimal executor, so that tests of `Job` as a `Future` need no async runtime,
/// and a future that forgets to wake its task fails (at [`TIMEOUT`]) instead of passing.
/// Returns the output and how many times the future was woken.
pub fn block_on<F: Future>(future: F) -> (F::Output, usize) {
    struct Signal {
        thread: std::thread::Thread,
        woken: AtomicBool,
        wakes: AtomicUsize,
    }
    impl Wake for Signal {
        fn wake(self: Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.woken.store(true, Ordering::SeqCst);
            self.thread.unpark();
        }
    }
    let signal = Arc::new(Signal {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return (output, signal.wakes.load(Ordering::SeqCst));
        }
        while !signal.woken.swap(false, Ordering::SeqCst) {
            let left = deadline.checked_duration_since(Instant::now());
            let left = left.unwrap_or_else(|| {
                panic!("the future returned Pending and was not woken within {TIMEOUT:?}")
            });
            std::thread::park_timeout(left);
        }
    }
}
