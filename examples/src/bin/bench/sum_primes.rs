//! pp's sum_primes set: native vs wasm, 1 worker vs 2.

use crate::{Row, median, ms};
use std::time::{Duration, Instant};
use wasp::{Module, Server};

pub(crate) const INPUTS: [u64; 8] = [
    100_000, 100_100, 100_200, 100_300, 100_400, 100_500, 100_600, 100_700,
];

pub(crate) fn run(repeats: usize) -> anyhow::Result<Vec<Row>> {
    let native = median((0..repeats).map(|_| native_once()).collect());
    let native_two = median((0..repeats).map(|_| native_two_threads()).collect());
    let module = Module::from_bytes(wasp_examples::SUM_PRIMES)?;
    let one = on_wasp(&module, 1, repeats)?;
    let two = on_wasp(&module, 2, repeats)?;
    println!(
        "sum_primes x8: native {}, wasp 1 worker {}, wasp 2 workers {}",
        ms(native),
        ms(one),
        ms(two)
    );
    Ok(vec![
        Row {
            measure: "sum_primes x8, native, 1 thread (median)".into(),
            value: ms(native),
            target: "",
        },
        Row {
            measure: "sum_primes x8, wasp, 1 worker: wasm / native".into(),
            value: format!(
                "{:.3} ({})",
                one.as_secs_f64() / native.as_secs_f64(),
                ms(one)
            ),
            target: "<= 1.15",
        },
        Row {
            measure: "sum_primes x8, native: 2 threads vs 1 (this machine's ceiling)".into(),
            value: format!("{:.2}x", native.as_secs_f64() / native_two.as_secs_f64()),
            target: "",
        },
        Row {
            measure: "sum_primes x8, wasp: 2 workers vs 1 (speed-up)".into(),
            value: format!(
                "{:.2}x ({})",
                one.as_secs_f64() / two.as_secs_f64(),
                ms(two)
            ),
            target: ">= 1.9x",
        },
    ])
}

/// The sums of `inputs`, natively, kept from being optimised away.
fn native_sums(inputs: &[u64]) {
    let sums: Vec<u64> = inputs
        .iter()
        .map(|&n| sum_primes_guest::sum_primes(std::hint::black_box(n)))
        .collect();
    std::hint::black_box(sums);
}

fn native_once() -> Duration {
    let start = Instant::now();
    native_sums(&INPUTS);
    start.elapsed()
}

/// The 8 inputs natively on two threads, 4 each: what two cores can give at best.
fn native_two_threads() -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for half in INPUTS.chunks(INPUTS.len() / 2) {
            scope.spawn(move || native_sums(half));
        }
    });
    start.elapsed()
}

/// The median time of the 8 jobs on a warm server (module compiled beforehand, as pp's
/// example does with its first `sum_primes(100)` job).
fn on_wasp(module: &Module, workers: usize, repeats: usize) -> anyhow::Result<Duration> {
    let server = Server::builder().workers(workers).no_disk_cache().build()?;
    server
        .submit::<u64, _>(module, "sum_primes", (100u64,))
        .wait()?;
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let jobs: Vec<_> = INPUTS
            .iter()
            .map(|&n| server.submit::<u64, _>(module, "sum_primes", (n,)))
            .collect();
        for job in jobs {
            job.wait()?;
        }
        samples.push(start.elapsed());
    }
    Ok(median(samples))
}
