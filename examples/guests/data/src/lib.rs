//! Jobs of the data-plane benchmarks: jobs that take a large value put once, and the
//! reduction step of a tree of jobs.

use serde::de::{Deserialize, Deserializer, Error, Visitor};
use std::fmt;

/// A few bytes of a large `bin` value, read where it lies in the job's argument buffer:
/// what a job that looks up a large table does, without copying the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The value's length.
    pub len: u64,
    /// The sum of its first, middle and last bytes.
    pub sample: u64,
}

impl Probe {
    /// The probe of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let at = |i: usize| bytes.get(i).map_or(0, |&b| u64::from(b));
        let len = bytes.len();
        Probe {
            len: len as u64,
            sample: at(0) + at(len / 2) + at(len.saturating_sub(1)),
        }
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Probe;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Probe, E> {
                Ok(Probe::of(bytes))
            }
        }
        deserializer.deserialize_bytes(Bytes)
    }
}

/// Is `n` prime? Trial division, as pp's example does.
#[cfg(not(feature = "variant"))]
fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|i| i * i <= n)
            .all(|i| !n.is_multiple_of(i))
}

/// The same helper with one line changed (the result cache benchmark's variant): the same
/// answers, another module.
#[cfg(feature = "variant")]
fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|&i| i <= n / i)
            .all(|i| !n.is_multiple_of(i))
}

/// The sum of the primes below `n` (the work of the job), plus a probe of `table`, a large
/// value put once that every job takes.
#[wasp_guest::job]
pub fn sum_primes_with(table: Probe, n: u64) -> (u64, u64, u64) {
    let sum = (2..n).filter(|&x| is_prime(x)).sum();
    (sum, table.len, table.sample)
}

/// The sum of `values`: one step of a tree reduction.
#[wasp_guest::job]
pub fn sum(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

/// The sum of the primes below `n`: a leaf of a tree reduction.
#[wasp_guest::job]
pub fn sum_primes(n: u64) -> u64 {
    (2..n).filter(|&x| is_prime(x)).sum()
}
