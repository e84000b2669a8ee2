//! [`Context`]: what every loop of the cluster shares, including its QUIC endpoints.

use super::ClusterConfig;
use super::nodes::NodeTable;
use crate::net::{self, NetError};
use crate::scheduler::pool::Shared;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a stopping client lets its endpoints send their last packets (the closes that
/// tell nodes to stop its jobs at once).
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// The shared state of a running cluster client.
pub(crate) struct Context {
    /// The server's queue and pool, where jobs come from and complete.
    pub(crate) shared: Arc<Shared>,
    /// Every node's row.
    pub(crate) nodes: Arc<NodeTable>,
    pub(crate) config: ClusterConfig,
    /// One endpoint (one UDP socket) per address family, made at the first connection of
    /// that family and used by every connection after it.
    endpoints: Mutex<Endpoints>,
}

#[derive(Default)]
struct Endpoints {
    v4: Option<quinn::Endpoint>,
    v6: Option<quinn::Endpoint>,
}

impl Context {
    pub(crate) fn new(shared: Arc<Shared>, nodes: Arc<NodeTable>, config: ClusterConfig) -> Self {
        Context {
            shared,
            nodes,
            config,
            endpoints: Mutex::new(Endpoints::default()),
        }
    }

    /// The endpoint to reach `peer` from: made once per address family. Must be called
    /// within the cluster's runtime, which drives it.
    ///
    /// # Errors
    /// [`NetError`] if no socket can be bound.
    pub(crate) fn endpoint(&self, peer: SocketAddr) -> Result<quinn::Endpoint, NetError> {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        endpoints.get(peer, &self.config.transport)
    }

    /// Lets the endpoints send the closes of the connections just closed, briefly.
    pub(crate) async fn close_endpoints(&self) {
        let endpoints: Vec<_> = {
            let endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
            [&endpoints.v4, &endpoints.v6]
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        };
        for endpoint in endpoints {
            let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
        }
    }
}

impl Endpoints {
    /// The endpoint of `peer`'s family, made on first use.
    fn get(
        &mut self,
        peer: SocketAddr,
        transport: &net::TransportSettings,
    ) -> Result<quinn::Endpoint, NetError> {
        let endpoint = if peer.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        if let Some(endpoint) = endpoint {
            return Ok(endpoint.clone());
        }
        let made = net::client_endpoint(peer, transport)?;
        *endpoint = Some(made.clone());
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault: each connection attempt bound a new UDP socket. All connections of one
    /// family now share one endpoint, whatever the node and however many attempts.
    #[test]
    fn connections_of_a_family_share_one_endpoint() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _inside = runtime.enter();
        let transport = net::TransportSettings::default();
        let mut endpoints = Endpoints::default();
        let first = endpoints
            .get("10.0.0.1:7878".parse().unwrap(), &transport)
            .unwrap();
        let port = first.local_addr().unwrap().port();
        for host in 2..20 {
            let peer = SocketAddr::from(([10, 0, 0, host], 7878));
            let again = endpoints.get(peer, &transport).unwrap();
            assert_eq!(again.local_addr().unwrap().port(), port);
        }
        assert!(endpoints.v6.is_none());
    }
}
