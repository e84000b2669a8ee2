//! A node's memory budget: the maxima of its policy that fit in the memory it may use in
//! all (its container's limit, say), so that jobs at their maxima cannot get the node
//! killed for memory. Plain data and arithmetic.
//!
//! What a node can be made to hold, at most: each worker's job (its linear memory, its two
//! captured streams, its tables), the module store, the store of values put once, and the
//! node's own share (its code, compiled modules, buffers), [`RESERVE`]. Clients' bytes in transit are bounded per client
//! by `max_bytes_per_client`, not here.

use super::policy::NodePolicy;

/// What a node keeps for itself in its budget, beside its jobs and its module store: its
/// code, the compiled modules, the buffers of its connections.
pub const RESERVE: u64 = 256 << 20;

/// The bytes one table element can take (a function reference).
const TABLE_ELEMENT_BYTES: u64 = 8;

/// The smallest linear memory a job may be left with: below it, the budget is too small
/// for the workers asked for.
const MIN_JOB_MEMORY: u64 = 16 << 20;

/// The share of the budget the module store gets, at most (its default, 1 GiB, unless the
/// budget is smaller): one eighth.
const STORE_SHARE: u64 = 8;

/// The share the store of values put once gets, at most (its default, 2 GiB, unless the
/// budget is smaller): one sixteenth.
const DATA_SHARE: u64 = 16;

/// A WebAssembly page: linear memory grows by whole pages.
const PAGE: u64 = 64 << 10;

/// The policy's maxima do not fit in the node's memory budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{workers} worker(s) with jobs of up to {max_memory} bytes of memory (and their output \
     and tables), a module store of {max_module_bytes} bytes, a store of values of \
     {max_data_bytes} bytes and {RESERVE} bytes for the node itself need {needed} bytes: \
     more than the node's memory limit, {limit} bytes. Give fewer workers, lower \
     --max-memory, --max-module-bytes or --max-data-bytes, or raise the limit"
)]
pub struct MemoryBudgetError {
    /// The memory the node may use.
    pub limit: u64,
    /// What its policy and workers need, at most.
    pub needed: u64,
    /// The workers counted.
    pub workers: usize,
    /// The most linear memory a job may have.
    pub max_memory: u64,
    /// The module store's bound.
    pub max_module_bytes: u64,
    /// The bound of the store of values put once.
    pub max_data_bytes: u64,
}

impl NodePolicy {
    /// The default policy, with the maxima that depend on memory lowered (never raised)
    /// so that `workers` jobs at their maxima, the stores and the node's [`RESERVE`] fit
    /// in `limit` bytes: the module store gets at most an eighth, the store of values put
    /// once a sixteenth, each job an equal share of the rest (whole pages). Set the maxima you want afterwards, then
    /// check them with [`check_memory`](Self::check_memory).
    pub fn within_memory(limit: u64, workers: usize) -> NodePolicy {
        let mut policy = NodePolicy::default();
        policy.max_module_bytes = policy.max_module_bytes.min(limit / STORE_SHARE);
        policy.max_data_bytes = policy.max_data_bytes.min(limit / DATA_SHARE);
        let per_job = limit
            .saturating_sub(RESERVE + policy.stores())
            .checked_div(workers.max(1) as u64)
            .unwrap_or(0)
            .saturating_sub(policy.job_overhead());
        policy.max_memory = policy.max_memory.min(per_job / PAGE * PAGE);
        policy
    }

    /// What `workers` jobs at this policy's maxima, its module store and the node's
    /// [`RESERVE`] need, at most.
    pub fn memory_needed(&self, workers: usize) -> u64 {
        let per_job = self.max_memory.saturating_add(self.job_overhead());
        per_job
            .saturating_mul(workers as u64)
            .saturating_add(self.stores())
            .saturating_add(RESERVE)
    }

    /// The bounds of the node's stores together: modules, and values put once.
    fn stores(&self) -> u64 {
        self.max_module_bytes.saturating_add(self.max_data_bytes)
    }

