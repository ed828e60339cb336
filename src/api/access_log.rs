//! The access log: one structured line per API request (a JSON object when
//! `log_format = "json"`), written through tracing with target [`TARGET`] at `info`.
//!
//! Fields: `request_id`, `route` (the route template, or `unmatched`), `method`, `status`,
//! `code` (`ok` or the problem code), `client` (the configured client name; absent for a
//! certificate no `[[clients]]` entry names), `role` (the acting role), `latency_ms`,
//! `bytes_in` and `bytes_out` (the declared body sizes, absent when not known), and for a
//! lookup or verify `cache_hit` and `region`. Never a subject, a token, a person's name, a
//! raw path or a certificate subject.
//!
//! `[access_log]` turns it off, or logs one of every N lookups answered from the cache
//! (`sample_cache_hits`; every other request is always logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hcgw_adapters::RegionId;
use hyper::body::Body as _;

use crate::config::AccessLogSection;
use crate::identity::ConnIdentity;
use crate::server::ConnInfo;

/// The tracing target of access log lines (`RUST_LOG=hcgw::access=off` silences them too).
pub const TARGET: &str = "hcgw::access";

/// What a lookup handler tells the access log about its answer, as a response extension
/// (so the middleware reads no body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupNote {
    /// The region asked.
    pub region: Option<RegionId>,
    /// Whether the answer came from the cache (absent when there was no answer).
    pub cache_hit: Option<bool>,
}

/// `resp` with `note` attached for the access log.
pub fn noted(resp: impl IntoResponse, note: LookupNote) -> Response {
    let mut resp = resp.into_response();
    resp.extensions_mut().insert(note);
    resp
}

/// The access log's settings and its count of cached hits (for sampling).
#[derive(Debug)]
pub struct AccessLog {
    settings: AccessLogSection,
    cache_hits: AtomicU64,
}

impl AccessLog {
    /// An access log with `settings`.
    pub fn new(settings: &AccessLogSection) -> Arc<Self> {
        Arc::new(AccessLog {
            settings: *settings,
            cache_hits: AtomicU64::new(0),
        })
    }

    /// Whether a request with `note` is logged: always, except cached hits, of which one in
    /// `sample_cache_hits` (the first, then every Nth).
    pub fn sampled(&self, note: Option<&LookupNote>) -> bool {
        let every = u64::from(self.settings.sample_cache_hits.max(1));
        if every == 1 || note.and_then(|n| n.cache_hit) != Some(true) {
            return true;
        }
        self.cache_hits
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(every)
    }
}

/// Runs `handle` for `req`, timing it, and writes the request's line (the front door's
/// outermost step, so refusals are logged too). The request id is read from the response,
/// where [`super::request_id::with_id`] echoes it.
pub async fn logged<F, Fut>(log: &AccessLog, req: Request, handle: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    if !log.settings.enabled {
        return handle(req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let route = super::endpoint_label(&req);
    let role = super::role_label(&req);
    let caller = match req.extensions().get::<ConnInfo>().map(|c| &c.identity) {
        Some(ConnIdentity::Known(c)) => Some(c.clone()),
        _ => None,
    };
    let bytes_in = req.body().size_hint().exact().or_else(|| {
        req.headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    let resp = handle(req).await;
    let note = resp.extensions().get::<LookupNote>().copied();
    if !log.sampled(note.as_ref()) {
        return resp;
    }
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let request_id = resp
        .headers()
        .get(crate::api::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info!(
        target: TARGET,
        request_id,
        route = route.as_ref(),
        method = method.as_str(),
        status = resp.status().as_u16(),
        code = crate::metrics::code_label(&resp),
        client = caller.as_ref().map(|c| c.name.as_str()),
        role,
        latency_ms,
        bytes_in,
        bytes_out = resp.body().size_hint().exact(),
        cache_hit = note.and_then(|n| n.cache_hit),
        region = note.and_then(|n| n.region).map(|r| r.as_str()),
        "access"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(every: u32) -> Arc<AccessLog> {
        AccessLog::new(&AccessLogSection {
            enabled: true,
            sample_cache_hits: every,
        })
    }

    const HIT: LookupNote = LookupNote {
        region: Some(RegionId::Suzhou),
        cache_hit: Some(true),
    };
    const MISS: LookupNote = LookupNote {
        region: Some(RegionId::Suzhou),
        cache_hit: Some(false),
    };

    #[test]
    fn one_cached_hit_in_n_is_logged_every_other_request_always() {
        let l = log(3);
        let hits: Vec<bool> = (0..7).map(|_| l.sampled(Some(&HIT))).collect();
        assert_eq!(hits, [true, false, false, true, false, false, true]);
        assert!((0..5).all(|_| l.sampled(Some(&MISS))));
        assert!((0..5).all(|_| l.sampled(None)));
    }

    #[test]
    fn without_sampling_every_hit_is_logged() {
        let l = log(1);
        assert!((0..10).all(|_| l.sampled(Some(&HIT))));
    }

    #[test]
    fn a_note_travels_on_the_response() {
        let resp = noted(axum::http::StatusCode::OK, HIT);
        assert_eq!(resp.extensions().get::<LookupNote>(), Some(&HIT));
    }
}
