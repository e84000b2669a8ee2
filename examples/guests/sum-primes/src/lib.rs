//! The sum_primes job of Parallel Python's classic example, as a wasp guest.
//!
//! The same source is compiled to wasm for wasp and natively for the benchmark baseline.

/// Is `n` prime? Trial division by every `i` in `2..=ceil(sqrt(n))`, as in pp's example.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n == 2 {
        return true;
    }
    let max = (n as f64).sqrt().ceil() as u64;
    let mut i = 2;
    while i <= max {
        if n.is_multiple_of(i) {
            return false;
        }
        i += 1;
    }
    true
}

/// The sum of the primes below `n`.
#[wasp_guest::job]
pub fn sum_primes(n: u64) -> u64 {
    (2..n).filter(|&x| is_prime(x)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sums() {
        assert_eq!(sum_primes(100), 1060);
        assert_eq!(sum_primes(100_000), 454_396_537);
    }
}
