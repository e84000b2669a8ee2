//! [`Task`]: a job on its way from `submit` to its answer, and the guarantee that it gets
//! one.
//!
//! A task is owned by exactly one place at a time: the queue, a worker, or a node session.
//! Whoever holds it last answers it ([`Shared::finish`](super::pool::Shared::finish)); if a
//! task is dropped unanswered instead (a forgotten path, a panic on the thread holding it),
//! its completer answers the job with [`JobError::Internal`] and tells the queue, so that no
//! caller ever waits for ever.

use super::JobId;
use super::lanes::Owner;
use super::slot::{Finished, JobSlot};
use crate::data::Args;
use crate::error::JobError;
use crate::metrics::failures::FailedJob;
use crate::module::Module;
use crate::sandbox::Asked;
use std::sync::Arc;
use std::time::Instant;
use tracing::error;

/// A job waiting for, or held by, a worker or a node.
pub(crate) struct Task {
    pub(crate) module: Module,
    /// The job's name in the module.
    pub(crate) function: Arc<str>,
    /// The MessagePack-encoded arguments, with the values they take by reference.
    pub(crate) args: Args,
    /// The limits the job asks for.
    pub(crate) asked: Asked,
    /// Who submitted it: owners share the workers fairly.
    pub(crate) owner: Owner,
    /// How many times a node running it was lost: bounded by the cluster's retry limit.
    pub(crate) attempts: u32,
    /// How many times nodes handed it back since its last counted attempt: free, up to a
    /// point.
    pub(crate) handed_back: u32,
    /// When the task was (last) queued: its wait is measured from here.
    pub(crate) queued_at: Instant,
    completer: Completer,
}

impl Task {
    /// A task for the job whose slot is `slot`.
    pub(crate) fn new(
        slot: Arc<JobSlot>,
        module: Module,
        function: Arc<str>,
        args: Args,
        asked: Asked,
        owner: Owner,
    ) -> Box<Task> {
        Box::new(Task {
            module,
            function,
            args,
            asked,
            owner,
            attempts: 0,
            handed_back: 0,
            queued_at: Instant::now(),
            completer: Completer {
                slot,
                answered: false,
            },
        })
    }

    pub(crate) fn id(&self) -> JobId {
        self.completer.slot.id()
    }

    pub(crate) fn slot(&self) -> &Arc<JobSlot> {
        &self.completer.slot
    }

    /// Whether the job has been answered already (cancelled by its caller, most likely):
    /// running it would be wasted.
    pub(crate) fn is_answered(&self) -> bool {
        self.completer.slot.is_finished()
    }

    /// Answers the job with `finished`, counted with `failure` if it failed (ignored if the
    /// job was answered already). Only [`Shared::finish`](super::pool::Shared::finish) calls
    /// this, after taking the task out of the queue's books.
    pub(super) fn answer(mut self, finished: Finished, failure: Option<FailedJob>) -> bool {
        self.completer.answered = true;
        self.completer.slot.finish(finished, failure)
    }

    /// Answers the job without a queue, for tests of code that holds tasks.
    #[cfg(test)]
    pub(crate) fn answer_for_test(self, finished: Finished) {
        let _ = self.answer(finished, None);
    }
}

/// Answers a job whose task is dropped unanswered.
struct Completer {
    slot: Arc<JobSlot>,
    answered: bool,
}

impl Drop for Completer {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let id = self.slot.id();
        // Not the queue's lock: this may run while it is held (a panic unwinding there).
        self.slot.books().orphan(id);
        if !self.slot.is_finished() {
            error!(job = %id, "a job was dropped without an answer; it fails");
        }
        self.slot.finish(
            Finished::failed(JobError::Internal(
                "wasp dropped the job without an answer (a bug in wasp)".into(),
            )),
            None,
        );
    }
}

/// A task of `owner` with id `id`, with books of its own, for tests without a server.
#[cfg(test)]
pub(crate) fn test_task(id: u64, owner: Owner) -> Box<Task> {
    test_task_of(id, owner, crate::module::test_module())
}

/// A task of `module`'s first job, with books of its own, for tests without a server.
#[cfg(test)]
pub(crate) fn test_task_of(id: u64, owner: Owner, module: Module) -> Box<Task> {
    let books = Arc::new(super::books::Books::default());
    let slot = JobSlot::new(JobId(id), super::books::Group::from("default"), books);
    let function = Arc::from(module.jobs()[0].as_str());
    Task::new(
        slot,
        module,
        function,
        Args::default(),
        Asked::default(),
        owner,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_dropped_unanswered_fails_its_job_and_is_reported_to_the_queue() {
        let task = test_task(7, Owner::LOCAL);
        let slot = task.slot().clone();
        drop(task);
        let finished = slot.wait_until(None).expect("the job is answered");
        assert!(
            matches!(&finished.outcome.result, Err(JobError::Internal(why)) if why.contains("dropped")),
            "{:?}",
            finished.outcome.result
        );
        assert_eq!(slot.books().take_orphans(), [JobId(7)]);
    }

    #[test]
    fn an_answered_task_is_not_reported() {
        let task = test_task(8, Owner::LOCAL);
        let slot = task.slot().clone();
        task.answer(Finished::failed(JobError::Failed("its own".into())), None);
        assert!(slot.books().take_orphans().is_empty());
        let finished = slot.wait_until(None).expect("answered");
        assert_eq!(
            finished.outcome.result,
            Err(JobError::Failed("its own".into()))
        );
    }
}
