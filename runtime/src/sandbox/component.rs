//! Components (the contract is `runtime/wit/wasp.wit`): their store, their WASI 0.2 imports,
//! and running one of their jobs in a fresh instance.

use super::capture::Capture;
use super::determinism::{self, Recorder, Records};
use super::invoke::{CallError, Job, JobState, captures};
use super::limits::{Limiter, Limits};
use super::restore::{self, Region};
use super::segments::Segments;
use super::{Cancel, RawOutcome};
use crate::error::JobError;
use crate::module::{Module, ModuleHash};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::Instant;
use tracing::debug;
use wasmtime::component::{
    Component, ComponentExportIndex, Instance, InstancePre, Linker, ResourceTable,
};
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
    /// Notes whether the job read a clock or random numbers.
    recorder: Recorder,
}

impl ComponentState {
    fn new(limits: &Limits, stdout: &Capture, stderr: &Capture, recorder: Recorder) -> Self {
        let mut ctx = WasiCtxBuilder::new();
        ctx.stdout(stdout.clone()).stderr(stderr.clone());
        recorder.install(&mut ctx);
        ComponentState {
            ctx: ctx.build(),
            table: ResourceTable::new(),
            limiter: Limiter::for_component(limits),
            forbidden: None,
            recorder,
        }
    }
}

impl Records for ComponentState {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

impl ComponentState {
    /// Readies a kept instance's state for its next job, under that job's limits.
    fn prepare_next(&mut self, limits: &Limits) {
        self.limiter.renew(limits);
        self.forbidden = None;
        self.recorder.clear();
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

    fn limit_hit(&self) -> bool {
        self.limiter.refused()
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
    determinism::shadow_insecure_seed(&mut linker.instance(determinism::INSECURE_SEED_INTERFACE)?)?;
    Ok(linker)
}

/// A component compiled and linked, with its jobs' export indices resolved.
pub(crate) struct Prepared {
    pre: InstancePre<ComponentState>,
    jobs: HashMap<String, ComponentExportIndex>,
    hash: ModuleHash,
    /// Whether a kept instance of it can be put back to its first state after each job
    /// (see `restore`), so that jobs get a fresh instance without instantiating one: unset
    /// until the audit, which reads the whole component on a thread of its own, has said
    /// (until then each job instantiates).
    restorable: Arc<OnceLock<bool>>,
    /// The module, until its audit is started: after the component's first job, so that
    /// the audit takes no core from what a new process does first (loading and checking
    /// modules, that job).
    audit: Mutex<Option<Module>>,
}

impl Prepared {
    /// Links `component`, the code of `module` (whose jobs were checked when it loaded);
    /// if `restores` (the engine maps memories with `restore::Memories`), checks whether its
    /// instances can be put back.
    pub(super) fn new(
        linker: &Linker<ComponentState>,
        component: &Component,
        module: &Module,
        restores: bool,
    ) -> Result<Self, JobError> {
        let pre = linker
            .instantiate_pre(component)
            .map_err(|err| JobError::Module(format!("{err:#}")))?;
        let jobs = module
            .jobs()
            .iter()
            .map(|job| {
                let index = component
                    .get_export_index(None, job)
                    .ok_or_else(|| JobError::Abi(format!("no `{job}` export")))?;
                Ok((job.clone(), index))
            })
            .collect::<Result<_, JobError>>()?;
        let restorable = Arc::new(OnceLock::new());
        let audit = if restores {
            Some(module.clone())
        } else {
            let _ = restorable.set(false);
            None
        };
        Ok(Prepared {
            pre,
            jobs,
            hash: module.hash(),
            restorable,
            audit: Mutex::new(audit),
        })
    }

    /// The hash of the component's module.
    pub(super) fn hash(&self) -> ModuleHash {
        self.hash
    }

    /// Whether its kept instances are put back after each job (see `restore`): not until
    /// the audit has said so.
    pub(super) fn restorable(&self) -> bool {
        self.restorable.get().copied().unwrap_or(false)
    }

    /// Starts the restore audit if it has not been: called after each job until it is.
    fn start_audit(&self) {
        if self.restorable.get().is_some() {
            return;
        }
        let module = self.audit.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(module) = module {
            audit_in_background(module, self.restorable.clone());
        }
    }
}

/// Audits `module` for `restore` on a thread of its own (reading a large component takes
/// tens of milliseconds, which a new process's first job should not wait for), and sets
/// `verdict`.
fn audit_in_background(module: Module, verdict: Arc<OnceLock<bool>>) {
    let audit = move || {
        let restorable = match restore::check(module.bytes()) {
            Ok(()) => true,
            Err(why) => {
                debug!(module = %module.hash(), %why, "each job of this component instantiates it");
                false
            }
        };
        let _ = verdict.set(restorable);
    };
    let spawned = std::thread::Builder::new()
        .name("wasp-audit".into())
        .spawn(audit);
    if let Err(err) = spawned {
        // Without the thread, the component's jobs instantiate, as before.
        debug!(%err, "no thread for a component's restore audit");
    }
}

/// The Rust type of a job function (`func(list<u8>) -> result<list<u8>, string>`), its
/// list made from the arguments' segments.
type JobFunc<'a> = wasmtime::component::TypedFunc<(Segments<'a>,), (Result<Vec<u8>, String>,)>;

/// One job of a component: what to call, with what, under which limits.
pub(super) struct Call<'a> {
    pub(super) function: &'a str,
    /// The arguments' segments, written one after the other into the job's list.
    pub(super) args: &'a [&'a [u8]],
    pub(super) limits: &'a Limits,
    pub(super) cancel: &'a Cancel,
    /// Set: the job may run in the instance kept for this key (and leaves it kept).
    pub(super) warm: Option<WarmKey>,
}

