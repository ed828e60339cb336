//! What the API hands to the audit trail for each lookup, batch item and verify: who
//! asked (caller, acting role and jurisdiction, on whose behalf), what (region, keyed hash
//! of the subject, purpose, checkpoint) and the result (colour, decision or error code,
//! cache hit, upstream latency). Never a raw identity number, name or QR token.

use hcgw_adapters::{Color, ErrorCode, RegionId};

use crate::api::ApiError;
use crate::api::acting::Acting;
use crate::lookup::Fetched;
use crate::recognition::Recognition;

/// One audited operation, before it becomes an audit record.
#[derive(Clone, Debug)]
pub struct Audited {
    /// `lookup`, `batch` or `verify`.
    pub endpoint: &'static str,
    /// The acting identity.
    pub acting: Acting,
    /// The region.
    pub region: RegionId,
    /// The keyed hash of the subject.
    pub subject_hash: String,
    /// The caller's purpose.
    pub purpose: Option<String>,
    /// The checkpoint id (verify).
    pub checkpoint: Option<String>,
    /// The colour served.
    pub color: Option<Color>,
    /// The decision served.
    pub decision: Option<String>,
    /// The error code served or that caused a manual check.
    pub error: Option<ErrorCode>,
    /// Served from the cache.
    pub cache_hit: bool,
    /// Upstream latency (ms).
    pub upstream_latency_ms: Option<u64>,
    /// The peer gateway that answered for the region.
    pub via_peer: Option<String>,
}

impl Audited {
    /// A record of a lookup-like operation, before its outcome.
    pub fn lookup(
        endpoint: &'static str,
        acting: &Acting,
        region: RegionId,
        subject_hash: String,
        purpose: Option<String>,
        checkpoint: Option<String>,
    ) -> Self {
        Audited {
            endpoint,
            acting: acting.clone(),
            region,
            subject_hash,
            purpose,
            checkpoint,
            color: None,
            decision: None,
            error: None,
            cache_hit: false,
            upstream_latency_ms: None,
            via_peer: None,
        }
    }

    /// Adds the outcome.
    pub fn outcome(
        mut self,
        result: &Result<Fetched, ApiError>,
        recognition: Option<&Recognition>,
    ) -> Self {
        match result {
            Ok(f) => {
                self.color = Some(f.status.color);
                self.cache_hit = f.cache_hit;
                self.upstream_latency_ms = f.upstream_latency.map(|d| d.as_millis() as u64);
                self.via_peer = f.via_peer.clone();
            }
            Err(e) => {
                self.error = Some(e.code);
                self.via_peer = e.via_peer.clone();
                if recognition.is_some() {
                    self.color = Some(Color::Unknown);
                }
            }
        }
        if let Some(r) = recognition {
            self.decision = Some(r.decision.as_str().to_owned());
        }
        self
    }
}
