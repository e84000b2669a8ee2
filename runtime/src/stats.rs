//! Statistics: per-worker counts and times, as data and as pp's table.

use crate::cache::CacheStats;
use std::fmt;
use std::time::Duration;

/// A snapshot of a server's activity, from [`Server::stats`](crate::Server::stats).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Time since the server was created.
    pub elapsed: Duration,
    /// Every worker the server has had, retired ones included.
    pub workers: Vec<WorkerStats>,
    /// The configured number of workers.
    pub target_workers: usize,
    /// Jobs waiting for a worker.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs submitted since the server was created.
    pub submitted: u64,
    /// Jobs finished (successfully or not).
    pub finished: u64,
    /// Jobs finished with an error.
    pub failed: u64,
    /// How compiled code was obtained.
    pub cache: CacheStats,
}

/// What one worker has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's name, e.g. `local/0`.
    pub name: String,
    /// Jobs it ran.
    pub jobs: u64,
    /// Jobs it ran that ended with an error.
    pub failed: u64,
    /// Total wall time of its jobs.
    pub busy: Duration,
    /// Whether it is still part of the pool.
    pub active: bool,
}

impl WorkerStats {
    /// Mean wall time per job.
    pub fn mean(&self) -> Duration {
        u32::try_from(self.jobs)
            .ok()
            .filter(|&jobs| jobs > 0)
            .map_or(Duration::ZERO, |jobs| self.busy / jobs)
    }
}

impl fmt::Display for Stats {
    /// The statistics table, laid out like Parallel Python's `print_stats`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.workers.iter().map(|w| w.jobs).sum();
        writeln!(f, "Job execution statistics:")?;
        writeln!(
            f,
            " job count | % of all jobs | job time sum | time per job | failed | worker"
        )?;
        for worker in self.workers.iter().filter(|w| w.jobs > 0 || w.active) {
            let share = if total == 0 {
                0.0
            } else {
                100.0 * worker.jobs as f64 / total as f64
            };
            writeln!(
                f,
                "{:>10} | {:>13.2} | {:>12.4} | {:>12.6} | {:>6} | {}{}",
                worker.jobs,
                share,
                worker.busy.as_secs_f64(),
                worker.mean().as_secs_f64(),
                worker.failed,
                worker.name,
                if worker.active { "" } else { " (retired)" },
            )?;
        }
        writeln!(
            f,
            "Time elapsed since server creation {:.4} s",
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "{} jobs queued, {} running, {} workers; {} finished, {} failed",
            self.queued, self.running, self.target_workers, self.finished, self.failed
        )?;
        write!(
            f,
            "modules: {} compiled, {} loaded from the disk cache, {} reuses",
            self.cache.compiled, self.cache.loaded_from_disk, self.cache.reused
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_worker_with_its_share() {
        let stats = Stats {
            workers: vec![
                WorkerStats {
                    name: "local/0".into(),
                    jobs: 3,
                    busy: Duration::from_secs(3),
                    active: true,
                    ..Default::default()
                },
                WorkerStats {
                    name: "local/1".into(),
                    jobs: 1,
                    busy: Duration::from_secs(1),
                    active: false,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let table = stats.to_string();
        assert!(table.contains("75.00"), "{table}");
        assert!(table.contains("local/1 (retired)"), "{table}");
        assert!(table.contains("1.000000"), "{table}");
    }
}
