//! The node daemon (`wasp node`, Parallel Python's `ppserver`): accepts authenticated
//! clients over QUIC and runs their jobs on a local worker pool.
//!
//! Shaped like mini-redis's server: [`Node::bind`] takes the configuration and binds the
//! endpoint; [`Node::run`] serves until the shutdown future completes, then drains. Each
//! client connection is served by its own task ([`connection`]); jobs run on the node's
//! [`Server`], never on the async runtime.

mod connection;
mod counters;
mod data;
mod holdings;
mod memory;
mod policy;
mod pull;
mod store;
#[cfg(test)]
mod tests;

use crate::cache::Preparation;
use crate::error::ConfigError;
use crate::monitor::status::NodeStatus;
use crate::monitor::{Monitor, MonitorConfig, MonitorError, Sources};
use crate::net::{self, IdentityLock, NetError, NodeIdentity, TransportSettings};
use crate::rendezvous::{self, Published};
use crate::secret::ClusterSecret;
use crate::server::Server;
use counters::{NodeCounters, Refused};
pub use memory::{MemoryBudgetError, RESERVE as MEMORY_RESERVE};
pub use policy::NodePolicy;
pub use pull::{ModulePuller, PullFuture};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::ModuleStore;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::{Instrument as _, debug, info, info_span, warn};
use wasp_proto::CloseCode;
use wasp_proto::message::{NodeInfo, WireHash};

/// How long running jobs may take to finish once a node is asked to shut down, by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How many preparation events a slow connection may fall behind by: it then misses some,
/// which only its client's statistics notice (a module shown preparing until its
/// connection's next event about it).
const PREPARATION_EVENTS: usize = 256;

/// How a node is set up. `secret: None` is an insecure node, allowed on loopback only.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The address to listen on (UDP), e.g. `0.0.0.0:7878`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The cluster secret clients must prove; `None` accepts any client, and is refused
    /// unless `listen` is a loopback address.
    pub secret: Option<ClusterSecret>,
    /// The number of workers; default: one per available CPU.
    pub workers: usize,
    /// Where compiled code is cached; `None`: the user's cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Where to look for components' code compiled ahead and shipped with the program (the
    /// Python wheel's runner), after the disk cache and before compiling: see
    /// [`ServerBuilder::shipped_code_dir`](crate::ServerBuilder::shipped_code_dir).
    /// Default: none.
    pub shipped_code_dir: Option<PathBuf>,
    /// The program that code ships with, whose file says how open the code may be: see
    /// [`ServerBuilder::shipped_with`](crate::ServerBuilder::shipped_with). Only with
    /// `shipped_code_dir`. Default: none.
    pub shipped_with: Option<PathBuf>,
    /// Where the node keeps its certificate and key (its identity, which clients see),
    /// locked while the node runs: one node per directory. `None`: a directory per listen
    /// address in the user's data directory (`wasp/node/<ip>-<port>`), or, for a node on
    /// port 0, an identity for this run only.
    pub identity_dir: Option<PathBuf>,
    /// How long running jobs may take to finish at shutdown before they are handed back.
    pub drain_timeout: Duration,
    /// How long a client may stay silent before the node drops it.
    pub client_timeout: Duration,
    /// Where to announce the node (multicast groups, broadcast addresses, hosts); empty if
    /// it is not discoverable. See [`crate::discovery`]. Requires a secret.
    pub announce_to: Vec<SocketAddr>,
    /// The address of the interface multicast announcements leave by; unspecified: the one
    /// the routing table picks for the group.
    pub announce_interface: Ipv4Addr,
    /// How often to announce it.
    pub announce_interval: Duration,
    /// What clients and their jobs may ask of the node.
    pub policy: NodePolicy,
    /// The HTTP monitor (metrics, probes, status, dashboard), if wanted. Default: none.
    pub monitor: Option<MonitorConfig>,
    /// A rendezvous directory to write the node's address in while it serves (see
    /// [`rendezvous`](crate::rendezvous)): clients given `dir:DIR` find it there.
    pub rendezvous: Option<PathBuf>,
    /// Where the node may pull modules from itself, by digest, when a client says a module
    /// is in a registry the puller names (see [`ModulePuller`]). Default: none, every
    /// module comes from its client.
    pub puller: Option<Arc<dyn ModulePuller>>,
}

