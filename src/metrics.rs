//! Prometheus metrics: the process-wide recorder (installed once, however many gateways a
//! process starts), the request middleware of the API router, the upstream-call metrics and
//! the certificate-expiry gauges.
//!
//! Labels hold bounded values only: route templates, roles, error codes, region ids and
//! configuration paths. Never a subject, a token, a caller name or a raw path.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use hcgw_core::ErrorCode;
use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::Config;
use crate::protect::breaker::{CircuitState, export_state};

/// Buckets (seconds) of the end-to-end request histogram.
pub const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets (seconds) of the upstream-call histogram (regions agree deadlines of seconds).
pub const UPSTREAM_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric the gateway exports (or another module of it will), with its help text.
/// Described once when the recorder is installed so each shows `# HELP`.
pub const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        "hcgw_requests_total",
        Kind::Counter,
        "API requests by endpoint (route template), acting role and outcome code (ok or the problem code)",
    ),
    (
        "hcgw_request_duration_seconds",
        Kind::Histogram,
        "API request duration, end to end, by endpoint (route template)",
    ),
    (
        "hcgw_upstream_duration_seconds",
        Kind::Histogram,
        "Duration of calls for a region's status (successful or not), to its service or to the peer gateway serving it, by region",
    ),
    (
        "hcgw_peer_requests_total",
        Kind::Counter,
        "Lookups forwarded to peer gateways, by peer (configured name) and outcome code (ok or the problem code)",
    ),
    (
        "hcgw_upstream_errors_total",
        Kind::Counter,
        "Calls for a region's status (to its service or a peer) that failed through the upstream's fault (unavailable, timeout, invalid response, rate limited), by region and error code",
    ),
    (
        "hcgw_cache_hits_total",
        Kind::Counter,
        "Lookups answered from the cache, by region",
    ),
    (
        "hcgw_cache_misses_total",
        Kind::Counter,
        "Lookups that had to ask the region, by region",
    ),
    (
        "hcgw_cache_entries",
        Kind::Gauge,
        "Entries held in the local cache",
    ),
    (
        "hcgw_cache_evictions_total",
        Kind::Counter,
        "Entries evicted from the local cache before their TTL",
    ),
    (
        "hcgw_rate_limited_total",
        Kind::Counter,
        "Requests refused by a rate limit, by scope (caller, region, peer) and configured name",
    ),
    (
        "hcgw_circuit_state",
        Kind::Gauge,
        "Circuit breaker state per target (region id or peer:<name>): one series per state (closed, half_open, open), 1 for the current state, 0 for the others",
    ),
    (
        "hcgw_redis_degraded",
        Kind::Gauge,
        "1 while the shared Redis tier is unreachable and the gateway runs on its local tier",
    ),
    (
        "hcgw_shared_cache_rejected_total",
        Kind::Counter,
        "Entries read back from the shared Redis tier and not used (a miss), by reason: format, mac, key (copied from another key), region, shape, time",
    ),
    (
        "hcgw_audit_queue_depth",
        Kind::Gauge,
        "Audit records waiting for the writer",
    ),
    (
        "hcgw_audit_records_total",
        Kind::Counter,
        "Audit records written",
    ),
    (
        "hcgw_audit_batches_total",
        Kind::Counter,
        "Audit batches written (group commits; one write and, with fsync = every_batch, one fsync each)",
    ),
    (
        "hcgw_audit_write_failures_total",
        Kind::Counter,
        "Audit records that could not be written or queued",
    ),
    (
        "hcgw_audit_tree_heads_total",
        Kind::Counter,
        "Signed tree heads (signed checkpoints) of the audit log written to tree-heads.jsonl",
    ),
    (
        "hcgw_audit_tree_size",
        Kind::Gauge,
        "Records in the audit log's Merkle tree (kept with a [signing] key)",
    ),
    (
        "hcgw_upstream_unmapped_values_total",
        Kind::Counter,
        "Region values without a mapping (unlisted reason code, unknown colour), by region and field",
    ),
    (
        "hcgw_tls_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes on the API listener that failed or timed out",
    ),
    (
        "hcgw_connections_open",
        Kind::Gauge,
        "TCP connections the mTLS API listener holds, TLS handshakes included",
    ),
    (
        "hcgw_connections_refused_total",
        Kind::Counter,
        "API connections refused by a connection cap, by reason (max_connections before the handshake, max_connections_per_client after it)",
    ),
    (
        "hcgw_connections_closed_total",
        Kind::Counter,
        "Established API connections that ended, by reason (client, error, header_timeout, idle, max_age, shutdown, and revoked, expired or untrusted when a TLS reload no longer accepts the certificate)",
    ),
    (
        "hcgw_certificate_expiry_timestamp_seconds",
        Kind::Gauge,
        "When the earliest certificate of a configured certificate file expires (its notAfter, Unix seconds), by configuration path",
    ),
    (
        "hcgw_build_info",
        Kind::Gauge,
        "Always 1; the labels name the gateway's version and the commit it was built from",
    ),
    (
        "hcgw_crl_next_update_timestamp_seconds",
        Kind::Gauge,
        "nextUpdate of the CRLs in force (Unix seconds; the earliest of the file), by CRL file name: past it, handshakes through that CA are refused",
    ),
    (
        "hcgw_answer_signing_failures_total",
        Kind::Counter,
        "Answers that left unsigned because signing failed (a verifier refuses them)",
    ),
    (
        "hcgw_log_lines_dropped_total",
        Kind::Counter,
        "Log lines (access log included) dropped because standard error fell behind and the log writer's queue was full",
    ),
];

