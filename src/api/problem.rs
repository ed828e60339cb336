//! RFC 9457 problem details (`application/problem+json`) with the gateway's error codes.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hcgw_adapters::{AdapterError, ErrorCode, RegionId};
use serde::Serialize;

use super::request_id;

/// An API error: one of the spec's codes, a detail without personal data, and optionally
/// the region and how long to wait.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    /// The error code (decides the HTTP status).
    pub code: ErrorCode,
    /// A human-readable explanation, free of personal data.
    pub detail: String,
    /// The region concerned.
    pub region: Option<RegionId>,
    /// How long the caller should wait before retrying.
    pub retry_after: Option<Duration>,
    /// The peer gateway the lookup was forwarded to, when the error came from or through
    /// it (for the audit trail; not shown to the caller).
    pub via_peer: Option<String>,
}

impl ApiError {
    /// An error with a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            region: None,
            retry_after: None,
            via_peer: None,
        }
    }

    /// `invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, detail)
    }

    /// `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Forbidden, detail)
    }

    /// Attaches the region.
    pub fn with_region(mut self, region: RegionId) -> Self {
        self.region = Some(region);
        self
    }

    /// Attaches a retry delay.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
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
        }
    }

    /// The error of a failed region call.
    pub fn from_adapter(region: RegionId, e: &AdapterError) -> Self {
        let mut err = ApiError::new(e.code(), e.to_string()).with_region(region);
        err.retry_after = e
            .retry_after()
            .or_else(|| (e.code().http_status() == 503).then(|| Duration::from_secs(30)));
        err
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
        if let Some(s) = problem.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        } else if matches!(problem.status, 429 | 503) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        resp
    }
}