impl NodeConfig {
    /// A node listening on `listen`, requiring `secret` (or none: see [`NodeConfig::secret`]).
    pub fn new(listen: SocketAddr, secret: Option<ClusterSecret>) -> Self {
        NodeConfig {
            listen,
            secret,
            workers: crate::default_workers(),
            cache_dir: None,
            shipped_code_dir: None,
            shipped_with: None,
            identity_dir: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            client_timeout: TransportSettings::default().idle_timeout,
            announce_to: Vec::new(),
            announce_interface: Ipv4Addr::UNSPECIFIED,
            announce_interval: crate::discovery::DEFAULT_ANNOUNCE_INTERVAL,
            policy: NodePolicy::default(),
            monitor: None,
            rendezvous: None,
            puller: None,
        }
    }
}

/// Why a node could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// `--insecure` was asked on an address other than loopback.
    #[error(
        "a node without a cluster secret listens on loopback only; {0} is not loopback \
         (create a secret with `wasp secret new > cluster.key` and pass --secret-file)"
    )]
    InsecureNotLoopback(SocketAddr),
    /// A node without a secret cannot sign announcements.
    #[error("a discoverable node needs the cluster secret, to sign its announcements")]
    DiscoverableInsecure,
    /// The announcement socket could not be made.
    #[error("cannot announce the node to {address}: {error}")]
    Announce {
        /// Where announcements were to go.
        address: SocketAddr,
        /// Why not.
        error: std::io::Error,
    },
    /// No identity directory was given and the user has no data directory.
    #[error("no directory for the node's identity: give one with --identity-dir")]
    NoIdentityDir,
    /// Another node process uses the identity directory.
    #[error(
        "another wasp node uses the identity in {}: give this node its own --identity-dir \
         (two nodes presenting one identity would be one node to their clients)",
        .0.display()
    )]
    IdentityInUse(PathBuf),
    /// The worker pool could not be built. (Not a `#[source]`: the message already says
    /// why, and error reports would print it twice.)
    #[error("could not start the worker pool: {0}")]
    Pool(ConfigError),
    /// The certificate, the TLS configuration or the socket failed.
    #[error("{0}")]
    Net(String),
    /// The monitor could not start.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// The node's address could not be written in its rendezvous directory.
    #[error("cannot write the node's address in {}: {error}", .dir.display())]
    Rendezvous {
        /// The directory.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl From<ConfigError> for NodeError {
    fn from(error: ConfigError) -> Self {
        NodeError::Pool(error)
    }
}

impl From<NetError> for NodeError {
    fn from(error: NetError) -> Self {
        match error {
            NetError::IdentityInUse { dir } => NodeError::IdentityInUse(dir),
            error => NodeError::Net(error.to_string()),
        }
    }
}

/// A bound node, ready to [`run`](Node::run).
#[derive(Debug)]
pub struct Node {
    endpoint: quinn::Endpoint,
    /// The worker count asked for at run time (see [`Node::workers_control`]).
    workers: watch::Sender<u32>,
    /// A socket per place announcements go to; none if the node is not discoverable.
    announcers: Vec<(tokio::net::UdpSocket, SocketAddr)>,
    /// How often announcements are sent.
    announce_interval: Duration,
    context: Arc<NodeContext>,
    drain_timeout: Duration,
    /// The HTTP monitor, serving until the node has drained.
    monitor: Option<Monitor>,
    /// The node's address in its rendezvous directory, withdrawn when it drains.
    published: Option<Published>,
    /// Held while the node runs: no other node uses its identity.
    _identity_lock: Option<IdentityLock>,
}

/// Changes a running node's worker count: see [`Node::workers_control`].
#[derive(Debug, Clone)]
pub struct WorkersControl(watch::Sender<u32>);

impl WorkersControl {
    /// Asks the node for `workers` workers (at least one).
    pub fn set(&self, workers: u32) {
        self.0.send_replace(workers.max(1));
    }
}

