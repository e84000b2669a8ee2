//! The throughput history: one sample of the server's counters per second, for the last
//! five minutes, which the dashboard draws.

use std::collections::VecDeque;
use std::time::SystemTime;

/// How many samples are kept: five minutes, at one a second.
pub(crate) const KEPT: usize = 300;

/// The server's counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Sample {
    /// When, in seconds since the Unix epoch.
    pub unix_time: f64,
    /// Jobs finished so far (cumulative: the rate is the difference between samples).
    pub finished: u64,
    /// Jobs failed so far (cumulative).
    pub failed: u64,
    /// Jobs queued then.
    pub queued: u64,
    /// Jobs running then.
    pub running: u64,
}

impl Sample {
    /// A sample taken now.
    pub(crate) fn now(finished: u64, failed: u64, queued: u64, running: u64) -> Self {
        let unix_time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        Sample {
            unix_time,
            finished,
            failed,
            queued,
            running,
        }
    }
}

/// The last [`KEPT`] samples, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds a sample, forgetting the oldest past [`KEPT`].
    pub(crate) fn push(&mut self, sample: Sample) {
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples, oldest first.
    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_five_minutes() {
        let mut history = History::default();
        for second in 0..2 * KEPT as u64 {
            history.push(Sample {
                unix_time: second as f64,
                finished: second,
                failed: 0,
                queued: 0,
                running: 0,
            });
        }
        let samples = history.samples();
        assert_eq!(samples.len(), KEPT);
        assert_eq!(samples[0].finished, KEPT as u64);
        assert_eq!(samples[KEPT - 1].finished, 2 * KEPT as u64 - 1);
    }
}
