//! The job queue and the worker-count policy, as plain data: no threads, no locks.
//!
//! Workers ask [`Queue::next`] what to do; the pool's threads only add locking and waiting
//! around it. Keeping the policy here makes it testable step by step.

use super::lanes::{Lanes, Owner};
use crate::job::{JobId, JobSlot};
use crate::module::Module;
use crate::sandbox::{Cancel, Limits};
use std::collections::HashMap;
use std::sync::Arc;

/// A job waiting for, or held by, a worker.
pub(crate) struct Task {
    pub(crate) id: JobId,
    pub(crate) module: Module,
    pub(crate) function: String,
    /// The MessagePack-encoded arguments.
    pub(crate) args: Vec<u8>,
    pub(crate) limits: Limits,
    pub(crate) cancel: Cancel,
    pub(crate) slot: Arc<JobSlot>,
    /// The group the job counts in.
    pub(crate) group: String,
    /// Who submitted it: owners share the workers fairly.
    pub(crate) owner: Owner,
    /// How many times a node running it was lost: bounded by the cluster's retry limit.
    pub(crate) attempts: u32,
    /// How many times nodes handed it back since its last counted attempt: free, up to a
    /// point.
    pub(crate) handed_back: u32,
}

/// What a worker should do next.
pub(crate) enum Step {
    /// Run this task, then ask again.
    Run(Box<Task>),
    /// Exit: the pool is shrinking or shutting down.
    Retire,
    /// Nothing to do: sleep until woken.
    Wait,
}

/// Pending tasks, running tasks, and how many workers there are and should be.
#[derive(Default)]
pub(crate) struct Queue {
    pending: Lanes,
    running: HashMap<JobId, (Cancel, Owner)>,
    /// How many tasks each owner has running.
    busy: HashMap<Owner, usize>,
    /// How many workers the pool should have.
    target: usize,
    /// How many worker threads exist (running or waiting).
    live: usize,
    /// How many workers are asleep waiting for work: waking one costs a system call, so
    /// it is done only when someone is asleep.
    idle: usize,
    closed: bool,
}

impl Queue {
    /// Queues a task; hands it back if the queue is closed. Returns whether a worker is
    /// asleep and must be woken to take it.
    pub(crate) fn push(&mut self, task: Box<Task>) -> Result<bool, Box<Task>> {
        if self.closed {
            return Err(task);
        }
        self.pending.push_back(task);
        Ok(self.idle > 0)
    }

    /// The next pending task, fairly between owners, now counted as running.
    fn start_next(&mut self) -> Option<Box<Task>> {
        let busy = &self.busy;
        let task = self
            .pending
            .pop(|owner| busy.get(&owner).copied().unwrap_or(0))?;
        self.running
            .insert(task.id, (task.cancel.clone(), task.owner));
        *self.busy.entry(task.owner).or_default() += 1;
        Some(task)
    }

