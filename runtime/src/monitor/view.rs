//! What the monitor reads of a server: its queue, workers, groups and node table. The
//! server's own statistics ([`Server::stats`](crate::Server::stats)) are read the same way.

use crate::cluster::nodes::NodeTable;
use crate::metrics::FailedJob;
use crate::scheduler::groups::{GroupProgress, Outcomes};
use crate::scheduler::pool::Shared;
use crate::scheduler::queue::QueueCounts;
use crate::stats::Stats;
use std::sync::Arc;

/// A server's state, shared with its monitor.
#[derive(Clone)]
pub(crate) struct ServerView {
    pub(crate) shared: Arc<Shared>,
    /// The node table, if the server has a cluster.
    pub(crate) nodes: Option<Arc<NodeTable>>,
}

/// The counters of a server, read at one instant.
pub(crate) struct Counters {
    pub(crate) queue: QueueCounts,
    pub(crate) outcomes: Outcomes,
    pub(crate) stats: Stats,
}

impl ServerView {
    /// A snapshot of the server's activity.
    pub(crate) fn stats(&self) -> Stats {
        let shared = &self.shared;
        let (target_workers, queued, running) = {
            let queue = shared.queue();
            (queue.target(), queue.pending(), queue.running())
        };
        let totals = shared.books.groups.summary(None);
        let nodes = self.nodes.as_ref();
        Stats {
            elapsed: shared.started.elapsed(),
            workers: shared.worker_stats(),
            target_workers,
            queued,
            running,
            submitted: totals.submitted,
            finished: totals.finished,
            failed: totals.failed,
            cache: shared.modules.stats(),
            results: shared
                .books
                .results
                .get()
                .map(|results| results.stats())
                .unwrap_or_default(),
            held: shared.books.deps.held(),
            nodes: nodes.map(|nodes| nodes.snapshot()).unwrap_or_default(),
            discovery: nodes.and_then(|nodes| nodes.discovery()),
        }
    }

    /// Everything the metrics show.
    pub(crate) fn counters(&self) -> Counters {
        let queue = self.shared.queue().counts().clone();
        Counters {
            queue,
            outcomes: self.shared.books.groups.outcomes(),
            stats: self.stats(),
        }
    }

    /// The progress of `group`, if it has counters.
    pub(crate) fn progress(&self, group: &str) -> Option<GroupProgress> {
        let running = self.shared.queue().running_in(group);
        self.shared.books.groups.progress(group, running)
    }

    /// The progress of up to `limit` groups: those with jobs pending, then the most
    /// recently finished.
    pub(crate) fn groups(&self, limit: usize) -> Vec<GroupProgress> {
        let names = self.shared.books.groups.recent(limit);
        names
            .iter()
            .filter_map(|name| self.progress(name))
            .collect()
    }

    /// The most recent failed jobs, newest first.
    pub(crate) fn failures(&self) -> Vec<FailedJob> {
        self.shared.books.failures.recent()
    }
}
