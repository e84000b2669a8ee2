//! What the scheduler records for the monitor, as plain data: histograms of times, the
//! most recent failed jobs, and the throughput history. Recorded under locks the scheduler
//! takes anyway, so that metrics cost a job next to nothing; read by
//! [`monitor`](crate::monitor) when it is scraped.

pub(crate) mod failures;
pub(crate) mod histogram;
pub(crate) mod history;

pub use failures::FailedJob;
pub use history::Sample;
