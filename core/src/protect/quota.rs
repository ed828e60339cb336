//! Per-caller quotas (governor, or the Redis GCRA when the shared tier is on): each
//! configured client gets its own limiter, at its own `rate_limit_per_s` or its role's
//! `[limits]` rate, with a burst of `burst_s` seconds' worth. A lookup or verify costs 1; a
//! batch costs its item count (duplicates and malformed items included: the caller asked
//! for them); an envelope the handler refuses (over 1,000 items, malformed) costs 1. Over
//! quota: 429 `rate_limited` with a `Retry-After` after which the same request passes.
//!
//! A batch of at most the burst is one GCRA cell: served now or refused whole. A larger one
//! can never be one cell (a GCRA never holds more than its burst), so it is *paced*: the
//! first burst's worth of items is taken now (or the batch is refused until a full burst is
//! there), and the handler takes each further burst-sized chunk as the quota refills, before
//! asking any region about that chunk ([`BatchPacing`]). A batch that could not be paced
//! within [`BATCH_PACING`] even from a full bucket is refused at once, naming the largest
//! batch this client can send. Either way no caller's items go to the regions faster than
//! its rate (plus one burst).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::limiter::RateLimiter;

use super::retry_secs;
use crate::config::{Config, Role};
use crate::error_code::ErrorCode;
use crate::pipeline::LookupError;

/// How long a batch may wait, in all: for its caller's quota (a batch needing more than
/// this from a full bucket is refused at once) and, for each item, for its region's rate.
pub const BATCH_PATIENCE: Duration = Duration::from_secs(60);

/// The longest a batch may be held for its caller's quota (see [`BATCH_PATIENCE`]).
pub const BATCH_PACING: Duration = BATCH_PATIENCE;

struct Limiter {
    limiter: RateLimiter,
    /// This instance's share of the rate (all of it without Redis).
    local_per_s: u32,
    /// The most one cell may cost here: this instance's burst.
    burst: u32,
    /// The burst in seconds.
    burst_s: u32,
    /// The global quota (with Redis).
    per_s: u32,
    global_burst: u32,
}

/// The quotas of the configured clients: global through Redis when the shared tier is on
/// and answering, else local (with Redis configured but down: `local_share` of each).
pub struct Quotas {
    by_client: HashMap<String, Limiter>,
    shared: Option<Arc<super::redis_tier::RedisTier>>,
}

fn limiter(per_s: u32, burst_s: u32, share: f64) -> Limiter {
    let per_s = per_s.max(1);
    let burst_s = burst_s.max(1);
    let global_burst = per_s.saturating_mul(burst_s);
    let local = ((f64::from(per_s) * share).round() as u32).max(1);
    let burst = local.saturating_mul(burst_s);
    Limiter {
        limiter: RateLimiter::per_second(local, burst),
        local_per_s: local,
        burst,
        burst_s,
        per_s,
        global_burst,
    }
}

/// How a batch that passed the quota check is to be paced by its handler: the first
/// `prepaid` items are paid for; every further `chunk` items take their quota (waiting at
/// most until `deadline`) before any of them is looked up.
#[derive(Clone, Debug)]
pub struct BatchPacing {
    /// The configured client whose quota pays.
    pub client: String,
    /// Items already paid for by the middleware.
    pub prepaid: usize,
    /// Items paid for at a time afterwards (the burst: one GCRA cell).
    pub chunk: usize,
    /// The last moment a chunk may still be waited for.
    pub deadline: Instant,
}

/// Why a request was refused by its caller's quota.
#[derive(Debug)]
pub enum Refusal {
    /// Spent: the request passes after `wait`.
    Spent(Duration),
    /// A batch too large to be paced within [`BATCH_PACING`]: at most `max_items` per batch.
    TooLarge {
        /// The batch's items.
        items: u32,
        /// The largest batch this client can send.
        max_items: u32,
        /// The client's rate (this instance).
        per_s: u32,
        /// Its burst in seconds (an empty bucket is full again after it).
        burst_s: u32,
    },
}

impl Refusal {
    /// The 429 answer.
    pub fn into_error(self) -> LookupError {
        match self {
            Refusal::Spent(wait) => LookupError::new(
                ErrorCode::RateLimited,
                "this client's request quota is spent; retry later",
            )
            .with_retry_after(retry_secs(wait)),
            Refusal::TooLarge {
                items,
                max_items,
                per_s,
                burst_s,
            } => LookupError::new(
                ErrorCode::RateLimited,
                format!(
                    "a batch costs one unit of this client's quota per item: {items} items at \
                     {per_s}/s would be held longer than {} s; send at most {max_items} items \
                     per batch",
                    BATCH_PACING.as_secs()
                ),
            )
            .with_retry_after(Duration::from_secs(burst_s.into())),
        }
    }
}

impl Quotas {
    /// One limiter per `[[clients]]` entry.
    pub fn from_config(config: &Config, shared: Option<Arc<super::redis_tier::RedisTier>>) -> Self {
        let l = &config.limits;
        let share = shared.as_ref().map(|s| s.local_share()).unwrap_or(1.0);
        let by_client = config
            .clients
            .iter()
            .map(|c| {
                let per_s = c.rate_limit_per_s.unwrap_or(match c.role {
                    Role::Platform => l.platform_per_s,
                    Role::Checkpoint => l.checkpoint_per_s,
                    Role::Peer => l.peer_per_s,
                    Role::Ops => l.ops_per_s,
                });
                (c.name.clone(), limiter(per_s, l.burst_s, share))
            })
            .collect();
        Quotas { by_client, shared }
    }