    /// Checks that `workers` jobs at this policy's maxima fit in `limit` bytes, and leave
    /// each job at least 16 MiB of memory.
    ///
    /// # Errors
    /// [`MemoryBudgetError`] saying what is needed.
    pub fn check_memory(&self, limit: u64, workers: usize) -> Result<(), MemoryBudgetError> {
        let needed = self.memory_needed(workers);
        if needed <= limit && self.max_memory >= MIN_JOB_MEMORY {
            return Ok(());
        }
        Err(MemoryBudgetError {
            limit,
            needed: needed.max(self.memory_needed_with(MIN_JOB_MEMORY, workers)),
            workers,
            max_memory: self.max_memory,
            max_module_bytes: self.max_module_bytes,
            max_data_bytes: self.max_data_bytes,
        })
    }

    /// The most workers whose jobs, at this policy's maxima, fit in `limit` bytes.
    pub fn workers_within(&self, limit: u64) -> usize {
        let per_job = self.max_memory.saturating_add(self.job_overhead()).max(1);
        let room = limit.saturating_sub(self.stores().saturating_add(RESERVE));
        usize::try_from(room / per_job).unwrap_or(usize::MAX)
    }

    /// What a job holds beside its linear memory, at most: its two captured streams and
    /// its tables.
    fn job_overhead(&self) -> u64 {
        (2 * self.max_output)
            .saturating_add(self.max_table_elements.saturating_mul(TABLE_ELEMENT_BYTES))
    }

    fn memory_needed_with(&self, max_memory: u64, workers: usize) -> u64 {
        NodePolicy {
            max_memory: self.max_memory.max(max_memory),
            ..self.clone()
        }
        .memory_needed(workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// The fault: a pod of 2 workers and a 3 GiB limit, where the node's defaults allowed
    /// 2 jobs of 1 GiB and a module store of 1 GiB besides: more than the limit, so the
    /// node could be killed for memory by jobs within its own maxima.
    #[test]
    fn the_defaults_do_not_fit_a_small_pod_and_the_budget_does() {
        let defaults = NodePolicy::default();
        assert!(defaults.check_memory(3 * GIB, 2).is_err());
        let fitted = NodePolicy::within_memory(3 * GIB, 2);
        assert_eq!(fitted.max_module_bytes, 3 * GIB / 8);
        assert_eq!(fitted.max_data_bytes, 3 * GIB / 16);
        assert_eq!(fitted.max_memory, GIB, "room for the default");
        assert!(fitted.memory_needed(2) <= 3 * GIB);
        fitted.check_memory(3 * GIB, 2).expect("fits");
        assert_eq!(fitted.workers_within(3 * GIB), 2);
    }

    #[test]
    fn a_tighter_budget_lowers_the_jobs_memory_in_whole_pages() {
        let fitted = NodePolicy::within_memory(GIB, 4);
        assert!(fitted.max_memory < GIB);
        assert!(fitted.max_memory.is_multiple_of(PAGE));
        assert!(fitted.memory_needed(4) <= GIB);
        fitted.check_memory(GIB, 4).expect("fits");
        // Far more workers than the budget holds: each job would have too little.
        let crowded = NodePolicy::within_memory(GIB, 1000);
        let error = crowded
            .check_memory(GIB, 1000)
            .expect_err("too many workers");
        assert_eq!(error.workers, 1000);
        assert!(error.to_string().contains("Give fewer workers"), "{error}");
    }

    #[test]
    fn maxima_set_above_the_budget_are_refused_by_the_check() {
        let mut policy = NodePolicy::within_memory(2 * GIB, 2);
        policy.max_memory = GIB;
        let error = policy
            .check_memory(2 * GIB, 2)
            .expect_err("2 GiB of jobs and more");
        assert_eq!(error.limit, 2 * GIB);
        assert!(error.needed > 2 * GIB + 256 * MIB);
    }
}
