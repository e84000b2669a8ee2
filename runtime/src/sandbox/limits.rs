//! Per-job resource limits and the wasmtime limiter that enforces memory and tables.

use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Default cap on a job's linear memory: 256 MiB.
pub const DEFAULT_MAX_MEMORY: u64 = 256 << 20;

/// Default cap on each of a job's captured stdout and stderr: 1 MiB.
pub const DEFAULT_MAX_OUTPUT: u64 = 1 << 20;

/// Default cap on the elements of each table a job creates or grows.
pub const DEFAULT_MAX_TABLE_ELEMENTS: u64 = 100_000;

/// The resources one job may use. Each limit, when hit, stops the job with a typed
/// [`JobError`](crate::JobError) that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from the start of the job (`None`: no limit). Enforced by epoch
    /// interruption, to within a millisecond or so.
    pub timeout: Option<Duration>,
    /// Bytes of linear memory. A `memory.grow` past it fails and the job stops with
    /// [`JobError::MemoryLimit`](crate::JobError::MemoryLimit).
    pub max_memory: u64,
    /// Bytes captured from each of stdout and stderr. Writing past it stops the job with
    /// [`JobError::OutputLimit`](crate::JobError::OutputLimit).
    pub max_output: u64,
    /// Elements in each table.
    pub max_table_elements: u64,
    /// Fuel: a CPU budget counted in WebAssembly instructions (about one unit each), the
    /// same on every run and every machine, unlike a timeout (`None`: no budget). Running
    /// out stops the job with [`JobError::FuelExhausted`](crate::JobError::FuelExhausted).
    /// Jobs with a budget run code compiled to count fuel, which is slower; jobs without
    /// one are not affected.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: None,
            max_memory: DEFAULT_MAX_MEMORY,
            max_output: DEFAULT_MAX_OUTPUT,
            max_table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
            fuel: None,
        }
    }
}

/// The limits a job asks for, each `None` where nobody set it: the server's caller (with
/// [`ServerBuilder`](crate::ServerBuilder) or [`JobOptions`](crate::JobOptions)) or a node's
/// client. An unset limit takes the value of the place the job runs: [`Limits::default`] on
/// a server, the node's own value on a node. Only a limit that was asked for may be refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Asked {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_memory: Option<u64>,
    pub(crate) max_output: Option<u64>,
    pub(crate) max_table_elements: Option<u64>,
    pub(crate) fuel: Option<u64>,
    /// Whether the job may run in an instance kept from an earlier job of the same module
    /// and the same owner, rather than a fresh one (components only: see
    /// [`JobOptions::reuse_instance`](crate::JobOptions::reuse_instance)).
    pub(crate) reuse: bool,
}

impl Asked {
    /// Every limit of `limits`, asked for.
    pub(crate) fn all(limits: &Limits) -> Self {
        Asked {
            timeout: limits.timeout,
            max_memory: Some(limits.max_memory),
            max_output: Some(limits.max_output),
            max_table_elements: Some(limits.max_table_elements),
            fuel: limits.fuel,
            reuse: false,
        }
    }

    /// These limits, and `fallback`'s where these are unset.
    pub(crate) fn or(self, fallback: Asked) -> Self {
        Asked {
            timeout: self.timeout.or(fallback.timeout),
            max_memory: self.max_memory.or(fallback.max_memory),
            max_output: self.max_output.or(fallback.max_output),
            max_table_elements: self.max_table_elements.or(fallback.max_table_elements),
            fuel: self.fuel.or(fallback.fuel),
            reuse: self.reuse || fallback.reuse,
        }
    }

    /// The limits a job runs with on a server: [`Limits::default`] where unset.
    pub(crate) fn resolve(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            timeout: self.timeout.or(defaults.timeout),
            max_memory: self.max_memory.unwrap_or(defaults.max_memory),
            max_output: self.max_output.unwrap_or(defaults.max_output),
            max_table_elements: self
                .max_table_elements
                .unwrap_or(defaults.max_table_elements),
            fuel: self.fuel.or(defaults.fuel),
        }
    }
}

/// Enforces [`Limits`] on one store and remembers whether a limit was hit, so that the trap
/// that follows can be reported as what it is.
///
/// The memory limit bounds the sum of the store's memories: one for a core module, one per
/// core module a component links.
#[derive(Debug)]
pub(crate) struct Limiter {
    max_memory: u64,
    max_table_elements: u64,
    /// The bytes of all the store's memories.
    memory: u64,
    /// The elements of the store's largest table.
    largest_table: u64,
    /// How many instances, memories and tables the store may have.
    counts: Counts,
    pub(crate) memory_exceeded: bool,
    /// Whether a table was refused growth: the job's outcome then depends on its limit.
    table_exceeded: bool,
}

