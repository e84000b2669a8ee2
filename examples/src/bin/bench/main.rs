//! wasp's benchmarks: speed ratios measured in one run on this machine.
//!
//! Run with `cargo run --release -p wasp-examples --bin bench` (add `--quick` for fewer
//! repetitions, `--only sum_primes|overhead|python|startup|cluster|hostile|fuel|queue|metrics|
//! scale|data|graph|cache` for one of them; `--python PATH`: a Python with
//! `dask[distributed]` for the graph benchmark's comparison).
//! Prints a Markdown table; the README records one.
//!
//! 1. `sum_primes`: pp's 8 inputs, natively in one thread, and on wasp with 1 and 2 workers.
//! 2. Overhead: 100,000 trivial jobs through the pool (jobs/s), and the mean round trip of
//!    one job submitted and waited for alone.
//! 3. Start-up: the first job of a module that must be compiled, against the first job of a
//!    new process that finds the module in the disk cache.
//! 4. Cluster, over loopback QUIC: trivial jobs and round trips with no local workers and
//!    one node; the sum_primes set on two nodes against the local pool.
//! 5. Hostile jobs: 50 mixed into 5,000 good ones on a node (a child process): the good
//!    jobs' throughput with and without them, and the node's peak memory.
//! 6. Fuel: the sum_primes set on one worker with a fuel budget against without.
//! 7. Queue: the memory a queued job costs, and a million jobs through a bounded queue.
//! 8. Metrics: trivial jobs with the monitor on and scraped every second against without,
//!    locally and through one node.
//! 9. Scale: trivial jobs from one client through 1 to 32 `wasp node` processes (1 worker
//!    each) behind one name: throughput, the client's CPU per job and memory per node,
//!    against 1 node. Needs the `wasp` binary (`cargo build --release -p wasp-cli`).
//! 10. Data: a 100 MiB value put once and taken by 1,000 jobs over two nodes: the bytes
//!     sent to each node against the value's size, and the jobs' rate against a 1 KiB value.
//! 11. Graph: a tree reduction of 10,000 leaves with 100-way fan-in, submitted up front, on
//!     the local pool and on two nodes, against Dask's futures; a graph of 100,000 held
//!     jobs' memory.
//! 12. Cache: a map of 10,000 jobs run twice with the result cache; then with one line of a
//!     helper changed.

mod cache;
mod cluster;
mod data;
mod fuel;
mod graph;
mod hostile;
mod metrics;
mod overhead;
mod python;
mod queue;
mod scale;
mod startup;
mod sum_primes;

use std::time::Duration;

/// One line of the results table.
pub(crate) struct Row {
    pub(crate) measure: String,
    pub(crate) value: String,
    pub(crate) target: &'static str,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(dir) = args
        .iter()
        .position(|a| a == "--first-job")
        .and_then(|i| args.get(i + 1))
    {
        // Child mode of the start-up benchmark: one first job in a fresh process.
        return startup::first_job_child(dir);
    }
    if let Some(jobs) = args
        .iter()
        .position(|a| a == scale::CLIENT_FLAG)
        .and_then(|i| args.get(i + 1))
    {
        // Child mode of the scale benchmark: the client.
        return scale::client_child(jobs);
    }
    if args.iter().any(|a| a == "--hostile-node") {
        // Child mode of the hostile-jobs benchmark: the node.
        return hostile::node_child();
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only NAME` runs one benchmark.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    let wanted = |name: &str| only.is_none_or(|only| only == name);
    let cores = wasp::default_workers();
    println!(
        "wasp benchmarks: {cores} available cores, {}",
        std::env::consts::ARCH
    );
    let mut rows = Vec::new();
    if wanted("sum_primes") {
        rows.extend(sum_primes::run(if quick { 3 } else { 15 })?);
    }
    if wanted("overhead") {
        rows.extend(overhead::run(if quick { 20_000 } else { 100_000 })?);
    }
    if wanted("python") {
        rows.extend(python::run(if quick { 2_000 } else { 10_000 })?);
    }
    if wanted("startup") {
        rows.extend(startup::run(if quick { 3 } else { 9 })?);
    }
    if wanted("cluster") {
        let (jobs, repeats) = if quick { (20_000, 3) } else { (100_000, 15) };
        rows.extend(cluster::run(jobs, repeats)?);
    }
    if wanted("hostile") {
        rows.extend(hostile::run(if quick { 1 } else { 3 })?);
    }
    if wanted("fuel") {
        rows.extend(fuel::run(if quick { 3 } else { 15 })?);
    }
    if wanted("queue") {
        rows.extend(queue::run(if quick { 200_000 } else { 1_000_000 })?);
    }
    if wanted("metrics") {
        let (local_jobs, node_jobs, rounds) = if quick {
            (50_000, 25_000, 3)
        } else {
            (250_000, 125_000, 5)
        };
        rows.extend(metrics::run(local_jobs, node_jobs, rounds)?);
    }
    if wanted("data") {
        let jobs = if quick { 200 } else { 1_000 };
        rows.extend(data::run(jobs, 100)?);
    }
    if wanted("graph") {
        let python = args
            .iter()
            .position(|a| a == "--python")
            .and_then(|i| args.get(i + 1));
        let python = graph::python(python.map(String::as_str));
        let (leaves, held) = if quick {
            (2_000, 20_000)
        } else {
            (10_000, 100_000)
        };
        rows.extend(graph::run(leaves, 100, held, python.as_deref())?);
    }
    if wanted("cache") {
        rows.extend(cache::run(if quick { 2_000 } else { 10_000 })?);
    }
    if wanted("scale") {
        let (jobs, nodes): (usize, &[usize]) = if quick {
            (20_000, &[1, 4, 16])
        } else {
            (100_000, &[1, 2, 4, 8, 16, 32])
        };
        rows.extend(scale::run(jobs, nodes)?);
    }
    println!();
    println!("| measure | result | target |");
    println!("|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} |", row.measure, row.value, row.target);
    }
    Ok(())
}

/// The median of some durations.
pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// A duration in milliseconds, for tables.
pub(crate) fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}
