//! The hello both sides send first, and the decisions taken on it.
//!
//! A hello has a fixed layout, the same in both directions and frozen forever, so that
//! peers of different versions can always read each other's version and refuse each other
//! with a clear error:
//!
//! ```text
//! magic b"WASP" (4) | version u16 BE (2) | status u8 (1) | proof (32, zeros when absent)
//! ```
//!
//! The client speaks first: its proof of the cluster secret, or none. The node answers with
//! its verdict and, if it has a secret, its own proof. Proofs are bound to the TLS session
//! (`binding` is keying material exported under [`EXPORTER_LABEL`]) and to the role, so a
//! proof cannot be replayed on another connection nor reflected back to its sender. The
//! functions here decide; the async drivers only move the bytes.

use super::{CloseCode, PROTOCOL_VERSION};
use crate::secret::{ClusterSecret, Proof, Role};

/// The first bytes of every hello.
pub const MAGIC: [u8; 4] = *b"WASP";

/// The length of a hello, in both directions.
pub const HELLO_LEN: usize = 39;

/// The TLS exporter label for the keying material the proofs are bound to.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-wasp-cluster-auth-v1";

/// How many bytes of keying material are exported for the proofs.
pub const BINDING_LEN: usize = 32;

/// The length of a proof on the wire.
const PROOF_LEN: usize = 32;

/// What a hello says: the client's offer, or the node's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Client to node: a proof of the cluster secret follows.
    Proof,
    /// Client to node: the client has no secret (an insecure cluster).
    NoProof,
    /// Node to client: accepted; the node's proof follows (it has a secret).
    Accepted,
    /// Node to client: accepted; the node has no secret (`--insecure`).
    AcceptedInsecure,
    /// Node to client: refused, the client's proof is wrong (a wrong secret).
    BadProof,
    /// Node to client: refused, the node requires a secret and the client sent no proof.
    ProofRequired,
    /// Node to client: refused, the versions differ (the hello carries the node's).
    VersionMismatch,
}

impl Status {
    /// The status byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Status::NoProof => 0,
            Status::Proof => 1,
            Status::Accepted => 2,
            Status::AcceptedInsecure => 3,
            Status::BadProof => 4,
            Status::ProofRequired => 5,
            Status::VersionMismatch => 6,
        }
    }

    /// The status a byte stands for, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        [
            Status::NoProof,
            Status::Proof,
            Status::Accepted,
            Status::AcceptedInsecure,
            Status::BadProof,
            Status::ProofRequired,
            Status::VersionMismatch,
        ]
        .into_iter()
        .find(|status| status.code() == code)
    }

    /// Whether a hello with this status carries a proof.
    pub fn has_proof(self) -> bool {
        matches!(self, Status::Proof | Status::Accepted)
    }
}

/// One side's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version of the sender.
    pub version: u16,
    /// The client's offer or the node's verdict.
    pub status: Status,
    /// The sender's proof of the cluster secret: `Some` exactly when the status
    /// [has one](Status::has_proof).
    pub proof: Option<[u8; PROOF_LEN]>,
}

