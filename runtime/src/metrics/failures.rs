//! The most recent failed jobs, with their error and the tail of their output: what the
//! dashboard shows. Bounded, whatever the number of jobs.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many failed jobs are kept.
pub(crate) const KEPT: usize = 20;

/// How much of a failed job's stdout and stderr is kept: the end, where the error is.
pub(crate) const TAIL_BYTES: usize = 2048;

/// A job that failed (cancelled jobs are not failures here), as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FailedJob {
    /// The job's id in its server.
    pub job: u64,
    /// Its group.
    pub group: String,
    /// The function it called.
    pub function: String,
    /// Its module's blake3 hash, in hex.
    pub module: String,
    /// Where it ran: a local worker (`local/0`) or a node's address; empty if it never ran.
    pub node: String,
    /// Who submitted it, on a node: the client's address. `None` for the server's own
    /// caller.
    pub client: Option<String>,
    /// How it failed: one of [`JobError::KINDS`](crate::JobError::KINDS).
    pub kind: &'static str,
    /// The error, as a sentence.
    pub error: String,
    /// The end of what it wrote to stdout (at most 2 KiB, lossy UTF-8).
    pub stdout_tail: String,
    /// The end of what it wrote to stderr (at most 2 KiB, lossy UTF-8).
    pub stderr_tail: String,
    /// When it failed.
    #[serde(rename = "unix_time", serialize_with = "unix_seconds")]
    pub at: SystemTime,
}

/// The end of `bytes`, at most [`TAIL_BYTES`] of it, as text.
pub(crate) fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn unix_seconds<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    serializer.serialize_f64(seconds)
}

/// The most recent [`KEPT`] failed jobs.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    recent: Mutex<VecDeque<FailedJob>>,
}

impl FailureLog {
    /// Keeps `failed`, forgetting the oldest past [`KEPT`].
    pub(crate) fn push(&self, failed: FailedJob) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEPT {
            recent.pop_back();
        }
        recent.push_front(failed);
    }

    /// The failed jobs kept, most recent first.
    pub(crate) fn recent(&self) -> Vec<FailedJob> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(job: u64) -> FailedJob {
        FailedJob {
            job,
            group: "g".into(),
            function: "f".into(),
            module: "00".into(),
            node: "local/0".into(),
            client: None,
            kind: "failed",
            error: "job failed: no".into(),
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_most_recent_are_kept_newest_first() {
        let log = FailureLog::default();
        for job in 0..3 * KEPT as u64 {
            log.push(failed(job));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].job, 3 * KEPT as u64 - 1);
        assert_eq!(recent[KEPT - 1].job, 2 * KEPT as u64);
    }

    #[test]
    fn tails_keep_the_end_of_long_output() {
        let output: Vec<u8> = (0..5000).map(|i| b'a' + (i % 26) as u8).collect();
        let kept = tail(&output);
        assert_eq!(kept.len(), TAIL_BYTES);
        assert!(output.ends_with(kept.as_bytes()));
        assert_eq!(tail(b"short"), "short");
    }
}
