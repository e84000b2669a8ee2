//! Hostile jobs run on a node, end to end with real `wasp node` processes on 127.0.0.1:
//! a job that loops forever, grows its memory without end, recurses without end, floods
//! its stdout, returns a result too large to send back, traps, panics, exits, or reaches
//! for files, sockets or the environment ends in a typed error (or, for the environment,
//! finds nothing); the node stays up, the connections of its clients survive, and the next
//! good job of the same client and of another one succeeds. Then 50 such jobs mixed into
//! 5,000 good ones: every result right and delivered once, and the node's peak memory
//! reported (run with `--nocapture` to see it).
//!
//! The local pool's side of the same jobs is `tests/integration/hostile.rs`.
//!
//! Every wait is bounded: a hung test is a failed test. When one fails, each node still
//! running prints its log (see `harness/node.rs`).

use crate::harness::node::{Auth, NodeProcess};
use crate::harness::support::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use wasp::{Job, JobError, JobOptions, Module, Server, TrapKind};

/// How many workers the node has: a hostile job holds one, the other keeps serving.
const NODE_WORKERS: usize = 2;

/// A node and two clients of it, each with no workers of its own: the first sends the
/// hostile jobs, and both check that the node still serves them.
struct Cluster {
    node: NodeProcess,
    first: Server,
    second: Server,
    /// The node's settings file: its path, on the node's command line, finds its process.
    settings: PathBuf,
    _dir: tempfile::TempDir,
}

/// The node's maximum memory per job (`--max-memory`): also what a job asking for none
/// gets.
const NODE_MAX_MEMORY: u64 = 128 << 20;

/// The node's maximum output per stream (`--max-output`), likewise.
const NODE_MAX_OUTPUT: u64 = 1 << 20;

impl Cluster {
    /// Starts the node, connects both clients, and runs a good job from each, so that the
    /// test jobs' module is on the node and compiled before anything hostile is sent.
    fn start() -> Cluster {
        let secret = new_secret();
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = dir.path().join("node.conf");
        std::fs::write(&settings, format!("workers = {NODE_WORKERS}\n")).expect("settings file");
        let config = settings.to_str().expect("a UTF-8 temp path");
        let node = NodeProcess::start_with(
            Auth::Secret(&secret),
            NODE_WORKERS,
            &[
                "--config",
                config,
                "--max-memory",
                "128MiB",
                "--max-output",
                "1MiB",
            ],
        );
        let first = client(Auth::Secret(&secret), &[&node]);
        let second = client(Auth::Secret(&secret), &[&node]);
        connect(&first, 1);
        connect(&second, 1);
        let mut cluster = Cluster {
            node,
            first,
            second,
            settings,
            _dir: dir,
        };
        cluster.assert_still_serving();
        cluster
    }

    /// Each client's next good job succeeds on the node, over the connection it had from
    /// the start (no reconnection, no job retried), and the node process is alive and
    /// has not panicked.
    fn assert_still_serving(&mut self) {
        let module = testjobs();
        for (name, client) in [("first", &self.first), ("second", &self.second)] {
            let job = client.submit::<i64, _>(&module, "add_one", (41i64,));
            assert_eq!(
                result(&job),
                Ok(42),
                "the {name} client's good job after a hostile one"
            );
            let stats = client.stats();
            let node = &stats.nodes[0];
            assert!(
                node.connected && node.connections == 1 && node.retries == 0,
                "the {name} client's connection did not survive:\n{stats}"
            );
        }
        assert!(
            self.node.wait_exit(Duration::ZERO).is_none(),
            "the node exited; its log:\n{}",
            self.node.log()
        );
        // A Rust panic says `thread '…' panicked at <file>`; a job's panic is logged as
        // `job panicked: <message>`, which is fine.
        let log = self.node.log();
        assert!(!log.contains("' panicked at "), "the node panicked:\n{log}");
    }

    /// The node's process id, found by its settings file on its command line.
    fn pid(&self) -> u32 {
        let settings = self.settings.to_str().expect("a UTF-8 temp path");
        pid_with_argument(settings).expect("the node's process is in /proc")
    }
}

/// The process whose command line has `argument`, scanning `/proc`.
fn pid_with_argument(argument: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .split(|&byte| byte == 0)
                .any(|arg| arg == argument.as_bytes())
                .then_some(pid)
        })
        .next()
}

