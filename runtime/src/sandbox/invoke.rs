//! Running one job in a fresh instance, and turning however it ended into a result.

use super::Core;
use super::capture::Capture;
use super::determinism::Recorder;
use super::host::HostState;
use super::limits::Limits;
use super::segments;
use crate::error::{JobError, TrapKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::{Engine, Memory, Store, Trap, TypedFunc, UpdateDeadline};
use wasp_abi as abi;

/// The largest result buffer a job may return.
const MAX_RESULT_LEN: u32 = 256 << 20;

/// A flag that stops a running job at its next epoch tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// How a job ended, before its result is decoded into the caller's type.
#[derive(Debug, Clone)]
pub(crate) struct RawOutcome {
    /// The MessagePack-encoded result value, or why there is none.
    pub(crate) result: Result<Vec<u8>, JobError>,
    /// What the job wrote to stdout (at most the limit).
    pub(crate) stdout: Vec<u8>,
    /// What the job wrote to stderr (at most the limit).
    pub(crate) stderr: Vec<u8>,
    /// Wall time spent running the job, instantiation included.
    pub(crate) duration: Duration,
    /// The fuel the job used, if it had a budget ([`Limits::fuel`]).
    pub(crate) fuel_used: Option<u64>,
    /// Whether the outcome follows from the module, the arguments and the fuel alone: the
    /// job ran in a fresh instance, read no clock and no random numbers, and hit no memory,
    /// table or output limit. Only such a result may be cached.
    pub(crate) deterministic: bool,
}

impl RawOutcome {
    /// The outcome of a job that did not run, or could not finish, because of `err`.
    pub(crate) fn failed(err: JobError) -> Self {
        RawOutcome {
            result: Err(err),
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
            fuel_used: None,
            deterministic: false,
        }
    }
}

/// Why the epoch callback stopped a job.
#[derive(Debug, thiserror::Error)]
enum Interrupted {
    #[error("job timed out")]
    Timeout,
    #[error("job cancelled")]
    Cancelled,
}

pub(super) fn run(
    engine: &Engine,
    compiled: &Core,
    function: &str,
    args: &[&[u8]],
    limits: &Limits,
    cancel: &Cancel,
) -> RawOutcome {
    let started = Instant::now();
    let (stdout, stderr) = captures(limits);
    let recorder = Recorder::default();
    let mut store = Store::new(engine, HostState::new(limits, &stdout, &stderr, &recorder));
    store.limiter(|state| &mut state.limiter);
    let job = Job {
        started,
        limits,
        cancel,
        stdout,
        stderr,
        recorder,
        fresh: true,
    };
    job.run(&mut store, |store| {
        call(store, compiled, function, args).map(|buf| decode_status(&buf))
    })
}

/// A job's stdout and stderr captures, bounded by its output limit.
pub(super) fn captures(limits: &Limits) -> (Capture, Capture) {
    let max_output = usize::try_from(limits.max_output).unwrap_or(usize::MAX);
    (Capture::new(max_output), Capture::new(max_output))
}

/// What a job's store knows about how the job ended, beyond the error it returned.
pub(super) trait JobState: 'static {
    /// Whether the job tried to grow its memory past the limit.
    fn memory_exceeded(&self) -> bool;
    /// Whether the job was refused memory or table growth by its limits.
    fn limit_hit(&self) -> bool;
    /// What the job tried that the sandbox forbids, if it did.
    fn forbidden(&self) -> Option<&'static str>;
    /// The panic message the guest reported, if it panicked.
    fn panic(&self) -> Option<&str>;
}

impl JobState for HostState {
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
        self.panic.as_deref()
    }
}

/// One job about to run in a fresh store, whatever kind of module it is.
pub(super) struct Job<'a> {
    pub(super) started: Instant,
    pub(super) limits: &'a Limits,
    pub(super) cancel: &'a Cancel,
    pub(super) stdout: Capture,
    pub(super) stderr: Capture,
    /// Notes whether the job read a clock or random numbers.
    pub(super) recorder: Recorder,
    /// Whether the job runs in a fresh instance (not one kept from an earlier job).
    pub(super) fresh: bool,
}

