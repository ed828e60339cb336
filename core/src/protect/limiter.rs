//! The one local rate limiter of the gateway (a GCRA, governor's): per-caller quotas, a
//! region's outbound pace and a peer's call rate all use it. Across instances the Redis
//! tier ([`super::shared`]) runs the same algorithm.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Gcra};

/// A rate limiter: `rate` cells per second with bursts of `burst` cells.
#[derive(Debug)]
pub struct RateLimiter {
    gcra: DefaultDirectRateLimiter,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl RateLimiter {
    /// `per_s` per second, bursts up to `burst` (both at least 1).
    pub fn per_second(per_s: u32, burst: u32) -> Self {
        RateLimiter {
            gcra: Gcra::direct(Quota::per_second(nz(per_s)).allow_burst(nz(burst))),
        }
    }

    /// One cell every `interval`, no burst (calls spaced at least `interval` apart).
    pub fn spaced(interval: Duration) -> Self {
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        RateLimiter {
            gcra: Gcra::direct(quota),
        }
    }

    /// Takes `n` cells now, or says how long until they would be there (`n` over the
    /// burst can never pass: a wait of one second is reported).
    pub fn try_take(&self, n: u32) -> Result<(), Duration> {
        match self.gcra.check_n(nz(n)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            Err(_) => Err(Duration::from_secs(1)),
        }
    }

    /// Takes one cell, waiting for it up to `patience`; `Err(wait)` when it would come only
    /// later (nothing is taken then).
    pub async fn take_within(&self, patience: Duration) -> Result<(), Duration> {
        match self.try_take(1) {
            Ok(()) => Ok(()),
            Err(wait) if wait > patience => Err(wait),
            Err(_) => tokio::time::timeout(patience, self.gcra.until_ready())
                .await
                .map(|_| ())
                .map_err(|_| Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let l = RateLimiter::per_second(10, 3);
        for _ in 0..3 {
            assert!(l.try_take(1).is_ok());
        }
        let wait = l.try_take(1).expect_err("the burst is spent");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(l.try_take(4).is_err(), "more than the burst never passes");
    }

    #[tokio::test]
    async fn spaced_calls_wait_their_interval_within_patience_only() {
        let l = RateLimiter::spaced(Duration::from_millis(50));
        assert!(l.take_within(Duration::ZERO).await.is_ok());
        assert!(l.take_within(Duration::from_millis(5)).await.is_err());
        assert!(l.take_within(Duration::from_millis(200)).await.is_ok());
    }
}
