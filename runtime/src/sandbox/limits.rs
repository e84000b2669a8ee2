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

/// Enforces [`Limits`] on one store and remembers whether a limit was hit, so that the trap
/// that follows can be reported as what it is.
#[derive(Debug)]
pub(crate) struct Limiter {
    max_memory: u64,
    max_table_elements: u64,
    pub(crate) memory_exceeded: bool,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Limiter {
            max_memory: limits.max_memory,
            max_table_elements: limits.max_table_elements,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired as u64 <= self.max_table_elements)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        crate::module::MAX_TABLES as usize
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
}
