//! Operations: Prometheus metrics scraped from a running `hcgw` process (names used by the
//! dashboard and alerts really exported; labels bounded and free of personal data),
//! `/metrics` over mTLS for the `ops` role only, certificate-expiry gauges, and the status
//! page loaded in headless Chromium, reflecting a region taken down during the test.
//!
//! Runs its own world (all eight simulators and the real binary), so taking a region down
//! here never disturbs the lookup tests of the shared world.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use hcgw_adapters::RegionId;
use hcgw_core::ErrorCode;
use hcgw_sim::{Fate, SimSubject};
use serde_json::{Value, json};

use crate::support::{CLIENTS, pki, repo};
use crate::world::{World, fresh_client, start_world};

/// Names emitted only on an event this test cannot cause: a region sending a value the
/// adapter cannot map (the simulators never do), a lookup forwarded to a peer (the ops world
/// has none). Checked against the emitting source instead.
const EVENT_ONLY: &[(&str, &str)] = &[
    (
        "hcgw_upstream_unmapped_values_total",
        "adapters/src/unmapped.rs",
    ),
    // The ops world has no peers; federation::a_peer_down_… checks the series for real.
    ("hcgw_peer_requests_total", "core/src/telemetry.rs"),
    // The ops world has no Redis; shared_tier::forged_entries_… checks the series for real.
    (
        "hcgw_shared_cache_rejected_total",
        "core/src/protect/redis_tier.rs",
    ),
    // The ops world has no [signing] key (no Merkle tree); proofs::receipts_… checks the
    // series for real.
    ("hcgw_audit_tree_size", "core/src/audit/writer.rs"),
    // Counted only when a signature cannot be made (the system RNG failing): no test can
    // make aws-lc-rs fail to sign.
    ("hcgw_answer_signing_failures_total", "src/api/signing.rs"),
];

/// The ops world: simulators plus the real binary.
/// The ops tests' own world (they take regions down, which the lookup tests must not see).
type OpsWorld = World;

fn ops_world() -> &'static OpsWorld {
    static W: OnceLock<OpsWorld> = OnceLock::new();
    W.get_or_init(|| start_world("ops", "info", 120))
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.api.port())
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// An active subject of `region` whose QR lookup the simulator answers with a status.
    fn good_subject(&self, region: RegionId) -> SimSubject {
        self.sims[&region]
            .find(true, |s, i| s.fate == Fate::Active && i.error.is_none())
            .unwrap_or_else(|| panic!("{region}: no subject with a status"))
            .0
    }

    /// A subject with a status that nobody has asked about yet (each call a new one), so no
    /// cached answer — rightly served within its TTL — hides a region fault.
    fn uncached_subject(&self, region: RegionId) -> SimSubject {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(100);
        let skip = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sims[&region]
            .ctx
            .population
            .subjects()
            .iter()
            .filter(|s| {
                s.fate == Fate::Active
                    && self.sims[&region].sim.intended_for(s, true).error.is_none()
            })
            .nth(skip)
            .cloned()
            .unwrap_or_else(|| panic!("{region}: not enough subjects"))
    }

    /// `POST /v1/lookup` of `subject` in `region` as `client`: status and body.
    async fn lookup(
        &self,
        client: &reqwest::Client,
        region: RegionId,
        subject: Value,
    ) -> (u16, Value) {
        let r = client
            .post(self.url("/v1/lookup"))
            .json(&json!({ "region": region, "subject": subject }))
            .send()
            .await
            .expect("lookup");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn plain_client() -> reqwest::Client {
    hcgw_adapters::upstream::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn scrape(url: &str) -> String {
    let r = plain_client().get(url).send().await.expect("scrape");
    assert_eq!(r.status(), 200, "{url}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{url}: content type {ct}");
    r.text().await.unwrap()
}

/// One sample line of the exposition format: name and labels.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
}

/// Parses the sample lines of an exposition (label values may hold escaped quotes).
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..end].to_owned();
        let mut labels = Vec::new();
        if line[end..].starts_with('{') {
            let mut rest = &line[end + 1..];
            while !rest.starts_with('}') {
                let eq = rest.find('=').expect("label =");
                let key = rest[..eq].trim_start_matches(',').to_owned();
                rest = &rest[eq + 1..];
                assert!(rest.starts_with('"'), "label value quoted: {line}");
                let mut value = String::new();
                let mut chars = rest[1..].char_indices();
                let close = loop {
                    match chars.next().expect("closing quote") {
                        (i, '"') => break i,
                        (_, '\\') => value.push(chars.next().expect("escape").1),
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key, value));
                rest = rest[close + 2..].trim_start_matches(',');
            }
        }
        out.push(Sample { name, labels });
    }
    out
}

