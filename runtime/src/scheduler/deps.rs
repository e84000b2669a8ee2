//! Jobs that take other jobs' results: a [`Job`](crate::Job) passed as an argument (a job
//! reference, [`wasp_proto::refs`]) makes the new job wait, held here rather than queued,
//! until every job it takes has finished; then its arguments get their results and it is
//! queued. The caller never waits: pipelines and trees are submitted up front.
//!
//! * A job can only take jobs that exist when it is submitted, so cycles cannot form.
//! * A failed or cancelled job fails the jobs that take it, with
//!   [`JobError::Dependency`] naming it (and the job that failed first), and so on down.
//! * A result of [`LARGE_RESULT`] bytes or more goes in as a data reference, like a value
//!   put once: shipped once to each node that needs it, hashed once.
//!
//! What a held job costs: its task (with its arguments) and one callback on each job it
//! takes, until it is released.

use super::JobId;
use super::books::Group;
use super::pool::Shared;
use super::slot::{Finished, JobSlot};
use super::task::Task;
use crate::data::{self, Data, Resolved};
use crate::error::JobError;
use crate::result_cache::ResultCache;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use wasp_proto::refs::{self, Found, Ref};

/// Results this large or larger go to the jobs that take them as data references: shipped
/// once to a node, not inside each job's arguments.
pub(crate) const LARGE_RESULT: usize = 1 << 20;

/// The jobs of a server that other jobs may take, and the jobs waiting for them.
pub(crate) struct Deps {
    /// This server's id in job references: a reference to a job of another server is
    /// refused, never taken for one of this server's jobs with the same number.
    server: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Jobs that have been passed as arguments, by id, while their handles live.
    referable: HashMap<u64, Weak<JobSlot>>,
    /// Large results already made data, so that each is hashed once.
    as_data: HashMap<u64, Data>,
    /// Jobs waiting for others, with their group: to cancel a group.
    held: HashMap<JobId, (Group, Weak<JobSlot>)>,
}

impl Default for Deps {
    fn default() -> Self {
        let server = getrandom::u64().unwrap_or_else(|_| {
            // No randomness: any value distinct enough between servers of one process.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            NEXT.fetch_add(1, Ordering::Relaxed)
        });
        Deps {
            server,
            inner: Mutex::default(),
        }
    }
}

impl Deps {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reference that stands for `slot`'s job in arguments; the job can be taken by
    /// other jobs of this server from now on, while its handle lives.
    pub(crate) fn reference(&self, slot: &Arc<JobSlot>) -> [u8; refs::JOB_REF_LEN] {
        let id = slot.id().0;
        if slot.make_referable() {
            self.lock().referable.insert(id, Arc::downgrade(slot));
        }
        refs::job_ref(self.server, id)
    }

    /// The job a reference names, if it is one of this server's and its handle lives.
    fn get(&self, server: u64, job: u64) -> Option<Arc<JobSlot>> {
        if server != self.server {
            return None;
        }
        self.lock().referable.get(&job).and_then(Weak::upgrade)
    }

    /// Forgets job `job` (its slot is dropped: no handle can name it any more).
    pub(crate) fn forget(&self, job: u64) {
        let mut inner = self.lock();
        inner.referable.remove(&job);
        inner.as_data.remove(&job);
    }

    /// The slots of the jobs `found` names, in order.
    ///
    /// # Errors
    /// [`JobError::BadArguments`] naming a reference to another server's job, or to a job
    /// whose handles are all gone.
    pub(crate) fn resolve(&self, found: &[Found]) -> Result<Vec<Arc<JobSlot>>, JobError> {
        found
            .iter()
            .filter_map(|found| match found.what {
                Ref::Job { server, job } => Some((server, job)),
                Ref::Data { .. } => None,
            })
            .map(|(server, job)| {
                self.get(server, job).ok_or_else(|| {
                    JobError::BadArguments(format!(
                        "job#{job} is not a job of this server that can still be taken (a job \
                         of another server, or one whose handles were all dropped)"
                    ))
                })
            })
            .collect()
    }

