//! [`Job`]: the handle a caller holds for a submitted job.

use crate::error::JobError;
use crate::scheduler::slot::{Finished, JobSlot};
use crate::waiting;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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
#[non_exhaustive]
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
            .field("id", &self.slot.id())
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

impl<T> Job<T> {
    pub(crate) fn from_slot(slot: Arc<JobSlot>) -> Self {
        Job {
            slot,
            _result: PhantomData,
        }
    }

    /// The job's id within its server.
    pub fn id(&self) -> JobId {
        self.slot.id()
    }

    /// Cancels the job: it completes now with [`JobError::Cancelled`] (its waiters and
    /// callbacks see that), and stops wherever it is: a queued job never runs, a running one
    /// is interrupted at its next epoch tick (within a millisecond or so), and one running on
    /// a node is stopped there by a cancel frame. Returns `false` if the job had finished
    /// already (its result stands).
    pub fn cancel(&self) -> bool {
        self.slot.cancel("cancelled by the caller")
    }

    /// Whether the job is running: taken from the queue by a worker or a node, and not
    /// finished.
    pub fn is_running(&self) -> bool {
        self.slot.is_running()
    }

    /// Whether the job has finished (and its callbacks have run).
    pub fn is_finished(&self) -> bool {
        self.slot.is_released()
    }

    /// Calls `callback` when the job finishes (or at once, if it has), without decoding
    /// its result: for bindings that read the result later, on another thread. The same
    /// rules as for [`on_complete`](Self::on_complete) apply: it must be quick.
    pub fn on_finish(&self, callback: impl FnOnce() + Send + 'static) -> &Self {
        self.slot.on_complete(Box::new(move |_| callback()));
        self
    }
}

impl<T: DeserializeOwned> Job<T> {
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
        let finished = self.slot.wait_until(waiting::deadline(timeout))?;
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
