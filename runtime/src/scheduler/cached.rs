//! A task and the result cache: its job looked up before it is queued, and kept when it
//! finishes (by a callback on its slot, with the outcome the slot holds: no copy).

use super::slot::{Finished, JobSlot};
use super::task::Task;
use crate::result_cache::{CACHE_WORKER, Kept, ResultCache};
use crate::sandbox::RawOutcome;
use std::sync::{Arc, Weak};

impl Kept for Finished {
    fn outcome(&self) -> &RawOutcome {
        &self.outcome
    }
}

/// Looks `task`'s job up in `cache`, as its arguments are now (every reference resolved):
/// its cached outcome if there is one; else the job is kept when it finishes, if it can be.
pub(crate) fn attach(cache: &Arc<ResultCache>, task: &Task) -> Option<Finished> {
    let key = cache.key(
        &task.module.hash(),
        &task.function,
        task.asked.fuel,
        task.args.wire(),
    );
    if let Some(outcome) = cache.lookup(&key) {
        return Some(Finished {
            outcome,
            worker: CACHE_WORKER.to_string(),
        });
    }
    let weak_cache = Arc::downgrade(cache);
    let slot: Weak<JobSlot> = Arc::downgrade(task.slot());
    task.slot().on_complete(Box::new(move |_| {
        // The slot has its outcome when its callbacks run.
        let (Some(cache), Some(slot)) = (weak_cache.upgrade(), slot.upgrade()) else {
            return;
        };
        if let Some(finished) = slot.outcome() {
            cache.finished(key, finished);
        }
    }));
    None
}
