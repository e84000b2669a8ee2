//! The JSON the dashboard reads (`GET /api/v1/status`), documented in the README: a
//! server's state in aggregates, whatever the number of jobs.

use super::view::ServerView;
use crate::metrics::{FailedJob, Sample};
use crate::scheduler::groups::GroupProgress;
use crate::stats::NodeStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// How many groups the status lists.
pub(crate) const GROUPS_SHOWN: usize = 20;

/// What a node adds to its status: its clients and its module store.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct NodeStatus {
    /// Clients connected now.
    pub(crate) clients: u64,
    /// Each client connected now, oldest first.
    pub(crate) client_list: Vec<ClientStatus>,
    /// Whether the node is draining (shutting down): not ready.
    pub(crate) draining: bool,
    /// Modules in its store.
    pub(crate) modules_stored: u64,
    /// Their bytes.
    pub(crate) module_store_bytes: u64,
    /// Modules received from clients so far.
    pub(crate) modules_received: u64,
    /// Values (data put once) in its store.
    pub(crate) data_stored: u64,
    /// Their bytes.
    pub(crate) data_store_bytes: u64,
    /// Values received from clients so far.
    pub(crate) data_received: u64,
    /// Jobs handed back to their clients (queued or still running when it drained).
    pub(crate) jobs_handed_back: u64,
    /// Connections refused, by reason.
    pub(crate) clients_refused: BTreeMap<&'static str, u64>,
}

/// A client connected to a node, as the node's page lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct ClientStatus {
    /// The connection's number on this node (from 1, in order of connection).
    pub(crate) id: u64,
    /// The client's address.
    pub(crate) address: String,
    /// Its job group on this node: its jobs' progress and failures are listed under it.
    pub(crate) group: String,
    /// How long it has been connected.
    pub(crate) connected_seconds: f64,
    /// Its jobs running on a worker now.
    pub(crate) running: u64,
    /// Its jobs waiting for a worker.
    pub(crate) queued: u64,
    /// Its jobs finished, with an error or not, since it connected.
    pub(crate) finished: u64,
    /// Its jobs that finished with an error (cancelled ones included).
    pub(crate) failed: u64,
}

/// The whole status.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    role: &'static str,
    version: &'static str,
    arch: &'static str,
    uptime_seconds: f64,
    ready: bool,
    workers: Workers,
    queue: Queue,
    jobs: Jobs,
    throughput: Vec<Sample>,
    nodes: Vec<Node>,
    groups: Vec<GroupProgress>,
    failures: Vec<FailedJob>,
    preparing: Vec<Preparing>,
    node: Option<NodeStatus>,
}

#[derive(Debug, Serialize)]
struct Workers {
    total: u64,
    busy: u64,
}

#[derive(Debug, Serialize)]
struct Queue {
    queued: u64,
    running: u64,
}

#[derive(Debug, Serialize)]
struct Jobs {
    submitted: u64,
    finished: u64,
    failed: u64,
}

#[derive(Debug, Serialize)]
struct Node {
    address: String,
    name: Option<String>,
    id: Option<String>,
    arch: Option<String>,
    connected: bool,
    draining: bool,
    workers: u32,
    in_flight: u32,
    jobs: u64,
    failed: u64,
    retries: u64,
    last_heartbeat_seconds_ago: Option<f64>,
    round_trip_seconds: Option<f64>,
    preparing: u32,
    last_error: Option<String>,
}

impl Node {
    fn new(node: NodeStats, now: Instant) -> Self {
        Node {
            last_heartbeat_seconds_ago: node
                .last_heard
                .filter(|_| node.connected)
                .map(|heard| now.saturating_duration_since(heard).as_secs_f64()),
            round_trip_seconds: node.round_trip.map(|rtt| rtt.as_secs_f64()),
            address: node.address,
            name: node.name,
            id: node.id,
            arch: node.arch,
            connected: node.connected,
            draining: node.draining,
            workers: node.workers,
            in_flight: node.in_flight,
            jobs: node.jobs,
            failed: node.failed,
            retries: node.retries,
            preparing: node.preparing,
            last_error: node.last_error,
        }
    }
}

/// Module compilations in progress somewhere.
#[derive(Debug, Serialize)]
struct Preparing {
    /// `local`, or a node's address.
    node: String,
    modules: u64,
}

impl Status {
    /// The status of `view` now, with its throughput history and, on a node, the node's
    /// own part.
    pub(crate) fn new(
        view: &ServerView,
        throughput: Vec<Sample>,
        node: Option<NodeStatus>,
    ) -> Self {
        let counters = view.counters();
        let stats = counters.stats;
        let now = Instant::now();
        let local_preparing = (stats.cache.preparing > 0).then(|| Preparing {
            node: "local".into(),
            modules: stats.cache.preparing,
        });
        let remote_preparing = stats
            .nodes
            .iter()
            .filter(|node| node.preparing > 0)
            .map(|node| Preparing {
                node: node.address.clone(),
                modules: node.preparing.into(),
            });
        let preparing = local_preparing
            .into_iter()
            .chain(remote_preparing)
            .collect();
        Status {
            role: if node.is_some() { "node" } else { "client" },
            version: env!("CARGO_PKG_VERSION"),
            arch: std::env::consts::ARCH,
            uptime_seconds: stats.elapsed.as_secs_f64(),
            ready: node.as_ref().is_none_or(|node| !node.draining),
            workers: Workers {
                total: stats.target_workers as u64,
                busy: counters.queue.running_local as u64,
            },
            queue: Queue {
                queued: stats.queued as u64,
                running: stats.running as u64,
            },
            jobs: Jobs {
                submitted: stats.submitted,
                finished: stats.finished,
                failed: stats.failed,
            },
            throughput,
            nodes: stats
                .nodes
                .into_iter()
                .map(|node| Node::new(node, now))
                .collect(),
            groups: view.groups(GROUPS_SHOWN),
            failures: view.failures(),
            preparing,
            node,
        }
    }
}
