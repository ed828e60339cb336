//! The lookup endpoints: `POST /v1/lookup`, `POST /v1/lookup/batch`, `POST /v1/verify` — each
//! parses its body, calls the core's [`hcgw_core::lookup::LookupService`] and renders the answer.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use hcgw_adapters::{Color, HealthStatus, Level, RegionId};

use super::problem::Problem;
use serde::{Deserialize, Serialize};

use super::acting::{Acting, ActingOf};
use super::json::ApiJson;
use super::{ApiError, request_id};
use crate::config::Role;
use crate::lookup::{Decided, LookupError, Query, Validated};
use crate::protect::quota::BatchPacing;
use crate::recognition::Recognition;
use crate::state::AppState;
use crate::subject::SubjectIn;

/// Most items in one batch.
pub const MAX_BATCH: usize = 1000;

/// `POST /v1/lookup` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// Region id (`suzhou`, `suishen`, …).
    pub region: String,
    /// The subject: a QR text or an identity.
    pub subject: SubjectIn,
    /// Free text up to 64 characters, recorded in the audit trail.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// `POST /v1/verify` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The raw scanned QR text.
    pub qr: String,
    /// The checkpoint's own id (e.g. `SH-HONGQIAO-RAIL-G12`), up to 64 characters.
    #[serde(default)]
    pub checkpoint: Option<String>,
}

/// `POST /v1/lookup/batch` body: up to 1,000 lookup bodies.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The lookups, answered in the same order.
    #[schema(value_type = Vec<LookupRequest>)]
    pub items: Vec<serde_json::Value>,
}

/// Whether the answer came from the cache.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CacheInfo {
    /// Served from the cache.
    pub hit: bool,
    /// Age of the cached answer (ms).
    pub age_ms: u64,
}

/// The answer of lookup and verify.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LookupResponse {
    /// The request id.
    pub request_id: String,
    /// The normalised status, fields filtered by the caller's role (a checkpoint sees
    /// only `region`, `color`, `level`, `as_of` and `holder`).
    #[schema(value_type = HealthStatus)]
    pub status: StatusView,
    /// The recognition decision for the caller's jurisdiction.
    pub recognition: Recognition,
    /// Cache information.
    pub cache: CacheInfo,
    /// The gateway instance that answered.
    pub served_by: String,
    /// Only for peer callers: what the forwarding gateway needs to decide from a view that
    /// omits fields (docs/federation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<crate::federation::PeerHints>,
    /// The receipt of the answer's audit record: ask `GET /v1/audit/proof/{seq}` for its
    /// inclusion proof (docs/proofs.md). Absent in non-strict audit mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<hcgw_core::receipt::Receipt>,
}

/// The answer of a batch: one result per item, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// The request id.
    pub request_id: String,
    /// Each item's lookup response or `{ "error": problem }`.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<serde_json::Value>,
}

/// A status as the acting role may see it (security.md), serialised straight from the
/// status: every field for a platform; for a checkpoint only `region`, `color`, `level`,
/// `as_of` and `holder` — an allow-list, so a field added to [`HealthStatus`] later stays
/// hidden from checkpoints.
#[derive(Debug)]
pub enum StatusView {
    /// What a platform sees.
    Full(Arc<HealthStatus>),
    /// What a checkpoint sees.
    Checkpoint(Arc<HealthStatus>),
    /// A region that could not answer (verify's manual check): unknown colour and level.
    Unknown(RegionId),
}

/// The fields of a status a checkpoint may see, in [`HealthStatus`]'s order and with its
/// rules for leaving fields out.
#[derive(Serialize)]
struct CheckpointFields<'a> {
    region: RegionId,
    color: Color,
    level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: &'a Option<chrono::DateTime<chrono::FixedOffset>>,
    #[serde(skip_serializing_if = "hcgw_adapters::Holder::is_empty")]
    holder: &'a hcgw_adapters::Holder,
}