/// A field of `/proc/PID/status` in bytes, such as `VmHWM` (peak resident set size).
fn memory_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/status: {err}"));
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line
        .trim()
        .strip_suffix("kB")
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected {field} line {line:?}"));
    kib * 1024
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// An infinite loop holds one of the node's workers; the other serves both clients: every
/// good job finishes while the loop still runs (its timeout, the node's maximum, is far
/// beyond the test's bounded waits), and the loop then ends by a cancel, or its timeout.
#[test]
fn an_infinite_loop_on_a_node_times_out_while_the_node_serves_others() {
    let mut cluster = Cluster::start();
    let module = testjobs();
    let held = cluster.first.submit::<u64, _>(&module, "spin", ());
    let good: Vec<(i64, Job<i64>)> = (0..100i64)
        .map(|x| {
            let client = if x % 2 == 0 {
                &cluster.first
            } else {
                &cluster.second
            };
            (x, client.submit::<i64, _>(&module, "add_one", (x,)))
        })
        .collect();
    for (x, job) in &good {
        assert_eq!(result(job), Ok(x + 1), "add_one({x})");
    }
    assert!(!held.is_finished(), "the loop ended before the good jobs");
    // Cancelled, the loop stops on the node and frees its worker.
    assert!(held.cancel());
    assert!(matches!(result(&held), Err(JobError::Cancelled(_))));
    cluster.assert_still_serving();
    // A loop with a short timeout ends with it.
    let timeout = Duration::from_millis(300);
    let spin = cluster.first.submit_with::<u64, _>(
        &module,
        "spin",
        (),
        &JobOptions::new().timeout(timeout),
    );
    assert_eq!(result(&spin), Err(JobError::Timeout(timeout)));
    cluster.assert_still_serving();
}

#[test]
fn a_memory_bomb_on_a_node_hits_its_cap() {
    let mut cluster = Cluster::start();
    let module = testjobs();
    let options = JobOptions::new().max_memory(32 << 20);
    let capped = cluster
        .first
        .submit_with::<u64, _>(&module, "memory_bomb", (), &options);
    assert_eq!(
        result(&capped),
        Err(JobError::MemoryLimit { limit: 32 << 20 })
    );
    cluster.assert_still_serving();
    // From the other client, which asks for no cap: the node's own (a client's default,
    // sent as if asked for, used to be refused as above the node's maximum).
    let default = cluster.second.submit::<u64, _>(&module, "memory_bomb", ());
    assert_eq!(
        result(&default),
        Err(JobError::MemoryLimit {
            limit: NODE_MAX_MEMORY
        })
    );
    cluster.assert_still_serving();
}

#[test]
fn unbounded_recursion_on_a_node_is_a_stack_overflow_trap() {
    let mut cluster = Cluster::start();
    let job = cluster
        .first
        .submit::<u64, _>(&testjobs(), "recurse", (0u64,));
    match result(&job) {
        // As on the local pool: the guard that stops it is wasmtime's call-stack limit or
        // the bottom of linear memory (Rust keeps its own stack there).
        Err(JobError::Trap {
            kind: TrapKind::StackOverflow | TrapKind::MemoryOutOfBounds,
        }) => {}
        other => panic!("expected a stack overflow trap, got {other:?}"),
    }
    cluster.assert_still_serving();
}

#[test]
fn gigabytes_of_stdout_on_a_node_stop_at_the_output_limit() {
    let mut cluster = Cluster::start();
    let module = testjobs();
    let four_gib = 4u64 << 30;
    let flood = cluster
        .first
        .submit::<u64, _>(&module, "print_lots", (four_gib,));
    assert_eq!(
        result(&flood),
        Err(JobError::OutputLimit {
            stream: "stdout".into(),
            limit: NODE_MAX_OUTPUT
        })
    );
    let output = flood.wait_output();
    assert_eq!(
        output.stdout.len() as u64,
        NODE_MAX_OUTPUT,
        "what fits comes back from the node"
    );
    assert!(
        output
            .stdout
            .iter()
            .all(|&byte| byte == b'x' || byte == b'\n')
    );
    cluster.assert_still_serving();
    // A smaller per-job limit, from the other client.
    let options = JobOptions::new().max_output(64 << 10);
    let flood = cluster
        .second
        .submit_with::<u64, _>(&module, "print_lots", (four_gib,), &options);
    assert_eq!(
        result(&flood),
        Err(JobError::OutputLimit {
            stream: "stdout".into(),
            limit: 64 << 10
        })
    );
    assert_eq!(flood.wait_output().stdout.len(), 64 << 10);
    cluster.assert_still_serving();
}

