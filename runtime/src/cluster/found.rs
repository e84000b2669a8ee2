//! The nodes found while running (heard announcing themselves, or resolved from a name),
//! each with its peer loop.

use super::peer::{Peers, run_peer};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument as _, info_span};

/// How many failed connection attempts in a row make a found node count as gone: its loop
/// ends, and starts again when the node is found again.
const ATTEMPTS: u32 = 5;

/// Found nodes by key (a discovered node's id, a resolved node's address).
pub(super) struct Found<K> {
    nodes: HashMap<K, FoundNode>,
}

impl<K> Default for Found<K> {
    fn default() -> Self {
        Found {
            nodes: HashMap::new(),
        }
    }
}

/// A found node: where it is, its row in the node table, and its peer loop.
struct FoundNode {
    address: SocketAddr,
    row: usize,
    running: JoinHandle<()>,
}

impl<K: Eq + Hash> Found<K> {
    /// Makes sure a peer loop runs for node `key` at `address` (found under `name`, if
    /// any); returns whether one was started: the node is new, has moved, or its last loop
    /// ended. A new node takes `spare_row` of the node table if there is one, or a new row.
    pub(super) fn ensure(
        &mut self,
        key: K,
        address: SocketAddr,
        name: Option<&str>,
        spare_row: &mut Option<usize>,
        peers: &Arc<Peers>,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        let row = match self.nodes.get(&key) {
            Some(node) if node.address == address && !node.running.is_finished() => {
                return false;
            }
            Some(node) => node.row,
            None => spare_row
                .take()
                .unwrap_or_else(|| peers.nodes.add(address.to_string())),
        };
        peers.nodes.update(row, |node| {
            node.address = address.to_string();
            node.name = name.map(str::to_owned);
        });
        let span = info_span!("node", %address);
        let peer = run_peer(peers.clone(), row, address, Some(ATTEMPTS), stop.clone());
        let running = tokio::spawn(peer.instrument(span));
        self.nodes.insert(
            key,
            FoundNode {
                address,
                row,
                running,
            },
        );
        true
    }

    /// Waits until every node's loop has ended.
    pub(super) async fn join(self) {
        for node in self.nodes.into_values() {
            let _ = node.running.await;
        }
    }
}
