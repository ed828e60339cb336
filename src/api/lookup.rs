//! `POST /v1/lookup`, `POST /v1/lookup/batch`, `POST /v1/verify`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use futures_util::StreamExt;
use hcgw_adapters::{Color, ErrorCode, HealthStatus, Level, RegionId, Subject};

use super::problem::Problem;
use serde::{Deserialize, Serialize};

use super::acting::Acting;
use super::json::ApiJson;
use super::{ApiError, request_id};
use crate::app::AppState;
use crate::audit_hook::Audited;
use crate::config::Role;
use crate::lookup::Fetched;
use crate::protect::quota::BatchPacing;
use crate::recognition::Recognition;
use crate::subject::SubjectIn;

/// Most items in one batch.
pub const MAX_BATCH: usize = 1000;
/// How long one batch item may wait for its region's rate limit.
pub const BATCH_PATIENCE: Duration = Duration::from_secs(60);
/// Distinct upstream lookups of one batch in flight at once.
pub const BATCH_CONCURRENCY: usize = 32;

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

fn parse_region(text: &str) -> Result<RegionId, ApiError> {
    text.parse::<RegionId>().map_err(|_| {
        ApiError::new(
            ErrorCode::UnknownRegion,
            "region: not a region id known to the federation",
        )
    })
}

fn check_short_text(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > 64 || v.chars().any(char::is_control) => {
            Err(ApiError::invalid(format!(
                "{field}: at most 64 characters, no control characters"
            )))
        }
        _ => Ok(()),
    }
}

/// A validated lookup: region, adapter subject and the request's purpose.
struct Validated {
    region: RegionId,
    subject: Subject,
    purpose: Option<String>,
}

fn validate(state: &AppState, req: &LookupRequest) -> Result<Validated, ApiError> {
    let region = parse_region(&req.region)?;
    if !state.lookups.knows(region) {
        return Err(ApiError::new(
            ErrorCode::UnknownRegion,
            format!("{region} is not served by this gateway nor by its peers"),
        ));
    }
    check_short_text("purpose", &req.purpose)?;
    let subject = req.subject.validate(region)?;
    Ok(Validated {
        region,
        subject,
        purpose: req.purpose.clone(),
    })
}

