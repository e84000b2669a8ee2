//! How many jobs to keep in flight on a node, and how long to wait before reconnecting:
//! plain data, no I/O.
//!
//! A node should never wait for work while the client has some, but it must not hoard jobs
//! that another node could run now. So the window is the node's worker count plus enough
//! jobs to cover one network round trip at the rate the node finishes them: a bandwidth-
//! delay product. Long jobs give a window of one job per worker; microsecond jobs a deep
//! pipeline.

use std::time::Duration;

/// The largest window, whatever the estimates say: bounds what a lost node takes with it.
pub(crate) const MAX_WINDOW: usize = 1024;

/// Time the node and the client spend on a job besides running it and the round trip
/// (decoding, queueing, encoding): keeps the pipeline a little deeper than the bare RTT.
const PROCESSING_SLACK: Duration = Duration::from_micros(100);

/// Weight of a new sample in the running mean of job times.
const SMOOTHING: f64 = 0.2;

/// The shortest job time the estimate believes: below it, timer resolution and noise.
const MIN_JOB_TIME: f64 = 10e-6;

/// The most workers a node is believed to have (a wasp pool has at most this many).
const MAX_WORKERS: usize = crate::sandbox::MAX_CONCURRENT_INSTANCES as usize;

/// The credit window of one node.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    workers: usize,
    /// Running mean of the node's job times, in seconds; `None` before the first result.
    job_time: Option<f64>,
}

impl Window {
    /// A window for a node with `workers` workers (a node with none gets no jobs).
    pub(crate) fn new(workers: u32) -> Self {
        Window {
            workers: clamp_workers(workers),
            job_time: None,
        }
    }

    /// The node's worker count changed.
    pub(crate) fn set_workers(&mut self, workers: u32) {
        self.workers = clamp_workers(workers);
    }

    /// The node's worker count, as believed.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Records how long a job ran on the node.
    pub(crate) fn record(&mut self, job_time: Duration) {
        let sample = job_time.as_secs_f64().max(MIN_JOB_TIME);
        self.job_time = Some(match self.job_time {
            None => sample,
            Some(mean) => mean + SMOOTHING * (sample - mean),
        });
    }

    /// How many jobs may be in flight on the node, given the connection's round-trip time.
    /// Before the first result, two per worker: enough to start, little to hoard.
    pub(crate) fn size(&self, rtt: Duration) -> usize {
        if self.workers == 0 {
            return 0;
        }
        let Some(job_time) = self.job_time else {
            return (self.workers * 2).min(MAX_WINDOW);
        };
        let delay = (rtt + PROCESSING_SLACK).as_secs_f64();
        // Jobs the node finishes during one round trip, all workers together. Rounded, not
        // raised: for jobs much longer than the round trip, an extra job queued on each node
        // would cost more at the end of a batch (one node still busy with it while another
        // idles) than the round trip it hides.
        let in_transit = (self.workers as f64 * delay / job_time).round();
        (self.workers + in_transit as usize).min(MAX_WINDOW)
    }
}

/// How many of `pending` jobs a node with `mine` workers may take while others with
/// `others` workers (local ones and other nodes) are there too: its share, rounded up, so a
/// node never takes everything a moment before a batch ends and leaves the others idle.
pub(crate) fn fair_share(pending: usize, mine: usize, others: usize) -> usize {
    let total = mine + others;
    if total == 0 {
        return pending;
    }
    (pending * mine).div_ceil(total)
}

/// A node's announced worker count, bounded by what a wasp pool can have.
/// `delay`, jittered by `fraction` (in `[0, 1)`): between half of it and all of it.
pub(crate) fn jittered(delay: Duration, fraction: f64) -> Duration {
    delay.mul_f64(0.5 + 0.5 * fraction.clamp(0.0, 1.0))
}

/// A random number in `[0, 1)`; 0.5 if the system's generator fails (jitter is a courtesy).
pub(crate) fn random_fraction() -> f64 {
    getrandom::u64().map_or(0.5, |bits| (bits >> 11) as f64 / (1u64 << 53) as f64)
}

