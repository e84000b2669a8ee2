//! The result cache: a job asked to be cached ([`JobOptions::cache`]) whose result is on
//! the caller's disk is answered from there before it is queued; one that runs is kept
//! there if its outcome follows from what the key covers alone.
//!
//! **The key** is the blake3 hash of everything that decides a result: the engine (wasp's
//! and the ABI's versions, and wasmtime's compatibility hash, which covers its version and
//! configuration), the module's hash (for a Python function: the runner's, the function's
//! exact source and its helpers' travel in the arguments), the job's name, the argument
//! bytes the job receives with each value taken by reference named by its hash (a job's
//! result taken as an argument is in them, or its hash), and the fuel budget.
//!
//! **Only deterministic outcomes are kept**: a job that succeeded in a fresh instance
//! without reading a clock or random numbers and without hitting a memory, table or output
//! limit (the sandbox records all of it while the job runs, locally and on nodes). A job
//! that did is counted *not cacheable*; so is one stopped by its time or memory limit.
//! Errors are not kept.
//!
//! **Entries** are files under the cache directory (`disk.rs`, `entry.rs`), checksummed and
//! keyed: a corrupt, truncated or foreign entry is a miss. Writes happen on a thread of
//! their own (`wasp-cache`), so no worker or network thread waits for the disk; the server
//! waits for them when it is dropped. The directory is bounded (least recently used out).
//!
//! [`JobOptions::cache`]: crate::JobOptions::cache

mod disk;
mod entry;

pub use disk::{Usage, clear, usage};

use crate::error::JobError;
use crate::module::ModuleHash;
use crate::sandbox::RawOutcome;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::warn;

/// The bound on a result cache directory by default: 1 GiB.
pub const DEFAULT_MAX_RESULT_CACHE_BYTES: u64 = 1 << 30;

/// The worker name of a job answered from the cache ([`JobOutput::worker`]).
///
/// [`JobOutput::worker`]: crate::JobOutput::worker
pub const CACHE_WORKER: &str = "cache";

/// Entries waiting for the writer thread before finishing jobs wait for it.
const WRITES_QUEUED: usize = 1024;

/// The default result cache directory: the user's cache directory, `wasp/results`.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|dir| dir.join("wasp").join("results"))
}

/// What a server's result cache has done, from [`Stats::results`](crate::Stats::results).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResultCacheStats {
    /// Jobs answered from the cache.
    pub hits: u64,
    /// Jobs asked to be cached that were not in it.
    pub misses: u64,
    /// Results written to the cache.
    pub stored: u64,
    /// Jobs asked to be cached whose outcome could not be: they read a clock or random
    /// numbers, hit a memory, table or output limit (or ended by their time or memory
    /// limit), or ran in a kept instance.
    pub not_cacheable: u64,
}

/// A finished job's outcome, as the scheduler holds it (shared, not copied, on its way to
/// the disk).
pub(crate) trait Kept: Send + Sync + 'static {
    /// How the job ended.
    fn outcome(&self) -> &RawOutcome;
}

/// The key of a cached result.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(pub(crate) [u8; 32]);

impl Key {
    fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

/// A server's result cache: its directory, its counters and its writer.
pub(crate) struct ResultCache {
    dir: PathBuf,
    max_bytes: u64,
    /// What the key says of the engine: wasp's, the ABI's and wasmtime's versions.
    engine: String,
    hits: AtomicU64,
    misses: AtomicU64,
    stored: Arc<AtomicU64>,
    not_cacheable: AtomicU64,
    writer: Mutex<Option<Writer>>,
    /// Whether the directory is private to the user, once looked at.
    trusted: OnceLock<bool>,
}

/// The thread that writes entries, and the way to it.
struct Writer {
    queue: SyncSender<Write>,
    thread: JoinHandle<()>,
}

enum Write {
    Entry(Key, Arc<dyn Kept>),
    /// Answer once every entry before is written.
    Flush(SyncSender<()>),
}

impl ResultCache {
    /// A cache in `dir`, bounded to `max_bytes`; `engine_key` names the engine
    /// (`sandbox::disk::engine_key`).
    pub(crate) fn new(dir: PathBuf, max_bytes: u64, engine_key: &str) -> Self {
        ResultCache {
            dir,
            max_bytes,
            engine: format!(
                "wasp {} abi {} engine {engine_key}",
                env!("CARGO_PKG_VERSION"),
                wasp_abi::ABI_VERSION
            ),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: Arc::new(AtomicU64::new(0)),
            not_cacheable: AtomicU64::new(0),
            writer: Mutex::new(None),
            trusted: OnceLock::new(),
        }
    }

