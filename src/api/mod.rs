//! The HTTP API served over mTLS (`gateway-api.md`).

pub mod access_log;
pub mod acting;
pub mod audit;
pub mod endpoints;
pub mod json;
pub mod openapi;
pub mod problem;
pub mod quota;
pub mod request_id;
pub mod signing;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hcgw_core::ErrorCode;
use serde::Serialize;

use crate::config::Role;
use crate::identity::{Caller, ConnIdentity};
use crate::metrics::RequestLabels;
use crate::server::ConnInfo;
use crate::state::AppState;
use axum::extract::MatchedPath;
pub use problem::ApiError;

/// `POST /v1/lookup`.
pub const LOOKUP: &str = "/v1/lookup";
/// `POST /v1/lookup/batch`.
pub const BATCH: &str = "/v1/lookup/batch";
/// `POST /v1/verify`.
pub const VERIFY: &str = "/v1/verify";
/// `GET /v1/whoami`.
pub const WHOAMI: &str = "/v1/whoami";
/// `GET /v1/regions`.
pub const REGIONS: &str = "/v1/regions";
/// `GET /v1/openapi.json`.
pub const OPENAPI: &str = "/v1/openapi.json";
/// `GET /metrics` (ops role).
pub const METRICS: &str = "/metrics";
/// `GET /v1/signing-keys`.
pub const SIGNING_KEYS: &str = "/v1/signing-keys";
/// `GET /v1/audit/checkpoints/latest`.
pub const AUDIT_LATEST: &str = "/v1/audit/checkpoints/latest";
/// `GET /v1/audit/proof/{seq}`.
pub const AUDIT_PROOF: &str = "/v1/audit/proof/{seq}";
/// `GET /v1/audit/consistency`.
pub const AUDIT_CONSISTENCY: &str = "/v1/audit/consistency";
/// Every route of the API (the values of the `endpoint` metric label).
pub const ROUTES: [&str; 11] = [
    LOOKUP,
    BATCH,
    VERIFY,
    WHOAMI,
    REGIONS,
    OPENAPI,
    METRICS,
    SIGNING_KEYS,
    AUDIT_LATEST,
    AUDIT_PROOF,
    AUDIT_CONSISTENCY,
];

/// The API router (all routes need a known client certificate).
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.listener.max_body_bytes;
    // Per-caller quotas on the lookup routes only (crate::protect::quota).
    let quota_limited = Router::new()
        .route(LOOKUP, post(endpoints::lookup))
        .route(BATCH, post(endpoints::batch))
        .route(VERIFY, post(endpoints::verify))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::api::quota::layer,
        ));
    Router::new()
        .route(WHOAMI, get(whoami))
        .route(REGIONS, get(regions))
        .merge(quota_limited)
        .route(OPENAPI, get(openapi::serve))
        .route(METRICS, get(metrics))
        .route(SIGNING_KEYS, get(signing::signing_keys))
        .route(AUDIT_LATEST, get(audit::latest))
        .route(AUDIT_PROOF, get(audit::proof))
        .route(AUDIT_CONSISTENCY, get(audit::consistency))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            FrontDoor {
                body_limit,
                signing: state.signing.clone(),
                access_log: access_log::AccessLog::new(&state.config.access_log),
            },
            front_door,
        ))
        .with_state(state)
}

/// What every API request passes first, outermost first: its access log line
/// ([`access_log::logged`]), its request id ([`request_id::with_id`]), the request metrics
/// ([`crate::metrics::tracked`]), the refusal of certificates no client entry names, and of
/// bodies declared over the size limit ([`json::refuse_oversized`]), and the signature of
/// every answer of the lookup routes, refusals included ([`signing::sign`]). One middleware
/// rather than six layers: each layer costs a clone of the service behind it on every
/// request.
async fn front_door(State(door): State<FrontDoor>, req: Request, next: Next) -> Response {
    let door = &door;
    access_log::logged(&door.access_log, req, |req| {
        request_id::with_id(req, |req| {
            let endpoint = endpoint_label(&req);
            let signer = door
                .signing
                .as_deref()
                .filter(|_| signing::is_signed_route(endpoint.as_ref()));
            let labels = RequestLabels {
                endpoint,
                role: role_label(&req),
            };
            crate::metrics::tracked(labels, req, move |req| async move {
                let resp = match unknown_caller_refusal(&req) {
                    Some(refusal) => refusal,
                    None => json::refuse_oversized(door.body_limit, req, next).await,
                };
                match signer {
                    Some(keys) => signing::sign(keys, resp).await,
                    None => resp,
                }
            })
        })
    })
    .await
}

/// What the front door needs: the body limit, the answer-signing keys and the access log.
#[derive(Clone)]
struct FrontDoor {
    body_limit: usize,
    signing: Option<Arc<hcgw_core::signing::AnswerKeys>>,
    access_log: Arc<access_log::AccessLog>,
}

