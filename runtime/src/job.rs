//! [`Job`]: the handle a caller holds for a submitted job.

use crate::error::JobError;
use crate::sandbox::RawOutcome;
use crate::waiting;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tracing::warn;

/// Identifies a job within its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job#{}", self.0)
    }
}

/// How a job ended, with everything it printed.
#[derive(Debug, Clone)]
pub struct JobOutput<T> {
    /// The job's result.
    pub result: Result<T, JobError>,
    /// What the job wrote to stdout (at most the output limit).
    pub stdout: Vec<u8>,
    /// What the job wrote to stderr (at most the output limit).
    pub stderr: Vec<u8>,
    /// Wall time the job ran for, instantiation included (zero if it never ran).
    pub duration: Duration,
    /// The worker that ran it (empty if it never ran).
    pub worker: String,
    /// The fuel the job used, if it had a budget ([`Limits::fuel`](crate::Limits::fuel)):
    /// the same on every run of the same call, on every machine.
    pub fuel_used: Option<u64>,
}

/// A finished job, shared by its handle, its callbacks and its group.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) outcome: RawOutcome,
    pub(crate) worker: String,
}

pub(crate) type Callback = Box<dyn FnOnce(&Finished) + Send>;

/// The meeting point of a job's worker and its waiters.
pub(crate) struct JobSlot {
    id: JobId,
    state: Mutex<SlotState>,
    released: Condvar,
    /// `SlotState::released`, readable without the lock: waiters spin on it briefly before
    /// they sleep.
    done: AtomicBool,
}

#[derive(Default)]
struct SlotState {
    finished: Option<Arc<Finished>>,
    /// Set once the callbacks have run: waiters wait for this, not for `finished`, so a
    /// callback's effects are visible to whoever waited on the job (as in pp).
    released: bool,
    callbacks: Vec<Callback>,
    wakers: Vec<Waker>,
    /// Threads blocked in `wait_until`: notifying costs a system call, so it is done only
    /// when someone waits.
    waiters: usize,
}

