//! The cluster transport: QUIC connections between clients and nodes, and the wasp
//! handshake over them. This is where `proto` meets sockets; `cluster` and `node` build on it.
//!
//! * `identity`: a node's self-signed certificate and key, stable across restarts; its
//!   blake3 fingerprint names the node.
//! * `tls`: the quinn/rustls configurations. Certificates are not checked against any
//!   authority: peers prove the cluster secret, bound to the TLS session, in the handshake.
//! * `endpoint`: binding node and client endpoints, and connecting.
//! * `handshake`: the async drivers of `proto::handshake`.
//! * `framed`: `proto::codec` frames over quinn streams.

mod endpoint;
mod error;
mod framed;
mod handshake;
mod identity;
mod tls;

#[cfg(test)]
mod tests;

pub(crate) use endpoint::{client_endpoint, connect, node_endpoint};
pub(crate) use error::NetError;
#[cfg(test)]
pub(crate) use framed::read_one;
pub(crate) use framed::{FrameError, FramedRecv, read_end, read_head, write_all};
pub(crate) use handshake::{HandshakeError, client_handshake, node_handshake};
pub(crate) use identity::{IdentityLock, NodeIdentity, default_dir_for, fingerprint};
pub(crate) use tls::peer_fingerprint;
pub(crate) use tls::{SERVER_NAME, TransportSettings, client_config, server_config};
