/*!
The wire protocol of wasp, between a client and a node, as plain data and functions: no
sockets, no async runtime, no WebAssembly engine. The host library (`wasp`) feeds it bytes
from QUIC streams and sends what it encodes; the fuzzers and property tests use it alone.

```
use wasp_proto::codec::{FrameDecoder, MAX_FRAME_LEN, encode};
use wasp_proto::message::{ToNode, WireJobId};

// A client asks a node to stop two jobs: one frame, length-prefixed MessagePack.
let mut wire = bytes::BytesMut::new();
encode(&ToNode::Cancel { jobs: vec![7, 9] }, MAX_FRAME_LEN, &mut wire)?;

// The node's decoder takes bytes as they arrive and yields whole messages.
let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
decoder.extend(&wire);
let message: Option<ToNode> = decoder.decode()?;
assert_eq!(message, Some(ToNode::Cancel { jobs: vec![7 as WireJobId, 9] }));
# Ok::<(), wasp_proto::codec::ProtoError>(())
```

# The protocol

A connection is one QUIC connection. On its first bidirectional stream:

1. the client sends a fixed-layout [`handshake::Hello`] (magic, protocol version, and its
   proof of the cluster secret bound to the TLS session: [`secret`]);
2. the node checks it and answers with its own `Hello` (its verdict and its proof);
3. from then on both directions carry length-prefixed frames ([`codec`]) of
   [`message::ToNode`] and [`message::ToClient`], the node's first being
   [`ToClient::Welcome`](message::ToClient::Welcome).

Module bytes travel on unidirectional streams of their own, one frame each; so do values put
once (data), each a head frame followed by the value's raw bytes. A job's arguments may hold
references to such values ([`refs`]). A refused
connection is closed with a [`CloseCode`] and a reason both sides can show. Discoverable
nodes also send signed [`announce`]ments on the LAN.

# Layout

* [`handshake`]: the hello and the pure accept/refuse decisions.
* [`secret`]: the cluster secret and the proofs bound to a TLS session.
* [`message`]: what client and node say once authenticated; [`error`]: why a job failed,
  as the wire says it.
* [`refs`]: data and job references inside a job's arguments (MessagePack extensions).
* [`codec`]: frames, and a decoder that checks a frame's length before buffering it.
* [`announce`]: the authenticated announcement of a discoverable node, and replay checks.
*/
#![deny(missing_docs)]

pub mod announce;
pub mod codec;
pub mod error;
pub mod handshake;
pub mod message;
pub mod refs;
pub mod secret;
#[cfg(test)]
mod tests;

/// The protocol version this build speaks. Peers with another version are refused with
/// [`CloseCode::Version`] and an error naming both versions.
pub const PROTOCOL_VERSION: u16 = 6;

/// The ALPN protocol name of wasp connections.
pub const ALPN: &[u8] = b"wasp";

/// Why a connection was closed, as the QUIC application error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// An orderly close: the client is done, or the node has drained.
    Normal = 0,
    /// The peer sent bytes that do not follow the protocol.
    Protocol = 1,
    /// The peers speak different protocol versions.
    Version = 2,
    /// The peer did not prove that it knows the cluster secret.
    Auth = 3,
    /// The node is shutting down.
    Shutdown = 4,
}

impl CloseCode {
    /// The code for a QUIC application close.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The close code `code` stands for, if any.
    pub fn from_code(code: u64) -> Option<Self> {
        [
            CloseCode::Normal,
            CloseCode::Protocol,
            CloseCode::Version,
            CloseCode::Auth,
            CloseCode::Shutdown,
        ]
        .into_iter()
        .find(|close| u64::from(close.code()) == code)
    }
}
