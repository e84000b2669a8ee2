//! The result cache: a map of `jobs` sum_primes jobs run twice, each run by a new server
//! (as a new process would) with the cache on, in a fresh cache directory; then the same map
//! with a module whose helper differs by one line (`examples/guests/data-variant`), which
//! must miss every entry.

use crate::Row;
use std::path::Path;
use std::time::{Duration, Instant};
use wasp::{Module, ResultCacheStats, Server};

/// The jobs' inputs start here: a few milliseconds of work each.
const FROM: u64 = 60_000;

pub(crate) fn run(jobs: usize) -> anyhow::Result<Vec<Row>> {
    let module = Module::from_bytes(wasp_examples::DATA)?;
    let variant = Module::from_bytes(wasp_examples::DATA_VARIANT)?;
    let dir = tempfile_dir()?;
    let (first, cold) = map(&dir, &module, jobs)?;
    let (second, warm) = map(&dir, &module, jobs)?;
    let (_, changed) = map(&dir, &variant, jobs)?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        cold.stored == jobs as u64,
        "the first run kept {}",
        cold.stored
    );
    anyhow::ensure!(warm.hits == jobs as u64, "the second run hit {}", warm.hits);
    let speedup = first.as_secs_f64() / second.as_secs_f64();
    println!(
        "cache: {jobs} jobs, first run {first:.2?}, second {second:.2?} ({speedup:.0}x); \
         with a helper changed: {} hits, {} misses",
        changed.hits, changed.misses
    );
    Ok(vec![
        Row {
            measure: format!(
                "a map of {jobs} jobs run twice with the result cache: first run / second run"
            ),
            value: format!(
                "{speedup:.0}x ({:.2} s / {:.3} s)",
                first.as_secs_f64(),
                second.as_secs_f64()
            ),
            target: ">= 100x",
        },
        Row {
            measure:
                "the same map with one line of a helper changed (another module): entries found"
                    .into(),
            value: format!("{} of {jobs} ({} misses)", changed.hits, changed.misses),
            target: "0",
        },
    ])
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("wasp-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// One run: a new server with the cache in `dir`, the map timed from its first submission
/// to its last result, its results checked; the server's cache counters.
fn map(dir: &Path, module: &Module, jobs: usize) -> anyhow::Result<(Duration, ResultCacheStats)> {
    let server = Server::builder()
        .workers(2)
        .cache_dir(dir)
        .cache(true)
        .build()?;
    let start = Instant::now();
    let inputs = (0..jobs as u64).map(|i| (FROM + i,));
    let sums: Vec<u64> = server
        .map(module, "sum_primes", inputs)
        .collect::<Result<_, _>>()?;
    let elapsed = start.elapsed();
    for (i, &sum) in sums.iter().enumerate().step_by(97) {
        anyhow::ensure!(
            sum == data_guest::sum_primes(FROM + i as u64),
            "a wrong sum"
        );
    }
    server.wait_all();
    server.flush_results();
    Ok((elapsed, server.stats().results))
}
