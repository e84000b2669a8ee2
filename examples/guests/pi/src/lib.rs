//! The count_inside job of the pi example: a Monte-Carlo sample of the unit square.
//!
//! The random numbers come from splitmix64, seeded by the host, so every job is
//! deterministic and reproducible, and jobs with different seeds draw different points.

/// The splitmix64 generator: tiny, fast, and good enough for Monte-Carlo sampling.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform `f64` in `[0, 1)`, from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// How many of `samples` random points of the unit square fall inside the quarter disc
/// `x² + y² < 1`: about `samples · π / 4`.
#[wasp_guest::job]
pub fn count_inside(seed: u64, samples: u64) -> u64 {
    let mut rng = SplitMix64::new(seed);
    let mut inside = 0;
    for _ in 0..samples {
        let (x, y) = (rng.next_f64(), rng.next_f64());
        inside += u64::from(x * x + y * y < 1.0);
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_output() {
        // The first outputs for seed 1234567 of the reference C implementation.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn estimates_pi_and_is_deterministic() {
        let samples = 1_000_000;
        let inside = count_inside(42, samples);
        assert_eq!(inside, count_inside(42, samples));
        assert_ne!(inside, count_inside(43, samples));
        let pi = 4.0 * inside as f64 / samples as f64;
        assert!((pi - std::f64::consts::PI).abs() < 0.01, "{pi}");
    }
}
