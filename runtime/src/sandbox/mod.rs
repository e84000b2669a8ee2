//! The wasmtime sandbox: the engines of a [`Server`](crate::Server) (a second one for jobs
//! with a fuel budget), compiled modules, and a fresh instance per job.
//!
//! * `capture`: bounded stdout/stderr pipes.
//! * `limits`: per-job [`Limits`] and the store limiter that enforces them.
//! * `host`: the store's state and the linker (WASI preview 1 plus wasp's `panic`).
//! * `invoke`: running one job in a fresh store and classifying how it ended.
//! * `epoch`: the ticker thread behind timeouts and cancellation.
//! * `backend`: one engine with its linkers, ticker and disk cache directory; jobs with a
//!   fuel budget get an engine of their own.
//! * `component`: components (`runtime/wit/wasp.wit`): WASI 0.2, their store and their jobs.
//! * `segments`: a job's arguments written into its memory from several segments (values
//!   taken by reference are copied once, into the job).
//! * `determinism`: whether a job read a clock or random numbers (only a job that did not
//!   may have its result cached).

mod backend;
mod capture;
mod component;
mod determinism;
pub(crate) mod disk;
mod epoch;
mod exports;
mod host;
mod invoke;
mod limits;
mod restore;
mod segments;
mod shipped;

pub(crate) use invoke::{Cancel, RawOutcome};
pub(crate) use limits::Asked;
use limits::COMPONENT_LIMITS;
pub use limits::{DEFAULT_MAX_MEMORY, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_TABLE_ELEMENTS, Limits};
pub(crate) use shipped::Shipped;
pub use shipped::{BASELINE, PrecompileError, precompile_for_shipping};

use crate::error::{ConfigError, JobError};
use crate::module::{self, Module, ModuleKind};
use backend::Backend;
use disk::DiskCache;
use host::HostState;
use std::sync::OnceLock;
use tracing::{debug, warn};
use wasmparser::WasmFeatures;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, PoolingAllocationConfig,
};

/// How many instances may be alive at once: the pooling allocator reserves address space for
/// this many up front (4 GiB each, so that compiled code needs no bounds checks), so it also
/// bounds the number of workers. Where the address space cannot hold them all (an aarch64
/// kernel with 39-bit addresses, `ulimit -v`), the pool holds the largest power of two that
/// fits, and a server refuses more workers than that.
pub const MAX_CONCURRENT_INSTANCES: u32 = 256;

/// Bytes of each pool slot kept resident between jobs and reset in place.
const KEEP_RESIDENT: usize = 2 << 20;

/// The same for components, whose memories start larger.
const COMPONENT_KEEP_RESIDENT: usize = 32 << 20;

/// A module compiled for one of the sandbox's engines and linked against its imports, ready
/// to be instantiated any number of times.
pub(crate) struct Compiled {
    code: Code,
    /// Where the compiled code came from.
    pub(crate) origin: Origin,
    /// Whether the code counts fuel: it runs only jobs with a fuel budget.
    metered: bool,
}

/// The linked code of a core module or of a component.
enum Code {
    Core(Core),
    Component(component::Prepared),
}

/// A core module's linked code and its ABI exports.
struct Core {
    pre: InstancePre<HostState>,
    exports: exports::Exports,
}

/// Where a [`Compiled`] module's code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Compiled by cranelift in this process.
    Compiled,
    /// Loaded from the on-disk cache.
    DiskCache,
    /// Loaded from code shipped with the program, compiled for the architecture's baseline.
    Shipped,
}

/// The engines jobs run on: one for ordinary jobs, and one whose code counts fuel for jobs
/// with a fuel budget ([`Limits::fuel`]). Counting fuel slows code down, and whether code
/// counts it is decided when it is compiled, hence two engines; the second is built at the
/// first job that needs it.
pub(crate) struct Sandbox {
    plain: Backend,
    metered: OnceLock<Result<Backend, ConfigError>>,
    /// The engines for components, without and with fuel, built at their first job: the
    /// component model, and instances allocated on demand (a component links several core
    /// modules, which the pool's slots are not sized for).
    components: [OnceLock<Result<Backend, ConfigError>>; 2],
    /// The disk cache's root, for the metered engine (each engine has its own directory).
    disk: Option<DiskCache>,
    /// Code shipped with the program, for the components engine without fuel.
    shipped: Option<Shipped>,
    /// How many instances the plain engine's pool holds at once: the most workers that can
    /// run jobs.
    slots: u32,
    /// The component instances kept between jobs that asked for reuse, one per worker.
    kept: component::Kept,
}

