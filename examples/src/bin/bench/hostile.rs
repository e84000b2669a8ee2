//! Hostile jobs among good ones on a node: 5,000 good sum_primes jobs alone, then the same
//! with 50 hostile jobs mixed in (infinite loops, memory bombs, unbounded recursion, output
//! floods, reaching for files, sockets and the environment, traps, panics, exits), each
//! with the limits that make it end. Reports the good jobs' throughput with the hostile
//! ones against without, and the node's peak memory in each case.
//!
//! The node runs in a child process of this program (`bench --hostile-node`): the same
//! code as `wasp node`, in a process of its own, so that its peak resident memory (`VmHWM`
//! of `/proc/PID/status`, reset between phases through `/proc/PID/clear_refs`) is the
//! node's alone, not the client's. The hostile jobs are those of the test guest
//! (`tests/guests/testjobs`), built here with cargo as the test fixtures build it.

use crate::{Row, median, ms};
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use wasp::{ClusterSecret, JobError, JobOptions, Module, Node, NodeConfig, Server, TrapKind};

/// Good jobs in each phase.
const GOOD: usize = 5_000;
/// Hostile jobs mixed in: one after every `GOOD / HOSTILE` good ones.
const HOSTILE: usize = 50;
/// The node's workers.
const WORKERS: usize = 2;
/// The timeout of an infinite loop.
const SPIN_TIMEOUT: Duration = Duration::from_millis(100);
/// The memory cap of a memory bomb.
const BOMB_MEMORY: u64 = 32 << 20;
/// How the child learns the cluster secret.
const SECRET_VAR: &str = "WASP_BENCH_SECRET";

pub(crate) fn run(repeats: usize) -> anyhow::Result<Vec<Row>> {
    let testjobs = testjobs_module()?;
    let sum_primes = Module::from_bytes(wasp_examples::SUM_PRIMES)?;
    let secret = ClusterSecret::generate()?;
    let node = ChildNode::start(&secret)?;
    let client = Server::builder()
        .workers(0)
        .no_disk_cache()
        .secret(secret.clone())
        .peers([wasp::Peer::Addr(node.address)])
        .build()?;
    client.wait_for_nodes(1, Duration::from_secs(30))?;

    // Both modules shipped and compiled, every hostile kind run once.
    let warm_up = Phase::run(&client, &sum_primes, &testjobs, true)?;
    let startup_peak = node.peak()?;
    let (mut clean_times, mut mixed_times) = (Vec::new(), Vec::new());
    let (mut clean_peak, mut mixed_peak) = (0, 0);
    let mut hostile_busy = Vec::new();
    let mut reset = true;
    for _ in 0..repeats {
        reset &= node.reset_peak();
        let clean = Phase::run(&client, &sum_primes, &testjobs, false)?;
        clean_peak = clean_peak.max(node.peak()?);
        reset &= node.reset_peak();
        let mixed = Phase::run(&client, &sum_primes, &testjobs, true)?;
        mixed_peak = mixed_peak.max(node.peak()?);
        clean_times.push(clean.good);
        mixed_times.push(mixed.good);
        hostile_busy.push(mixed.hostile_busy);
    }
    let stats = client.stats();
    let retries: u64 = stats.nodes.iter().map(|node| node.retries).sum();
    anyhow::ensure!(
        stats.nodes.iter().all(|node| node.connections == 1),
        "the client reconnected to the node:\n{stats}"
    );
    anyhow::ensure!(retries == 0, "jobs were retried:\n{stats}");
    drop(client);
    let node_exit = node.stop()?;

    let (clean, mixed) = (median(clean_times), median(mixed_times));
    let hostile_busy = median(hostile_busy);
    let ratio = clean.as_secs_f64() / mixed.as_secs_f64();
    // What the hostile jobs cost at best: their own run time, spread over the workers.
    let expected = clean.as_secs_f64() / (clean + hostile_busy / WORKERS as u32).as_secs_f64();
    let rate = |time: Duration| format!("{:.0} jobs/s", GOOD as f64 / time.as_secs_f64());
    let peaks = if reset {
        "reset before each phase"
    } else {
        "cannot be reset here: peaks since the node started"
    };
    println!(
        "hostile: {GOOD} good jobs alone {} ({}), with {HOSTILE} hostile ones mixed in {} ({}); \
         the hostile jobs ran {} on the node ({WORKERS} workers); warm-up {}",
        ms(clean),
        rate(clean),
        ms(mixed),
        rate(mixed),
        ms(hostile_busy),
        ms(warm_up.good)
    );
    println!(
        "hostile: the node's peak resident memory: {} after start-up and a warm-up mix, {} \
         with good jobs only, {} with the hostile ones mixed in ({peaks}); {node_exit}",
        mib(startup_peak),
        mib(clean_peak),
        mib(mixed_peak)
    );
    Ok(vec![
        Row {
            measure: format!(
                "{HOSTILE} hostile jobs among {GOOD} good ones on a node ({WORKERS} workers): \
                 good jobs' throughput with them vs without"
            ),
            value: format!(
                "{ratio:.3} ({} vs {}; their own run time, {}, allows {expected:.3})",
                rate(mixed),
                rate(clean),
                ms(hostile_busy)
            ),
            target: "close to what their own run time allows",
        },
        Row {
            measure: format!(
                "the node's peak memory (VmHWM) with the {HOSTILE} hostile jobs vs without"
            ),
            value: format!(
                "{:+.1} MiB ({} vs {})",
                (mixed_peak as f64 - clean_peak as f64) / f64::from(1 << 20),
                mib(mixed_peak),
                mib(clean_peak)
            ),
            target: "<= workers x the bombs' cap (64 MiB)",
        },
    ])
}

