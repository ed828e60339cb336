//! The one circuit breaker of the gateway, for regions and peer gateways alike. Closed, it
//! opens after `consecutive_failures` failures in a row, or when `failure_ratio` of the last
//! `window_calls` calls failed (once `min_calls` were made); open, it refuses calls for
//! `open_s`; then half-open, it lets `half_open_probes` probe calls through, closing when
//! that many succeed and opening again at the first failure. A region uses `[breaker]` (or
//! its own); a peer trips on consecutive failures only, with one probe
//! ([`BreakerPolicy::consecutive_only`]).
//!
//! Its state is exported as `hcgw_circuit_state{target, state}`: one series per state, 1
//! for the current one and 0 for the others.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Clock;
use crate::config::BreakerSection;

/// A circuit's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Probing whether the target is back.
    HalfOpen,
    /// Calls fail fast.
    Open,
}

impl CircuitState {
    /// Every state, in the order of the `state` label's values.
    pub const ALL: [CircuitState; 3] = [
        CircuitState::Closed,
        CircuitState::HalfOpen,
        CircuitState::Open,
    ];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }
}

/// Sets `hcgw_circuit_state{target, state}`: 1 for `current`, 0 for the other states.
pub fn export_state(target: &str, current: CircuitState) {
    for s in CircuitState::ALL {
        metrics::gauge!("hcgw_circuit_state", "target" => target.to_owned(), "state" => s.as_str())
            .set(if s == current { 1.0 } else { 0.0 });
    }
}

/// Why a call is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The circuit is open for `wait` more.
    Open {
        /// Until it turns half-open.
        wait: Duration,
    },
    /// Half-open, and every probe slot is taken.
    Probing,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// `round` tells this half-open spell from earlier ones, so that a probe slot of an
    /// earlier spell never frees (or counts in) a later one.
    HalfOpen {
        probes: u32,
        successes: u32,
        round: u64,
    },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Half-open spells so far (the `round` of the next one).
    rounds: u64,
    consecutive: u32,
    window: VecDeque<bool>,
}

/// A circuit breaker for one target (a region id, or `peer:<name>`).
pub struct CircuitBreaker {
    target: String,
    policy: BreakerPolicy,
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

/// Permission to make one call: when the circuit is half-open, one of its probe slots.
/// The slot frees itself when dropped without an outcome (a cancelled call, an error
/// before the call), so a cancelled call never leaves the target "being probed".
pub struct Admission<'a> {
    breaker: &'a CircuitBreaker,
    /// The half-open round the slot belongs to; `None`: not a probe.
    round: Option<u64>,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some(round) = self.round.take()
            && let Phase::HalfOpen {
                probes, round: r, ..
            } = &mut self.breaker.state().phase
            && *r == round
        {
            *probes = probes.saturating_sub(1);
        }
    }
}

impl Admission<'_> {
    /// Records the call's outcome: `failed` is a failure of the target (not of the caller's
    /// request). Returns the state the circuit moved to, if it changed.
    pub fn finish(mut self, failed: bool) -> Option<CircuitState> {
        let round = self.round.take();
        self.breaker.record(failed, round)
    }
}

/// When a breaker opens and closes (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerPolicy {
    /// Open after this many failures in a row.
    pub consecutive_failures: u32,
    /// Or when this share of the last `window_calls` calls failed …
    pub failure_ratio: f64,
    /// … over this many calls …
    pub window_calls: u32,
    /// … once at least this many were made.
    pub min_calls: u32,
    /// How long the circuit stays open before probing.
    pub open_for: Duration,
    /// Probe calls let through when half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl From<BreakerSection> for BreakerPolicy {
    fn from(s: BreakerSection) -> Self {
        BreakerPolicy {
            consecutive_failures: s.consecutive_failures,
            failure_ratio: s.failure_ratio,
            window_calls: s.window_calls,
            min_calls: s.min_calls,
            open_for: Duration::from_secs(s.open_s),
            half_open_probes: s.half_open_probes,
        }
    }
}