impl Sandbox {
    /// Builds the engine for ordinary jobs (pooling allocator, epoch interruption), its
    /// linker and its ticker.
    ///
    /// The pool gets [`MAX_CONCURRENT_INSTANCES`] slots where the address space holds them
    /// (about 1 TiB: any x86-64 Linux, aarch64 kernels with 48-bit addresses), and the
    /// largest power of two that fits elsewhere: aarch64 kernels built with 39-bit addresses
    /// (512 GiB for user space, as Raspberry Pi OS ships) or a process under `ulimit -v`
    /// would otherwise refuse to start at all.
    pub(crate) fn new(
        disk: Option<DiskCache>,
        shipped: Option<Shipped>,
    ) -> Result<Self, ConfigError> {
        let (engine, slots) = largest_pool(MAX_CONCURRENT_INSTANCES, |slots| {
            let pool = pool_config(slots, Enabled::Auto);
            Engine::new(&engine_config(InstanceAllocationStrategy::Pooling(pool)))
        })
        .map_err(|err| ConfigError::Engine(format!("{err:#}")))?;
        if slots < MAX_CONCURRENT_INSTANCES {
            warn!(
                "the address space holds {slots} sandbox slots, not {MAX_CONCURRENT_INSTANCES}: \
                 give this server at most {slots} workers"
            );
        }
        log_memory_reset();
        let mut sandbox = Self::with_engine(engine, slots, disk)?;
        sandbox.shipped = shipped;
        Ok(sandbox)
    }

    /// A sandbox whose ordinary jobs run on `engine`, which must have epoch interruption on
    /// and a pool of `slots` instances.
    fn with_engine(
        engine: Engine,
        slots: u32,
        disk: Option<DiskCache>,
    ) -> Result<Self, ConfigError> {
        Ok(Sandbox {
            plain: Backend::start(engine, disk.clone(), false)?,
            metered: OnceLock::new(),
            components: Default::default(),
            disk,
            shipped: None,
            slots,
            kept: component::Kept::default(),
        })
    }

    /// What names this sandbox's engine in caches: wasmtime's version, configuration and
    /// the CPU features it compiles for (`disk::engine_key`).
    pub(crate) fn engine_key(&self) -> String {
        disk::engine_key(self.plain.engine())
    }

    /// How many jobs can run at once: the number of instances the pool holds.
    pub(crate) fn slots(&self) -> u32 {
        self.slots
    }

    /// The engine for jobs with a fuel budget, built at the first one. It allocates each
    /// instance on demand rather than from a pool of its own, which would double the address
    /// space the sandbox reserves.
    fn metered(&self) -> Result<&Backend, JobError> {
        let built = self.metered.get_or_init(|| {
            let mut config = engine_config(InstanceAllocationStrategy::OnDemand);
            config.consume_fuel(true);
            let engine =
                Engine::new(&config).map_err(|err| ConfigError::Engine(format!("{err:#}")))?;
            debug!("sandbox: engine for jobs with a fuel budget built");
            Backend::start(engine, self.disk.clone(), false)
        });
        built
            .as_ref()
            .map_err(|err| JobError::Internal(format!("no engine for jobs with fuel: {err}")))
    }

