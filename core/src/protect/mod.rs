//! Protecting callers and regions: the status cache with coalescing ([`cache`]), per-caller
//! quotas ([`quota`]) and per-region outbound limits, retries and circuit breakers
//! ([`region`]).

pub mod breaker;
pub mod cache;
pub mod limiter;
pub mod quota;
pub mod redis_tier;
pub mod region;

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The time source of the cache's TTL check and of the circuit breakers; tests inject a
/// [`ManualClock`] (moka's own expiry cannot be mocked, so the check on read against this
/// clock is what guarantees "never served past its TTL").
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whole seconds to announce in `Retry-After` (at least 1).
pub fn retry_secs(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs_f64().ceil().max(1.0) as u64)
}