/// A metric's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram.
    Histogram,
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global recorder, once. Later calls
/// return the same handle. `None` when another recorder was installed first (then
/// `/metrics` answers 503).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("hcgw_request_duration_seconds".into()),
                    &REQUEST_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("hcgw_upstream_duration_seconds".into()),
                        &UPSTREAM_BUCKETS,
                    )
                });
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "metrics: bad histogram buckets");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics is unavailable");
                return None;
            }
            describe_all();
            // Series that exist from the start, so alerts on their increase work.
            metrics::counter!("hcgw_audit_write_failures_total").absolute(0);
            metrics::counter!("hcgw_audit_records_total").absolute(0);
            metrics::counter!("hcgw_audit_batches_total").absolute(0);
            metrics::counter!("hcgw_audit_tree_heads_total").absolute(0);
            metrics::counter!("hcgw_tls_handshake_failures_total").absolute(0);
            metrics::gauge!("hcgw_audit_queue_depth").set(0.0);
            metrics::gauge!("hcgw_build_info", "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("HCGW_COMMIT")).set(1.0);
            process_collector().describe();
            // Histograms keep raw samples until upkeep folds them: do it even when nobody
            // scrapes (a plain thread: gateways and their runtimes come and go in tests).
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("hcgw-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            Some(handle)
        })
        .as_ref()
}

fn describe_all() {
    for (name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => describe_counter!(*name, *help),
            Kind::Gauge => describe_gauge!(*name, *help),
            Kind::Histogram => describe_histogram!(*name, *help),
        }
    }
}

/// The process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_threads`, …, the Prometheus client
/// conventions), read from `/proc` at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Reads the log writer's count of dropped lines.
type DroppedLines = Box<dyn Fn() -> u64 + Send + Sync>;

static DROPPED_LOG_LINES: OnceLock<DroppedLines> = OnceLock::new();

/// Reports the log writer's count of dropped lines as `hcgw_log_lines_dropped_total` (read
/// at each scrape; the first writer installed is the one counted).
pub fn count_dropped_log_lines(counter: impl Fn() -> u64 + Send + Sync + 'static) {
    let _ = DROPPED_LOG_LINES.set(Box::new(counter));
}

/// The current exposition text, or `None` without a recorder.
pub fn render() -> Option<String> {
    let handle = install()?;
    process_collector().collect();
    let dropped = DROPPED_LOG_LINES.get().map_or(0, |lines| lines());
    metrics::counter!("hcgw_log_lines_dropped_total").absolute(dropped);
    Some(handle.render())
}

/// `GET /metrics` (admin listener, and the API listener for the `ops` role).
pub fn response() -> Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match render() {
        Some(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable in this process\n",
        )
            .into_response(),
    }
}

/// The outcome code of an API response, set by the API's problem responses as a response
/// extension so the middleware need not read bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseCode(pub ErrorCode);

/// The labels of one API request that the API's front door hands in: the route template
/// (or `unmatched`) and the acting role (or `unknown`).
#[derive(Clone, Debug)]
pub struct RequestLabels {
    /// The `endpoint` label.
    pub endpoint: metrics::SharedString,
    /// The `role` label.
    pub role: &'static str,
}

/// The `code` label of a response: `ok`, the problem code, or `http_<status>` for an
/// error not made by the gateway's own problem responses.
pub fn code_label(resp: &Response) -> &'static str {
    if let Some(ResponseCode(code)) = resp.extensions().get::<ResponseCode>() {
        return code.as_str();
    }
    let status = resp.status();
    if status.is_success() || status.is_redirection() || status.is_informational() {
        return "ok";
    }
    match status.as_u16() {
        400 => "http_400",
        401 => "http_401",
        403 => "http_403",
        404 => "http_404",
        405 => "http_405",
        408 => "http_408",
        413 => "http_413",
        415 => "http_415",
        422 => "http_422",
        429 => "http_429",
        500 => "http_500",
        502 => "http_502",
        503 => "http_503",
        504 => "http_504",
        s if s < 500 => "http_4xx",
        _ => "http_5xx",
    }
}

/// Counts and times the request `handle` answers (the API front door calls it).
pub async fn tracked<F, Fut>(labels: RequestLabels, req: Request, handle: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let RequestLabels { endpoint, role } = labels;
    let started = Instant::now();
    let resp = handle(req).await;
    let elapsed = started.elapsed();
    let code = code_label(&resp);
    metrics::counter!("hcgw_requests_total", "endpoint" => endpoint.clone(), "role" => role, "code" => code)
        .increment(1);
    metrics::histogram!("hcgw_request_duration_seconds", "endpoint" => endpoint)
        .record(elapsed.as_secs_f64());
    resp
}