    /// The engine for components, with code that counts fuel if `metered`, built at the
    /// first component job that needs it.
    fn components(&self, metered: bool) -> Result<&Backend, JobError> {
        let built = self.components[usize::from(metered)].get_or_init(|| {
            let restores = restore::supported();
            let engine = if restores {
                component_engine_restoring(metered)
            } else {
                component_engine_pooled(self.slots, metered)
            }
            .map_err(|err| ConfigError::Engine(format!("{err:#}")))?;
            debug!(metered, restores, "sandbox: engine for components built");
            let backend = Backend::start_restoring(engine, self.disk.clone(), true, restores)?;
            // Shipped code is compiled without fuel.
            let shipped = if metered { None } else { self.shipped.clone() };
            Ok(backend.with_shipped(shipped))
        });
        built
            .as_ref()
            .map_err(|err| JobError::Internal(format!("no engine for components: {err}")))
    }

    /// The engine `module`'s code is compiled for, with code that counts fuel if `metered`.
    fn backend(&self, kind: ModuleKind, metered: bool) -> Result<&Backend, JobError> {
        match (kind, metered) {
            (ModuleKind::Core, false) => Ok(&self.plain),
            (ModuleKind::Core, true) => self.metered(),
            (ModuleKind::Component, metered) => self.components(metered),
        }
    }

    /// Compiles `module` (or loads its code from the disk cache) and links it, for jobs with
    /// a fuel budget if `metered`.
    pub(crate) fn prepare(&self, module: &Module, metered: bool) -> Result<Compiled, JobError> {
        self.backend(module.kind(), metered)?
            .prepare(module, metered)
    }

    /// Runs job `function` of `compiled` for `owner` in a fresh instance; for a component,
    /// possibly in the instance this thread kept from the owner's last job of it: as that
    /// job left it if `reuse`, or else put back to its first state where the component's
    /// instances can be. `compiled` must have been prepared for these limits: metered if
    /// and only if they give fuel.
    #[allow(clippy::too_many_arguments, reason = "one job's every part")]
    pub(crate) fn run(
        &self,
        compiled: &Compiled,
        function: &str,
        args: &[&[u8]],
        limits: &Limits,
        cancel: &Cancel,
        owner: u64,
        reuse: bool,
    ) -> RawOutcome {
        let kind = match compiled.code {
            Code::Core(_) => ModuleKind::Core,
            Code::Component(_) => ModuleKind::Component,
        };
        let backend = match self.backend(kind, compiled.metered) {
            Ok(backend) => backend,
            Err(err) => return RawOutcome::failed(err),
        };
        if compiled.metered != limits.fuel.is_some() {
            return RawOutcome::failed(JobError::Internal(
                "the job's code was compiled for another fuel setting".into(),
            ));
        }
        let reuse = component::Reuse {
            kept: &self.kept,
            owner,
            asked: reuse,
        };
        backend.run(compiled, function, args, limits, cancel, reuse)
    }

    /// Drops the instance the calling worker thread kept for reuse, if any: the worker
    /// retires.
    pub(crate) fn release_thread(&self) {
        self.kept.release_thread();
    }

    /// Drops the instances kept for `owner`'s jobs (a node's client that left), at once
    /// rather than when their workers next run a component job; how many there were.
    pub(crate) fn forget_owner(&self, owner: u64) -> usize {
        self.kept.forget_owner(owner)
    }
}

/// Calls `build` with `most` slots, then half as many each time it fails, down to one: the
/// first pool that can be reserved, and its size; or the error of the smallest.
///
/// Only the reservation of the pool's address space depends on the number of slots, so on a
/// host where that succeeds the first call is the only one.
fn largest_pool<T, E>(
    most: u32,
    mut build: impl FnMut(u32) -> Result<T, E>,
) -> Result<(T, u32), E> {
    let mut slots = most.max(1);
    loop {
        match build(slots) {
            Ok(built) => return Ok((built, slots)),
            Err(err) if slots == 1 => return Err(err),
            Err(_) => slots /= 2,
        }
    }
}

/// Says (at debug level) how pool slots will be reset between jobs on this host.
fn log_memory_reset() {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        debug!("sandbox memory reset: dirty pages found with PAGEMAP_SCAN");
    } else {
        // Linux before 6.7, or an emulator (qemu-user) that does not forward the ioctl:
        // wasmtime resets the first KEEP_RESIDENT bytes of a slot in place and decommits the
        // rest, which is as correct, only slower for jobs that touch little memory.
        debug!(
            keep_resident = KEEP_RESIDENT,
            "sandbox memory reset: PAGEMAP_SCAN unavailable, resetting the resident part of each slot"
        );
    }
}

