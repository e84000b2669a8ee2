//! The local worker pool: OS threads that take tasks from the [`Queue`] and run them in the
//! sandbox. Wasm never runs on an async runtime.

use super::books::Books;
use super::lanes::Owner;
use super::queue::{Queue, Requeue, Step};
use super::slot::Finished;
use super::task::Task;
use crate::cache::ModuleCache;
use crate::error::{ConfigError, JobError};
use crate::metrics::failures::{self, FailedJob};
use crate::sandbox::{RawOutcome, Sandbox};
use crate::stats::WorkerStats;
use crate::waiting;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Instant, SystemTime};
use tracing::{debug, error};

/// Everything the server's handle and its workers share.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a task is queued or workers must re-check the target.
    work: Condvar,
    /// Signalled when a queue at its bound has room again.
    room: Condvar,
    /// The most tasks the queue holds before `submit` waits (`usize::MAX`: no bound).
    pub(crate) max_queued: usize,
    pub(crate) sandbox: Sandbox,
    pub(crate) modules: ModuleCache,
    /// What every job reports to: groups, orphans, wake-ups of node sessions.
    pub(crate) books: Arc<Books>,
    workers: Mutex<Vec<WorkerStats>>,
    threads: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    /// The number of queued tasks, readable without the lock: idle workers spin on it
    /// briefly before they sleep.
    queued: AtomicUsize,
    /// The workers of the connected nodes, all together (kept by the cluster's node table).
    pub(crate) remote_workers: Arc<AtomicUsize>,
    /// The configured number of local workers, readable without the lock.
    target_workers: AtomicUsize,
    pub(crate) started: Instant,
}

/// How long a submission may wait for room in a bounded queue.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Room {
    /// As long as it takes.
    Wait,
    /// Until this instant.
    Until(Instant),
    /// Not at all: a full queue refuses the task.
    Refuse,
}

