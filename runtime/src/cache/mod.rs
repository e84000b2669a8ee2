//! Compiled modules: once per process in memory, and across processes on disk.

pub(crate) mod disk;

use crate::error::JobError;
use crate::module::{Module, ModuleHash};
use crate::sandbox::{Compiled, Origin, Sandbox};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

type Slot = Arc<OnceLock<Result<Arc<Compiled>, JobError>>>;

/// Every module a server has prepared, by hash and by whether its code counts fuel. The first job of a module compiles it (or
/// loads it from disk); jobs of the same module that start meanwhile wait for that one
/// compilation instead of starting their own.
#[derive(Default)]
pub(crate) struct ModuleCache {
    slots: Mutex<HashMap<(ModuleHash, bool), Slot>>,
    compiled: AtomicU64,
    from_disk: AtomicU64,
    reused: AtomicU64,
}

/// How a server obtained the code of the modules it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled by cranelift in this process.
    pub compiled: u64,
    /// Modules whose compiled code was loaded from the disk cache.
    pub loaded_from_disk: u64,
    /// Jobs that reused a module already prepared in this process.
    pub reused: u64,
}

impl ModuleCache {
    /// The prepared module for `module`, compiling it on first use; with code that counts
    /// fuel if `metered` (for jobs with a fuel budget).
    pub(crate) fn get(
        &self,
        sandbox: &Sandbox,
        module: &Module,
        metered: bool,
    ) -> Result<Arc<Compiled>, JobError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry((module.hash(), metered)).or_default().clone()
        };
        let mut prepared_here = false;
        let result = slot.get_or_init(|| {
            prepared_here = true;
            let compiled = sandbox.prepare(module, metered)?;
            let counter = match compiled.origin {
                Origin::Compiled => &self.compiled,
                Origin::DiskCache => &self.from_disk,
            };
            counter.fetch_add(1, Ordering::Relaxed);
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
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        for metered in [false, true] {
            slots.remove(&(*hash, metered));
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded_from_disk: self.from_disk.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
        }
    }
}