/// Every `hcgw_*` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = metric_names_with(text, "hcgw_");
    names.extend(metric_names_with(text, "process_"));
    names
}

/// Every name starting with `prefix` in a text (a metric name, not part of a longer word).
fn metric_names_with(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// Every string in a JSON document under a key named `expr`, `query` or `definition`.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// Makes traffic of every kind the metrics describe, once per test run: lookups in every
/// region (statuses, a region fault), an unknown caller, a failed TLS handshake, an
/// unmatched path.
async fn make_traffic(w: &'static OpsWorld) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| traffic(w)).await;
}

async fn traffic(w: &OpsWorld) {
    let platform = fresh_client("platform-shanghai");
    for region in RegionId::ALL {
        let s = w.good_subject(region);
        let (status, body) = w.lookup(&platform, region, json!({ "qr": s.qr })).await;
        assert_eq!(status, 200, "{region}: {body}");
    }
    // A region fault: Guangzhou down for one lookup (only this test touches Guangzhou).
    let gz = &w.sims[&RegionId::Guangzhou];
    let s = w.uncached_subject(RegionId::Guangzhou);
    gz.control(json!({ "down": true })).await;
    let (status, body) = w
        .lookup(&platform, RegionId::Guangzhou, json!({ "qr": s.qr }))
        .await;
    gz.control(json!({ "down": false })).await;
    assert_eq!(status, 503, "{body}");
    // Identity lookups (personal data in the request, never in a label).
    for region in [RegionId::Suzhou, RegionId::Sukang, RegionId::Hangzhou] {
        let s = w.good_subject(region);
        let _ = w
            .lookup(
                &platform,
                region,
                json!({ "id_type": s.id_type, "id_number": s.id_number, "name": s.name }),
            )
            .await;
    }
    // A path carrying digits and a token-like segment goes to the fallback.
    let r = platform
        .get(w.url("/v1/lookup/110101199003071234/abcdefABCDEF0123456789"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A certificate the CA accepts but no client entry names.
    let unknown = fresh_client("unknown");
    let r = unknown.get(w.url("/v1/whoami")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // A handshake without a client certificate fails.
    let _ = crate::support::fresh_get(w.api, crate::support::client_tls(None), "/v1/whoami").await;
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let w = ops_world();
    make_traffic(w).await;
    let mut text = String::new();
    // The handshake failure is counted by the accept loop: wait until it shows.
    crate::support::eventually(30, "the TLS handshake failure is counted", async || {
        text = scrape(&w.admin_url("/metrics")).await;
        text.lines()
            .any(|l| l.starts_with("hcgw_tls_handshake_failures_total ") && !l.ends_with(" 0"))
    })
    .await;
    let exported: BTreeSet<String> = samples(&text).into_iter().map(|s| s.name).collect();

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("ops/grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| p.len() >= 10)
    );
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    for q in &queries {
        for n in metric_names(q) {
            used.insert(n, "ops/grafana-dashboard.json");
        }
    }
    let dashboard_names: BTreeSet<String> = used.keys().cloned().collect();
    let alerts = std::fs::read_to_string(repo().join("ops/prometheus-alerts.yml")).unwrap();
    for n in metric_names(&alerts) {
        used.entry(n).or_insert("ops/prometheus-alerts.yml");
    }
    assert!(used.len() >= 15, "too few names found: {used:?}");

    let mut missing = Vec::new();
    for (name, file) in &used {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        if let Some((_, source)) = EVENT_ONLY.iter().find(|(n, _)| *n == base) {
            let src = std::fs::read_to_string(repo().join(source)).unwrap();
            assert!(src.contains(base), "{base} is not emitted by {source}");
            continue;
        }
        if !exported.contains(name.as_str()) {
            missing.push(format!("{name} (used in {file})"));
        }
    }
    assert!(
        missing.is_empty(),
        "used but not exported by the gateway: {missing:?}\nexported: {exported:?}"
    );

    // Every metric the gateway describes has a panel.
    for (name, _, _) in hcgw::metrics::DESCRIPTIONS {
        assert!(
            dashboard_names.iter().any(|n| n == name
                || n.strip_prefix(*name)
                    .is_some_and(|s| ["_bucket", "_count", "_sum"].contains(&s))),
            "{name} has no dashboard panel"
        );
    }

    // The build and the process are described the Prometheus way.
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.lines().any(|l| l.starts_with("hcgw_build_info{")
            && l.contains(&format!("version=\"{version}\""))
            && l.contains("commit=\"")
            && l.ends_with(" 1")),
        "{text}"
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(exported.contains(name), "{name} not exported");
    }

    // The histograms are real Prometheus histograms with the gateway's buckets.
    for h in [
        "hcgw_request_duration_seconds",
        "hcgw_upstream_duration_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {h} histogram")), "{h} type");
        assert!(text.contains(&format!("# HELP {h} ")), "{h} help");
    }
    assert!(
        text.contains(r#"hcgw_request_duration_seconds_bucket{endpoint="/v1/lookup",le="0.005"}"#)
    );
    assert!(text.contains(r#"hcgw_upstream_duration_seconds_bucket{region="suzhou",le="0.1"}"#));
    // Outcome codes come from the problem responses, roles from the certificates.
    let has = |name: &str, want: &[(&str, &str)]| {
        samples(&text).iter().any(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    };
    assert!(has(
        "hcgw_requests_total",
        &[
            ("endpoint", "/v1/lookup"),
            ("role", "platform"),
            ("code", "ok")
        ]
    ));
    assert!(has(
        "hcgw_requests_total",
        &[
            ("endpoint", "/v1/lookup"),
            ("role", "platform"),
            ("code", "region_unavailable")
        ]
    ));
    assert!(has(
        "hcgw_requests_total",
        &[
            ("endpoint", "/v1/whoami"),
            ("role", "unknown"),
            ("code", "forbidden")
        ]
    ));
    assert!(has(
        "hcgw_requests_total",
        &[("endpoint", "unmatched"), ("code", "invalid_request")]
    ));
    assert!(has(
        "hcgw_upstream_errors_total",
        &[("region", "guangzhou"), ("code", "region_unavailable")]
    ));
}

/// The labels the gateway uses, with the values each may take.
fn label_allowed(key: &str, value: &str) -> bool {
    const ENDPOINTS: &[&str] = &[
        "/v1/whoami",
        "/v1/regions",
        "/v1/lookup",
        "/v1/lookup/batch",
        "/v1/verify",
        "/v1/openapi.json",
        "/metrics",
        "unmatched",
    ];
    let is_code = |v: &str| {
        v == "ok"
            || ErrorCode::ALL.iter().any(|c| c.as_str() == v)
            || (v.starts_with("http_") && v.len() == 8)
    };
    let config_path = |v: &str| {
        v.len() <= 64
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._[]".contains(c))
    };
    match key {
        "endpoint" => ENDPOINTS.contains(&value),
        "role" => ["platform", "checkpoint", "peer", "ops", "unknown"].contains(&value),
        "code" => is_code(value),
        "region" => value.parse::<RegionId>().is_ok(),
        "certificate" => {
            config_path(value)
                && (value == "tls.cert"
                    || value.starts_with("tls.client_ca[")
                    || value.starts_with("regions.")
                    || value.starts_with("peers["))
        }
        "field" => {
            value.len() <= 32 && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        // a configured CRL's file name
        "crl" => {
            value.len() <= 64
                && value.ends_with(".pem")
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }
        "le" | "quantile" => value == "+Inf" || value.parse::<f64>().is_ok(),
        // hcgw_circuit_state: one series per state.
        "state" => ["closed", "half_open", "open"].contains(&value),
        // hcgw_build_info: the crate's version and the commit (hex, or "unknown").
        "version" => value == env!("CARGO_PKG_VERSION"),
        "commit" => {
            value == "unknown"
                || (value.len() <= 40 && value.chars().all(|c| c.is_ascii_hexdigit()))
        }
        // The protect module's labels: a scope from a fixed set, and configured names only:
        // a client name, a region id or a peer.
        "scope" => ["caller", "region", "peer"].contains(&value),
        // The listener's connection metrics: a reason from a fixed set.
        "reason" => {
            hcgw::connections::CloseReason::ALL
                .iter()
                .any(|r| r.as_str() == value)
                || hcgw::connections::Refusal::ALL
                    .iter()
                    .any(|r| r.as_str() == value)
        }
        "name" | "target" => {
            configured_clients().iter().any(|c| c == value)
                || value.parse::<RegionId>().is_ok()
                || value.starts_with("peer:")
        }
        _ => false,
    }
}

/// The client names of the test configuration (`[[clients]] name = "…"`).
fn configured_clients() -> Vec<String> {
    CLIENTS
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .map(|l| l.trim_end_matches('"').to_owned())
        .collect()
}

fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// Every call to a region is counted once in its upstream duration: the gateway's count for
/// Xuzhou (an API key, no token calls) settles at what Xuzhou's simulator served.
#[tokio::test]
async fn each_call_to_a_region_is_counted_once() {
    let w = ops_world();
    make_traffic(w).await;
    let sim = &w.sims[&RegionId::Xuzhou];
    let mut last = (0, 0);
    crate::support::eventually(30, "the upstream count matches the region's", async || {
        let text = scrape(&w.admin_url("/metrics")).await;
        let counted = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"hcgw_upstream_duration_seconds_count{region="xuzhou"} "#)
            })
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        last = (counted, sim.requests());
        counted > 0 && last.0 == last.1
    })
    .await;
    assert!(last.0 > 0, "{last:?}");
}

#[tokio::test]
async fn metric_labels_are_bounded_and_hold_no_personal_data() {
    let w = ops_world();
    make_traffic(w).await;
    let text = scrape(&w.admin_url("/metrics")).await;
    // What went into the requests: none of it may come out in a label.
    let mut personal: Vec<String> = Vec::new();
    for region in RegionId::ALL {
        let s = w.good_subject(region);
        personal.extend([s.token.clone(), s.id_number.clone(), s.name.clone()]);
    }
    let samples = samples(&text);
    assert!(samples.len() > 50, "a real scrape: {text}");
    for s in &samples {
        // The gateway's own, and the Prometheus client conventions' process metrics.
        assert!(
            s.name.starts_with("hcgw_") || s.name.starts_with("process_"),
            "foreign metric {}",
            s.name
        );
        for (k, v) in &s.labels {
            assert!(
                label_allowed(k, v),
                "{}: label {k}={v:?} is not from its bounded set",
                s.name
            );
            assert!(longest_digit_run(v) < 15, "{}: {k}={v:?}", s.name);
            assert!(v.len() <= 64, "{}: {k}={v:?} too long", s.name);
            for p in &personal {
                assert!(
                    !v.contains(p.as_str()),
                    "{}: {k} holds personal data",
                    s.name
                );
            }
        }
    }
}

#[tokio::test]
async fn metrics_over_mtls_are_for_the_ops_role_only() {
    let w = ops_world();
    let r = fresh_client("ops")
        .get(w.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains("# TYPE hcgw_certificate_expiry_timestamp_seconds gauge"),
        "{text}"
    );
    for name in ["platform-shanghai", "checkpoint-shanghai", "peer-jiangsu"] {
        let r = fresh_client(name)
            .get(w.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "forbidden", "{name}");
    }
    // Refused with a problem before the router without a registered certificate.
    let r = fresh_client("unknown")
        .get(w.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// When the earliest certificate of a PEM file expires (Unix seconds), per the openssl CLI.
fn openssl_not_after(path: &Path) -> i64 {
    let text = std::fs::read_to_string(path).unwrap();
    let mut earliest = i64::MAX;
    for block in text.split_inclusive("-----END CERTIFICATE-----") {
        if !block.contains("-----BEGIN CERTIFICATE-----") {
            continue;
        }
        let mut child = Command::new("openssl")
            .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), block.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        let date = line.trim().trim_start_matches("notAfter=");
        let t = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%SZ")
            .unwrap_or_else(|e| panic!("{date}: {e}"))
            .and_utc();
        earliest = earliest.min(t.timestamp());
    }
    earliest
}

#[tokio::test]
async fn certificate_expiry_is_exported_for_every_configured_certificate() {
    // The ops world's binary: listener, client CA bundle, Sukang's and Guangdong's mTLS.
    let w = ops_world();
    let text = scrape(&w.admin_url("/metrics")).await;
    let config = hcgw::config::load(&w.config).unwrap();
    let mut seen = BTreeMap::new();
    for s in samples(&text)
        .into_iter()
        .filter(|s| s.name == "hcgw_certificate_expiry_timestamp_seconds")
    {
        let label = s
            .labels
            .iter()
            .find(|(k, _)| k == "certificate")
            .unwrap()
            .1
            .clone();
        seen.insert(label, ());
    }
    let expected: BTreeSet<&str> = [
        "tls.cert",
        "tls.client_ca[0]",
        "regions.sukang.auth.ca",
        "regions.sukang.auth.client_cert",
        "regions.guangdong.auth.ca",
        "regions.guangdong.auth.client_cert",
    ]
    .into();
    assert_eq!(
        seen.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected,
        "{text}"
    );
    // The values: the earliest-expiring certificate of each file, as openssl reads it.
    for (label, path) in hcgw::metrics::certificate_files(&config) {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "hcgw_certificate_expiry_timestamp_seconds{{certificate=\"{label}\"}} "
                ))
            })
            .unwrap_or_else(|| panic!("{label} not exported"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let want = openssl_not_after(&path);
        assert_eq!(
            value as i64, want,
            "{label}: exported {value}, openssl says {want}"
        );
        assert!(
            value as i64 > chrono::Utc::now().timestamp(),
            "{label}: the dev PKI is valid"
        );
    }

    // Peers' certificates too (a configuration with a peer: checked without serving).
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let text = crate::support::config_text(
        &crate::support::TlsPaths::standard(),
        dir.path(),
        &format!(
            r#"
[[peers]]
name = "jiangsu"
url = "https://localhost:1"
regions = ["xuzhou"]
ca = {ca:?}
client_cert = {cert:?}
client_key = {key:?}
"#,
            ca = p.join("ca-bundle.pem").display().to_string(),
            cert = p
                .join("clients/peer-jiangsu/cert.pem")
                .display()
                .to_string(),
            key = p.join("clients/peer-jiangsu/key.pem").display().to_string(),
        ),
    );
    let path = dir.path().join("hcgw.toml");
    std::fs::write(&path, text).unwrap();
    let config = hcgw::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let set: BTreeMap<String, i64> = hcgw::metrics::refresh_certificate_expiry(&config)
        .into_iter()
        .collect();
    assert_eq!(
        set.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "peers[0].ca",
            "peers[0].client_cert",
            "tls.cert",
            "tls.client_ca[0]"
        ]
    );
    let want = openssl_not_after(&p.join("clients/peer-jiangsu/cert.pem"));
    assert_eq!(set["peers[0].client_cert"], want);
}

#[tokio::test]
async fn gateways_in_one_process_share_one_recorder() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let tls = crate::support::TlsPaths::standard();
    let ga =
        crate::support::start_gateway(&crate::support::config_text(&tls, a.path(), ""), a.path())
            .await;
    let gb =
        crate::support::start_gateway(&crate::support::config_text(&tls, b.path(), ""), b.path())
            .await;
    let (status, _) = crate::support::fresh_get(
        ga.api_addr,
        crate::support::client_tls(Some(&crate::support::client("ops"))),
        "/v1/regions",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    for g in [&ga, &gb] {
        let text = scrape(&format!("http://{}/metrics", g.admin_addr)).await;
        assert!(
            text.contains(r#"hcgw_requests_total{endpoint="/v1/regions",role="ops",code="ok"}"#),
            "{text}"
        );
    }
    ga.shutdown().await;
    gb.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The status page in a browser.

/// The Chromium binary; the test fails (never skips) without it.
fn chromium_binary() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return p;
        }
    }
    panic!(
        "chromium is not installed: the status page's browser test needs it. \
         Run scripts/install-deps.sh (installs the Debian package `chromium`)."
    );
}

