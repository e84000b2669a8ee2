//! The table of nodes: one row per node address, their statistics, and waiting until enough
//! are connected.
//!
//! A row is an address, never an identity: two nodes that present the same certificate
//! from two addresses (one identity shared on purpose, or copied) are two rows, each with
//! its own connection and counts. Rows of nodes found while running (discovered, or
//! resolved from a name) go when their node is let go; what they did is kept in one
//! "departed" row, so the table stays as large as the cluster, however much it churns.

use super::session::Delta;
use crate::discovery::DiscoveryStats;
use crate::error::ClusterError;
use crate::stats::NodeStats;
use crate::waiting;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wasp_proto::message::NodeInfo;

/// How the row of the nodes let go ends its address: `12 departed node(s)`.
pub(crate) const DEPARTED: &str = "departed node(s)";

/// A row of the node table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RowId(u64);

/// Statistics of every node, shared by the sessions and the server's handle.
pub(crate) struct NodeTable {
    table: Mutex<Table>,
    /// What discovery heard, if it is on.
    discovery: Mutex<Option<DiscoveryStats>>,
    /// Whether nodes may be added while running (discovery, or peers given by name): then
    /// waiting for more nodes than are listed still makes sense.
    open_ended: AtomicBool,
    /// Signalled when a node connects or disconnects, or a row comes or goes.
    changed: Condvar,
    /// Where the connected nodes' workers, all together, are published (the server's
    /// capacity, the sessions' fair shares).
    remote_workers: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Table {
    /// In the order they were made: listed peers first, as given.
    rows: BTreeMap<RowId, NodeStats>,
    next: u64,
    /// The rows that stand for a name that resolves to no node yet, by name.
    placeholders: HashMap<String, RowId>,
    /// What the nodes let go did, all together.
    departed: NodeStats,
    departed_count: u64,
}

impl NodeTable {
    /// An empty table publishing the connected workers to `remote_workers`.
    pub(crate) fn new(remote_workers: Arc<AtomicUsize>) -> Self {
        NodeTable {
            table: Mutex::new(Table::default()),
            discovery: Mutex::new(None),
            open_ended: AtomicBool::new(false),
            changed: Condvar::new(),
            remote_workers,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a row for the node at `address`, found under `name` if any (which then no
    /// longer needs its placeholder).
    pub(crate) fn add(&self, address: String, name: Option<String>) -> RowId {
        let mut table = self.lock();
        if let Some(placeholder) = name.as_ref().and_then(|n| table.placeholders.remove(n)) {
            table.rows.remove(&placeholder);
        }
        let row = table.new_row(NodeStats {
            address,
            name,
            ..NodeStats::default()
        });
        drop(table);
        self.changed.notify_all();
        row
    }

    /// Lets a node go: its row leaves the table, and its counts join the departed row.
    pub(crate) fn remove(&self, row: RowId) {
        let mut table = self.lock();
        if let Some(gone) = table.rows.remove(&row) {
            let departed = &mut table.departed;
            departed.jobs += gone.jobs;
            departed.failed += gone.failed;
            departed.busy += gone.busy;
            departed.retries += gone.retries;
            departed.module_transfers += gone.module_transfers;
            departed.data_transfers += gone.data_transfers;
            departed.data_bytes += gone.data_bytes;
            departed.bytes_sent += gone.bytes_sent;
            departed.connections += gone.connections;
            table.departed_count += 1;
        }
        self.publish_workers(&table);
        drop(table);
        self.changed.notify_all();
    }

    /// Shows why `name` gives no node: on its placeholder row (made if needed), unless
    /// nodes of that name are in the table already (they show their own state).
    pub(crate) fn name_failed(&self, name: &str, error: String) {
        let mut table = self.lock();
        let has_nodes = table
            .rows
            .values()
            .any(|node| node.name.as_deref() == Some(name) && node.address != name);
        if has_nodes {
            return;
        }
        let row = match table.placeholders.get(name) {
            Some(&row) => row,
            None => {
                let row = table.new_row(NodeStats {
                    address: name.to_string(),
                    name: Some(name.to_string()),
                    ..NodeStats::default()
                });
                table.placeholders.insert(name.to_string(), row);
                row
            }
        };
        if let Some(node) = table.rows.get_mut(&row) {
            node.last_error = Some(error);
        }
        drop(table);
        self.changed.notify_all();
    }

    /// Adds the placeholder row of a name not resolved yet.
    pub(crate) fn add_placeholder(&self, name: &str) {
        let mut table = self.lock();
        let row = table.new_row(NodeStats {
            address: name.to_string(),
            name: Some(name.to_string()),
            ..NodeStats::default()
        });
        table.placeholders.insert(name.to_string(), row);
    }

    /// Notes that nodes may be added while running.
    pub(crate) fn set_open_ended(&self) {
        self.open_ended.store(true, Ordering::Relaxed);
    }

    /// The address of node `row`.
    pub(crate) fn address(&self, row: RowId) -> String {
        self.lock()
            .rows
            .get(&row)
            .map(|node| node.address.clone())
            .unwrap_or_default()
    }

    /// The last error of node `row`, if any.
    pub(crate) fn last_error(&self, row: RowId) -> Option<String> {
        self.lock().rows.get(&row)?.last_error.clone()
    }

    /// Records what discovery has heard so far.
    pub(crate) fn set_discovery(&self, stats: DiscoveryStats) {
        *self.discovery.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }

    /// What discovery has heard so far, if it is on.
    pub(crate) fn discovery(&self) -> Option<DiscoveryStats> {
        *self.discovery.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Updates node `row` and wakes whoever waits for nodes.
    pub(crate) fn update_and_notify(&self, row: RowId, change: impl FnOnce(&mut NodeStats)) {
        if let Some(node) = self.lock().rows.get_mut(&row) {
            change(node);
        }
        self.changed.notify_all();
    }

    /// Node `row` is connected, as `info` describes it.
    pub(crate) fn connected(&self, row: RowId, info: &NodeInfo) {
        let mut table = self.lock();
        if let Some(node) = table.rows.get_mut(&row) {
            node.connected = true;
            node.draining = false;
            node.connections += 1;
            node.id = Some(info.id.clone());
            node.arch = Some(info.arch.clone());
            node.workers = info.workers;
            node.last_error = None;
            node.refused = false;
        }
        self.publish_workers(&table);
        drop(table);
        self.changed.notify_all();
    }

    /// Node `row` is no longer connected; `error` says why, if it was lost.
    pub(crate) fn disconnected(&self, row: RowId, error: Option<String>) {
        let mut table = self.lock();
        if let Some(node) = table.rows.get_mut(&row) {
            node.connected = false;
            node.draining = false;
            node.preparing = 0;
            node.in_flight = 0;
            node.round_trip = None;
            if error.is_some() {
                node.last_error = error;
            }
        }
        self.publish_workers(&table);
        drop(table);
        self.changed.notify_all();
    }

    /// Records the state of node `row`'s link: jobs in flight, round trip, when it was
    /// last heard from.
    pub(crate) fn link(&self, row: RowId, in_flight: usize, round_trip: Duration, heard: Instant) {
        if let Some(node) = self.lock().rows.get_mut(&row) {
            node.in_flight = u32::try_from(in_flight).unwrap_or(u32::MAX);
            node.round_trip = Some(round_trip);
            node.last_heard = Some(heard);
        }
    }

    /// Adds what a session saw to node `row`.
    pub(crate) fn record(&self, row: RowId, delta: Delta) {
        if delta == Delta::default() {
            return;
        }
        let mut table = self.lock();
        let Some(node) = table.rows.get_mut(&row) else {
            return;
        };
        node.jobs += delta.jobs;
        node.failed += delta.failed;
        node.busy += delta.busy;
        node.retries += delta.retries;
        node.module_transfers += delta.module_transfers;
        node.data_transfers += delta.data_transfers;
        node.data_bytes += delta.data_bytes;
        node.bytes_sent += delta.bytes_sent;
        if let Some(preparing) = delta.preparing {
            node.preparing = preparing;
        }
        node.draining |= delta.draining;
        if let Some(workers) = delta.workers {
            node.workers = workers;
            self.publish_workers(&table);
        }
    }

    /// Publishes the workers of the connected nodes.
    fn publish_workers(&self, table: &Table) {
        let workers = table
            .rows
            .values()
            .filter(|node| node.connected)
            .map(|node| node.workers as usize)
            .sum();
        self.remote_workers.store(workers, Ordering::Relaxed);
    }

    /// How many rows the table has (the departed row not counted).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// A copy of every node's statistics; the nodes let go, all together, last.
    pub(crate) fn snapshot(&self) -> Vec<NodeStats> {
        let table = self.lock();
        let mut nodes: Vec<_> = table.rows.values().cloned().collect();
        if table.departed_count > 0 {
            nodes.push(NodeStats {
                address: format!("{} {DEPARTED}", table.departed_count),
                ..table.departed.clone()
            });
        }
        nodes
    }

    /// Waits until at least `wanted` nodes are connected, or `timeout` has passed.
    pub(crate) fn wait_connected(
        &self,
        wanted: usize,
        timeout: Duration,
    ) -> Result<usize, ClusterError> {
        let deadline = waiting::deadline(timeout);
        let mut table = self.lock();
        loop {
            let nodes = &table.rows;
            let connected = nodes.values().filter(|n| n.connected).count();
            if connected >= wanted {
                return Ok(connected);
            }
            // Nodes that refused this client will not come by waiting: say so now (unless
            // discovery or a name may still bring others).
            let hopeful = nodes
                .values()
                .filter(|n| !n.connected && !n.refused)
                .count();
            let open_ended = self.open_ended.load(Ordering::Relaxed);
            let slept = if connected + hopeful < wanted && !open_ended {
                Err(table)
            } else {
                waiting::sleep(&self.changed, table, deadline)
            };
            match slept {
                Ok(guard) => table = guard,
                Err(table) => return Err(missing(&table, wanted)),
            }
        }
    }
}

impl Table {
    fn new_row(&mut self, stats: NodeStats) -> RowId {
        let row = RowId(self.next);
        self.next += 1;
        self.rows.insert(row, stats);
        row
    }
}

fn missing(table: &Table, wanted: usize) -> ClusterError {
    let nodes = table.rows.values();
    ClusterError {
        wanted,
        connected: nodes.clone().filter(|n| n.connected).count(),
        peers: nodes
            .filter(|n| !n.connected)
            .map(|n| {
                let error = n.last_error.as_deref().unwrap_or("not connected yet");
                (n.address.clone(), error.to_string())
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(workers: u32) -> NodeInfo {
        NodeInfo {
            id: "same-certificate".into(),
            arch: "x86_64".into(),
            os: "linux".into(),
            workers,
            version: "test".into(),
            max_module_size: 1,
            pulls_from: Vec::new(),
        }
    }

    /// The fault: two nodes with one identity were one row, and the client flapped between
    /// them. Rows are addresses: each keeps its own connection and counts.
    #[test]
    fn two_nodes_with_one_identity_are_two_rows() {
        let workers = Arc::new(AtomicUsize::new(0));
        let table = NodeTable::new(workers.clone());
        let a = table.add("127.0.0.1:7001".into(), None);
        let b = table.add("127.0.0.1:7002".into(), None);
        table.connected(a, &info(2));
        table.connected(b, &info(3));
        let delta = Delta {
            jobs: 4,
            ..Delta::default()
        };
        table.record(a, delta);
        let nodes = table.snapshot();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].id, nodes[1].id);
        assert_eq!((nodes[0].jobs, nodes[1].jobs), (4, 0));
        assert_eq!(workers.load(Ordering::Relaxed), 5);
        table.disconnected(b, Some("gone".into()));
        assert_eq!(workers.load(Ordering::Relaxed), 2);
        assert_eq!(table.wait_connected(1, Duration::ZERO).unwrap(), 1);
        let err = table.wait_connected(2, Duration::ZERO).unwrap_err();
        assert_eq!(
            err.peers,
            [("127.0.0.1:7002".to_string(), "gone".to_string())]
        );
    }

    #[test]
    fn departed_nodes_fold_into_one_row() {
        let table = NodeTable::new(Arc::new(AtomicUsize::new(0)));
        for cycle in 0..100 {
            let row = table.add(format!("10.0.0.{cycle}:7878"), Some("nodes:7878".into()));
            table.record(
                row,
                Delta {
                    jobs: 1,
                    ..Delta::default()
                },
            );
            table.remove(row);
        }
        assert_eq!(table.len(), 0);
        let nodes = table.snapshot();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].address, "100 departed node(s)");
        assert_eq!(nodes[0].jobs, 100);
    }

    #[test]
    fn a_name_shows_its_error_until_it_gives_nodes() {
        let table = NodeTable::new(Arc::new(AtomicUsize::new(0)));
        table.add_placeholder("nodes:7878");
        table.name_failed("nodes:7878", "no such host".into());
        let nodes = table.snapshot();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].last_error.as_deref(), Some("no such host"));
        table.add("10.0.0.1:7878".into(), Some("nodes:7878".into()));
        let nodes = table.snapshot();
        assert_eq!(nodes.len(), 1, "the placeholder went");
        assert_eq!(nodes[0].address, "10.0.0.1:7878");
        table.name_failed("nodes:7878", "a lookup failed".into());
        assert_eq!(table.len(), 1, "nodes of the name show their own state");
    }
}
