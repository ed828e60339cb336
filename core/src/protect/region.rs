//! Per-region protection: an outbound rate limit at or below the region's published limit,
//! a concurrency bulkhead, hold-off after the region throttles us, a circuit breaker, and
//! recent latency and error figures for `GET /v1/regions`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcgw_adapters::{AdapterError, RegionId};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::breaker::{Admission, CircuitBreaker, Refused};
use super::limiter::RateLimiter;
use super::{Clock, retry_secs};
use crate::config::{BreakerSection, RegionEntry};
use crate::error_code::ErrorCode;
use crate::pipeline::LookupError;

pub use super::breaker::CircuitState;

/// A region's protection figures, as `GET /v1/regions` shows them.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProtectionView {
    /// The circuit breaker.
    pub circuit: CircuitState,
    /// Calls among the recent ones (at most 100).
    pub recent_calls: u32,
    /// Upstream failures among them.
    pub recent_errors: u32,
    /// Median latency of the recent calls (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile latency of the recent calls (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<u64>,
    /// Outbound requests per second allowed.
    pub rate_limit_per_s: u32,
    /// Calls in flight now.
    pub in_flight: usize,
    /// When the region throttled us: seconds left before it is asked again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_off_s: Option<u64>,
}

#[derive(Debug)]
struct Health {
    recent: VecDeque<(Duration, bool)>,
    hold_until: Option<Instant>,
}

/// The protection of one region.
pub struct RegionGuard {
    region: RegionId,
    rate: u32,
    limiter: RateLimiter,
    concurrency: Arc<Semaphore>,
    max_concurrency: usize,
    queue: Duration,
    breaker: CircuitBreaker,
    health: Mutex<Health>,
    clock: Arc<dyn Clock>,
    shared: Option<Arc<super::redis_tier::RedisTier>>,
}

/// Permission to make one upstream call: holds a concurrency slot and the breaker's
/// admission (when half-open, a probe slot). Both are released when the permit is dropped —
/// after [`Permit::finish`], or when the call is abandoned (an error path, or the request's
/// future dropped mid-flight).
pub struct Permit<'a> {
    guard: &'a RegionGuard,
    admission: Admission<'a>,
    _slot: OwnedSemaphorePermit,
}

impl RegionGuard {
    /// The guard of `region` configured by `entry` and the default breaker.
    pub fn new(
        region: RegionId,
        entry: &RegionEntry,
        default_breaker: BreakerSection,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let rate = entry
            .rate_limit_per_s
            .unwrap_or_else(|| region.published_rate_per_s())
            .clamp(1, region.published_rate_per_s());
        let max_concurrency = entry.max_concurrency.max(1);
        RegionGuard {
            region,
            rate,
            limiter: paced(rate),
            concurrency: Arc::new(Semaphore::new(max_concurrency)),
            max_concurrency,
            queue: Duration::from_millis(entry.queue_ms),
            breaker: CircuitBreaker::new(
                region.as_str(),
                entry.breaker.unwrap_or(default_breaker).into(),
                clock.clone(),
            ),
            health: Mutex::new(Health {
                recent: VecDeque::new(),
                hold_until: None,
            }),
            clock,
            shared: None,
        }
    }

    /// Uses the shared tier for a global rate across instances; while Redis is down, this
    /// instance paces at `local_share` of the rate.
    pub fn set_shared(&mut self, shared: Option<Arc<super::redis_tier::RedisTier>>) {
        let share = shared.as_ref().map(|s| s.local_share()).unwrap_or(1.0);
        self.limiter = paced(((f64::from(self.rate) * share).round() as u32).max(1));
        self.shared = shared;
    }

    /// The global pace through Redis: `None` when Redis is unavailable. One round trip: the
    /// script reserves the region's next slot when it is due within the queue time left, and
    /// the call waits for it (callers queue in FIFO order, the rate never exceeded).
    async fn global_pace(
        &self,
        started: Instant,
        queue: Duration,
    ) -> Option<Result<(), LookupError>> {
        let shared = self.shared.as_ref()?;
        let key = format!("hcgw:r:{}", self.region.as_str());
        // The same margin as the local limiter: each call advances the region's GCRA by
        // (1 + PACE_MARGIN) / rate, with no burst (cost = tolerance, in tenths).
        let (per_s, tenths) = margin_cost(self.rate);
        let left = queue.saturating_sub(started.elapsed());
        Some(
            match shared.take(&key, per_s, tenths, tenths, left).await? {
                Ok(wait) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    Ok(())
                }
                Err(wait) => Err(self.throttled(wait, "the region's request rate is reached")),
            },
        )
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn throttled(&self, wait: Duration, detail: &str) -> LookupError {
        metrics::counter!("hcgw_rate_limited_total", "scope" => "region", "name" => self.region.as_str())
            .increment(1);
        LookupError::new(ErrorCode::UpstreamRateLimited, detail.to_owned())
            .with_region(self.region)
            .with_retry_after(retry_secs(wait))
    }