    /// Cancels the held jobs of `group`; returns how many were pending.
    pub(crate) fn cancel_group(&self, group: &str, why: &str) -> usize {
        let slots: Vec<_> = self
            .lock()
            .held
            .values()
            .filter(|(held, _)| &**held == group)
            .filter_map(|(_, slot)| slot.upgrade())
            .collect();
        slots.iter().filter(|slot| slot.cancel(why)).count()
    }

    /// How many jobs wait for others now.
    pub(crate) fn held(&self) -> usize {
        self.lock().held.len()
    }

    /// The result of `slot`'s job as data (hashed once per job).
    fn as_data(&self, slot: &JobSlot, finished: &Arc<Finished>) -> Data {
        let id = slot.id().0;
        if let Some(data) = self.lock().as_data.get(&id) {
            return data.clone();
        }
        let data = Data::of(Bytes::from_owner(ResultBytes(finished.clone())));
        // Kept only while the job can still be named (taken again).
        if slot.is_referable() {
            self.lock().as_data.insert(id, data.clone());
        }
        data
    }
}

/// A finished job's result bytes, shared without a copy.
struct ResultBytes(Arc<Finished>);

impl AsRef<[u8]> for ResultBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.outcome.result.as_deref().unwrap_or_default()
    }
}

/// A job waiting for the jobs it takes.
pub(crate) struct Waiting {
    pending: Mutex<Option<Pending>>,
    /// The jobs it takes that have not finished.
    remaining: AtomicUsize,
    shared: Weak<Shared>,
}

/// What a held job needs to be released.
pub(crate) struct Pending {
    /// The task, its arguments still holding the references.
    pub(crate) task: Box<Task>,
    /// The references in its arguments.
    pub(crate) found: Vec<Found>,
    /// The values of its data references (in order; job references are `None`).
    pub(crate) values: Vec<Option<Data>>,
    /// The jobs it takes, in the order of their references.
    pub(crate) takes: Vec<Arc<JobSlot>>,
    /// Where its result may be found or kept, if the caller asked for caching.
    pub(crate) cache: Option<Arc<ResultCache>>,
}

/// Holds `pending`'s task until every job it takes has finished, then queues it (or fails
/// it, if one of them failed).
pub(crate) fn hold(shared: &Arc<Shared>, pending: Pending) {
    let slot = pending.task.slot().clone();
    let takes = pending.takes.clone();
    let deps = &shared.books.deps;
    deps.lock()
        .held
        .insert(slot.id(), (slot.group().clone(), Arc::downgrade(&slot)));
    let waiting = Arc::new(Waiting {
        remaining: AtomicUsize::new(takes.len()),
        pending: Mutex::new(Some(pending)),
        shared: Arc::downgrade(shared),
    });
    // Cancelled while held (by its caller, or its group): it goes at once.
    let own = Arc::downgrade(&waiting);
    slot.on_complete(Box::new(move |_| {
        if let Some(waiting) = own.upgrade() {
            waiting.drop_if_answered();
        }
    }));
    for taken in takes {
        let waiting = waiting.clone();
        taken.on_complete(Box::new(move |_| {
            if waiting.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                release(waiting);
            }
        }));
    }
}

thread_local! {
    /// Jobs to release on this thread, when a release is under way here: releasing a job
    /// may end it (a failure passed on, a cached result), which releases the jobs that take
    /// it, and so on; a chain of 100,000 jobs must not become 100,000 nested calls.
    static RELEASING: RefCell<Option<VecDeque<Arc<Waiting>>>> = const { RefCell::new(None) };
}

