//! Fresh instances without instantiating: a component instance kept on a worker and put
//! back, after each job that returned, to the state it was instantiated in.
//!
//! * `audit`: whether a component keeps all its state in its linear memories (checked once
//!   per component, when it is prepared).
//! * `memory`: the linear memories the sandbox maps itself, with their snapshots.
//! * `pagemap`: which pages a job wrote (Linux's `PAGEMAP_SCAN`).
//! * `faults`: whether a thread took a page fault, without which no page became a copy.
//! * `copies`: which pages a reset copies back: scanned, or remembered while no fault was
//!   taken (and checked every so often).
//!
//! A job that asked for a fresh instance then sees exactly what a new instance would hold:
//! the memories are the snapshot again, and the audit proved nothing else changes. An
//! instance whose job did not return (a trap, a limit, a timeout, a cancel) or grew a memory
//! is dropped instead, and the next job instantiates again.

mod audit;
mod copies;
mod faults;
mod memory;
mod pagemap;

pub(crate) use audit::check;
pub(crate) use memory::{Memories, Region, ResetError, capture};

/// Whether kept instances can be put back on this host: Linux with `PAGEMAP_SCAN` (6.7 and
/// later, not under qemu-user).
pub(crate) fn supported() -> bool {
    pagemap::available()
}

/// The path of wasp's Python runner the tests run (`WASP_PYTHON_RUNNER`, which
/// `scripts/test` sets), or `None` where it is not set: then the test cannot run here,
/// which fails it under `CI=true`.
#[cfg(test)]
pub(crate) fn python_runner_for_tests() -> Option<String> {
    let path = std::env::var("WASP_PYTHON_RUNNER").ok();
    if path.is_none() {
        wasp_fixtures::cannot_run_here(
            "WASP_PYTHON_RUNNER is not set (scripts/test builds the runner and sets it)",
        );
    }
    path.map(|path| path.trim().to_string())
}
