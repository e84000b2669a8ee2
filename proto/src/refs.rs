//! References inside a job's MessagePack arguments: to data put once, and to another job's
//! result. Both are MessagePack extension values, so that they can sit anywhere an argument
//! value can (alone, or nested in arrays and maps), travel inside the ordinary argument
//! bytes, and be found again by a walk over them.
//!
//! * A **data reference** ([`DATA_REF_EXT`]) names a value by the blake3 hash of its
//!   MessagePack bytes and gives their length: `0xc7 0x28 0x52`, then the 32 hash bytes,
//!   then the length as a big-endian `u64` (43 bytes in all). A node that lacks the value
//!   asks for it once ([`ToClient::NeedData`](crate::message::ToClient::NeedData)); the job
//!   receives the value itself in its place.
//! * A **job reference** ([`JOB_REF_EXT`]) names a job of the client that submits it:
//!   `0xd8 0x4a`, then the submitting server's 8-byte id and the job's 8-byte id, both
//!   big-endian (18 bytes). It never crosses the network: the client replaces it with the
//!   job's result (or a data reference to it) before the job leaves the client.
//!
//! Other extension types are left alone: they are the guest's business.

use std::fmt;

/// The extension type of a data reference (`'R'`).
pub const DATA_REF_EXT: i8 = 0x52;

/// The payload length of a data reference: the hash and the length.
pub const DATA_REF_PAYLOAD: usize = 40;

/// The whole encoding of a data reference: `ext 8` marker, length, type, payload.
pub const DATA_REF_LEN: usize = 3 + DATA_REF_PAYLOAD;

/// The extension type of a job reference (`'J'`).
pub const JOB_REF_EXT: i8 = 0x4a;

/// The whole encoding of a job reference: `fixext 16` marker, type, payload.
pub const JOB_REF_LEN: usize = 2 + 16;

/// A reference found in arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    /// A value put once: its blake3 hash and its length in bytes.
    Data {
        /// The blake3 hash of the value's MessagePack bytes.
        hash: [u8; 32],
        /// The value's length in bytes.
        len: u64,
    },
    /// Another job's result.
    Job {
        /// The id of the server the job was submitted to.
        server: u64,
        /// The job's id within that server.
        job: u64,
    },
}

/// A reference and where it is in the arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The offset of its first byte (the extension marker).
    pub at: usize,
    /// The reference.
    pub what: Ref,
}

impl Found {
    /// How many bytes the reference takes in the arguments.
    pub fn len(&self) -> usize {
        match self.what {
            Ref::Data { .. } => DATA_REF_LEN,
            Ref::Job { .. } => JOB_REF_LEN,
        }
    }

    /// Never: a reference always takes some bytes (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Why arguments could not be walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefsError {
    /// The bytes are not exactly one well-formed MessagePack value.
    Malformed,
    /// An extension value of one of wasp's types has the wrong shape.
    BadRef {
        /// Its offset.
        at: usize,
    },
}

impl fmt::Display for RefsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefsError::Malformed => f.write_str("the arguments are not one MessagePack value"),
            RefsError::BadRef { at } => write!(
                f,
                "a wasp reference (MessagePack extension) at byte {at} has the wrong size"
            ),
        }
    }
}

impl std::error::Error for RefsError {}

/// The encoding of a data reference to a value of `len` bytes whose hash is `hash`.
pub fn data_ref(hash: &[u8; 32], len: u64) -> [u8; DATA_REF_LEN] {
    let mut out = [0; DATA_REF_LEN];
    out[0] = 0xc7;
    out[1] = DATA_REF_PAYLOAD as u8;
    out[2] = DATA_REF_EXT as u8;
    out[3..35].copy_from_slice(hash);
    out[35..].copy_from_slice(&len.to_be_bytes());
    out
}

