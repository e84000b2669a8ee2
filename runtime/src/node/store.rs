//! The modules a node has received, shared by all its clients: a module sent by one client
//! is never asked of another. Bounded in number and bytes; the least recently used module
//! goes first, and is asked for again if a job needs it later.

use crate::module::{Module, ModuleHash};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Modules by hash, with their last use.
#[derive(Debug)]
pub(crate) struct ModuleStore {
    kept: Mutex<Kept>,
    received: AtomicU64,
}

#[derive(Debug)]
struct Kept {
    modules: HashMap<ModuleHash, (Module, u64)>,
    /// The bytes of every module kept.
    bytes: u64,
    /// Counts uses: a module's stamp is the count at its last use.
    clock: u64,
    max_modules: usize,
    max_bytes: u64,
}

impl Kept {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Evicts the least recently used modules other than `keep` until the store is within
    /// its bounds; returns their hashes.
    fn evict_beyond_bounds(&mut self, keep: &ModuleHash) -> Vec<ModuleHash> {
        let mut evicted = Vec::new();
        while self.modules.len() > self.max_modules || self.bytes > self.max_bytes {
            let oldest = self
                .modules
                .iter()
                .filter(|(hash, _)| *hash != keep)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(hash, _)| *hash);
            let Some(oldest) = oldest else { break };
            if let Some((module, _)) = self.modules.remove(&oldest) {
                self.bytes -= module.bytes().len() as u64;
            }
            evicted.push(oldest);
        }
        evicted
    }
}

impl ModuleStore {
    /// A store keeping at most `max_modules` modules and `max_bytes` bytes of them (one
    /// module larger than that is still kept, alone).
    pub(crate) fn new(max_modules: usize, max_bytes: u64) -> Self {
        ModuleStore {
            kept: Mutex::new(Kept {
                modules: HashMap::new(),
                bytes: 0,
                clock: 0,
                max_modules: max_modules.max(1),
                max_bytes,
            }),
            received: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The module with this hash, if the node has it; counts as a use.
    pub(crate) fn get(&self, hash: &ModuleHash) -> Option<Module> {
        let mut kept = self.lock();
        let now = kept.tick();
        let (module, used) = kept.modules.get_mut(hash)?;
        *used = now;
        Some(module.clone())
    }

    /// Keeps a module received from a client (its hash already checked); returns the
    /// hashes of the modules evicted to make room.
    pub(crate) fn insert(&self, module: Module) -> Vec<ModuleHash> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.lock();
        let now = kept.tick();
        let hash = module.hash();
        let size = module.bytes().len() as u64;
        if kept.modules.insert(hash, (module, now)).is_none() {
            kept.bytes += size;
        }
        kept.evict_beyond_bounds(&hash)
    }

    /// How many modules clients have sent.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// How many modules are kept now, and their bytes.
    pub(crate) fn size(&self) -> (usize, u64) {
        let kept = self.lock();
        (kept.modules.len(), kept.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::test_module_with_job;

    #[test]
    fn the_least_recently_used_module_goes_first() {
        let store = ModuleStore::new(2, u64::MAX);
        let [a, b, c] = ["a", "b", "c"].map(test_module_with_job);
        assert!(store.insert(a.clone()).is_empty());
        assert!(store.insert(b.clone()).is_empty());
        assert!(store.get(&a.hash()).is_some()); // a is now more recent than b
        assert_eq!(store.insert(c.clone()), [b.hash()]);
        assert!(store.get(&b.hash()).is_none());
        assert!(store.get(&a.hash()).is_some());
        assert!(store.get(&c.hash()).is_some());
        assert_eq!(store.size().0, 2);
    }

    #[test]
    fn bytes_are_bounded_too_but_the_newest_module_stays() {
        let [a, b] = ["a", "b"].map(test_module_with_job);
        let size = a.bytes().len() as u64;
        let store = ModuleStore::new(100, size + size / 2);
        store.insert(a.clone());
        assert_eq!(store.insert(b.clone()), [a.hash()]);
        assert_eq!(store.size(), (1, b.bytes().len() as u64));
        let tiny = ModuleStore::new(100, 1);
        assert!(
            tiny.insert(a.clone()).is_empty(),
            "kept alone, though too large"
        );
        assert_eq!(tiny.size().0, 1);
    }

    #[test]
    fn a_module_sent_twice_is_counted_once_in_bytes() {
        let a = test_module_with_job("a");
        let store = ModuleStore::new(10, u64::MAX);
        store.insert(a.clone());
        store.insert(a.clone());
        assert_eq!(store.size(), (1, a.bytes().len() as u64));
        assert_eq!(store.received(), 2);
    }
}
