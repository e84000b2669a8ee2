//! QUIC endpoints: a node's, which accepts connections, and a client's, which makes them.

use super::{NetError, NodeIdentity, SERVER_NAME, TransportSettings, client_config, server_config};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// A node's endpoint, listening on `addr` with `identity`.
///
/// Must be called inside a tokio runtime, which drives the endpoint from then on.
///
/// # Errors
/// [`NetError::Bind`] if the address cannot be bound; [`NetError::Tls`] if the identity is
/// refused.
pub(crate) fn node_endpoint(
    addr: SocketAddr,
    identity: &NodeIdentity,
    transport: &TransportSettings,
) -> Result<quinn::Endpoint, NetError> {
    let config = server_config(identity, transport)?;
    quinn::Endpoint::server(config, addr).map_err(|error| NetError::Bind { addr, error })
}

/// A client's endpoint for connecting to `peer`: bound to an ephemeral port on the unspecified
/// address of `peer`'s family (a socket bound to IPv4 cannot reach an IPv6 peer, and an IPv6
/// socket reaches IPv4 only where dual-stack is on), with the client configuration as default.
///
/// Must be called inside a tokio runtime. One endpoint can connect to several nodes of the
/// same family.
///
/// # Errors
/// [`NetError::Bind`] if no socket can be bound.
pub(crate) fn client_endpoint(
    peer: SocketAddr,
    transport: &TransportSettings,
) -> Result<quinn::Endpoint, NetError> {
    let addr = match peer {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let config = client_config(transport)?;
    let mut endpoint =
        quinn::Endpoint::client(addr).map_err(|error| NetError::Bind { addr, error })?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// Connects to the node at `peer` with the endpoint's default client configuration, up to
/// the end of the TLS handshake. The wasp handshake comes next
/// ([`client_handshake`](super::client_handshake)).
///
/// # Errors
/// [`NetError::Connect`] if the connection cannot start; [`NetError::Connection`] if it
/// fails (no answer within the idle timeout, TLS failure, refused).
pub(crate) async fn connect(
    endpoint: &quinn::Endpoint,
    peer: SocketAddr,
) -> Result<quinn::Connection, NetError> {
    endpoint
        .connect(peer, SERVER_NAME)
        .map_err(|error| NetError::Connect { peer, error })?
        .await
        .map_err(|error| NetError::Connection { peer, error })
}
