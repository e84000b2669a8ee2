//! Parallel Python's classic example on wasp: sums of primes on every core.
//!
//! Run with `cargo run --release -p wasp-examples --bin sum_primes [WORKERS]`.

use std::time::Instant;
use wasp::{Module, Server};

fn main() -> anyhow::Result<()> {
    let mut builder = Server::builder();
    if let Some(workers) = std::env::args().nth(1) {
        builder = builder.workers(workers.parse()?);
    }
    let server = builder.build()?;
    println!("Starting wasp with {} workers", server.workers());

    // The module is embedded in this program; `Module::from_file` loads one from disk.
    let module = Module::from_bytes(wasp_examples::SUM_PRIMES)?;
    let start = Instant::now();

    let job = server.submit::<u64, _>(&module, "sum_primes", (100u64,));
    println!("Sum of primes below 100 is {}", job.wait()?);

    let inputs = (0..8).map(|i| 100_000 + 100 * i);
    let jobs: Vec<_> = inputs
        .map(|n| (n, server.submit::<u64, _>(&module, "sum_primes", (n,))))
        .collect();
    for (n, job) in jobs {
        println!("Sum of primes below {n} is {}", job.wait()?);
    }

    println!("Time elapsed: {:.3} s", start.elapsed().as_secs_f64());
    server.print_stats();
    Ok(())
}
