//! The smallest useful job, to measure what wasp itself costs per job.

/// `x + 1`.
#[wasp_guest::job]
pub fn add_one(x: i64) -> i64 {
    x + 1
}