/// The encoding of a reference to job `job` of server `server`.
pub fn job_ref(server: u64, job: u64) -> [u8; JOB_REF_LEN] {
    let mut out = [0; JOB_REF_LEN];
    out[0] = 0xd8;
    out[1] = JOB_REF_EXT as u8;
    out[2..10].copy_from_slice(&server.to_be_bytes());
    out[10..].copy_from_slice(&job.to_be_bytes());
    out
}

/// Every reference in `args`, which must be exactly one MessagePack value, in order.
/// Iterative: a deeply nested value costs no stack, and the walk is linear in the input.
///
/// # Errors
/// [`RefsError::Malformed`] if `args` is not one whole value; [`RefsError::BadRef`] for an
/// extension value of wasp's types that is not a reference's shape.
pub fn find(args: &[u8]) -> Result<Vec<Found>, RefsError> {
    let mut found = Vec::new();
    let end = walk(args, |at, kind, payload| {
        let what = match (kind, payload.len()) {
            (DATA_REF_EXT, DATA_REF_PAYLOAD) => Ref::Data {
                hash: payload[..32].try_into().expect("32 bytes"),
                len: u64::from_be_bytes(payload[32..].try_into().expect("8 bytes")),
            },
            (JOB_REF_EXT, 16) => Ref::Job {
                server: u64::from_be_bytes(payload[..8].try_into().expect("8 bytes")),
                job: u64::from_be_bytes(payload[8..].try_into().expect("8 bytes")),
            },
            (DATA_REF_EXT | JOB_REF_EXT, _) => return Err(RefsError::BadRef { at }),
            _ => return Ok(()),
        };
        let expected = match what {
            Ref::Data { .. } => args.get(at..at + 3) == Some(&[0xc7, 40, DATA_REF_EXT as u8]),
            Ref::Job { .. } => args.get(at..at + 2) == Some(&[0xd8, JOB_REF_EXT as u8]),
        };
        // The same payload in another extension encoding (ext 16, ext 32) would make the
        // reference's length differ from what its users splice: one encoding only.
        if !expected {
            return Err(RefsError::BadRef { at });
        }
        found.push(Found { at, what });
        Ok(())
    })?;
    if end != args.len() {
        return Err(RefsError::Malformed);
    }
    Ok(found)
}

