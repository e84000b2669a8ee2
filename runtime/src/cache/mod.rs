//! Compiled modules, once per process: each prepared by the sandbox (compiled, or loaded
//! from the sandbox's disk cache, `sandbox/disk.rs`) on its first job, then kept.

use crate::error::JobError;
use crate::module::{Module, ModuleHash};
use crate::sandbox::{Compiled, Origin, Sandbox};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::info;

type Slot = Arc<OnceLock<Result<Arc<Compiled>, JobError>>>;

/// What a [`ModuleCache`] tells its observer: a module's preparation started, or ended
/// (whether it succeeded or not). A node forwards these to its clients, whose jobs of the
/// module wait meanwhile (seconds, for CPython), so that they can tell compiling from hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preparation {
    Started,
    Ended,
}

/// Called with each module preparation's start and end, on the worker thread preparing it.
pub(crate) type Observer = Box<dyn Fn(ModuleHash, Preparation) + Send + Sync>;

/// How many modules a server keeps prepared in memory by default, each kind of code
/// counted apart; past it, the least recently used is dropped (its next job loads it from
/// the disk cache, in milliseconds).
pub const DEFAULT_MAX_PREPARED_MODULES: usize = 256;

/// The modules a server has prepared, by hash and by whether their code counts fuel,
/// bounded. The first job of a module compiles it (or loads it from disk); jobs of the same
/// module that start meanwhile wait for that one compilation instead of starting their own.
pub(crate) struct ModuleCache {
    slots: Mutex<Prepared>,
    /// The most modules kept prepared.
    capacity: usize,
    compiled: AtomicU64,
    from_disk: AtomicU64,
    reused: AtomicU64,
    /// Modules being prepared now.
    preparing: AtomicU64,
    /// Time spent preparing modules, in nanoseconds, by origin: compiling, loading.
    compile_nanos: AtomicU64,
    load_nanos: AtomicU64,
    observer: OnceLock<Observer>,
}

/// The prepared modules, each with when it was last used (a counter, not a clock).
#[derive(Default)]
struct Prepared {
    slots: HashMap<(ModuleHash, bool), (Slot, u64)>,
    uses: u64,
}

impl Prepared {
    /// The slot of `key`, made if missing; the least recently used slot goes if the cache
    /// is then over `capacity` (jobs running its module keep their code).
    fn slot(&mut self, key: (ModuleHash, bool), capacity: usize) -> Slot {
        self.uses += 1;
        let now = self.uses;
        if let Some((slot, used)) = self.slots.get_mut(&key) {
            *used = now;
            return slot.clone();
        }
        if self.slots.len() >= capacity.max(1) {
            let oldest = self.slots.iter().min_by_key(|(_, (_, used))| *used);
            if let Some((&oldest, _)) = oldest {
                self.slots.remove(&oldest);
            }
        }
        let slot = Slot::default();
        self.slots.insert(key, (slot.clone(), now));
        slot
    }
}

/// How a server obtained the code of the modules it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Modules compiled by cranelift in this process.
    pub compiled: u64,
    /// Modules whose compiled code was loaded from a file: the disk cache, or code shipped
    /// with the program ([`ServerBuilder::shipped_code_dir`](crate::ServerBuilder::shipped_code_dir)).
    pub loaded_from_disk: u64,
    /// Jobs that reused a module already prepared in this process.
    pub reused: u64,
    /// Modules being prepared (compiled, or loaded from the disk cache) now.
    pub preparing: u64,
    /// Total time spent compiling modules.
    pub compile_time: Duration,
    /// Total time spent loading compiled code from the disk cache.
    pub load_time: Duration,
}

impl ModuleCache {
    /// A cache keeping at most `capacity` modules prepared.
    pub(crate) fn new(capacity: usize) -> Self {
        ModuleCache {
            slots: Mutex::new(Prepared::default()),
            capacity,
            compiled: AtomicU64::new(0),
            from_disk: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            preparing: AtomicU64::new(0),
            compile_nanos: AtomicU64::new(0),
            load_nanos: AtomicU64::new(0),
            observer: OnceLock::new(),
        }
    }

    /// Sets the observer of preparations (once; later calls are ignored).
    pub(crate) fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    fn tell(&self, hash: ModuleHash, what: Preparation) {
        if let Some(observer) = self.observer.get() {
            observer(hash, what);
        }
    }

    /// The prepared module for `module`, compiling it on first use; with code that counts
    /// fuel if `metered` (for jobs with a fuel budget).
    pub(crate) fn get(
        &self,
        sandbox: &Sandbox,
        module: &Module,
        metered: bool,
    ) -> Result<Arc<Compiled>, JobError> {
        let slot = {
            let mut prepared = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            prepared.slot((module.hash(), metered), self.capacity)
        };
        let mut prepared_here = false;
        let result = slot.get_or_init(|| {
            prepared_here = true;
            let started = Instant::now();
            let kind = module.kind();
            // A component (CPython) takes seconds to compile: say so, then what it took.
            info!(module = %module.hash(), ?kind, metered, "preparing a module");
            self.tell(module.hash(), Preparation::Started);
            self.preparing.fetch_add(1, Ordering::Relaxed);
            let compiled = sandbox.prepare(module, metered);
            self.preparing.fetch_sub(1, Ordering::Relaxed);
            self.tell(module.hash(), Preparation::Ended);
            let compiled = compiled?;
            let (counter, nanos, how) = match compiled.origin {
                Origin::Compiled => (&self.compiled, &self.compile_nanos, "compiled"),
                Origin::DiskCache => (
                    &self.from_disk,
                    &self.load_nanos,
                    "loaded from the disk cache",
                ),
                Origin::Shipped => (
                    &self.from_disk,
                    &self.load_nanos,
                    "loaded from the code shipped with wasp",
                ),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            nanos.fetch_add(took, Ordering::Relaxed);
            info!(
                module = %module.hash(),
                ?kind,
                took_ms = started.elapsed().as_millis() as u64,
                "module {how}"
            );
            Ok(Arc::new(compiled))
        });
        if !prepared_here {
            self.reused.fetch_add(1, Ordering::Relaxed);
        }
        result.clone()
    }

    /// Drops the module's prepared code (jobs running it keep theirs); its next job prepares
    /// it again, from the disk cache if it is there.
    pub(crate) fn forget(&self, hash: &ModuleHash) {
        let mut prepared = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        for metered in [false, true] {
            prepared.slots.remove(&(*hash, metered));
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded_from_disk: self.from_disk.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            preparing: self.preparing.load(Ordering::Relaxed),
            compile_time: Duration::from_nanos(self.compile_nanos.load(Ordering::Relaxed)),
            load_time: Duration::from_nanos(self.load_nanos.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> (ModuleHash, bool) {
        (ModuleHash::from_bytes([byte; 32]), false)
    }

    #[test]
    fn the_least_recently_used_module_goes_first() {
        let mut prepared = Prepared::default();
        let first = prepared.slot(key(1), 2);
        prepared.slot(key(2), 2);
        // Using 1 again makes 2 the oldest.
        assert!(Arc::ptr_eq(&first, &prepared.slot(key(1), 2)));
        prepared.slot(key(3), 2);
        assert_eq!(prepared.slots.len(), 2);
        assert!(prepared.slots.contains_key(&key(1)));
        assert!(!prepared.slots.contains_key(&key(2)));
        for byte in 10..200 {
            prepared.slot(key(byte), 2);
        }
        assert_eq!(prepared.slots.len(), 2, "bounded");
    }
}
