//! A JSON body extractor with the gateway's rules: `application/json` only, the body size
//! limit (413 `payload_too_large`), a nesting-depth limit, unknown fields refused by the
//! types themselves, a duplicate key at any depth refused (`hcgw_adapters::strict_json`),
//! and parser messages that never echo values.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use hcgw_core::ErrorCode;
use serde::de::DeserializeOwned;

use super::ApiError;

/// Deepest JSON nesting accepted.
pub const MAX_DEPTH: usize = 16;

/// A validated JSON body.
pub struct ApiJson<T>(pub T);

/// Whether `bytes` nests arrays/objects deeper than `max` (strings are skipped).
pub fn too_deep(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses a JSON value with the gateway's rules (used for the body and for batch items).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if too_deep(bytes, MAX_DEPTH) {
        return Err(ApiError::invalid(format!(
            "JSON nested deeper than {MAX_DEPTH} levels"
        )));
    }
    // One strict pass: duplicate keys at any depth and arrays for objects are refused.
    hcgw_adapters::strict_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid(format!(
            "body: {}",
            crate::redact::quoted_values(&e.to_string())
        ))
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::invalid("Content-Type must be application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the body is over the size limit",
                )
            } else {
                ApiError::invalid("the body could not be read")
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Middleware: a body whose declared length is over `limit` but at most four times it is read
/// and discarded (for at most five seconds) before the `413 payload_too_large` answer, so the
/// client sees a clean 413 instead of a connection reset in the middle of its upload. Larger
/// bodies are refused at once and their connection is closed.
pub async fn refuse_oversized(
    limit: usize,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(length) = declared.filter(|n| *n > limit as u64) else {
        return next.run(req).await;
    };
    let refusal = ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body is over the limit of {limit} bytes"),
    );
    if length <= 4 * limit as u64 {
        let mut body = req.into_body();
        let drain = async {
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        return refusal.into_response();
    }
    let mut resp = refusal.into_response();
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_measured_outside_strings() {
        assert!(!too_deep(br#"{"a":[1,{"b":"[[[[[[[[[[[[[[[[[[[[[["}]}"#, 3));
        assert!(too_deep(&b"[".repeat(17), 16));
        assert!(!too_deep(&b"[".repeat(16), 16));
        assert!(!too_deep(br#"{"a":"\"[[[[["}"#, 1));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            n: String,
            #[serde(default)]
            items: Vec<serde_json::Value>,
        }
        assert!(parse::<T>(br#"{"n":"a","items":[{"x":1}]}"#).is_ok());
        for body in [
            &br#"{"n":"a","n":"b"}"#[..],
            br#"{"n":"a","items":[{"x":1,"x":2}]}"#,
            br#"{"n":"a","items":[{"x":{"y":1,"y":1}}]}"#,
        ] {
            let e = parse::<T>(body).unwrap_err();
            assert!(e.detail.contains("duplicate key"), "{}", e.detail);
        }
    }

    #[test]
    fn parse_errors_do_not_echo_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            n: String,
        }
        let e = parse::<T>(br#"{"n": 320501199003071234}"#).unwrap_err();
        assert!(!e.detail.contains("320501199003071234"), "{}", e.detail);
    }
}