    /// The circuit's state now (an open circuit whose time is up reads half-open).
    pub fn circuit(&self) -> CircuitState {
        self.breaker.circuit()
    }

    /// Waits (at most the configured queue time) for the region's circuit, hold-off, rate
    /// and concurrency limits; refuses with `region_unavailable` (circuit open) or
    /// `upstream_rate_limited`.
    pub async fn admit(&self) -> Result<Permit<'_>, LookupError> {
        self.admit_within(None).await
    }

    /// [`Self::admit`], waiting up to `patience` (instead of the region's `queue_ms`) for
    /// the rate limit and a concurrency slot: batch items are paced, not refused.
    pub async fn admit_within(
        &self,
        patience: Option<Duration>,
    ) -> Result<Permit<'_>, LookupError> {
        let queue = patience.unwrap_or(self.queue).max(self.queue);
        let now = self.clock.now();
        {
            let mut h = self.health();
            if let Some(until) = h.hold_until {
                if now < until {
                    drop(h);
                    return Err(self.throttled(
                        until - now,
                        "the region asked the gateway to hold off; try again later",
                    ));
                }
                h.hold_until = None;
            }
        }
        // From here on every return — and the future being dropped at any await — frees
        // a probe slot through the admission.
        let admission = self.breaker.admit().map_err(|refused| match refused {
            Refused::Open { wait } => LookupError::new(
                ErrorCode::RegionUnavailable,
                "the region's circuit is open after repeated failures",
            )
            .with_region(self.region)
            .with_retry_after(retry_secs(wait)),
            Refused::Probing => LookupError::new(
                ErrorCode::RegionUnavailable,
                "the region is being probed after an outage",
            )
            .with_region(self.region)
            .with_retry_after(Duration::from_secs(1)),
        })?;
        let started = Instant::now();
        let global = self.global_pace(started, queue).await;
        if let Some(Err(e)) = global {
            return Err(e);
        }
        // Rate: fail at once when the wait is beyond the queue time, else queue.
        if global.is_some() {
            // Paced globally through Redis.
        } else if let Err(wait) = self.limiter.take_within(queue).await {
            return Err(self.throttled(wait, "the region's request rate is reached"));
        }
        let left = queue.saturating_sub(started.elapsed());
        let slot = match self.concurrency.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                match tokio::time::timeout(left, self.concurrency.clone().acquire_owned()).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        return Err(self.throttled(
                            Duration::from_secs(1),
                            "too many calls to the region are in flight",
                        ));
                    }
                }
            }
        };
        Ok(Permit {
            guard: self,
            admission,
            _slot: slot,
        })
    }

    fn record(&self, latency: Duration, result: Result<(), &AdapterError>) -> bool {
        let failed = matches!(result, Err(e) if e.is_upstream_failure());
        let now = self.clock.now();
        let mut h = self.health();
        if let Err(AdapterError::RateLimited { retry_after }) = result {
            h.hold_until = Some(now + retry_after.unwrap_or(Duration::from_secs(1)));
        }
        h.recent.push_back((latency, failed));
        while h.recent.len() > 100 {
            h.recent.pop_front();
        }
        failed
    }

    /// The figures of `GET /v1/regions`.
    pub fn view(&self) -> ProtectionView {
        let circuit = self.circuit();
        let now = self.clock.now();
        let h = self.health();
        let mut lat: Vec<Duration> = h.recent.iter().map(|(l, _)| *l).collect();
        lat.sort();
        let pct = |p: f64| {
            (!lat.is_empty()).then(|| {
                let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
                lat[i].as_millis() as u64
            })
        };
        ProtectionView {
            circuit,
            recent_calls: h.recent.len() as u32,
            recent_errors: h.recent.iter().filter(|(_, f)| *f).count() as u32,
            latency_p50_ms: pct(0.5),
            latency_p95_ms: pct(0.95),
            rate_limit_per_s: self.rate,
            in_flight: self.max_concurrency - self.concurrency.available_permits(),
            held_off_s: h
                .hold_until
                .filter(|u| *u > now)
                .map(|u| retry_secs(u - now).as_secs()),
        }
    }
}

impl Permit<'_> {
    /// Records the call's outcome (feeds the breaker and the figures); the slots are freed
    /// as the permit goes.
    pub fn finish(self, latency: Duration, result: Result<(), &AdapterError>) {
        let failed = self.guard.record(latency, result);
        self.admission.finish(failed);
    }
}

