//! [`Books`]: what every job of a server reports to, whoever completes it: the group
//! counters, the jobs dropped without an answer, and the signal that wakes node sessions
//! (work queued, jobs cancelled).
//!
//! A job's slot holds the books, not the server: the books hold no job, so no reference
//! cycle forms, and a job can be completed from anywhere (a worker, the network thread, a
//! `Drop`) without reaching for the queue's lock.

use super::JobId;
use super::deps::Deps;
use super::groups::Groups;
use super::lanes::Owner;
use super::slot::Finished;
use crate::error::JobError;
use crate::metrics::failures::{FailedJob, FailureLog};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::info;

/// A job group's name, shared by its jobs.
pub(crate) type Group = Arc<str>;

/// The server-wide accounting of jobs.
#[derive(Default)]
pub(crate) struct Books {
    /// Per-group counters, and how jobs ended.
    pub(crate) groups: Groups,
    /// The most recent failed jobs.
    pub(crate) failures: FailureLog,
    /// The names of owners other than the server's own caller (a node's clients), while
    /// they have jobs: a failure is attributed to its owner by name.
    owners: Mutex<HashMap<Owner, Arc<str>>>,
    /// Tasks dropped without being finished: the queue still counts them as running until
    /// it takes these out (see [`Books::take_orphans`]).
    orphans: Mutex<Vec<JobId>>,
    has_orphans: AtomicBool,
    /// Counts cancellations, so that a node session knows when to look for cancelled jobs
    /// among those it has in flight.
    cancellations: AtomicU64,
    /// Wakes the cluster's node sessions: jobs were queued or cancelled (they wait on the
    /// async runtime, not on a condvar).
    pub(crate) remote_work: tokio::sync::Notify,
    /// Whether any node session exists, so that a local-only server skips the notify.
    has_remote: AtomicBool,
    /// Jobs other jobs take, and the jobs waiting for them (`deps.rs`).
    pub(crate) deps: Deps,
    /// The result cache's counters and files, if the server's jobs may use it.
    pub(crate) results: std::sync::OnceLock<Arc<crate::result_cache::ResultCache>>,
}

impl Books {
    /// Counts a job of `group` that ended as `finished`, and keeps `failure`, if it
    /// failed, in the failure log (logging it): what [`JobSlot::finish`] does before it
    /// delivers the outcome to anyone.
    ///
    /// [`JobSlot::finish`]: super::slot::JobSlot::finish
    pub(crate) fn count(&self, group: &str, finished: &Finished, failure: Option<FailedJob>) {
        let error = finished.outcome.result.as_ref().err();
        self.groups.finished(group, error.map(JobError::kind_index));
        if let Some(failure) = failure {
            let client = failure.client.as_deref().unwrap_or("");
            info!(job = failure.job, %client, function = %failure.function, module = %failure.module, node = %failure.node, error = %failure.error, "job failed");
            self.failures.push(failure);
        }
    }

    /// Names `owner` (a node's client: its address) until it is forgotten.
    pub(crate) fn name_owner(&self, owner: Owner, name: Arc<str>) {
        self.owners_lock().insert(owner, name);
    }

    /// Forgets the name of `owner`.
    pub(crate) fn forget_owner(&self, owner: Owner) {
        self.owners_lock().remove(&owner);
    }

    /// The name of `owner`, if it has one.
    pub(crate) fn owner_name(&self, owner: Owner) -> Option<Arc<str>> {
        self.owners_lock().get(&owner).cloned()
    }

    fn owners_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Owner, Arc<str>>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that task `id` was dropped without being finished.
    pub(crate) fn orphan(&self, id: JobId) {
        self.orphans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
        self.has_orphans.store(true, Ordering::Release);
    }

    /// The tasks dropped without being finished since the last call.
    pub(crate) fn take_orphans(&self) -> Vec<JobId> {
        if !self.has_orphans.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.orphans.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A job was cancelled: node sessions holding it must tell their node.
    pub(crate) fn job_cancelled(&self) {
        self.cancellations.fetch_add(1, Ordering::AcqRel);
        self.wake_remote();
    }

    /// How many jobs have been cancelled so far.
    pub(crate) fn cancellations(&self) -> u64 {
        self.cancellations.load(Ordering::Acquire)
    }

    /// Marks the server as having node sessions to wake.
    pub(crate) fn enable_remote(&self) {
        self.has_remote.store(true, Ordering::Relaxed);
    }

    /// Wakes the node sessions, if there are any.
    pub(crate) fn wake_remote(&self) {
        if self.has_remote.load(Ordering::Relaxed) {
            self.remote_work.notify_waiters();
        }
    }
}
