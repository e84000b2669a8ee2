//! Scale: one client and N `wasp node` processes of one worker each, all behind one name,
//! for N in 1, 2, 4, 8, 16, 32: trivial jobs mapped through them, the client's throughput,
//! CPU time per job and resident memory per node, against N = 1. Shows how the client's
//! per-job cost (the scheduler's choice among N nodes, N connections to serve) grows with
//! the number of nodes.
//!
//! The nodes are real processes, the `wasp` binary next to this program (or `WASP_BIN`),
//! each `wasp node --listen 127.0.0.1:0 --insecure --workers 1` with its own identity and
//! cache directories in a temp dir; their first line of stdout gives their address. The
//! client (no local workers) knows them by one peer name, `nodes.bench:7878`, that its
//! resolver turns into the N addresses, as a Kubernetes headless Service's name stands
//! for its pods.
//!
//! For each N the client is a fresh child process of this program (`bench --scale-client
//! JOBS`), so that its figures are its own: its CPU time (every thread's, from
//! `/proc/self/task/*/schedstat`; the nodes' CPU is theirs and not counted), and the
//! resident memory (`VmRSS`) it adds from before the client is built to all nodes
//! connected, not lowered by memory an earlier N's client freed and the allocator kept.
//! That memory includes the client's fixed cost (its engine and threads), so the figure
//! per node falls with N; the cost of a node added is the slope from the first N to the
//! last.
//!
//! Jobs are submitted through a window of [`WINDOW`] jobs in flight, the same for every N,
//! results checked in order. Before the clock starts, every node has run jobs (the module
//! shipped to it and compiled). Between two N the client exits and the node processes are
//! killed.

use crate::Row;
use crate::queue::resident;
use anyhow::Context as _;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasp::{Module, Peer, Server};

/// The one name that stands for every node.
const NAME: &str = "nodes.bench:7878";

/// Jobs in flight at most, whatever the number of nodes: deeper than all the nodes' credit
/// windows together, so that the client, not the window, sets the pace.
const WINDOW: usize = 4_096;

/// How long the node processes may take to print their addresses, all together.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the client may take to connect to every node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the warm-up may take to reach every node.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the client process may take, start to finish.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);

/// Where to find `wasp` instead of next to this program.
const WASP_BIN: &str = "WASP_BIN";

/// The flag of this program's child mode: the client.
pub(crate) const CLIENT_FLAG: &str = "--scale-client";

/// How the client process learns the nodes' addresses (comma-separated).
const NODES_VAR: &str = "WASP_BENCH_SCALE_NODES";

/// What starts the client process's line of results.
const RESULT_PREFIX: &str = "scale-result ";

