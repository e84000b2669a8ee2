//! One engine and what runs on it: its linkers, its epoch ticker and its part of the disk
//! cache. A sandbox has one for ordinary jobs and, once a job has a fuel budget, a second
//! whose code counts fuel; components get engines of their own (see `Sandbox`).

use super::component::{self, ComponentState};
use super::disk::{self, DiskCache};
use super::host::{self, HostState};
use super::shipped::Shipped;
use super::{Cancel, Code, Compiled, Core, Limits, Origin, RawOutcome, epoch, exports, invoke};
use crate::error::{ConfigError, JobError};
use crate::module::{Module, ModuleKind};
use wasmtime::{Engine, Linker};

/// The epoch tick: the granularity of timeouts and cancellation.
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// An engine with epoch interruption, ready to compile and run jobs.
pub(super) struct Backend {
    engine: Engine,
    linker: Linker<HostState>,
    /// The linker for components, on an engine with the component model on.
    components: Option<wasmtime::component::Linker<ComponentState>>,
    disk: Option<DiskCache>,
    /// Code shipped with the program, looked at after the disk cache.
    shipped: Option<Shipped>,
    ticker: epoch::Ticker,
    /// Whether the engine maps memories with `restore::Memories`, so that kept component
    /// instances can be put back after each job.
    restores: bool,
}

#[cfg(test)]
impl Backend {
    /// Whether this engine's ticker sleeps until the next job.
    pub(super) fn ticker_asleep(&self) -> bool {
        self.ticker.is_asleep()
    }
}

impl Backend {
    /// The linkers and the ticker of `engine`, which must have epoch interruption on (and
    /// the component model, if it runs `components`); its compiled code is kept in `disk`,
    /// in the engine's own directory.
    pub(super) fn start(
        engine: Engine,
        disk: Option<DiskCache>,
        components: bool,
    ) -> Result<Self, ConfigError> {
        Self::start_restoring(engine, disk, components, false)
    }

    /// As [`Backend::start`], for an engine whose memories are `restore::Memories` if
    /// `restores`.
    pub(super) fn start_restoring(
        engine: Engine,
        disk: Option<DiskCache>,
        components: bool,
        restores: bool,
    ) -> Result<Self, ConfigError> {
        let failed = |err: wasmtime::Error| ConfigError::Engine(format!("{err:#}"));
        let linker = host::linker(&engine).map_err(failed)?;
        let components = if components {
            Some(component::linker(&engine).map_err(failed)?)
        } else {
            None
        };
        let ticker = epoch::Ticker::start(engine.clone(), EPOCH_TICK)?;
        let disk = disk.map(|disk| disk.for_engine(&engine));
        Ok(Backend {
            engine,
            linker,
            components,
            disk,
            shipped: None,
            ticker,
            restores,
        })
    }

    /// This backend, looking for code in `shipped` when the disk cache has none.
    pub(super) fn with_shipped(mut self, shipped: Option<Shipped>) -> Self {
        self.shipped = shipped;
        self
    }

    /// The engine.
    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `module` (or loads its code from the disk cache) and links it.
    pub(super) fn prepare(&self, module: &Module, metered: bool) -> Result<Compiled, JobError> {
        let module_error = |err: wasmtime::Error| JobError::Module(format!("{err:#}"));
        let (code, origin) = match module.kind() {
            ModuleKind::Core => {
                let (code, origin) =
                    self.compile(module, |engine, bytes| wasmtime::Module::new(engine, bytes))?;
                let exports = exports::Exports::resolve(&code)?;
                let pre = self.linker.instantiate_pre(&code).map_err(module_error)?;
                (Code::Core(Core { pre, exports }), origin)
            }
            ModuleKind::Component => {
                let linker = self.components.as_ref().ok_or_else(|| {
                    JobError::Internal("a component sent to an engine for core modules".into())
                })?;
                let (code, origin) = self.compile(module, |engine, bytes| {
                    wasmtime::component::Component::new(engine, bytes)
                })?;
                let prepared = component::Prepared::new(linker, &code, module, self.restores)?;
                (Code::Component(prepared), origin)
            }
        };
        Ok(Compiled {
            code,
            origin,
            metered,
        })
    }

    /// The module's code: from the disk cache, from the shipped code, or compiled by `new`
    /// (and then cached).
    fn compile<C: disk::Code>(
        &self,
        module: &Module,
        new: impl FnOnce(&Engine, &[u8]) -> wasmtime::Result<C>,
    ) -> Result<(C, Origin), JobError> {
        if let Some(code) = self
            .disk
            .as_ref()
            .and_then(|disk| disk.load::<C>(&self.engine, module.hash()))
        {
            return Ok((code, Origin::DiskCache));
        }
        if let Some(code) = self
            .shipped
            .as_ref()
            .and_then(|shipped| shipped.load::<C>(&self.engine, module.hash()))
        {
            return Ok((code, Origin::Shipped));
        }
        let code = new(&self.engine, module.bytes())
            .map_err(|err| JobError::Module(format!("{err:#}")))?;
        if let Some(disk) = &self.disk {
            disk.store(module.hash(), &code);
        }
        Ok((code, Origin::Compiled))
    }

    /// Runs job `function` of `compiled` (prepared by this backend) in a fresh instance;
    /// for a component, in the one `reuse` kept on this thread from the owner's last job of
    /// it, either as that job left it (the job asked for reuse) or put back to its first
    /// state (a component whose instances can be).
    pub(super) fn run(
        &self,
        compiled: &Compiled,
        function: &str,
        args: &[&[u8]],
        limits: &Limits,
        cancel: &Cancel,
        reuse: component::Reuse<'_>,
    ) -> RawOutcome {
        let _running = self.ticker.job_running();
        match &compiled.code {
            Code::Core(core) => invoke::run(&self.engine, core, function, args, limits, cancel),
            Code::Component(prepared) => {
                let call = component::Call {
                    function,
                    args,
                    limits,
                    cancel,
                    warm: reuse.way(prepared).map(|way| component::WarmKey {
                        module: prepared.hash(),
                        metered: compiled.metered,
                        owner: reuse.owner,
                        way,
                    }),
                };
                component::run(&self.engine, reuse.kept, prepared, call)
            }
        }
    }
}