impl BreakerPolicy {
    /// A breaker that opens after `failures` consecutive failures only (no ratio), for
    /// `open_for`, and probes with one call (a peer gateway's).
    pub fn consecutive_only(failures: u32, open_for: Duration) -> Self {
        BreakerPolicy {
            consecutive_failures: failures.max(1),
            failure_ratio: f64::INFINITY,
            window_calls: 1,
            min_calls: u32::MAX,
            open_for,
            half_open_probes: 1,
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker for `target` (exported closed at once).
    pub fn new(target: impl Into<String>, policy: BreakerPolicy, clock: Arc<dyn Clock>) -> Self {
        let target = target.into();
        export_state(&target, CircuitState::Closed);
        CircuitBreaker {
            target,
            policy,
            state: Mutex::new(State {
                phase: Phase::Closed,
                rounds: 0,
                consecutive: 0,
                window: VecDeque::new(),
            }),
            clock,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The circuit's state now (an open circuit whose time is up reads half-open).
    pub fn circuit(&self) -> CircuitState {
        let now = self.clock.now();
        match self.state().phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } if now < until => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Lets a call through, or refuses it (open, or half-open with every probe slot taken).
    pub fn admit(&self) -> Result<Admission<'_>, Refused> {
        let now = self.clock.now();
        let mut guard = self.state();
        let s = &mut *guard;
        let round = match &mut s.phase {
            Phase::Closed => None,
            Phase::Open { until } if now < *until => {
                return Err(Refused::Open { wait: *until - now });
            }
            Phase::Open { .. } => {
                s.rounds += 1;
                s.phase = Phase::HalfOpen {
                    probes: 1,
                    successes: 0,
                    round: s.rounds,
                };
                let round = s.rounds;
                drop(guard);
                export_state(&self.target, CircuitState::HalfOpen);
                return Ok(Admission {
                    breaker: self,
                    round: Some(round),
                });
            }
            Phase::HalfOpen { probes, round, .. } => {
                if *probes >= self.policy.half_open_probes {
                    return Err(Refused::Probing);
                }
                *probes += 1;
                Some(*round)
            }
        };
        Ok(Admission {
            breaker: self,
            round,
        })
    }

    fn record(&self, failed: bool, probe: Option<u64>) -> Option<CircuitState> {
        let now = self.clock.now();
        let mut guard = self.state();
        let s = &mut *guard;
        s.window.push_back(failed);
        while s.window.len() > self.policy.window_calls as usize {
            s.window.pop_front();
        }
        s.consecutive = if failed { s.consecutive + 1 } else { 0 };
        let open_for = self.policy.open_for;
        let next = match &mut s.phase {
            Phase::HalfOpen {
                probes,
                successes,
                round,
            } if probe == Some(*round) => {
                *probes = probes.saturating_sub(1);
                if failed {
                    Some(Phase::Open {
                        until: now + open_for,
                    })
                } else {
                    *successes += 1;
                    (*successes >= self.policy.half_open_probes).then_some(Phase::Closed)
                }
            }
            Phase::Closed if failed => {
                let failures = s.window.iter().filter(|f| **f).count() as f64;
                let calls = s.window.len();
                let ratio_trips = calls >= self.policy.min_calls as usize
                    && failures / calls as f64 >= self.policy.failure_ratio;
                (s.consecutive >= self.policy.consecutive_failures || ratio_trips).then_some(
                    Phase::Open {
                        until: now + open_for,
                    },
                )
            }
            _ => None,
        };
        let next = next?;
        let state = match next {
            Phase::Closed => {
                s.window.clear();
                s.consecutive = 0;
                tracing::info!(target_name = %self.target, "circuit closed: the target answers again");
                CircuitState::Closed
            }
            _ => {
                tracing::warn!(target_name = %self.target, open_ms = self.policy.open_for.as_millis() as u64, "circuit opened after failures");
                CircuitState::Open
            }
        };
        s.phase = next;
        drop(guard);
        export_state(&self.target, state);
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protect::ManualClock;

    fn breaker(policy: BreakerPolicy) -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (CircuitBreaker::new("t", policy, clock.clone()), clock)
    }

    #[test]
    fn consecutive_only_opens_after_that_many_failures_and_probes_once() {
        let (b, clock) = breaker(BreakerPolicy::consecutive_only(2, Duration::from_secs(1)));
        b.admit().unwrap().finish(true);
        assert_eq!(
            b.circuit(),
            CircuitState::Closed,
            "one failure is below the threshold"
        );
        b.admit().unwrap().finish(true);
        assert_eq!(b.circuit(), CircuitState::Open);
        assert!(matches!(b.admit(), Err(Refused::Open { .. })));
        clock.advance(Duration::from_millis(1100));
        let probe = b.admit().expect("one trial after the open period");
        assert_eq!(
            b.admit().err(),
            Some(Refused::Probing),
            "only one trial at a time"
        );
        assert_eq!(probe.finish(false), Some(CircuitState::Closed));
        assert!(b.admit().is_ok());
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let (b, _) = breaker(BreakerPolicy::consecutive_only(2, Duration::from_secs(1)));
        b.admit().unwrap().finish(true);
        b.admit().unwrap().finish(false);
        b.admit().unwrap().finish(true);
        assert_eq!(b.circuit(), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_again_and_a_dropped_one_frees_its_slot() {
        let (b, clock) = breaker(BreakerPolicy::consecutive_only(1, Duration::from_secs(1)));
        b.admit().unwrap().finish(true);
        clock.advance(Duration::from_secs(2));
        drop(b.admit().unwrap());
        let probe = b.admit().expect("the dropped probe freed its slot");
        assert_eq!(probe.finish(true), Some(CircuitState::Open));
        assert!(matches!(b.admit(), Err(Refused::Open { .. })));
    }

    #[test]
    fn the_failure_ratio_trips_over_the_window() {
        let policy = BreakerPolicy {
            consecutive_failures: 100,
            failure_ratio: 0.5,
            window_calls: 4,
            min_calls: 4,
            open_for: Duration::from_secs(10),
            half_open_probes: 2,
        };
        let (b, _) = breaker(policy);
        for failed in [true, false, true] {
            b.admit().unwrap().finish(failed);
        }
        assert_eq!(b.circuit(), CircuitState::Closed, "below min_calls");
        assert_eq!(b.admit().unwrap().finish(true), Some(CircuitState::Open));
    }
}
