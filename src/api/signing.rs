//! Signed answers (issue 15, docs/proofs.md): every answer of `/v1/lookup`,
//! `/v1/lookup/batch` and `/v1/verify` — errors included — leaves with `Content-Digest`,
//! `Signature-Input` and `Signature` (RFC 9421 / RFC 9530, built by
//! [`hcgw_core::signing::message`]); `GET /v1/signing-keys` publishes the certificates that
//! verify them, the current key's and the retired ones'.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use hcgw_core::signing::{AnswerKeys, Signer, sign_answer};
use serde::Serialize;

use super::KnownCaller;
use crate::state::AppState;

/// Whether answers of this route are signed.
pub fn is_signed_route(path: &str) -> bool {
    matches!(path, super::LOOKUP | super::BATCH | super::VERIFY)
}

/// Signs `resp` with the current key. The body is buffered (answers are small JSON). An
/// answer that cannot be signed leaves unsigned — a verifier refuses it — and is counted
/// in `hcgw_answer_signing_failures_total`.
pub async fn sign(keys: &AnswerKeys, resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "answer body could not be read for signing");
            metrics::counter!("hcgw_answer_signing_failures_total").increment(1);
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    // The request id is echoed by the front door after this runs; the signature covers it.
    if !parts.headers.contains_key(super::request_id::HEADER)
        && let Some(id) = super::request_id::current()
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        parts.headers.insert(super::request_id::HEADER, v);
    }
    let created = chrono::Utc::now().timestamp();
    let key: &dyn Signer = keys.current().as_ref();
    if let Err(e) = sign_answer(
        key,
        parts.status.as_u16(),
        &mut parts.headers,
        &bytes,
        created,
    ) {
        tracing::error!(error = %e, "answer left unsigned");
        metrics::counter!("hcgw_answer_signing_failures_total").increment(1);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// One published signing key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublishedKey {
    /// The RFC 7638 thumbprint: the `keyid` of the signatures it verifies.
    pub key_id: String,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: &'static str,
    /// `current` (signs now) or `previous` (retired; still verifies what it signed).
    pub status: &'static str,
    /// The certificate, PEM.
    pub certificate: String,
}

/// `GET /v1/signing-keys`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SigningKeys {
    /// The current key first.
    pub keys: Vec<PublishedKey>,
}

/// `GET /v1/signing-keys` (all roles): the certificates of the keys that sign this
/// gateway's answers and audit checkpoints; empty when signing is not configured.
#[utoipa::path(get, path = "/v1/signing-keys", tag = "regions",
    responses((status = 200, description = "The answer-signing keys", body = SigningKeys)))]
pub async fn signing_keys(
    State(state): State<Arc<AppState>>,
    KnownCaller(_): KnownCaller,
) -> Json<SigningKeys> {
    let keys = state
        .signing
        .iter()
        .flat_map(|k| k.published())
        .map(|(k, current)| PublishedKey {
            key_id: k.key_id().to_owned(),
            algorithm: k.algorithm().as_str(),
            status: if current { "current" } else { "previous" },
            certificate: k.certificate_pem(),
        })
        .collect();
    Json(SigningKeys { keys })
}