    /// Counts task `id` as no longer running.
    fn stop(&mut self, id: JobId) {
        let Some((_, owner)) = self.running.remove(&id) else {
            return;
        };
        if let Some(count) = self.busy.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.busy.remove(&owner);
            }
        }
    }

    /// Records that a worker goes to sleep (`true`) or wakes up (`false`).
    pub(crate) fn set_idle(&mut self, asleep: bool) {
        if asleep {
            self.idle += 1;
        } else {
            self.idle -= 1;
        }
    }

    /// The next step for a worker. A worker told to retire must exit.
    pub(crate) fn next(&mut self) -> Step {
        if self.closed || self.live > self.target {
            self.live -= 1;
            return Step::Retire;
        }
        match self.start_next() {
            Some(task) => Step::Run(task),
            None => Step::Wait,
        }
    }

    /// Takes up to `max` pending tasks for a remote node. Unlike [`next`](Self::next) this
    /// ignores the local worker target: nodes are not local workers.
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn take(&mut self, max: usize) -> Vec<Box<Task>> {
        if self.closed {
            return Vec::new();
        }
        std::iter::from_fn(|| self.start_next()).take(max).collect()
    }

    /// Puts a task that a lost or draining node did not finish back at the head of the
    /// queue, so it runs next. Hands it back if the queue is closed. Returns whether a
    /// worker is asleep and must be woken.
    pub(crate) fn requeue(&mut self, task: Box<Task>) -> Result<bool, Box<Task>> {
        if self.closed {
            return Err(task);
        }
        self.stop(task.id);
        self.pending.push_front(task);
        Ok(self.idle > 0)
    }

    /// Records that a worker finished task `id`.
    pub(crate) fn finished(&mut self, id: JobId) {
        self.stop(id);
    }

    /// Sets the number of workers; returns how many new ones to start. Shrinking is done by
    /// the surplus workers retiring when they next ask for work; queued tasks stay queued.
    pub(crate) fn set_target(&mut self, workers: usize) -> usize {
        self.target = workers;
        let spawn = workers.saturating_sub(self.live);
        self.live += spawn;
        spawn
    }

    /// Records that a worker thread failed to start.
    pub(crate) fn spawn_failed(&mut self) {
        self.live -= 1;
    }

    /// The number of workers the pool should have.
    pub(crate) fn target(&self) -> usize {
        self.target
    }

    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Tasks waiting for a worker or a node.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Tasks held by a worker or a node.
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Closes the queue: returns the tasks that never started, and cancels the running ones.
    pub(crate) fn close(&mut self) -> Vec<Task> {
        self.closed = true;
        for (cancel, _) in self.running.values() {
            cancel.cancel();
        }
        self.pending.drain()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn task(id: u64) -> Box<Task> {
        task_of(Owner::LOCAL, id)
    }

    /// A task of `owner` with id `id`.
    pub(crate) fn task_of(owner: Owner, id: u64) -> Box<Task> {
        let module = crate::module::test_module();
        Box::new(Task {
            id: JobId(id),
            module,
            function: "f".into(),
            args: vec![],
            limits: Limits::default(),
            cancel: Cancel::default(),
            slot: JobSlot::new(JobId(id)),
            group: "default".into(),
            attempts: 0,
            handed_back: 0,
            owner,
        })
    }

    fn run_id(step: Step) -> u64 {
        match step {
            Step::Run(task) => task.id.0,
            Step::Retire => panic!("retired"),
            Step::Wait => panic!("waited"),
        }
    }

    #[test]
    fn tasks_run_in_submission_order() {
        let mut queue = Queue::default();
        assert_eq!(queue.set_target(1), 1);
        for id in 0..3 {
            assert!(queue.push(task(id)).is_ok());
        }
        assert_eq!(run_id(queue.next()), 0);
        assert_eq!(run_id(queue.next()), 1);
        assert_eq!(queue.running(), 2);
        queue.finished(JobId(0));
        assert_eq!(queue.running(), 1);
        assert_eq!(run_id(queue.next()), 2);
        assert!(matches!(queue.next(), Step::Wait));
    }

    /// A task ends: its owner's running count goes down, and its next task goes before the
    /// task of an owner that still has one running.
    #[test]
    fn workers_are_shared_between_owners() {
        let mut queue = Queue::default();
        queue.set_target(2);
        for id in 0..3 {
            assert!(queue.push(task_of(Owner(1), id)).is_ok());
        }
        assert!(queue.push(task_of(Owner(2), 10)).is_ok());
        assert!(queue.push(task_of(Owner(2), 11)).is_ok());
        assert_eq!(run_id(queue.next()), 0);
        assert_eq!(run_id(queue.next()), 10);
        queue.finished(JobId(10));
        assert_eq!(run_id(queue.next()), 11, "owner 2 has none running");
        queue.finished(JobId(0));
        queue.finished(JobId(11));
        assert_eq!(run_id(queue.next()), 1);
        assert_eq!(queue.running(), 1);
    }

    #[test]
    fn shrinking_retires_surplus_workers_and_keeps_tasks() {
        let mut queue = Queue::default();
        assert_eq!(queue.set_target(3), 3);
        assert!(queue.push(task(0)).is_ok());
        assert_eq!(queue.set_target(1), 0);
        assert!(matches!(queue.next(), Step::Retire));
        assert!(matches!(queue.next(), Step::Retire));
        assert_eq!(queue.live(), 1);
        assert_eq!(run_id(queue.next()), 0);
        // Growing again only starts what is missing.
        assert_eq!(queue.set_target(2), 1);
    }

    #[test]
    fn nodes_take_batches_and_lost_tasks_go_first() {
        let mut queue = Queue::default();
        for id in 0..4 {
            assert!(queue.push(task(id)).is_ok());
        }
        // No local workers: a node still gets work.
        let batch = queue.take(3);
        assert_eq!(batch.iter().map(|t| t.id.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!((queue.pending(), queue.running()), (1, 3));
        let lost = batch.into_iter().nth(1).expect("three tasks");
        assert!(queue.requeue(lost).is_ok());
        assert_eq!((queue.pending(), queue.running()), (2, 2));
        assert_eq!(
            queue.take(10).iter().map(|t| t.id.0).collect::<Vec<_>>(),
            [1, 3]
        );
        assert!(queue.take(1).is_empty());
        queue.close();
        assert!(queue.requeue(task(9)).is_err());
    }

    #[test]
    fn closing_returns_pending_tasks_and_cancels_running_ones() {
        let mut queue = Queue::default();
        queue.set_target(1);
        assert!(queue.push(task(0)).is_ok());
        assert!(queue.push(task(1)).is_ok());
        let Step::Run(running) = queue.next() else {
            panic!("expected a task")
        };
        let never_started = queue.close();
        assert_eq!(never_started.len(), 1);
        assert!(running.cancel.is_cancelled());
        assert!(queue.push(task(2)).is_err());
        assert!(matches!(queue.next(), Step::Retire));
    }
}