/// One phase: `GOOD` sum_primes jobs, with `HOSTILE` hostile ones mixed in if `hostile`.
struct Phase {
    /// From the first submission to the last good result.
    good: Duration,
    /// The hostile jobs' run time on the node, added up.
    hostile_busy: Duration,
}

impl Phase {
    fn run(
        client: &Server,
        sum_primes: &Module,
        testjobs: &Module,
        hostile: bool,
    ) -> anyhow::Result<Phase> {
        let inputs: Vec<u64> = (0..GOOD as u64).map(|i| 10_000 + (i * 7) % 1_000).collect();
        let start = Instant::now();
        let mut good = Vec::with_capacity(GOOD);
        let mut bad = Vec::with_capacity(HOSTILE);
        for (index, &n) in inputs.iter().enumerate() {
            good.push(client.submit::<u64, _>(sum_primes, "sum_primes", (n,)));
            if hostile && index % (GOOD / HOSTILE) == GOOD / HOSTILE / 2 {
                let kind = Hostile::ALL[bad.len() % Hostile::ALL.len()];
                bad.push((kind, kind.submit(client, testjobs)));
            }
        }
        let sums = good
            .iter()
            .map(|job| job.wait())
            .collect::<Result<Vec<_>, _>>()?;
        let elapsed = start.elapsed();
        let mut hostile_busy = Duration::ZERO;
        for (kind, job) in &bad {
            let output = job.wait_output();
            kind.check(&output.result)?;
            hostile_busy += output.duration;
        }
        for (sum, &n) in sums.iter().zip(&inputs) {
            anyhow::ensure!(*sum == sum_primes_guest::sum_primes(n), "wrong sum for {n}");
        }
        Ok(Phase {
            good: elapsed,
            hostile_busy,
        })
    }
}

