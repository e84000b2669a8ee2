//! [`JobSlot`]: where a job's outcome meets whoever waits for it, completed exactly once.
//!
//! A job may be answered from several places (its worker, a node's session, the caller
//! cancelling it, a task dropped without an answer), and a node's late result may race a
//! cancel. The slot takes the first outcome and ignores the rest: the job's waiters,
//! callbacks and group see one answer, and the group counts it once. Execution is
//! at-least-once (a job whose node was lost may have run there too); delivery is
//! exactly-once, here.

use super::books::{Books, Group};
use crate::error::JobError;
use crate::job::JobId;
use crate::sandbox::{Cancel, RawOutcome};
use crate::waiting;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tracing::warn;

/// A finished job, shared by its handle, its callbacks and its group.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) outcome: RawOutcome,
    pub(crate) worker: String,
}

impl Finished {
    /// A job that ended without running (or without finishing) because of `error`.
    pub(crate) fn failed(error: JobError) -> Self {
        Finished {
            outcome: RawOutcome::failed(error),
            worker: String::new(),
        }
    }
}

/// Called once with the job's outcome.
pub(crate) type Callback = Box<dyn FnOnce(&Finished) + Send>;

/// The meeting point of a job's worker and its waiters.
pub(crate) struct JobSlot {
    id: JobId,
    group: Group,
    /// Stops the job if it is queued or running; set when the job is cancelled.
    cancel: Cancel,
    /// The server's counters and signals (groups, cancellations).
    books: Arc<Books>,
    state: Mutex<SlotState>,
    released: Condvar,
    /// `SlotState::released`, readable without the lock: waiters spin on it briefly before
    /// they sleep.
    done: AtomicBool,
    /// Set when a worker or a node's session first takes the job from the queue.
    started: AtomicBool,
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
    /// The slot of job `id` in `group`, counted as submitted there.
    pub(crate) fn new(id: JobId, group: Group, books: Arc<Books>) -> Arc<Self> {
        books.groups.submitted(&group);
        Arc::new(JobSlot {
            id,
            group,
            cancel: Cancel::default(),
            books,
            state: Mutex::new(SlotState::default()),
            released: Condvar::new(),
            done: AtomicBool::new(false),
            started: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn id(&self) -> JobId {
        self.id
    }

    /// The books the job reports to.
    pub(crate) fn books(&self) -> &Arc<Books> {
        &self.books
    }

    pub(crate) fn group(&self) -> &Group {
        &self.group
    }

    /// The flag that stops the job where it runs.
    pub(crate) fn cancel_flag(&self) -> &Cancel {
        &self.cancel
    }

    /// Records the job's end, runs its callbacks, releases its waiters, then counts it in
    /// its group, so that whoever waited for the group finds every job of it released.
    /// Returns whether this call completed the job: only the first does.
    pub(crate) fn finish(&self, finished: Finished) -> bool {
        let finished = Arc::new(finished);
        let callbacks = {
            let mut state = self.lock();
            if state.finished.is_some() {
                return false;
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
        let error = finished.outcome.result.as_ref().err();
        self.books
            .groups
            .finished(&self.group, error.map(JobError::kind_index));
        true
    }

    /// Cancels the job: it completes now with [`JobError::Cancelled`], and stops where it
    /// is queued or running (on a node, through a cancel frame). Returns whether the job
    /// was still unfinished.
    pub(crate) fn cancel(&self, why: &str) -> bool {
        self.cancel.cancel();
        let cancelled = self.finish(Finished::failed(JobError::Cancelled(why.into())));
        if cancelled {
            self.books.job_cancelled();
        }
        cancelled
    }

    /// Whether the job has an outcome (its callbacks may still be running).
    pub(crate) fn is_finished(&self) -> bool {
        self.lock().finished.is_some()
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

    /// Records that the job left the queue to run (locally or on a node).
    pub(crate) fn start(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Whether the job has started and not finished.
    pub(crate) fn is_running(&self) -> bool {
        self.started.load(Ordering::Acquire) && !self.is_released()
    }

    pub(crate) fn is_released(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Blocks until the job is released, or until `deadline`.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> Option<Arc<Finished>> {
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

    pub(crate) fn poll_released(&self, cx: &mut Context<'_>) -> Poll<Arc<Finished>> {
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

impl std::fmt::Debug for JobSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSlot")
            .field("id", &self.id)
            .field("group", &self.group)
            .field("finished", &self.is_finished())
            .finish()
    }
}

fn run_callback(id: JobId, callback: Callback, finished: &Finished) {
    if catch_unwind(AssertUnwindSafe(|| callback(finished))).is_err() {
        warn!(job = %id, "a completion callback panicked; the job's result is unaffected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(books: &Arc<Books>) -> Arc<JobSlot> {
        JobSlot::new(JobId(1), Group::from("g"), books.clone())
    }

    #[test]
    fn the_first_outcome_wins_and_counts_once() {
        let books = Arc::new(Books::default());
        let slot = slot(&books);
        assert_eq!(books.groups.summary(Some("g")).pending(), 1);
        let ok = RawOutcome {
            result: Ok(vec![1]),
            ..RawOutcome::failed(JobError::Internal(String::new()))
        };
        assert!(slot.finish(Finished {
            outcome: ok,
            worker: "a".into()
        }));
        // A late answer (a node's result after a cancel, a requeued copy) is ignored.
        assert!(!slot.finish(Finished::failed(JobError::Failed("late".into()))));
        assert!(!slot.cancel("too late"));
        let summary = books.groups.summary(Some("g"));
        assert_eq!(
            (summary.submitted, summary.finished, summary.failed),
            (1, 1, 0)
        );
        let finished = slot.wait_until(None).expect("released");
        assert_eq!(finished.outcome.result, Ok(vec![1]));
    }

    #[test]
    fn cancelling_completes_at_once_and_raises_the_flag() {
        let books = Arc::new(Books::default());
        let slot = slot(&books);
        assert!(slot.cancel("by the caller"));
        assert!(slot.cancel_flag().is_cancelled());
        let finished = slot.wait_until(None).expect("released");
        assert!(matches!(
            finished.outcome.result,
            Err(JobError::Cancelled(_))
        ));
        assert_eq!(books.groups.summary(None).failed, 1);
    }
}
