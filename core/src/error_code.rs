//! [`ErrorCode`]: every problem code of the gateway's API (`gateway-api.md`), with its HTTP
//! status and title. A region adapter produces only a part of them
//! ([`hcgw_adapters::AdapterCode`], which converts into an `ErrorCode` under the same wire
//! string); the others (`forbidden`, `rate_limited`, `audit_unavailable`, …) are the
//! gateway's own.

use std::fmt;

use hcgw_adapters::AdapterCode;
use serde::{Deserialize, Serialize};

// The doc comment below is the schema's description in `docs/openapi.json`: the codes an
// adapter produces are the [`AdapterCode`]s (converted with `From`), the others
// (`unknown_region`, `unrecognized_qr`, `unauthenticated`, `forbidden`, `payload_too_large`,
// `rate_limited`, `federation_loop`, `audit_unavailable`) only the gateway produces.
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

    /// The adapter code this is, or `None` for a code only the gateway produces.
    pub fn adapter_code(self) -> Option<AdapterCode> {
        match self {
            ErrorCode::InvalidRequest => Some(AdapterCode::InvalidRequest),
            ErrorCode::UnsupportedIdType => Some(AdapterCode::UnsupportedIdType),
            ErrorCode::SubjectNotFound => Some(AdapterCode::SubjectNotFound),
            ErrorCode::TokenExpired => Some(AdapterCode::TokenExpired),
            ErrorCode::UpstreamRateLimited => Some(AdapterCode::UpstreamRateLimited),
            ErrorCode::RegionUnavailable => Some(AdapterCode::RegionUnavailable),
            ErrorCode::RegionTimeout => Some(AdapterCode::RegionTimeout),
            ErrorCode::UpstreamInvalidResponse => Some(AdapterCode::UpstreamInvalidResponse),
            ErrorCode::UnknownRegion
            | ErrorCode::UnrecognizedQr
            | ErrorCode::Unauthenticated
            | ErrorCode::Forbidden
            | ErrorCode::PayloadTooLarge
            | ErrorCode::RateLimited
            | ErrorCode::FederationLoop
            | ErrorCode::AuditUnavailable => None,
        }
    }

    /// True for codes that mean "the status could not be obtained" (recognition.md's
    /// first row): a gate gets `manual_check` rather than an error for these. The
    /// adapter's faults ([`AdapterCode::is_upstream_fault`]) and a federation loop.
    pub fn is_upstream_fault(self) -> bool {
        self == ErrorCode::FederationLoop
            || self
                .adapter_code()
                .is_some_and(AdapterCode::is_upstream_fault)
    }
}

impl From<AdapterCode> for ErrorCode {
    /// The gateway's code for an adapter's (the same wire string).
    fn from(code: AdapterCode) -> Self {
        match code {
            AdapterCode::InvalidRequest => ErrorCode::InvalidRequest,
            AdapterCode::UnsupportedIdType => ErrorCode::UnsupportedIdType,
            AdapterCode::SubjectNotFound => ErrorCode::SubjectNotFound,
            AdapterCode::TokenExpired => ErrorCode::TokenExpired,
            AdapterCode::UpstreamRateLimited => ErrorCode::UpstreamRateLimited,
            AdapterCode::RegionUnavailable => ErrorCode::RegionUnavailable,
            AdapterCode::RegionTimeout => ErrorCode::RegionTimeout,
            AdapterCode::UpstreamInvalidResponse => ErrorCode::UpstreamInvalidResponse,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    fn every_adapter_code_converts_under_the_same_wire_string() {
        for a in AdapterCode::ALL {
            let code = ErrorCode::from(a);
            assert_eq!(code.as_str(), a.as_str());
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::to_value(a).unwrap()
            );
            assert_eq!(code.adapter_code(), Some(a));
            assert_eq!(code.is_upstream_fault(), a.is_upstream_fault(), "{a}");
        }
        // The adapter codes keep the gateway's order.
        let order: Vec<ErrorCode> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.adapter_code().is_some())
            .collect();
        let adapters: Vec<ErrorCode> = AdapterCode::ALL.into_iter().map(ErrorCode::from).collect();
        assert_eq!(order, adapters);
    }

    #[test]
    fn the_gateway_only_codes_are_no_adapter_codes() {
        let gateway_only: Vec<&str> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.adapter_code().is_none())
            .map(ErrorCode::as_str)
            .collect();
        assert_eq!(
            gateway_only,
            [
                "unknown_region",
                "unrecognized_qr",
                "unauthenticated",
                "forbidden",
                "payload_too_large",
                "rate_limited",
                "federation_loop",
                "audit_unavailable",
            ]
        );
        assert!(ErrorCode::FederationLoop.is_upstream_fault());
        assert!(!ErrorCode::AuditUnavailable.is_upstream_fault());
        assert!(!ErrorCode::RateLimited.is_upstream_fault());
    }
}
