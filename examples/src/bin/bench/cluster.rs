//! The cluster over loopback QUIC: per-job cost with no local workers and one node, and
//! pp's sum_primes set on two nodes against the local pool.
//!
//! Nodes run in this process, each on its own runtime thread, on real UDP sockets: the
//! same code as `wasp node`, without a second process to start.

use crate::{Row, median, ms};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasp::{ClusterSecret, Module, MonitorConfig, Node, NodeConfig, Server};

const INPUTS: [u64; 8] = crate::sum_primes::INPUTS;

/// A node running on a thread of this process, stopped on drop.
pub(crate) struct BenchNode {
    pub(crate) address: SocketAddr,
    /// Its monitor's address, if it has one.
    pub(crate) monitor: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl BenchNode {
    pub(crate) fn start(
        name: &str,
        secret: &ClusterSecret,
        workers: usize,
    ) -> anyhow::Result<Self> {
        Self::start_with(name, secret, workers, None)
    }

    /// A node with `monitor`, if any.
    pub(crate) fn start_with(
        name: &str,
        secret: &ClusterSecret,
        workers: usize,
        monitor: Option<MonitorConfig>,
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("wasp-bench-{}-{name}", std::process::id()));
        let mut config = NodeConfig::new("127.0.0.1:0".parse()?, Some(secret.clone()));
        config.workers = workers;
        config.identity_dir = Some(dir.join("identity"));
        config.cache_dir = Some(dir.join("cache"));
        config.monitor = monitor;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, address) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the node");
            runtime.block_on(async move {
                let node = match Node::bind(config) {
                    Ok(node) => node,
                    Err(error) => {
                        let _ = ready.send(Err(error.to_string()));
                        return;
                    }
                };
                let addresses = node
                    .local_addr()
                    .map(|address| (address, node.monitor_address()));
                let _ = ready.send(addresses.map_err(|e| e.to_string()));
                node.run(async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        let (address, monitor) = address
            .recv_timeout(Duration::from_secs(30))?
            .map_err(anyhow::Error::msg)?;
        Ok(BenchNode {
            address,
            monitor,
            stop: Some(stop),
            thread: Some(thread),
            dir,
        })
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client with no local workers, connected to `nodes`.
pub(crate) fn client(secret: &ClusterSecret, nodes: &[&BenchNode]) -> anyhow::Result<Server> {
    client_with(secret, nodes, None)
}

/// A client with no local workers and `monitor`, if any, connected to `nodes`.
pub(crate) fn client_with(
    secret: &ClusterSecret,
    nodes: &[&BenchNode],
    monitor: Option<MonitorConfig>,
) -> anyhow::Result<Server> {
    let mut builder = Server::builder()
        .workers(0)
        .no_disk_cache()
        .secret(secret.clone())
        .peers(nodes.iter().map(|node| wasp::Peer::Addr(node.address)));
    if let Some(monitor) = monitor {
        builder = builder.monitor(monitor);
    }
    let server = builder.build()?;
    server.wait_for_nodes(nodes.len(), Duration::from_secs(30))?;
    Ok(server)
}

pub(crate) fn run(jobs: usize, repeats: usize) -> anyhow::Result<Vec<Row>> {
    let secret = ClusterSecret::generate()?;
    let mut rows = overhead(&secret, jobs)?;
    rows.extend(sum_primes(&secret, repeats)?);
    Ok(rows)
}

/// Trivial jobs and single-job round trips through one node with 2 workers.
fn overhead(secret: &ClusterSecret, jobs: usize) -> anyhow::Result<Vec<Row>> {
    let node = BenchNode::start("overhead", secret, 2)?;
    let server = client(secret, &[&node])?;
    let measured = crate::overhead::measure(&server, jobs)?;
    println!(
        "cluster: {jobs} trivial jobs in {:?} on one node; round trip mean {:?}",
        measured.elapsed, measured.mean
    );
    Ok(vec![
        Row {
            measure: format!("{jobs} trivial jobs, 0 local workers, 1 node (loopback QUIC)"),
            value: measured.rate(),
            target: ">= 50,000 jobs/s",
        },
        Row {
            measure: "one job's round trip through a node (mean / median)".into(),
            value: measured.round_trip(),
            target: "<= 200 us",
        },
    ])
}

/// pp's set on two nodes of one worker each, against a local pool of two workers: the
/// same two cores either way. The two are timed alternately, so that the machine's drifts
/// affect both alike.
fn sum_primes(secret: &ClusterSecret, repeats: usize) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::SUM_PRIMES)?;
    let local = Server::builder().workers(2).no_disk_cache().build()?;
    let first = BenchNode::start("a", secret, 1)?;
    let second = BenchNode::start("b", secret, 1)?;
    let cluster = client(secret, &[&first, &second])?;
    warm_up(&local, &module)?;
    warm_up(&cluster, &module)?;
    let (mut local_samples, mut cluster_samples) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        local_samples.push(time_set(&local, &module)?);
        cluster_samples.push(time_set(&cluster, &module)?);
    }
    let (local_time, cluster_time) = (median(local_samples), median(cluster_samples));
    let shares: Vec<u64> = cluster.stats().nodes.iter().map(|n| n.jobs).collect();
    println!(
        "sum_primes x8: local pool (2 workers) {}, 2 nodes (1 worker each) {}, jobs per node {shares:?}",
        ms(local_time),
        ms(cluster_time)
    );
    Ok(vec![Row {
        measure:
            "sum_primes x8 on 2 nodes (1 worker each) vs the local pool (2 workers): speed ratio"
                .into(),
        value: format!(
            "{:.3} ({} vs {})",
            local_time.as_secs_f64() / cluster_time.as_secs_f64(),
            ms(cluster_time),
            ms(local_time)
        ),
        target: ">= 0.9",
    }])
}

/// Compiles the module on every worker's side (as pp's example does with its first
/// `sum_primes(100)` job).
fn warm_up(server: &Server, module: &Module) -> anyhow::Result<()> {
    let warm: Vec<_> = (0..4)
        .map(|_| server.submit::<u64, _>(module, "sum_primes", (100u64,)))
        .collect();
    for job in warm {
        job.wait()?;
    }
    Ok(())
}

/// The time of the 8 jobs; their results are checked after the clock stops.
fn time_set(server: &Server, module: &Module) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let jobs: Vec<_> = INPUTS
        .iter()
        .map(|&n| server.submit::<u64, _>(module, "sum_primes", (n,)))
        .collect();
    let sums = jobs
        .iter()
        .map(|job| job.wait())
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = start.elapsed();
    for (sum, &n) in sums.iter().zip(&INPUTS) {
        anyhow::ensure!(*sum == sum_primes_guest::sum_primes(n), "wrong sum for {n}");
    }
    Ok(elapsed)
}