/// What every connection of a node shares.
#[derive(Debug)]
struct NodeContext {
    server: Arc<Server>,
    /// The modules the server is preparing (compiling, or loading from disk): each
    /// connection tells its client of those its jobs use.
    preparations: broadcast::Sender<(WireHash, Preparation)>,
    modules: ModuleStore,
    /// The values clients sent, shared by all of them.
    data: data::DataStore,
    policy: NodePolicy,
    secret: Option<ClusterSecret>,
    info: NodeInfo,
    /// Fetches modules from the registries in `info.pulls_from`, if any.
    puller: Option<Arc<dyn ModulePuller>>,
    /// Clients, refusals, hand-backs, draining: for the monitor.
    counters: NodeCounters,
}

impl NodeContext {
    /// The node's part of the monitor's status.
    fn status(&self) -> NodeStatus {
        let (stored, bytes) = self.modules.size();
        let (data_stored, data_bytes, data_received) = self.data.size();
        let mut status = NodeStatus {
            modules_stored: stored as u64,
            module_store_bytes: bytes,
            modules_received: self.modules.received(),
            data_stored: data_stored as u64,
            data_store_bytes: data_bytes,
            data_received,
            ..NodeStatus::default()
        };
        self.counters
            .fill(&mut status, |group| self.server.progress(group));
        status
    }
}

/// The phases of a node's life, as its connections see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Taking jobs.
    Serving,
    /// Shutting down: running jobs finish, new ones are handed back.
    Draining,
    /// Every job has finished or been handed back: flush and close.
    Closing,
}

impl Node {
    /// Loads (or creates) the node's identity, starts its worker pool, and binds its
    /// endpoint. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`NodeError`]: an insecure node off loopback, an identity that cannot be read or
    /// written, a pool that cannot start, an address that cannot be bound.
    pub fn bind(config: NodeConfig) -> Result<Node, NodeError> {
        if config.secret.is_none() && !config.listen.ip().is_loopback() {
            return Err(NodeError::InsecureNotLoopback(config.listen));
        }
        if !config.announce_to.is_empty() && config.secret.is_none() {
            return Err(NodeError::DiscoverableInsecure);
        }
        if config.workers == 0 {
            return Err(NodeError::Pool(ConfigError::Invalid {
                setting: "workers",
                why: "a node needs at least one worker".into(),
            }));
        }
        let (identity, identity_lock) = load_identity(&config)?;
        let mut builder = Server::builder().workers(config.workers);
        if let Some(dir) = &config.cache_dir {
            builder = builder.cache_dir(dir);
        }
        if let Some(dir) = &config.shipped_code_dir {
            builder = builder.shipped_code_dir(dir);
        }
        if let Some(program) = &config.shipped_with {
            builder = builder.shipped_with(program);
        }
        let server = builder.build()?;
        let (preparations, _) = broadcast::channel(PREPARATION_EVENTS);
        let sender = preparations.clone();
        server.observe_preparations(Box::new(move |hash, what| {
            // None listening (no client) is fine.
            let _ = sender.send((*hash.as_bytes(), what));
        }));
        let transport = TransportSettings {
            heartbeat: config.client_timeout / 4,
            idle_timeout: config.client_timeout,
        };
        let endpoint = net::node_endpoint(config.listen, &identity, &transport)?;
        let announcers = config
            .announce_to
            .iter()
            .map(|&address| {
                crate::discovery::sender(address, config.announce_interface)
                    .map(|socket| (socket, address))
                    .map_err(|error| NodeError::Announce { address, error })
            })
            .collect::<Result<_, _>>()?;
        let info = NodeInfo {
            id: identity.fingerprint().to_string(),
            arch: std::env::consts::ARCH.to_string(),
            os: std::env::consts::OS.to_string(),
            workers: u32::try_from(config.workers).unwrap_or(u32::MAX),
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_module_size: config.policy.max_module_size,
            pulls_from: config
                .puller
                .as_ref()
                .map(|puller| puller.scopes())
                .unwrap_or_default(),
        };
        let context = Arc::new(NodeContext {
            server: Arc::new(server),
            preparations,
            modules: ModuleStore::new(config.policy.max_modules, config.policy.max_module_bytes),
            data: data::DataStore::new(config.policy.max_data_bytes),
            policy: config.policy,
            secret: config.secret,
            info,
            puller: config.puller,
            counters: NodeCounters::default(),
        });
        let monitor = config
            .monitor
            .as_ref()
            .map(|monitor| {
                let status = context.clone();
                let sources = Sources {
                    view: context.server.view(),
                    node: Some(Arc::new(move || status.status())),
                };
                Monitor::start(monitor, sources)
            })
            .transpose()?;
        let published = config
            .rendezvous
            .as_ref()
            .map(|dir| {
                let address = rendezvous::reachable(endpoint.local_addr()?);
                Published::new(dir, &context.info.id, address)
            })
            .transpose()
            .map_err(|error| NodeError::Rendezvous {
                dir: config.rendezvous.clone().unwrap_or_default(),
                error,
            })?;
        Ok(Node {
            endpoint,
            workers: watch::channel(context.info.workers).0,
            published,
            announcers,
            announce_interval: config.announce_interval,
            context,
            drain_timeout: config.drain_timeout,
            monitor,
            _identity_lock: identity_lock,
        })
    }

