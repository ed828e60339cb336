//! The typed error adapters return, and the error codes an adapter can produce.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::IdType;

/// The error codes a region adapter can produce: the part of the gateway's problem codes
/// (`gateway-api.md`) that is about a region's answer. The gateway's complete list, with
/// the codes only the gateway produces (`forbidden`, `rate_limited`, …) and the HTTP
/// statuses, is `hcgw_core::ErrorCode`, which every `AdapterCode` converts into under the
/// same wire string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterCode {
    /// The region says our request was invalid, and it is the caller's input at fault.
    InvalidRequest,
    /// The region does not serve this identity type.
    UnsupportedIdType,
    /// The region has no code for this subject.
    SubjectNotFound,
    /// The QR token is no longer valid.
    TokenExpired,
    /// The region throttles us.
    UpstreamRateLimited,
    /// The region is down, busy, or refused our credentials.
    RegionUnavailable,
    /// The region did not answer within its deadline.
    RegionTimeout,
    /// The region's answer broke its contract.
    UpstreamInvalidResponse,
}

impl fmt::Display for AdapterCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AdapterCode {
    /// Every code an adapter can produce (in the order of the gateway's list).
    pub const ALL: [AdapterCode; 8] = [
        AdapterCode::InvalidRequest,
        AdapterCode::UnsupportedIdType,
        AdapterCode::SubjectNotFound,
        AdapterCode::TokenExpired,
        AdapterCode::UpstreamRateLimited,
        AdapterCode::RegionUnavailable,
        AdapterCode::RegionTimeout,
        AdapterCode::UpstreamInvalidResponse,
    ];

    /// The snake_case code of the API (the same string as the gateway's `ErrorCode`).
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterCode::InvalidRequest => "invalid_request",
            AdapterCode::UnsupportedIdType => "unsupported_id_type",
            AdapterCode::SubjectNotFound => "subject_not_found",
            AdapterCode::TokenExpired => "token_expired",
            AdapterCode::UpstreamRateLimited => "upstream_rate_limited",
            AdapterCode::RegionUnavailable => "region_unavailable",
            AdapterCode::RegionTimeout => "region_timeout",
            AdapterCode::UpstreamInvalidResponse => "upstream_invalid_response",
        }
    }

    /// True for codes that mean "the status could not be obtained" (recognition.md's
    /// first row), as opposed to an answer about the subject (not found, expired,
    /// unsupported, invalid input).
    pub fn is_upstream_fault(self) -> bool {
        matches!(
            self,
            AdapterCode::UpstreamRateLimited
                | AdapterCode::RegionUnavailable
                | AdapterCode::RegionTimeout
                | AdapterCode::UpstreamInvalidResponse
        )
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

    /// The error code (the gateway's `ErrorCode` converts from it).
    pub fn code(&self) -> AdapterCode {
        match self {
            AdapterError::SubjectNotFound => AdapterCode::SubjectNotFound,
            AdapterError::TokenExpired => AdapterCode::TokenExpired,
            AdapterError::UnsupportedIdType(_) => AdapterCode::UnsupportedIdType,
            AdapterError::InvalidRequest(_) => AdapterCode::InvalidRequest,
            AdapterError::RateLimited { .. } => AdapterCode::UpstreamRateLimited,
            AdapterError::Unavailable { .. } => AdapterCode::RegionUnavailable,
            AdapterError::Timeout(_) => AdapterCode::RegionTimeout,
            AdapterError::InvalidResponse(_) => AdapterCode::UpstreamInvalidResponse,
        }
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
    fn every_adapter_code_has_its_wire_string() {
        let expected = [
            "invalid_request",
            "unsupported_id_type",
            "subject_not_found",
            "token_expired",
            "upstream_rate_limited",
            "region_unavailable",
            "region_timeout",
            "upstream_invalid_response",
        ];
        assert_eq!(AdapterCode::ALL.len(), expected.len());
        for (code, name) in AdapterCode::ALL.iter().zip(expected) {
            assert_eq!(serde_json::to_value(code).unwrap(), name);
            assert_eq!((code.as_str(), code.to_string()), (name, name.to_owned()));
            let back: AdapterCode = serde_json::from_value(name.into()).unwrap();
            assert_eq!(back, *code);
        }
        // A gateway-only code is no adapter code.
        assert!(serde_json::from_value::<AdapterCode>("forbidden".into()).is_err());
    }

    #[test]
    fn adapter_errors_carry_code_and_retryability() {
        let e = AdapterError::unavailable_retryable("9999");
        assert_eq!(
            (e.code(), e.is_retryable(), e.is_upstream_failure()),
            (AdapterCode::RegionUnavailable, true, true)
        );
        let e = AdapterError::credentials_refused("1001");
        assert!(!e.is_retryable() && e.is_upstream_failure());
        let e = AdapterError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            (e.code(), e.retry_after()),
            (
                AdapterCode::UpstreamRateLimited,
                Some(Duration::from_secs(7))
            )
        );
        let e = AdapterError::SubjectNotFound;
        assert!(!e.is_upstream_failure() && !e.is_retryable());
        for e in [
            AdapterError::TokenExpired,
            AdapterError::UnsupportedIdType(IdType::ResidentId),
            AdapterError::InvalidRequest("x".into()),
        ] {
            assert!(!e.is_upstream_failure(), "{e}");
        }
        assert_eq!(
            AdapterError::Timeout(Duration::from_secs(2)).code(),
            AdapterCode::RegionTimeout
        );
        assert!(AdapterError::Timeout(Duration::from_secs(2)).is_upstream_failure());
        assert_eq!(
            AdapterError::invalid_response("sig").code(),
            AdapterCode::UpstreamInvalidResponse
        );
    }
}