/// Runs headless Chromium with `args` and returns its standard output.
async fn chromium(args: &[String]) -> String {
    let bin = chromium_binary();
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("chromium finished within 3 minutes")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of the status page after its script ran.
async fn rendered_status_page(w: &OpsWorld) -> String {
    chromium(&[
        "--virtual-time-budget=5000".into(),
        "--dump-dom".into(),
        w.admin_url("/status"),
    ])
    .await
}

/// The `data-state` of a region's row in the rendered DOM.
fn row_state(dom: &str, region: RegionId) -> Option<String> {
    let at = dom.find(&format!("data-region=\"{region}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let s = tag.find("data-state=\"")? + "data-state=\"".len();
    Some(tag[s..s + tag[s..].find('"')?].to_owned())
}

#[tokio::test]
async fn the_status_page_in_a_browser_shows_every_region_and_one_going_down() {
    let w = ops_world();
    // Some figures on every region first.
    make_traffic(w).await;
    let platform = fresh_client("platform-shanghai");

    let dom = rendered_status_page(w).await;
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page's script did not load the figures:\n{dom}"
    );
    assert!(dom.contains("hcgw-ops"), "gateway name");
    for region in RegionId::ALL {
        let state = row_state(&dom, region).unwrap_or_else(|| panic!("{region} missing:\n{dom}"));
        assert!(
            ["up", "degraded"].contains(&state.as_str()),
            "{region}: {state}"
        );
        assert!(dom.contains(region.display_name()), "{region} name");
    }
    assert_eq!(row_state(&dom, RegionId::Huzhou).as_deref(), Some("up"));
    for agreement in ["yrd-mutual-recognition", "guangdong-interop"] {
        assert!(
            dom.contains(&format!("data-agreement=\"{agreement}\"")),
            "{agreement}"
        );
    }
    assert!(dom.contains("YRD health-code mutual recognition notice"));

    // Huzhou goes down; a few lookups let the gateway notice (only this test touches Huzhou).
    let huzhou = &w.sims[&RegionId::Huzhou];
    huzhou.control(json!({ "down": true })).await;
    for _ in 0..4 {
        let s = w.uncached_subject(RegionId::Huzhou);
        let (status, body) = w
            .lookup(&platform, RegionId::Huzhou, json!({ "qr": s.qr }))
            .await;
        assert_eq!(status, 503, "{body}");
    }
    let status: Value = plain_client()
        .get(w.admin_url("/status.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hz = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "huzhou")
        .unwrap();
    assert_eq!(hz["state"], "down", "{hz}");
    assert!(hz["recent"]["faults"].as_u64().unwrap() >= 4, "{hz}");

    let dom = rendered_status_page(w).await;
    let screenshot = repo().join("target/test-artifacts/status-page.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&screenshot);
    chromium(&[
        "--virtual-time-budget=5000".into(),
        "--window-size=1280,900".into(),
        format!("--screenshot={}", screenshot.display()),
        w.admin_url("/status"),
    ])
    .await;
    huzhou.control(json!({ "down": false })).await;

    assert_eq!(
        row_state(&dom, RegionId::Huzhou).as_deref(),
        Some("down"),
        "{dom}"
    );
    assert!(dom.contains("region_unavailable"), "the reason is shown");
    for region in RegionId::ALL.into_iter().filter(|r| *r != RegionId::Huzhou) {
        assert!(row_state(&dom, region).is_some(), "{region} still shown");
    }
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
    // The README's picture: `HCGW_UPDATE_DOCS=1 cargo test --test e2e status_page` renews it.
    if std::env::var_os("HCGW_UPDATE_DOCS").is_some() {
        std::fs::write(repo().join("docs/status-page.png"), &png).unwrap();
    }

    // The JSON carries counts and configuration only: no subject data.
    let text = status.to_string();
    for region in RegionId::ALL {
        let s = w.good_subject(region);
        for p in [&s.token, &s.id_number, &s.name] {
            assert!(
                !text.contains(p.as_str()),
                "status.json holds personal data"
            );
        }
    }
    assert_eq!(status["regions"].as_array().unwrap().len(), 8);
}
