//! The client side of a cluster: one session per remote node, all pulling jobs from the
//! server's queue alongside the local workers.
//!
//! Networking runs on a tokio runtime of its own, on one dedicated thread (`wasp-net`):
//! sessions only move bytes and complete jobs (running their callbacks, which must be
//! quick), so one thread keeps up with many nodes, and wasm never runs there. Dropping the [`Cluster`] stops that thread and returns every job
//! still in flight to the queue (which, when the server is shutting down, cancels them).

mod found;
#[cfg(test)]
mod hostile_node;
mod names;
mod nodes;
mod peer;
mod session;
mod window;

pub(crate) use names::{DEFAULT_RESOLVE_INTERVAL, Resolver};
pub(crate) use nodes::NodeTable;

use crate::error::ConfigError;
use crate::net::TransportSettings;
use crate::scheduler::pool::Shared;
use crate::secret::ClusterSecret;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::watch;

/// The retry limit of a job whose node is lost, unless configured otherwise.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 3;

/// How a server reaches its nodes.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    /// The nodes, `host:port`: an address is one node; a name stands for every address it
    /// resolves to, resolved again every `resolve_interval`.
    pub(crate) peers: Vec<String>,
    /// Turns peer names into addresses.
    pub(crate) resolver: Resolver,
    /// How often peer names are resolved again.
    pub(crate) resolve_interval: std::time::Duration,
    /// Where to listen for node announcements, if discovery is on.
    pub(crate) discovery: Option<std::net::SocketAddr>,
    /// The address of the interface to join a multicast discovery group on (unspecified:
    /// the one the routing table picks).
    pub(crate) discovery_interface: std::net::Ipv4Addr,
    /// The cluster secret; `None` only for nodes started with `--insecure`.
    pub(crate) secret: Option<ClusterSecret>,
    /// Heartbeats and the silence after which a node is declared lost.
    pub(crate) transport: TransportSettings,
    /// How many times a job may be put back after losing its node.
    pub(crate) max_retries: u32,
}

/// The running client side of a cluster.
pub(crate) struct Cluster {
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    pub(crate) nodes: Arc<NodeTable>,
}

impl Cluster {
    /// Starts the network thread and one session loop per peer.
    pub(crate) fn start(shared: &Arc<Shared>, config: ClusterConfig) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let nodes = Arc::new(NodeTable::new(&config.peers));
        if config.discovery.is_some() {
            nodes.set_discovery(crate::discovery::DiscoveryStats::default());
        }
        let named = config.peers.iter().any(|peer| is_name(peer));
        if named || config.discovery.is_some() {
            nodes.set_open_ended();
        }
        let (shutdown, stop) = watch::channel(false);
        shared.enable_remote();
        let peers = peer::Peers {
            shared: shared.clone(),
            nodes: nodes.clone(),
            config: Arc::new(config),
        };
        let thread = std::thread::Builder::new()
            .name("wasp-net".into())
            .spawn(move || {
                runtime.block_on(peers.run_all(stop));
                // A name lookup still blocking (a slow DNS server) must not hold up the
                // server's shutdown: its answer is no longer wanted.
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })?;
        Ok(Cluster {
            shutdown,
            thread: Some(thread),
            nodes,
        })
    }

    /// Stops every session: jobs in flight go back to the queue (or are cancelled if it is
    /// closed), connections are closed, and the network thread exits.
    pub(crate) fn shutdown(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How long the network thread waits, when stopping, for lookups on the blocking pool.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether `peer` (`host:port`) names its host rather than giving its address.
fn is_name(peer: &str) -> bool {
    peer.parse::<std::net::SocketAddr>().is_err()
}

/// The peer that turns discovery on (as pp's `ppservers=("*",)`).
pub(crate) const DISCOVER: &str = "*";

/// Validates a peer address: `host:port` with a numeric port.
pub(crate) fn check_peer(peer: &str) -> Result<(), ConfigError> {
    let port = peer
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(_))) if !host.is_empty() => Ok(()),
        _ => Err(ConfigError::Invalid {
            setting: "peers",
            why: format!("`{peer}` is not host:port (e.g. 192.168.1.20:7878 or node1:7878)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_peer, is_name};

    #[test]
    fn peers_need_a_host_and_a_port() {
        assert!(check_peer("127.0.0.1:7878").is_ok());
        assert!(check_peer("node1.example:7878").is_ok());
        assert!(check_peer("[::1]:7878").is_ok());
        assert!(check_peer("node1").is_err());
        assert!(check_peer(":7878").is_err());
        assert!(check_peer("node1:http").is_err());
    }

    #[test]
    fn names_are_told_from_addresses() {
        assert!(is_name("nodes.wasp.svc.cluster.local:7878"));
        assert!(is_name("localhost:7878"));
        assert!(!is_name("10.0.0.5:7878"));
        assert!(!is_name("[fd00::5]:7878"));
    }
}
