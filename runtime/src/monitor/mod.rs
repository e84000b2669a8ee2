//! The monitor: one HTTP listener per server or node (opt-in) serving
//!
//! * `GET /metrics`: Prometheus metrics (the text exposition, encoded by
//!   `prometheus-client`);
//! * `GET /livez` (also `/healthz`) and `GET /readyz`: probes for orchestrators. Live while
//!   the process serves HTTP; ready while it accepts work (a draining node is not);
//! * `GET /api/v1/status`: the state as JSON, in aggregates (see the README);
//! * `GET /`: the live dashboard, a page embedded in the binary that polls the status.
//!
//! The listener binds to loopback unless told otherwise, and then a bearer token is
//! required for everything but the probes ([`MonitorConfig::public`]). It runs on a thread
//! of its own with a current-thread tokio runtime: scrapes never touch a worker, and a job
//! never waits for the monitor (the scheduler records under locks it takes anyway).

mod connections;
mod http;
pub(crate) mod prometheus;
pub(crate) mod status;
pub(crate) mod view;

use crate::ClusterSecret;
pub use crate::error::MonitorError;
use status::NodeStatus;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use view::ServerView;

/// Where and how the monitor listens: see [`ServerBuilder::monitor`] and
/// [`NodeConfig::monitor`].
///
/// [`ServerBuilder::monitor`]: crate::ServerBuilder::monitor
/// [`NodeConfig::monitor`]: crate::NodeConfig::monitor
#[derive(Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
}

impl std::fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// The shortest bearer token accepted: guessing it must be out of reach.
pub const MIN_TOKEN_LEN: usize = 16;

impl MonitorConfig {
    /// A monitor on `listen`, which must be a loopback address (port 0 picks one): nobody
    /// but this machine's users can reach it, and no token is asked.
    pub fn new(listen: SocketAddr) -> Self {
        MonitorConfig {
            listen,
            token: None,
        }
    }

    /// A monitor on any address, `0.0.0.0:9464` say: everything but the probes
    /// (`/livez`, `/healthz`, `/readyz`) requires `token`, given as
    /// `Authorization: Bearer <token>`, or once as `?token=<token>` in a browser (which
    /// then keeps it in a cookie). See [`MonitorConfig::token_from_secret`].
    pub fn public(listen: SocketAddr, token: impl Into<String>) -> Self {
        MonitorConfig {
            listen,
            token: Some(token.into()),
        }
    }

    /// The bearer token derived from the cluster secret: every holder of the secret can
    /// compute it (`wasp secret token`), and it reveals nothing of the secret.
    pub fn token_from_secret(secret: &ClusterSecret) -> String {
        secret.derive_token("wasp monitor bearer token v1")
    }

    /// The address asked for.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    fn check(&self) -> Result<(), MonitorError> {
        match &self.token {
            None if !self.listen.ip().is_loopback() => {
                Err(MonitorError::TokenRequired(self.listen))
            }
            Some(token) if token.len() < MIN_TOKEN_LEN => {
                Err(MonitorError::WeakToken { min: MIN_TOKEN_LEN })
            }
            _ => Ok(()),
        }
    }
}

/// What a node tells its monitor, read at each request.
pub(crate) type NodeSource = Arc<dyn Fn() -> NodeStatus + Send + Sync>;

/// What the monitor reads.
pub(crate) struct Sources {
    pub(crate) view: ServerView,
    /// The node's own part, on a node.
    pub(crate) node: Option<NodeSource>,
}

impl Sources {
    /// Whether the process accepts work: a draining node does not.
    pub(crate) fn ready(&self) -> bool {
        self.node.as_ref().is_none_or(|node| !node().draining)
    }
}

/// A running monitor; dropping it stops it.
pub(crate) struct Monitor {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// Binds `config`'s address and serves `sources` from a thread of its own.
    pub(crate) fn start(config: &MonitorConfig, sources: Sources) -> Result<Self, MonitorError> {
        config.check()?;
        let bind_error = |error| MonitorError::Bind {
            address: config.listen,
            error,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let served = http::Served::new(sources, config.token.as_deref());
        let thread = std::thread::Builder::new()
            .name("wasp-monitor".into())
            .spawn(move || http::run(listener, served, stopped))
            .map_err(MonitorError::Thread)?;
        tracing::info!(%address, "monitor listening: /metrics, /livez, /readyz, /api/v1/status, /");
        Ok(Monitor {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (with the port chosen, if 0 was asked).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;
