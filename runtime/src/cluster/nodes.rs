//! The table of nodes: their statistics, and waiting until enough are connected.

use crate::discovery::DiscoveryStats;
use crate::error::ClusterError;
use crate::stats::NodeStats;
use crate::waiting;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Statistics of every peer, shared by the sessions and the server's handle.
pub(crate) struct NodeTable {
    nodes: Mutex<Vec<NodeStats>>,
    /// What discovery heard, if it is on.
    discovery: Mutex<Option<DiscoveryStats>>,
    /// Whether nodes may be added while running (discovery, or peers given by name): then
    /// waiting for more nodes than are listed still makes sense.
    open_ended: AtomicBool,
    /// Signalled when a node connects or disconnects.
    changed: Condvar,
}

impl NodeTable {
    /// A table of `peers`, none connected yet.
    pub(crate) fn new(peers: &[String]) -> Self {
        let nodes = peers
            .iter()
            .map(|address| NodeStats {
                address: address.clone(),
                ..NodeStats::default()
            })
            .collect();
        NodeTable {
            nodes: Mutex::new(nodes),
            discovery: Mutex::new(None),
            open_ended: AtomicBool::new(false),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<NodeStats>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a node (a discovered or resolved one); returns its index.
    pub(crate) fn add(&self, address: String) -> usize {
        let mut nodes = self.lock();
        nodes.push(NodeStats {
            address,
            ..NodeStats::default()
        });
        nodes.len() - 1
    }

    /// Notes that nodes may be added while running.
    pub(crate) fn set_open_ended(&self) {
        self.open_ended.store(true, Ordering::Relaxed);
    }

    /// The last error of node `index`, if any.
    pub(crate) fn last_error(&self, index: usize) -> Option<String> {
        self.lock()[index].last_error.clone()
    }

    /// Records what discovery has heard so far.
    pub(crate) fn set_discovery(&self, stats: DiscoveryStats) {
        *self.discovery.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }

    /// What discovery has heard so far, if it is on.
    pub(crate) fn discovery(&self) -> Option<DiscoveryStats> {
        *self.discovery.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Updates node `index`'s statistics.
    pub(crate) fn update(&self, index: usize, change: impl FnOnce(&mut NodeStats)) {
        change(&mut self.lock()[index]);
    }

    /// Updates node `index` and wakes whoever waits for nodes (a connection change).
    pub(crate) fn update_and_notify(&self, index: usize, change: impl FnOnce(&mut NodeStats)) {
        self.update(index, change);
        self.changed.notify_all();
    }

    /// The workers of the connected nodes, all together.
    pub(crate) fn connected_workers(&self) -> usize {
        self.lock()
            .iter()
            .filter(|node| node.connected)
            .map(|node| node.workers as usize)
            .sum()
    }

    /// A copy of every node's statistics.
    pub(crate) fn snapshot(&self) -> Vec<NodeStats> {
        self.lock().clone()
    }

    /// Waits until at least `wanted` nodes are connected, or `timeout` has passed.
    pub(crate) fn wait_connected(
        &self,
        wanted: usize,
        timeout: Duration,
    ) -> Result<usize, ClusterError> {
        let deadline = crate::server::deadline(timeout);
        let mut nodes = self.lock();
        loop {
            let connected = nodes.iter().filter(|n| n.connected).count();
            if connected >= wanted {
                return Ok(connected);
            }
            // Nodes that refused this client will not come by waiting: say so now (unless
            // discovery or a name may still bring others).
            let hopeful = nodes.iter().filter(|n| !n.connected && !n.refused).count();
            let open_ended = self.open_ended.load(Ordering::Relaxed);
            let slept = if connected + hopeful < wanted && !open_ended {
                Err(nodes)
            } else {
                waiting::sleep(&self.changed, nodes, deadline)
            };
            match slept {
                Ok(guard) => nodes = guard,
                Err(nodes) => {
                    return Err(ClusterError {
                        wanted,
                        connected: nodes.iter().filter(|n| n.connected).count(),
                        peers: nodes
                            .iter()
                            .filter(|n| !n.connected)
                            .map(|n| {
                                let error = n.last_error.as_deref().unwrap_or("not connected yet");
                                (n.address.clone(), error.to_string())
                            })
                            .collect(),
                    });
                }
            }
        }
    }
}