fn respond(state: &AppState, acting: &Acting, fetched: &Fetched) -> LookupResponse {
    // A peer that showed only the checkpoint view is not second-guessed: nothing it
    // withheld is made up here.
    let view = match fetched.peer_view {
        Some(Role::Checkpoint) => Role::Checkpoint,
        _ => acting.role,
    };
    let max_age = state.lookups.max_status_age(fetched.status.region);
    let recognition = state.policy.decide(
        &acting.jurisdiction,
        &fetched.status,
        chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::hours(24)),
        chrono::Utc::now(),
    );
    LookupResponse {
        request_id: request_id::current().unwrap_or_default(),
        status: status_view(&fetched.status, view),
        recognition,
        cache: CacheInfo {
            hit: fetched.cache_hit,
            age_ms: fetched.age.as_millis() as u64,
        },
        served_by: state.config.gateway.name.clone(),
        federation: (acting.caller.role == Role::Peer)
            .then(|| crate::federation::PeerHints::of(&fetched.status)),
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
    acting: Acting,
    ApiJson(req): ApiJson<LookupRequest>,
) -> Result<Response, ApiError> {
    acting.require(&[Role::Platform, Role::Peer])?;
    let v = validate(&state, &req)?;
    // Strict audit: refused before any region or peer is asked when the trail is failing.
    state.audit_ready()?;
    let mut ctx = acting.forward_context();
    ctx.purpose = v.purpose.clone();
    let result = state.lookups.fetch(v.region, &v.subject, &ctx).await;
    let response = result
        .as_ref()
        .map(|f| respond(&state, &acting, f))
        .map_err(Clone::clone);
    let audited = Audited::lookup(
        "lookup",
        &acting,
        v.region,
        state.hasher.audit_hash(&v.subject),
        v.purpose,
        None,
    )
    .outcome(&result, response.as_ref().ok().map(|r| &r.recognition));
    state.audit(vec![audited]).await?;
    let note = crate::access_log::LookupNote {
        region: Some(v.region),
        cache_hit: result.as_ref().ok().map(|f| f.cache_hit),
    };
    Ok(crate::access_log::noted(response.map(Json), note))
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
    acting: Acting,
    pacing: Option<Extension<BatchPacing>>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    acting.require(&[Role::Platform, Role::Peer])?;
    if req.items.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "items: at most {MAX_BATCH} lookups per batch"
        )));
    }
    // Strict audit: refused before any region or peer is asked when the trail is failing.
    state.audit_ready()?;
    // Validate every item; collect the distinct questions to ask.
    let validated: Vec<Result<Validated, ApiError>> = req
        .items
        .iter()
        .map(|item| {
            // The envelope was parsed strictly (no duplicate key left anywhere); each item
            // is read with the same rules as a single lookup body.
            let parsed: LookupRequest = hcgw_adapters::strict_json::from_value(item.clone())
                .map_err(|e| {
                    ApiError::invalid(format!(
                        "item: {}",
                        crate::redact::quoted_values(&e.to_string())
                    ))
                })?;
            validate(&state, &parsed)
        })
        .collect();
    // The items in chunks: the first `prepaid` are paid for; each later chunk takes its
    // quota (one burst's worth at most) before any of its questions is asked.
    let (prepaid, chunk) = match &pacing {
        Some(Extension(p)) => (p.prepaid, p.chunk.max(1)),
        None => (validated.len(), 1),
    };
    let chunk_of = |i: usize| {
        if i < prepaid {
            0
        } else {
            1 + (i - prepaid) / chunk
        }
    };
    let chunks = validated
        .len()
        .checked_sub(1)
        .map_or(0, |last| chunk_of(last) + 1);
    // Each distinct question once, with the purpose of its first item (forwarded to a peer),
    // in the chunk of that item.
    let mut seen: HashSet<String> = HashSet::new();
    let mut questions: Vec<Vec<Question>> = vec![Vec::new(); chunks];
    let keys: Vec<Option<String>> = validated
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_ref().ok().map(|v| {
                let key = state.hasher.cache_key(v.region, &v.subject);
                if seen.insert(key.clone()) {
                    questions[chunk_of(i)].push((
                        key.clone(),
                        v.region,
                        v.subject.clone(),
                        v.purpose.clone(),
                    ));
                }
                key
            })
        })
        .collect();
    let chunk_cost = |c: usize| {
        let (from, to) = if c == 0 {
            (0, prepaid)
        } else {
            (prepaid + (c - 1) * chunk, prepaid + c * chunk)
        };
        to.min(validated.len()).saturating_sub(from) as u32
    };
    let costs: Vec<u32> = (0..chunks).map(chunk_cost).collect();
    // Where the batch stopped (quota not refilled in time, or the audit trail failing):
    // the first chunk not asked, and the error its items and all later ones get.
    let stopped: Arc<Mutex<Option<(usize, ApiError)>>> = Arc::new(Mutex::new(None));
    // Duplicates cost one upstream call; distinct ones run with bounded concurrency.
    // Batch items wait for the region's rate limit instead of being refused: a manifest is
    // paced at the rate the region publishes (BATCH_PATIENCE at most).
    let mut ctx = acting.forward_context();
    ctx.patience = Some(BATCH_PATIENCE);
    let pacing = pacing.map(|Extension(p)| p);
    let gated = futures_util::stream::iter(questions.into_iter().zip(costs).enumerate()).then(
        |(c, (qs, cost))| {
            let (state, pacing, stopped) = (state.clone(), pacing.clone(), stopped.clone());
            async move {
                if c > 0 && lock(&stopped).is_none() {
                    let refusal = match &pacing {
                        Some(p) => state
                            .quotas
                            .take_by(&p.client, cost, p.deadline)
                            .await
                            .err()
                            .map(|wait| crate::protect::quota::Refusal::Spent(wait).into_error()),
                        None => None,
                    };
                    let refusal = refusal.or_else(|| state.audit_ready().err());
                    if let Some(e) = refusal {
                        *lock(&stopped) = Some((c, e));
                    }
                }
                let go = lock(&stopped).is_none();
                futures_util::stream::iter(qs.into_iter().filter(move |_| go))
            }
        },
    );
    let state2 = state.clone();
    let answers: HashMap<String, Result<Fetched, ApiError>> = gated
        .flatten()
        .map(|(key, region, subject, purpose)| {
            let state = state2.clone();
            let mut ctx = ctx.clone();
            ctx.purpose = purpose;
            let id = request_id::current().unwrap_or_default();
            async move {
                let r = request_id_scope(id, async {
                    state.lookups.fetch(region, &subject, &ctx).await
                })
                .await;
                (key, r)
            }
        })
        .buffer_unordered(BATCH_CONCURRENCY)
        .collect()
        .await;
    let stopped = lock(&stopped).take();
    let mut results = Vec::with_capacity(validated.len());
    let mut audit = Vec::new();
    for (i, (v, key)) in validated.into_iter().zip(keys).enumerate() {
        let item: Result<LookupResponse, ApiError> = match (v, key) {
            (Err(e), _) => Err(e),
            (Ok(v), Some(key)) => {
                let result = match &stopped {
                    // Not paid for (or not auditable): not answered, even when an earlier
                    // item asked the same question.
                    Some((from, e)) if chunk_of(i) >= *from => Err(e.clone()),
                    _ => answers.get(&key).cloned().unwrap_or_else(|| {
                        Err(ApiError::new(ErrorCode::RegionUnavailable, "no answer"))
                    }),
                };
                let response = result
                    .as_ref()
                    .map(|f| respond(&state, &acting, f))
                    .map_err(Clone::clone);
                audit.push(
                    Audited::lookup(
                        "batch",
                        &acting,
                        v.region,
                        state.hasher.audit_hash(&v.subject),
                        v.purpose,
                        None,
                    )
                    .outcome(&result, response.as_ref().ok().map(|r| &r.recognition)),
                );
                response
            }
            (Ok(_), None) => Err(ApiError::new(ErrorCode::RegionUnavailable, "no answer")),
        };
        results.push(match item {
            Ok(r) => serde_json::to_value(r).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e.problem() }),
        });
    }
    state.audit(audit).await?;
    Ok(Json(BatchResponse {
        request_id: request_id::current().unwrap_or_default(),
        results,
    }))
}