impl Serialize for StatusView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusView::Full(status) => HealthStatus::serialize(status, serializer),
            StatusView::Checkpoint(status) => CheckpointFields {
                region: status.region,
                color: status.color,
                level: status.level,
                as_of: &status.as_of,
                holder: &status.holder,
            }
            .serialize(serializer),
            StatusView::Unknown(region) => CheckpointFields {
                region: *region,
                color: Color::Unknown,
                level: Level::Unknown,
                as_of: &None,
                holder: &hcgw_adapters::Holder::default(),
            }
            .serialize(serializer),
        }
    }
}

/// The status as the acting role may see it.
pub fn status_view(status: &Arc<HealthStatus>, role: Role) -> StatusView {
    match role {
        Role::Platform => StatusView::Full(status.clone()),
        Role::Checkpoint | Role::Peer | Role::Ops => StatusView::Checkpoint(status.clone()),
    }
}

/// Renders a decided answer for `acting`.
fn respond(state: &AppState, acting: &Acting, decided: Decided) -> LookupResponse {
    let (status, cache) = match &decided.fetched {
        Some(f) => (
            status_view(&f.status, decided.view),
            CacheInfo {
                hit: f.cache_hit,
                age_ms: f.age.as_millis() as u64,
            },
        ),
        None => (
            StatusView::Unknown(decided.region),
            CacheInfo {
                hit: false,
                age_ms: 0,
            },
        ),
    };
    LookupResponse {
        request_id: request_id::current().unwrap_or_default(),
        status,
        recognition: decided.recognition,
        cache,
        served_by: state.config.gateway.name.clone(),
        federation: match &decided.fetched {
            Some(f) if acting.caller.role == Role::Peer => {
                Some(crate::federation::PeerHints::of(&f.status))
            }
            _ => None,
        },
        audit: decided.receipt,
    }
}

fn lookup_query(req: &LookupRequest) -> Query<'_> {
    Query::Lookup {
        region: &req.region,
        subject: &req.subject,
        purpose: req.purpose.as_deref(),
    }
}

/// `POST /v1/lookup` (platform, peer).
#[utoipa::path(post, path = "/v1/lookup", tag = "lookup",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The status and the recognition decision", body = LookupResponse),
        (status = "4XX", description = "invalid_request, unknown_region, forbidden, subject_not_found, token_expired, unsupported_id_type, rate_limited…", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", description = "region_unavailable, region_timeout, upstream_invalid_response, upstream_rate_limited, federation_loop", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn lookup(
    State(state): State<Arc<AppState>>,
    ActingOf(acting): ActingOf,
    ApiJson(req): ApiJson<LookupRequest>,
) -> Result<Response, ApiError> {
    acting.require(&[Role::Platform, Role::Peer])?;
    let q = state.lookups.validate(lookup_query(&req), false)?;
    Ok(answered(&state, &acting, q).await)
}

/// Answers a validated question and renders it, noting region and cache hit for the
/// access log (on errors too).
async fn answered(state: &AppState, acting: &Acting, q: Validated) -> Response {
    let region = q.region;
    let decided = state.lookups.answer(acting, q).await;
    let note = crate::api::access_log::LookupNote {
        region: Some(region),
        cache_hit: decided
            .as_ref()
            .ok()
            .and_then(|d| d.fetched.as_ref().map(|f| f.cache_hit)),
    };
    let response = decided
        .map(|d| Json(respond(state, acting, d)))
        .map_err(ApiError::from);
    crate::api::access_log::noted(response, note)
}