pub(crate) fn run(jobs: usize, counts: &[usize]) -> anyhow::Result<Vec<Row>> {
    let wasp = wasp_binary()?;
    let cores = wasp::default_workers();
    let most = counts.iter().copied().max().unwrap_or(1);
    println!(
        "scale: {jobs} trivial jobs from one client (0 local workers; a child process of this \
         program, fresh for each N) through N `wasp node` processes (1 worker each, {}) \
         behind one name, {WINDOW} jobs in flight",
        wasp.display()
    );
    println!(
        "scale: note: this machine has {cores} cores, shared by the client and all the node \
         processes: a node of one worker keeps about one core busy, so throughput may grow up \
         to {cores} nodes and not beyond ({most} nodes are {most} processes on {cores} \
         cores); what the larger N show is what each job costs the client as N grows (its \
         CPU; the nodes' CPU is not counted) and the client's memory per node"
    );
    let mut results = Vec::with_capacity(counts.len());
    for &count in counts {
        let result =
            Round::run(&wasp, count, jobs).with_context(|| format!("scale: {count} nodes"))?;
        println!(
            "scale: {count:>2} nodes: {:.0} jobs/s, client CPU {:.2} µs per job, client memory \
             {:+.0} KiB per node ({:+.0} KiB in all), jobs per node {}..{}",
            result.rate(),
            result.cpu_per_job() * 1e6,
            result.memory_per_node() / 1024.0,
            result.memory as f64 / 1024.0,
            result.fewest,
            result.most
        );
        results.push(result);
    }
    let (Some(first), Some(last)) = (results.first(), results.last()) else {
        return Ok(Vec::new());
    };
    println!();
    println!(
        "| nodes | jobs/s | vs {} node | client CPU per job | vs {} node | client memory per node |",
        first.nodes, first.nodes
    );
    println!("|---|---|---|---|---|---|");
    for result in &results {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} µs | {:.2} | {:+.0} KiB |",
            result.nodes,
            result.rate(),
            result.rate() / first.rate(),
            result.cpu_per_job() * 1e6,
            result.cpu_per_job() / first.cpu_per_job(),
            result.memory_per_node() / 1024.0
        );
    }
    println!();
    let cpu_ratio = last.cpu_per_job() / first.cpu_per_job();
    let added = last.nodes.saturating_sub(first.nodes).max(1) as f64;
    // The cost of one more node: the slope between the first and the last N.
    let cpu_slope = (last.cpu_per_job() - first.cpu_per_job()) / added;
    let memory_slope = (last.memory as f64 - first.memory as f64) / added;
    println!(
        "scale: CPU per job: {} node {:.2} µs, {} nodes {:.2} µs ({cpu_ratio:.2}x; {:+.0} ns per \
         job per node added); throughput {} nodes / {} node: {:.2} ({cores} cores); client \
         memory {:+.0} KiB per node added",
        first.nodes,
        first.cpu_per_job() * 1e6,
        last.nodes,
        last.cpu_per_job() * 1e6,
        cpu_slope * 1e9,
        last.nodes,
        first.nodes,
        last.rate() / first.rate(),
        memory_slope / 1024.0
    );
    Ok(vec![
        Row {
            measure: format!(
                "{jobs} trivial jobs, 1 client, {} `wasp node` processes (1 worker each, one \
                 name) vs {}: throughput ratio ({cores} cores for all)",
                last.nodes, first.nodes
            ),
            value: format!(
                "{:.2} ({:.0} jobs/s vs {:.0} jobs/s)",
                last.rate() / first.rate(),
                last.rate(),
                first.rate()
            ),
            target: "no collapse (cores shared: no growth here)",
        },
        Row {
            measure: format!(
                "the client's CPU per job, {} nodes vs {}",
                last.nodes, first.nodes
            ),
            value: format!(
                "{cpu_ratio:.2}x ({:.2} µs vs {:.2} µs; {:+.0} ns per node added)",
                last.cpu_per_job() * 1e6,
                first.cpu_per_job() * 1e6,
                cpu_slope * 1e9
            ),
            target: "nearly flat in the number of nodes",
        },
        Row {
            measure: format!(
                "the client's resident memory per node, connected to {} nodes",
                last.nodes
            ),
            value: format!(
                "{:+.0} KiB ({:+.0} KiB per node added)",
                last.memory_per_node() / 1024.0,
                memory_slope / 1024.0
            ),
            target: "bounded, documented",
        },
    ])
}

/// What one N measured.
struct Round {
    nodes: usize,
    jobs: usize,
    elapsed: Duration,
    /// The client's CPU time (user and system, all its threads) during the run, seconds.
    cpu: f64,
    /// Resident memory the client added from before it was built to all nodes connected,
    /// in bytes (negative if the allocator gave back more than it took).
    memory: i64,
    /// The fewest and the most jobs of the run a node ran.
    fewest: u64,
    most: u64,
}

impl Round {
    /// Starts the node processes, runs the client in a child process of this program, and
    /// stops the nodes.
    fn run(wasp: &Path, nodes: usize, jobs: usize) -> anyhow::Result<Round> {
        let processes = NodeProcesses::start(wasp, nodes)?;
        let addresses: Vec<String> = processes
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut child = Command::new(std::env::current_exe()?)
            .args([CLIENT_FLAG, &jobs.to_string()])
            .env(NODES_VAR, addresses.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = sender.send(
                BufReader::new(stdout)
                    .read_to_string(&mut text)
                    .map(|_| text),
            );
        });
        let text = match output.recv_timeout(CLIENT_TIMEOUT) {
            Ok(text) => text?,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("the client process did not finish within {CLIENT_TIMEOUT:?}");
            }
        };
        let status = child.wait()?;
        drop(processes);
        anyhow::ensure!(status.success(), "the client process failed: {status}");
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(RESULT_PREFIX))
            .ok_or_else(|| anyhow::anyhow!("the client process printed no result: {text:?}"))?;
        let numbers = line
            .split_whitespace()
            .map(str::parse::<i64>)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("the client's result {line:?}"))?;
        let &[elapsed, cpu, memory, fewest, most] = numbers.as_slice() else {
            anyhow::bail!("the client's result {line:?} is not 5 numbers");
        };
        Ok(Round {
            nodes,
            jobs,
            elapsed: Duration::from_nanos(elapsed.try_into()?),
            cpu: cpu as f64 * 1e-9,
            memory,
            fewest: fewest.try_into()?,
            most: most.try_into()?,
        })
    }

    fn rate(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64()
    }

    /// Seconds of the client's CPU per job.
    fn cpu_per_job(&self) -> f64 {
        self.cpu / self.jobs as f64
    }

    /// Bytes per node.
    fn memory_per_node(&self) -> f64 {
        self.memory as f64 / self.nodes as f64
    }
}

