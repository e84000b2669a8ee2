//! The job queue and the worker-count policy, as plain data: no threads, no locks.
//!
//! Workers ask [`Queue::next`] what to do; node sessions [`Queue::take`] batches; the pool's
//! threads only add locking and waiting around it. Keeping the policy here makes it testable
//! step by step.

use super::lanes::{Lanes, Owner};
use super::slot::JobSlot;
use super::task::Task;
use crate::job::JobId;
use crate::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a worker should do next.
pub(crate) enum Step {
    /// Run this task, then ask again.
    Run(Box<Task>),
    /// Exit: the pool is shrinking or shutting down.
    Retire,
    /// Nothing to do: sleep until woken.
    Wait,
}

/// A task held by a worker or a node: what is needed to stop it, and whose it is.
struct Running {
    slot: Arc<JobSlot>,
    owner: Owner,
    /// Run by a local worker (not sent to a node).
    local: bool,
}

/// What the queue counts for the metrics, under the lock it holds anyway.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueCounts {
    /// Tasks started by a local worker.
    pub(crate) started_local: u64,
    /// Tasks sent to nodes.
    pub(crate) started_remote: u64,
    /// Tasks running on a local worker now.
    pub(crate) running_local: usize,
    /// Tasks put back in the queue after their node was lost.
    pub(crate) retried: u64,
    /// Tasks put back in the queue because their node handed them back (it was draining).
    pub(crate) handed_back: u64,
    /// Time from queued to started (by a worker, or sent to a node).
    pub(crate) wait: Histogram,
    /// Time a job ran, where it ran (on a worker here, or as its node reported).
    pub(crate) duration: Histogram,
}

/// Why a task goes back to the head of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requeue {
    /// Its node was lost while it held the task.
    Lost,
    /// Its node handed it back (draining, or it could not take it).
    HandedBack,
    /// The client stopped the session holding it (counted neither way).
    Withdrawn,
}

/// Pending tasks, running tasks, and how many workers there are and should be.
#[derive(Default)]
pub(crate) struct Queue {
    pending: Lanes,
    running: HashMap<JobId, Running>,
    /// How many tasks each owner has running.
    busy: HashMap<Owner, usize>,
    /// How many workers the pool should have.
    target: usize,
    /// How many worker threads exist (running or waiting).
    live: usize,
    /// How many workers are asleep waiting for work: waking one costs a system call, so
    /// it is done only when someone is asleep.
    idle: usize,
    /// How many submitters are asleep waiting for room in the queue.
    blocked: usize,
    closed: bool,
    counts: QueueCounts,
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
    fn start_next(&mut self, local: bool) -> Option<Box<Task>> {
        let busy = &self.busy;
        let task = self
            .pending
            .pop(|owner| busy.get(&owner).copied().unwrap_or(0))?;
        task.slot().start();
        let running = Running {
            slot: task.slot().clone(),
            owner: task.owner,
            local,
        };
        let counts = &mut self.counts;
        counts.wait.observe(task.queued_at.elapsed());
        if local {
            counts.started_local += 1;
            counts.running_local += 1;
        } else {
            counts.started_remote += 1;
        }
        self.running.insert(task.id(), running);
        *self.busy.entry(task.owner).or_default() += 1;
        Some(task)
    }

