//! Components (the contract is `runtime/wit/wasp.wit`): their store, their WASI 0.2 imports,
//! and running one of their jobs in a fresh instance.

use super::capture::Capture;
use super::invoke::{CallError, Job, JobState, captures};
use super::limits::{Limiter, Limits};
use super::{Cancel, RawOutcome};
use crate::error::JobError;
use std::collections::HashMap;
use std::time::Instant;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The WASI 0.2 `poll` interface, whose waiting the sandbox forbids (its version is the one
/// wasmtime-wasi defines; components importing any 0.2.x are linked to it).
const POLL_INTERFACE: &str = "wasi:io/poll@0.2.12";

/// What waiting is called in a [`JobError::Forbidden`].
const WAITING: &str = "waiting (WASI 0.2 poll, e.g. time.sleep)";

/// The state of one component job's store.
pub(crate) struct ComponentState {
    /// WASI 0.2: no preopened directories, environment, arguments or network; stdout and
    /// stderr go to bounded captures.
    ctx: WasiCtx,
    table: ResourceTable,
    /// Enforces the job's memory and table limits, over all the component's memories.
    limiter: Limiter,
    /// What the guest tried that the sandbox forbids, if it did: it was stopped for it.
    forbidden: Option<&'static str>,
}

impl ComponentState {
    fn new(limits: &Limits, stdout: &Capture, stderr: &Capture) -> Self {
        let ctx = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        ComponentState {
            ctx,
            table: ResourceTable::new(),
            limiter: Limiter::for_component(limits),
            forbidden: None,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl JobState for ComponentState {
    fn memory_exceeded(&self) -> bool {
        self.limiter.memory_exceeded
    }

    fn forbidden(&self) -> Option<&'static str> {
        self.forbidden
    }

    fn panic(&self) -> Option<&str> {
        None
    }
}

/// The linker every component is instantiated with: WASI 0.2, with waiting forbidden.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    // A job that waits would block its worker inside the host, where no timeout can stop
    // it: waiting stops the job instead, as it does for core modules.
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL_INTERFACE)?;
    for function in ["poll", "[method]pollable.block"] {
        poll.func_new(
            function,
            |mut store: StoreContextMut<'_, ComponentState>, _, _, _| {
                store.data_mut().forbidden = Some(WAITING);
                Err(wasmtime::format_err!("the job tried {WAITING}"))
            },
        )?;
    }
    Ok(linker)
}

/// A component compiled and linked, with its jobs' export indices resolved.
pub(crate) struct Prepared {
    pre: InstancePre<ComponentState>,
    jobs: HashMap<String, ComponentExportIndex>,
}

impl Prepared {
    /// Links `component`, whose jobs (checked when its module was loaded) are `jobs`.
    pub(super) fn new(
        linker: &Linker<ComponentState>,
        component: &Component,
        jobs: &[String],
    ) -> Result<Self, JobError> {
        let pre = linker
            .instantiate_pre(component)
            .map_err(|err| JobError::Module(format!("{err:#}")))?;
        let jobs = jobs
            .iter()
            .map(|job| {
                let index = component
                    .get_export_index(None, job)
                    .ok_or_else(|| JobError::Abi(format!("no `{job}` export")))?;
                Ok((job.clone(), index))
            })
            .collect::<Result<_, JobError>>()?;
        Ok(Prepared { pre, jobs })
    }
}

/// The Rust type of a job function (`func(list<u8>) -> result<list<u8>, string>`).
type JobFunc = wasmtime::component::TypedFunc<(Vec<u8>,), (Result<Vec<u8>, String>,)>;

/// Runs job `function` of `prepared` in a fresh instance.
pub(super) fn run(
    engine: &Engine,
    prepared: &Prepared,
    function: &str,
    args: &[u8],
    limits: &Limits,
    cancel: &Cancel,
) -> RawOutcome {
    let started = Instant::now();
    let (stdout, stderr) = captures(limits);
    let mut store = Store::new(engine, ComponentState::new(limits, &stdout, &stderr));
    store.limiter(|state| &mut state.limiter);
    let job = Job {
        started,
        limits,
        cancel,
        stdout,
        stderr,
    };
    job.run(store, |store| call(store, prepared, function, args))
}

/// Instantiates the component and calls the job: its MessagePack result, or the error text
/// it returned (a failed job), or how the call itself failed.
fn call(
    store: &mut Store<ComponentState>,
    prepared: &Prepared,
    function: &str,
    args: &[u8],
) -> Result<Result<Vec<u8>, JobError>, CallError> {
    let index = prepared
        .jobs
        .get(function)
        .ok_or_else(|| CallError::Abi(format!("no job `{function}`")))?;
    let instance = prepared.pre.instantiate(&mut *store)?;
    let job: JobFunc = instance
        .get_typed_func(&mut *store, index)
        .map_err(|err| CallError::Abi(format!("job `{function}`: {err:#}")))?;
    let (result,) = job.call(&mut *store, (args.to_vec(),))?;
    Ok(result.map_err(JobError::Failed))
}
