//! One cache entry as bytes: what a job returned and printed, under the key it answers,
//! with a checksum. Plain data and functions; `disk.rs` reads and writes the files.
//!
//! Layout: `MAGIC`, the key (32 bytes), the fuel used (a flag byte and a big-endian `u64`),
//! the lengths of the result, stdout and stderr (big-endian `u64` each), those bytes, and
//! the blake3 hash of everything before it. Anything else (a truncated file, a flipped
//! bit, an entry of another key) does not decode: a miss, never a wrong result.

use super::Key;

/// The first bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"WASPRC01";

/// The fixed part before the bytes: magic, key, fuel flag and value, three lengths.
const HEAD: usize = 8 + 32 + 9 + 24;

/// What a job produced, as an entry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The MessagePack result.
    pub(crate) result: Vec<u8>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) fuel_used: Option<u64>,
}

/// The bytes of `entry`, answering `key`.
pub(crate) fn encode(
    key: &Key,
    result: &[u8],
    stdout: &[u8],
    stderr: &[u8],
    fuel: Option<u64>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + result.len() + stdout.len() + stderr.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.0);
    out.push(u8::from(fuel.is_some()));
    out.extend_from_slice(&fuel.unwrap_or(0).to_be_bytes());
    for part in [result, stdout, stderr] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
    }
    for part in [result, stdout, stderr] {
        out.extend_from_slice(part);
    }
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

/// The entry in `bytes`, if they are a whole, intact entry for `key`.
pub(crate) fn decode(key: &Key, bytes: &[u8]) -> Option<Entry> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != checksum {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let (stored, rest) = rest.split_at_checked(32)?;
    if stored != key.0 {
        return None;
    }
    let (&flag, rest) = rest.split_first()?;
    let (fuel, rest) = take_u64(rest)?;
    let fuel_used = match flag {
        0 => None,
        1 => Some(fuel),
        _ => return None,
    };
    let (result_len, rest) = take_u64(rest)?;
    let (stdout_len, rest) = take_u64(rest)?;
    let (stderr_len, rest) = take_u64(rest)?;
    let (result, rest) = rest.split_at_checked(usize::try_from(result_len).ok()?)?;
    let (stdout, rest) = rest.split_at_checked(usize::try_from(stdout_len).ok()?)?;
    let (stderr, rest) = rest.split_at_checked(usize::try_from(stderr_len).ok()?)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Entry {
        result: result.to_vec(),
        stdout: stdout.to_vec(),
        stderr: stderr.to_vec(),
        fuel_used,
    })
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (int, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*int), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_nothing_else_decodes() {
        let key = Key([3; 32]);
        let bytes = encode(&key, b"\x2a", b"out", b"", Some(17));
        let entry = decode(&key, &bytes).expect("decodes");
        assert_eq!(entry.result, b"\x2a");
        assert_eq!(entry.stdout, b"out");
        assert_eq!(entry.fuel_used, Some(17));
        assert_eq!(decode(&Key([4; 32]), &bytes), None, "another key's entry");
        for cut in 0..bytes.len() {
            assert_eq!(decode(&key, &bytes[..cut]), None, "truncated at {cut}");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert_eq!(decode(&key, &flipped), None, "a bit flipped at {at}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&key, &long), None);
    }
}
