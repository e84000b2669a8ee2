//! The wasp handshake over a QUIC connection: the async drivers of the pure functions of
//! [`wasp_proto::handshake`].
//!
//! The client opens the first bidirectional stream and sends its hello; the node reads
//! exactly one hello (nothing more from a peer not yet authenticated), answers with its own,
//! and both check. The stream then carries frames. A refusing side closes the connection
//! with the refusal's [`CloseCode`] and its message, after the node has let its answer reach
//! the client, so that both sides can say why.

use crate::secret::{ClusterSecret, Role};
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use std::time::Duration;
use wasp_proto::CloseCode;
use wasp_proto::handshake::{
    BINDING_LEN, EXPORTER_LABEL, HELLO_LEN, HandshakeParseError, Hello, Refusal, check_node_hello,
    client_hello, node_verdict,
};

/// How long a refusing node waits for its answer to be acknowledged before it closes the
/// connection, so that the client learns why (closing discards unsent data).
const REFUSAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// This side refused the peer, or read the peer's refusal in its answer.
    #[error("{0}")]
    Refused(Refusal),
    /// The peer closed the connection before the handshake was over, usually because it
    /// refused this side.
    #[error("the {peer} closed the connection: {}", describe_close(.code, .reason))]
    ClosedByPeer {
        /// Who closed (the other side).
        peer: &'static str,
        /// Why, if the code is one of wasp's.
        code: Option<CloseCode>,
        /// The peer's message.
        reason: String,
    },
    /// The peer's hello is not a wasp hello.
    #[error("bad handshake: {0}")]
    Garbage(HandshakeParseError),
    /// The connection failed (lost, timed out, closed locally).
    #[error("connection lost during the handshake: {0}")]
    Connection(ConnectionError),
    /// The handshake stream failed: reset, ended early, or keying material unavailable.
    #[error("handshake failed: {0}")]
    Stream(String),
}

/// The client's side: proves `secret` (if any), and checks that the node proves it too.
/// Returns the stream that carries frames from then on.
///
/// # Errors
/// [`HandshakeError::Refused`] if either side refused (the connection is then closed with the
/// refusal's code); [`HandshakeError::ClosedByPeer`] if the node closed first; other variants
/// if the node does not speak wasp or the connection fails.
pub(crate) async fn client_handshake(
    conn: &Connection,
    secret: Option<&ClusterSecret>,
) -> Result<(SendStream, RecvStream), HandshakeError> {
    let binding = binding(conn)?;
    let hello = client_hello(secret, &binding);
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|err| closed(err, Role::Node))?;
    write_hello(&mut send, &hello, Role::Node).await?;
    let answer = read_hello(conn, &mut recv, Role::Node).await?;
    if let Err(refusal) = check_node_hello(&answer, secret, &binding) {
        close(conn, refusal.close_code(), &refusal.to_string());
        return Err(HandshakeError::Refused(refusal));
    }
    Ok((send, recv))
}

/// The node's side: reads the client's hello on the first bidirectional stream, answers
/// with its verdict and its own proof of `secret` (if any). Returns the stream that carries
/// frames from then on.
///
/// It does not time out: a client that never sends its hello holds it until the idle
/// timeout, so the caller bounds it.
///
/// # Errors
/// [`HandshakeError::Refused`] if the node refused the client (the connection is then closed
/// with the refusal's code, after the answer is sent); [`HandshakeError::Garbage`] if the
/// client's hello is not one (closed with [`CloseCode::Protocol`]); other variants if the
/// connection fails.
pub(crate) async fn node_handshake(
    conn: &Connection,
    secret: Option<&ClusterSecret>,
) -> Result<(SendStream, RecvStream), HandshakeError> {
    let binding = binding(conn)?;
    let (mut send, mut recv) = conn
        .accept_bi()
        .await
        .map_err(|err| closed(err, Role::Client))?;
    let hello = read_hello(conn, &mut recv, Role::Client).await?;
    let (answer, verdict) = node_verdict(&hello, secret, &binding);
    if verdict.is_ok() {
        // Before the answer: the client may send jobs as soon as it has it.
        super::tls::open_up(conn);
    }
    write_hello(&mut send, &answer, Role::Client).await?;
    if let Err(refusal) = verdict {
        // Close only once the client has the answer: it says more than a close reason, and a
        // close discards what is not yet delivered. A client that refuses in turn closes
        // first, which ends the wait too.
        if send.finish().is_ok() {
            let _ = tokio::time::timeout(REFUSAL_FLUSH_TIMEOUT, send.stopped()).await;
        }
        close(conn, refusal.close_code(), &refusal.to_string());
        return Err(HandshakeError::Refused(refusal));
    }
    Ok((send, recv))
}

/// The keying material of the connection's TLS session that proofs are bound to.
fn binding(conn: &Connection) -> Result<[u8; BINDING_LEN], HandshakeError> {
    let mut binding = [0; BINDING_LEN];
    conn.export_keying_material(&mut binding, EXPORTER_LABEL, b"")
        .map_err(|_| HandshakeError::Stream("could not export TLS keying material".into()))?;
    Ok(binding)
}

async fn write_hello(
    send: &mut SendStream,
    hello: &Hello,
    peer: Role,
) -> Result<(), HandshakeError> {
    send.write_all(&hello.encode())
        .await
        .map_err(|err| match err {
            quinn::WriteError::ConnectionLost(err) => closed(err, peer),
            other => HandshakeError::Stream(format!("could not send the hello: {other}")),
        })
}

/// Reads exactly one hello; if it is not one, closes the connection with
/// [`CloseCode::Protocol`].
async fn read_hello(
    conn: &Connection,
    recv: &mut RecvStream,
    peer: Role,
) -> Result<Hello, HandshakeError> {
    let mut bytes = [0; HELLO_LEN];
    recv.read_exact(&mut bytes).await.map_err(|err| match err {
        quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(err)) => {
            closed(err, peer)
        }
        quinn::ReadExactError::FinishedEarly(len) => HandshakeError::Stream(format!(
            "the {} ended the handshake after {len} of {HELLO_LEN} bytes",
            name(peer)
        )),
        quinn::ReadExactError::ReadError(err) => {
            HandshakeError::Stream(format!("could not read the hello: {err}"))
        }
    })?;
    Hello::parse(&bytes).map_err(|err| {
        close(conn, CloseCode::Protocol, &format!("bad handshake: {err}"));
        HandshakeError::Garbage(err)
    })
}

/// The error for a connection that ended during the handshake: the peer's close, with its
/// reason, if it closed it.
fn closed(err: ConnectionError, peer: Role) -> HandshakeError {
    match err {
        ConnectionError::ApplicationClosed(close) => HandshakeError::ClosedByPeer {
            peer: name(peer),
            code: CloseCode::from_code(close.error_code.into_inner()),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        other => HandshakeError::Connection(other),
    }
}

fn close(conn: &Connection, code: CloseCode, reason: &str) {
    conn.close(VarInt::from_u32(code.code()), reason.as_bytes());
}

fn name(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Node => "node",
    }
}

/// A peer's close, for a message: what the code means, then the peer's reason.
fn describe_close(code: &Option<CloseCode>, reason: &str) -> String {
    let meaning = match code {
        Some(CloseCode::Normal) => "closed",
        Some(CloseCode::Protocol) => "protocol error",
        Some(CloseCode::Version) => "protocol version mismatch",
        Some(CloseCode::Auth) => "authentication failed",
        Some(CloseCode::Shutdown) => "shutting down",
        None => "unknown close code",
    };
    if reason.is_empty() {
        meaning.to_owned()
    } else {
        format!("{meaning}: {reason}")
    }
}