impl Shared {
    pub(crate) fn new(sandbox: Sandbox, max_queued: usize, max_modules: usize) -> Arc<Self> {
        Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            max_queued,
            sandbox,
            modules: ModuleCache::new(max_modules),
            books: Arc::new(Books::default()),
            workers: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            remote_workers: Arc::new(AtomicUsize::new(0)),
            target_workers: AtomicUsize::new(0),
            started: Instant::now(),
        })
    }

    /// The queue, locked, with the tasks dropped unanswered since the last look taken out of
    /// its books.
    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for id in self.books.take_orphans() {
            queue.stop(id);
        }
        queue
    }

    fn workers(&self) -> MutexGuard<'_, Vec<WorkerStats>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configured number of local workers.
    pub(crate) fn target_workers(&self) -> usize {
        self.target_workers.load(Ordering::Relaxed)
    }

    /// The most tasks the queue holds before submissions wait.
    pub(crate) fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Changes the queue under its lock, then publishes its new length to the spinners and
    /// to the submitters waiting for room.
    fn update_queue<R>(&self, change: impl FnOnce(&mut Queue) -> R) -> R {
        let mut queue = self.queue();
        let result = change(&mut queue);
        self.publish(&queue);
        result
    }

    fn publish(&self, queue: &Queue) {
        self.queued.store(queue.pending(), Ordering::Release);
        if queue.has_blocked() && queue.pending() < self.max_queued {
            self.room.notify_all();
        }
    }

    /// Queues a task, waiting for room in a bounded queue. If the server is shutting down,
    /// the task is answered as cancelled instead.
    pub(crate) fn enqueue(&self, task: Box<Task>) {
        let (mut queue, _) = self.wait_for_room_locked(self.queue(), Room::Wait);
        let pushed = queue.push(task);
        self.publish(&queue);
        drop(queue);
        self.wake(pushed, "the server shut down before it ran");
    }

    /// Queues a task whatever the queue's bound: a job released by the jobs it took (its
    /// submitter did not wait for room, and the thread releasing it must not). If the
    /// server is shutting down, the task is answered as cancelled instead.
    pub(crate) fn enqueue_now(&self, task: Box<Task>) {
        let pushed = self.update_queue(|queue| queue.push(task));
        self.wake(pushed, "the server shut down before it ran");
    }

    /// Waits until the queue has room for a task, as `room` allows; returns whether it has.
    pub(crate) fn wait_for_room(&self, room: Room) -> bool {
        if self.max_queued == usize::MAX {
            return true; // unbounded: no lock to take
        }
        self.wait_for_room_locked(self.queue(), room).1
    }

    /// Sleeps on the queue's lock until it has room or `room`'s deadline passes; returns
    /// the lock and whether there is room.
    fn wait_for_room_locked<'a>(
        &'a self,
        mut queue: MutexGuard<'a, Queue>,
        room: Room,
    ) -> (MutexGuard<'a, Queue>, bool) {
        let deadline = match room {
            Room::Wait => None,
            Room::Until(deadline) => Some(deadline),
            Room::Refuse => {
                let has_room = queue.pending() < self.max_queued;
                return (queue, has_room);
            }
        };
        while queue.pending() >= self.max_queued {
            queue.set_blocked(true);
            let slept = waiting::sleep(&self.room, queue, deadline);
            let timed_out = slept.is_err();
            queue = slept.unwrap_or_else(|guard| guard);
            queue.set_blocked(false);
            if timed_out {
                let has_room = queue.pending() < self.max_queued;
                return (queue, has_room);
            }
        }
        (queue, true)
    }

    /// Wakes whoever must take a task just queued; answers it if the queue refused it.
    fn wake(&self, pushed: Result<bool, Box<Task>>, refused: &str) {
        match pushed {
            Ok(worker_asleep) => {
                if worker_asleep {
                    self.work.notify_one();
                }
                self.books.wake_remote();
            }
            Err(task) => self.finish(task, cancelled(refused)),
        }
    }

    /// Takes queued tasks for a remote node: as many as `limit` allows, given what is
    /// pending now.
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn take_remote(&self, limit: impl Fn(Pending) -> usize) -> Vec<Box<Task>> {
        loop {
            let taken = self.update_queue(|queue| {
                let max = limit(Pending {
                    tasks: queue.pending(),
                    local_workers: queue.target(),
                });
                queue.take(max)
            });
            if taken.is_empty() {
                return taken;
            }
            // Jobs cancelled while queued are not sent: they leave the books here, and the
            // node gets the next ones instead.
            let (answered, tasks): (Vec<_>, Vec<_>) =
                taken.into_iter().partition(|task| task.is_answered());
            for task in answered {
                self.finish(task, cancelled("cancelled before it ran"));
            }
            if !tasks.is_empty() {
                return tasks;
            }
        }
    }

    /// Puts back a task a node did not finish, at the head of the queue (whatever its
    /// bound). If the server is shutting down, the task is answered as cancelled instead.
    pub(crate) fn requeue(&self, task: Box<Task>, why: Requeue) {
        let pushed = self.update_queue(|queue| queue.requeue(task, why));
        self.wake(pushed, "the server shut down");
    }

    /// Answers a task: it leaves the queue's books, then its job completes (callbacks,
    /// waiters, then its group). The one way a task ends.
    pub(crate) fn finish(&self, task: Box<Task>, finished: Finished) {
        let ran = !finished.worker.is_empty();
        self.update_queue(|queue| {
            queue.stop(task.id());
            if ran {
                queue.record_run(finished.outcome.duration);
            }
        });
        let failure = failure_of(&task, &finished).map(|failure| FailedJob {
            client: (task.owner != Owner::LOCAL)
                .then(|| self.books.owner_name(task.owner))
                .flatten()
                .map(|name| name.to_string()),
            ..failure
        });
        task.answer(finished, failure);
    }

    /// Cancels every job of `group` that has not finished: queued ones leave the queue,
    /// running ones are stopped (on nodes too). Returns how many were cancelled.
    pub(crate) fn cancel_group(&self, group: &str) -> usize {
        let (pending, running) = self.update_queue(|queue| queue.take_group(group));
        let why = "its group was cancelled";
        let mut count = 0;
        for task in pending {
            count += usize::from(task.slot().cancel(why));
            self.finish(task, cancelled(why));
        }
        for slot in running {
            count += usize::from(slot.cancel(why));
        }
        count + self.books.deps.cancel_group(group, why)
    }

    /// Answers every queued task as cancelled, without closing the queue (a draining node
    /// hands its clients' queued jobs back at once). Running tasks go on.
    pub(crate) fn cancel_pending(&self, why: &str) -> usize {
        let pending = self.update_queue(Queue::take_pending);
        let count = pending.len();
        for task in pending {
            self.finish(task, cancelled(why));
        }
        count
    }

    /// A copy of every worker's statistics.
    pub(crate) fn worker_stats(&self) -> Vec<WorkerStats> {
        self.workers().clone()
    }
}