/// Child mode (`bench --scale-client JOBS`, the nodes' addresses in [`NODES_VAR`]): the
/// client. Connects to every node under one name, warms them up, maps `jobs` trivial jobs
/// and prints `scale-result` and its run time (ns), its CPU time during the run (ns), the
/// resident memory the client added by connecting (bytes), and the fewest and the most
/// jobs a node ran.
pub(crate) fn client_child(jobs: &str) -> anyhow::Result<()> {
    let jobs: usize = jobs.parse()?;
    let addresses = std::env::var(NODES_VAR)?
        .split(',')
        .map(str::parse::<SocketAddr>)
        .collect::<Result<Vec<_>, _>>()?;
    let nodes = addresses.len();
    let module = Module::from_bytes(wasp_examples::TRIVIAL)?;
    let before = resident("VmRSS")?;
    let peer: Peer = NAME.parse()?;
    let server = Server::builder()
        .workers(0)
        .insecure()
        .no_disk_cache()
        .peers([peer])
        .resolver(move |_| Ok(addresses.clone()))
        .build()?;
    server.wait_for_nodes(nodes, CONNECT_TIMEOUT)?;
    let memory = resident("VmRSS")? as i64 - before as i64;
    warm_up(&server, &module, nodes)?;
    let done_before = jobs_per_node(&server);
    let cpu_before = Cpu::now()?;
    let start = Instant::now();
    windowed(&server, &module, jobs)?;
    let elapsed = start.elapsed();
    let cpu = Cpu::now()?.since(&cpu_before);
    let shares: Vec<u64> = jobs_per_node(&server)
        .iter()
        .map(|(address, done)| done - done_before.get(address).copied().unwrap_or(0))
        .collect();
    let stats = server.stats();
    let retries: u64 = stats.nodes.iter().map(|node| node.retries).sum();
    anyhow::ensure!(retries == 0, "jobs were retried:\n{stats}");
    println!(
        "{RESULT_PREFIX}{} {} {memory} {} {}",
        elapsed.as_nanos(),
        cpu.as_nanos(),
        shares.iter().copied().min().unwrap_or(0),
        shares.iter().copied().max().unwrap_or(0)
    );
    Ok(())
}

/// Runs windows of trivial jobs until every one of the `nodes` nodes has run some: the
/// module shipped to each and compiled there.
fn warm_up(server: &Server, module: &Module, nodes: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + WARM_UP_TIMEOUT;
    loop {
        windowed(server, module, 100 * nodes)?;
        let reached = jobs_per_node(server)
            .values()
            .filter(|&&done| done > 0)
            .count();
        if reached >= nodes {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after {WARM_UP_TIMEOUT:?} of warm-up, {reached} of {nodes} nodes have run a job"
        );
    }
}

/// `jobs` trivial jobs (`module` is [`wasp_examples::TRIVIAL`]), at most [`WINDOW`] in
/// flight, their results checked in order.
fn windowed(server: &Server, module: &Module, jobs: usize) -> anyhow::Result<()> {
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    let check = |(x, job): (i64, wasp::Job<i64>)| -> anyhow::Result<()> {
        anyhow::ensure!(job.wait()? == x + 1, "wrong result for {x}");
        Ok(())
    };
    for x in 0..jobs as i64 {
        if in_flight.len() == WINDOW {
            check(in_flight.pop_front().expect("the window is full"))?;
        }
        in_flight.push_back((x, server.submit::<i64, _>(module, "add_one", (x,))));
    }
    in_flight.into_iter().try_for_each(check)
}

/// Jobs each node has finished, by address.
fn jobs_per_node(server: &Server) -> HashMap<String, u64> {
    server
        .stats()
        .nodes
        .into_iter()
        .map(|node| (node.address, node.jobs))
        .collect()
}

/// The `wasp` binary: `WASP_BIN`, or the one next to this program.
pub(crate) fn wasp_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(WASP_BIN) {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.is_file(),
            "{WASP_BIN}={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", exe.display()))?;
    let path = dir.join(format!("wasp{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        path.is_file(),
        "the scale benchmark runs `wasp node` processes, and there is no {}: run `cargo build \
         --release -p wasp-cli` first (the same profile as this program), or set {WASP_BIN}",
        path.display()
    );
    Ok(path)
}

/// N `wasp node` processes, killed on drop.
pub(crate) struct NodeProcesses {
    children: Vec<Child>,
    pub(crate) addresses: Vec<SocketAddr>,
    /// Their identity and cache directories.
    dir: PathBuf,
}