/// What a kept instance may be reused for: the same module, on the same engine (with or
/// without fuel), for the same owner (a node's jobs of one client never see another's),
/// in the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WarmKey {
    pub(super) module: ModuleHash,
    pub(super) metered: bool,
    pub(super) owner: u64,
    pub(super) way: Way,
}

/// How a kept instance serves its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Way {
    /// As its last job left it (the owner asked for reuse).
    Reused,
    /// Put back to the state it was instantiated in after every job: each job sees a fresh
    /// instance.
    Restored,
}

/// How many jobs a restored instance serves before it is dropped: a job's host resources
/// (a stream it opened and its memory forgot) outlive the restore, so they are bounded.
const MAX_RESTORED_JOBS: u32 = 10_000;

/// Where a job may find an instance kept for it (`kept`), and whether it asked for reuse.
pub(super) struct Reuse<'a> {
    pub(super) kept: &'a Kept,
    /// Whose job it is (a node's client; a server's own jobs have one owner).
    pub(super) owner: u64,
    pub(super) asked: bool,
}

impl Reuse<'_> {
    /// How a kept instance of `prepared` may serve the job, if one may.
    pub(super) fn way(&self, prepared: &Prepared) -> Option<Way> {
        if self.asked {
            Some(Way::Reused)
        } else if prepared.restorable() {
            Some(Way::Restored)
        } else {
            None
        }
    }
}

/// An instance kept between jobs, with its store and its output captures.
struct Warm {
    key: WarmKey,
    store: Store<ComponentState>,
    instance: Instance,
    stdout: Capture,
    stderr: Capture,
    /// Its memories, snapshotted when it was made (a restored instance's).
    memories: Vec<Arc<Region>>,
    /// How many jobs it has run.
    jobs: u32,
}

/// The instances kept between jobs that asked for reuse: at most one per worker thread,
/// so that kept instances cost at most a worker's worth of memory each. They live here
/// rather than in the threads, so that a node can drop a departed client's at once
/// ([`Kept::forget_owner`]) instead of when that worker next runs a component job.
#[derive(Default)]
pub(crate) struct Kept {
    by_thread: Mutex<HashMap<ThreadId, Warm>>,
}

impl Kept {
    /// This thread's kept instance, taken out (whatever its key: it holds a pool slot this
    /// thread's next instance may need).
    fn take(&self) -> Option<Warm> {
        self.lock().remove(&std::thread::current().id())
    }

    /// Keeps `warm` as this thread's instance.
    fn keep(&self, warm: Warm) {
        let replaced = self.lock().insert(std::thread::current().id(), warm);
        drop(replaced);
    }

    /// Drops the instance this thread kept, if any (a worker that retires).
    pub(crate) fn release_thread(&self) {
        let released = self.take();
        drop(released);
    }

    /// Drops every instance kept for `owner` (a node's client that left); how many.
    pub(crate) fn forget_owner(&self, owner: u64) -> usize {
        let forgotten: Vec<Warm> = {
            let mut kept = self.lock();
            let threads: Vec<ThreadId> = kept
                .iter()
                .filter(|(_, warm)| warm.key.owner == owner)
                .map(|(thread, _)| *thread)
                .collect();
            threads
                .iter()
                .filter_map(|thread| kept.remove(thread))
                .collect()
        };
        // Dropped outside the lock: resetting an instance's memory takes a while.
        forgotten.len()
    }