/// What the dashboard shows of a job that failed (cancelled jobs are not failures there).
fn failure_of(task: &Task, finished: &Finished) -> Option<FailedJob> {
    let error = finished.outcome.result.as_ref().err()?;
    if matches!(error, JobError::Cancelled(_)) {
        return None;
    }
    Some(FailedJob {
        job: task.id().0,
        group: task.slot().group().to_string(),
        function: task.function.to_string(),
        module: task.module.hash().to_string(),
        node: finished.worker.clone(),
        client: None,
        kind: error.kind(),
        error: error.to_string(),
        stdout_tail: failures::tail(&finished.outcome.stdout),
        stderr_tail: failures::tail(&finished.outcome.stderr),
        at: SystemTime::now(),
    })
}

/// The outcome of a job that was cancelled before it could run.
fn cancelled(why: &str) -> Finished {
    Finished::failed(JobError::Cancelled(why.into()))
}

/// What a node session sees when it takes tasks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// Tasks queued.
    pub(crate) tasks: usize,
    /// Local workers (the configured count) that also take them.
    pub(crate) local_workers: usize,
}

/// Sets the number of workers: starts the missing ones; surplus ones retire after their
/// current job. Queued jobs are kept either way.
pub(crate) fn set_workers(shared: &Arc<Shared>, workers: usize) -> Result<(), ConfigError> {
    let spawn = shared.queue().set_target(workers);
    shared.target_workers.store(workers, Ordering::Relaxed);
    // Wake everyone: waiting workers beyond the target must notice and retire.
    shared.work.notify_all();
    for _ in 0..spawn {
        if let Err(err) = spawn_worker(shared) {
            shared.queue().spawn_failed();
            return Err(ConfigError::Thread(err));
        }
    }
    reap_finished_threads(shared);
    Ok(())
}

fn spawn_worker(shared: &Arc<Shared>) -> std::io::Result<()> {
    let index = claim_worker_row(&mut shared.workers());
    let worker_shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("wasp-worker-{index}"))
        .spawn(move || worker_loop(&worker_shared, index));
    let handle = match spawned {
        Ok(handle) => handle,
        Err(err) => {
            shared.workers()[index].active = false;
            return Err(err);
        }
    };
    let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
    threads.push((handle.thread().id(), handle));
    Ok(())
}

/// The row of a new worker: a retired worker's, if there is one (its name and counts carry
/// on), so that resizing again and again does not grow the table; else a new one.
fn claim_worker_row(workers: &mut Vec<WorkerStats>) -> usize {
    if let Some(index) = workers.iter().position(|worker| !worker.active) {
        workers[index].active = true;
        return index;
    }
    workers.push(WorkerStats {
        name: format!("local/{}", workers.len()),
        active: true,
        ..WorkerStats::default()
    });
    workers.len() - 1
}

fn worker_loop(shared: &Shared, index: usize) {
    let name = shared.workers()[index].name.clone();
    debug!(worker = %name, "worker started");
    loop {
        let step = next_step(shared);
        match step {
            Step::Run(task) => run_task(shared, index, &name, task),
            Step::Retire | Step::Wait => break,
        }
    }
    shared.sandbox.release_thread();
    shared.workers()[index].active = false;
    debug!(worker = %name, "worker retired");
}

