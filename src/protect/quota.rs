//! Per-caller quotas (governor): each configured client gets its own limiter, at its own
//! `rate_limit_per_s` or its role's `[limits]` rate, with a burst of `burst_s` seconds'
//! worth. A lookup or verify costs 1; a batch costs its item count (duplicates included:
//! the caller asked for them), capped at the caller's burst so a large batch is never
//! impossible, only expensive; a batch the handler refuses (over 1,000 items, malformed)
//! costs 1. Over quota: 429 `rate_limited` with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hcgw_adapters::ErrorCode;

use super::retry_secs;
use crate::api::ApiError;
use crate::app::AppState;
use crate::config::{Config, Role};
use crate::identity::ConnIdentity;
use crate::server::ConnInfo;

struct Limiter {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
    /// The global quota (with Redis).
    per_s: u32,
    global_burst: u32,
}

/// The quotas of the configured clients: global through Redis when the shared tier is on
/// and answering, else local (with Redis configured but down: `local_share` of each).
pub struct Quotas {
    by_client: HashMap<String, Limiter>,
    shared: Option<Arc<super::shared::Shared>>,
}

fn limiter(per_s: u32, burst_s: u32, share: f64) -> Limiter {
    let per_s = per_s.max(1);
    let global_burst = per_s.saturating_mul(burst_s.max(1));
    let local = ((f64::from(per_s) * share).round() as u32).max(1);
    let burst = local.saturating_mul(burst_s.max(1));
    let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Limiter {
        limiter: RateLimiter::direct(Quota::per_second(nz(local)).allow_burst(nz(burst))),
        burst,
        per_s,
        global_burst,
    }
}

impl Quotas {
    /// One limiter per `[[clients]]` entry.
    pub fn from_config(config: &Config, shared: Option<Arc<super::shared::Shared>>) -> Self {
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

    /// Takes `cost` from `client`'s quota, or says how long to wait.
    pub async fn check(&self, client: &str, cost: u32) -> Result<(), Duration> {
        let Some(l) = self.by_client.get(client) else {
            return Ok(());
        };
        if let Some(shared) = &self.shared
            && let Some(r) = shared
                .take(&format!("hcgw:q:{client}"), l.per_s, l.global_burst, cost)
                .await
        {
            return r;
        }
        let n = NonZeroU32::new(cost.clamp(1, l.burst)).unwrap_or(NonZeroU32::MIN);
        match l.limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            Err(_) => Err(Duration::from_secs(1)),
        }
    }
}

/// The cost of a request: the item count of a batch, else 1.
fn cost(path: &str, body: &[u8]) -> u32 {
    #[derive(serde::Deserialize)]
    struct Items {
        items: Vec<serde::de::IgnoredAny>,
    }
    if path.ends_with("/batch") {
        // An envelope the handler refuses (over 1,000 items, malformed) costs 1.
        serde_json::from_slice::<Items>(body)
            .ok()
            .map(|b| b.items.len())
            .filter(|n| (1..=1000).contains(n))
            .map(|n| n as u32)
            .unwrap_or(1)
    } else {
        1
    }
}

/// The middleware of the lookup, batch and verify routes.
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(ConnIdentity::Known(caller)) = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.identity.clone())
    else {
        return next.run(req).await;
    };
    let (req, cost) = if req.uri().path().ends_with("/batch") {
        let (parts, body) = req.into_parts();
        let limit = state.config.listener.max_body_bytes;
        let bytes = match axum::body::to_bytes(body, limit).await {
            Ok(b) => b,
            Err(_) => {
                return ApiError::new(ErrorCode::PayloadTooLarge, "request body over the limit")
                    .into_response();
            }
        };
        let cost = cost(parts.uri.path(), &bytes);
        (Request::from_parts(parts, Body::from(bytes)), cost)
    } else {
        (req, 1)
    };
    match state.quotas.check(&caller.name, cost).await {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            metrics::counter!("hcgw_rate_limited_total", "scope" => "caller", "name" => caller.name.clone())
                .increment(1);
            ApiError::new(
                ErrorCode::RateLimited,
                "this client's request quota is spent; retry later",
            )
            .with_retry_after(retry_secs(wait))
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cost_their_items() {
        assert_eq!(cost("/v1/lookup/batch", br#"{"items":[1,{"a":2},"x"]}"#), 3);
        assert_eq!(cost("/v1/lookup/batch", b"not json"), 1);
        assert_eq!(cost("/v1/lookup", br#"{"items":[1,2]}"#), 1);
        let too_many = format!("{{\"items\":[{}1]}}", "1,".repeat(1000));
        assert_eq!(cost("/v1/lookup/batch", too_many.as_bytes()), 1);
    }

    #[test]
    fn redis_down_share_is_applied_locally() {
        let l = limiter(20, 1, 0.5);
        assert_eq!((l.burst, l.per_s, l.global_burst), (10, 20, 20));
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
        // A batch larger than the burst costs the whole burst.
        assert!(q.check("b", 50).await.is_err());
    }
}
