//! The result cache's files: `<dir>/<first two hex digits of the key>/<key in hex>`, each
//! one [`entry`](super::entry), written to a temporary name and renamed into place (two
//! writers of one key leave one whole entry), touched when read, and the least recently
//! used removed past the bound.

use super::Key;
use super::entry::{self, Entry};
use crate::sandbox::disk::{
    Distrust, Trust, create_private_dir, read_trusted_file, trusted_dir, write_private_unsynced,
};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tracing::{debug, warn};

/// How much a result cache directory holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Entries (cached results).
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
}

fn path_of(dir: &Path, key: &Key) -> PathBuf {
    let hex = key.to_hex();
    dir.join(&hex[..2]).join(hex)
}

/// Entries read within this long of their last use are not touched again: a touch is a
/// system call, and the order of eviction needs no finer clock.
const TOUCH_AFTER: Duration = Duration::from_secs(60);

/// The entry for `key`, if `dir` holds an intact one; it is then the most recently used.
/// A corrupt or truncated entry is removed, and a miss. Only a regular file of the user's
/// that nobody else may write is read (opened without following a link, checked through
/// the open descriptor): one open, one `fstat`, one read.
pub(super) fn read(dir: &Path, key: &Key) -> Option<Entry> {
    let path = path_of(dir, key);
    let (bytes, file, meta) = match read_trusted_file(&path, &Trust::Mine) {
        Ok(read) => read,
        Err(Distrust::Missing) => return None,
        Err(distrust) => {
            warn!(%distrust, "result cache: entry not used (a miss)");
            return None;
        }
    };
    let Some(entry) = entry::decode(key, &bytes) else {
        warn!(path = %path.display(), "result cache: corrupt entry, removed (a miss)");
        let _ = fs::remove_file(&path);
        return None;
    };
    let stale = meta
        .modified()
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_none_or(|age| age > TOUCH_AFTER);
    if stale {
        let _ = file.set_modified(SystemTime::now());
    }
    Some(entry)
}

/// Whether `dir`, the result cache's root, is the user's and private (else none of its
/// entries is used); a missing one is (it will be made so).
pub(super) fn trusted(dir: &Path) -> bool {
    match trusted_dir(dir, true, &Trust::Mine) {
        Ok(()) | Err(Distrust::Missing) => true,
        Err(distrust) => {
            warn!(%distrust, "result cache: not used");
            false
        }
    }
}

/// Writes `bytes` as the entry for `key`, without waiting for the disk: an entry is
/// checksummed, so one that a crash cut short is a miss, and an `fsync` per entry would
/// bound a cached run to the disk's few hundred syncs a second.
pub(super) fn write(dir: &Path, key: &Key, bytes: &[u8]) -> io::Result<()> {
    let path = path_of(dir, key);
    if let Some(shard) = path.parent() {
        create_private_dir(shard)?;
    }
    write_private_unsynced(&path, &[bytes])
}

/// Every entry file under `dir`: its last use, size and path. Temporary files of a
/// writer that died are included, so that they are removed too.
fn entries(dir: &Path) -> io::Result<Vec<(SystemTime, u64, PathBuf)>> {
    let mut files = Vec::new();
    let shards = match fs::read_dir(dir) {
        Ok(shards) => shards,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(error) => return Err(error),
    };
    for shard in shards {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for file in fs::read_dir(&shard)? {
            let file = file?;
            let meta = file.metadata()?;
            if meta.is_file() {
                files.push((meta.modified()?, meta.len(), file.path()));
            }
        }
    }
    Ok(files)
}

/// How many entries `dir` holds, and their bytes.
///
/// # Errors
/// If the directory cannot be read.
pub fn usage(dir: &Path) -> io::Result<Usage> {
    let files = entries(dir)?;
    Ok(Usage {
        entries: files.len() as u64,
        bytes: files.iter().map(|(_, len, _)| len).sum(),
    })
}

/// Removes every entry under `dir`; returns what was removed.
///
/// # Errors
/// If the directory cannot be read, or an entry removed.
pub fn clear(dir: &Path) -> io::Result<Usage> {
    let files = entries(dir)?;
    for (_, _, path) in &files {
        match fs::remove_file(path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(Usage {
        entries: files.len() as u64,
        bytes: files.iter().map(|(_, len, _)| len).sum(),
    })
}

/// Removes the least recently used entries under `dir` until it holds at most `keep`
/// bytes; returns the bytes left.
pub(super) fn evict(dir: &Path, keep: u64) -> io::Result<u64> {
    let mut files = entries(dir)?;
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= keep {
            break;
        }
        debug!(path = %path.display(), "result cache: evicting");
        match fs::remove_file(&path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => total -= len,
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_back_and_corrupt_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key([9; 32]);
        let bytes = entry::encode(&key, b"\x01", b"", b"", None);
        write(dir.path(), &key, &bytes).unwrap();
        assert_eq!(read(dir.path(), &key).unwrap().result, b"\x01");
        assert_eq!(usage(dir.path()).unwrap().entries, 1);
        let path = path_of(dir.path(), &key);
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(read(dir.path(), &key), None, "a truncated entry is a miss");
        assert!(!path.exists(), "and is removed");
        assert_eq!(read(dir.path(), &Key([1; 32])), None);
    }

    #[test]
    fn the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Key([1; 32]), Key([2; 32]));
        for key in [&old, &new] {
            write(dir.path(), key, &[0; 100]).unwrap();
        }
        let past = SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(path_of(dir.path(), &old))
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(evict(dir.path(), 150).unwrap(), 100);
        assert!(!path_of(dir.path(), &old).exists());
        assert!(path_of(dir.path(), &new).exists());
        assert_eq!(clear(dir.path()).unwrap().entries, 1);
        assert_eq!(usage(dir.path()).unwrap(), Usage::default());
    }
}