/// Waits for the next step: spins briefly when there is no work, then sleeps.
fn next_step(shared: &Shared) -> Step {
    let mut queue = shared.queue();
    let mut spun = false;
    loop {
        let step = queue.next();
        shared.publish(&queue);
        match step {
            Step::Wait if !spun => {
                drop(queue);
                waiting::spin_until(|| shared.queued.load(Ordering::Acquire) > 0);
                spun = true;
                queue = shared.queue();
            }
            Step::Wait => {
                queue.set_idle(true);
                queue = shared.work.wait(queue).unwrap_or_else(|p| p.into_inner());
                queue.set_idle(false);
                spun = false;
            }
            step => return step,
        }
    }
}

fn run_task(shared: &Shared, index: usize, worker: &str, task: Box<Task>) {
    // A panic here would be a bug in wasp, not in the job: report it on the job rather than
    // lose the job and the worker.
    let outcome =
        catch_unwind(AssertUnwindSafe(|| execute(shared, &task))).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error!(job = %task.id(), %message, "wasp panicked while running a job");
            RawOutcome::failed(JobError::Internal(message))
        });
    let failed = outcome.result.is_err();
    {
        let mut workers = shared.workers();
        let stats = &mut workers[index];
        stats.jobs += 1;
        stats.failed += u64::from(failed);
        stats.busy += outcome.duration;
    }
    let finished = Finished {
        outcome,
        worker: worker.to_string(),
    };
    shared.finish(task, finished);
}

fn execute(shared: &Shared, task: &Task) -> RawOutcome {
    if task.is_answered() || task.slot().cancel_flag().is_cancelled() {
        // Cancelled while queued (by its caller; on a node, its client left): nothing to
        // run, and nobody waits for this outcome.
        return RawOutcome::failed(JobError::Cancelled("cancelled before it ran".into()));
    }
    let limits = task.asked.resolve();
    let metered = limits.fuel.is_some();
    match shared.modules.get(&shared.sandbox, &task.module, metered) {
        Ok(compiled) => shared.sandbox.run(
            &compiled,
            &task.function,
            &task.args.segments(),
            &limits,
            task.slot().cancel_flag(),
            task.owner.0,
            task.asked.reuse,
        ),
        Err(err) => RawOutcome::failed(err),
    }
}

/// Stops the pool: cancels queued jobs, interrupts running ones, and joins the workers
/// (except the calling thread, should a callback be dropping the server).
pub(crate) fn shutdown(shared: &Shared) {
    let never_started = shared.update_queue(Queue::close);
    shared.work.notify_all();
    shared.room.notify_all();
    for task in never_started {
        shared.finish(task, cancelled("the server shut down before it ran"));
    }
    let threads = std::mem::take(&mut *shared.threads.lock().unwrap_or_else(|p| p.into_inner()));
    let me = std::thread::current().id();
    for (id, handle) in threads {
        if id != me {
            let _ = handle.join();
        }
    }
}

/// Joins the threads of workers that have retired, so their handles do not accumulate.
fn reap_finished_threads(shared: &Shared) {
    let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
    let (done, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut *threads)
        .into_iter()
        .partition(|(_, handle)| handle.is_finished());
    *threads = alive;
    drop(threads);
    for (_, handle) in done {
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_workers_rows_are_reused() {
        let mut workers = Vec::new();
        assert_eq!(claim_worker_row(&mut workers), 0);
        assert_eq!(claim_worker_row(&mut workers), 1);
        workers[0].active = false;
        workers[0].jobs = 5;
        assert_eq!(claim_worker_row(&mut workers), 0, "a retired row is taken");
        assert_eq!(workers[0].jobs, 5, "its counts carry on");
        for _ in 0..100 {
            workers[1].active = false;
            assert_eq!(claim_worker_row(&mut workers), 1);
        }
        assert_eq!(workers.len(), 2, "resizing does not grow the table");
    }
}