fn clamp_workers(workers: u32) -> usize {
    usize::try_from(workers).map_or(MAX_WORKERS, |workers| workers.min(MAX_WORKERS))
}

/// Exponential backoff between reconnection attempts, with jitter: each delay is drawn
/// between half its nominal value and the whole of it, so that the clients of a node that
/// restarts come back spread out, not all at once.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `first`, doubles up to `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            next: first,
            first,
            max,
        }
    }

    /// The delay before the next attempt, jittered.
    pub(crate) fn next_delay(&mut self) -> Duration {
        jittered(self.next_nominal(), random_fraction())
    }

    /// The next delay before jitter: doubling from `first` up to `max`.
    fn next_nominal(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// A connection succeeded: the next failure waits the shortest delay again.
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_micros(100);

    #[test]
    fn starts_with_two_jobs_per_worker() {
        assert_eq!(Window::new(4).size(RTT), 8);
        assert_eq!(
            Window::new(0).size(RTT),
            0,
            "a node without workers gets no work"
        );
        assert_eq!(Window::new(u32::MAX).size(RTT), 2 * MAX_WORKERS);
    }

    #[test]
    fn instant_jobs_do_not_open_the_window_wide() {
        let mut window = Window::new(2);
        window.record(Duration::ZERO);
        // As if jobs took 10 us: 2 x 200 us / 10 us.
        assert_eq!(window.size(RTT), 42);
    }

    #[test]
    fn long_jobs_keep_one_job_per_worker() {
        let mut window = Window::new(2);
        window.record(Duration::from_millis(100));
        assert_eq!(window.size(RTT), 2);
        // Once a round trip is worth half a job or more, more are queued.
        let mut window = Window::new(2);
        window.record(Duration::from_micros(400));
        assert_eq!(window.size(RTT), 3);
    }

    #[test]
    fn short_jobs_fill_the_round_trip() {
        let mut window = Window::new(2);
        window.record(Duration::from_micros(10));
        // 2 workers x 200 us / 10 us = 40 jobs in transit.
        assert_eq!(window.size(RTT), 42);
        // A slower link needs a deeper pipeline, up to the cap.
        assert_eq!(window.size(Duration::from_secs(1)), MAX_WINDOW);
    }

    #[test]
    fn the_mean_follows_the_jobs() {
        let mut window = Window::new(1);
        window.record(Duration::from_micros(10));
        let short = window.size(RTT);
        for _ in 0..50 {
            window.record(Duration::from_millis(50));
        }
        assert!(window.size(RTT) < short);
        assert_eq!(window.size(RTT), 1);
    }

    #[test]
    fn a_node_takes_its_share_of_what_is_queued() {
        // Alone, a node takes everything (its window still bounds it).
        assert_eq!(fair_share(100, 2, 0), 100);
        // Two nodes of one worker: half each, rounded up.
        assert_eq!(fair_share(8, 1, 1), 4);
        assert_eq!(fair_share(7, 1, 1), 4);
        // Beside two local workers, a 2-worker node takes half.
        assert_eq!(fair_share(10, 2, 2), 5);
        // The last job is taken by whoever asks.
        assert_eq!(fair_share(1, 1, 8), 1);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| backoff.next_nominal().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_nominal().as_millis(), 100);
    }

    /// The fault: every client of a restarted node retried on the same schedule, in
    /// lockstep. Delays are now spread between half the nominal delay and all of it.
    #[test]
    fn reconnect_delays_are_jittered_within_half_of_their_value() {
        let second = Duration::from_secs(1);
        assert_eq!(jittered(second, 0.0), second / 2);
        assert_eq!(jittered(second, 0.5), second * 3 / 4);
        assert!(jittered(second, 0.999_999) <= second);
        let clients: Vec<Duration> = (0..100)
            .map(|_| Backoff::new(second, second).next_delay())
            .collect();
        assert!(
            clients.iter().all(|d| (second / 2..=second).contains(d)),
            "{clients:?}"
        );
        let distinct: std::collections::HashSet<_> = clients.iter().collect();
        assert!(
            distinct.len() > 50,
            "a hundred clients spread out: {distinct:?}"
        );
    }
}
