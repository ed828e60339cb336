//! The audit proof endpoints (issue 15; docs/proofs.md): the latest signed tree head, the
//! inclusion proof of one record against it, and the consistency proof between two heads.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hcgw_core::audit::{Consistency, Inclusion, ProofRefusal, TreeHead};
use serde::Serialize;

use super::{ApiError, KnownCaller, request_id};
use crate::config::Role;
use crate::state::AppState;

/// A problem of the proof endpoints that none of the lookup error codes names:
/// `proof_not_found` (404) and `proof_not_yet_signed` (409).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProofProblem {
    /// `https://hcgw.dev/problems/<code>`.
    pub r#type: String,
    /// Short title.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// `proof_not_found` or `proof_not_yet_signed`.
    pub code: &'static str,
    /// Explanation.
    pub detail: String,
    /// The request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds to wait before asking again (`proof_not_yet_signed`, `proof_unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

fn problem(status: StatusCode, detail: String, retry_after_s: Option<u64>) -> Response {
    let (code, title) = match status {
        StatusCode::CONFLICT => (
            "proof_not_yet_signed",
            "Not yet covered by a signed tree head",
        ),
        StatusCode::SERVICE_UNAVAILABLE => {
            ("proof_unavailable", "The proof cannot be computed now")
        }
        _ => ("proof_not_found", "No such record or tree head"),
    };
    let body = ProofProblem {
        r#type: format!("https://hcgw.dev/problems/{code}"),
        title,
        status: status.as_u16(),
        code,
        detail,
        request_id: request_id::current(),
        retry_after_s,
    };
    let mut resp = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(s) = retry_after_s {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

fn refused(r: ProofRefusal) -> Response {
    match r {
        ProofRefusal::NotYetSigned { every_s, .. } => {
            problem(StatusCode::CONFLICT, r.to_string(), Some(every_s.max(1)))
        }
        ProofRefusal::Range(_) => ApiError::invalid(r.to_string()).into_response(),
        ProofRefusal::Unavailable(_) => {
            tracing::error!(error = %r, "an audit proof cannot be computed from the tree's leaf file");
            problem(StatusCode::SERVICE_UNAVAILABLE, r.to_string(), Some(60))
        }
        ProofRefusal::NoTree | ProofRefusal::UnknownSeq(_) | ProofRefusal::NoSuchHead(_) => {
            problem(StatusCode::NOT_FOUND, r.to_string(), None)
        }
    }
}

/// `GET /v1/audit/checkpoints/latest` (any known caller): the latest signed tree head.
#[utoipa::path(get, path = "/v1/audit/checkpoints/latest", tag = "audit",
    responses(
        (status = 200, description = "The latest signed tree head of the audit log", body = TreeHead),
        (status = 404, description = "proof_not_found: no tree head signed yet, or no [signing] key", body = ProofProblem, content_type = "application/problem+json"),
    ))]
pub async fn latest(State(state): State<Arc<AppState>>, _caller: KnownCaller) -> Response {
    match state.lookups.auditor().log().ledger().latest() {
        Some(head) => Json(head).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no signed tree head yet (none is written without a [signing] key)".into(),
            None,
        ),
    }
}

/// The body of `GET /v1/audit/proof/{seq}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProofBody {
    /// The inclusion proof.
    #[serde(flatten)]
    pub inclusion: Inclusion,
    /// The record's line as written (without its newline): its leaf hash is
    /// SHA-256(0x00 ‖ these bytes). It holds the keyed hash of the subject, never a raw
    /// identity number, name or QR token.
    pub record_line: String,
}

/// `GET /v1/audit/proof/{seq}` (the caller whose certificate made the record, or ops): the
/// inclusion proof of record `seq` against the latest signed tree head.
#[utoipa::path(get, path = "/v1/audit/proof/{seq}", tag = "audit",
    params(("seq" = u64, Path, description = "The record's seq (an answer's `audit.seq`)")),
    responses(
        (status = 200, description = "The inclusion proof, the signed tree head and the record", body = ProofBody),
        (status = 403, description = "forbidden: the record is another caller's (only ops may see every record)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "proof_not_found: no record has this seq, or no tree is kept", body = ProofProblem, content_type = "application/problem+json"),
        (status = 409, description = "proof_not_yet_signed: the record is newer than the latest signed tree head; retry after Retry-After seconds", body = ProofProblem, content_type = "application/problem+json"),
        (status = 503, description = "proof_unavailable: the tree's leaf hashes the proof needs cannot be read back, or do not match the tree", body = ProofProblem, content_type = "application/problem+json"),
    ))]
pub async fn proof(
    State(state): State<Arc<AppState>>,
    KnownCaller(caller): KnownCaller,
    Path(seq): Path<String>,
) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return ApiError::invalid("seq: not a record number").into_response();
    };
    let log = state.lookups.auditor().log();
    let Some(size) = log.ledger().tree_size() else {
        return refused(ProofRefusal::NoTree);
    };
    if seq == 0 || seq > size {
        return refused(ProofRefusal::UnknownSeq(seq));
    }
    let Some(dir) = log.dir().map(std::path::Path::to_path_buf) else {
        return refused(ProofRefusal::NoTree);
    };
    let line = tokio::task::spawn_blocking(move || hcgw_core::audit::read_record(&dir, seq))
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
    let Some(line) = line else {
        return refused(ProofRefusal::UnknownSeq(seq));
    };
    let owner = serde_json::from_slice::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v["caller"]["fingerprint"].as_str().map(str::to_owned));
    if caller.role != Role::Ops && owner.as_deref() != Some(caller.fingerprint.as_str()) {
        return ApiError::forbidden(
            "this audit record is another caller's: only the caller that received the answer, or ops, may ask for its proof",
        )
        .into_response();
    }
    match log.ledger().inclusion(seq) {
        Ok(inclusion) => Json(ProofBody {
            inclusion,
            record_line: String::from_utf8_lossy(&line).into_owned(),
        })
        .into_response(),
        Err(r) => refused(r),
    }
}

/// `GET /v1/audit/consistency?from=N&to=M` (any known caller): the consistency proof
/// between the signed tree heads of sizes `from` and `to`.
#[utoipa::path(get, path = "/v1/audit/consistency", tag = "audit",
    params(
        ("from" = u64, Query, description = "The older signed tree head's size"),
        ("to" = u64, Query, description = "The newer signed tree head's size"),
    ),
    responses(
        (status = 200, description = "The RFC 9162 consistency proof", body = Consistency),
        (status = 400, description = "invalid_request: from/to missing, not numbers, or from > to", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "proof_not_found: no signed tree head of that size", body = ProofProblem, content_type = "application/problem+json"),
        (status = 503, description = "proof_unavailable: the tree's leaf hashes the proof needs cannot be read back, or do not match the tree", body = ProofProblem, content_type = "application/problem+json"),
    ))]
pub async fn consistency(
    State(state): State<Arc<AppState>>,
    _caller: KnownCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let size = |name: &str| {
        q.get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid(format!("{name}: a tree size is required")))
    };
    let (from, to) = match (size("from"), size("to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    match state.lookups.auditor().log().ledger().consistency(from, to) {
        Ok(c) => Json(c).into_response(),
        Err(r) => refused(r),
    }
}