/// How much further apart than 1/rate outbound calls are spaced, in tenths of the spacing
/// (1 = 10%). Calls exactly 1/rate apart put rate + 1 of them into a closed one-second
/// window; spaced 1.1/rate apart, any one-second window holds at most `rate` calls even when
/// network and scheduling jitter bring a call up to 0.1 s closer to the next at the region.
const PACE_MARGIN_TENTHS: u32 = 1;

/// The spacing of outbound calls to a region of `rate` per second.
pub fn pace_interval(rate: u32) -> Duration {
    Duration::from_secs(1) * (10 + PACE_MARGIN_TENTHS) / (10 * rate.max(1))
}

/// The margin as a Redis GCRA call (`per_s`, cost = burst): each call advances the shared
/// schedule by `cost / per_s` = [`pace_interval`], with no burst on top.
fn margin_cost(rate: u32) -> (u32, u32) {
    (rate.max(1).saturating_mul(10), 10 + PACE_MARGIN_TENTHS)
}

/// A limiter spacing calls [`pace_interval`] apart (burst 1), so no one-second window ever
/// holds more than `rate` calls.
fn paced(rate: u32) -> RateLimiter {
    RateLimiter::spaced(pace_interval(rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protect::ManualClock;

    fn entry(toml: &str) -> RegionEntry {
        toml::from_str(&format!("base_url = \"http://127.0.0.1:1\"\n{toml}")).unwrap()
    }

    #[tokio::test]
    async fn consecutive_failures_open_then_half_open_probe_closes() {
        let clock = Arc::new(ManualClock::default());
        let g = RegionGuard::new(
            RegionId::Suzhou,
            &entry("[breaker]\nconsecutive_failures = 3\nopen_s = 5"),
            BreakerSection::default(),
            clock.clone(),
        );
        let fail = AdapterError::Timeout(Duration::from_secs(2));
        for _ in 0..3 {
            g.admit()
                .await
                .unwrap()
                .finish(Duration::from_millis(5), Err(&fail));
        }
        assert_eq!(g.circuit(), CircuitState::Open);
        let e = g.admit().await.err().unwrap();
        assert_eq!(e.code, ErrorCode::RegionUnavailable);
        assert!(e.retry_after.is_some());
        clock.advance(Duration::from_secs(6));
        assert_eq!(g.circuit(), CircuitState::HalfOpen);
        let probe = g.admit().await.unwrap();
        // Only one probe at a time.
        assert_eq!(
            g.admit().await.err().unwrap().code,
            ErrorCode::RegionUnavailable
        );
        probe.finish(Duration::from_millis(5), Err(&fail));
        assert_eq!(g.circuit(), CircuitState::Open);
        clock.advance(Duration::from_secs(6));
        g.admit()
            .await
            .unwrap()
            .finish(Duration::from_millis(5), Ok(()));
        assert_eq!(g.circuit(), CircuitState::Closed);
        // Answers about the subject never count.
        for _ in 0..10 {
            g.admit().await.unwrap().finish(
                Duration::from_millis(5),
                Err(&AdapterError::SubjectNotFound),
            );
        }
        assert_eq!(g.circuit(), CircuitState::Closed);
    }

    /// A Suzhou guard with `config` whose circuit opened after one failure and is half-open
    /// now (its `open_s = 1` has passed on the manual clock).
    async fn half_open_guard(config: &str) -> (RegionGuard, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let g = RegionGuard::new(
            RegionId::Suzhou,
            &entry(config),
            BreakerSection::default(),
            clock.clone(),
        );
        g.admit()
            .await
            .unwrap()
            .finish(Duration::ZERO, Err(&AdapterError::unavailable("down")));
        clock.advance(Duration::from_secs(2));
        (g, clock)
    }

    #[tokio::test]
    async fn abandoned_probe_frees_its_slot() {
        let (g, _clock) = half_open_guard("[breaker]\nconsecutive_failures = 1\nopen_s = 1").await;
        drop(g.admit().await.unwrap());
        assert!(g.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_probe_cancelled_while_queueing_or_in_flight_frees_its_slot() {
        // 1/s: the probe after the failure has to queue for the rate limit.
        let (g, _clock) = half_open_guard(
            "rate_limit_per_s = 1\nqueue_ms = 3000\n[breaker]\nconsecutive_failures = 1\nopen_s = 1",
        )
        .await;
        assert_eq!(g.circuit(), CircuitState::HalfOpen);
        // Dropped while waiting for the rate limit (the slot was taken before that await).
        let queued = tokio::time::timeout(Duration::from_millis(50), g.admit()).await;
        assert!(queued.is_err(), "the probe was still queueing");
        // Dropped mid-flight: admitted, then the request goes away before the answer.
        let in_flight = async {
            let _permit = g.admit().await.unwrap();
            std::future::pending::<()>().await
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(1500), in_flight)
                .await
                .is_err()
        );
        // The next call probes (and its success closes the circuit).
        let probe = g.admit().await.expect("the next call probes");
        probe.finish(Duration::ZERO, Ok(()));
        assert_eq!(g.circuit(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn a_stale_probe_slot_never_frees_a_later_half_open_spell() {
        let (g, clock) = half_open_guard(
            "[breaker]\nconsecutive_failures = 1\nopen_s = 1\nhalf_open_probes = 2",
        )
        .await;
        let fail = AdapterError::unavailable("down");
        let stale = g.admit().await.unwrap();
        g.admit().await.unwrap().finish(Duration::ZERO, Err(&fail));
        clock.advance(Duration::from_secs(2));
        // A new spell: two probes allowed; the stale slot of the first spell going away
        // must not make room for a third.
        let a = g.admit().await.unwrap();
        let b = g.admit().await.unwrap();
        drop(stale);
        assert_eq!(
            g.admit().await.err().map(|e| e.code),
            Some(ErrorCode::RegionUnavailable)
        );
        drop((a, b));
    }

    #[test]
    fn calls_are_spaced_with_a_margin_so_no_second_holds_more_than_the_rate() {
        for rate in [1u32, 4, 9, 10, 50, 200, 1000] {
            let d = pace_interval(rate);
            assert!(d > Duration::from_secs(1) / rate, "{rate}: {d:?}");
            // Calls at 0, d, 2d, …: a closed one-second window holds floor(1 s / d) + 1.
            let most = (Duration::from_secs(1).as_nanos() / d.as_nanos()) as u32 + 1;
            assert!(most <= rate, "{rate}/s: {most} calls fit into one second");
            // And still at least rate calls fit when jitter brings them up to 90 ms closer.
            let squeezed = (Duration::from_millis(1090).as_nanos() / d.as_nanos()) as u32 + 1;
            assert!(
                squeezed <= rate,
                "{rate}/s: {squeezed} with 90 ms of jitter"
            );
            let (per_s, cost) = margin_cost(rate);
            let redis_interval = Duration::from_micros(1_000_000 / u64::from(per_s)) * cost;
            assert!(
                redis_interval >= d - Duration::from_micros(cost.into()),
                "{rate}"
            );
        }
    }

    #[tokio::test]
    async fn failure_ratio_opens() {
        let clock = Arc::new(ManualClock::default());
        let g = RegionGuard::new(
            RegionId::Suzhou,
            &entry(
                "[breaker]\nconsecutive_failures = 100\nfailure_ratio = 0.5\nwindow_calls = 10\nmin_calls = 10",
            ),
            BreakerSection::default(),
            clock,
        );
        let fail = AdapterError::unavailable("x");
        for i in 0..10 {
            let r = if i % 2 == 1 { Err(&fail) } else { Ok(()) };
            g.admit().await.unwrap().finish(Duration::ZERO, r);
        }
        assert_eq!(g.circuit(), CircuitState::Open);
    }

    #[tokio::test]
    async fn throttling_holds_the_region_off() {
        let clock = Arc::new(ManualClock::default());
        let g = RegionGuard::new(
            RegionId::Suzhou,
            &entry(""),
            BreakerSection::default(),
            clock.clone(),
        );
        g.admit().await.unwrap().finish(
            Duration::ZERO,
            Err(&AdapterError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            }),
        );
        let e = g.admit().await.err().unwrap();
        assert_eq!(e.code, ErrorCode::UpstreamRateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(g.view().held_off_s, Some(7));
        clock.advance(Duration::from_secs(7));
        assert!(g.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_burst_is_paced_or_refused_never_above_the_rate() {
        let g = Arc::new(RegionGuard::new(
            RegionId::Suzhou,
            &entry("rate_limit_per_s = 20\nqueue_ms = 200"),
            BreakerSection::default(),
            Arc::new(crate::protect::SystemClock),
        ));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                let r = g.admit().await;
                let at = started.elapsed();
                r.map(|p| {
                    p.finish(Duration::ZERO, Ok(()));
                    at
                })
                .map_err(|e| e.code)
            }));
        }
        let mut admitted = Vec::new();
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(at) => admitted.push(at),
                Err(code) => {
                    assert_eq!(code, ErrorCode::UpstreamRateLimited);
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "a 10x burst is partly refused");
        // Within 200 ms of queueing at 20/s, at most 1 + 20 * 0.2 (+ scheduling slack).
        assert!(admitted.len() <= 8, "{} admitted", admitted.len());
        assert!(admitted.len() >= 2, "{} admitted", admitted.len());
    }
}
