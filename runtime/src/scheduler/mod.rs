//! Scheduling jobs onto workers.
//!
//! * `queue`: the queue and worker-count policy as plain data (no threads, no locks).
//! * `lanes`: the pending tasks, one lane per owner (a node's client), served fairly.
//! * `pool`: the OS threads that drive it and run jobs in the sandbox.
//! * `groups`: per-group counters behind `wait_group`.

pub(crate) mod groups;
pub(crate) mod lanes;
pub(crate) mod pool;
pub(crate) mod queue;
