//! The per-caller quota as middleware of the lookup, batch and verify routes (the quotas
//! themselves are [`hcgw_core::protect::quota`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hcgw_core::ErrorCode;
use hcgw_core::identity::ConnIdentity;
use hcgw_core::protect::quota::Refusal;

use super::ApiError;
use crate::server::ConnInfo;
use crate::state::AppState;

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

fn refused(caller: &str, refusal: Refusal) -> Response {
    metrics::counter!("hcgw_rate_limited_total", "scope" => "caller", "name" => caller.to_owned())
        .increment(1);
    ApiError::from(refusal.into_error()).into_response()
}

/// The middleware of the lookup, batch and verify routes. A batch that must be paced
/// carries its [`BatchPacing`] to the handler as a request extension.
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(ConnIdentity::Known(caller)) = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.identity.clone())
    else {
        return next.run(req).await;
    };
    if !req.uri().path().ends_with("/batch") {
        return match state.quotas.check(&caller.name, 1).await {
            Ok(()) => next.run(req).await,
            Err(wait) => refused(&caller.name, Refusal::Spent(wait)),
        };
    }
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
    let mut req = Request::from_parts(parts, Body::from(bytes));
    match state.quotas.admit_batch(&caller.name, cost).await {
        Ok(pacing) => {
            if let Some(p) = pacing {
                req.extensions_mut().insert(p);
            }
            next.run(req).await
        }
        Err(refusal) => refused(&caller.name, refusal),
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
}