/// How many instances, memories and tables a store may have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) instances: u32,
    pub(crate) memories: u32,
    pub(crate) tables: u32,
}

/// What a component may link: CPython as componentize-py builds it has a dozen core
/// instances, a few memories and tables.
pub(crate) const COMPONENT_LIMITS: Counts = Counts {
    instances: 32,
    memories: 4,
    tables: 32,
};

impl Limiter {
    /// The limiter of a core module's store.
    pub(crate) fn new(limits: &Limits) -> Self {
        let counts = Counts {
            instances: 1,
            memories: 1,
            tables: crate::module::MAX_TABLES,
        };
        Self::with_counts(limits, counts)
    }

    /// The limiter of a component's store.
    pub(crate) fn for_component(limits: &Limits) -> Self {
        Self::with_counts(limits, COMPONENT_LIMITS)
    }

    /// Whether what the store holds now (its memories and tables, grown by earlier jobs
    /// of a kept instance) is within `limits`: a kept instance may run a job only then, so
    /// that a job's limits hold whichever instance it runs in.
    pub(crate) fn within(&self, limits: &Limits) -> bool {
        self.memory <= limits.max_memory && self.largest_table <= limits.max_table_elements
    }

    /// The limits of the next job of a kept instance: the memory its earlier jobs grew
    /// stays, and counts.
    pub(crate) fn renew(&mut self, limits: &Limits) {
        self.max_memory = limits.max_memory;
        self.max_table_elements = limits.max_table_elements;
        self.memory_exceeded = false;
        self.table_exceeded = false;
    }

    /// Whether memory or table growth was refused: the outcome depends on the limits.
    pub(crate) fn refused(&self) -> bool {
        self.memory_exceeded || self.table_exceeded
    }

    fn with_counts(limits: &Limits, counts: Counts) -> Self {
        Limiter {
            max_memory: limits.max_memory,
            max_table_elements: limits.max_table_elements,
            memory: 0,
            largest_table: 0,
            counts,
            memory_exceeded: false,
            table_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory
            .saturating_sub(current as u64)
            .saturating_add(desired as u64);
        if total > self.max_memory {
            self.memory_exceeded = true;
            return Ok(false);
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        let allowed = desired <= self.max_table_elements;
        self.table_exceeded |= !allowed;
        if allowed {
            self.largest_table = self.largest_table.max(desired);
        }
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.counts.instances as usize
    }

    fn memories(&self) -> usize {
        self.counts.memories as usize
    }

    fn tables(&self) -> usize {
        self.counts.tables as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_and_records_growth_past_the_cap() {
        let mut limiter = Limiter::new(&Limits {
            max_memory: 1 << 20,
            ..Limits::default()
        });
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.memory_exceeded);
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(limiter.memory_exceeded);
    }

    /// A component's memories share the limit: each may grow only into what the others
    /// leave.
    #[test]
    fn a_components_memories_share_the_cap() {
        let mut limiter = Limiter::for_component(&Limits {
            max_memory: 3 << 20,
            ..Limits::default()
        });
        assert!(limiter.memory_growing(0, 2 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(limiter.memory_exceeded);
    }

    /// What earlier jobs grew counts against the next job's limits: a store holding more
    /// memory, or a larger table, than they allow is not within them.
    #[test]
    fn a_store_is_within_limits_only_if_what_it_holds_fits_them() {
        let generous = Limits::default();
        let mut limiter = Limiter::for_component(&generous);
        assert!(limiter.memory_growing(0, 64 << 20, None).unwrap());
        assert!(limiter.table_growing(0, 5_000, None).unwrap());
        assert!(limiter.within(&generous));
        let small_memory = Limits {
            max_memory: 32 << 20,
            ..generous
        };
        assert!(!limiter.within(&small_memory));
        let small_tables = Limits {
            max_table_elements: 1_000,
            ..generous
        };
        assert!(!limiter.within(&small_tables));
    }

    #[test]
    fn unset_limits_take_the_defaults_and_set_ones_win() {
        let asked = Asked {
            max_memory: Some(1 << 20),
            ..Asked::default()
        };
        let limits = asked.resolve();
        assert_eq!(limits.max_memory, 1 << 20);
        assert_eq!(limits.max_output, DEFAULT_MAX_OUTPUT);
        let fallback = Asked {
            max_memory: Some(2 << 20),
            fuel: Some(7),
            ..Asked::default()
        };
        let merged = asked.or(fallback);
        assert_eq!((merged.max_memory, merged.fuel), (Some(1 << 20), Some(7)));
        assert_eq!(Asked::all(&limits).resolve(), limits);
    }
}
