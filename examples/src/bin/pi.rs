//! Monte-Carlo estimate of pi: a job group whose callbacks add up the results.
//!
//! Run with `cargo run --release -p wasp-examples --bin pi [JOBS]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wasp::{JobOptions, Module, Server};

const SAMPLES_PER_JOB: u64 = 10_000_000;

fn main() -> anyhow::Result<()> {
    let jobs: u64 = match std::env::args().nth(1) {
        Some(jobs) => jobs.parse()?,
        None => 64,
    };
    let server = Server::new()?;
    println!("Starting wasp with {} workers", server.workers());
    let module = Module::from_bytes(wasp_examples::PI)?;
    let start = Instant::now();

    // Each job draws its own points (a different seed) and a callback, run by the worker
    // that finishes it, adds its count to the total: no job handle is kept.
    let inside = Arc::new(AtomicU64::new(0));
    let options = JobOptions::new().group("pi");
    for seed in 0..jobs {
        let args = (seed, SAMPLES_PER_JOB);
        let job = server.submit_with::<u64, _>(&module, "count_inside", args, &options);
        let inside = inside.clone();
        job.on_complete(move |result| match result {
            Ok(count) => _ = inside.fetch_add(count, Ordering::Relaxed),
            Err(err) => eprintln!("job with seed {seed} failed: {err}"),
        });
    }

    // The group is done once every job has finished and its callbacks have run.
    let summary = server.wait_group("pi");
    anyhow::ensure!(
        summary.failed == 0,
        "{} of {jobs} jobs failed",
        summary.failed
    );
    let samples = jobs * SAMPLES_PER_JOB;
    let pi = 4.0 * inside.load(Ordering::Relaxed) as f64 / samples as f64;
    println!("pi ≈ {pi:.8} from {samples} samples in {jobs} jobs");
    let error = pi - std::f64::consts::PI;
    println!("error vs std::f64::consts::PI: {error:+.2e}");

    println!("Time elapsed: {:.3} s", start.elapsed().as_secs_f64());
    server.print_stats();
    Ok(())
}
