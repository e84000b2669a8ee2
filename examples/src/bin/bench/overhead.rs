//! What wasp costs per job: trivial jobs through the pool, and one job's round trip.

use crate::{Row, median};
use std::time::{Duration, Instant};
use wasp::{Module, Server};

/// Round trips measured for the latency figure.
const ROUND_TRIPS: usize = 5_000;

pub(crate) fn run(jobs: usize) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::TRIVIAL)?;
    let server = Server::builder().no_disk_cache().build()?;
    server
        .submit::<i64, _>(&module, "add_one", (0i64,))
        .wait()?;

    let start = Instant::now();
    let handles: Vec<_> = (0..jobs as i64)
        .map(|x| server.submit::<i64, _>(&module, "add_one", (x,)))
        .collect();
    for (x, job) in handles.iter().enumerate() {
        assert_eq!(job.wait()?, x as i64 + 1);
    }
    let elapsed = start.elapsed();
    let rate = jobs as f64 / elapsed.as_secs_f64();

    let mut trips = Vec::with_capacity(ROUND_TRIPS);
    for x in 0..ROUND_TRIPS as i64 {
        let start = Instant::now();
        server.submit::<i64, _>(&module, "add_one", (x,)).wait()?;
        trips.push(start.elapsed());
    }
    let mean = trips.iter().sum::<Duration>() / ROUND_TRIPS as u32;
    let p50 = median(trips);
    println!(
        "trivial jobs: {jobs} in {elapsed:?} on {} workers; round trip mean {mean:?}",
        server.workers()
    );
    Ok(vec![
        Row {
            measure: format!("{jobs} trivial jobs, {} workers", server.workers()),
            value: format!("{rate:.0} jobs/s"),
            target: ">= 200,000 jobs/s",
        },
        Row {
            measure: "one job's submit-to-result round trip (mean / median)".into(),
            value: format!(
                "{:.1} us / {:.1} us",
                mean.as_secs_f64() * 1e6,
                p50.as_secs_f64() * 1e6
            ),
            target: "<= 20 us",
        },
    ])
}
