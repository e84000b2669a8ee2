//! One loop per node: connect, run a session until it ends, wait, reconnect; and the
//! loops that find nodes (discovery) and start theirs.

use super::found::Found;
use super::session::{self, Session};
use super::window::Backoff;
use super::{ClusterConfig, NodeTable, names};
use crate::discovery::{self, Hearing};
use crate::scheduler::pool::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

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
    /// Runs one loop per peer (per address, for a peer given by name), and discovery if it
    /// is on, until `stop` turns true (or its sender is dropped).
    pub(super) async fn run_all(self, stop: watch::Receiver<bool>) {
        let peers = Arc::new(self);
        let mut loops = tokio::task::JoinSet::new();
        for (row, peer) in peers.config.peers.iter().enumerate() {
            match peer.parse::<SocketAddr>() {
                Ok(address) => {
                    let span = info_span!("node", %address);
                    let peer = run_peer(peers.clone(), row, address, None, stop.clone());
                    loops.spawn(peer.instrument(span));
                }
                Err(_) => {
                    let name = peer.clone();
                    loops.spawn(names::follow_name(peers.clone(), row, name, stop.clone()));
                }
            }
        }
        if let Some(address) = peers.config.discovery {
            loops.spawn(discover(peers.clone(), address, stop.clone()));
        }
        while loops.join_next().await.is_some() {}
    }
}

/// Listens for announcements on `address`, and runs a loop for every node heard.
async fn discover(peers: Arc<Peers>, address: SocketAddr, mut stop: watch::Receiver<bool>) {
    let Some(secret) = peers.config.secret.clone() else {
        return; // refused when the server is built
    };
    let socket = match discovery::listener(address, peers.config.discovery_interface) {
        Ok(socket) => socket,
        Err(error) => {
            error!(%address, %error, "cannot listen for node announcements; discovery is off");
            return;
        }
    };
    info!(%address, "listening for node announcements");
    let mut hearing = Hearing::new(secret);
    let mut found = Found::default();
    loop {
        let received = tokio::select! {
            received = discovery::receive(&socket) => received,
            _ = stop.changed() => break,
        };
        let Ok((datagram, source)) = received else {
            continue;
        };
        let heard = hearing.hear(&datagram, source);
        peers.nodes.set_discovery(hearing.stats);
        let Some(node) = heard else {
            continue;
        };
        let started = found.ensure(
            node.id.clone(),
            node.address,
            None,
            &mut None,
            &peers,
            &stop,
        );
        if started {
            info!(node = %node.address, id = %node.id, workers = node.workers, "discovered a node");
        }
    }
    found.join().await;
}

/// Connects to the node at `address` and keeps reconnecting; for a found node (discovered,
/// or resolved from a name), only until `give_up_after` attempts in a row have failed.
pub(super) async fn run_peer(
    peers: Arc<Peers>,
    index: usize,
    address: SocketAddr,
    give_up_after: Option<u32>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_MAX);
    // The error shown already (by an earlier loop for this node, too): said once only.
    let mut last_error = peers.nodes.last_error(index).unwrap_or_default();
    let mut failures = 0;
    while !*stop.borrow() {
        let mut delay = backoff.next_delay();
        let connected = tokio::select! {
            connected = Session::connect(&peers.config, address) => connected,
            _ = stop.changed() => break,
        };
        match connected {
            Ok(session) => {
                failures = 0;
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
                failures += 1;
                if give_up_after.is_some_and(|limit| failures >= limit) {
                    info!(node = %address, %error, "the node is gone");
                    peers.nodes.update_and_notify(index, |node| {
                        node.last_error = Some(error.to_string());
                    });
                    break;
                }
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
