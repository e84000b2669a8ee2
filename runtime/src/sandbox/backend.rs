//! One engine and what runs on it: its linker, its epoch ticker and its part of the disk
//! cache. A sandbox has one for ordinary jobs and, once a job has a fuel budget, a second
//! whose code counts fuel.

use super::host::{self, HostState};
use super::{Cancel, Compiled, Limits, Origin, RawOutcome, epoch, exports, invoke};
use crate::cache::disk::DiskCache;
use crate::error::{ConfigError, JobError};
use crate::module::Module;
use wasmtime::{Engine, Linker};

/// The epoch tick: the granularity of timeouts and cancellation.
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// An engine with epoch interruption, ready to compile and run jobs.
pub(super) struct Backend {
    engine: Engine,
    linker: Linker<HostState>,
    disk: Option<DiskCache>,
    ticker: epoch::Ticker,
}

impl Backend {
    /// The linker and the ticker of `engine`, which must have epoch interruption on; its
    /// compiled code is kept in `disk`, in the engine's own directory.
    pub(super) fn start(engine: Engine, disk: Option<DiskCache>) -> Result<Self, ConfigError> {
        let linker =
            host::linker(&engine).map_err(|err| ConfigError::Engine(format!("{err:#}")))?;
        let ticker = epoch::Ticker::start(engine.clone(), EPOCH_TICK)?;
        let disk = disk.map(|disk| disk.for_engine(&engine));
        Ok(Backend {
            engine,
            linker,
            disk,
            ticker,
        })
    }

    /// Compiles `module` (or loads its code from the disk cache) and links it.
    pub(super) fn prepare(&self, module: &Module, metered: bool) -> Result<Compiled, JobError> {
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
            metered,
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

    /// Runs job `function` of `compiled` (prepared by this backend) in a fresh instance.
    pub(super) fn run(
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