impl NodeProcesses {
    /// Starts `count` nodes at once, and waits for each to print its address.
    pub(crate) fn start(wasp: &Path, count: usize) -> anyhow::Result<NodeProcesses> {
        let dir =
            std::env::temp_dir().join(format!("wasp-bench-scale-{}-{count}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut nodes = NodeProcesses {
            children: Vec::with_capacity(count),
            addresses: Vec::with_capacity(count),
            dir,
        };
        let (lines, first_lines) = mpsc::channel();
        for index in 0..count {
            let mut child = Command::new(wasp)
                .args(["node", "--listen", "127.0.0.1:0", "--insecure"])
                .args(["--workers", "1", "--identity-dir"])
                .arg(nodes.dir.join(index.to_string()))
                .arg("--cache-dir")
                .arg(nodes.dir.join(format!("cache-{index}")))
                // Warnings and errors only: a line per connection is not wanted here.
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting {}", wasp.display()))?;
            let stdout = child.stdout.take().expect("stdout is piped");
            nodes.children.push(child);
            let lines = lines.clone();
            // Sends the first line, then reads the rest until the node exits, so that the
            // node never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let first = reader.read_line(&mut line).map(|_| line);
                let _ = lines.send((index, first));
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
        }
        drop(lines);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut addresses = vec![None; count];
        for received in 0..count {
            let wait = deadline.saturating_duration_since(Instant::now());
            let Ok((index, line)) = first_lines.recv_timeout(wait) else {
                anyhow::bail!(
                    "only {received} of {count} node processes printed their address within \
                     {START_TIMEOUT:?}"
                );
            };
            let line = line?;
            let address = listening_address(&line).ok_or_else(|| {
                let exited = match nodes.children[index].try_wait() {
                    Ok(Some(status)) => format!(" (it exited: {status})"),
                    _ => String::new(),
                };
                anyhow::anyhow!("node process {index} printed {line:?}{exited}")
            })?;
            addresses[index] = Some(address);
        }
        nodes.addresses = addresses.into_iter().flatten().collect();
        Ok(nodes)
    }
}

impl Drop for NodeProcesses {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The address in `wasp node <id> listening on <addr>`.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let (_, address) = line
        .trim()
        .strip_prefix("wasp node ")?
        .split_once(" listening on ")?;
    address.parse().ok()
}

/// This process's CPU time: each thread's, in ns (`/proc/self/task/*/schedstat`), and
/// the whole process's, threads that exited included, in clock ticks (`/proc/self/stat`).
struct Cpu {
    threads: HashMap<String, u64>,
    ticks: u64,
}

impl Cpu {
    fn now() -> anyhow::Result<Cpu> {
        let mut threads = HashMap::new();
        for entry in std::fs::read_dir("/proc/self/task")? {
            let entry = entry?;
            // A thread may exit meanwhile.
            let Ok(schedstat) = std::fs::read_to_string(entry.path().join("schedstat")) else {
                continue;
            };
            if let Some(Ok(ns)) = schedstat.split_whitespace().next().map(str::parse) {
                threads.insert(entry.file_name().to_string_lossy().into_owned(), ns);
            }
        }
        Ok(Cpu {
            threads,
            ticks: process_ticks()?,
        })
    }

    /// The CPU time from `earlier` to this: the threads' nanoseconds if none of them
    /// exited meanwhile, the process's clock ticks otherwise.
    fn since(&self, earlier: &Cpu) -> Duration {
        if earlier
            .threads
            .keys()
            .all(|thread| self.threads.contains_key(thread))
        {
            let ns = self
                .threads
                .iter()
                .map(|(thread, &ns)| {
                    ns.saturating_sub(earlier.threads.get(thread).copied().unwrap_or(0))
                })
                .sum();
            Duration::from_nanos(ns)
        } else {
            let ticks = self.ticks.saturating_sub(earlier.ticks);
            Duration::from_secs_f64(ticks as f64 / clock_ticks())
        }
    }
}

/// This process's CPU time so far, user and system, in clock ticks: fields 14 and 15 of
/// `/proc/self/stat`.
fn process_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name, field 2, is in parentheses and may hold spaces: count from after it.
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow::anyhow!("no command name in /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let field = |number: usize| -> anyhow::Result<u64> {
        let value = fields
            .get(number - 3)
            .ok_or_else(|| anyhow::anyhow!("no field {number} in /proc/self/stat"))?;
        Ok(value.parse()?)
    };
    Ok(field(14)? + field(15)?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, Linux's, if it cannot be asked).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|&ticks| ticks > 0.0)
        .unwrap_or(100.0)
}
