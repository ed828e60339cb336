//! `X-Request-Id`: taken from the caller when sane (1–64 characters of letters, digits,
//! `-`, `_`, `.`), otherwise a new ULID; echoed on every response, visible to handlers and
//! problem bodies through a task-local, and recorded in the request's log span.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header name.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the request being handled, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `f` with `id` as the current request id (for tasks spawned by a handler).
pub async fn scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id to use for a request: the caller's if sane, else a fresh ULID.
pub fn choose(from_caller: Option<&str>) -> String {
    match from_caller {
        Some(id) if is_sane(id) => id.to_owned(),
        _ => ulid::Ulid::new().to_string(),
    }
}

fn is_sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

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
    let mut resp = REQUEST_ID.scope(id, handle(req).instrument(span)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        assert_eq!(choose(Some("gate-12.abc_9")), "gate-12.abc_9");
        for bad in ["", "has space", "semi;colon", &"a".repeat(65), "张三"] {
            let id = choose(Some(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 26, "a ULID");
        }
    }
}