impl Hello {
    /// The hello's bytes on the wire.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut bytes = [0; HELLO_LEN];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4..6].copy_from_slice(&self.version.to_be_bytes());
        bytes[6] = self.status.code();
        if self.status.has_proof() {
            bytes[7..].copy_from_slice(&self.proof.unwrap_or_default());
        }
        bytes
    }

    /// Reads a hello.
    ///
    /// A status this build does not know, in the hello of a peer of another version, reads
    /// as [`Status::VersionMismatch`]: the version is all that can be understood of it, and
    /// enough to refuse the peer with a clear error.
    ///
    /// # Errors
    /// [`HandshakeParseError::BadMagic`] if the peer is not a wasp peer,
    /// [`HandshakeParseError::UnknownStatus`] for a status unknown to this version.
    pub fn parse(bytes: &[u8; HELLO_LEN]) -> Result<Self, HandshakeParseError> {
        if bytes[..4] != MAGIC {
            return Err(HandshakeParseError::BadMagic {
                start: hex(&bytes[..8]),
            });
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        let code = bytes[6];
        let status = match Status::from_code(code) {
            Some(status) => status,
            None if version != PROTOCOL_VERSION => Status::VersionMismatch,
            None => return Err(HandshakeParseError::UnknownStatus(code)),
        };
        let proof = status.has_proof().then(|| {
            let mut proof = [0; PROOF_LEN];
            proof.copy_from_slice(&bytes[7..]);
            proof
        });
        Ok(Hello {
            version,
            status,
            proof,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Why bytes are not a hello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeParseError {
    /// The bytes do not start with [`MAGIC`]: the peer is not a wasp peer.
    #[error("the peer is not a wasp peer: its hello starts with {start} (hex), not \"WASP\"")]
    BadMagic {
        /// The hello's first bytes, in hex.
        start: String,
    },
    /// A status byte this version does not know, from a peer of the same version.
    #[error("the peer's hello has an unknown status {0}")]
    UnknownStatus(u8),
}

/// Why a handshake did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The two sides speak different protocol versions.
    #[error("protocol version mismatch: this side speaks v{ours}, the peer v{theirs}")]
    Version {
        /// This side's version.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// On the node: the client's proof is wrong.
    #[error("the client's proof is wrong: it does not know the cluster secret")]
    BadProof,
    /// The node requires the secret and the client sent no proof.
    #[error("the node requires the cluster secret; the client sent no proof (give --secret-file)")]
    ProofRequired,
    /// On the client: the node refused its proof.
    #[error("the node refused the handshake: wrong cluster secret")]
    RefusedWrongSecret,
    /// On the client: it has a secret, and the node sent no valid proof of it.
    #[error("the node did not prove the cluster secret (wrong secret, or a node impersonator)")]
    NodeUnproven,
    /// On the client: it has a secret, and the node runs without one.
    #[error("the node runs without a secret (--insecure); refusing it because this client has one")]
    NodeInsecure,
    /// A hello with a status that makes no sense in its direction.
    #[error("unexpected hello: {0}")]
    Unexpected(String),
}

impl Refusal {
    /// The code to close the connection with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Refusal::Version { .. } => CloseCode::Version,
            Refusal::BadProof
            | Refusal::ProofRequired
            | Refusal::RefusedWrongSecret
            | Refusal::NodeUnproven
            | Refusal::NodeInsecure => CloseCode::Auth,
            Refusal::Unexpected(_) => CloseCode::Protocol,
        }
    }
}

/// The client's hello for a session with keying material `binding`.
pub fn client_hello(secret: Option<&ClusterSecret>, binding: &[u8]) -> Hello {
    match secret {
        Some(secret) => hello(
            Status::Proof,
            Some(secret.proof(Role::Client, binding).to_bytes()),
        ),
        None => hello(Status::NoProof, None),
    }
}

/// The node's answer to a client's hello: the hello to send back, and whether the client
/// is accepted (`Ok`) or why it is refused (`Err`).
///
/// A node without a secret accepts every client of its version; a client with a secret
/// then refuses it. A refused client gets no proof from the node. To a hello that is not a
/// client's, the node answers [`Status::BadProof`] (so that the peer does not proceed);
/// drivers may as well just close with the refusal's [`close_code`](Refusal::close_code).
pub fn node_verdict(
    client: &Hello,
    secret: Option<&ClusterSecret>,
    binding: &[u8],
) -> (Hello, Result<(), Refusal>) {
    if client.version != PROTOCOL_VERSION {
        let refusal = Refusal::Version {
            ours: PROTOCOL_VERSION,
            theirs: client.version,
        };
        return (hello(Status::VersionMismatch, None), Err(refusal));
    }
    let refuse = |status, refusal| (hello(status, None), Err(refusal));
    match (client.status, secret) {
        (Status::Proof | Status::NoProof, None) => (hello(Status::AcceptedInsecure, None), Ok(())),
        (Status::NoProof, Some(_)) => refuse(Status::ProofRequired, Refusal::ProofRequired),
        (Status::Proof, Some(secret)) => {
            let proof = Proof::from_bytes(client.proof.unwrap_or_default());
            if secret.verify(Role::Client, binding, &proof) {
                let ours = secret.proof(Role::Node, binding).to_bytes();
                (hello(Status::Accepted, Some(ours)), Ok(()))
            } else {
                refuse(Status::BadProof, Refusal::BadProof)
            }
        }
        (status, _) => refuse(
            Status::BadProof,
            Refusal::Unexpected(format!("the client sent the node's status {status:?}")),
        ),
    }
}

/// The client's check of the node's answer to its hello.
///
/// # Errors
/// The reason to close the connection.
pub fn check_node_hello(
    node: &Hello,
    secret: Option<&ClusterSecret>,
    binding: &[u8],
) -> Result<(), Refusal> {
    if node.version != PROTOCOL_VERSION || node.status == Status::VersionMismatch {
        return Err(Refusal::Version {
            ours: PROTOCOL_VERSION,
            theirs: node.version,
        });
    }
    let unexpected = |why: &str| Err(Refusal::Unexpected(why.to_owned()));
    match (node.status, secret) {
        (Status::Accepted, Some(secret)) => {
            let proof = Proof::from_bytes(node.proof.unwrap_or_default());
            if secret.verify(Role::Node, binding, &proof) {
                Ok(())
            } else {
                Err(Refusal::NodeUnproven)
            }
        }
        // Without a secret there is nothing to check: such a client trusts any node.
        (Status::Accepted | Status::AcceptedInsecure, None) => Ok(()),
        (Status::AcceptedInsecure, Some(_)) => Err(Refusal::NodeInsecure),
        (Status::BadProof, Some(_)) => Err(Refusal::RefusedWrongSecret),
        (Status::BadProof, None) => unexpected("the node refused a proof this client did not send"),
        (Status::ProofRequired, None) => Err(Refusal::ProofRequired),
        (Status::ProofRequired, Some(_)) => {
            unexpected("the node asked for a proof this client did send")
        }
        (Status::Proof | Status::NoProof, _) => {
            unexpected("the node sent a client's hello instead of a verdict")
        }
        // Handled above, with the version.
        (Status::VersionMismatch, _) => unexpected("version mismatch"),
    }
}

fn hello(status: Status, proof: Option<[u8; PROOF_LEN]>) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        status,
        proof,
    }
}
