//! What wasp costs per job: trivial jobs through the pool, and one job's round trip.

use crate::{Row, median};
use std::time::{Duration, Instant};
use wasp::{Module, Server};

/// Round trips measured for the latency figure.
const ROUND_TRIPS: usize = 5_000;

pub(crate) fn run(jobs: usize) -> anyhow::Result<Vec<Row>> {
    let server = Server::builder().no_disk_cache().build()?;
    let measured = measure(&server, jobs)?;
    println!(
        "trivial jobs: {jobs} in {:?} on {} workers; round trip mean {:?}",
        measured.elapsed,
        server.workers(),
        measured.mean
    );
    Ok(vec![
        Row {
            measure: format!("{jobs} trivial jobs, {} workers", server.workers()),
            value: measured.rate(),
            target: ">= 200,000 jobs/s",
        },
        Row {
            measure: "one job's submit-to-result round trip (mean / median)".into(),
            value: measured.round_trip(),
            target: "<= 20 us",
        },
    ])
}

/// What trivial jobs cost on a server.
pub(crate) struct Overhead {
    jobs: usize,
    /// Time to run `jobs` trivial jobs submitted at once.
    pub(crate) elapsed: Duration,
    /// Mean and median of one job submitted and waited for alone.
    pub(crate) mean: Duration,
    median: Duration,
}

impl Overhead {
    pub(crate) fn rate(&self) -> String {
        format!(
            "{:.0} jobs/s",
            self.jobs as f64 / self.elapsed.as_secs_f64()
        )
    }

    pub(crate) fn round_trip(&self) -> String {
        format!(
            "{:.1} us / {:.1} us",
            self.mean.as_secs_f64() * 1e6,
            self.median.as_secs_f64() * 1e6
        )
    }
}

/// Runs `jobs` trivial jobs at once, then round trips one at a time, results checked.
pub(crate) fn measure(server: &Server, jobs: usize) -> anyhow::Result<Overhead> {
    let module = Module::from_bytes(wasp_examples::TRIVIAL)?;
    server
        .submit::<i64, _>(&module, "add_one", (0i64,))
        .wait()?;
    let elapsed = batch(server, &module, jobs)?;
    let mut trips = Vec::with_capacity(ROUND_TRIPS);
    for x in 0..ROUND_TRIPS as i64 {
        let start = Instant::now();
        server.submit::<i64, _>(&module, "add_one", (x,)).wait()?;
        trips.push(start.elapsed());
    }
    Ok(Overhead {
        jobs,
        elapsed,
        mean: trips.iter().sum::<Duration>() / ROUND_TRIPS as u32,
        median: median(trips),
    })
}

/// The time of `jobs` trivial jobs (`module` is [`wasp_examples::TRIVIAL`]) submitted at
/// once and waited for, results checked.
pub(crate) fn batch(server: &Server, module: &Module, jobs: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let handles: Vec<_> = (0..jobs as i64)
        .map(|x| server.submit::<i64, _>(module, "add_one", (x,)))
        .collect();
    for (x, job) in handles.iter().enumerate() {
        anyhow::ensure!(job.wait()? == x as i64 + 1, "wrong result for {x}");
    }
    Ok(start.elapsed())
}
