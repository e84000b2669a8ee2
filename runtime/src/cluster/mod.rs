//! The client side of a cluster: one session per remote node, all pulling jobs from the
//! server's queue alongside the local workers.
//!
//! Networking runs on a tokio runtime of its own, on one dedicated thread (`wasp-net`):
//! sessions only move bytes and complete jobs (running their callbacks, which must be
//! quick), so one thread keeps up with many nodes, and wasm never runs there. Dropping the
//! [`Cluster`] stops that thread, returns every job still in flight to the queue (which,
//! when the server is shutting down, cancels them) and closes every connection, so that
//! nodes stop this client's jobs at once.
//!
//! * `registry`: which addresses have a peer loop (listed, resolved from a name, heard),
//!   one per address, as plain data; and the task that starts and ends loops.
//! * `peer`: one address's loop: connect, run a session, back off, reconnect.
//! * `session`: one connection: `state` (plain data: the window, jobs in flight, hand-backs,
//!   modules, cancellations) and its `driver`.
//! * `names`, `discover`: the sources of found nodes (a name resolved again and again, the
//!   LAN's announcements).
//! * `nodes`: the node table (a row per address) behind `stats().nodes`.
//! * `window`: the credit window and the backoff, plain data.
//! * `context`: what the loops share, with the client's QUIC endpoints (one per family).

mod context;
mod discover;
#[cfg(test)]
mod hostile_node;
mod names;
pub(crate) mod nodes;
mod peer;
mod registry;
mod session;
mod window;

pub(crate) use names::{DEFAULT_RESOLVE_INTERVAL, Resolver};
pub(crate) use nodes::NodeTable;

use crate::error::ConfigError;
use crate::net::TransportSettings;
use crate::peer::Peer;
use crate::scheduler::pool::Shared;
use crate::secret::ClusterSecret;
use context::Context;
use registry::{Event, Membership, Origin};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::error;

/// The retry limit of a job whose node is lost, unless configured otherwise.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 3;

/// How a server reaches its nodes.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    /// The nodes: addresses and names ([`Peer::Discover`] turns `discovery` on instead).
    pub(crate) peers: Vec<Peer>,
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
    /// Starts the network thread, with a peer loop per listed address, a resolver per name
    /// and, if on, discovery. The node table has its listed rows at once, in order.
    pub(crate) fn start(shared: &Arc<Shared>, config: ClusterConfig) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let nodes = Arc::new(NodeTable::new(shared.remote_workers.clone()));
        if config.discovery.is_some() {
            nodes.set_discovery(crate::discovery::DiscoveryStats::default());
        }
        let (events, inbox) = mpsc::unbounded_channel();
        let mut membership = Membership::default();
        let mut starts = Vec::new();
        for peer in &config.peers {
            match peer {
                Peer::Addr(address) => {
                    let start = membership.found(*address, Origin::Listed, &nodes);
                    starts.extend(start.map(|start| (*address, start)));
                }
                Peer::Name { .. } | Peer::Dir(_) | Peer::Discover => {
                    if let Some(name) = peer.name() {
                        nodes.add_placeholder(&name);
                    }
                    nodes.set_open_ended();
                }
            }
        }
        if config.discovery.is_some() {
            nodes.set_open_ended();
        }
        let (shutdown, stop) = watch::channel(false);
        shared.books.enable_remote();
        let ctx = Arc::new(Context::new(shared.clone(), nodes.clone(), config));
        let thread = std::thread::Builder::new()
            .name("wasp-net".into())
            .spawn(move || {
                runtime.block_on(run_all(ctx, membership, starts, (events, inbox), stop));
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

/// Runs the registry (which starts the listed peers' loops at once), a follower per name,
/// and discovery, until `stop`; then lets the endpoints send their closes.
async fn run_all(
    ctx: Arc<Context>,
    membership: Membership,
    listed: Vec<(std::net::SocketAddr, registry::Start)>,
    (events, inbox): (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    stop: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    let registry = registry::run(
        ctx.clone(),
        membership,
        listed,
        (events.clone(), inbox),
        stop.clone(),
    );
    tasks.spawn(registry);
    for name in ctx.config.peers.iter().filter_map(Peer::name) {
        let follow = names::follow_name(ctx.clone(), name, events.clone(), stop.clone());
        tasks.spawn(follow);
    }
    if let Some(address) = ctx.config.discovery {
        let listen = discover::discover(ctx.clone(), address, events.clone(), stop.clone());
        tasks.spawn(listen);
    }
    drop(events);
    while let Some(joined) = tasks.join_next().await {
        if let Err(panic) = joined {
            error!(%panic, "a cluster task failed");
        }
    }
    ctx.close_endpoints().await;
}
