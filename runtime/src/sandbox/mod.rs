//! The wasmtime sandbox: one engine per [`Server`](crate::Server), compiled modules, and a
//! fresh instance per job.
//!
//! * `capture`: bounded stdout/stderr pipes.
//! * `limits`: per-job [`Limits`] and the store limiter that enforces them.
//! * `host`: the store's state and the linker (WASI preview 1 plus wasp's `panic`).
//! * `invoke`: running one job in a fresh store and classifying how it ended.
//! * `epoch`: the ticker thread behind timeouts and cancellation.

mod capture;
mod epoch;
mod exports;
mod host;
mod invoke;
mod limits;

pub(crate) use invoke::{Cancel, RawOutcome};
pub use limits::{DEFAULT_MAX_MEMORY, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_TABLE_ELEMENTS, Limits};

use crate::cache::disk::DiskCache;
use crate::error::{ConfigError, JobError};
use crate::module::Module;
use host::HostState;
use std::time::Duration;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker,
    PoolingAllocationConfig,
};

/// How many instances may be alive at once: the pooling allocator reserves address space for
/// this many up front, so it also bounds the number of workers.
pub const MAX_CONCURRENT_INSTANCES: u32 = 256;

/// Bytes of each pool slot kept resident between jobs and reset in place.
const KEEP_RESIDENT: usize = 2 << 20;

/// The epoch tick: the granularity of timeouts and cancellation.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A module compiled for this engine and linked against the sandbox's imports, ready to be
/// instantiated any number of times.
pub(crate) struct Compiled {
    pre: InstancePre<HostState>,
    exports: exports::Exports,
    /// Where the compiled code came from.
    pub(crate) origin: Origin,
}

/// Where a [`Compiled`] module's code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Compiled by cranelift in this process.
    Compiled,
    /// Loaded from the on-disk cache.
    DiskCache,
}

/// The engine, its linker and the epoch ticker.
pub(crate) struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    disk: Option<DiskCache>,
    ticker: epoch::Ticker,
}

impl Sandbox {
    /// Builds the engine (pooling allocator, epoch interruption) and the linker.
    pub(crate) fn new(disk: Option<DiskCache>) -> Result<Self, ConfigError> {
        let engine =
            Engine::new(&engine_config()).map_err(|err| ConfigError::Engine(format!("{err:#}")))?;
        let linker =
            host::linker(&engine).map_err(|err| ConfigError::Engine(format!("{err:#}")))?;
        let ticker = epoch::Ticker::start(engine.clone(), EPOCH_TICK)?;
        let disk = disk.map(|disk| disk.for_engine(&engine));
        Ok(Sandbox {
            engine,
            linker,
            disk,
            ticker,
        })
    }

    /// Compiles `module` (or loads its code from the disk cache) and links it.
    pub(crate) fn prepare(&self, module: &Module) -> Result<Compiled, JobError> {
        let (code, origin) = self.compile(module)?;
        let exports = exports::Exports::resolve(&code)?;
        let pre = self
            .linker
            .instantiate_pre(&code)
            .map_err(|err| JobError::Module(format!("{err:#}")))?;
        Ok(Compiled {
            pre,
            exports,
            origin,
        })
    }

    fn compile(&self, module: &Module) -> Result<(wasmtime::Module, Origin), JobError> {
        if let Some(code) = self
            .disk
            .as_ref()
            .and_then(|disk| disk.load(&self.engine, module.hash()))
        {
            return Ok((code, Origin::DiskCache));
        }
        let code = wasmtime::Module::new(&self.engine, module.bytes())
            .map_err(|err| JobError::Module(format!("{err:#}")))?;
        if let Some(disk) = &self.disk {
            disk.store(module.hash(), &code);
        }
        Ok((code, Origin::Compiled))
    }

    /// Runs job `function` of `compiled` in a fresh instance.
    pub(crate) fn run(
        &self,
        compiled: &Compiled,
        function: &str,
        args: &[u8],
        limits: &Limits,
        cancel: &Cancel,
    ) -> RawOutcome {
        let _running = self.ticker.job_running();
        invoke::run(&self.engine, compiled, function, args, limits, cancel)
    }
}

fn engine_config() -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(MAX_CONCURRENT_INSTANCES)
        .total_memories(MAX_CONCURRENT_INSTANCES)
        .total_tables(MAX_CONCURRENT_INSTANCES)
        // Per-job caps are enforced by the store limiter; the pool only has to accept any
        // size a wasm32 memory can have.
        .max_memory_size(4 << 30)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(DEFAULT_MAX_TABLE_ELEMENTS as usize)
        // Per-job instantiation cost is dominated by resetting memory between jobs. Keeping
        // slots resident and resetting only their dirty pages (found with the PAGEMAP_SCAN
        // ioctl where the kernel has it) avoids an madvise, its TLB shootdown across cores,
        // and the page faults of the next job.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto)
        // Reuse the slots a module used last (they hold its memory image) before cold ones,
        // which also bounds the resident memory to what concurrent jobs need.
        .max_unused_warm_slots(0);
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}