impl Job<'_> {
    /// Arms the job's deadline and fuel, runs `call` in `store`, and says how it ended.
    pub(super) fn run<T: JobState>(
        self,
        store: &mut Store<T>,
        call: impl FnOnce(&mut Store<T>) -> Result<Result<Vec<u8>, JobError>, CallError>,
    ) -> RawOutcome {
        let limits = self.limits;
        arm_deadline(store, self.started, limits.timeout, self.cancel.clone());
        // wasmtime stops a job once its fuel is down to zero; with one unit more, a budget
        // is what a job may use, and a job that used N units runs again with a budget of N.
        let fuel = limits.fuel.map(|budget| budget.saturating_add(1));
        let result = match fuel.map(|fuel| store.set_fuel(fuel)) {
            // Only an engine that does not count fuel refuses it: the caller picks the
            // engine by the limits, so this is wasp's bug, not the job's.
            Some(Err(err)) => Err(JobError::Internal(format!(
                "cannot give the job fuel: {err}"
            ))),
            _ => call(store)
                .map_err(|err| classify(err, store.data(), limits, &self.stdout, &self.stderr))
                .and_then(|result| result),
        };
        let fuel_used = fuel.zip(limits.fuel).map(|(given, budget)| {
            let used = given.saturating_sub(store.get_fuel().unwrap_or(0));
            used.min(budget)
        });
        let deterministic = self.fresh
            && !self.recorder.read()
            && !store.data().limit_hit()
            && !self.stdout.overflowed()
            && !self.stderr.overflowed();
        RawOutcome {
            result,
            stdout: self.stdout.take(),
            stderr: self.stderr.take(),
            duration: self.started.elapsed(),
            fuel_used,
            deterministic,
        }
    }
}

/// Checks the timeout and the cancel flag at every epoch tick.
fn arm_deadline<T>(
    store: &mut Store<T>,
    started: Instant,
    timeout: Option<Duration>,
    cancel: Cancel,
) {
    let deadline = timeout.map(|timeout| started + timeout);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if cancel.is_cancelled() {
            return Err(wasmtime::Error::new(Interrupted::Cancelled));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(wasmtime::Error::new(Interrupted::Timeout));
        }
        Ok(UpdateDeadline::Continue(1))
    });
}

/// Errors of the call itself, before classification.
pub(super) enum CallError {
    /// wasmtime reported an error or trap.
    Wasm(wasmtime::Error),
    /// The guest broke the ABI.
    Abi(String),
}

impl From<wasmtime::Error> for CallError {
    fn from(err: wasmtime::Error) -> Self {
        CallError::Wasm(err)
    }
}

/// Instantiates, passes the arguments, calls the job and copies its result buffer out.
fn call(
    store: &mut Store<HostState>,
    compiled: &Core,
    function: &str,
    args: &[&[u8]],
) -> Result<Vec<u8>, CallError> {
    let exports = &compiled.exports;
    let instance = compiled.pre.instantiate(&mut *store)?;
    if let Some(init) = exports.initialize(store, &instance) {
        init.call(&mut *store, ())?;
    }
    let memory = exports
        .memory(store, &instance)
        .ok_or_else(|| CallError::Abi(format!("no `{}` export", abi::MEMORY)))?;
    let alloc = exports.alloc(store, &instance).map_err(CallError::Abi)?;
    let args = write_args(store, alloc, memory, args)?;
    let job = exports
        .job(store, &instance, function)
        .map_err(CallError::Abi)?;
    let packed = job.call(&mut *store, args)?;
    read_result(store, memory, packed)
}

/// Allocates the arguments' buffer in the guest and fills it from the arguments' segments;
/// returns its address and length.
fn write_args(
    store: &mut Store<HostState>,
    alloc: TypedFunc<u32, u32>,
    memory: Memory,
    args: &[&[u8]],
) -> Result<(u32, u32), CallError> {
    let len = u32::try_from(segments::total(args))
        .map_err(|_| CallError::Abi("arguments too large".into()))?;
    let ptr = alloc.call(&mut *store, len)?;
    if ptr == 0 && len > 0 {
        return Err(CallError::Abi(format!(
            "`{}` returned null for {len} bytes",
            abi::ALLOC
        )));
    }
    segments::write(&mut *store, memory, ptr as usize, args).map_err(|_| {
        CallError::Abi(format!("`{}` returned a buffer outside memory", abi::ALLOC))
    })?;
    Ok((ptr, len))
}

