//! Data put once ([`Server::put`](crate::Server::put)): values stored by the blake3 hash of
//! their MessagePack bytes, which jobs take as arguments through references.
//!
//! * `registry`: the values a server's caller has put, while a [`DataRef`] holds them.
//! * `args`: a job's arguments with the values its references stand for, written into the
//!   job's memory segment by segment (the value is never copied into the argument bytes).
//!
//! A reference is a MessagePack extension value ([`wasp_proto::refs`]) inside the ordinary
//! argument bytes: it travels to a node as 43 bytes, and the node, which keeps values in a
//! bounded store of its own (`node/data.rs`), asks for the value once.

mod args;
mod registry;

pub(crate) use args::{Args, Resolved, build};
pub(crate) use registry::Registry;

use bytes::Bytes;
use serde::{Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use wasp_proto::refs;

/// The largest value a server takes by default ([`ServerBuilder::max_data_value`]): 1 GiB.
///
/// [`ServerBuilder::max_data_value`]: crate::ServerBuilder::max_data_value
pub const DEFAULT_MAX_DATA_VALUE: u64 = 1 << 30;

/// A value's MessagePack bytes and their blake3 hash.
#[derive(Clone)]
pub(crate) struct Data {
    pub(crate) hash: [u8; 32],
    pub(crate) bytes: Bytes,
}

impl Data {
    /// `bytes` and their hash.
    pub(crate) fn of(bytes: Bytes) -> Self {
        Data {
            hash: *blake3::hash(&bytes).as_bytes(),
            bytes,
        }
    }

    /// The reference that stands for this value in arguments.
    pub(crate) fn reference(&self) -> [u8; refs::DATA_REF_LEN] {
        refs::data_ref(&self.hash, self.bytes.len() as u64)
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data")
            .field("hash", &hex(&self.hash)[..16].to_string())
            .field("len", &self.bytes.len())
            .finish()
    }
}

fn hex(hash: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}

/// A value put once on a server ([`Server::put`](crate::Server::put)), to pass to any
/// number of jobs as an argument, alone or inside a tuple, vector, map or struct: each job
/// receives the value itself in its place (a Rust guest as its parameter's type).
///
/// The value is encoded once, when it is put, and stays in the server's memory while a
/// `DataRef` (or a job that takes it) holds it; a node receives it once, the first time a
/// job that takes it goes there. Cloning a `DataRef` is cheap.
///
/// ```
/// # let module = wasp::Module::from_file(wasp_fixtures::WASP_TESTJOBS)?;
/// let server = wasp::Server::builder().workers(2).build()?;
/// let table: Vec<u64> = (0..1000).collect();
/// let table = server.put(&table)?;                       // encoded and hashed once
/// let jobs: Vec<_> = (0..4u64)
///     .map(|i| server.submit::<u64, _>(&module, "nth", (&table, i * 10)))
///     .collect();
/// assert_eq!(jobs[3].wait()?, 30);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DataRef {
    stored: Arc<registry::Stored>,
}

impl DataRef {
    /// The blake3 hash of the value's MessagePack bytes, as 64 hex digits.
    pub fn hash(&self) -> String {
        hex(&self.stored.data.hash)
    }

    /// The size of the value's MessagePack bytes.
    pub fn len(&self) -> u64 {
        self.stored.data.bytes.len() as u64
    }

    /// Whether the value's bytes are empty (never: a value is at least one byte).
    pub fn is_empty(&self) -> bool {
        self.stored.data.bytes.is_empty()
    }

    /// The 43 bytes that stand for the value in a job's raw MessagePack arguments
    /// ([`Server::submit_raw`](crate::Server::submit_raw)): the extension value `0xc7 0x28
    /// 0x52`, the 32 bytes of the hash, and the length as a big-endian `u64`. Raw arguments
    /// may hold it anywhere a value may be; the job receives the value in its place. The
    /// server it was put on must still hold the value when the job is submitted: keep the
    /// `DataRef` until then.
    pub fn to_msgpack(&self) -> [u8; refs::DATA_REF_LEN] {
        self.stored.data.reference()
    }
}

impl fmt::Debug for DataRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataRef")
            .field("hash", &self.hash()[..16].to_string())
            .field("len", &self.len())
            .finish()
    }
}

impl Serialize for DataRef {
    /// As the MessagePack extension of [`to_msgpack`](Self::to_msgpack) (with rmp-serde,
    /// which wasp encodes arguments with).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let payload = &self.to_msgpack()[3..];
        serialize_ext(serializer, refs::DATA_REF_EXT, payload)
    }
}

/// Serializes an extension value the way rmp-serde writes one.
pub(crate) fn serialize_ext<S: Serializer>(
    serializer: S,
    kind: i8,
    payload: &[u8],
) -> Result<S::Ok, S::Error> {
    serializer.serialize_newtype_struct(
        rmp_serde::MSGPACK_EXT_STRUCT_NAME,
        &(kind, serde_bytes::Bytes::new(payload)),
    )
}

/// Why a value could not be put.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The value is larger than the server takes
    /// ([`ServerBuilder::max_data_value`](crate::ServerBuilder::max_data_value)).
    #[error("the value is {size} bytes, more than the {limit} bytes a value may have")]
    TooLarge {
        /// The value's size, in bytes.
        size: u64,
        /// The most a value may have.
        limit: u64,
    },
    /// The value could not be encoded as MessagePack.
    #[error("the value cannot be encoded: {0}")]
    Encode(String),
    /// Raw bytes given as a value are not exactly one MessagePack value, or hold a
    /// reference (to data or to a job), which a value may not.
    #[error("not a value: {0}")]
    NotAValue(String),
    /// A file could not be read.
    #[error("could not read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
}
