//! [`Args`]: a job's arguments as they travel (MessagePack, data references as such) and
//! the values their references stand for, which reach the job's memory segment by
//! segment: a value is copied once per job, into the job, and never into the arguments.

use super::Data;
use bytes::Bytes;
use std::any::Any;
use wasp_proto::refs::{self, Found, Ref};

/// Keeps something alive while a job holds a value: on a node, the store's pin that stops
/// the value from being evicted while the job may run.
pub(crate) type Guard = Box<dyn Any + Send + Sync>;

/// A job's arguments.
#[derive(Default)]
pub(crate) struct Args {
    /// The MessagePack argument array as it travels: each value this job takes by
    /// reference is a data reference here.
    bytes: Vec<u8>,
    /// The values of those references, by increasing offset.
    values: Vec<Spliced>,
}

/// A value and where its reference is in the arguments.
pub(crate) struct Spliced {
    /// The offset of the reference in the argument bytes.
    at: usize,
    data: Data,
    _guard: Option<Guard>,
}

/// What a reference in a job's arguments stands for, once known.
pub(crate) enum Resolved {
    /// A value the job takes by reference (kept alive by the guard, if any).
    Data(Data, Option<Guard>),
    /// A value to write in the reference's place (a small result of another job).
    Inline(Bytes),
}

impl Args {
    /// Arguments without references.
    pub(crate) fn plain(bytes: Vec<u8>) -> Self {
        Args {
            bytes,
            values: Vec::new(),
        }
    }

    /// The argument bytes as they travel, data references as such.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.bytes
    }

    /// The argument bytes, without the values.
    pub(crate) fn into_wire(self) -> Vec<u8> {
        self.bytes
    }

    /// The values the arguments take by reference.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Data> {
        self.values.iter().map(|spliced| &spliced.data)
    }

    /// The length of the arguments the job receives, values in place.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let values: usize = self.values.iter().map(|v| v.data.bytes.len()).sum();
        self.bytes.len() - self.values.len() * refs::DATA_REF_LEN + values
    }

    /// The arguments the job receives, in order: the argument bytes between references,
    /// and each value in its reference's place.
    pub(crate) fn segments(&self) -> Vec<&[u8]> {
        let mut segments = Vec::with_capacity(2 * self.values.len() + 1);
        let mut from = 0;
        for spliced in &self.values {
            segments.push(&self.bytes[from..spliced.at]);
            segments.push(&spliced.data.bytes[..]);
            from = spliced.at + refs::DATA_REF_LEN;
        }
        segments.push(&self.bytes[from..]);
        segments
    }

    /// The arguments the job receives, in one buffer (for tests).
    #[cfg(test)]
    pub(crate) fn assembled(&self) -> Vec<u8> {
        self.segments().concat()
    }
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("bytes", &self.bytes.len())
            .field(
                "values",
                &self.values.iter().map(|v| &v.data).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The arguments `bytes` whose references (`found`, in order) stand for `resolved` (one
/// each): data references stay (a job reference becomes one), inline values are written
/// in place. The bytes are kept as they are when nothing moves.
pub(crate) fn build(bytes: Vec<u8>, found: &[Found], resolved: Vec<Resolved>) -> Args {
    debug_assert_eq!(found.len(), resolved.len());
    let unchanged = found.iter().zip(&resolved).all(|(found, resolved)| {
        matches!(
            (found.what, resolved),
            (Ref::Data { .. }, Resolved::Data(..))
        )
    });
    if !unchanged {
        return rebuild(&bytes, found, resolved);
    }
    let values = found
        .iter()
        .zip(resolved)
        .filter_map(|(found, resolved)| match resolved {
            Resolved::Data(data, guard) => Some(Spliced {
                at: found.at,
                data,
                _guard: guard,
            }),
            Resolved::Inline(_) => None,
        })
        .collect();
    Args { bytes, values }
}

fn rebuild(bytes: &[u8], found: &[Found], resolved: Vec<Resolved>) -> Args {
    let mut out = Vec::with_capacity(bytes.len());
    let mut values = Vec::new();
    let mut from = 0;
    for (found, resolved) in found.iter().zip(resolved) {
        out.extend_from_slice(&bytes[from..found.at]);
        from = found.at + found.len();
        match resolved {
            Resolved::Data(data, guard) => {
                let at = out.len();
                out.extend_from_slice(&data.reference());
                values.push(Spliced {
                    at,
                    data,
                    _guard: guard,
                });
            }
            Resolved::Inline(value) => out.extend_from_slice(&value),
        }
    }
    out.extend_from_slice(&bytes[from..]);
    Args { bytes: out, values }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        rmp_serde::to_vec(value).unwrap()
    }

    #[test]
    fn values_reach_the_job_in_their_references_place() {
        let table = Data::of(Bytes::from(encode(&vec![1u32, 2, 3])));
        let mut bytes = vec![0x93, 0x07];
        bytes.extend_from_slice(&table.reference());
        bytes.push(0x91);
        bytes.extend_from_slice(&table.reference());
        let found = refs::find(&bytes).unwrap();
        let resolved = vec![
            Resolved::Data(table.clone(), None),
            Resolved::Data(table.clone(), None),
        ];
        let args = build(bytes.clone(), &found, resolved);
        assert_eq!(
            args.wire(),
            &bytes[..],
            "data references travel as they are"
        );
        let job: (u8, Vec<u32>, (Vec<u32>,)) = rmp_serde::from_slice(&args.assembled()).unwrap();
        assert_eq!(job, (7, vec![1, 2, 3], (vec![1, 2, 3],)));
        assert_eq!(args.len(), args.assembled().len());
        assert_eq!(args.segments().len(), 5);
    }

    #[test]
    fn job_references_become_values_or_data_references() {
        let big = Data::of(Bytes::from(encode(&"big".repeat(10))));
        let mut bytes = vec![0x92];
        bytes.extend_from_slice(&refs::job_ref(1, 2));
        bytes.extend_from_slice(&refs::job_ref(1, 3));
        let found = refs::find(&bytes).unwrap();
        let small = Bytes::from(encode(&5u8));
        let resolved = vec![Resolved::Inline(small), Resolved::Data(big.clone(), None)];
        let args = build(bytes, &found, resolved);
        let wire = refs::find(args.wire()).unwrap();
        assert_eq!(
            wire.len(),
            1,
            "the large result travels as a data reference"
        );
        assert!(matches!(wire[0].what, Ref::Data { hash, .. } if hash == big.hash));
        let job: (u8, String) = rmp_serde::from_slice(&args.assembled()).unwrap();
        assert_eq!(job, (5, "big".repeat(10)));
    }
}
