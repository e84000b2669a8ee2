//! The local worker pool: OS threads that take tasks from the [`Queue`] and run them in the
//! sandbox. Wasm never runs on an async runtime.

use super::groups::Groups;
use super::queue::{Queue, Step, Task};
use crate::cache::ModuleCache;
use crate::error::{ConfigError, JobError};
use crate::job::Finished;
use crate::sandbox::{RawOutcome, Sandbox};
use crate::stats::WorkerStats;
use crate::waiting;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;
use tracing::{debug, error};

/// Everything the server's handle and its workers share.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a task is queued or workers must re-check the target.
    work: Condvar,
    pub(crate) sandbox: Sandbox,
    pub(crate) modules: ModuleCache,
    pub(crate) groups: Groups,
    workers: Mutex<Vec<WorkerStats>>,
    threads: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    /// The number of queued tasks, readable without the lock: idle workers spin on it
    /// briefly before they sleep.
    queued: AtomicUsize,
    /// Wakes the cluster's node sessions when tasks are queued (they wait on the async
    /// runtime, not on the condvar).
    pub(crate) remote_work: tokio::sync::Notify,
    /// Whether any node session exists, so that a local-only server skips the notify.
    has_remote: AtomicBool,
    pub(crate) started: Instant,
}

impl Shared {
    pub(crate) fn new(sandbox: Sandbox) -> Arc<Self> {
        Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            sandbox,
            modules: ModuleCache::default(),
            groups: Groups::default(),
            workers: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            remote_work: tokio::sync::Notify::new(),
            has_remote: AtomicBool::new(false),
            started: Instant::now(),
        })
    }

    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn workers(&self) -> MutexGuard<'_, Vec<WorkerStats>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a task, or fails it at once if the server is shutting down.
    pub(crate) fn enqueue(&self, task: Box<Task>) {
        let pushed = self.update_queue(|queue| queue.push(task));
        self.wake(pushed, false);
    }

    /// Changes the queue under its lock and publishes its new length to the spinners.
    fn update_queue<R>(&self, change: impl FnOnce(&mut Queue) -> R) -> R {
        let mut queue = self.queue();
        let result = change(&mut queue);
        self.queued.store(queue.pending(), Ordering::Release);
        result
    }

    /// Wakes whoever must take a task just queued; cancels it if the queue refused it.
    fn wake(&self, pushed: Result<bool, Box<Task>>, requeued: bool) {
        match pushed {
            Ok(worker_asleep) => {
                if worker_asleep {
                    self.work.notify_one();
                }
                if self.has_remote.load(Ordering::Relaxed) {
                    self.remote_work.notify_waiters();
                }
            }
            Err(task) if requeued => cancel_with(self, *task, "the server shut down"),
            Err(task) => cancel(self, *task),
        }
    }

    /// Marks the server as having remote nodes to wake when work arrives.
    pub(crate) fn enable_remote(&self) {
        self.has_remote.store(true, Ordering::Relaxed);
    }

    /// Takes queued tasks for a remote node: as many as `limit` allows, given what is
    /// pending now.
    #[expect(
        clippy::vec_box,
        reason = "tasks stay boxed from submission to completion"
    )]
    pub(crate) fn take_remote(&self, limit: impl FnOnce(Pending) -> usize) -> Vec<Box<Task>> {
        self.update_queue(|queue| {
            let max = limit(Pending {
                tasks: queue.pending(),
                local_workers: queue.target(),
            });
            queue.take(max)
        })
    }

    /// Puts back a task a node did not finish, at the head of the queue. If the server is
    /// shutting down, the task completes as cancelled instead.
    pub(crate) fn requeue(&self, task: Box<Task>) {
        let pushed = self.update_queue(|queue| queue.requeue(task));
        self.wake(pushed, true);
    }

    /// Completes a task with its outcome: statistics of the queue, the job's slot (which
    /// runs its callbacks and releases its waiters), then its group, so that whoever
    /// waited for the group finds every job of it released.
    pub(crate) fn complete(&self, task: Task, outcome: RawOutcome, worker: String) {
        let failed = outcome.result.is_err();
        self.queue().finished(task.id);
        task.slot.complete(Finished { outcome, worker });
        self.groups.finished(&task.group, failed);
    }

    /// A copy of every worker's statistics.
    pub(crate) fn worker_stats(&self) -> Vec<WorkerStats> {
        self.workers().clone()
    }
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
    let index = {
        let mut workers = shared.workers();
        let name = format!("local/{}", workers.len());
        workers.push(WorkerStats {
            name,
            active: true,
            ..WorkerStats::default()
        });
        workers.len() - 1
    };
    let worker_shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name(format!("wasp-worker-{index}"))
        .spawn(move || worker_loop(&worker_shared, index))?;
    let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
    threads.push((handle.thread().id(), handle));
    Ok(())
}

fn worker_loop(shared: &Shared, index: usize) {
    let name = shared.workers()[index].name.clone();
    debug!(worker = %name, "worker started");
    loop {
        let step = next_step(shared);
        match step {
            Step::Run(task) => run_task(shared, index, &name, *task),
            Step::Retire | Step::Wait => break,
        }
    }
    shared.workers()[index].active = false;
    debug!(worker = %name, "worker retired");
}

/// Waits for the next step: spins briefly when there is no work, then sleeps.
fn next_step(shared: &Shared) -> Step {
    let mut queue = shared.queue();
    let mut spun = false;
    loop {
        let step = queue.next();
        shared.queued.store(queue.pending(), Ordering::Release);
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

fn run_task(shared: &Shared, index: usize, worker: &str, task: Task) {
    // A panic here would be a bug in wasp, not in the job: report it on the job rather than
    // lose the job and the worker.
    let outcome =
        catch_unwind(AssertUnwindSafe(|| execute(shared, &task))).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error!(job = %task.id, %message, "wasp panicked while running a job");
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
    shared.complete(task, outcome, worker.to_string());
}

fn execute(shared: &Shared, task: &Task) -> RawOutcome {
    if task.cancel.is_cancelled() {
        // Cancelled while queued (on a node: its client left): nothing to run.
        return RawOutcome::failed(JobError::Cancelled("cancelled before it ran".into()));
    }
    let metered = task.limits.fuel.is_some();
    match shared.modules.get(&shared.sandbox, &task.module, metered) {
        Ok(compiled) => shared.sandbox.run(
            &compiled,
            &task.function,
            &task.args,
            &task.limits,
            &task.cancel,
        ),
        Err(err) => RawOutcome::failed(err),
    }
}

/// Completes a task that will never run.
fn cancel(shared: &Shared, task: Task) {
    cancel_with(shared, task, "the server shut down before it ran");
}

/// Completes a task that will not run (again), saying why.
pub(crate) fn cancel_with(shared: &Shared, task: Task, why: &str) {
    shared.complete(
        task,
        RawOutcome::failed(JobError::Cancelled(why.into())),
        String::new(),
    );
}

/// Stops the pool: cancels queued jobs, interrupts running ones, and joins the workers
/// (except the calling thread, should a callback be dropping the server).
pub(crate) fn shutdown(shared: &Shared) {
    let never_started = shared.queue().close();
    shared.work.notify_all();
    for task in never_started {
        cancel(shared, task);
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