    /// Counts task `id` as no longer running (nothing if it was not).
    pub(crate) fn stop(&mut self, id: JobId) {
        let Some(Running { owner, local, .. }) = self.running.remove(&id) else {
            return;
        };
        self.counts.running_local -= usize::from(local);
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

    /// Records that a submitter goes to sleep for room (`true`) or wakes up (`false`).
    pub(crate) fn set_blocked(&mut self, asleep: bool) {
        if asleep {
            self.blocked += 1;
        } else {
            self.blocked -= 1;
        }
    }

    /// Whether submitters are asleep waiting for room.
    pub(crate) fn has_blocked(&self) -> bool {
        self.blocked > 0
    }

    /// The next step for a worker. A worker told to retire must exit.
    pub(crate) fn next(&mut self) -> Step {
        if self.closed || self.live > self.target {
            self.live -= 1;
            return Step::Retire;
        }
        match self.start_next(true) {
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
        std::iter::from_fn(|| self.start_next(false))
            .take(max)
            .collect()
    }

    /// Puts a task that a lost or draining node did not finish back at the head of the
    /// queue, so it runs next. Hands it back if the queue is closed. Returns whether a
    /// worker is asleep and must be woken.
    pub(crate) fn requeue(&mut self, mut task: Box<Task>, why: Requeue) -> Result<bool, Box<Task>> {
        if self.closed {
            return Err(task);
        }
        self.stop(task.id());
        match why {
            Requeue::Lost => self.counts.retried += 1,
            Requeue::HandedBack => self.counts.handed_back += 1,
            Requeue::Withdrawn => {}
        }
        task.queued_at = Instant::now();
        self.pending.push_front(task);
        Ok(self.idle > 0)
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

    /// Records how long a job ran.
    pub(crate) fn record_run(&mut self, duration: Duration) {
        self.counts.duration.observe(duration);
    }

    /// What the queue counted, for the metrics.
    pub(crate) fn counts(&self) -> &QueueCounts {
        &self.counts
    }

    /// How many tasks of `group` are held by a worker or a node now.
    pub(crate) fn running_in(&self, group: &str) -> u64 {
        self.running
            .values()
            .filter(|running| &**running.slot.group() == group)
            .count() as u64
    }

    /// Takes out the pending tasks of `group` (for the caller to answer as cancelled) and
    /// returns the slots of its running ones (for the caller to cancel).
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn take_group(&mut self, group: &str) -> (Vec<Box<Task>>, Vec<Arc<JobSlot>>) {
        let pending = self
            .pending
            .take_where(|task| &**task.slot().group() == group);
        let running = self
            .running
            .values()
            .filter(|running| &**running.slot.group() == group)
            .map(|running| running.slot.clone())
            .collect();
        (pending, running)
    }

    /// Takes out every pending task of the queue without closing it (a draining node hands
    /// them back); running tasks go on.
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn take_pending(&mut self) -> Vec<Box<Task>> {
        self.pending.drain()
    }

    /// Closes the queue: returns the tasks that never started, and cancels the running ones.
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn close(&mut self) -> Vec<Box<Task>> {
        self.closed = true;
        for running in self.running.values() {
            running.slot.cancel_flag().cancel();
        }
        self.pending.drain()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scheduler::task::test_task;

    fn task(id: u64) -> Box<Task> {
        test_task(id, Owner::LOCAL)
    }

    fn run_id(step: Step) -> u64 {
        match step {
            Step::Run(task) => task.id().0,
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
        queue.stop(JobId(0));
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
            assert!(queue.push(test_task(id, Owner(1))).is_ok());
        }
        assert!(queue.push(test_task(10, Owner(2))).is_ok());
        assert!(queue.push(test_task(11, Owner(2))).is_ok());
        assert_eq!(run_id(queue.next()), 0);
        assert_eq!(run_id(queue.next()), 10);
        queue.stop(JobId(10));
        assert_eq!(run_id(queue.next()), 11, "owner 2 has none running");
        queue.stop(JobId(0));
        queue.stop(JobId(11));
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
        assert_eq!(
            batch.iter().map(|t| t.id().0).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!((queue.pending(), queue.running()), (1, 3));
        let lost = batch.into_iter().nth(1).expect("three tasks");
        assert!(queue.requeue(lost, Requeue::Lost).is_ok());
        assert_eq!((queue.pending(), queue.running()), (2, 2));
        assert_eq!(
            queue.take(10).iter().map(|t| t.id().0).collect::<Vec<_>>(),
            [1, 3]
        );
        assert!(queue.take(1).is_empty());
        queue.close();
        assert!(queue.requeue(task(9), Requeue::Lost).is_err());
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
        assert!(running.slot().cancel_flag().is_cancelled());
        assert!(queue.push(task(2)).is_err());
        assert!(matches!(queue.next(), Step::Retire));
    }

    #[test]
    fn a_group_is_taken_out_of_the_queue_and_its_running_jobs_found() {
        let mut queue = Queue::default();
        queue.set_target(1);
        for id in 0..3 {
            assert!(queue.push(task(id)).is_ok());
        }
        let Step::Run(running) = queue.next() else {
            panic!("expected a task")
        };
        let (pending, slots) = queue.take_group("default");
        assert_eq!(pending.len(), 2);
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].id(), running.id());
        assert_eq!(queue.pending(), 0);
        let (none, _) = queue.take_group("another");
        assert!(none.is_empty());
    }
}