    /// The key of a job of `module`'s `function` with the fuel budget `fuel` and the
    /// argument bytes `args` (every reference resolved: values by their hash).
    pub(crate) fn key(
        &self,
        module: &ModuleHash,
        function: &str,
        fuel: Option<u64>,
        args: &[u8],
    ) -> Key {
        let mut hasher = blake3::Hasher::new_derive_key("wasp result cache, version 1");
        hasher
            .update(&(self.engine.len() as u64).to_be_bytes())
            .update(self.engine.as_bytes())
            .update(module.as_bytes())
            .update(&(function.len() as u64).to_be_bytes())
            .update(function.as_bytes());
        match fuel {
            Some(fuel) => hasher.update(&[1]).update(&fuel.to_be_bytes()),
            None => hasher.update(&[0]),
        };
        hasher
            .update(&(args.len() as u64).to_be_bytes())
            .update(args);
        Key(*hasher.finalize().as_bytes())
    }

    /// The cached outcome of the job `key` names, if the cache has it (counted as a hit,
    /// else as a miss).
    pub(crate) fn lookup(&self, key: &Key) -> Option<RawOutcome> {
        let found = self.trusted().then(|| disk::read(&self.dir, key)).flatten();
        let Some(entry) = found else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(RawOutcome {
            result: Ok(entry.result),
            stdout: entry.stdout,
            stderr: entry.stderr,
            duration: Duration::ZERO,
            fuel_used: entry.fuel_used,
            deterministic: true,
        })
    }

    /// A job asked to be cached, and not found, has finished: its outcome is kept if it
    /// can be.
    pub(crate) fn finished(&self, key: Key, finished: Arc<dyn Kept>) {
        let outcome = finished.outcome();
        match &outcome.result {
            Ok(_) if outcome.deterministic => {
                self.write(Write::Entry(key, finished));
            }
            Ok(_) | Err(JobError::Timeout(_) | JobError::MemoryLimit { .. }) => {
                self.not_cacheable.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }

    fn write(&self, write: Write) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if writer.is_none() {
            match self.start_writer() {
                Ok(started) => *writer = Some(started),
                Err(error) => {
                    warn!(%error, "result cache: cannot start its writer thread; nothing is kept");
                    return;
                }
            }
        }
        let queue = writer.as_ref().map(|writer| writer.queue.clone());
        drop(writer);
        if let Some(queue) = queue {
            let _ = queue.send(write);
        }
    }

    fn start_writer(&self) -> std::io::Result<Writer> {
        let (queue, writes) = sync_channel(WRITES_QUEUED);
        let files = Files {
            dir: self.dir.clone(),
            max_bytes: self.max_bytes,
            stored: self.stored.clone(),
            total: None,
        };
        let thread = std::thread::Builder::new()
            .name("wasp-cache".into())
            .spawn(move || files.serve(&writes))?;
        Ok(Writer { queue, thread })
    }

    /// Waits until every result handed to the writer is on disk.
    pub(crate) fn flush(&self) {
        let (done, wait) = sync_channel(1);
        let queue = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|writer| writer.queue.clone());
        if let Some(queue) = queue
            && queue.send(Write::Flush(done)).is_ok()
        {
            let _ = wait.recv();
        }
    }

    /// Whether the directory is private (checked once): in one others may write, no entry
    /// is used.
    fn trusted(&self) -> bool {
        *self.trusted.get_or_init(|| disk::trusted(&self.dir))
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> ResultCacheStats {
        ResultCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            not_cacheable: self.not_cacheable.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ResultCache {
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(Writer { queue, thread }) = writer {
            drop(queue);
            let _ = thread.join();
        }
    }
}

/// The writer thread's side: the files, and their total size once known.
struct Files {
    dir: PathBuf,
    max_bytes: u64,
    stored: Arc<AtomicU64>,
    /// The bytes under the directory, as of the last look plus what was written since.
    total: Option<u64>,
}

impl Files {
    fn serve(mut self, writes: &Receiver<Write>) {
        while let Ok(write) = writes.recv() {
            match write {
                Write::Entry(key, finished) => self.store(&key, finished.outcome()),
                Write::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn store(&mut self, key: &Key, outcome: &RawOutcome) {
        let Ok(result) = &outcome.result else {
            return;
        };
        let bytes = entry::encode(
            key,
            result,
            &outcome.stdout,
            &outcome.stderr,
            outcome.fuel_used,
        );
        if let Err(error) = disk::write(&self.dir, key, &bytes) {
            warn!(dir = %self.dir.display(), %error, "result cache: could not write an entry");
            return;
        }
        self.stored.fetch_add(1, Ordering::Relaxed);
        let total = match self.total {
            Some(total) => total + bytes.len() as u64,
            None => usage(&self.dir).map_or(0, |usage| usage.bytes),
        };
        // Past the bound, back to nine tenths of it: eviction scans the directory, so it
        // is done once in a while, not at every write.
        self.total = Some(if total > self.max_bytes {
            disk::evict(&self.dir, self.max_bytes / 10 * 9).unwrap_or_else(|error| {
                warn!(dir = %self.dir.display(), %error, "result cache: could not evict");
                total
            })
        } else {
            total
        });
    }
}