impl JobSlot {
    pub(crate) fn new(id: JobId) -> Arc<Self> {
        Arc::new(JobSlot {
            id,
            state: Mutex::new(SlotState::default()),
            released: Condvar::new(),
            done: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the job's end, runs its callbacks, then releases its waiters. A panicking
    /// callback is logged and does not keep the job from completing.
    pub(crate) fn complete(&self, finished: Finished) {
        let finished = Arc::new(finished);
        let callbacks = {
            let mut state = self.lock();
            if state.finished.is_some() {
                return; // completed already (e.g. cancelled during shutdown)
            }
            state.finished = Some(finished.clone());
            std::mem::take(&mut state.callbacks)
        };
        for callback in callbacks {
            run_callback(self.id, callback, &finished);
        }
        let (wakers, waiters) = {
            let mut state = self.lock();
            state.released = true;
            self.done.store(true, Ordering::Release);
            (std::mem::take(&mut state.wakers), state.waiters)
        };
        if waiters > 0 {
            self.released.notify_all();
        }
        wakers.into_iter().for_each(Waker::wake);
    }

    pub(crate) fn on_complete(&self, callback: Callback) {
        let finished = {
            let mut state = self.lock();
            match &state.finished {
                Some(finished) => finished.clone(),
                None => {
                    state.callbacks.push(callback);
                    return;
                }
            }
        };
        run_callback(self.id, callback, &finished);
    }

    fn is_released(&self) -> bool {
        self.lock().released
    }

    /// Blocks until the job is released, or until `deadline`.
    fn wait_until(&self, deadline: Option<Instant>) -> Option<Arc<Finished>> {
        waiting::spin_until(|| self.done.load(Ordering::Acquire));
        let mut state = self.lock();
        while !state.released {
            state.waiters += 1;
            let slept = waiting::sleep(&self.released, state, deadline);
            let timed_out = slept.is_err();
            state = slept.unwrap_or_else(|guard| guard);
            state.waiters -= 1;
            if timed_out {
                return None;
            }
        }
        state.finished.clone()
    }

    fn poll_released(&self, cx: &mut Context<'_>) -> Poll<Arc<Finished>> {
        let mut state = self.lock();
        match (&state.finished, state.released) {
            (Some(finished), true) => Poll::Ready(finished.clone()),
            _ => {
                if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

fn run_callback(id: JobId, callback: Callback, finished: &Finished) {
    if catch_unwind(AssertUnwindSafe(|| callback(finished))).is_err() {
        warn!(job = %id, "a completion callback panicked; the job's result is unaffected");
    }
}

/// A submitted job whose result is of type `T`.
///
/// Wait for it with [`wait`](Self::wait) (blocking), or `.await` it: `Job<T>` is a
/// [`Future`]. Results can be read any number of times; each read decodes the job's
/// MessagePack result into `T`.
pub struct Job<T> {
    slot: Arc<JobSlot>,
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.slot.id)
            .field("finished", &self.slot.is_released())
            .finish()
    }
}

impl<T> Clone for Job<T> {
    fn clone(&self) -> Self {
        Job {
            slot: self.slot.clone(),
            _result: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Job<T> {
    pub(crate) fn from_slot(slot: Arc<JobSlot>) -> Self {
        Job {
            slot,
            _result: PhantomData,
        }
    }

    /// The job's id within its server.
    pub fn id(&self) -> JobId {
        self.slot.id
    }

    /// Whether the job has finished (and its callbacks have run).
    pub fn is_finished(&self) -> bool {
        self.slot.is_released()
    }

    /// Blocks until the job finishes and returns its result.
    ///
    /// # Errors
    /// The [`JobError`] that stopped the job, or [`JobError::BadResult`] if its result does
    /// not decode as a `T`.
    pub fn wait(&self) -> Result<T, JobError> {
        self.wait_output().result
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout` and returns `None`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<T, JobError>> {
        let finished = self.slot.wait_until(Some(Instant::now() + timeout))?;
        Some(decode(&finished).result)
    }

    /// Blocks until the job finishes and returns its result with its captured output.
    pub fn wait_output(&self) -> JobOutput<T> {
        let finished = self
            .slot
            .wait_until(None)
            .expect("a released job has a result");
        decode(&finished)
    }

    /// Calls `callback` with the job's result when it finishes, on the thread that finishes
    /// it (a local worker, or for a job run on a node the `wasp-net` thread that receives
    /// its result), or at once on this thread if it has finished already. Waiters are
    /// released only after the callbacks registered before completion have run.
    ///
    /// A callback must be quick: it holds up the thread that runs it, so it must not wait
    /// for other jobs of the same server (with one worker, or for a remote job, that wait
    /// would never end), and a slow one on `wasp-net` delays every node's traffic. Send
    /// slow work elsewhere (a channel). A panic in a callback is caught and logged; it does
    /// not affect the job.
    pub fn on_complete(
        &self,
        callback: impl FnOnce(Result<T, JobError>) + Send + 'static,
    ) -> &Self {
        self.slot.on_complete(Box::new(move |finished| {
            callback(decode::<T>(finished).result)
        }));
        self
    }
}

fn decode<T: DeserializeOwned>(finished: &Finished) -> JobOutput<T> {
    let outcome = &finished.outcome;
    let result = match &outcome.result {
        Ok(bytes) => {
            rmp_serde::from_slice(bytes).map_err(|err| JobError::BadResult(err.to_string()))
        }
        Err(err) => Err(err.clone()),
    };
    JobOutput {
        result,
        stdout: outcome.stdout.clone(),
        stderr: outcome.stderr.clone(),
        duration: outcome.duration,
        worker: finished.worker.clone(),
        fuel_used: outcome.fuel_used,
    }
}

impl<T: DeserializeOwned> Future for Job<T> {
    type Output = Result<T, JobError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot
            .poll_released(cx)
            .map(|finished| decode(&finished).result)
    }
}
