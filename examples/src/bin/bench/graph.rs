//! Jobs that take other jobs' results: a tree reduction submitted up front, and what a
//! graph of held jobs costs in memory.
//!
//! 1. Tree: `leaves` sum_primes leaves (`sum_primes(LEAF + i % 100)`), summed by jobs of
//!    `fan_in` results each, level by level to one root; the whole tree is submitted before
//!    the first result, on the local pool (2 workers) and on two nodes (1 worker each, in
//!    this process). Against Dask's futures (`examples/python/tree_dask.py`: the same tree,
//!    the same function in Python, `client.submit` with lists of futures, a `LocalCluster`
//!    of 2 single-threaded worker processes), run in the same run when a Python with
//!    `dask[distributed]` is given (`--python PATH`, or `target/python-bench-venv`, which
//!    `scripts/bench-python` makes).
//! 2. Memory: a graph of `held` jobs (a tree over leaves that wait behind a job that does
//!    not end) submitted to a server, and the resident memory it adds per job.

use crate::Row;
use crate::cluster::BenchNode;
use crate::queue::resident;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wasp::{ClusterSecret, Job, Module, Server};

/// The leaves' inputs start here.
pub(crate) const LEAF: u64 = 1_000;

pub(crate) fn run(
    leaves: usize,
    fan_in: usize,
    held: usize,
    python: Option<&Path>,
) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::DATA)?;
    let expected: u64 = (0..leaves as u64)
        .map(|i| data_guest::sum_primes(LEAF + i % 100))
        .sum();
    let local = Server::builder().workers(2).no_disk_cache().build()?;
    tree(&local, &module, 100, fan_in)?;
    let (local_time, local_sum) = tree(&local, &module, leaves, fan_in)?;
    anyhow::ensure!(local_sum == expected, "the local tree's sum is wrong");
    drop(local);
    let secret = ClusterSecret::generate()?;
    let nodes = [
        BenchNode::start("graph-a", &secret, 1)?,
        BenchNode::start("graph-b", &secret, 1)?,
    ];
    let cluster = crate::cluster::client(&secret, &[&nodes[0], &nodes[1]])?;
    tree(&cluster, &module, 100, fan_in)?;
    let (nodes_time, nodes_sum) = tree(&cluster, &module, leaves, fan_in)?;
    anyhow::ensure!(nodes_sum == expected, "the tree's sum on nodes is wrong");
    drop(cluster);
    let jobs = tree_size(leaves, fan_in);
    println!("graph: a tree of {jobs} jobs: local pool {local_time:.2?}, 2 nodes {nodes_time:.2?}");
    let dask = python.map(|python| dask_tree(python, leaves, fan_in, expected));
    let dask_text = match &dask {
        Some(Ok(time)) => {
            println!("graph: the same tree with Dask: {time:.2?}");
            format!(
                "; Dask's futures (2 worker processes) {:.3} s",
                time.as_secs_f64()
            )
        }
        Some(Err(error)) => {
            println!("graph: Dask did not run: {error:#}");
            format!("; Dask did not run: {error}")
        }
        None => "; Dask not run (no Python with dask: --python PATH)".into(),
    };
    let per_job = held_memory(&module, held, fan_in)?;
    Ok(vec![
        Row {
            measure: format!(
                "a tree of {leaves} sum_primes leaves, {fan_in}-way fan-in ({jobs} jobs), submitted up front: local pool (2 workers) / 2 nodes (1 worker each)"
            ),
            value: format!(
                "{:.3} s / {:.3} s{dask_text}",
                local_time.as_secs_f64(),
                nodes_time.as_secs_f64()
            ),
            target: "faster than Dask",
        },
        Row {
            measure: format!(
                "a graph of {held} jobs held (waiting for others): resident memory per job"
            ),
            value: format!("{per_job:.0} bytes"),
            target: "bounded, documented",
        },
    ])
}

/// How many jobs a tree of `leaves` leaves and `fan_in`-way sums has.
fn tree_size(leaves: usize, fan_in: usize) -> usize {
    let (mut level, mut jobs) = (leaves, leaves);
    while level > 1 {
        level = level.div_ceil(fan_in);
        jobs += level;
    }
    jobs
}

/// Submits the whole tree, then waits for its root: the time, and the root's sum.
fn tree(
    server: &Server,
    module: &Module,
    leaves: usize,
    fan_in: usize,
) -> anyhow::Result<(Duration, u64)> {
    let start = Instant::now();
    let mut level: Vec<Job<u64>> = (0..leaves as u64)
        .map(|i| server.submit(module, "sum_primes", (LEAF + i % 100,)))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(fan_in)
            .map(|group| server.submit(module, "sum", (group,)))
            .collect();
    }
    let sum = level[0].wait()?;
    Ok((start.elapsed(), sum))
}

/// The resident memory per job of a graph of `jobs` jobs that all wait: leaves held
/// behind one job that runs until it is cancelled, and sums over them.
fn held_memory(module: &Module, jobs: usize, fan_in: usize) -> anyhow::Result<f64> {
    let server = Server::builder().workers(1).no_disk_cache().build()?;
    let busy = Module::from_bytes(wasp_examples::SUM_PRIMES)?;
    // Never ends in time: everything else waits for it.
    let gate = server.submit::<u64, _>(&busy, "sum_primes", (u64::MAX,));
    let before = resident("VmRSS")?;
    let leaves = jobs - jobs / fan_in;
    let mut level: Vec<Job<u64>> = (0..leaves)
        .map(|_| server.submit(module, "sum", (vec![&gate],)))
        .collect();
    let mut submitted = leaves;
    while submitted < jobs && level.len() > 1 {
        level = level
            .chunks(fan_in)
            .map(|group| server.submit(module, "sum", (group,)))
            .collect();
        submitted += level.len();
    }
    let after = resident("VmRSS")?;
    let held = server.stats().held;
    anyhow::ensure!(held >= leaves, "{held} jobs held, {leaves} expected");
    gate.cancel();
    server.wait_all();
    Ok(after.saturating_sub(before) as f64 / submitted as f64)
}

/// The Python that runs Dask: `--python PATH`, else the benchmarks' venv if it exists.
pub(crate) fn python(given: Option<&str>) -> Option<PathBuf> {
    given.map(PathBuf::from).or_else(|| {
        let venv = Path::new("target/python-bench-venv/bin/python");
        venv.exists().then(|| venv.to_path_buf())
    })
}

/// Runs `examples/python/tree_dask.py` with `python`: Dask's time for the same tree.
fn dask_tree(
    python: &Path,
    leaves: usize,
    fan_in: usize,
    expected: u64,
) -> anyhow::Result<Duration> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tree_dask.py");
    let output = Command::new(python)
        .arg(script)
        .args([leaves.to_string(), fan_in.to_string(), LEAF.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    let (seconds, sum) = line
        .split_once(' ')
        .ok_or_else(|| anyhow::anyhow!("unexpected output: {text}"))?;
    anyhow::ensure!(
        sum.parse::<u64>()? == expected,
        "Dask's sum is wrong: {sum}"
    );
    Ok(Duration::from_secs_f64(seconds.parse()?))
}
