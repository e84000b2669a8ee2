//! [`NetError`]: why a node identity, a QUIC configuration, an endpoint or a connection
//! could not be made.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the transport could not be set up.
///
/// Handshake failures have their own type,
/// [`HandshakeError`](super::handshake::HandshakeError), because they are what a peer did,
/// not what went wrong here.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetError {
    /// A file or directory of the node identity could not be read or written.
    #[error("could not {action} {}: {error}", path.display())]
    Io {
        /// What was being done ("read", "create the directory", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        error: io::Error,
    },
    /// A file of the node identity exists but does not hold what it should. It is not
    /// replaced silently: the node's fingerprint is its identity, and a new one would be a
    /// different node to every client that knows it.
    #[error(
        "{} is not a valid node {what}: {reason}; delete the node-*.der files of that \
         directory to give this node a new identity",
        path.display()
    )]
    BadIdentity {
        /// The file.
        path: PathBuf,
        /// What the file should hold ("certificate", "private key").
        what: &'static str,
        /// Why it does not.
        reason: String,
    },
    /// Another node process on this host uses the identity directory.
    #[error(
        "another wasp node uses the identity in {}: give this node its own --identity-dir \
         (two nodes presenting one identity would be one node to their clients)",
        dir.display()
    )]
    IdentityInUse {
        /// The directory.
        dir: PathBuf,
    },
    /// The self-signed certificate of a new identity could not be generated.
    #[error("could not generate the node certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the TLS configuration.
    #[error("invalid TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration has no cipher suite QUIC can use.
    #[error("invalid QUIC TLS configuration: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The UDP socket could not be bound.
    #[error("could not listen on UDP {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        error: io::Error,
    },
    /// The connection could not be started (bad address, no client configuration, ...).
    #[error("could not connect to {peer}: {error}")]
    Connect {
        /// The node's address.
        peer: SocketAddr,
        /// quinn's reason.
        error: quinn::ConnectError,
    },
    /// The QUIC or TLS handshake with the node failed (unreachable, timed out, refused).
    #[error("could not connect to {peer}: {error}")]
    Connection {
        /// The node's address.
        peer: SocketAddr,
        /// quinn's reason.
        error: quinn::ConnectionError,
    },
}