/// The pooling allocator for `slots` instances at once; `pagemap` says whether dirty pages
/// are found with Linux's `PAGEMAP_SCAN` ioctl (`Auto`: where the kernel has it).
fn pool_config(slots: u32, pagemap: Enabled) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        // Per-job caps are enforced by the store limiter; the pool only has to accept any
        // size a wasm32 memory can have.
        .max_memory_size(4 << 30)
        .max_memories_per_module(1)
        .max_tables_per_module(module::MAX_TABLES)
        .table_elements(DEFAULT_MAX_TABLE_ELEMENTS as usize)
        // Per-job instantiation cost is dominated by resetting memory between jobs. Keeping
        // slots resident and resetting only their dirty pages (found with the PAGEMAP_SCAN
        // ioctl where the kernel has it) avoids an madvise, its TLB shootdown across cores,
        // and the page faults of the next job. KEEP_RESIDENT is a multiple of every page
        // size Linux uses (4, 16 and 64 KiB), and wasmtime rounds it to the host's anyway.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(pagemap)
        // Reuse the slots a module used last (they hold its memory image) before cold ones,
        // which also bounds the resident memory to what concurrent jobs need.
        .max_unused_warm_slots(0);
    pool
}

/// The pooling allocator for `slots` component instances at once, each linking up to
/// [`COMPONENT_LIMITS`]'s core instances, memories and tables.
fn component_pool_config(slots: u32) -> PoolingAllocationConfig {
    let limits = COMPONENT_LIMITS;
    let mut pool = pool_config(slots, Enabled::Auto);
    pool.total_component_instances(slots)
        .total_core_instances(slots * limits.instances)
        .total_memories(slots * limits.memories)
        .total_tables(slots * limits.tables)
        .max_core_instances_per_component(limits.instances)
        .max_memories_per_component(limits.memories)
        .max_tables_per_component(limits.tables)
        .max_memories_per_module(limits.memories)
        .max_tables_per_module(limits.tables)
        // A component's memory starts larger (CPython's is 14 MiB): keep all of it
        // resident and reset only its dirty pages, rather than decommit it and take page
        // faults (and TLB shootdowns across cores) on each job.
        .linear_memory_keep_resident(COMPONENT_KEEP_RESIDENT)
        .table_keep_resident(COMPONENT_KEEP_RESIDENT);
    pool
}

/// The engine for components where kept instances can be put back (see `restore`): each
/// memory mapped by `restore::Memories`, instances allocated on demand (a worker keeps its
/// instance, so instantiation is rare).
fn component_engine_restoring(metered: bool) -> wasmtime::Result<Engine> {
    Engine::new(&component_config_restoring(metered))
}

/// The configuration of [`component_engine_restoring`]'s engine.
fn component_config_restoring(metered: bool) -> Config {
    let mut config = component_config(InstanceAllocationStrategy::OnDemand, metered);
    // Copy-on-write images are for memories wasmtime maps itself: with these, the data
    // segments are copied in when the instance is made (once per worker).
    config
        .with_host_memory(std::sync::Arc::new(restore::Memories))
        .memory_init_cow(false);
    config
}

/// The engine for components where kept instances cannot be put back (no `PAGEMAP_SCAN`):
/// a pool with a slot per worker, each job instantiating in one.
fn component_engine_pooled(slots: u32, metered: bool) -> wasmtime::Result<Engine> {
    let (engine, _) = largest_pool(slots, |slots| {
        let pool = component_pool_config(slots);
        let mut config = component_config(InstanceAllocationStrategy::Pooling(pool), metered);
        // Copy-on-write images make each page a job writes a fault, and each fault a TLB
        // shootdown across the cores the other workers run on: two workers ran CPython
        // slower than one. Copying the image into a resident slot scales (2.1x on 2
        // workers).
        config.memory_init_cow(false);
        Engine::new(&config)
    })?;
    Ok(engine)
}

