//! Statistics: per-worker counts and times, as data and as pp's table.

use crate::cache::CacheStats;
use std::fmt;
use std::time::{Duration, Instant};

/// A snapshot of a server's activity, from [`Server::stats`](crate::Server::stats).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    /// What the result cache did (all zero unless jobs asked for it).
    pub results: crate::ResultCacheStats,
    /// Jobs waiting for the jobs whose results they take.
    pub held: usize,
    /// Every remote node the server was given or discovered, connected or not.
    pub nodes: Vec<NodeStats>,
    /// What discovery heard, if it is on.
    pub discovery: Option<crate::discovery::DiscoveryStats>,
}

/// What one remote node has done for this server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// The node's address (`host:port`): as given, or as found (discovered, or resolved
    /// from a name).
    pub address: String,
    /// The name (`host:port`) the node was found under, if it was given by name: one name
    /// may stand for many nodes.
    pub name: Option<String>,
    /// The node's stable identity (its certificate's blake3 fingerprint), once connected.
    pub id: Option<String>,
    /// The node's CPU architecture, once connected.
    pub arch: Option<String>,
    /// How many jobs the node runs at once.
    pub workers: u32,
    /// Whether the node is connected now.
    pub connected: bool,
    /// Whether the node said it is draining (shutting down): still connected while its
    /// running jobs finish, it gets no new ones.
    pub draining: bool,
    /// How many times a connection was established.
    pub connections: u64,
    /// Jobs it finished.
    pub jobs: u64,
    /// Jobs it finished with an error.
    pub failed: u64,
    /// Total time its jobs ran on the node.
    pub busy: Duration,
    /// Jobs put back in the queue because the node was lost while running them.
    pub retries: u64,
    /// Modules sent to it.
    pub module_transfers: u64,
    /// Values put once (data, or large results other jobs take) sent to it.
    pub data_transfers: u64,
    /// The bytes of those values.
    pub data_bytes: u64,
    /// Everything sent to it, in bytes (QUIC's UDP payloads: jobs, modules, values and
    /// the protocol's own traffic), counted once a second.
    pub bytes_sent: u64,
    /// Modules it is preparing (compiling, or loading from its disk cache) for this
    /// client's jobs now: they wait meanwhile, seconds for a large module (wasp's Python
    /// runner), and the node is busy, not hung.
    pub preparing: u32,
    /// The last error connecting to it or talking to it, if any.
    pub last_error: Option<String>,
    /// Jobs sent to it and not answered yet (updated every second while connected).
    pub in_flight: u32,
    /// The connection's smoothed round-trip time, while connected.
    pub round_trip: Option<Duration>,
    /// When the client last heard from the node (a message, or a QUIC keep-alive; updated
    /// every second while connected).
    pub last_heard: Option<Instant>,
    /// Whether the node refused this client at its last attempt (a wrong secret, another
    /// protocol version): it is retried, rarely, as only reconfiguring a side can help.
    pub refused: bool,
}

impl NodeStats {
    /// Mean time per job on the node.
    pub fn mean(&self) -> Duration {
        mean(self.busy, self.jobs)
    }
}

fn mean(total: Duration, count: u64) -> Duration {
    u32::try_from(count)
        .ok()
        .filter(|&count| count > 0)
        .map_or(Duration::ZERO, |count| total / count)
}

/// What one worker has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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
        mean(self.busy, self.jobs)
    }
}

impl fmt::Display for Stats {
    /// The statistics table, laid out like Parallel Python's `print_stats`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.workers.iter().map(|w| w.jobs).sum::<u64>()
            + self.nodes.iter().map(|n| n.jobs).sum::<u64>();
        let share = |jobs: u64| {
            if total == 0 {
                0.0
            } else {
                100.0 * jobs as f64 / total as f64
            }
        };
        writeln!(f, "Job execution statistics:")?;
        writeln!(
            f,
            " job count | % of all jobs | job time sum | time per job | failed | worker"
        )?;
        let row =
            |f: &mut fmt::Formatter<'_>, jobs, busy: Duration, mean: Duration, failed, who| {
                writeln!(
                    f,
                    "{jobs:>10} | {:>13.2} | {:>12.4} | {:>12.6} | {failed:>6} | {who}",
                    share(jobs),
                    busy.as_secs_f64(),
                    mean.as_secs_f64(),
                )
            };
        for worker in self.workers.iter().filter(|w| w.jobs > 0 || w.active) {
            let retired = if worker.active { "" } else { " (retired)" };
            let who = format!("{}{retired}", worker.name);
            row(
                f,
                worker.jobs,
                worker.busy,
                worker.mean(),
                worker.failed,
                who,
            )?;
        }
        for node in &self.nodes {
            let state = match (node.connected, node.draining) {
                (true, true) => ", draining",
                (true, false) => "",
                (false, _) => ", disconnected",
            };
            let arch = node.arch.as_deref().unwrap_or("?");
            let name = node.name.as_ref().map(|name| format!(" via {name}"));
            let who = format!(
                "{}{} ({arch}, {} workers{state})",
                node.address,
                name.unwrap_or_default(),
                node.workers
            );
            row(f, node.jobs, node.busy, node.mean(), node.failed, who)?;
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
        )?;
        let results = &self.results;
        if results.hits + results.misses > 0 {
            write!(
                f,
                "\ncache: {} hits, {} stored, {} not cacheable",
                results.hits, results.stored, results.not_cacheable
            )?;
        }
        if let Some(heard) = &self.discovery {
            write!(
                f,
                "\ndiscovery: {} announcements accepted; ignored {} forged, {} stale, {} replayed, {} malformed",
                heard.accepted, heard.forged, heard.stale, heard.replayed, heard.malformed
            )?;
        }
        for node in &self.nodes {
            write!(
                f,
                "\nnode {}: {} connections, {} retries, {} module transfers",
                node.address, node.connections, node.retries, node.module_transfers
            )?;
            if node.data_transfers > 0 {
                write!(
                    f,
                    ", {} values sent ({} bytes)",
                    node.data_transfers, node.data_bytes
                )?;
            }
            if let Some(id) = &node.id {
                write!(f, ", id {}", &id[..id.len().min(16)])?;
            }
            if node.preparing > 0 {
                write!(f, ", preparing {} module(s)", node.preparing)?;
            }
            if let Some(error) = node.last_error.as_ref().filter(|_| !node.connected) {
                write!(f, ", last error: {error}")?;
            }
        }
        Ok(())
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

    #[test]
    fn nodes_share_the_table_with_local_workers() {
        let stats = Stats {
            workers: vec![WorkerStats {
                name: "local/0".into(),
                jobs: 1,
                active: true,
                ..Default::default()
            }],
            nodes: vec![NodeStats {
                address: "10.0.0.2:7878".into(),
                arch: Some("aarch64".into()),
                workers: 4,
                jobs: 3,
                busy: Duration::from_secs(3),
                retries: 2,
                module_transfers: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let table = stats.to_string();
        assert!(table.contains("75.00 |"), "{table}");
        assert!(
            table.contains("10.0.0.2:7878 (aarch64, 4 workers, disconnected)"),
            "{table}"
        );
        assert!(table.contains("2 retries, 1 module transfers"), "{table}");
    }
}
