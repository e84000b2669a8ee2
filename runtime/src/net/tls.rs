//! The QUIC and TLS configurations of nodes and clients.
//!
//! Nodes present a self-signed certificate ([`NodeIdentity`]) and clients accept any, because
//! peers are authenticated by the cluster-secret proofs of the wasp handshake, which are bound
//! to the TLS session (see `crate::secret`), not by a PKI. TLS still does two jobs: it
//! encrypts, and its handshake proves that the node holds the key of the certificate it
//! presents, so the certificate's fingerprint is a name the node cannot forge.

use super::{NetError, NodeIdentity, fingerprint};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use wasp_proto::ALPN;

/// The server name clients ask for. All nodes answer to it; it is not checked.
pub(crate) const SERVER_NAME: &str = "wasp-node";

/// The receive window of one stream. Jobs and results are pipelined over a single stream, so
/// it must hold many frames in flight, not one.
const STREAM_RECEIVE_WINDOW: u32 = 16 << 20;

/// The receive window of a connection: the job stream plus module streams.
const CONNECTION_RECEIVE_WINDOW: u32 = 64 << 20;

/// Bidirectional streams a peer may open: the wasp handshake opens one; the rest is slack.
const MAX_BIDI_STREAMS: u32 = 4;

/// What a node lets a peer that has not proved the secret send: one stream (the hello's),
/// and this many bytes on the whole connection, so that a stranger makes it buffer little.
/// [`open_up`] grants the full windows after the handshake.
const UNAUTHENTICATED_RECEIVE_WINDOW: u32 = 64 << 10;

/// Unidirectional streams a peer may have open: one per module in transit.
const MAX_UNI_STREAMS: u32 = 64;

/// How the connections of a node or client keep alive and notice a dead peer.
#[derive(Debug, Clone)]
pub(crate) struct TransportSettings {
    /// How often a keep-alive is sent on an idle connection.
    pub(crate) heartbeat: Duration,
    /// How long without hearing from the peer before the connection is considered lost.
    /// Must be a few heartbeats, so one lost packet does not drop a node.
    pub(crate) idle_timeout: Duration,
}

impl Default for TransportSettings {
    /// A heartbeat every second, lost after five silent seconds.
    fn default() -> Self {
        TransportSettings {
            heartbeat: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
        }
    }
}

/// The quinn transport configuration for `settings`, the same on both sides.
pub(crate) fn transport_config(settings: &TransportSettings) -> TransportConfig {
    // A timeout beyond QUIC's range (2^62 ms) is as good as none.
    let idle_timeout = IdleTimeout::try_from(settings.idle_timeout)
        .unwrap_or_else(|_| IdleTimeout::from(VarInt::MAX));
    let mut config = TransportConfig::default();
    config
        .keep_alive_interval(Some(settings.heartbeat))
        .max_idle_timeout(Some(idle_timeout))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .send_window(u64::from(CONNECTION_RECEIVE_WINDOW));
    config
}

/// A node's configuration: TLS 1.3 with its identity, no client certificates, wasp's ALPN.
///
/// # Errors
/// [`NetError::Tls`] if rustls refuses the identity.
pub(crate) fn server_config(
    identity: &NodeIdentity,
    transport: &TransportSettings,
) -> Result<quinn::ServerConfig, NetError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert().clone()], identity.key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = transport_config(transport);
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .receive_window(VarInt::from_u32(UNAUTHENTICATED_RECEIVE_WINDOW));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Grants an authenticated client (on a node) the full receive window and its module
/// streams, which a peer gets only once it has proved the secret.
pub(crate) fn open_up(connection: &quinn::Connection) {
    connection.set_receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW));
    connection.set_max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
}

/// A client's configuration: TLS 1.3, any node certificate (see [`AnyNodeCertificate`]),
/// wasp's ALPN, no session resumption.
///
/// # Errors
/// [`NetError::Tls`] if rustls refuses the configuration.
pub(crate) fn client_config(
    transport: &TransportSettings,
) -> Result<quinn::ClientConfig, NetError> {
    let provider = provider();
    let verifier = AnyNodeCertificate {
        algorithms: provider.signature_verification_algorithms,
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // Every node answers to the same server name, and a resumed session skips the
    // certificate: each connection does a full handshake, so the node proves anew that it
    // holds the key of the certificate whose fingerprint names it.
    tls.resumption = rustls::client::Resumption::disabled();
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(Arc::new(transport_config(transport)));
    Ok(config)
}

/// The fingerprint of the certificate the peer presented, if it presented one (a node always
/// does; clients never do). This, not the id a node announces in its welcome, is proven: the
/// node signed the TLS handshake with the certificate's key.
pub(crate) fn peer_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    certs.first().map(|cert| fingerprint(cert))
}

/// ring, the one crypto provider of wasp, named explicitly rather than taken from a
/// process-wide default that another crate could set.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate verifier that accepts any node certificate, since nodes are authenticated
/// by their proof of the cluster secret, bound to this TLS session, and not by a PKI. It
/// still verifies the handshake signature, so the node holds the certificate's key.
#[derive(Debug)]
struct AnyNodeCertificate {
    /// The provider's signature algorithms.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyNodeCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Unused (TLS 1.3 only), but verified all the same should that ever change.
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
