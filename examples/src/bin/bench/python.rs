//! Python functions in the sandbox (wasp's Python runner, named by `WASP_PYTHON_RUNNER`):
//! what a trivial job costs a worker in a fresh interpreter and in a kept one, and how many
//! run per second on 2 workers.

use crate::Row;
use serde::Serialize;
use std::time::{Duration, Instant};
use wasp::{JobOptions, Module, Server};

/// The variable naming the runner's `.wasm` (`python -m wasp.runner` prints its path).
const RUNNER: &str = "WASP_PYTHON_RUNNER";

/// The trivial job: `x + 1`, as a Python function.
const ADD_ONE: &str = "def add_one(x):\n    return x + 1\n";

/// A call of the runner: `function(*args)` of `source`, with `modules` imported.
#[derive(Serialize)]
struct Call<'a>(&'a str, &'a str, (i64,), [&'a str; 0]);

/// The runner, or `None` (said on stdout) where `WASP_PYTHON_RUNNER` is not set.
pub(crate) fn runner() -> anyhow::Result<Option<Module>> {
    match std::env::var(RUNNER) {
        Ok(path) if !path.trim().is_empty() => Ok(Some(Module::from_file(path.trim())?)),
        _ => {
            println!(
                "python: {RUNNER} is not set (`python -m wasp.runner` prints a runner's path): skipped"
            );
            Ok(None)
        }
    }
}

pub(crate) fn run(jobs: usize) -> anyhow::Result<Vec<Row>> {
    let Some(runner) = runner()? else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for reuse in [false, true] {
        let label = if reuse {
            "reuse_instance"
        } else {
            "a fresh interpreter each"
        };
        let jobs = if reuse { jobs * 10 } else { jobs };
        let one = per_job(&runner, 1, jobs / 4, reuse)?;
        let two = per_job(&runner, 2, jobs, reuse)?;
        println!(
            "python ({label}): {:.1} us of a worker per job on 1 worker, {:.0} jobs/s on 2 ({:.1} us per job each)",
            micros(one.worker_time),
            two.rate,
            micros(two.worker_time)
        );
        rows.push(Row {
            measure: format!(
                "trivial Python jobs ({label}): a worker's time per job, 1 worker / 2 workers"
            ),
            value: format!(
                "{:.0} us / {:.0} us",
                micros(one.worker_time),
                micros(two.worker_time)
            ),
            target: if reuse { "" } else { "<= 250 us" },
        });
        rows.push(Row {
            measure: format!("trivial Python jobs ({label}), 2 workers"),
            value: format!("{:.0} jobs/s", two.rate),
            target: if reuse {
                ">= 40,000 jobs/s"
            } else {
                ">= 6,000 jobs/s"
            },
        });
    }
    Ok(rows)
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// What trivial Python jobs cost on `workers` workers.
struct PerJob {
    /// Jobs per second, all submitted at once.
    rate: f64,
    /// A worker's time per job: the workers' wall time over the jobs (instantiation, call,
    /// reset and the scheduler's own cost; the workers have nothing else to do).
    worker_time: Duration,
}

/// Runs `jobs` trivial Python jobs at once on a server of `workers` workers (after one
/// per worker to compile the runner and warm the slots), results checked.
fn per_job(runner: &Module, workers: usize, jobs: usize, reuse: bool) -> anyhow::Result<PerJob> {
    let server = Server::builder().workers(workers).build()?;
    let options = JobOptions::new().reuse_instance(reuse);
    let submit = |x: i64| {
        server.submit_with::<i64, _>(
            runner,
            "python",
            Call(ADD_ONE, "add_one", (x,), []),
            &options,
        )
    };
    let warm: Vec<_> = (0..workers as i64 * 4).map(submit).collect();
    for job in warm {
        job.wait()?;
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..jobs as i64).map(submit).collect();
    for (x, job) in handles.iter().enumerate() {
        anyhow::ensure!(job.wait()? == x as i64 + 1, "wrong result for {x}");
    }
    let elapsed = start.elapsed();
    let worker_time = elapsed * workers as u32 / jobs as u32;
    Ok(PerJob {
        rate: jobs as f64 / elapsed.as_secs_f64(),
        worker_time,
    })
}