    /// How many jobs this thread's kept instance has run, if it is one put back after
    /// each job.
    #[cfg(test)]
    pub(super) fn restored_jobs(&self) -> Option<u32> {
        let kept = self.lock();
        let warm = kept.get(&std::thread::current().id())?;
        (warm.key.way == Way::Restored).then_some(warm.jobs)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ThreadId, Warm>> {
        self.by_thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs one job of `prepared`: in the instance kept on this thread for its key (made and
/// kept if there is none), or, where the job has no key (a component that cannot be put
/// back, on a host that cannot), in a fresh instance.
pub(super) fn run(engine: &Engine, kept: &Kept, prepared: &Prepared, call: Call<'_>) -> RawOutcome {
    let started = Instant::now();
    // This thread's kept instance is taken out whatever the job: it holds a pool slot a
    // fresh instance may need (the pool has a slot per worker it allows). It runs the job
    // only if its key is the job's, and if it holds no more than the job's limits allow:
    // memory or tables an earlier job grew would otherwise be above a smaller limit.
    let warm = kept.take().filter(|warm| {
        Some(warm.key) == call.warm && warm.store.data().limiter.within(call.limits)
    });
    let restored = call.warm.is_some_and(|key| key.way == Way::Restored);
    // A restored instance is as fresh as a new one: its result may be cached.
    let fresh = warm.is_none() || restored;
    let (mut store, mut instance, stdout, stderr, mut memories, jobs) = match warm {
        Some(mut warm) => {
            let max_output = usize::try_from(call.limits.max_output).unwrap_or(usize::MAX);
            warm.stdout.reset(max_output);
            warm.stderr.reset(max_output);
            warm.store.data_mut().prepare_next(call.limits);
            let instance = Some(warm.instance);
            (
                warm.store,
                instance,
                warm.stdout,
                warm.stderr,
                warm.memories,
                warm.jobs,
            )
        }
        None => {
            let (stdout, stderr) = captures(call.limits);
            let store = new_store(engine, call.limits, &stdout, &stderr);
            (store, None, stdout, stderr, Vec::new(), 0)
        }
    };
    let job = Job {
        started,
        limits: call.limits,
        cancel: call.cancel,
        stdout: stdout.clone(),
        stderr: stderr.clone(),
        recorder: store.data().recorder.clone(),
        fresh,
    };
    let mut snapshotted = true;
    let outcome = job.run(&mut store, |store| {
        let running = match instance {
            Some(running) => running,
            None if restored => {
                let (made, regions) = restore::capture(|| prepared.pre.instantiate(&mut *store));
                let made = made?;
                snapshotted = snapshot(&regions);
                memories = regions;
                *instance.insert(made)
            }
            None => *instance.insert(prepared.pre.instantiate(&mut *store)?),
        };
        invoke(store, &running, prepared, call.function, call.args)
    });
    // Only an instance whose job returned (a result, or its own error) is sound to keep:
    // one stopped in the middle (a trap, a limit, a timeout, a cancel) may be anything. One
    // refused memory (Python raised MemoryError, and the job failed or caught it) is full:
    // every later job would fail too. A cancelled job's instance is not kept either: its
    // client may have left (a node cancels a departed client's jobs before it forgets
    // their instances).
    let sound = matches!(&outcome.result, Ok(_) | Err(JobError::Failed(_)))
        && !store.data().limiter.refused()
        && !call.cancel.is_cancelled();
    let keep =
        sound && (!restored || (snapshotted && jobs < MAX_RESTORED_JOBS && put_back(&memories)));
    prepared.start_audit();
    if let (Some(key), Some(instance), true) = (call.warm, instance, keep) {
        kept.keep(Warm {
            key,
            store,
            instance,
            stdout,
            stderr,
            memories,
            jobs: jobs + 1,
        });
    }
    outcome
}

/// Snapshots the memories of an instance just made; whether all were (an instance with
/// none has nothing to put back, and is not kept either).
fn snapshot(memories: &[Arc<Region>]) -> bool {
    let taken = memories.iter().try_for_each(|memory| memory.snapshot());
    if let Err(err) = &taken {
        debug!(%err, "a memory could not be snapshotted: the instance will not be kept");
    }
    taken.is_ok() && !memories.is_empty()
}

/// Puts `memories` back to their snapshots; whether all were.
fn put_back(memories: &[Arc<Region>]) -> bool {
    let reset = memories.iter().try_for_each(|memory| {
        let reset = memory.reset()?;
        tracing::trace!(reset.pages, ?reset.found, "an instance's memory put back");
        Ok::<_, restore::ResetError>(())
    });
    if let Err(err) = &reset {
        debug!(%err, "an instance was not put back: the next job makes a new one");
    }
    reset.is_ok()
}

/// A fresh store for one job, its output going to `stdout` and `stderr`.
fn new_store(
    engine: &Engine,
    limits: &Limits,
    stdout: &Capture,
    stderr: &Capture,
) -> Store<ComponentState> {
    let state = ComponentState::new(limits, stdout, stderr, Recorder::default());
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store
}

/// Calls the job in `instance`: its MessagePack result, or the error text it returned (a
/// failed job), or how the call itself failed.
fn invoke(
    store: &mut Store<ComponentState>,
    instance: &Instance,
    prepared: &Prepared,
    function: &str,
    args: &[&[u8]],
) -> Result<Result<Vec<u8>, JobError>, CallError> {
    let index = prepared
        .jobs
        .get(function)
        .ok_or_else(|| CallError::Abi(format!("no job `{function}`")))?;
    let job: JobFunc<'_> = instance
        .get_typed_func(&mut *store, index)
        .map_err(|err| CallError::Abi(format!("job `{function}`: {err:#}")))?;
    let (result,) = job.call(&mut *store, (Segments(args),))?;
    Ok(result.map_err(JobError::Failed))
}
