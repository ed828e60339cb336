//! Recent per-region figures for the status page: answers, region faults, cache hits and
//! upstream latency over the last few minutes, in a small rolling window of time slots.
//!
//! Fed by the lookup pipeline (as its outermost [`crate::pipeline::Layer`]): every answer
//! (hit, miss or error); and by the local route:
//! every upstream call's latency. Holds counts only: no subject, no token, no caller.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hcgw_adapters::RegionId;
use serde::Serialize;

use crate::error_code::ErrorCode;

/// Length of one slot of the window.
pub const SLOT: Duration = Duration::from_secs(10);
/// Slots kept: the window is `SLOT * SLOTS` (5 minutes).
pub const SLOTS: usize = 30;
/// Upper bounds (ms) of the latency buckets; one more bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Which slot (since the window's start) these counts belong to.
    index: u64,
    answers: u32,
    faults: u32,
    hits: u32,
    misses: u32,
    calls: u32,
    latency_ms_sum: u64,
    latency: [u32; LATENCY_BOUNDS_MS.len() + 1],
}

#[derive(Debug, Default)]
struct Window {
    slots: [Slot; SLOTS],
    consecutive_faults: u32,
    last_fault: Option<(ErrorCode, Instant)>,
    last_region_answer: Option<Instant>,
}

impl Window {
    /// The slot for `index`, cleared when it last held an older slot's counts.
    fn slot(&mut self, index: u64) -> &mut Slot {
        let s = &mut self.slots[(index % SLOTS as u64) as usize];
        if s.index != index {
            *s = Slot {
                index,
                ..Slot::default()
            };
        }
        s
    }
}

/// How an answer for a region ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A status (or a region's own "not found" style answer) from the cache.
    CacheHit,
    /// A status obtained from the region (or its peer).
    Fresh,
    /// An error that is the region's fault (unavailable, timeout, invalid response…).
    Fault(ErrorCode),
    /// Any other error (subject not found, token expired…): the region answered.
    Answered(ErrorCode),
}

impl Outcome {
    /// The outcome of an answer with `code` (an error) or a status (`None`).
    pub fn from_parts(cache_hit: bool, error: Option<ErrorCode>) -> Self {
        match error {
            Some(c) if c.is_upstream_fault() => Outcome::Fault(c),
            Some(c) => Outcome::Answered(c),
            None if cache_hit => Outcome::CacheHit,
            None => Outcome::Fresh,
        }
    }
}

/// The recent figures of one region.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Recent {
    /// The window these figures cover (seconds).
    pub window_s: u64,
    /// Answers given for the region.
    pub answers: u64,
    /// Answers that were the region's fault.
    pub faults: u64,
    /// `faults / answers`, when there were answers.
    pub error_rate: Option<f64>,
    /// Answers served from the cache.
    pub cache_hits: u64,
    /// Statuses that had to be fetched.
    pub cache_misses: u64,
    /// `hits / (hits + misses)`, when there were any.
    pub hit_ratio: Option<f64>,
    /// Calls made to the region.
    pub upstream_calls: u64,
    /// Their mean latency (ms).
    pub latency_avg_ms: Option<f64>,
    /// Their median latency, as the upper bound of its bucket (ms).
    pub latency_p50_ms: Option<u64>,
    /// Their 95th percentile latency, as the upper bound of its bucket (ms).
    pub latency_p95_ms: Option<u64>,
    /// Region faults in a row, most recent answers first (reset by any region answer).
    pub consecutive_faults: u32,
    /// The code of the last fault.
    pub last_fault_code: Option<ErrorCode>,
    /// How long ago the last fault was (seconds).
    pub last_fault_age_s: Option<u64>,
    /// How long ago the region last answered (seconds).
    pub last_answer_age_s: Option<u64>,
}

/// The recent figures of every region.
pub struct Stats {
    started: Instant,
    regions: BTreeMap<RegionId, Mutex<Window>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Empty windows for every region.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    fn starting_at(started: Instant) -> Self {
        Stats {
            started,
            regions: RegionId::ALL
                .into_iter()
                .map(|r| (r, Mutex::new(Window::default())))
                .collect(),
        }
    }

    fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.started).as_secs() / SLOT.as_secs()) + 1
    }

    fn with<R>(&self, region: RegionId, f: impl FnOnce(&mut Window) -> R) -> Option<R> {
        let w = self.regions.get(&region)?;
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&mut w))
    }

    /// Records one answer for `region`.
    pub fn answer(&self, region: RegionId, outcome: Outcome) {
        self.answer_at(region, outcome, Instant::now());
    }

    fn answer_at(&self, region: RegionId, outcome: Outcome, now: Instant) {
        let index = self.index(now);
        self.with(region, |w| {
            let s = w.slot(index);
            s.answers += 1;
            match outcome {
                Outcome::CacheHit => s.hits += 1,
                Outcome::Fresh => s.misses += 1,
                Outcome::Fault(_) | Outcome::Answered(_) => {}
            }
            if let Outcome::Fault(code) = outcome {
                s.faults += 1;
                w.consecutive_faults = w.consecutive_faults.saturating_add(1);
                w.last_fault = Some((code, now));
            } else if outcome != Outcome::CacheHit {
                w.consecutive_faults = 0;
                w.last_region_answer = Some(now);
            }
        });
    }

    /// Records the latency of one call to `region` (successful or not).
    pub fn upstream_call(&self, region: RegionId, latency: Duration) {
        self.upstream_call_at(region, latency, Instant::now());
    }

    fn upstream_call_at(&self, region: RegionId, latency: Duration, now: Instant) {
        let index = self.index(now);
        let ms = latency.as_millis().min(u64::MAX as u128) as u64;
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.with(region, |w| {
            let s = w.slot(index);
            s.calls += 1;
            s.latency_ms_sum += ms;
            s.latency[bucket] += 1;
        });
    }

    /// The figures of the last [`SLOTS`] slots for `region`.
    pub fn recent(&self, region: RegionId) -> Recent {
        self.recent_at(region, Instant::now())
    }

    fn recent_at(&self, region: RegionId, now: Instant) -> Recent {
        let index = self.index(now);
        let oldest = index.saturating_sub(SLOTS as u64 - 1);
        self.with(region, |w| {
            let mut r = Recent {
                window_s: SLOT.as_secs() * SLOTS as u64,
                consecutive_faults: w.consecutive_faults,
                last_fault_code: w.last_fault.map(|(c, _)| c),
                last_fault_age_s: w
                    .last_fault
                    .map(|(_, t)| now.saturating_duration_since(t).as_secs()),
                last_answer_age_s: w
                    .last_region_answer
                    .map(|t| now.saturating_duration_since(t).as_secs()),
                ..Recent::default()
            };
            let mut latency = [0u64; LATENCY_BOUNDS_MS.len() + 1];
            let mut latency_sum = 0u64;
            for s in w
                .slots
                .iter()
                .filter(|s| s.index >= oldest && s.index <= index)
            {
                r.answers += u64::from(s.answers);
                r.faults += u64::from(s.faults);
                r.cache_hits += u64::from(s.hits);
                r.cache_misses += u64::from(s.misses);
                r.upstream_calls += u64::from(s.calls);
                latency_sum += s.latency_ms_sum;
                for (total, n) in latency.iter_mut().zip(s.latency) {
                    *total += u64::from(n);
                }
            }
            r.error_rate = (r.answers > 0).then(|| r.faults as f64 / r.answers as f64);
            let looked = r.cache_hits + r.cache_misses;
            r.hit_ratio = (looked > 0).then(|| r.cache_hits as f64 / looked as f64);
            if r.upstream_calls > 0 {
                r.latency_avg_ms = Some(latency_sum as f64 / r.upstream_calls as f64);
                r.latency_p50_ms = Some(quantile(&latency, r.upstream_calls, 0.5));
                r.latency_p95_ms = Some(quantile(&latency, r.upstream_calls, 0.95));
            }
            r
        })
        .unwrap_or_default()
    }
}

/// The upper bound of the bucket holding the `q` quantile (the slowest bucket reports
/// twice the last bound).
fn quantile(buckets: &[u64], total: u64, q: f64) -> u64 {
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return LATENCY_BOUNDS_MS
                .get(i)
                .copied()
                .unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] * 2);
        }
    }
    LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] * 2
}

