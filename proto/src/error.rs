//! [`WireError`]: why a job has no result, as a node tells its client.
//!
//! The wire has its own error type, so that the protocol does not change when the host
//! library's `JobError` grows a variant or a field: the host maps between the two, and a
//! variant added here is a protocol change (bump [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
//! Errors only a client can see (its own decoding of a result, a node lost) are not here.

use serde::{Deserialize, Serialize};

/// Why a job run on a node produced no result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// The module exports no job of that name.
    UnknownFunction {
        /// The name asked for.
        function: String,
        /// The jobs the module does export.
        available: Vec<String>,
    },
    /// The arguments did not decode into the job's parameter types, or were refused.
    BadArguments(String),
    /// The job returned an error.
    Failed(String),
    /// The job panicked, with this message.
    Panic(String),
    /// The job trapped.
    Trap(WireTrap),
    /// The job ran past its timeout, in nanoseconds.
    Timeout {
        /// The timeout it ran with, in nanoseconds.
        nanos: u64,
    },
    /// The job tried to grow its memory past its cap, in bytes.
    MemoryLimit {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The job wrote more than its output cap on a stream.
    OutputLimit {
        /// `"stdout"` or `"stderr"`.
        stream: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The job tried something the sandbox forbids.
    Forbidden(String),
    /// The job's result and output were larger than a node sends back.
    ResultTooLarge {
        /// Their size, in bytes.
        size: u64,
        /// The most a node sends back, in bytes.
        limit: u64,
    },
    /// The job used its whole fuel budget.
    FuelExhausted {
        /// The budget, in fuel units.
        limit: u64,
    },
    /// The job called `proc_exit` with this status.
    Exited(i32),
    /// The job broke the guest ABI.
    Abi(String),
    /// The module could not be compiled or instantiated, or does not load.
    Module(String),
    /// The job was stopped before it finished (the client cancelled it).
    Cancelled(String),
    /// A limit the client asked for is above the node's maximum.
    LimitRefused {
        /// Which limit: `timeout`, `memory`, `output`, `table elements` or `fuel`.
        limit: String,
        /// What the job asked for.
        asked: String,
        /// The node's maximum.
        allowed: String,
    },
    /// A value the job takes (a data reference in its arguments) is larger than the node
    /// keeps.
    DataTooLarge {
        /// The value's size, in bytes.
        size: u64,
        /// The most the node keeps, in bytes.
        limit: u64,
    },
    /// The node does not run this module (not on its allow-list, or too large).
    ModuleRefused(String),
    /// The node failed while running the job.
    Internal(String),
}

/// How a job trapped, by name: the names are the protocol's, not any engine's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireTrap {
    /// The call stack was exhausted.
    StackOverflow,
    /// A load or store outside linear memory.
    MemoryOutOfBounds,
    /// An `unreachable` instruction.
    Unreachable,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Integer overflow.
    IntegerOverflow,
    /// A float-to-integer conversion out of range.
    BadConversionToInteger,
    /// An access outside a table.
    TableOutOfBounds,
    /// An indirect call through a null entry.
    IndirectCallToNull,
    /// An indirect call with the wrong signature.
    BadSignature,
    /// Any other trap, described.
    Other(String),
}
