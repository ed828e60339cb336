//! `X-Request-Id`: taken from the caller when sane (1–64 characters of letters, digits,
//! `-`, `_`, `.`), otherwise a new ULID; echoed on every response, visible to handlers and
//! problem bodies through a task-local, and recorded in the request's log span.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub use hcgw_core::request_id::{HEADER, choose, current, scope};

/// Runs `handle` for `req` with its request id assigned (in the request's header too),
/// current (see [`current`]) and in the log span, and echoes the id on the response.
pub async fn with_id<F, Fut>(mut req: Request, handle: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let id = choose(req.headers().get(HEADER).and_then(|v| v.to_str().ok()));
    // A chosen id is always a valid header value (sane characters or a ULID).
    let value = HeaderValue::from_str(&id).ok();
    if let Some(v) = &value {
        req.headers_mut().insert(HEADER, v.clone());
    }
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = scope(id, handle(req).instrument(span)).await;
    if let Some(v) = value {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}

/// Middleware: assigns, scopes and echoes the request id (the admin listener's; the API
/// uses [`with_id`] in its front door).
pub async fn layer(req: Request, next: Next) -> Response {
    with_id(req, |req| next.run(req)).await
}
