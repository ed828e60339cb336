//! The gateway's error codes (`gateway-api.md`) and the typed error adapters return.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::IdType;

/// Every error code of the gateway's API, with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed JSON, unknown field values, bad identity number, wrong sizes.
    InvalidRequest,
    /// 400: region not configured here nor at any peer.
    UnknownRegion,
    /// 422: QR text matches no region's format.
    UnrecognizedQr,
    /// 422: the region does not serve this identity type.
    UnsupportedIdType,
    /// 401: only reachable behind a TLS terminator.
    Unauthenticated,
    /// 403: the caller's role may not use this endpoint, or the caller is unknown.
    Forbidden,
    /// 404: the region has no code for this subject.
    SubjectNotFound,
    /// 410: the QR token is no longer valid.
    TokenExpired,
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 429: the caller's quota is spent.
    RateLimited,
    /// 503: the region throttles us.
    UpstreamRateLimited,
    /// 503: circuit open, region down, or its credentials failed.
    RegionUnavailable,
    /// 504: the region did not answer within its deadline.
    RegionTimeout,
    /// 502: the region's answer broke its contract.
    UpstreamInvalidResponse,
    /// 508: a forwarded request came back (hop limit).
    FederationLoop,
    /// 503: the audit trail cannot record the lookup, so it is not served (strict mode).
    AuditUnavailable,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownRegion,
        ErrorCode::UnrecognizedQr,
        ErrorCode::UnsupportedIdType,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::SubjectNotFound,
        ErrorCode::TokenExpired,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::UpstreamRateLimited,
        ErrorCode::RegionUnavailable,
        ErrorCode::RegionTimeout,
        ErrorCode::UpstreamInvalidResponse,
        ErrorCode::FederationLoop,
        ErrorCode::AuditUnavailable,
    ];

    /// The snake_case code of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownRegion => "unknown_region",
            ErrorCode::UnrecognizedQr => "unrecognized_qr",
            ErrorCode::UnsupportedIdType => "unsupported_id_type",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::SubjectNotFound => "subject_not_found",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UpstreamRateLimited => "upstream_rate_limited",
            ErrorCode::RegionUnavailable => "region_unavailable",
            ErrorCode::RegionTimeout => "region_timeout",
            ErrorCode::UpstreamInvalidResponse => "upstream_invalid_response",
            ErrorCode::FederationLoop => "federation_loop",
            ErrorCode::AuditUnavailable => "audit_unavailable",
        }
    }

    /// The HTTP status the API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::UnknownRegion => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::SubjectNotFound => 404,
            ErrorCode::TokenExpired => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnrecognizedQr | ErrorCode::UnsupportedIdType => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::UpstreamInvalidResponse => 502,
            ErrorCode::UpstreamRateLimited
            | ErrorCode::RegionUnavailable
            | ErrorCode::AuditUnavailable => 503,
            ErrorCode::RegionTimeout => 504,
            ErrorCode::FederationLoop => 508,
        }
    }

    /// The problem title.
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "Invalid request",
            ErrorCode::UnknownRegion => "Unknown region",
            ErrorCode::UnrecognizedQr => "Unrecognized QR code",
            ErrorCode::UnsupportedIdType => "Identity type not supported by the region",
            ErrorCode::Unauthenticated => "Unauthenticated",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::SubjectNotFound => "Subject not found",
            ErrorCode::TokenExpired => "QR token expired",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::RateLimited => "Rate limited",
            ErrorCode::UpstreamRateLimited => "Region is throttling the gateway",
            ErrorCode::RegionUnavailable => "Region unavailable",
            ErrorCode::RegionTimeout => "Region timeout",
            ErrorCode::UpstreamInvalidResponse => "Invalid response from the region",
            ErrorCode::FederationLoop => "Federation loop",
            ErrorCode::AuditUnavailable => "Audit trail unavailable",
        }
    }

    /// True for codes that mean "the status could not be obtained" (recognition.md's
    /// first row): a gate gets `manual_check` rather than an error for these.
    pub fn is_upstream_fault(self) -> bool {
        matches!(
            self,
            ErrorCode::UpstreamRateLimited
                | ErrorCode::RegionUnavailable
                | ErrorCode::RegionTimeout
                | ErrorCode::UpstreamInvalidResponse
                | ErrorCode::FederationLoop
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong when asking a region. Messages never contain personal data or
/// upstream bodies (which may contain names): only codes and short descriptions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The region has no code for this subject (未申领/未申报).
    #[error("the region has no code for this subject")]
    SubjectNotFound,
    /// The QR token is no longer valid.
    #[error("the QR token has expired")]
    TokenExpired,
    /// The region does not serve this identity type.
    #[error("the region does not serve identity type {0}")]
    UnsupportedIdType(IdType),
    /// The region says our request was invalid, and it is the caller's input at fault.
    #[error("the region rejected the request: {0}")]
    InvalidRequest(String),
    /// The region throttles us.
    #[error("the region is throttling the gateway")]
    RateLimited {
        /// How long the region asks us to wait, when it says.
        retry_after: Option<Duration>,
    },
    /// The region is down, busy, or refused our credentials.
    #[error("the region is unavailable: {detail}")]
    Unavailable {
        /// A short description (an upstream error code, a transport error kind).
        detail: String,
        /// Whether the contract allows one retry of an idempotent lookup.
        retryable: bool,
        /// True when our own credentials were refused: operators must be alerted.
        credentials: bool,
    },
    /// The region did not answer within the deadline.
    #[error("the region did not answer within {0:?}")]
    Timeout(Duration),
    /// The region's answer broke its contract (bad signature, unparseable body, …).
    #[error("the region's answer broke its contract: {0}")]
    InvalidResponse(String),
}

impl AdapterError {
    /// A region outage that may be retried once (the contract allows it).
    pub fn unavailable_retryable(detail: impl Into<String>) -> Self {
        AdapterError::Unavailable {
            detail: detail.into(),
            retryable: true,
            credentials: false,
        }
    }

    /// A region outage that must not be retried.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        AdapterError::Unavailable {
            detail: detail.into(),
            retryable: false,
            credentials: false,
        }
    }

    /// Our credentials were refused: not retried, alert.
    pub fn credentials_refused(detail: impl Into<String>) -> Self {
        AdapterError::Unavailable {
            detail: detail.into(),
            retryable: false,
            credentials: true,
        }
    }

    /// An answer that broke the contract.
    pub fn invalid_response(detail: impl Into<String>) -> Self {
        AdapterError::InvalidResponse(detail.into())
    }

    /// The gateway error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AdapterError::SubjectNotFound => ErrorCode::SubjectNotFound,
            AdapterError::TokenExpired => ErrorCode::TokenExpired,
            AdapterError::UnsupportedIdType(_) => ErrorCode::UnsupportedIdType,
            AdapterError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            AdapterError::RateLimited { .. } => ErrorCode::UpstreamRateLimited,
            AdapterError::Unavailable { .. } => ErrorCode::RegionUnavailable,
            AdapterError::Timeout(_) => ErrorCode::RegionTimeout,
            AdapterError::InvalidResponse(_) => ErrorCode::UpstreamInvalidResponse,
        }
    }

    /// The HTTP status the gateway answers with.
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// Whether one retry of the same (idempotent) lookup is allowed by the contract.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AdapterError::Unavailable {
                retryable: true,
                ..
            }
        )
    }

    /// How long callers should wait, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AdapterError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether this failure counts against the region's health (circuit breaker): answers
    /// about the subject (not found, expired, unsupported, invalid input) do not.
    pub fn is_upstream_failure(&self) -> bool {
        self.code().is_upstream_fault()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_the_spec_status() {
        let expected = [
            ("invalid_request", 400),
            ("unknown_region", 400),
            ("unrecognized_qr", 422),
            ("unsupported_id_type", 422),
            ("unauthenticated", 401),
            ("forbidden", 403),
            ("subject_not_found", 404),
            ("token_expired", 410),
            ("payload_too_large", 413),
            ("rate_limited", 429),
            ("upstream_rate_limited", 503),
            ("region_unavailable", 503),
            ("region_timeout", 504),
            ("upstream_invalid_response", 502),
            ("federation_loop", 508),
            ("audit_unavailable", 503),
        ];
        assert_eq!(ErrorCode::ALL.len(), expected.len());
        for (code, (name, status)) in ErrorCode::ALL.iter().zip(expected) {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.http_status(), status, "{name}");
            assert_eq!(serde_json::to_value(code).unwrap(), name);
        }
    }

    #[test]
    fn adapter_errors_carry_code_status_and_retryability() {
        let e = AdapterError::unavailable_retryable("9999");
        assert_eq!(
            (e.code(), e.http_status(), e.is_retryable()),
            (ErrorCode::RegionUnavailable, 503, true)
        );
        let e = AdapterError::credentials_refused("1001");
        assert!(!e.is_retryable() && e.is_upstream_failure());
        let e = AdapterError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            (e.http_status(), e.retry_after()),
            (503, Some(Duration::from_secs(7)))
        );
        let e = AdapterError::SubjectNotFound;
        assert!(!e.is_upstream_failure() && !e.is_retryable());
        assert_eq!(
            AdapterError::Timeout(Duration::from_secs(2)).http_status(),
            504
        );
        assert_eq!(AdapterError::invalid_response("sig").http_status(), 502);
    }
}
