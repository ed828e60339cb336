//! What the lookup pipeline hands to the audit trail for each lookup, batch item and verify: who
//! asked (caller, acting role and jurisdiction, on whose behalf), what (region, keyed hash
//! of the subject, purpose, checkpoint) and the result (colour, decision or error code,
//! cache hit, upstream latency). Never a raw identity number, name or QR token.

use hcgw_adapters::{Color, RegionId};

use super::{AuditCaller, AuditLog, AuditRecord, Receipt};
use crate::error_code::ErrorCode;
use crate::identity::acting::Acting;
use crate::pipeline::{Fetched, LookupError};
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
    /// The peer's verified signature and receipt, for an answer fresh from a peer.
    pub peer_proof: Option<std::sync::Arc<crate::pipeline::PeerProof>>,
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
            peer_proof: None,
        }
    }

    /// Adds the outcome.
    pub fn outcome(
        mut self,
        result: &Result<Fetched, LookupError>,
        recognition: Option<&Recognition>,
    ) -> Self {
        match result {
            Ok(f) => {
                self.color = Some(f.status.color);
                self.cache_hit = f.cache_hit;
                self.upstream_latency_ms = f.upstream_latency.map(|d| d.as_millis() as u64);
                self.via_peer = f.via_peer.clone();
                self.peer_proof = f.peer_proof.clone();
            }
            Err(e) => {
                self.error = Some(e.code);
                self.via_peer = e.via_peer.clone();
                self.peer_proof = e.peer_proof.clone();
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

impl Audited {
    /// The audit record of this operation, for the request `request_id`.
    pub fn into_record(self, request_id: String) -> AuditRecord {
        let mut r = AuditRecord::new(
            request_id,
            AuditCaller::from(&*self.acting.caller),
            self.endpoint,
        );
        r.on_behalf_of = self.acting.on_behalf_of;
        r.region = Some(self.region);
        r.subject_hash = Some(self.subject_hash);
        r.purpose = self.purpose;
        r.checkpoint = self.checkpoint;
        r.color = self.color;
        r.decision = self.decision;
        r.error = self.error;
        r.cache_hit = self.cache_hit;
        r.upstream_latency_ms = self.upstream_latency_ms;
        r.via_peer = self.via_peer;
        r.peer_answer = self.peer_proof;
        r
    }
}

/// The audit trail with its policy: in strict mode (`audit.strict`) no answer is served
/// without its record, and no region is asked when the trail cannot take records.
pub struct Auditor {
    log: AuditLog,
    strict: bool,
}

impl Auditor {
    /// The policy over `log`.
    pub fn new(log: AuditLog, strict: bool) -> Self {
        Auditor { log, strict }
    }

    /// The audit trail.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// In strict mode, whether the audit trail can take records now (its writer is healthy,
    /// not closed, its queue not full): checked before any region or peer is asked, so a
    /// lookup that could not be audited sends no personal data out and fills no cache. The
    /// write after the answer can still fail and refuse (see [`Auditor::record`]).
    pub fn ready(&self) -> Result<(), LookupError> {
        if !self.strict {
            return Ok(());
        }
        self.log.ready().map_err(|e| {
            tracing::error!(error = %e, "audit trail unavailable: refusing before asking any region");
            unavailable()
        })
    }

    /// Records audited operations of the current request; in strict mode an error means
    /// the answer must not be served (503 `audit_unavailable`). Returns each record's
    /// receipt, in order: `Some` in strict mode, `None` in non-strict mode (the record is
    /// only enqueued, its seq not known yet) or when it was lost.
    pub async fn record(&self, records: Vec<Audited>) -> Result<Vec<Option<Receipt>>, LookupError> {
        let n = records.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let request_id = crate::request_id::current().unwrap_or_default();
        let records = records
            .into_iter()
            .map(|a| a.into_record(request_id.clone()))
            .collect();
        match self.log.record_all(records).await {
            Ok(receipts) if receipts.len() == n => Ok(receipts.into_iter().map(Some).collect()),
            Ok(_) => Ok(vec![None; n]),
            Err(e) if self.strict && e.is_strict_refusal() => {
                tracing::error!(error = %e, "audit trail refused a record: answering 503 rather than serving unaudited");
                Err(unavailable())
            }
            Err(e) => {
                tracing::error!(error = %e, "audit record lost (non-strict mode)");
                Ok(vec![None; n])
            }
        }
    }
}

/// `503 audit_unavailable`.
fn unavailable() -> LookupError {
    LookupError::new(
        ErrorCode::AuditUnavailable,
        "the audit trail cannot record this lookup; try again",
    )
    .with_retry_after(std::time::Duration::from_secs(5))
}
