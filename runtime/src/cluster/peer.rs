//! One loop per peer: connect, run a session until it ends, wait, reconnect.

use super::ClusterConfig;
use super::NodeTable;
use super::session::{self, Session};
use super::window::Backoff;
use crate::scheduler::pool::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info, info_span, warn};

/// The first delay before reconnecting to a peer that failed or went away.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// The longest delay between attempts: a restarted node is back in use within this.
const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// The delay after a node refused this client (wrong secret or version): a retry only
/// helps once someone reconfigures a side, so it need not fill the node's log.
const RECONNECT_REFUSED: Duration = Duration::from_secs(15);

/// What every peer loop shares.
pub(super) struct Peers {
    pub(super) shared: Arc<Shared>,
    pub(super) nodes: Arc<NodeTable>,
    pub(super) config: Arc<ClusterConfig>,
}

impl Peers {
    /// Runs one loop per peer until `stop` turns true (or its sender is dropped).
    pub(super) async fn run_all(self, stop: watch::Receiver<bool>) {
        let peers = Arc::new(self);
        let mut loops = tokio::task::JoinSet::new();
        for index in 0..peers.config.peers.len() {
            let span = info_span!("node", address = %peers.config.peers[index]);
            loops.spawn(run_peer(peers.clone(), index, stop.clone()).instrument(span));
        }
        while loops.join_next().await.is_some() {}
    }
}

async fn run_peer(peers: Arc<Peers>, index: usize, mut stop: watch::Receiver<bool>) {
    let address = peers.config.peers[index].clone();
    let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_MAX);
    let mut last_error = String::new();
    while !*stop.borrow() {
        let mut delay = backoff.next_delay();
        let connected = tokio::select! {
            connected = Session::connect(&peers.config, &address) => connected,
            _ = stop.changed() => break,
        };
        match connected {
            Ok(session) => {
                backoff.reset();
                delay = backoff.next_delay();
                last_error.clear();
                let info = session.info().clone();
                info!(node = %address, id = %info.id, arch = %info.arch, workers = info.workers, "connected to node");
                peers.nodes.update_and_notify(index, |node| {
                    node.connected = true;
                    node.connections += 1;
                    node.id = Some(info.id.clone());
                    node.arch = Some(info.arch.clone());
                    node.workers = info.workers;
                    node.last_error = None;
                    node.refused = false;
                });
                let end = session
                    .run(
                        &peers.shared,
                        &peers.nodes,
                        index,
                        peers.config.max_retries,
                        &mut stop,
                    )
                    .await;
                match &end {
                    session::End::Stopped => debug!(node = %address, "session closed"),
                    session::End::Drained => {
                        info!(node = %address, "node shut down; will reconnect when it returns")
                    }
                    session::End::Lost(error) => {
                        warn!(node = %address, %error, "lost the node; its jobs go back to the queue")
                    }
                }
                peers.nodes.update_and_notify(index, |node| {
                    node.connected = false;
                    if let session::End::Lost(error) = &end {
                        node.last_error = Some(error.to_string());
                    }
                });
            }
            Err(error) => {
                let refused = error.is_refusal();
                if refused {
                    delay = RECONNECT_REFUSED;
                }
                let error = error.to_string();
                // Say it once, not at every retry.
                if error != last_error {
                    warn!(node = %address, %error, "could not connect to node; retrying");
                    last_error.clone_from(&error);
                }
                peers.nodes.update_and_notify(index, |node| {
                    node.last_error = Some(error);
                    node.refused = refused;
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
    }
}
