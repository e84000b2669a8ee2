//! The messages client and node exchange once the handshake has succeeded.
//!
//! Each is one frame: a MessagePack body (serde's externally tagged enum) behind the length
//! prefix of [`codec`](super::codec). Adding a variant or a field is a protocol change:
//! bump [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).

use crate::error::WireError;
use serde::{Deserialize, Serialize};

/// A job's wire identifier: unique per client connection, chosen by the client.
pub type WireJobId = u64;

/// A module's blake3 hash, as bytes.
pub type WireHash = [u8; 32];

/// Sent by a client to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToNode {
    /// Run a job. If the node lacks the module it answers [`ToClient::NeedModule`] once and
    /// runs the job when the module arrives.
    Run(RunJob),
    /// A module's bytes, sent on a unidirectional stream of its own in answer to
    /// [`ToClient::NeedModule`] so that a large module does not hold up job frames.
    Module {
        /// The blake3 hash the node asked for; the node checks it against the bytes.
        #[serde(with = "serde_bytes")]
        hash: WireHash,
        /// The module's bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The head of a value put once (data), on a unidirectional stream of its own in
    /// answer to [`ToClient::NeedData`]: the frame is followed on the stream by exactly
    /// `len` bytes, the value's MessagePack encoding, raw, which the node reads as they
    /// arrive (under QUIC's flow control) into the value's place and hashes as it goes: a
    /// value is never whole in one message.
    Data {
        /// The blake3 hash the node asked for; the node checks it against the bytes.
        #[serde(with = "serde_bytes")]
        hash: WireHash,
        /// How many bytes follow.
        len: u64,
    },
    /// Where the node may pull the module it asked for ([`ToClient::NeedModule`]) itself,
    /// instead of receiving its bytes: sent only to a node that named the module's registry
    /// in [`NodeInfo::pulls_from`]. The node checks the pulled bytes against `hash` before
    /// anything else; its jobs fail if it cannot.
    Pull {
        /// The blake3 hash the node asked for.
        #[serde(with = "serde_bytes")]
        hash: WireHash,
        /// Where the module is, pinned by its manifest's digest:
        /// `host[:port]/repository@sha256:<64 hex digits>`.
        source: String,
    },
    /// Stop these jobs: the client no longer wants their results (its caller cancelled
    /// them, or it is going away). The node stops each one that is queued or running and
    /// still answers it once (with its result, if it finished first, or with
    /// [`WireError::Cancelled`]), so that both sides agree on what the node holds.
    Cancel {
        /// The jobs to stop; ids the node does not hold are ignored (already answered).
        jobs: Vec<WireJobId>,
    },
}

/// One job for a node to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    /// The client's identifier for the job, echoed in [`ToClient::Done`].
    pub job: WireJobId,
    /// The blake3 hash of the module.
    #[serde(with = "serde_bytes")]
    pub module: WireHash,
    /// The job's name (a `#[job]` function).
    pub function: String,
    /// The MessagePack-encoded argument array, which may hold data references
    /// ([`refs`](crate::refs)): the node gives the job each value in its reference's place.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// The limits the client asks for.
    pub limits: WireLimits,
}

/// The limits a client asks for a job. `None` is a limit the client's user did not set:
/// the node gives the job its own value (its maximum) for it. Only a limit asked for may be
/// refused as above the node's maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLimits {
    /// Wall-clock timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Bytes of linear memory.
    pub max_memory: Option<u64>,
    /// Bytes captured from each of stdout and stderr.
    pub max_output: Option<u64>,
    /// Elements in each table.
    pub max_table_elements: Option<u64>,
    /// Fuel budget, in fuel units.
    pub fuel: Option<u64>,
    /// The job may run in an instance kept from an earlier job of the same module and the
    /// same client (a component's warm interpreter), rather than a fresh one.
    pub reuse_instance: Option<bool>,
}

/// Sent by a node to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToClient {
    /// The first message after a successful handshake: who the node is.
    Welcome(NodeInfo),
    /// The node lacks this module: send it once, on a stream of its own.
    NeedModule {
        /// The blake3 hash of the module.
        #[serde(with = "serde_bytes")]
        hash: WireHash,
    },
    /// The node lacks this value (a data reference in a job's arguments, see
    /// [`refs`](crate::refs)): send it once, on a stream of its own ([`ToNode::Data`]).
    NeedData {
        /// The blake3 hash of the value.
        #[serde(with = "serde_bytes")]
        hash: WireHash,
    },
    /// A job finished (successfully or not).
    Done(JobDone),
    /// Jobs the node accepted but will not run (it is shutting down): run them elsewhere.
    /// They do not count as retries.
    Returned {
        /// The jobs handed back.
        jobs: Vec<WireJobId>,
    },
    /// The node is shutting down: send no more jobs. Jobs already sent finish or come
    /// back as [`ToClient::Returned`].
    Draining,
    /// The node's worker count changed.
    Workers {
        /// The new count.
        workers: u32,
    },
    /// The node started preparing (compiling, or loading from its disk cache) a module the
    /// client's jobs use: they wait meanwhile (seconds, for a large module).
    Preparing {
        /// The blake3 hash of the module.
        #[serde(with = "serde_bytes")]
        hash: WireHash,
    },
    /// The node ended preparing a module (its jobs run, or fail if it could not be
    /// compiled).
    Prepared {
        /// The blake3 hash of the module.
        #[serde(with = "serde_bytes")]
        hash: WireHash,
    },
}

/// Who a node is, from [`ToClient::Welcome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's stable identity: the blake3 fingerprint of its certificate, in hex.
    pub id: String,
    /// The node's CPU architecture (`std::env::consts::ARCH`, e.g. `x86_64`, `aarch64`).
    pub arch: String,
    /// The node's operating system (`std::env::consts::OS`).
    pub os: String,
    /// How many jobs the node runs at once.
    pub workers: u32,
    /// The node's wasp version.
    pub version: String,
    /// The largest module the node accepts, in bytes: a client does not send it jobs of a
    /// larger one (sending the module would get it cut off).
    pub max_module_size: u64,
    /// The registries (`host[:port]`, or `host[:port]/repository-prefix`) the node pulls
    /// modules from by digest when a client says where a module is ([`ToNode::Pull`]);
    /// empty if it takes modules from clients only.
    pub pulls_from: Vec<String>,
}

/// A finished job, from [`ToClient::Done`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDone {
    /// The client's identifier for the job.
    pub job: WireJobId,
    /// The MessagePack-encoded result, or why there is none.
    pub result: Result<serde_bytes::ByteBuf, WireError>,
    /// What the job wrote to stdout.
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    /// What the job wrote to stderr.
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    /// How long the job ran on the node, in nanoseconds.
    pub duration_ns: u64,
    /// The fuel the job used, if it had a budget.
    pub fuel_used: Option<u64>,
    /// Whether the job's outcome follows from its module, arguments and fuel alone: it
    /// read no clock and no random numbers, hit no memory, table or output limit, and ran
    /// in a fresh instance. Only such a result may be kept in a result cache.
    pub deterministic: bool,
}