/// Releases `waiting` now, or after the release under way on this thread.
fn release(waiting: Arc<Waiting>) {
    let queued = RELEASING.with(|releasing| match releasing.borrow_mut().as_mut() {
        Some(queue) => {
            queue.push_back(waiting.clone());
            true
        }
        None => false,
    });
    if queued {
        return;
    }
    /// Ends the release loop on this thread, even if a release panics.
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            RELEASING.with(|releasing| *releasing.borrow_mut() = None);
        }
    }
    RELEASING.with(|releasing| *releasing.borrow_mut() = Some(VecDeque::new()));
    let _done = Done;
    let mut next = Some(waiting);
    while let Some(waiting) = next {
        waiting.release();
        next = RELEASING.with(|releasing| releasing.borrow_mut().as_mut()?.pop_front());
    }
}

impl Waiting {
    fn take(&self) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The held job was answered (cancelled) before its turn: its task ends now.
    fn drop_if_answered(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let answered = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match pending.as_ref() {
                Some(held) if held.task.is_answered() => pending.take(),
                _ => None,
            }
        };
        if let Some(pending) = answered {
            end(&shared, pending.task, Finished::failed(cancelled()));
        }
    }

    /// Every job it takes has finished: the job gets their results and is queued.
    fn release(&self) {
        let (Some(shared), Some(pending)) = (self.shared.upgrade(), self.take()) else {
            return;
        };
        let Pending {
            mut task,
            found,
            values,
            takes,
            cache,
        } = pending;
        if task.is_answered() {
            end(&shared, task, Finished::failed(cancelled()));
            return;
        }
        let resolved = match resolve(&shared, &found, values, &takes) {
            Ok(resolved) => resolved,
            Err(error) => {
                end(&shared, task, Finished::failed(error));
                return;
            }
        };
        let bytes = std::mem::take(&mut task.args).into_wire();
        task.args = data::build(bytes, &found, resolved);
        shared.books.deps.lock().held.remove(&task.id());
        if let Some(cache) = cache
            && let Some(hit) = super::cached::attach(&cache, &task)
        {
            shared.finish(task, hit);
            return;
        }
        shared.enqueue_now(task);
    }
}

/// Ends a held task that will not run.
fn end(shared: &Shared, task: Box<Task>, finished: Finished) {
    shared.books.deps.lock().held.remove(&task.id());
    shared.finish(task, finished);
}

fn cancelled() -> JobError {
    JobError::Cancelled("cancelled before the jobs it takes finished".into())
}

/// What each reference stands for, now that the jobs taken have finished.
///
/// # Errors
/// [`JobError::Dependency`] for the first job taken that failed.
fn resolve(
    shared: &Shared,
    found: &[Found],
    values: Vec<Option<Data>>,
    takes: &[Arc<JobSlot>],
) -> Result<Vec<Resolved>, JobError> {
    let mut takes = takes.iter();
    found
        .iter()
        .zip(values)
        .map(|(found, value)| match (found.what, value) {
            (Ref::Data { .. }, Some(data)) => Ok(Resolved::Data(data, None)),
            (Ref::Data { .. }, None) => Err(JobError::Internal("a value went missing".into())),
            (Ref::Job { .. }, _) => {
                let taken = takes.next().expect("one slot per job reference");
                result_of(shared, taken)
            }
        })
        .collect()
}

/// The result of a job taken, as its taker gets it.
fn result_of(shared: &Shared, taken: &JobSlot) -> Result<Resolved, JobError> {
    let finished = taken
        .outcome()
        .ok_or_else(|| JobError::Internal("a job taken had no outcome".into()))?;
    match &finished.outcome.result {
        Ok(bytes) if bytes.len() >= LARGE_RESULT => Ok(Resolved::Data(
            shared.books.deps.as_data(taken, &finished),
            None,
        )),
        Ok(_) => Ok(Resolved::Inline(Bytes::from_owner(ResultBytes(finished)))),
        Err(error) => Err(JobError::dependency(taken.id().0, error)),
    }
}
