//! The first job of a module: compiled in this process, or found in the disk cache by a new
//! process. Each measurement is a fresh process, so nothing is cached in memory.

use crate::{Row, median, ms};
use std::process::Command;
use std::time::{Duration, Instant};
use wasp::{Module, Server};

pub(crate) fn run(repeats: usize) -> anyhow::Result<Vec<Row>> {
    let mut compile = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..repeats {
        let dir = tempfile_dir()?;
        compile.push(child(&dir)?);
        cached.push(child(&dir)?);
        std::fs::remove_dir_all(&dir)?;
    }
    let (compile, cached) = (median(compile), median(cached));
    println!(
        "first job: compile {}, disk cache {}",
        ms(compile),
        ms(cached)
    );
    Ok(vec![
        Row {
            measure: "first job of sum_primes, module compiled (new process)".into(),
            value: ms(compile),
            target: "",
        },
        Row {
            measure: "first job of sum_primes, module from the disk cache (new process)".into(),
            value: format!(
                "{} ({:.0}x faster)",
                ms(cached),
                compile.as_secs_f64() / cached.as_secs_f64()
            ),
            target: "<= 5 ms",
        },
    ])
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "wasp-bench-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs this program in child mode and reads the time it reports.
fn child(dir: &std::path::Path) -> anyhow::Result<Duration> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--first-job")
        .arg(dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nanos: u64 = String::from_utf8(out.stdout)?.trim().parse()?;
    Ok(Duration::from_nanos(nanos))
}

/// Child mode: time from the loaded module to the first result, on a ready server whose
/// disk cache is `dir`. Prints nanoseconds.
pub(crate) fn first_job_child(dir: &str) -> anyhow::Result<()> {
    let module = Module::from_bytes(wasp_examples::SUM_PRIMES)?;
    let server = Server::builder().workers(1).cache_dir(dir).build()?;
    let start = Instant::now();
    server
        .submit::<u64, _>(&module, "sum_primes", (10u64,))
        .wait()?;
    println!("{}", start.elapsed().as_nanos());
    Ok(())
}
