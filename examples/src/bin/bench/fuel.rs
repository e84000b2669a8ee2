//! Fuel: what counting a job's instructions costs. pp's sum_primes set on one worker, with
//! and without a fuel budget, alternately on the same server.

use crate::sum_primes::INPUTS;
use crate::{Row, median, ms};
use std::time::{Duration, Instant};
use wasp::{JobOptions, Module, Server};

pub(crate) fn run(repeats: usize) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::SUM_PRIMES)?;
    let server = Server::builder().workers(1).no_disk_cache().build()?;
    let plain = JobOptions::new();
    let fueled = JobOptions::new().fuel(u64::MAX / 2);
    // Both kinds of code compiled beforehand.
    batch(&server, &module, &plain)?;
    let used = batch(&server, &module, &fueled)?.1;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        without.push(batch(&server, &module, &plain)?.0);
        with.push(batch(&server, &module, &fueled)?.0);
    }
    let (without, with) = (median(without), median(with));
    println!(
        "sum_primes x8, 1 worker: without fuel {}, with fuel {} ({used} fuel)",
        ms(without),
        ms(with)
    );
    Ok(vec![Row {
        measure: "sum_primes x8, 1 worker: with a fuel budget / without".into(),
        value: format!(
            "{:.3} ({} vs {}; {:.1} M fuel)",
            with.as_secs_f64() / without.as_secs_f64(),
            ms(with),
            ms(without),
            used as f64 / 1e6
        ),
        target: "",
    }])
}

/// The 8 jobs with `options`: how long they took, and the fuel they used.
fn batch(
    server: &Server,
    module: &Module,
    options: &JobOptions,
) -> anyhow::Result<(Duration, u64)> {
    let start = Instant::now();
    let jobs: Vec<_> = INPUTS
        .iter()
        .map(|&n| server.submit_with::<u64, _>(module, "sum_primes", (n,), options))
        .collect();
    let mut fuel = 0;
    for job in jobs {
        let output = job.wait_output();
        output.result?;
        fuel += output.fuel_used.unwrap_or(0);
    }
    Ok((start.elapsed(), fuel))
}