/// `POST /v1/lookup/batch` (platform, peer).
#[utoipa::path(post, path = "/v1/lookup/batch", tag = "lookup",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per item, in order: a lookup response or `{ \"error\": problem }`", body = BatchResponse),
        (status = "4XX", description = "malformed envelope, more than 1,000 items, forbidden, rate_limited", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn batch(
    State(state): State<Arc<AppState>>,
    ActingOf(acting): ActingOf,
    pacing: Option<Extension<BatchPacing>>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    acting.require(&[Role::Platform, Role::Peer])?;
    if req.items.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "items: at most {MAX_BATCH} lookups per batch"
        )));
    }
    let items = req
        .items
        .iter()
        .map(|item| {
            // The envelope was parsed strictly (no duplicate key left anywhere); each item
            // is read with the same rules as a single lookup body.
            let parsed: LookupRequest = hcgw_adapters::strict_json::from_value(item.clone())
                .map_err(|e| {
                    LookupError::invalid(format!(
                        "item: {}",
                        crate::redact::quoted_values(&e.to_string())
                    ))
                })?;
            state.lookups.validate(lookup_query(&parsed), true)
        })
        .collect();
    let pacing = pacing.map(|Extension(p)| (p, state.quotas.clone()));
    let answers = state.lookups.answer_batch(&acting, items, pacing).await?;
    let results = answers
        .into_iter()
        .map(|item| match item {
            Ok(d) => serde_json::to_value(respond(&state, &acting, d)).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": ApiError::from(e).problem() }),
        })
        .collect();
    Ok(Json(BatchResponse {
        request_id: request_id::current().unwrap_or_default(),
        results,
    }))
}

/// `POST /v1/verify` (checkpoint, platform, peer): detect, look up, decide. Upstream faults
/// become `200 manual_check` with the cause: a gate needs an answer.
#[utoipa::path(post, path = "/v1/verify", tag = "lookup",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The decision (manual_check with `recognition.cause` when the region could not answer)", body = LookupResponse),
        (status = "4XX", description = "unrecognized_qr, subject_not_found, token_expired, forbidden, rate_limited", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    ActingOf(acting): ActingOf,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    acting.require(&[Role::Checkpoint, Role::Platform, Role::Peer])?;
    let q = state.lookups.validate(
        Query::Verify {
            qr: &req.qr,
            checkpoint: req.checkpoint.as_deref(),
        },
        false,
    )?;
    Ok(answered(&state, &acting, q).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcgw_adapters::{Holder, IdType, Source};

    /// Fields of `status` a checkpoint may see (security.md).
    const CHECKPOINT_FIELDS: [&str; 5] = ["region", "color", "level", "as_of", "holder"];

    fn status(as_of: bool, holder: bool) -> HealthStatus {
        let mut s = HealthStatus::new(
            RegionId::Xuzhou,
            Level::Monitoring,
            Source {
                code: "YELLOW".into(),
                label: Some("黄码".into()),
            },
        );
        s.proxy_applied = Some(false);
        s.quarantine_until = chrono::NaiveDate::from_ymd_opt(2026, 12, 1);
        if as_of {
            s.as_of = chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").ok();
        }
        if holder {
            s.holder = Holder {
                name_masked: Some("张*".into()),
                id_type: Some(IdType::ResidentId),
                id_masked: Some("3203**********5510".into()),
            };
        }
        s
    }

    #[test]
    fn a_platform_sees_every_field_of_the_status() {
        let s = status(true, true);
        assert_eq!(
            serde_json::to_value(status_view(&Arc::new(s.clone()), Role::Platform)).unwrap(),
            serde_json::to_value(&s).unwrap()
        );
    }

    #[test]
    fn a_checkpoint_sees_only_its_five_fields_with_the_same_values() {
        for (as_of, holder) in [(true, true), (false, false), (true, false)] {
            let s = status(as_of, holder);
            let full = serde_json::to_value(&s).unwrap();
            for role in [Role::Checkpoint, Role::Peer, Role::Ops] {
                let view = serde_json::to_value(status_view(&Arc::new(s.clone()), role)).unwrap();
                let view = view.as_object().unwrap();
                let expected: serde_json::Map<_, _> = full
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| CHECKPOINT_FIELDS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(view, &expected, "{role:?}");
                assert!(!view.contains_key("reasons") && !view.contains_key("source"));
            }
        }
    }

    #[test]
    fn an_unanswered_region_is_shown_unknown() {
        assert_eq!(
            serde_json::to_value(StatusView::Unknown(RegionId::Suishen)).unwrap(),
            serde_json::json!({ "region": "suishen", "color": "unknown", "level": "unknown" })
        );
    }
}