/// Every configured certificate file with its configuration path (the label).
pub fn certificate_files(config: &Config) -> Vec<(String, std::path::PathBuf)> {
    let mut out = vec![("tls.cert".to_owned(), config.tls.cert.clone())];
    for (i, ca) in config.tls.client_ca.iter().enumerate() {
        out.push((format!("tls.client_ca[{i}]"), ca.clone()));
    }
    for (id, entry) in &config.regions {
        let mut problems = Vec::new();
        if let Some(auth) = crate::config::credentials::RegionAuth::parse(
            *id,
            &entry.auth,
            config.base_dir(),
            &mut problems,
        ) {
            for (field, path) in auth.files() {
                if field == "ca" || field == "client_cert" {
                    out.push((format!("regions.{id}.auth.{field}"), path.to_owned()));
                }
            }
        }
    }
    for (i, peer) in config.peers.iter().enumerate() {
        out.push((format!("peers[{i}].client_cert"), peer.client_cert.clone()));
        out.push((format!("peers[{i}].ca"), peer.ca.clone()));
    }
    out
}

/// When the earliest-expiring certificate of a PEM file expires (its `notAfter`, Unix
/// seconds); `None` when the file holds no readable certificate.
pub fn earliest_expiry(path: &Path) -> Option<i64> {
    let certs = crate::tls::pem::load_certs(path).ok()?;
    certs
        .iter()
        .filter_map(|der| {
            let (_, cert) = X509Certificate::from_der(der).ok()?;
            Some(cert.validity().not_after.timestamp())
        })
        .min()
}

/// Sets `hcgw_certificate_expiry_timestamp_seconds` for every configured certificate.
/// Returns the values set (a file that cannot be read is logged and left out).
pub fn refresh_certificate_expiry(config: &Config) -> Vec<(String, i64)> {
    let mut set = Vec::new();
    for (label, path) in certificate_files(config) {
        match earliest_expiry(&path) {
            Some(not_after) => {
                metrics::gauge!("hcgw_certificate_expiry_timestamp_seconds", "certificate" => label.clone())
                    .set(not_after as f64);
                set.push((label, not_after));
            }
            None => {
                tracing::warn!(certificate = %label, "cannot read the certificate's expiry");
            }
        }
    }
    set
}

/// How often certificate expiry is re-read.
pub const CERT_REFRESH: Duration = Duration::from_secs(300);

/// Registers the bounded series that otherwise appear only on their first event (a
/// rejection, an eviction, a circuit change), at zero, so dashboards and alerts see them from
/// the start: circuit state per local region, rate-limit rejections per configured client and
/// region, cache entries and evictions, Redis degradation.
pub fn init_series(config: &Config) {
    metrics::gauge!("hcgw_cache_entries").set(0.0);
    metrics::counter!("hcgw_cache_evictions_total").increment(0);
    metrics::gauge!("hcgw_redis_degraded").set(0.0);
    for region in config.regions.keys() {
        export_state(region.as_str(), CircuitState::Closed);
        metrics::counter!("hcgw_rate_limited_total", "scope" => "region", "name" => region.as_str()).increment(0);
        metrics::counter!("hcgw_cache_hits_total", "region" => region.as_str()).increment(0);
        metrics::counter!("hcgw_cache_misses_total", "region" => region.as_str()).increment(0);
    }
    for client in &config.clients {
        metrics::counter!("hcgw_rate_limited_total", "scope" => "caller", "name" => client.name.clone()).increment(0);
    }
    for peer in &config.peers {
        export_state(&format!("peer:{}", peer.name), CircuitState::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[test]
    fn code_label_prefers_the_problem_code() {
        let mut resp = StatusCode::BAD_GATEWAY.into_response();
        resp.extensions_mut()
            .insert(ResponseCode(ErrorCode::RegionUnavailable));
        assert_eq!(code_label(&resp), "region_unavailable");
        assert_eq!(code_label(&StatusCode::OK.into_response()), "ok");
        assert_eq!(
            code_label(&StatusCode::METHOD_NOT_ALLOWED.into_response()),
            "http_405"
        );
        assert_eq!(
            code_label(&StatusCode::IM_A_TEAPOT.into_response()),
            "http_4xx"
        );
    }

    #[test]
    fn circuit_state_is_one_series_per_state_with_the_current_one_at_1() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            export_state("peer:x", CircuitState::Closed);
            export_state("peer:x", CircuitState::Open);
        });
        let text = handle.render();
        let value = |state: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("hcgw_circuit_state{")
                        && l.contains(&format!("state=\"{state}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(value("open").as_deref(), Some("1"), "{text}");
        assert_eq!(value("closed").as_deref(), Some("0"), "{text}");
        assert_eq!(value("half_open").as_deref(), Some("0"), "{text}");
    }

    #[test]
    fn every_brief_metric_is_described_once() {
        let mut names: Vec<_> = DESCRIPTIONS.iter().map(|(n, _, _)| *n).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(names.iter().all(|n| n.starts_with("hcgw_")));
    }
}
