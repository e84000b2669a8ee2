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

pub(crate) mod books;
pub(crate) mod deps;
pub(crate) mod groups;
pub(crate) mod lanes;
pub(crate) mod pool;
pub(crate) mod queue;
pub(crate) mod slot;
pub(crate) mod task;
