//! The plain-HTTP admin listener (loopback by default): `/healthz` (the process is alive),
//! `/readyz` (configuration loaded, server certificate valid, no CRL past its nextUpdate,
//! listener up, not draining), `/metrics`
//! (Prometheus text format) and the status page `/status` with its `/status.json`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// The admin router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|| async { crate::metrics::response() }))
        .route("/status", get(crate::status_page::page))
        .route("/status.json", get(crate::status_page::json))
        .layer(axum::middleware::from_fn(crate::api::request_id::layer))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<serde_json::Value>) {
    let listener_up = state.listener_up.load(Ordering::Relaxed);
    let cert_days = crate::tls::days_to_expiry(&state.tls.files().cert);
    let cert_valid = cert_days.is_some_and(|d| d >= 0);
    let audit_ok = state.lookups.auditor().log().is_healthy();
    let crls_lapsed = state.tls.lapsed_crls(chrono::Utc::now().timestamp());
    let draining = state.draining.load(Ordering::Relaxed);
    let ready = !draining
        && listener_up
        && cert_valid
        && crls_lapsed.is_empty()
        && (audit_ok || !state.config.audit.strict);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "ready": ready,
            // Set on SIGTERM: serving on for `shutdown.drain_s`, so load balancers stop sending.
            "reason": draining.then_some("draining"),
            "draining": draining,
            "config": state.config.source.display().to_string(),
            "listener_up": listener_up,
            "server_certificate_days_left": cert_days,
            "tls_reloads": state.tls.reloads(),
            "revocation": match state.config.tls.revocation {
                crate::config::Revocation::Enforced => "enforced",
                crate::config::Revocation::Disabled => "disabled",
            },
            // Why not ready: each CRL past its nextUpdate (its CA's clients are refused).
            "crls_lapsed": crls_lapsed,
            "audit_healthy": audit_ok,
            "audit_queue_depth": state.lookups.auditor().log().queue_depth(),
            // Informational: a degraded Redis tier does not make the gateway unready.
            "redis_degraded": state.shared.as_ref().map(|s| s.degraded()),
        })),
    )
}
