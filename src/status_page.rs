//! The status page of the admin listener: `GET /status` (one self-contained HTML screen,
//! no external assets) refreshing itself from `GET /status.json` every few seconds.
//!
//! Shows each region's state, circuit, how it is served, recent latency, error rate and
//! cache hit ratio, and the recognition agreements in force. Counts and configuration only:
//! no personal data.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use hcgw_adapters::RegionId;
use serde::Serialize;
use serde_json::Value;

use crate::state::AppState;
use crate::stats::Recent;

/// How often the page refreshes its figures (ms).
pub const REFRESH_MS: u64 = 3000;

/// One region on the status page.
#[derive(Clone, Debug, Serialize)]
pub struct RegionStatus {
    /// Region id.
    pub id: RegionId,
    /// Code system name.
    pub name: String,
    /// Issuing jurisdiction.
    pub jurisdiction: String,
    /// `local`, `peer` or `none`.
    pub served: String,
    /// The peers serving it, in fail-over order (when `served` is `peer`).
    pub peers: Vec<String>,
    /// `up`, `degraded`, `down` or `not_served`: what the registry reports, made worse by
    /// what recent answers show.
    pub state: &'static str,
    /// Why, when not up.
    pub reason: Option<String>,
    /// The circuit breaker's state, when the registry reports one.
    pub circuit: Option<String>,
    /// Recent figures (answers, faults, hits, latency).
    pub recent: Recent,
}

/// The body of `GET /status.json`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusBody {
    /// This gateway instance.
    pub gateway: String,
    /// When the figures were taken (RFC 3339, UTC).
    pub generated_at: String,
    /// The window of the recent figures (seconds).
    pub window_s: u64,
    /// How often the page refreshes (ms).
    pub refresh_ms: u64,
    /// Every region.
    pub regions: Vec<RegionStatus>,
    /// The recognition agreements in force.
    pub agreements: Vec<crate::recognition::Agreement>,
}

/// The circuit breaker's state of a region view: `protection.circuit` for local regions
/// (`closed`, `half_open`, `open`), or a top-level `circuit` (a string or an object with a
/// `state`) where a view reports one.
fn circuit_of(view: &Value) -> Option<String> {
    let c = view
        .pointer("/protection/circuit")
        .or_else(|| view.get("circuit"))
        .or_else(|| view.get("circuit_state"))?;
    match c {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("state").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The state shown: the registry's, made worse by the circuit and by recent answers.
pub fn observed_state(
    registry_state: &str,
    served: &str,
    circuit: Option<&str>,
    recent: &Recent,
) -> (&'static str, Option<String>) {
    if served == "none" {
        return (
            "not_served",
            Some("not served here nor by a peer".to_owned()),
        );
    }
    if registry_state == "down" {
        return ("down", None);
    }
    let circuit = circuit.map(|c| c.replace('-', "_"));
    if circuit.as_deref() == Some("open") {
        return ("down", Some("circuit open".to_owned()));
    }
    let last = recent
        .last_fault_code
        .map(|c| c.as_str())
        .unwrap_or("error");
    if recent.consecutive_faults >= 3 {
        return (
            "down",
            Some(format!(
                "the last {} answers failed ({last})",
                recent.consecutive_faults
            )),
        );
    }
    let rate = recent.error_rate.unwrap_or(0.0);
    if recent.answers >= 4 && rate >= 0.5 {
        return (
            "down",
            Some(format!(
                "{:.0}% of recent answers failed ({last})",
                rate * 100.0
            )),
        );
    }
    if circuit.as_deref() == Some("half_open") {
        return ("degraded", Some("circuit half-open".to_owned()));
    }
    if recent.consecutive_faults >= 1 {
        return ("degraded", Some(format!("the last answer failed ({last})")));
    }
    if rate > 0.05 {
        return (
            "degraded",
            Some(format!(
                "{:.0}% of recent answers failed ({last})",
                rate * 100.0
            )),
        );
    }
    if registry_state == "degraded" {
        return ("degraded", None);
    }
    ("up", None)
}

/// The figures of the status page.
pub fn status(state: &AppState) -> StatusBody {
    let stats = state.lookups.stats();
    // The lookup service's views: the registry's, with each local region's circuit and
    // recent figures, and the peers' state for regions they serve.
    let views = state.lookups.views();
    let regions = views
        .into_iter()
        .map(|view| {
            let id = view.id;
            let v = serde_json::to_value(&view).unwrap_or_default();
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let served = v
                .pointer("/served/kind")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_owned();
            let peers = v
                .pointer("/served/peers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let circuit = circuit_of(&v);
            let recent = stats.recent(id);
            let (shown, reason) =
                observed_state(&text("state"), &served, circuit.as_deref(), &recent);
            let note = v.get("note").and_then(Value::as_str).map(str::to_owned);
            RegionStatus {
                id,
                name: text("name"),
                jurisdiction: text("jurisdiction"),
                served,
                peers,
                state: shown,
                reason: reason.or(note),
                circuit,
                recent,
            }
        })
        .collect();
    StatusBody {
        gateway: state.config.gateway.name.clone(),
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        window_s: crate::stats::SLOT.as_secs() * crate::stats::SLOTS as u64,
        refresh_ms: REFRESH_MS,
        regions,
        agreements: state.lookups.policy().agreements().to_vec(),
    }
}

/// `GET /status.json`.
pub async fn json(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Json(status(&state)))
}

/// `GET /status`.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
            ),
        ],
        PAGE,
    )
}