/// What every component engine has: the component model, its features, and fuel if
/// `metered`.
fn component_config(allocation: InstanceAllocationStrategy, metered: bool) -> Config {
    let mut config = engine_config(allocation);
    config
        .wasm_component_model(true)
        .wasm_features(module::COMPONENT_FEATURES, true)
        .consume_fuel(metered);
    config
}

fn engine_config(allocation: InstanceAllocationStrategy) -> Config {
    let mut config = Config::new();
    config
        .allocation_strategy(allocation)
        .epoch_interruption(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        // What a module may use is decided once, with the loader (which checks it), so that
        // a module that loads also compiles.
        .wasm_features(WasmFeatures::all(), false)
        .wasm_features(module::FEATURES, true)
        // A job gives the same results on every node, whatever its architecture.
        .relaxed_simd_deterministic(true);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_pool_is_as_large_as_the_address_space_allows() {
        let mut tried = Vec::new();
        let fits = |slots: u32| if slots <= 40 { Ok(slots) } else { Err(slots) };
        let built = largest_pool(256, |slots| {
            tried.push(slots);
            fits(slots)
        });
        assert_eq!(built, Ok((32, 32)));
        assert_eq!(tried, [256, 128, 64, 32]);

        assert_eq!(largest_pool(256, Ok::<u32, ()>), Ok((256, 256)));
        assert_eq!(largest_pool(256, Err::<(), u32>), Err(1));
    }

    /// Runs `function` of `compiled` with `args`, expecting success; its MessagePack result.
    fn call<A: serde::Serialize>(
        sandbox: &Sandbox,
        compiled: &Compiled,
        function: &str,
        args: A,
    ) -> Vec<u8> {
        let args = rmp_serde::to_vec_named(&args).expect("arguments encode");
        let outcome = sandbox.run(
            compiled,
            function,
            &[&args],
            &Limits::default(),
            &Cancel::default(),
            0,
            false,
        );
        outcome
            .result
            .unwrap_or_else(|err| panic!("{function}: {err}"))
    }

    /// The fault this guards against: after a while with no job, the epoch ticker sleeps;
    /// a job that did not wake it would never see its timeout, and loop for ever. The test
    /// waits until the ticker is seen asleep (not for a time that may or may not be long
    /// enough on a loaded machine), then runs a job that spins: it times out.
    #[test]
    fn a_job_wakes_the_sleeping_ticker_and_times_out() {
        let module = Module::from_file(wasp_fixtures::WASP_TESTJOBS).expect("testjobs loads");
        let pool = InstanceAllocationStrategy::Pooling(pool_config(2, Enabled::Auto));
        let engine = Engine::new(&engine_config(pool)).expect("engine");
        let sandbox = Arc::new(Sandbox::with_engine(engine, 2, None).expect("sandbox"));
        let compiled = Arc::new(sandbox.prepare(&module, false).expect("testjobs compiles"));
        call(&sandbox, &compiled, "count_calls", ());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !sandbox.plain.ticker_asleep() {
            assert!(
                std::time::Instant::now() < deadline,
                "the idle ticker never slept"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let timeout = Duration::from_millis(200);
        let (done, outcome) = std::sync::mpsc::channel();
        let runner = (sandbox.clone(), compiled.clone());
        std::thread::spawn(move || {
            let (sandbox, compiled) = runner;
            let limits = Limits {
                timeout: Some(timeout),
                ..Limits::default()
            };
            let args = rmp_serde::to_vec_named(&()).expect("encodes");
            let spun = sandbox.run(
                &compiled,
                "spin",
                &[&args],
                &limits,
                &Cancel::default(),
                0,
                false,
            );
            let _ = done.send(spun.result);
        });
        // A job the ticker never woke for would spin for ever: bounded here.
        let result = outcome
            .recv_timeout(Duration::from_secs(30))
            .expect("the spinning job was stopped: the ticker woke");
        assert!(
            matches!(result, Err(JobError::Timeout(t)) if t == timeout),
            "{result:?}"
        );
    }

    /// wasp's Python runner passes the restore audit, and then runs each job in the
    /// worker's kept instance, put back after the job: the next job sees nothing the last
    /// one left, and a job that trapped leaves no instance behind.
    #[test]
    fn the_python_runner_is_put_back_after_each_job() {
        let Some(path) = restore::python_runner_for_tests() else {
            return;
        };
        if !restore::supported() {
            wasp_fixtures::cannot_run_here("PAGEMAP_SCAN is not available");
            return;
        }
        let module = Module::from_file(path).expect("the runner loads");
        let pool = InstanceAllocationStrategy::Pooling(pool_config(2, Enabled::Auto));
        let engine = Engine::new(&engine_config(pool)).expect("engine");
        let sandbox = Sandbox::with_engine(engine, 2, None).expect("sandbox");
        let compiled = sandbox
            .prepare(&module, false)
            .expect("the runner compiles");
        let Code::Component(prepared) = &compiled.code else {
            panic!("the runner is a component");
        };
        let source = "import sys\n\ndef mark(spin):\n    seen = getattr(sys, 'wasp_mark', None)\n    \
                      sys.wasp_mark = 'left'\n    while spin:\n        pass\n    return seen\n";
        let run = |spin: bool| {
            let args = rmp_serde::to_vec(&(source, "mark", (spin,), Vec::<String>::new()))
                .expect("encodes");
            let limits = Limits {
                timeout: Some(Duration::from_millis(300)),
                ..Limits::default()
            };
            sandbox.run(
                &compiled,
                "python",
                &[&args],
                &limits,
                &Cancel::default(),
                0,
                false,
            )
        };
        let unmarked = |outcome: RawOutcome| {
            let seen = outcome.result.expect("the job returns");
            rmp_serde::from_slice::<Option<String>>(&seen).expect("a string or nil")
        };
        // The audit starts after the component's first job.
        assert!(run(false).result.is_ok(), "a first job in a new instance");
        let audited = std::time::Instant::now();
        while !prepared.restorable() {
            assert!(
                audited.elapsed() < Duration::from_secs(60),
                "the audit never passed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for round in 1..=3 {
            assert_eq!(unmarked(run(false)), None, "round {round}");
            assert_eq!(sandbox.kept.restored_jobs(), Some(round), "round {round}");
        }
        let spun = run(true).result;
        assert!(matches!(spun, Err(JobError::Timeout(_))), "{spun:?}");
        assert_eq!(
            sandbox.kept.restored_jobs(),
            None,
            "the stopped instance was dropped"
        );
        assert_eq!(unmarked(run(false)), None);
        assert_eq!(sandbox.kept.restored_jobs(), Some(1), "a new instance");
    }

    /// Where `PAGEMAP_SCAN` is missing (Linux before 6.7, qemu-user), wasmtime resets the
    /// resident part of a slot in place and decommits the rest instead: either way no static
    /// survives from one job to the next, and a job that dirtied more than the resident part
    /// leaves a slot the next one runs in correctly.
    #[test]
    fn slots_are_reset_with_and_without_pagemap_scan() {
        let module = Module::from_file(wasp_fixtures::WASP_TESTJOBS).expect("testjobs loads");
        // 6 MiB of heap, more than KEEP_RESIDENT.
        let long = rmp_serde::to_vec_named(&"ab".repeat(3 << 20)).expect("encodes");
        for pagemap in [Enabled::No, Enabled::Auto] {
            let pool = InstanceAllocationStrategy::Pooling(pool_config(2, pagemap));
            let engine = Engine::new(&engine_config(pool)).expect("engine");
            let sandbox = Sandbox::with_engine(engine, 2, None).expect("sandbox");
            let compiled = sandbox.prepare(&module, false).expect("testjobs compiles");
            for _ in 0..3 {
                let calls = call(&sandbox, &compiled, "count_calls", ());
                let calls: u32 = rmp_serde::from_slice(&calls).expect("a u32");
                assert_eq!(calls, 1, "a static survived (pagemap_scan {pagemap:?})");
                let text = call(&sandbox, &compiled, "repeat", ("ab", 3u32 << 20));
                assert!(text == long, "repeat went wrong (pagemap_scan {pagemap:?})");
            }
        }
    }
}