/// Walks the MessagePack value at the start of `bytes`, calling `ext(offset, type,
/// payload)` for each extension value; returns the value's length.
pub(crate) fn walk(
    bytes: &[u8],
    mut ext: impl FnMut(usize, i8, &[u8]) -> Result<(), RefsError>,
) -> Result<usize, RefsError> {
    let malformed = || RefsError::Malformed;
    let mut at = 0;
    // Values still to walk past: the one asked for, plus the elements of every array and
    // map entered so far.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let start = at;
        let marker = *bytes.get(at).ok_or_else(malformed)?;
        at += 1;
        let mut take = |width: usize| -> Result<u64, RefsError> {
            let int = bytes.get(at..at + width).ok_or_else(malformed)?;
            at += width;
            Ok(int.iter().fold(0, |acc, &byte| acc << 8 | u64::from(byte)))
        };
        // (bytes of payload to skip, values that follow as elements, extension payload)
        let (skip, values, is_ext): (u64, u64, bool) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0, false),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f), false),
            0x90..=0x9f => (0, u64::from(marker & 0x0f), false),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0, false),
            0xc1 => return Err(malformed()),
            0xc4 | 0xd9 => (take(1)?, 0, false),
            0xc5 | 0xda => (take(2)?, 0, false),
            0xc6 | 0xdb => (take(4)?, 0, false),
            0xc7 => (take(1)?, 0, true),
            0xc8 => (take(2)?, 0, true),
            0xc9 => (take(4)?, 0, true),
            0xca => (4, 0, false),
            0xcb => (8, 0, false),
            0xcc | 0xd0 => (1, 0, false),
            0xcd | 0xd1 => (2, 0, false),
            0xce | 0xd2 => (4, 0, false),
            0xcf | 0xd3 => (8, 0, false),
            0xd4 => (1, 0, true),
            0xd5 => (2, 0, true),
            0xd6 => (4, 0, true),
            0xd7 => (8, 0, true),
            0xd8 => (16, 0, true),
            0xdc => (0, take(2)?, false),
            0xdd => (0, take(4)?, false),
            0xde => (0, 2 * take(2)?, false),
            0xdf => (0, 2 * take(4)?, false),
        };
        let skip = usize::try_from(skip).map_err(|_| malformed())?;
        if is_ext {
            let kind = *bytes.get(at).ok_or_else(malformed)? as i8;
            at += 1;
            let payload = bytes.get(at..at + skip).ok_or_else(malformed)?;
            ext(start, kind, payload)?;
        } else if bytes.len() - at < skip {
            return Err(malformed());
        }
        at += skip;
        pending = pending.checked_add(values).ok_or_else(malformed)?;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(items: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x90 | items.len() as u8];
        items.iter().for_each(|item| out.extend_from_slice(item));
        out
    }

    #[test]
    fn references_are_found_where_they_are_nested() {
        let data = data_ref(&[7; 32], 1 << 20);
        let job = job_ref(3, 9);
        // [1, {"k": data}, [job, "x"]]
        let mut map = vec![0x81, 0xa1, b'k'];
        map.extend_from_slice(&data);
        let inner = array(&[&job, b"\xa1x"]);
        let args = array(&[&[1], &map, &inner]);
        let found = find(&args).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].what,
            Ref::Data {
                hash: [7; 32],
                len: 1 << 20
            }
        );
        assert_eq!(&args[found[0].at..found[0].at + found[0].len()], &data);
        assert_eq!(found[1].what, Ref::Job { server: 3, job: 9 });
        assert_eq!(&args[found[1].at..found[1].at + found[1].len()], &job);
    }

    #[test]
    fn other_extensions_are_left_alone_and_bad_ones_refused() {
        // A timestamp (type -1) is the guest's business.
        let args = array(&[&[0xd6, 0xff, 0, 0, 0, 1]]);
        assert_eq!(find(&args), Ok(Vec::new()));
        // A data reference with a short payload.
        let args = array(&[&[0xd4, DATA_REF_EXT as u8, 0]]);
        assert_eq!(find(&args), Err(RefsError::BadRef { at: 1 }));
        // A job reference in ext 8 form instead of fixext 16.
        let mut odd = vec![0xc7, 16, JOB_REF_EXT as u8];
        odd.extend_from_slice(&[0; 16]);
        assert_eq!(find(&array(&[&odd])), Err(RefsError::BadRef { at: 1 }));
    }

    #[test]
    fn truncated_or_trailing_bytes_are_malformed() {
        let args = array(&[&data_ref(&[1; 32], 5)]);
        assert_eq!(find(&args[..args.len() - 1]), Err(RefsError::Malformed));
        let mut long = args.clone();
        long.push(0);
        assert_eq!(find(&long), Err(RefsError::Malformed));
        assert_eq!(find(&[0x92, 0x01]), Err(RefsError::Malformed));
        assert_eq!(
            find(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(RefsError::Malformed)
        );
    }

    #[test]
    fn rmp_serde_writes_the_same_encodings() {
        #[derive(serde::Serialize)]
        #[serde(rename = "_ExtStruct")]
        struct Ext((i8, serde_bytes::ByteBuf));
        let payload = data_ref(&[5; 32], 77)[3..].to_vec();
        let ext = rmp_serde::to_vec(&Ext((DATA_REF_EXT, payload.into()))).unwrap();
        assert_eq!(ext, data_ref(&[5; 32], 77));
        let payload = job_ref(1, 2)[2..].to_vec();
        let ext = rmp_serde::to_vec(&Ext((JOB_REF_EXT, payload.into()))).unwrap();
        assert_eq!(ext, job_ref(1, 2));
    }
}
