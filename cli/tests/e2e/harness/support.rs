//! What the cluster tests share: clients of real nodes, bounded waits, and batches of
//! sum_primes jobs checked against a native reference.

use super::node::{Auth, NodeProcess};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasp::{ClusterSecret, Job, JobError, Module, Server, Stats};

/// How long a node may stay silent before a client declares it lost: short, so that a
/// killed node's jobs move on quickly.
pub(crate) const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long nodes may take to connect to a client.
pub(crate) const CONNECT_WAIT: Duration = Duration::from_secs(20);

/// How long any other single wait may take before the test fails instead of hanging.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) const SUM_PRIMES: &str = wasp_fixtures::SUM_PRIMES_GUEST;

pub(crate) fn sum_primes() -> Module {
    Module::from_file(SUM_PRIMES).expect("sum_primes module loads")
}

pub(crate) fn testjobs() -> Module {
    Module::from_file(wasp_fixtures::WASP_TESTJOBS).expect("testjobs module loads")
}

pub(crate) fn new_secret() -> ClusterSecret {
    ClusterSecret::generate().expect("a random secret")
}

/// A client of `nodes` with no local workers: every job runs on a node.
pub(crate) fn client(auth: Auth<'_>, nodes: &[&NodeProcess]) -> Server {
    let builder = Server::builder()
        .workers(0)
        .no_disk_cache()
        .node_timeout(NODE_TIMEOUT)
        .peers(nodes.iter().map(|node| wasp::Peer::Addr(node.address())));
    let builder = match auth {
        Auth::Secret(secret) => builder.secret(secret.clone()),
        Auth::Insecure => builder.insecure(),
    };
    builder.build().expect("the client builds")
}

/// Waits until `count` nodes are connected to `server`.
pub(crate) fn connect(server: &Server, count: usize) {
    if let Err(err) = server.wait_for_nodes(count, CONNECT_WAIT) {
        panic!("the nodes did not connect: {err}");
    }
}

/// Waits for `job`, failing the test instead of hanging past [`TIMEOUT`].
pub(crate) fn result<T: serde::de::DeserializeOwned>(job: &Job<T>) -> Result<T, JobError> {
    job.wait_timeout(TIMEOUT)
        .unwrap_or_else(|| panic!("{job:?} did not finish within {TIMEOUT:?}"))
}

/// Polls `condition` until it holds, failing the test after `timeout`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sums[n]` is the sum of the primes below `n`, for every `n <= max`: the native
/// reference for sum_primes, by a sieve.
pub(crate) fn sums_of_primes_below(max: u64) -> Vec<u64> {
    let max = usize::try_from(max).expect("a small max");
    let mut composite = vec![false; max + 1];
    let mut sums = vec![0; max + 1];
    let mut total = 0;
    for n in 2..=max {
        sums[n] = total;
        if !composite[n] {
            total += n as u64;
            for multiple in (n * n..=max).step_by(n) {
                composite[multiple] = true;
            }
        }
    }
    sums
}

/// The server's statistics once every job submitted has been delivered (for tests that
/// did not wait for every job themselves).
pub(crate) fn settled_stats(server: &Server) -> Stats {
    let summary = server.wait_all_timeout(TIMEOUT);
    assert_eq!(summary.pending(), 0, "jobs still pending: {summary:?}");
    server.stats()
}

pub(crate) fn total_node_jobs(stats: &Stats) -> u64 {
    stats.nodes.iter().map(|node| node.jobs).sum()
}

/// A batch of sum_primes jobs whose callbacks count each job's completions.
pub(crate) struct Batch {
    pub(crate) inputs: Vec<u64>,
    pub(crate) jobs: Vec<Job<u64>>,
    /// Completions of each job, as its callbacks saw them.
    pub(crate) completions: Arc<Vec<AtomicU32>>,
    /// Completions of all the jobs.
    pub(crate) finished: Arc<AtomicUsize>,
}

impl Batch {
    pub(crate) fn submit(server: &Server, inputs: Vec<u64>) -> Batch {
        let module = sum_primes();
        let completions: Arc<Vec<AtomicU32>> =
            Arc::new(inputs.iter().map(|_| AtomicU32::new(0)).collect());
        let finished = Arc::new(AtomicUsize::new(0));
        let jobs = inputs
            .iter()
            .enumerate()
            .map(|(index, &n)| {
                let job = server.submit::<u64, _>(&module, "sum_primes", (n,));
                let (completions, finished) = (completions.clone(), finished.clone());
                job.on_complete(move |_| {
                    completions[index].fetch_add(1, Ordering::SeqCst);
                    finished.fetch_add(1, Ordering::SeqCst);
                });
                job
            })
            .collect();
        Batch {
            inputs,
            jobs,
            completions,
            finished,
        }
    }

    /// Waits until `count` jobs have finished.
    pub(crate) fn wait_for(&self, count: usize) {
        wait_until(&format!("{count} results"), TIMEOUT, || {
            self.finished.load(Ordering::SeqCst) >= count
        });
    }

    /// Checks that every job finished once, with the sum `sums` gives.
    pub(crate) fn check(&self, sums: &[u64]) {
        for (&n, job) in self.inputs.iter().zip(&self.jobs) {
            assert_eq!(result(job), Ok(sums[n as usize]), "sum_primes({n})");
        }
        // Every first completion is in: a second one would have shown (a job's slot takes
        // one outcome, so none comes later; see scheduler/slot.rs).
        for (index, count) in self.completions.iter().enumerate() {
            let count = count.load(Ordering::SeqCst);
            assert_eq!(count, 1, "job {index} completed {count} times");
        }
        assert_eq!(self.finished.load(Ordering::SeqCst), self.jobs.len());
    }
}

/// wasp's Python runner (`WASP_PYTHON_RUNNER`, which scripts/test builds), or `None` and
/// why; under `CI=true` it must be there.
pub(crate) fn python_runner() -> Option<Module> {
    match std::env::var("WASP_PYTHON_RUNNER") {
        Ok(path) if !path.trim().is_empty() => {
            Some(Module::from_file(path.trim()).expect("the Python runner loads"))
        }
        _ => {
            let why = "WASP_PYTHON_RUNNER is not set (scripts/test builds the runner and sets it)";
            wasp_fixtures::cannot_run_here(&format!("the Python part: {why}"));
            None
        }
    }
}
