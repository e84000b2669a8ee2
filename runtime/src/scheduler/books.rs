//! [`Books`]: what every job of a server reports to, whoever completes it: the group
//! counters, the jobs dropped without an answer, and the signal that wakes node sessions
//! (work queued, jobs cancelled).
//!
//! A job's slot holds the books, not the server: the books hold no job, so no reference
//! cycle forms, and a job can be completed from anywhere (a worker, the network thread, a
//! `Drop`) without reaching for the queue's lock.

use super::deps::Deps;
use super::groups::Groups;
use crate::job::JobId;
use crate::metrics::failures::FailureLog;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A job group's name, shared by its jobs.
pub(crate) type Group = Arc<str>;

/// The server-wide accounting of jobs.
#[derive(Default)]
pub(crate) struct Books {
    /// Per-group counters, and how jobs ended.
    pub(crate) groups: Groups,
    /// The most recent failed jobs.
    pub(crate) failures: FailureLog,
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
