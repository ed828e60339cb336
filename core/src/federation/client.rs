//! The HTTP call to one peer: the forwarded `POST /v1/lookup` with the federation headers,
//! a size-limited read of the answer, and its classification (a status, a definitive
//! problem, or a failure to fail over from; a fault of the peer or not).

use std::time::Duration;

use hcgw_adapters::{RegionId, Subject};

use super::answer::PeerProblem;
use super::protocol::{ForwardContext, HOPS, MAX_PEER_BODY, ON_BEHALF_OF, VIA};
use super::{Peer, Peers, parse_answer};
use crate::config::Role;
use crate::error_code::ErrorCode;
use crate::pipeline::{Fetched, LookupError};

/// A failed call to one peer: the error to report, and whether to try the next peer.
pub(super) struct Failure {
    pub(super) error: LookupError,
    pub(super) fail_over: bool,
    /// A fault of the peer itself (transport, timeout, an invalid answer): counts against
    /// its circuit. A proper problem answer does not.
    pub(super) peer_fault: bool,
}

impl Peers {
    pub(super) async fn call(
        &self,
        peer: &Peer,
        region: RegionId,
        subject: &Subject,
        ctx: &ForwardContext,
    ) -> Result<Fetched, Failure> {
        let subject_json = match subject {
            Subject::QrToken(t) => {
                serde_json::json!({ "qr": hcgw_adapters::qr::qr_text(region, t) })
            }
            Subject::Identity(i) => serde_json::json!({
                "id_type": i.id_type,
                "id_number": i.id_number,
                "name": i.name,
            }),
        };
        let mut body = serde_json::json!({ "region": region, "subject": subject_json });
        if let Some(purpose) = &ctx.purpose {
            body["purpose"] = serde_json::Value::from(purpose.as_str());
        }
        let mut via = ctx.via.clone();
        via.push(self.own_name.clone());
        let role = match ctx.role {
            Role::Platform => "platform",
            // Never widened: anything but a platform travels as a checkpoint.
            _ => "checkpoint",
        };
        let mut req = peer
            .client
            .post(&peer.lookup_url)
            .header(HOPS, (ctx.hops + 1).to_string())
            .header(ON_BEHALF_OF, format!("{role}:{}", ctx.jurisdiction))
            .header(VIA, via.join(","))
            .json(&body);
        if let Some(id) = crate::request_id::current() {
            req = req.header(crate::request_id::HEADER, id);
        }
        let transport = |detail: String| Failure {
            error: LookupError::new(ErrorCode::RegionUnavailable, detail)
                .with_region(region)
                .with_retry_after(Duration::from_secs(30)),
            fail_over: true,
            peer_fault: true,
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(Failure {
                    error: LookupError::new(
                        ErrorCode::RegionTimeout,
                        format!(
                            "{region}: peer {} did not answer within {:?}",
                            peer.name, peer.deadline
                        ),
                    )
                    .with_region(region),
                    fail_over: true,
                    peer_fault: true,
                });
            }
            Err(e) => {
                return Err(transport(format!(
                    "{region}: peer {} unreachable ({})",
                    peer.name,
                    transport_kind(&e)
                )));
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let headers = resp.headers().clone();
        let bytes = match read_limited(resp).await {
            Ok(b) => b,
            Err(e) => return Err(transport(format!("{region}: peer {}: {e}", peer.name))),
        };
        let invalid = |why: &str| Failure {
            error: LookupError::new(
                ErrorCode::UpstreamInvalidResponse,
                format!("{region}: peer {} answered {why}", peer.name),
            )
            .with_region(region),
            fail_over: true,
            peer_fault: true,
        };
        // Nothing of an answer is used before its signature holds (problem answers too).
        let proof = match peer
            .keys
            .check(&peer.client, status, &headers, &bytes)
            .await
        {
            Ok(p) => std::sync::Arc::new(p),
            Err(why) => return Err(invalid(&why)),
        };
        if status == 200 {
            if !content_type.starts_with("application/json") {
                return Err(invalid("a 200 that is not JSON"));
            }
            return match parse_answer(&bytes, region, &peer.name) {
                Ok(mut f) => {
                    f.peer_proof = Some(proof);
                    Ok(f)
                }
                Err(why) => Err(invalid(&why)),
            };
        }
        if !content_type.starts_with("application/problem+json") {
            return Err(invalid(&format!("HTTP {status} without a problem body")));
        }
        let Ok(problem) = serde_json::from_slice::<PeerProblem>(&bytes) else {
            return Err(invalid(&format!(
                "HTTP {status} with an unreadable problem"
            )));
        };
        if problem.code.http_status() != status {
            return Err(invalid(&format!(
                "HTTP {status} with a problem of another status"
            )));
        }
        // The peer itself answered properly: not a fault of the peer (its circuit stays
        // closed).
        let (code, fail_over) = match problem.code {
            // Definitive answers about the subject or the request.
            c @ (ErrorCode::SubjectNotFound
            | ErrorCode::TokenExpired
            | ErrorCode::UnsupportedIdType
            | ErrorCode::UnrecognizedQr
            | ErrorCode::InvalidRequest) => (c, false),
            // The peer refuses *us* (identity, quota, audit, configuration): its regions
            // are unavailable from here; another peer may do.
            ErrorCode::RateLimited => (ErrorCode::UpstreamRateLimited, true),
            ErrorCode::Forbidden
            | ErrorCode::Unauthenticated
            | ErrorCode::UnknownRegion
            | ErrorCode::PayloadTooLarge
            | ErrorCode::AuditUnavailable => (ErrorCode::RegionUnavailable, true),
            c @ (ErrorCode::UpstreamRateLimited
            | ErrorCode::RegionUnavailable
            | ErrorCode::RegionTimeout
            | ErrorCode::UpstreamInvalidResponse
            | ErrorCode::FederationLoop) => (c, true),
        };
        let mut error = LookupError::new(
            code,
            format!("{region}: peer {} answered {}", peer.name, problem.code),
        )
        .with_region(region);
        error.peer_proof = Some(proof);
        error.retry_after = problem
            .retry_after_s
            .or(retry_after)
            .map(|s| Duration::from_secs(s.clamp(1, 3600)))
            .or_else(|| (code.http_status() == 503).then(|| Duration::from_secs(30)));
        Err(Failure {
            error,
            fail_over,
            peer_fault: false,
        })
    }
}

/// A transport error's kind, without URLs or bodies.
fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connection or TLS handshake failed"
    } else if e.is_request() {
        "request failed"
    } else if e.is_body() || e.is_decode() {
        "broken answer"
    } else {
        "transport error"
    }
}

pub(super) async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_PEER_BODY as u64)
    {
        return Err("answer over the size limit".into());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_kind(&e).to_owned())?
    {
        if out.len() + chunk.len() > MAX_PEER_BODY {
            return Err("answer over the size limit".into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
