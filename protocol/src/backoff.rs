//! Jittered exponential backoff for reconnects, without a clock or a random source of its own.

use std::time::Duration;

/// Exponential backoff: the n-th delay is drawn from `[d/2, d]` with `d = min(max, base * 2^n)`.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// About 1 s, doubling, up to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Backoff from `base` up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The next delay; `jitter` in `[0, 1]` picks the point in the window (pass a random value).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        let ceiling = self.base.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            1.0
        };
        ceiling / 2 + ceiling.mul_f64(jitter) / 2
    }

    /// Start again from `base` (after a successful connect).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn delays_stay_in_window(jitters in proptest::collection::vec(proptest::num::f64::ANY, 1..64)) {
            let base = Duration::from_secs(1);
            let max = Duration::from_secs(30);
            let mut b = Backoff::new(base, max);
            for (n, j) in jitters.into_iter().enumerate() {
                let d = b.next_delay(j);
                let ceiling = base.saturating_mul(2u32.saturating_pow(n.min(20) as u32)).min(max);
                proptest::prop_assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
            }
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::default();
        for _ in 0..10 {
            b.next_delay(1.0);
        }
        assert_eq!(b.next_delay(1.0), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.next_delay(1.0), Duration::from_secs(1));
    }
}
