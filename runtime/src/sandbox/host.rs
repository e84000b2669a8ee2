//! What a job's store holds, and the imports the sandbox provides.

use super::capture::Capture;
use super::determinism::Recorder;
use super::limits::{Limiter, Limits};
use wasmtime::{Caller, Engine, Extern, Linker};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasp_abi as abi;

/// The longest panic message kept from a guest.
const MAX_PANIC_MESSAGE: usize = 16 * 1024;

/// The state of one job's store.
pub(crate) struct HostState {
    /// WASI preview 1: no preopened directories, no environment, no arguments, no sockets;
    /// stdout and stderr go to bounded captures.
    wasi: WasiP1Ctx,
    /// Enforces the job's memory and table limits.
    pub(super) limiter: Limiter,
    /// The panic message the guest reported, if it panicked.
    pub(super) panic: Option<String>,
    /// What the guest tried that the sandbox forbids, if it did: it was stopped for it.
    pub(super) forbidden: Option<&'static str>,
}

impl HostState {
    pub(super) fn new(
        limits: &Limits,
        stdout: &Capture,
        stderr: &Capture,
        recorder: &Recorder,
    ) -> Self {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        recorder.install(&mut wasi);
        let wasi = wasi.build_p1();
        HostState {
            wasi,
            limiter: Limiter::new(limits),
            panic: None,
            forbidden: None,
        }
    }
}

/// The linker every module is instantiated with.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| &mut state.wasi)?;
    // A job that sleeps would block its worker inside the host, where no timeout can stop
    // it: waiting stops the job instead.
    linker.allow_shadowing(true);
    linker.func_wrap(abi::WASI_MODULE, "poll_oneoff", refuse_to_wait)?;
    // wasmtime-wasi turns a status of 126 or more into an untyped error; every status is
    // an exit here.
    linker.func_wrap(abi::WASI_MODULE, "proc_exit", exit)?;
    linker.allow_shadowing(false);
    linker.func_wrap(abi::HOST_MODULE, abi::HOST_PANIC, report_panic)?;
    Ok(linker)
}

/// `poll_oneoff(in, out, nsubscriptions, nevents)`: stops the job at once, with
/// [`JobError::Forbidden`](crate::JobError::Forbidden), instead of holding a worker past
/// its timeout.
fn refuse_to_wait(
    mut caller: Caller<'_, HostState>,
    _subscriptions: i32,
    _events: i32,
    _count: i32,
    _events_written: i32,
) -> wasmtime::Result<i32> {
    const WHAT: &str = "waiting (WASI poll_oneoff, e.g. thread::sleep)";
    caller.data_mut().forbidden = Some(WHAT);
    Err(wasmtime::format_err!("the job tried {WHAT}"))
}

/// `proc_exit(status)`: ends the job with [`JobError::Exited`](crate::JobError::Exited),
/// whatever the status.
fn exit(_caller: Caller<'_, HostState>, status: i32) -> wasmtime::Result<()> {
    Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(status)))
}

/// `wasp::panic(ptr, len)`: the guest reports its panic message before aborting.
fn report_panic(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) {
    let Some(Extern::Memory(memory)) = caller.get_export(abi::MEMORY) else {
        return;
    };
    let start = ptr as u32 as usize;
    let len = (len as u32 as usize).min(MAX_PANIC_MESSAGE);
    let message = memory
        .data(&caller)
        .get(start..start.saturating_add(len))
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_else(|| "panic message out of bounds".to_string());
    caller.data_mut().panic = Some(message);
}