/// As a layer of the lookup pipeline (the outermost): records every answer's outcome.
#[async_trait::async_trait]
impl crate::pipeline::Layer for Stats {
    async fn call(
        &self,
        ask: &crate::pipeline::Ask<'_>,
        next: crate::pipeline::Next<'_>,
    ) -> crate::pipeline::FetchResult {
        let result = next.run(ask).await;
        let outcome = Outcome::from_parts(
            result.as_ref().is_ok_and(|f| f.cache_hit),
            result.as_ref().err().map(|e| e.code),
        );
        self.answer(ask.region, outcome);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: RegionId = RegionId::Suzhou;

    #[test]
    fn counts_answers_faults_hits_and_latency() {
        let t0 = Instant::now();
        let s = Stats::starting_at(t0);
        s.answer_at(R, Outcome::Fresh, t0);
        s.answer_at(R, Outcome::CacheHit, t0);
        s.answer_at(R, Outcome::CacheHit, t0);
        s.answer_at(R, Outcome::Fault(ErrorCode::RegionTimeout), t0);
        s.upstream_call_at(R, Duration::from_millis(20), t0);
        s.upstream_call_at(R, Duration::from_millis(40), t0);
        s.upstream_call_at(R, Duration::from_millis(3000), t0);
        let r = s.recent_at(R, t0 + Duration::from_secs(1));
        assert_eq!(r.answers, 4);
        assert_eq!(r.faults, 1);
        assert_eq!(r.error_rate, Some(0.25));
        assert_eq!((r.cache_hits, r.cache_misses), (2, 1));
        assert_eq!(r.hit_ratio, Some(2.0 / 3.0));
        assert_eq!(r.upstream_calls, 3);
        assert_eq!(r.latency_avg_ms, Some(1020.0));
        assert_eq!(r.latency_p50_ms, Some(50));
        assert_eq!(r.latency_p95_ms, Some(5000));
        assert_eq!(r.consecutive_faults, 1);
        assert_eq!(r.last_fault_code, Some(ErrorCode::RegionTimeout));
        assert_eq!(r.last_fault_age_s, Some(1));
        // Other regions are untouched.
        assert_eq!(s.recent_at(RegionId::Xuzhou, t0).answers, 0);
        assert_eq!(s.recent_at(RegionId::Xuzhou, t0).error_rate, None);
    }

    #[test]
    fn a_region_answer_resets_the_fault_run_but_a_cache_hit_does_not() {
        let t0 = Instant::now();
        let s = Stats::starting_at(t0);
        for _ in 0..3 {
            s.answer_at(R, Outcome::Fault(ErrorCode::RegionUnavailable), t0);
        }
        s.answer_at(R, Outcome::CacheHit, t0);
        assert_eq!(s.recent_at(R, t0).consecutive_faults, 3);
        s.answer_at(R, Outcome::Answered(ErrorCode::SubjectNotFound), t0);
        assert_eq!(s.recent_at(R, t0).consecutive_faults, 0);
        assert_eq!(s.recent_at(R, t0).faults, 3);
    }

    #[test]
    fn old_slots_leave_the_window() {
        let t0 = Instant::now();
        let s = Stats::starting_at(t0);
        s.answer_at(R, Outcome::Fault(ErrorCode::RegionUnavailable), t0);
        let later = t0 + SLOT * (SLOTS as u32 - 1);
        s.answer_at(R, Outcome::Fresh, later);
        assert_eq!(s.recent_at(R, later).answers, 2);
        // One slot later the first answer is out of the window.
        let r = s.recent_at(R, later + SLOT);
        assert_eq!((r.answers, r.faults), (1, 0));
        // A slot reused after a full turn starts empty.
        s.answer_at(R, Outcome::Fresh, t0 + SLOT * SLOTS as u32);
        let r = s.recent_at(R, t0 + SLOT * SLOTS as u32);
        assert_eq!(r.answers, 2);
        assert_eq!(r.cache_misses, 2);
    }

    #[test]
    fn outcome_classification() {
        assert_eq!(Outcome::from_parts(true, None), Outcome::CacheHit);
        assert_eq!(Outcome::from_parts(false, None), Outcome::Fresh);
        assert_eq!(
            Outcome::from_parts(false, Some(ErrorCode::RegionTimeout)),
            Outcome::Fault(ErrorCode::RegionTimeout)
        );
        assert_eq!(
            Outcome::from_parts(false, Some(ErrorCode::SubjectNotFound)),
            Outcome::Answered(ErrorCode::SubjectNotFound)
        );
    }
}
