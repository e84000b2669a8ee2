//! Backpressure: what a queued job costs in memory, and a producer of a million jobs held
//! to a bounded queue.
//!
//! 1. Unbounded: `jobs` trivial jobs submitted to a server with no worker (so they all
//!    wait in the queue), their handles kept, as a caller of `submit` holds them: the
//!    resident memory they add, per job.
//! 2. Bounded (`max_queued`): the same number submitted by a producer that keeps no handle
//!    (results counted by callbacks) to two workers: the resident memory the whole run adds.
//!
//! Resident memory is read from `/proc/self/status` (Linux); the bounded run's peak is the
//! largest of samples taken every 10,000 jobs (the process's own peak, `VmHWM`, is set by
//! the benchmarks before). The bounded run goes first: the allocator keeps the unbounded
//! run's pages afterwards.

use crate::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wasp::{Module, Server};

/// The bound of the bounded run.
const BOUND: usize = 10_000;

pub(crate) fn run(jobs: usize) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::TRIVIAL)?;
    let (bounded_peak, bounded_rate) = bounded(&module, jobs)?;
    let per_job = unbounded(&module, jobs)?;
    println!(
        "queue: {per_job:.0} bytes per queued job (handle kept); {jobs} jobs through a bound \
         of {BOUND}: +{:.1} MiB at the peak, {bounded_rate:.0} jobs/s",
        mib(bounded_peak)
    );
    Ok(vec![
        Row {
            measure: format!("{jobs} trivial jobs queued, no worker: resident memory per job"),
            value: format!("{per_job:.0} bytes"),
            target: "bounded, documented",
        },
        Row {
            measure: format!(
                "{jobs} trivial jobs through max_queued({BOUND}), 2 workers: peak resident memory added"
            ),
            value: format!("{:.1} MiB ({bounded_rate:.0} jobs/s)", mib(bounded_peak)),
            target: "independent of the number of jobs",
        },
    ])
}

/// Resident memory added per job queued with no worker.
fn unbounded(module: &Module, jobs: usize) -> anyhow::Result<f64> {
    let server = Server::builder().workers(0).no_disk_cache().build()?;
    let before = resident("VmRSS")?;
    let handles: Vec<_> = (0..jobs as i64)
        .map(|x| server.submit::<i64, _>(module, "add_one", (x,)))
        .collect();
    let after = resident("VmRSS")?;
    anyhow::ensure!(
        server.stats().queued == jobs,
        "every job waits in the queue"
    );
    server.set_workers(2)?;
    for (x, job) in handles.iter().enumerate().step_by(jobs / 10) {
        anyhow::ensure!(job.wait()? == x as i64 + 1, "wrong result for {x}");
    }
    Ok(after.saturating_sub(before) as f64 / jobs as f64)
}

/// The peak resident memory a bounded run adds, and its rate.
fn bounded(module: &Module, jobs: usize) -> anyhow::Result<(u64, f64)> {
    let server = Server::builder()
        .workers(2)
        .max_queued(BOUND)
        .no_disk_cache()
        .build()?;
    server.submit::<i64, _>(module, "add_one", (0i64,)).wait()?;
    let before = resident("VmRSS")?;
    let mut peak = before;
    let sum = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for x in 0..jobs as i64 {
        if x % 10_000 == 0 {
            peak = peak.max(resident("VmRSS")?);
        }
        let sum = sum.clone();
        server
            .submit::<i64, _>(module, "add_one", (x,))
            .on_complete(move |result| {
                if let Ok(value) = result {
                    sum.fetch_add(value as u64, Ordering::Relaxed);
                }
            });
    }
    server.wait_all();
    let elapsed = start.elapsed();
    let peak = peak.max(resident("VmRSS")?);
    let expected = (jobs as u64) * (jobs as u64 + 1) / 2;
    anyhow::ensure!(sum.load(Ordering::Relaxed) == expected, "a result was lost");
    Ok((
        peak.saturating_sub(before),
        jobs as f64 / elapsed.as_secs_f64(),
    ))
}

/// A `/proc/self/status` field (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn resident(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))?;
    Ok(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}
