//! The modules a node has received, shared by all its clients: a module sent by one client
//! is never asked of another.

use crate::module::{Module, ModuleHash};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Modules by hash. Unbounded for now: see the notes on module memory in ARCHITECTURE.md.
#[derive(Debug, Default)]
pub(crate) struct ModuleStore {
    modules: Mutex<HashMap<ModuleHash, Module>>,
    received: AtomicU64,
}

impl ModuleStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<ModuleHash, Module>> {
        self.modules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The module with this hash, if the node has it.
    pub(crate) fn get(&self, hash: &ModuleHash) -> Option<Module> {
        self.lock().get(hash).cloned()
    }

    /// Keeps a module received from a client (its hash already checked).
    pub(crate) fn insert(&self, module: Module) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(module.hash()).or_insert(module);
    }

    /// How many modules clients have sent.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}