    /// The address the node listens on (with the port chosen, if 0 was asked).
    ///
    /// # Errors
    /// If the socket's address cannot be read.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// A handle to change the node's worker count while it runs (as `wasp node` does on
    /// SIGHUP). Connected clients are told, and their scheduling follows.
    pub fn workers_control(&self) -> WorkersControl {
        WorkersControl(self.workers.clone())
    }

    /// The address the node's monitor listens on, if it has one (with the port chosen, if
    /// 0 was asked).
    pub fn monitor_address(&self) -> Option<SocketAddr> {
        self.monitor.as_ref().map(Monitor::address)
    }

    /// The node's stable identity: the blake3 fingerprint of its certificate.
    pub fn id(&self) -> &str {
        &self.context.info.id
    }

    /// Serves clients until `shutdown` completes, then drains: clients are told to send
    /// nothing more, running jobs get up to the drain timeout to finish, and the jobs left
    /// are handed back to their clients, which run them elsewhere.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let (phase, watch_phase) = watch::channel(Phase::Serving);
        let mut workers = self.workers.subscribe();
        let mut connections = JoinSet::new();
        let announcing = (!self.announcers.is_empty()).then(|| {
            let announcers = std::mem::take(&mut self.announcers);
            tokio::spawn(self.announce(announcers))
        });
        tokio::pin!(shutdown);
        info!(address = ?self.endpoint.local_addr().ok(), id = %self.context.info.id, workers = self.context.info.workers, "node serving");
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                incoming = self.endpoint.accept() => match incoming {
                    Some(incoming) if !incoming.remote_address_validated() => {
                        // QUIC Retry: a peer proves it receives at its address (one round
                        // trip, no state kept here) before it costs a handshake or a client
                        // slot, so spoofed addresses cannot fill `max_clients`.
                        if let Err(err) = incoming.retry() {
                            err.into_incoming().refuse();
                        }
                    }
                    Some(incoming) if connections.len() >= self.context.policy.max_clients => {
                        // Refused before any cryptography: a flood costs the node little.
                        debug!(remote = %incoming.remote_address(), max = self.context.policy.max_clients, "refused a connection: too many clients");
                        self.context.counters.refused(Refused::TooManyClients);
                        incoming.refuse();
                    }
                    Some(incoming) => {
                        let context = self.context.clone();
                        let span = info_span!("client", remote = %incoming.remote_address());
                        let serve = connection::serve(
                            incoming,
                            context,
                            watch_phase.clone(),
                            self.workers.subscribe(),
                        );
                        connections.spawn(serve.instrument(span));
                    }
                    None => break,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                Ok(()) = workers.changed() => {
                    let count = *workers.borrow_and_update();
                    self.resize(count).await;
                }
            }
        }
        if let Some(announcing) = announcing {
            // A draining node must not attract new clients.
            announcing.abort();
        }
        self.drain(phase, connections).await;
    }

    /// Grows or shrinks the pool; connections tell their clients (they watch the count).
    async fn resize(&self, count: u32) {
        let server = self.context.server.clone();
        let resized = tokio::task::spawn_blocking(move || server.set_workers(count as usize)).await;
        match resized {
            Ok(Ok(())) => info!(workers = count, "worker count changed"),
            Ok(Err(error)) => warn!(workers = count, %error, "cannot change the worker count"),
            Err(error) => warn!(%error, "cannot change the worker count"),
        }
    }

    /// Announces the node to each of `announcers`' targets until aborted, with its worker
    /// count as it is at each announcement (it follows resizes).
    fn announce(
        &self,
        announcers: Vec<(tokio::net::UdpSocket, SocketAddr)>,
    ) -> impl Future<Output = ()> + use<> {
        let info = &self.context.info;
        let local = self.endpoint.local_addr();
        let secret = self.context.secret.clone();
        let interval = self.announce_interval;
        let workers = self.workers.subscribe();
        let announcement = local
            .ok()
            .map(|address| crate::discovery::announce::Announcement {
                id: info.id.clone(),
                address,
                arch: info.arch.clone(),
                workers: info.workers,
                sent_at_ms: 0,
                nonce: [0; 16],
            });
        async move {
            let (Some(secret), Some(mut announcement)) = (secret, announcement) else {
                return;
            };
            for (_, target) in &announcers {
                info!(%target, "announcing the node");
            }
            // Whether the last send to each target failed: say so once, not every tick.
            let mut failing = vec![false; announcers.len()];
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                announcement.workers = *workers.borrow();
                for ((socket, target), failing) in announcers.iter().zip(&mut failing) {
                    let sent =
                        crate::discovery::announce_once(socket, *target, &secret, &announcement)
                            .await;
                    match &sent {
                        Err(error) if !*failing => {
                            warn!(%target, %error, "could not send an announcement");
                        }
                        Ok(()) if *failing => info!(%target, "announcements go through again"),
                        _ => {}
                    }
                    *failing = sent.is_err();
                }
            }
        }
    }

    async fn drain(mut self, phase: watch::Sender<Phase>, mut connections: JoinSet<()>) {
        info!("shutting down: draining jobs");
        // Clients reading the rendezvous directory must not come to a draining node.
        if let Some(published) = &mut self.published {
            published.withdraw();
        }
        self.context.counters.set_draining();
        // No new clients from now on: refused at once, so that they try elsewhere.
        let endpoint = self.endpoint.clone();
        let context = self.context.clone();
        let refuser = tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                context.counters.refused(Refused::Draining);
                incoming.refuse();
            }
        });
        let _ = phase.send(Phase::Draining);
        // Queued jobs go back to their clients at once, to run elsewhere; running ones get
        // the drain timeout to finish.
        let server = self.context.server.clone();
        let _ = tokio::task::spawn_blocking(move || {
            server.cancel_pending("handed back: the node is shutting down");
        })
        .await;
        let server = self.context.server.clone();
        let timeout = self.drain_timeout;
        let left = tokio::task::spawn_blocking(move || server.wait_all_timeout(timeout).pending())
            .await
            .unwrap_or(0);
        if left > 0 {
            warn!(
                jobs = left,
                "jobs still running after the drain timeout: handing them back"
            );
        }
        // Queued jobs complete as cancelled, and their connections hand them back.
        let server = self.context.server.clone();
        let _ = tokio::task::spawn_blocking(move || server.shutdown()).await;
        let _ = phase.send(Phase::Closing);
        let closing = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(3), closing)
            .await
            .is_err()
        {
            warn!("some clients did not close in time");
        }
        refuser.abort();
        self.endpoint.close(
            quinn::VarInt::from_u32(CloseCode::Shutdown.code()),
            b"node shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        info!(
            modules_received = self.context.modules.received(),
            "node stopped"
        );
    }
}

/// The node's identity: from its directory (locked while the node runs), or, for a node on
/// an ephemeral port without a directory, one for this run only.
fn load_identity(config: &NodeConfig) -> Result<(NodeIdentity, Option<IdentityLock>), NodeError> {
    let dir = match &config.identity_dir {
        Some(dir) => dir.clone(),
        None if config.listen.port() == 0 => return Ok((NodeIdentity::generate()?, None)),
        None => net::default_dir_for(config.listen).ok_or(NodeError::NoIdentityDir)?,
    };
    let lock = IdentityLock::acquire(&dir)?;
    Ok((NodeIdentity::load_or_create(&dir)?, Some(lock)))
}