#[test]
fn files_sockets_and_the_environment_are_absent_on_a_node() {
    let mut cluster = Cluster::start();
    let module = testjobs();
    for path in ["/etc/passwd", "/proc/self/environ", "."] {
        let job = cluster
            .first
            .submit::<String, _>(&module, "read_file", (path,));
        match result(&job) {
            Err(JobError::Failed(message)) => {
                assert!(message.starts_with(&format!("{path}: ")), "{message}")
            }
            other => panic!("expected the guest's own error for {path}, got {other:?}"),
        }
    }
    // The node runs with RUST_LOG set: none of its environment reaches a job.
    for name in ["PATH", "HOME", "RUST_LOG"] {
        let job = cluster
            .first
            .submit::<Option<String>, _>(&module, "env_var", (name,));
        assert_eq!(result(&job), Ok(None), "${name} on the node");
    }
    // Not even the node's own port is reachable.
    let address = cluster.node.address().to_string();
    for target in [address.as_str(), "127.0.0.1:1"] {
        let job = cluster
            .second
            .submit::<String, _>(&module, "connect", (target,));
        match result(&job) {
            Err(JobError::Failed(message)) => assert!(
                message.starts_with(&format!("{target}: ")) && message.contains("not supported"),
                "{message}"
            ),
            other => panic!("expected the guest's own error for {target}, got {other:?}"),
        }
    }
    cluster.assert_still_serving();
}

/// A loop with a fuel budget runs out of it on a node as it does locally, and a good job
/// uses the same fuel on the node as on the local pool: the budget is the same everywhere.
#[test]
fn a_fuel_budget_on_a_node_is_the_same_as_locally() {
    let mut cluster = Cluster::start();
    let module = testjobs();
    let budget = JobOptions::new().fuel(20_000_000);
    let spin = cluster
        .first
        .submit_with::<u64, _>(&module, "spin", (), &budget);
    assert_eq!(
        result(&spin),
        Err(JobError::FuelExhausted { limit: 20_000_000 })
    );
    assert_eq!(spin.wait_output().fuel_used, Some(20_000_000));

    let sum_primes = sum_primes();
    let local = Server::builder()
        .workers(1)
        .no_disk_cache()
        .build()
        .expect("a local pool");
    let used = |server: &Server| {
        let job = server.submit_with::<u64, _>(&sum_primes, "sum_primes", (30_000u64,), &budget);
        assert_eq!(result(&job), Ok(45_675_864));
        job.wait_output().fuel_used.expect("fuel used is reported")
    };
    assert_eq!(used(&cluster.second), used(&local));
    cluster.assert_still_serving();
}