/// One distinct question of a batch: its cache key, region, subject and the purpose of its
/// first item.
type Question = (String, RegionId, Subject, Option<String>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn request_id_scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    request_id::scope(id, f).await
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
    acting: Acting,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    acting.require(&[Role::Checkpoint, Role::Platform, Role::Peer])?;
    check_short_text("checkpoint", &req.checkpoint)?;
    let detected = hcgw_adapters::qr::detect(&req.qr)
        .map_err(|e| ApiError::new(ErrorCode::UnrecognizedQr, e.to_string()))?;
    let region = detected.region;
    if !state.lookups.knows(region) {
        return Err(ApiError::new(
            ErrorCode::UnknownRegion,
            format!("{region} is not served by this gateway nor by its peers"),
        )
        .with_region(region));
    }
    let subject = Subject::QrToken(detected.token);
    // Strict audit: refused before any region or peer is asked when the trail is failing.
    state.audit_ready()?;
    // Detected here, forwarded by region as a lookup: the decision stays with this gateway.
    let result = state
        .lookups
        .fetch(region, &subject, &acting.forward_context())
        .await;
    let response = match &result {
        Ok(f) => Ok(respond(&state, &acting, f)),
        Err(e) if e.code.is_upstream_fault() => Ok(LookupResponse {
            request_id: request_id::current().unwrap_or_default(),
            status: StatusView::Unknown(region),
            recognition: state
                .policy
                .unavailable(&acting.jurisdiction, region, e.code),
            cache: CacheInfo {
                hit: false,
                age_ms: 0,
            },
            served_by: state.config.gateway.name.clone(),
            federation: None,
        }),
        Err(e) => Err(e.clone()),
    };
    let audited = Audited::lookup(
        "verify",
        &acting,
        region,
        state.hasher.audit_hash(&subject),
        None,
        req.checkpoint.clone(),
    )
    .outcome(&result, response.as_ref().ok().map(|r| &r.recognition));
    state.audit(vec![audited]).await?;
    let note = crate::access_log::LookupNote {
        region: Some(region),
        cache_hit: result.as_ref().ok().map(|f| f.cache_hit),
    };
    Ok(crate::access_log::noted(response.map(Json), note))
}

/// A batch result's retry hint (for documentation).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

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
