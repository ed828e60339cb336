//! [`LookupError`]: the one error of the core — a lookup, batch item or verify that cannot
//! be answered — carrying its code (which decides the HTTP status the API maps it to and
//! whether it is retryable), the region, how long to wait, the peer it came through, and the
//! error that caused it.

use std::sync::Arc;
use std::time::Duration;

use hcgw_adapters::{AdapterError, RegionId};

use crate::error_code::ErrorCode;

/// The `Retry-After` announced for a 503 whose cause gave none.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why a lookup could not be answered. `detail` is free of personal data and shown to the
/// caller; `cause` is for logs and is never shown.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct LookupError {
    /// The error code (decides the HTTP status, and whether a retry may help).
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
    /// A peer's verified signature and receipt, when the error is a peer's signed answer.
    pub peer_proof: Option<Arc<super::PeerProof>>,
    /// The receipt of the audit record of this error, when it was audited (strict mode).
    pub receipt: Option<Box<crate::receipt::Receipt>>,
    /// The underlying error (a region adapter's, a peer call's), when there is one.
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for LookupError {
    /// Equal when everything the caller and the audit trail see is equal (the cause is
    /// not compared).
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.detail == other.detail
            && self.region == other.region
            && self.retry_after == other.retry_after
            && self.via_peer == other.via_peer
            && self.receipt == other.receipt
    }
}

impl Eq for LookupError {}

impl LookupError {
    /// An error with a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        LookupError {
            code,
            detail: detail.into(),
            region: None,
            retry_after: None,
            via_peer: None,
            peer_proof: None,
            receipt: None,
            cause: None,
        }
    }

    /// Attaches the receipt of the error's audit record.
    pub fn with_receipt(mut self, receipt: Option<crate::receipt::Receipt>) -> Self {
        self.receipt = receipt.map(Box::new);
        self
    }

    /// `invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        LookupError::new(ErrorCode::InvalidRequest, detail)
    }

    /// `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        LookupError::new(ErrorCode::Forbidden, detail)
    }

    /// Attaches the region.
    pub fn with_region(mut self, region: RegionId) -> Self {
        self.region = Some(region);
        self
    }

    /// Attaches the peer the lookup went, or was to go, through.
    pub fn via(mut self, peer: &str) -> Self {
        self.via_peer = Some(peer.to_owned());
        self
    }

    /// Attaches a retry delay.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Attaches the underlying error.
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// The error of a failed region call: the adapter's code and message, its Retry-After
    /// (or [`DEFAULT_RETRY_AFTER`] for a 503), and the adapter's error as the cause.
    pub fn from_adapter(region: RegionId, e: &AdapterError) -> Self {
        let code = ErrorCode::from(e.code());
        let mut err = LookupError::new(code, e.to_string()).with_region(region);
        err.retry_after = e
            .retry_after()
            .or_else(|| (code.http_status() == 503).then_some(DEFAULT_RETRY_AFTER));
        err.cause = Some(Arc::new(e.clone()));
        err
    }

    /// Whether asking again later may succeed (the code's HTTP status is 429, 503 or 504).
    pub fn is_retryable(&self) -> bool {
        matches!(self.code.http_status(), 429 | 503 | 504)
    }

    /// The Retry-After to announce: the error's own, or [`DEFAULT_RETRY_AFTER`] for a 429
    /// or 503 without one.
    pub fn announced_retry_after(&self) -> Option<Duration> {
        self.retry_after
            .or_else(|| matches!(self.code.http_status(), 429 | 503).then_some(DEFAULT_RETRY_AFTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_error_keeps_its_cause_code_and_retry_after() {
        let e = LookupError::from_adapter(
            RegionId::Suzhou,
            &AdapterError::Timeout(Duration::from_millis(800)),
        );
        assert_eq!(e.region, Some(RegionId::Suzhou));
        assert_eq!(e.code, ErrorCode::RegionTimeout);
        let cause = std::error::Error::source(&e).expect("the adapter error is the source");
        assert_eq!(cause.to_string(), e.detail);
    }

    #[test]
    fn a_503_without_retry_after_announces_the_default() {
        let e = LookupError::new(ErrorCode::RegionUnavailable, "down");
        assert_eq!(e.announced_retry_after(), Some(DEFAULT_RETRY_AFTER));
        assert!(e.is_retryable());
        let e = LookupError::invalid("bad");
        assert_eq!(e.announced_retry_after(), None);
        assert!(!e.is_retryable());
    }
}
