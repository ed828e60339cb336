//! RFC 9457 problem details (`application/problem+json`) with the gateway's error codes.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hcgw_adapters::RegionId;
use hcgw_core::ErrorCode;
use hcgw_core::lookup::{DEFAULT_RETRY_AFTER, LookupError};
use serde::Serialize;

use super::request_id;

/// An API error: a [`LookupError`] (one of the spec's codes, a detail without personal
/// data, optionally the region and how long to wait) rendered as problem+json.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(pub LookupError);

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        ApiError(e)
    }
}

impl std::ops::Deref for ApiError {
    type Target = LookupError;
    fn deref(&self) -> &LookupError {
        &self.0
    }
}

impl ApiError {
    /// An error with a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError(LookupError::new(code, detail))
    }

    /// `invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError(LookupError::invalid(detail))
    }

    /// `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError(LookupError::forbidden(detail))
    }

    /// Attaches the region.
    pub fn with_region(self, region: RegionId) -> Self {
        ApiError(self.0.with_region(region))
    }

    /// Attaches a retry delay.
    pub fn with_retry_after(self, after: Duration) -> Self {
        ApiError(self.0.with_retry_after(after))
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        Problem {
            r#type: format!("https://hcgw.dev/problems/{}", self.code),
            title: self.code.title(),
            status: self.code.http_status(),
            code: self.code,
            detail: self.detail.clone(),
            request_id: request_id::current(),
            region: self.region,
            retry_after_s: self.retry_after.map(|d| d.as_secs().max(1)),
            audit: self.receipt.as_deref().cloned(),
        }
    }
}

/// The JSON body of a problem.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://hcgw.dev/problems/<code>`.
    pub r#type: String,
    /// Short title of the code.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// The error code.
    pub code: ErrorCode,
    /// Explanation.
    pub detail: String,
    /// The request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The region concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionId>,
    /// Seconds to wait before retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// The receipt of the error's audit record, when the error was audited (a lookup or
    /// verify that reached the pipeline, strict mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<hcgw_core::receipt::Receipt>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.extensions_mut()
            .insert(crate::metrics::ResponseCode(self.code));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = problem.retry_after_s.or_else(|| {
            matches!(problem.status, 429 | 503).then_some(DEFAULT_RETRY_AFTER.as_secs())
        });
        if let Some(s) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