    /// Takes `cost` (at most the client's burst: one GCRA cell) from `client`'s quota now,
    /// or says how long until it would pass.
    pub async fn check(&self, client: &str, cost: u32) -> Result<(), Duration> {
        self.reserve(client, cost, Duration::ZERO).await.map(|_| ())
    }

    /// Takes `cost` from `client`'s quota when it is there within `max_wait`: `Ok(wait)`
    /// (taken; the caller proceeds after `wait`), `Err(wait)` (nothing taken). The global
    /// quota reserves ahead; the local one takes only what is there now (`max_wait` is then
    /// the caller's to wait out and ask again).
    async fn reserve(
        &self,
        client: &str,
        cost: u32,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        let Some(l) = self.by_client.get(client) else {
            return Ok(Duration::ZERO);
        };
        let cost = cost.clamp(1, l.burst);
        if let Some(shared) = &self.shared
            && let Some(r) = shared
                .take(
                    &format!("hcgw:q:{client}"),
                    l.per_s,
                    l.global_burst,
                    cost,
                    max_wait,
                )
                .await
        {
            return r;
        }
        l.limiter.try_take(cost).map(|()| Duration::ZERO)
    }

    /// Takes `cost` (at most the burst), waiting for the quota to refill until `deadline`;
    /// `Err(wait)` when it would only pass after it.
    pub async fn take_by(
        &self,
        client: &str,
        cost: u32,
        deadline: Instant,
    ) -> Result<(), Duration> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reserve(client, cost, left).await {
                Ok(wait) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    return Ok(());
                }
                Err(wait) if Instant::now() + wait <= deadline => tokio::time::sleep(wait).await,
                Err(wait) => return Err(wait),
            }
        }
    }

    /// The quota check of a batch of `items` by `client`: `Ok(None)` nothing to pace (paid
    /// in full, or no quota for this client), `Ok(Some(pacing))` the first chunk is paid
    /// and the rest must be paced, `Err` refused.
    pub async fn admit_batch(
        &self,
        client: &str,
        items: u32,
    ) -> Result<Option<BatchPacing>, Refusal> {
        let Some(l) = self.by_client.get(client) else {
            return Ok(None);
        };
        if items <= l.burst {
            return self
                .check(client, items)
                .await
                .map(|()| None)
                .map_err(Refusal::Spent);
        }
        let max_items = l
            .burst
            .saturating_add(l.local_per_s.saturating_mul(BATCH_PACING.as_secs() as u32));
        if items > max_items {
            return Err(Refusal::TooLarge {
                items,
                max_items,
                per_s: l.local_per_s,
                burst_s: l.burst_s,
            });
        }
        self.check(client, l.burst).await.map_err(Refusal::Spent)?;
        Ok(Some(BatchPacing {
            client: client.to_owned(),
            prepaid: l.burst as usize,
            chunk: l.burst as usize,
            deadline: Instant::now() + BATCH_PACING,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_down_share_is_applied_locally() {
        let l = limiter(20, 1, 0.5);
        assert_eq!(
            (l.burst, l.local_per_s, l.per_s, l.global_burst),
            (10, 10, 20, 20)
        );
    }

    #[tokio::test]
    async fn quota_spent_then_wait() {
        let q = Quotas {
            by_client: [
                ("a".to_string(), limiter(2, 1, 1.0)),
                ("b".to_string(), limiter(2, 1, 1.0)),
            ]
            .into_iter()
            .collect(),
            shared: None,
        };
        assert!(q.check("a", 2).await.is_ok());
        let wait = q.check("a", 1).await.unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(q.check("b", 1).await.is_ok(), "other callers unaffected");
    }

    fn quotas(per_s: u32, burst_s: u32) -> Quotas {
        Quotas {
            by_client: [("a".to_string(), limiter(per_s, burst_s, 1.0))]
                .into_iter()
                .collect(),
            shared: None,
        }
    }

    #[tokio::test]
    async fn a_batch_costs_its_items_and_a_spent_quota_says_when_it_passes() {
        let q = quotas(10, 2);
        // 15 of the 20-item burst.
        assert!(matches!(q.admit_batch("a", 15).await, Ok(None)));
        // 10 more do not fit now: refused whole, nothing taken, with the wait that lets
        // them through (5 items at 10/s).
        let Err(Refusal::Spent(wait)) = q.admit_batch("a", 10).await else {
            panic!("a batch over the remaining quota passed");
        };
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        tokio::time::sleep(wait).await;
        assert!(matches!(q.admit_batch("a", 10).await, Ok(None)));
        assert!(q.check("a", 1).await.is_err(), "the quota is spent again");
    }

    #[tokio::test]
    async fn a_batch_above_the_burst_is_paced_and_one_too_large_is_refused() {
        let q = quotas(10, 2);
        // 1,000 items at 10/s would take 98 s: refused at once, nothing taken.
        match q.admit_batch("a", 1000).await {
            Err(Refusal::TooLarge { max_items, .. }) => assert_eq!(max_items, 20 + 10 * 60),
            other => panic!("{other:?}"),
        }
        // 45 items: the first burst (20) is taken now, the rest paced in chunks of 20.
        let p = q.admit_batch("a", 45).await.unwrap().expect("paced");
        assert_eq!((p.prepaid, p.chunk), (20, 20));
        let started = Instant::now();
        q.take_by("a", 20, p.deadline).await.unwrap();
        q.take_by("a", 5, p.deadline).await.unwrap();
        let took = started.elapsed();
        // 25 items at 10/s after the burst.
        assert!(took >= Duration::from_millis(2400), "{took:?}");
        // A deadline that cannot be met is refused with the wait, without waiting.
        let started = Instant::now();
        let wait = q
            .take_by("a", 20, Instant::now() + Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(wait > Duration::from_millis(100) && started.elapsed() < Duration::from_millis(50));
    }
}
