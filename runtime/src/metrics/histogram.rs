//! A histogram of durations with fixed buckets, as Prometheus exposes them.

use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from 100 µs (a trivial job) to a minute (a long
/// one), about three per decade. Above the last is `+Inf`.
pub(crate) const BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0,
];

/// Counts of observations per bucket (not cumulative), their sum and their count.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Histogram {
    /// One per bound, then one for `+Inf`.
    counts: [u64; BOUNDS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = BOUNDS.partition_point(|&bound| bound < seconds);
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// The sum of the observations, in seconds.
    pub(crate) fn sum(&self) -> f64 {
        self.sum
    }

    /// How many observations there were.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// `(upper bound, count)` per bucket, not cumulative, the last bound `f64::MAX` for
    /// `+Inf`: the form `prometheus-client`'s encoder takes.
    pub(crate) fn buckets(&self) -> Vec<(f64, u64)> {
        BOUNDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(self.counts)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_the_first_bucket_that_holds_them() {
        let mut histogram = Histogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_micros(100)); // on a bound: `le` includes it
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(3600));
        let buckets = histogram.buckets();
        assert_eq!(buckets.len(), BOUNDS.len() + 1);
        assert_eq!(buckets[0], (0.0001, 2));
        assert_eq!(buckets[5], (0.005, 1));
        assert_eq!(buckets[BOUNDS.len()], (f64::MAX, 1));
        assert_eq!(histogram.count(), 4);
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 4);
        assert!((histogram.sum() - 3600.00315).abs() < 1e-9);
    }
}