#[test]
fn traps_panics_and_exits_on_a_node_are_named() {
    let mut cluster = Cluster::start();
    let module = testjobs();
    let unreachable = cluster
        .first
        .submit::<u32, _>(&module, "trap_unreachable", ());
    let panics = cluster
        .first
        .submit::<u32, _>(&module, "panics", ("the sky is falling",));
    let exits = cluster.second.submit::<u32, _>(&module, "exit", (3,));
    assert_eq!(
        result(&unreachable),
        Err(JobError::Trap {
            kind: TrapKind::Unreachable
        })
    );
    match result(&panics) {
        Err(JobError::Panic(message)) => {
            assert!(message.starts_with("the sky is falling (at "), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    let stderr = panics.wait_output().stderr;
    assert!(
        String::from_utf8_lossy(&stderr).contains("the sky is falling"),
        "the panic's stderr comes back from the node"
    );
    assert_eq!(result(&exits), Err(JobError::Exited(3)));
    cluster.assert_still_serving();
}

#[test]
fn a_result_too_large_to_send_back_is_an_error_on_a_node() {
    let mut cluster = Cluster::start();
    // 40 MB: within the job's memory, beyond a frame (16 MiB).
    let job = cluster
        .first
        .submit::<String, _>(&testjobs(), "repeat", ("x", 40_000_000u32));
    match result(&job) {
        Err(JobError::ResultTooLarge { size, limit }) => {
            assert!(size > 40_000_000 && limit == 16 << 20, "{size} {limit}")
        }
        other => panic!(
            "expected an error for a result too large to send back, got {:?}",
            other.map(|text| text.len())
        ),
    }
    cluster.assert_still_serving();
}

/// A hostile job of the mix, with the limits that make it end.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    Spin,
    MemoryBomb,
    Recurse,
    Flood,
    ReadFile,
    Connect,
    Environment,
    Unreachable,
    Panic,
    Exit,
}

/// The timeout of the mix's infinite loops.
const SPIN_TIMEOUT: Duration = Duration::from_millis(300);
/// The memory cap of the mix's memory bombs.
const BOMB_MEMORY: u64 = 32 << 20;

impl Hostile {
    const ALL: [Hostile; 10] = [
        Hostile::Spin,
        Hostile::MemoryBomb,
        Hostile::Recurse,
        Hostile::Flood,
        Hostile::ReadFile,
        Hostile::Connect,
        Hostile::Environment,
        Hostile::Unreachable,
        Hostile::Panic,
        Hostile::Exit,
    ];

    /// Submits the job. Its result type is `Option<String>`, which only the environment
    /// job returns: the others never return.
    fn submit(self, server: &Server, module: &Module) -> Job<Option<String>> {
        let none = JobOptions::new();
        match self {
            Hostile::Spin => {
                let options = JobOptions::new().timeout(SPIN_TIMEOUT);
                server.submit_with(module, "spin", (), &options)
            }
            Hostile::MemoryBomb => {
                let options = JobOptions::new().max_memory(BOMB_MEMORY);
                server.submit_with(module, "memory_bomb", (), &options)
            }
            Hostile::Recurse => server.submit_with(module, "recurse", (0u64,), &none),
            Hostile::Flood => server.submit_with(module, "print_lots", (1u64 << 30,), &none),
            Hostile::ReadFile => server.submit_with(module, "read_file", ("/etc/passwd",), &none),
            Hostile::Connect => server.submit_with(module, "connect", ("127.0.0.1:1",), &none),
            Hostile::Environment => server.submit_with(module, "env_var", ("PATH",), &none),
            Hostile::Unreachable => server.submit_with(module, "trap_unreachable", (), &none),
            Hostile::Panic => server.submit_with(module, "panics", ("hostile",), &none),
            Hostile::Exit => server.submit_with(module, "exit", (7,), &none),
        }
    }

    /// Whether the job failed (the environment job succeeds, finding nothing).
    fn fails(self) -> bool {
        !matches!(self, Hostile::Environment)
    }

    /// Checks the job's result.
    fn check(self, result: &Result<Option<String>, JobError>) {
        let right = match (self, result) {
            (Hostile::Spin, Err(JobError::Timeout(timeout))) => *timeout == SPIN_TIMEOUT,
            (Hostile::MemoryBomb, Err(JobError::MemoryLimit { limit })) => *limit == BOMB_MEMORY,
            (Hostile::Recurse, Err(JobError::Trap { kind })) => {
                matches!(kind, TrapKind::StackOverflow | TrapKind::MemoryOutOfBounds)
            }
            (Hostile::Flood, Err(JobError::OutputLimit { stream, limit })) => {
                stream == "stdout" && *limit == NODE_MAX_OUTPUT
            }
            (Hostile::ReadFile, Err(JobError::Failed(message))) => {
                message.starts_with("/etc/passwd: ")
            }
            (Hostile::Connect, Err(JobError::Failed(message))) => {
                message.starts_with("127.0.0.1:1: ")
            }
            (Hostile::Environment, Ok(None)) => true,
            (Hostile::Unreachable, Err(JobError::Trap { kind })) => *kind == TrapKind::Unreachable,
            (Hostile::Panic, Err(JobError::Panic(message))) => message.starts_with("hostile"),
            (Hostile::Exit, Err(JobError::Exited(7))) => true,
            _ => false,
        };
        assert!(right, "hostile job {self:?} ended with {result:?}");
    }
}

/// One job of the mix: a good one with the sum it must return, or a hostile one.
enum Mixed {
    Good(u64, Job<u64>),
    Hostile(Hostile, Job<Option<String>>),
}

#[test]
fn fifty_hostile_jobs_among_five_thousand_good_ones() {
    const GOOD: usize = 5_000;
    const HOSTILE: usize = 50;
    let mut cluster = Cluster::start();
    let sum_primes = sum_primes();
    let testjobs = testjobs();
    // Ship and compile sum_primes on the node before the mix, so that the baseline
    // includes both modules.
    let warm = cluster
        .first
        .submit::<u64, _>(&sum_primes, "sum_primes", (100u64,));
    assert_eq!(result(&warm), Ok(1060));
    let pid = cluster.pid();
    let baseline = memory_status(pid, "VmHWM");

    let max_input = 5_000;
    let sums = sums_of_primes_below(max_input);
    let total = GOOD + HOSTILE;
    let completions: Arc<Vec<AtomicU32>> =
        Arc::new((0..total).map(|_| AtomicU32::new(0)).collect());
    let count = |index: usize| {
        let completions = completions.clone();
        move || {
            completions[index].fetch_add(1, Ordering::SeqCst);
        }
    };
    let started = Instant::now();
    let mut jobs = Vec::with_capacity(total);
    // One hostile job after every 100 good ones, the kinds in turn; the clients take
    // turns by tens.
    for i in 0..GOOD {
        let client = if (i / 10) % 2 == 0 {
            &cluster.first
        } else {
            &cluster.second
        };
        let n = (i as u64 * 7) % max_input;
        let job = client.submit::<u64, _>(&sum_primes, "sum_primes", (n,));
        let done = count(jobs.len());
        job.on_complete(move |_| done());
        jobs.push(Mixed::Good(n, job));
        if i % 100 == 50 {
            let hostile_index = i / 100;
            let kind = Hostile::ALL[hostile_index % Hostile::ALL.len()];
            let client = if hostile_index % 2 == 0 {
                &cluster.first
            } else {
                &cluster.second
            };
            let job = kind.submit(client, &testjobs);
            let done = count(jobs.len());
            job.on_complete(move |_| done());
            jobs.push(Mixed::Hostile(kind, job));
        }
    }
    assert_eq!(jobs.len(), total);
    for job in &jobs {
        match job {
            Mixed::Good(n, job) => {
                assert_eq!(result(job), Ok(sums[*n as usize]), "sum_primes({n})")
            }
            Mixed::Hostile(kind, job) => kind.check(&result(job)),
        }
    }
    let elapsed = started.elapsed();
    let peak = memory_status(pid, "VmHWM");
    let resident = memory_status(pid, "VmRSS");
    eprintln!(
        "{GOOD} good and {HOSTILE} hostile jobs on one node ({NODE_WORKERS} workers) in \
         {elapsed:.2?}; the node's peak resident memory: {} before the mix, {} after it \
         (now {} resident)",
        mib(baseline),
        mib(peak),
        mib(resident)
    );

    // Every first completion is in: a second one would have shown.
    for (index, count) in completions.iter().enumerate() {
        let count = count.load(Ordering::SeqCst);
        assert_eq!(count, 1, "job {index} completed {count} times");
    }
    let hostile_failures = |client: usize| {
        (0..HOSTILE)
            .filter(|index| index % 2 == client && Hostile::ALL[index % Hostile::ALL.len()].fails())
            .count() as u64
    };
    let mut node_jobs = 0;
    for (index, client) in [&cluster.first, &cluster.second].into_iter().enumerate() {
        let stats = settled_stats(client);
        let node = &stats.nodes[0];
        assert!(
            node.connected && node.connections == 1 && node.retries == 0,
            "the client's connection did not survive:\n{stats}"
        );
        // Its warm-up jobs (two for the first client) succeeded too.
        assert_eq!(stats.failed, hostile_failures(index), "{stats}");
        node_jobs += node.jobs;
    }
    // The warm-up: one add_one from each client, and one sum_primes.
    assert_eq!(node_jobs, total as u64 + 3);
    // The node's memory stays far below what the jobs were allowed: the bombs were capped,
    // and nothing is kept from a job once it is done.
    assert!(
        peak < 2 << 30,
        "the node's peak resident memory reached {}",
        mib(peak)
    );
    cluster.assert_still_serving();
}