/// A hostile job, with the limits that make it end.
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

    /// Submits the job; only the environment job returns (`None`), the others fail.
    fn submit(self, server: &Server, module: &Module) -> wasp::Job<Option<String>> {
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

    /// Checks that the job ended as it must.
    fn check(self, result: &Result<Option<String>, JobError>) -> anyhow::Result<()> {
        let right = match (self, result) {
            (Hostile::Spin, Err(JobError::Timeout(timeout))) => *timeout == SPIN_TIMEOUT,
            (Hostile::MemoryBomb, Err(JobError::MemoryLimit { limit })) => *limit == BOMB_MEMORY,
            (Hostile::Recurse, Err(JobError::Trap { kind })) => {
                matches!(kind, TrapKind::StackOverflow | TrapKind::MemoryOutOfBounds)
            }
            (Hostile::Flood, Err(JobError::OutputLimit { stream, .. })) => stream == "stdout",
            (Hostile::ReadFile | Hostile::Connect, Err(JobError::Failed(_))) => true,
            (Hostile::Environment, Ok(None)) => true,
            (Hostile::Unreachable, Err(JobError::Trap { kind })) => *kind == TrapKind::Unreachable,
            (Hostile::Panic, Err(JobError::Panic(_))) => true,
            (Hostile::Exit, Err(JobError::Exited(7))) => true,
            _ => false,
        };
        anyhow::ensure!(right, "hostile job {self:?} ended with {result:?}");
        Ok(())
    }
}

/// Builds the test guest as the test fixtures do (same flags, same target directory,
/// `target/wasp-guests`), so that a module already built is reused, and loads it.
fn testjobs_module() -> anyhow::Result<Module> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("examples/ is in the workspace"))?;
    // This program is target/<profile>/bench.
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("{} is not in a target directory", exe.display()))?;
    let guests = target.join("wasp-guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--quiet", "--target", "wasm32-wasip1"])
        .args(["--package", "wasp-testjobs", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&guests)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR"] {
        command.env_remove(var);
    }
    let status = command.status()?;
    anyhow::ensure!(
        status.success(),
        "building the test guest failed ({status}); it needs the wasm32-wasip1 target"
    );
    Ok(Module::from_file(
        guests.join("wasm32-wasip1/release/wasp_testjobs.wasm"),
    )?)
}

/// The node in a child process of this program.
struct ChildNode {
    child: Child,
    /// Closing it tells the child to stop.
    stdin: Option<ChildStdin>,
    address: SocketAddr,
}

impl ChildNode {
    fn start(secret: &ClusterSecret) -> anyhow::Result<ChildNode> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--hostile-node")
            .env(SECRET_VAR, secret.to_hex())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (line, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = line.send(BufReader::new(stdout).read_line(&mut text).map(|_| text));
        });
        let address = match address.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => line.trim().parse::<SocketAddr>().ok(),
            _ => None,
        };
        let Some(address) = address else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the node process did not print its address");
        };
        Ok(ChildNode {
            child,
            stdin,
            address,
        })
    }

    /// The node's peak resident memory so far, in bytes.
    fn peak(&self) -> anyhow::Result<u64> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))
    }

    /// Resets the peak to the current resident memory; false if the kernel refuses.
    fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_ok()
    }

    /// Closes the child's stdin, and waits for it to drain and exit.
    fn stop(mut self) -> anyhow::Result<String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the node process failed: {status}");
                return Ok("the node process exited cleanly".into());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                anyhow::bail!("the node process did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Child mode: a node with `WORKERS` workers on 127.0.0.1, its compiled-code cache and
/// identity in a temp dir; prints its address, and serves until its stdin closes.
pub(crate) fn node_child() -> anyhow::Result<()> {
    let secret = ClusterSecret::parse(&std::env::var(SECRET_VAR)?)?;
    let dir = std::env::temp_dir().join(format!("wasp-bench-hostile-{}", std::process::id()));
    let mut config = NodeConfig::new("127.0.0.1:0".parse()?, Some(secret));
    config.workers = WORKERS;
    config.identity_dir = Some(dir.join("identity"));
    config.cache_dir = Some(dir.join("cache"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        // Blocks until the parent closes the pipe (or dies).
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = stop.send(());
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        let node = Node::bind(config)?;
        println!("{}", node.local_addr()?);
        node.run(async {
            let _ = stopped.await;
        })
        .await;
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    served
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