/// The `endpoint` label of a request: its route template, or `unmatched`. The API's
/// routes come from [`ROUTES`] without an allocation.
pub(crate) fn endpoint_label(req: &Request) -> metrics::SharedString {
    match req.extensions().get::<MatchedPath>() {
        Some(p) => match ROUTES.iter().find(|r| **r == p.as_str()) {
            Some(route) => metrics::SharedString::const_str(route),
            None => metrics::SharedString::from(p.as_str().to_owned()),
        },
        None => metrics::SharedString::const_str("unmatched"),
    }
}

/// The `role` label: the acting role (a peer's on-behalf-of role, capped), or `unknown`.
pub(crate) fn role_label(req: &Request) -> &'static str {
    match req.extensions().get::<ConnInfo>().map(|c| &c.identity) {
        Some(ConnIdentity::Known(caller)) => {
            let header = req
                .headers()
                .get(hcgw_core::federation::ON_BEHALF_OF)
                .and_then(|v| v.to_str().ok());
            acting::effective_role(caller, header)
                .unwrap_or(caller.role)
                .as_str()
        }
        _ => "unknown",
    }
}

/// The refusal of a request whose certificate no `[[clients]]` entry names (on every path).
fn unknown_caller_refusal(req: &Request) -> Option<Response> {
    caller_of(req.extensions())
        .err()
        .map(IntoResponse::into_response)
}

async fn not_found() -> Response {
    let mut resp = ApiError::invalid("no such endpoint").into_response();
    *resp.status_mut() = axum::http::StatusCode::NOT_FOUND;
    resp
}

/// The caller of a request, from its connection's verified certificate; `403` for a
/// CA-valid certificate no `[[clients]]` entry names, `401` without one.
fn caller_of(extensions: &axum::http::Extensions) -> Result<Arc<Caller>, ApiError> {
    match extensions.get::<ConnInfo>().map(|c| &c.identity) {
        Some(ConnIdentity::Known(c)) => Ok(c.clone()),
        Some(ConnIdentity::Unknown { .. }) => Err(ApiError::forbidden(
            "this client certificate is valid but not registered with the gateway",
        )),
        None => Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "no verified client certificate",
        )),
    }
}

/// The caller of a request (see [`caller_of`]).
pub fn known_caller(parts: &Parts) -> Result<Arc<Caller>, ApiError> {
    caller_of(&parts.extensions)
}

/// Extracts the known caller of a request, or refuses it (see [`caller_of`]).
pub struct KnownCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for KnownCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        known_caller(parts).map(|c| KnownCaller((*c).clone()))
    }
}

/// Refuses callers whose role is not in `allowed`.
pub fn require_role(caller: &Caller, allowed: &[Role]) -> Result<(), ApiError> {
    if allowed.contains(&caller.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "the {} role may not use this endpoint",
            caller.role.as_str()
        )))
    }
}

/// `GET /v1/whoami`: the identity the gateway derived from the caller's certificate (for
/// integrators checking their set-up).
#[utoipa::path(get, path = "/v1/whoami", tag = "regions", responses((status = 200, body = Caller)))]
pub async fn whoami(KnownCaller(caller): KnownCaller) -> Json<Caller> {
    Json(caller)
}

/// `GET /metrics` over mTLS: the Prometheus text format, for the `ops` role only.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses(
        (status = 200, description = "Prometheus text exposition format (labels hold no personal data)", content_type = "text/plain"),
        (status = 403, description = "forbidden: any role but ops", body = problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics(KnownCaller(caller): KnownCaller) -> Response {
    match require_role(&caller, &[Role::Ops]) {
        Ok(()) => crate::metrics::response(),
        Err(e) => e.into_response(),
    }
}

/// The body of `GET /v1/regions`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegionsBody {
    /// This gateway instance.
    pub served_by: String,
    /// Every region.
    pub regions: Vec<crate::registry::RegionView>,
    /// The recognition agreements in force.
    pub agreements: Vec<crate::recognition::Agreement>,
    /// The shared Redis tier, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_tier: Option<SharedTierView>,
}

/// The state of the shared Redis tier.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SharedTierView {
    /// Redis failed recently: this instance runs on its local cache and local limits.
    pub degraded: bool,
}

/// `GET /v1/regions`: every region, how it is served and its state, and the agreements in
/// force.
#[utoipa::path(get, path = "/v1/regions", tag = "regions", responses((status = 200, body = RegionsBody)))]
pub async fn regions(
    State(state): State<Arc<AppState>>,
    _caller: KnownCaller,
) -> Json<RegionsBody> {
    let regions = state.lookups.views();
    Json(RegionsBody {
        served_by: state.config.gateway.name.clone(),
        regions,
        agreements: state.lookups.policy().agreements().to_vec(),
        shared_tier: state.shared.as_ref().map(|s| SharedTierView {
            degraded: s.degraded(),
        }),
    })
}
