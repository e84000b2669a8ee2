//! Scheduling jobs onto workers and nodes, and answering each exactly once.
//!
//! * `task`: a job on its way, with the completer that answers it if it is dropped.
//! * `slot`: where a job's outcome meets its waiters; the first outcome wins.
//! * `books`: what every job reports to (groups, orphans, wake-ups of node sessions).
//! * `lanes`: the pending tasks, one lane per owner (a node's client), served fairly.
//! * `queue`: the queue and worker-count policy as plain data (no threads, no locks).
//! * `pool`: the OS threads that drive it and run jobs in the sandbox; backpressure.
//! * `groups`: per-group counters behind `wait_group`, bounded.
//! * `deps`: jobs that take other jobs' results, held until those finish.
//! * `cached`: a task and the result cache (looked up before it is queued, kept after).

use std::fmt;

/// Identifies a job within its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job#{}", self.0)
    }
}

pub(crate) mod books;
pub(crate) mod cached;
pub(crate) mod deps;
pub(crate) mod groups;
pub(crate) mod lanes;
pub(crate) mod pool;
pub(crate) mod queue;
pub(crate) mod slot;
pub(crate) mod task;