fn read_result(
    store: &Store<HostState>,
    memory: Memory,
    packed: u64,
) -> Result<Vec<u8>, CallError> {
    let (ptr, len) = abi::unpack_result(packed);
    if len > MAX_RESULT_LEN {
        return Err(CallError::Abi(format!(
            "result of {len} bytes exceeds the limit of {MAX_RESULT_LEN}"
        )));
    }
    let mut buf = vec![0; len as usize];
    memory
        .read(store, ptr as usize, &mut buf)
        .map_err(|_| CallError::Abi("result buffer outside memory".into()))?;
    Ok(buf)
}

/// Splits a result buffer into its status and payload.
fn decode_status(buf: &[u8]) -> Result<Vec<u8>, JobError> {
    let message = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match buf.split_first() {
        Some((&abi::STATUS_OK, value)) => Ok(value.to_vec()),
        Some((&abi::STATUS_JOB_ERROR, text)) => Err(JobError::Failed(message(text))),
        Some((&abi::STATUS_BAD_ARGUMENTS, text)) => Err(JobError::BadArguments(message(text))),
        Some((status, _)) => Err(JobError::Abi(format!("unknown result status {status}"))),
        None => Err(JobError::Abi("empty result buffer".into())),
    }
}

/// Names what stopped a job. Limits come first: hitting one makes the guest trap, and the
/// trap is only the symptom.
fn classify(
    err: CallError,
    state: &impl JobState,
    limits: &Limits,
    stdout: &Capture,
    stderr: &Capture,
) -> JobError {
    let err = match err {
        CallError::Abi(message) => return JobError::Abi(message),
        CallError::Wasm(err) => err,
    };
    if state.memory_exceeded() {
        return JobError::MemoryLimit {
            limit: limits.max_memory,
        };
    }
    for (stream, capture) in [("stdout", stdout), ("stderr", stderr)] {
        if capture.overflowed() {
            return JobError::OutputLimit {
                stream: stream.into(),
                limit: limits.max_output,
            };
        }
    }
    if let Some(interrupted) = err.downcast_ref::<Interrupted>() {
        return match interrupted {
            Interrupted::Timeout => JobError::Timeout(limits.timeout.unwrap_or_default()),
            Interrupted::Cancelled => JobError::Cancelled("the server is shutting down".into()),
        };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return JobError::Exited(exit.0);
    }
    if let Some(what) = state.forbidden() {
        return JobError::Forbidden(what.to_string());
    }
    if let Some(message) = state.panic() {
        return JobError::Panic(message.to_string());
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            return JobError::FuelExhausted {
                limit: limits.fuel.unwrap_or_default(),
            };
        }
        Some(trap) => {
            return JobError::Trap {
                kind: trap_kind(*trap),
            };
        }
        None => {}
    }
    JobError::Module(format!("{err:#}"))
}

fn trap_kind(trap: Trap) -> TrapKind {
    match trap {
        Trap::StackOverflow => TrapKind::StackOverflow,
        Trap::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        Trap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        Trap::IntegerOverflow => TrapKind::IntegerOverflow,
        Trap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        Trap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        Trap::BadSignature => TrapKind::BadSignature,
        other => TrapKind::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_statuses() {
        assert_eq!(decode_status(&[abi::STATUS_OK, 7]), Ok(vec![7]));
        assert_eq!(
            decode_status(b"\x01boom"),
            Err(JobError::Failed("boom".into()))
        );
        assert!(matches!(
            decode_status(b"\x02x"),
            Err(JobError::BadArguments(_))
        ));
        assert!(matches!(decode_status(b"\x09"), Err(JobError::Abi(_))));
        assert!(matches!(decode_status(b""), Err(JobError::Abi(_))));
    }
}