/// The page: inline CSS and JS only.
pub const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hcgw status</title>
<style>
:root { --up:#1a7f37; --degraded:#b35900; --down:#c62828; --muted:#6b7280; --line:#e5e7eb; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:#111827; background:#f9fafb; }
header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:#111827; color:#f9fafb; }
header h1 { margin:0; font-size:18px; }
header .meta { color:#d1d5db; font-size:13px; }
header .meta.stale { color:#fca5a5; font-weight:600; }
main { padding:16px 24px; }
.summary { display:flex; gap:12px; margin-bottom:14px; }
.card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 14px; min-width:110px; }
.card b { display:block; font-size:20px; }
.card span { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
table { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); border-radius:6px; }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { white-space:nowrap; font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); background:#f3f4f6; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.id { color:var(--muted); font-size:12px; }
.badge { display:inline-block; padding:1px 9px; border-radius:10px; font-weight:600; font-size:12px; color:#fff; text-transform:uppercase; }
.badge.up { background:var(--up); } .badge.degraded { background:var(--degraded); }
.badge.down { background:var(--down); } .badge.not_served { background:var(--muted); }
.reason { color:var(--muted); font-size:12px; }
tr.down td { background:#fef2f2; } tr.degraded td { background:#fffbeb; }
h2 { font-size:15px; margin:22px 0 8px; }
footer { padding:10px 24px 20px; color:var(--muted); font-size:12px; }
</style>
</head>
<body>
<header>
  <h1>hcgw status · <span id="gateway">…</span></h1>
  <span class="meta" id="updated">loading…</span>
</header>
<main>
  <div class="summary">
    <div class="card"><b id="n-up">–</b><span>up</span></div>
    <div class="card"><b id="n-degraded">–</b><span>degraded</span></div>
    <div class="card"><b id="n-down">–</b><span>down</span></div>
    <div class="card"><b id="n-answers">–</b><span>answers (window)</span></div>
  </div>
  <table id="regions">
    <thead><tr>
      <th>Region</th><th>State</th><th>Circuit</th><th>Served by</th>
      <th>Latency p50 / p95</th><th>Error rate</th><th>Cache hit ratio</th><th>Answers</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <h2>Recognition agreements in force</h2>
  <table id="agreements">
    <thead><tr><th>Agreement</th><th>Members</th><th>Code systems</th><th>Excluded</th><th>Source</th></tr></thead>
    <tbody></tbody>
  </table>
</main>
<footer>Figures over the last <span id="window">5</span> minutes · refreshes every few seconds · counts only, no personal data</footer>
<noscript><p style="padding:0 24px">This page needs JavaScript; the figures are at <a href="status.json">status.json</a>.</p></noscript>
<script>
"use strict";
let refreshMs = 3000;
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function pct(x) { return (x === null || x === undefined) ? "–" : (x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0) + "%"; }
function ms(x) { return (x === null || x === undefined) ? "–" : "≤" + x + " ms"; }
function regionRow(r) {
  const tr = el("tr", r.state);
  tr.dataset.region = r.id;
  tr.dataset.state = r.state;
  const name = el("td");
  name.append(el("div", null, r.name), el("div", "id", r.id + " · " + r.jurisdiction));
  const state = el("td");
  state.append(el("span", "badge " + r.state, r.state.replace("_", " ")));
  if (r.reason) state.append(el("div", "reason", r.reason));
  const served = r.served === "peer" ? "peer: " + r.peers.join(", ") : (r.served === "local" ? "local" : "–");
  const rc = r.recent;
  const lat = rc.upstream_calls > 0 ? ms(rc.latency_p50_ms) + " / " + ms(rc.latency_p95_ms) : "–";
  tr.append(name, state,
    el("td", "circuit", r.circuit || "–"),
    el("td", "served", served),
    el("td", "num latency", lat),
    el("td", "num errors", pct(rc.error_rate)),
    el("td", "num hits", pct(rc.hit_ratio)),
    el("td", "num answers", rc.answers));
  return tr;
}
function agreementRow(a) {
  const tr = el("tr");
  tr.dataset.agreement = a.id;
  tr.append(el("td", null, a.id),
    el("td", null, a.members.join(", ")),
    el("td", null, a.code_systems ? a.code_systems.join(", ") : "issued inside the members"),
    el("td", null, a.exclude_code_systems.length ? a.exclude_code_systems.join(", ") : "–"),
    el("td", null, a.source || "–"));
  return tr;
}
function render(s) {
  document.getElementById("gateway").textContent = s.gateway;
  document.getElementById("window").textContent = Math.round(s.window_s / 60);
  const rows = document.querySelector("#regions tbody");
  rows.replaceChildren(...s.regions.map(regionRow));
  const ag = document.querySelector("#agreements tbody");
  ag.replaceChildren(...(s.agreements.length ? s.agreements.map(agreementRow)
    : [(() => { const tr = el("tr"); const td = el("td", "reason", "none configured (home jurisdiction only)"); td.colSpan = 5; tr.append(td); return tr; })()]));
  const count = st => s.regions.filter(r => r.state === st).length;
  document.getElementById("n-up").textContent = count("up");
  document.getElementById("n-degraded").textContent = count("degraded");
  document.getElementById("n-down").textContent = count("down");
  document.getElementById("n-answers").textContent = s.regions.reduce((n, r) => n + r.recent.answers, 0);
  const u = document.getElementById("updated");
  u.textContent = "updated " + s.generated_at;
  u.className = "meta";
  u.dataset.loaded = "true";
  refreshMs = s.refresh_ms || refreshMs;
}
async function refresh() {
  try {
    const r = await fetch("status.json", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
  } catch (e) {
    const u = document.getElementById("updated");
    u.textContent = "cannot refresh: " + e.message;
    u.className = "meta stale";
  } finally {
    setTimeout(refresh, refreshMs);
  }
}
refresh();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use hcgw_core::ErrorCode;

    fn recent(answers: u64, faults: u64, consecutive: u32) -> Recent {
        Recent {
            answers,
            faults,
            error_rate: (answers > 0).then(|| faults as f64 / answers as f64),
            consecutive_faults: consecutive,
            last_fault_code: (faults > 0).then_some(ErrorCode::RegionUnavailable),
            ..Recent::default()
        }
    }

    #[test]
    fn state_follows_registry_circuit_and_recent_answers() {
        let quiet = recent(0, 0, 0);
        assert_eq!(observed_state("up", "local", None, &quiet).0, "up");
        assert_eq!(observed_state("down", "local", None, &quiet).0, "down");
        assert_eq!(observed_state("up", "none", None, &quiet).0, "not_served");
        assert_eq!(
            observed_state("up", "local", Some("open"), &quiet).0,
            "down"
        );
        assert_eq!(
            observed_state("up", "local", Some("half-open"), &quiet).0,
            "degraded"
        );
        assert_eq!(
            observed_state("up", "local", Some("closed"), &quiet).0,
            "up"
        );
        let (s, why) = observed_state("up", "local", None, &recent(10, 3, 3));
        assert_eq!(s, "down");
        assert!(why.unwrap().contains("region_unavailable"));
        assert_eq!(
            observed_state("up", "local", None, &recent(10, 6, 0)).0,
            "down"
        );
        assert_eq!(
            observed_state("up", "local", None, &recent(10, 1, 1)).0,
            "degraded"
        );
        assert_eq!(
            observed_state("up", "local", None, &recent(100, 10, 0)).0,
            "degraded"
        );
        assert_eq!(
            observed_state("up", "local", None, &recent(100, 1, 0)).0,
            "up"
        );
    }

    #[test]
    fn circuit_is_read_when_reported() {
        assert_eq!(
            circuit_of(
                &serde_json::json!({"protection": {"circuit": "half_open", "recent_calls": 3}})
            )
            .as_deref(),
            Some("half_open")
        );
        assert_eq!(
            circuit_of(&serde_json::json!({"circuit": "open"})),
            Some("open".into())
        );
        assert_eq!(
            circuit_of(&serde_json::json!({"circuit": {"state": "half_open"}})),
            Some("half_open".into())
        );
        assert_eq!(
            circuit_of(&serde_json::json!({"circuit_state": "closed"})),
            Some("closed".into())
        );
        assert_eq!(circuit_of(&serde_json::json!({"state": "up"})), None);
    }

    #[test]
    fn page_has_no_external_assets() {
        for needle in ["http://", "https://", "src=\"", "href=\"http", "@import"] {
            assert!(!PAGE.contains(needle), "status page references {needle}");
        }
        assert!(PAGE.contains("status.json"));
    }
}
