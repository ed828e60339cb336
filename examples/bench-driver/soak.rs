//! The endurance load of `scripts/soak.sh` (issue 16, item 3): the `soak` and `soak-max`
//! modes of `bench-driver`.
//!
//! - `soak-max GWS SIM_BASE_PORT CONC SECONDS [SUBJECTS_FILE]`: warms the hot subjects, then
//!   cached lookups in a closed loop (CONC requests in flight per gateway) for SECONDS; prints
//!   the answered rate — the maximum cached-lookup rate the soak runs at half of.
//! - `soak GWS SIM_BASE_PORT RATE SECONDS [SUBJECTS_FILE]`: warms the hot subjects, then an
//!   open-loop mixed load of RATE requests per second for SECONDS, each class on its own fixed
//!   schedule, every class spread round-robin over the gateways. Latency is measured from
//!   each request's scheduled time (no coordinated omission).
//!   Each client keeps at most [`POOL_PER_GATEWAY`] requests in flight and as many idle
//!   connections per instance, closing idle ones after [`CLIENT_IDLE_S`], as a platform's
//!   pool would; beyond that, requests wait in the driver.
//!
//! GWS is a comma-separated list of gateway URLs; SIM_BASE_PORT the port of the first
//! simulator of `hcgw simulate --base-port` (the regions follow in the spec's order). Every
//! request goes over mTLS with the dev client certificates of `$BENCH_PKI` (lookups and
//! batches as `platform-shanghai`, verifies as `checkpoint-shanghai`).
//!
//! Every answer is classified as expected or unexpected against what its class must get
//! (status, problem code, and the colour the simulator intends for the subject). For each
//! gateway the driver also predicts how many audit records its answers must have produced
//! (docs/audit.md: one per lookup, batch item and verify that passed validation, whatever
//! the outcome; none for a request refused by validation) and collects the receipts
//! (`audit.seq`) the answers carry, so the script can compare both with the trail exactly.
//! SUBJECTS_FILE, when given, receives every QR token and identity number sent (synthetic
//! data), for the script's check that none of them reaches a log. Output: one JSON object.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Port offsets of the simulators (`RegionId::ALL`'s order).
const SUZHOU: u16 = 0;
const XUZHOU: u16 = 3;
const HANGZHOU: u16 = 4;
const HUZHOU: u16 = 5;

/// Hot (cached) subjects per region of the hot set.
const HOT_PER_REGION: usize = 32;
/// Items of one batch that are valid (each audited) — plus one item with an unknown region.
const BATCH_VALID: usize = 9;
/// Fresh (uncached) lookups per second at most: the region's published rate (1,000/s for
/// Hangzhou) is shared by both gateways and must never be the limit.
const UNCACHED_MAX_PER_S: f64 = 100.0;
/// Longest a cached status lives (green, 60 s): a fresh subject is asked again only after
/// twice that.
const MAX_TTL_S: f64 = 60.0;
/// Requests in flight at most before the driver counts itself overloaded.
const MAX_IN_FLIGHT: u64 = 20_000;
/// Requests each client has in flight to one instance at most, and idle connections it keeps
/// per instance at most: together (with connections still being opened) well below the
/// gateway's `max_connections_per_client` (1,024), as a platform's pool would be. Requests
/// beyond it wait in the driver, their wait counted in their latency.
const POOL_PER_GATEWAY: usize = 256;
/// A client drops a connection idle this long, before the gateway would (HTTP/1 keep-alive
/// ends at its `header_read_timeout_ms`, 10 s), so that no request races a closing one.
const CLIENT_IDLE_S: u64 = 5;

/// A simulator subject, as `/_sim/subjects` lists it.
struct Subj {
    token: String,
    qr: String,
    id_type: String,
    id_number: String,
    name: String,
    fate: String,
    qr_color: String,
    qr_error: Option<String>,
    id_color: String,
    id_error: Option<String>,
}

impl Subj {
    fn of(v: &Value) -> Subj {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let err = |k: &str| v[k]["error"].as_str().map(str::to_owned);
        Subj {
            token: s("token"),
            qr: s("qr"),
            id_type: s("id_type"),
            id_number: s("id_number"),
            name: s("name"),
            fate: s("fate"),
            qr_color: v["intended_by_qr"]["color"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            qr_error: err("intended_by_qr"),
            id_color: v["intended_by_identity"]["color"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            id_error: err("intended_by_identity"),
        }
    }

    /// Active, and both ways of asking end in a status.
    fn clean(&self) -> bool {
        self.fate == "active" && self.qr_error.is_none() && self.id_error.is_none()
    }
}

async fn population(port: u16) -> Vec<Subj> {
    let mut all = Vec::new();
    loop {
        let url = format!(
            "http://127.0.0.1:{port}/_sim/subjects?offset={}&limit=10000",
            all.len()
        );
        let v: Value = reqwest::get(url)
            .await
            .expect("simulator")
            .json()
            .await
            .expect("subjects");
        let page = v.as_array().expect("a list");
        if page.is_empty() {
            return all;
        }
        all.extend(page.iter().map(Subj::of));
    }
}

fn lookup_qr(region: &str, s: &Subj) -> String {
    json!({ "region": region, "subject": { "qr": s.qr } }).to_string()
}

fn lookup_identity(region: &str, id_type: &str, id_number: &str, name: &str) -> String {
    json!({ "region": region, "subject": { "id_type": id_type, "id_number": id_number, "name": name } }).to_string()
}

/// What an answer of a class must be.
#[derive(Clone)]
enum Expect {
    /// 200 with this colour; one audit record.
    Status { color: String },
    /// 200 with `recognition.decision`, colour; one audit record (a verify).
    Decision { decision: String, color: String },
    /// A batch: 200, the first `valid` items with these colours (one record each), the
    /// last item refused with `unknown_region` (no record).
    Batch { colors: Vec<String> },
    /// A problem with this status and code; `audited`: whether it has a record.
    Problem {
        status: u16,
        code: &'static str,
        audited: bool,
    },
}

/// One request of a class, prepared before the run.
#[derive(Clone)]
struct Prepared {
    verify: bool,
    path: &'static str,
    /// Prepared once and kept for the whole run (leaked on purpose: no copy per request).
    body: &'static str,
    expect: Expect,
}

/// A traffic class: its name, its share of the rate (or its fixed rate), what it sends.
struct Class {
    name: &'static str,
    rate: f64,
    requests: Vec<Prepared>,
    /// How its answers are audited (for the report).
    audit_rule: &'static str,
}

/// Latency histogram: buckets 1% wide from 1 µs.
struct Hist {
    buckets: Vec<u64>,
    n: u64,
    max_us: f64,
}

const HIST_BUCKETS: usize = 2400;

impl Hist {
    fn new() -> Hist {
        Hist {
            buckets: vec![0; HIST_BUCKETS],
            n: 0,
            max_us: 0.0,
        }
    }
    fn add(&mut self, d: Duration) {
        let us = (d.as_secs_f64() * 1e6).max(1.0);
        let i = ((us.ln() / 1.01f64.ln()) as usize).min(HIST_BUCKETS - 1);
        self.buckets[i] += 1;
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }
    /// The `p` quantile in ms (the middle of its bucket), NaN when empty.
    fn quantile_ms(&self, p: f64) -> f64 {
        if self.n == 0 {
            return f64::NAN;
        }
        let rank = ((self.n as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return 1.01f64.powf(i as f64 + 0.5) / 1000.0;
            }
        }
        self.max_us / 1000.0
    }
}

/// What one class (or the warm-up) got.
struct Tally {
    sent: u64,
    answered: u64,
    failed: u64,
    unexpected: u64,
    by_status: BTreeMap<String, u64>,
    cache_hits: u64,
    /// Audit records its answers must have produced, per gateway.
    predicted_audit: Vec<u64>,
    /// Receipts its answers carried, per gateway.
    receipts: Vec<u64>,
    /// Answers, per gateway.
    answered_by: Vec<u64>,
    hist: Hist,
}

impl Tally {
    fn new(gateways: usize) -> Tally {
        Tally {
            sent: 0,
            answered: 0,
            failed: 0,
            unexpected: 0,
            by_status: BTreeMap::new(),
            cache_hits: 0,
            predicted_audit: vec![0; gateways],
            receipts: vec![0; gateways],
            answered_by: vec![0; gateways],
            hist: Hist::new(),
        }
    }
}

/// Everything the run collects.
struct Shared {
    tallies: Mutex<Vec<Tally>>,
    /// Receipt seqs seen, per gateway (a bit per seq): each record must be one answer's.
    seqs: Mutex<Vec<Vec<u64>>>,
    duplicate_receipts: AtomicU64,
    samples: Mutex<Vec<String>>,
    in_flight: AtomicU64,
}

impl Shared {
    fn note_seq(&self, gw: usize, seq: u64) {
        let mut seqs = self.seqs.lock().unwrap();
        let bits = &mut seqs[gw];
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if bits.len() <= w {
            bits.resize(w + 1024, 0);
        }
        if bits[w] & (1 << b) != 0 {
            self.duplicate_receipts.fetch_add(1, Ordering::Relaxed);
        }
        bits[w] |= 1 << b;
    }
    fn sample(&self, what: String) {
        let mut s = self.samples.lock().unwrap();
        if s.len() < 20 {
            s.push(what);
        }
    }
}

/// The verdict on one answer.
struct Judged {
    expected: bool,
    key: String,
    receipts: Vec<u64>,
    predicted_audit: u64,
    cache_hit: bool,
    why: String,
}

fn receipt(v: &Value) -> Option<u64> {
    v["audit"]["seq"].as_u64()
}

/// Codes of errors that come from asking (a region, the cache): the lookup passed
/// validation and was audited (docs/audit.md). Used for answers no class expects.
const AUDITED_ERRORS: [&str; 7] = [
    "subject_not_found",
    "token_expired",
    "upstream_rate_limited",
    "region_unavailable",
    "region_timeout",
    "upstream_invalid_response",
    "federation_loop",
];

fn judge(expect: &Expect, status: u16, body: &[u8]) -> Judged {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["code"].as_str().unwrap_or_default().to_owned();
    let key = if status == 200 {
        "200".to_owned()
    } else {
        format!("{status} {code}")
    };
    let mut receipts: Vec<u64> = receipt(&v).into_iter().collect();
    let cache_hit = v["cache"]["hit"] == true;
    // An answer no class expects is audited by the general rule: 200, or an error from
    // asking (docs/audit.md).
    let by_rule = u64::from(status == 200 || AUDITED_ERRORS.contains(&code.as_str()));
    let (expected, predicted_audit, why) = match expect {
        Expect::Status { color } => {
            let got = v["status"]["color"].as_str().unwrap_or_default();
            (
                status == 200 && got == color,
                by_rule,
                format!("want 200 {color}, got {key} {got}"),
            )
        }
        Expect::Decision { decision, color } => {
            let got_d = v["recognition"]["decision"].as_str().unwrap_or_default();
            let got_c = v["status"]["color"].as_str().unwrap_or_default();
            (
                status == 200 && (decision.is_empty() || got_d == decision) && got_c == color,
                by_rule,
                format!("want 200 {decision} {color}, got {key} {got_d} {got_c}"),
            )
        }
        Expect::Batch { colors } => {
            let results = v["results"].as_array().cloned().unwrap_or_default();
            // An item's receipt: in its answer, or in its problem for an item that failed
            // after it was audited (`{"error": {…, "audit": {…}}}`).
            receipts = results
                .iter()
                .filter_map(|r| receipt(r).or_else(|| receipt(&r["error"])))
                .collect();
            let items_ok = results.len() == colors.len() + 1
                && colors
                    .iter()
                    .zip(&results)
                    .all(|(c, r)| r["status"]["color"] == c.as_str() && receipt(r).is_some())
                && results.last().is_some_and(|r| {
                    r["error"]["code"] == "unknown_region" && r["error"]["audit"].is_null()
                });
            let audited = results
                .iter()
                .filter(|r| {
                    r.get("status").is_some()
                        || r["error"]["code"]
                            .as_str()
                            .is_some_and(|c| AUDITED_ERRORS.contains(&c))
                })
                .count() as u64;
            (
                status == 200 && items_ok,
                if status == 200 { audited } else { 0 },
                format!(
                    "want 200 with {} statuses and one unknown_region, got {key} ({} items)",
                    colors.len(),
                    results.len()
                ),
            )
        }
        Expect::Problem {
            status: want,
            code: want_code,
            audited,
        } => {
            let ok = status == *want && code == *want_code && receipt(&v).is_some() == *audited;
            let predicted = if ok { u64::from(*audited) } else { by_rule };
            (
                ok,
                predicted,
                format!(
                    "want {want} {want_code} (audited: {audited}), got {key} (receipt: {})",
                    receipt(&v).is_some()
                ),
            )
        }
    };
    Judged {
        expected,
        key,
        receipts,
        predicted_audit,
        cache_hit,
        why,
    }
}

/// The two clients: platform (lookups, batches) and checkpoint (verifies).
#[derive(Clone)]
struct Clients {
    platform: reqwest::Client,
    checkpoint: reqwest::Client,
}

/// What every request needs: the tallies, the clients, the gateways.
struct Ctx {
    shared: Shared,
    clients: Clients,
    gws: Vec<String>,
    /// [`POOL_PER_GATEWAY`] permits per gateway and client (platform, checkpoint).
    pools: Vec<tokio::sync::Semaphore>,
}

/// Sends one prepared request to gateway `gw` and tallies its answer under class `class`.
async fn fire(
    ctx: Arc<Ctx>,
    gw: usize,
    class: usize,
    name: &'static str,
    req: Prepared,
    scheduled: Instant,
) {
    let shared = &ctx.shared;
    let http = if req.verify {
        &ctx.clients.checkpoint
    } else {
        &ctx.clients.platform
    };
    let pool = &ctx.pools[gw * 2 + usize::from(req.verify)];
    let answer = async {
        let _permit = pool.acquire().await.expect("the pool is never closed");
        let r = http
            .post(format!("{}{}", ctx.gws[gw], req.path))
            .header("content-type", "application/json")
            .body(req.body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok::<_, reqwest::Error>((status, r.bytes().await?))
    }
    .await;
    let took = scheduled.elapsed();
    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    let mut tallies = shared.tallies.lock().unwrap();
    let t = &mut tallies[class];
    match answer {
        Err(e) => {
            t.failed += 1;
            t.unexpected += 1;
            drop(tallies);
            // reqwest's error names the URL (no subject in it); its causes say what failed.
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                why.push_str(&format!(": {c}"));
                cause = c.source();
            }
            shared.sample(format!("{name}: no answer: {why}"));
        }
        Ok((status, body)) => {
            let j = judge(&req.expect, status, &body);
            t.answered += 1;
            t.answered_by[gw] += 1;
            t.hist.add(took);
            *t.by_status.entry(j.key).or_default() += 1;
            t.cache_hits += u64::from(j.cache_hit);
            t.predicted_audit[gw] += j.predicted_audit;
            t.receipts[gw] += j.receipts.len() as u64;
            if !j.expected {
                t.unexpected += 1;
            }
            drop(tallies);
            for seq in j.receipts {
                shared.note_seq(gw, seq);
            }
            if !j.expected {
                shared.sample(format!("{name} via gateway {gw}: {}", j.why));
            }
        }
    }
}

/// The hot set, the fresh subjects and the error cases, from the simulators.
struct Fixtures {
    /// (region, subject) of the hot set.
    hot: Vec<(&'static str, Subj)>,
    /// Hangzhou subjects never in the hot set: fresh lookups.
    fresh: Vec<Subj>,
    /// Hangzhou subjects the region does not know.
    not_found: Vec<Subj>,
    /// Huzhou subjects (the region is taken down).
    down: Vec<Subj>,
}

async fn fixtures(sim_base: u16) -> Fixtures {
    let mut hot = Vec::new();
    let mut fresh = Vec::new();
    let mut not_found = Vec::new();
    for (region, off) in [
        ("xuzhou", XUZHOU),
        ("suzhou", SUZHOU),
        ("hangzhou", HANGZHOU),
    ] {
        let mut n = 0;
        for s in population(sim_base + off).await {
            if n < HOT_PER_REGION && s.clean() {
                hot.push((region, s));
                n += 1;
            } else if region == "hangzhou" && n >= HOT_PER_REGION {
                if s.clean() {
                    fresh.push(s);
                } else if s.fate == "not_found" && not_found.len() < 16 {
                    not_found.push(s);
                }
            }
        }
    }
    let down: Vec<Subj> = population(sim_base + HUZHOU)
        .await
        .into_iter()
        .filter(Subj::clean)
        .take(16)
        .collect();
    assert!(
        hot.len() == 3 * HOT_PER_REGION
            && !fresh.is_empty()
            && !not_found.is_empty()
            && !down.is_empty(),
        "the simulators' populations are too small (hot {}, fresh {}, not found {}, down {})",
        hot.len(),
        fresh.len(),
        not_found.len(),
        down.len()
    );
    Fixtures {
        hot,
        fresh,
        not_found,
        down,
    }
}

/// A resident id with a wrong check character (refused by validation).
fn bad_check_digit(id: &str) -> String {
    let mut s: Vec<char> = id.chars().collect();
    if let Some(last) = s.last_mut() {
        *last = if *last == '0' { '1' } else { '0' };
    }
    s.into_iter().collect()
}

fn prepared(verify: bool, path: &'static str, body: String, expect: Expect) -> Prepared {
    Prepared {
        verify,
        path,
        body: Box::leak(body.into_boxed_str()),
        expect,
    }
}

/// The classes at total rate `rate`.
fn classes(f: &Fixtures, rate: f64) -> Vec<Class> {
    let hot_lookups: Vec<Prepared> = f
        .hot
        .iter()
        .map(|(r, s)| {
            prepared(
                false,
                "/v1/lookup",
                lookup_qr(r, s),
                Expect::Status {
                    color: s.qr_color.clone(),
                },
            )
        })
        .collect();
    let verifies: Vec<Prepared> = f
        .hot
        .iter()
        .map(|(_, s)| {
            prepared(
                true,
                "/v1/verify",
                json!({ "qr": s.qr, "checkpoint": "soak-gate-1" }).to_string(),
                Expect::Decision {
                    // Whatever the agreements decide, the colour must be the status's; the
                    // decision is checked where it is fixed (a region down: manual_check).
                    decision: String::new(),
                    color: s.qr_color.clone(),
                },
            )
        })
        .collect();
    // Fresh subjects: each asked by QR and by identity (two cache keys), in turn.
    let fresh: Vec<Prepared> = f
        .fresh
        .iter()
        .flat_map(|s| {
            [
                prepared(
                    false,
                    "/v1/lookup",
                    lookup_qr("hangzhou", s),
                    Expect::Status {
                        color: s.qr_color.clone(),
                    },
                ),
                prepared(
                    false,
                    "/v1/lookup",
                    lookup_identity("hangzhou", &s.id_type, &s.id_number, &s.name),
                    Expect::Status {
                        color: s.id_color.clone(),
                    },
                ),
            ]
        })
        .collect();
    let batches: Vec<Prepared> = (0..f.hot.len())
        .map(|i| {
            let picks: Vec<&(&str, Subj)> = (0..BATCH_VALID)
                .map(|j| &f.hot[(i + j * 7) % f.hot.len()])
                .collect();
            let mut items: Vec<Value> = picks
                .iter()
                .map(|(r, s)| json!({ "region": r, "subject": { "qr": s.qr } }))
                .collect();
            items.push(json!({ "region": "atlantis", "subject": { "qr": picks[0].1.qr } }));
            prepared(
                false,
                "/v1/lookup/batch",
                json!({ "items": items }).to_string(),
                Expect::Batch {
                    colors: picks.iter().map(|(_, s)| s.qr_color.clone()).collect(),
                },
            )
        })
        .collect();
    let problem = |status, code, audited| Expect::Problem {
        status,
        code,
        audited,
    };
    let not_found: Vec<Prepared> = f
        .not_found
        .iter()
        .map(|s| {
            prepared(
                false,
                "/v1/lookup",
                lookup_qr("hangzhou", s),
                problem(404, "subject_not_found", true),
            )
        })
        .collect();
    let invalid: Vec<Prepared> = f
        .hot
        .iter()
        .filter(|(_, s)| s.id_type == "resident_id")
        .map(|(r, s)| {
            prepared(
                false,
                "/v1/lookup",
                lookup_identity(r, &s.id_type, &bad_check_digit(&s.id_number), &s.name),
                problem(400, "invalid_request", false),
            )
        })
        .collect();
    let unknown_region: Vec<Prepared> = f
        .hot
        .iter()
        .map(|(_, s)| {
            prepared(
                false,
                "/v1/lookup",
                lookup_qr("atlantis", s),
                problem(400, "unknown_region", false),
            )
        })
        .collect();
    let bad_qr = vec![prepared(
        true,
        "/v1/verify",
        json!({ "qr": "NOT-A-HEALTH-CODE-0000", "checkpoint": "soak-gate-1" }).to_string(),
        problem(422, "unrecognized_qr", false),
    )];
    let bad_json = vec![prepared(
        false,
        "/v1/lookup",
        r#"{"region":"xuzhou","subject":"#.to_owned(),
        problem(400, "invalid_request", false),
    )];
    let down_lookups: Vec<Prepared> = f
        .down
        .iter()
        .map(|s| {
            prepared(
                false,
                "/v1/lookup",
                lookup_qr("huzhou", s),
                problem(503, "region_unavailable", true),
            )
        })
        .collect();
    let down_verifies: Vec<Prepared> = f
        .down
        .iter()
        .map(|s| {
            prepared(
                true,
                "/v1/verify",
                json!({ "qr": s.qr, "checkpoint": "soak-gate-1" }).to_string(),
                Expect::Decision {
                    decision: "manual_check".into(),
                    color: "unknown".into(),
                },
            )
        })
        .collect();
    // Fresh lookups: 2% of the rate, at most UNCACHED_MAX_PER_S, and slow enough that a
    // subject comes round again only after twice the longest TTL.
    let fresh_rate = (0.02 * rate)
        .min(UNCACHED_MAX_PER_S)
        .min(fresh.len() as f64 / (2.0 * MAX_TTL_S));
    let mut out = vec![
        Class {
            name: "cached",
            rate: 0.0,
            requests: hot_lookups,
            audit_rule: "1 per answer",
        },
        Class {
            name: "uncached",
            rate: fresh_rate,
            requests: fresh,
            audit_rule: "1 per answer",
        },
        Class {
            name: "batch",
            rate: 0.01 * rate,
            requests: batches,
            audit_rule: "9 per answer (the 10th item is refused by validation)",
        },
        Class {
            name: "verify",
            rate: 0.10 * rate,
            requests: verifies,
            audit_rule: "1 per answer",
        },
        Class {
            name: "err_not_found",
            rate: 0.02 * rate,
            requests: not_found,
            audit_rule: "1 per answer (the region answered)",
        },
        Class {
            name: "err_invalid_id",
            rate: 0.01 * rate,
            requests: invalid,
            audit_rule: "none (validation)",
        },
        Class {
            name: "err_unknown_region",
            rate: 0.01 * rate,
            requests: unknown_region,
            audit_rule: "none (validation)",
        },
        Class {
            name: "err_bad_qr",
            rate: 0.01 * rate,
            requests: bad_qr,
            audit_rule: "none (validation)",
        },
        Class {
            name: "err_bad_json",
            rate: 0.01 * rate,
            requests: bad_json,
            audit_rule: "none (validation)",
        },
        Class {
            name: "err_region_down",
            rate: 0.01 * rate,
            requests: down_lookups,
            audit_rule: "1 per answer (the region was asked, or its breaker)",
        },
        Class {
            name: "verify_region_down",
            rate: 0.01 * rate,
            requests: down_verifies,
            audit_rule: "1 per answer (manual_check)",
        },
    ];
    let others: f64 = out.iter().map(|c| c.rate).sum();
    out[0].rate = (rate - others).max(0.0);
    out
}

/// Writes every QR token and identity number the run may send.
fn write_subjects(path: &str, f: &Fixtures) {
    let mut lines = Vec::new();
    let all = f
        .hot
        .iter()
        .map(|(_, s)| s)
        .chain(&f.fresh)
        .chain(&f.not_found)
        .chain(&f.down);
    for s in all {
        lines.push(s.token.clone());
        lines.push(s.id_number.clone());
        if s.id_type == "resident_id" {
            lines.push(bad_check_digit(&s.id_number));
        }
    }
    lines.retain(|l| l.len() >= 8);
    std::fs::write(path, lines.join("\n") + "\n").expect("subjects file");
}

/// Asks every hot subject once through each gateway (counted: its records are in the trail).
async fn warm(ctx: &Arc<Ctx>, hot: &[Prepared], warm: usize) {
    for gw in 0..ctx.gws.len() {
        for req in hot {
            ctx.shared.in_flight.fetch_add(1, Ordering::Relaxed);
            ctx.shared.tallies.lock().unwrap()[warm].sent += 1;
            fire(ctx.clone(), gw, warm, "warm", req.clone(), Instant::now()).await;
        }
    }
}

/// The tallies as JSON: per class, and per gateway the audit records predicted and the
/// receipts seen.
fn report(ctx: &Ctx, names: &[&str], rates: &[f64], rules: &[&str]) -> Value {
    let shared = &ctx.shared;
    let tallies = shared.tallies.lock().unwrap();
    let seqs = shared.seqs.lock().unwrap();
    let classes: Vec<Value> = tallies
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "name": names[i],
                "rate": rates[i],
                "audit_rule": rules[i],
                "sent": t.sent,
                "answered": t.answered,
                "failed": t.failed,
                "unexpected": t.unexpected,
                "by_status": t.by_status,
                "cache_hits": t.cache_hits,
                "predicted_audit": t.predicted_audit,
                "receipts": t.receipts,
                "p50_ms": t.hist.quantile_ms(0.5),
                "p99_ms": t.hist.quantile_ms(0.99),
                "max_ms": t.hist.max_us / 1000.0,
            })
        })
        .collect();
    let per_gw: Vec<Value> = (0..ctx.gws.len())
        .map(|g| {
            let bits = &seqs[g];
            let distinct: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
            let max = bits
                .iter()
                .enumerate()
                .rev()
                .find(|(_, w)| **w != 0)
                .map_or(0, |(i, w)| {
                    i as u64 * 64 + 63 - u64::from(w.leading_zeros())
                });
            json!({
                "url": ctx.gws[g],
                "answered": tallies.iter().map(|t| t.answered_by[g]).sum::<u64>(),
                "predicted_audit": tallies.iter().map(|t| t.predicted_audit[g]).sum::<u64>(),
                "receipts": tallies.iter().map(|t| t.receipts[g]).sum::<u64>(),
                "distinct_receipt_seqs": distinct,
                "max_receipt_seq": max,
            })
        })
        .collect();
    json!({
        "classes": classes,
        "gateways": per_gw,
        "duplicate_receipts": shared.duplicate_receipts.load(Ordering::Relaxed),
        "unexpected_samples": *shared.samples.lock().unwrap(),
    })
}

/// Closed loop: `conc` cached lookups in flight per gateway until `deadline`.
async fn closed_loop(ctx: &Arc<Ctx>, hot: &[Prepared], conc: usize, deadline: Instant) {
    let reqs = Arc::new(hot.to_vec());
    let tasks: Vec<_> = (0..ctx.gws.len() * conc)
        .map(|w| {
            let (ctx, reqs) = (ctx.clone(), reqs.clone());
            tokio::spawn(async move {
                let gw = w % ctx.gws.len();
                let mut k = w;
                while Instant::now() < deadline {
                    ctx.shared.in_flight.fetch_add(1, Ordering::Relaxed);
                    ctx.shared.tallies.lock().unwrap()[0].sent += 1;
                    let req = reqs[k % reqs.len()].clone();
                    fire(ctx.clone(), gw, 0, "cached", req, Instant::now()).await;
                    k += 7;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("worker");
    }
}

/// Open loop: each class on its own fixed schedule until `deadline`; returns the requests
/// not sent because too many were in flight (the driver overloaded).
async fn open_loop(ctx: &Arc<Ctx>, cls: &[Class], start: Instant, deadline: Instant) -> u64 {
    let shared = &ctx.shared;
    let length = deadline.duration_since(start).as_secs_f64();
    let mut skipped = 0u64;
    let mut sent = vec![0u64; cls.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_progress = start + Duration::from_secs(10);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let el = now.min(deadline).duration_since(start).as_secs_f64();
        for (c, class) in cls.iter().enumerate() {
            // Request k is due at k / rate (the first at once), the last before the deadline.
            let due = ((class.rate * el).floor() + 1.0).min((class.rate * length).ceil()) as u64;
            while sent[c] < due {
                let k = sent[c];
                sent[c] += 1;
                if shared.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                    skipped += 1;
                    continue;
                }
                let scheduled = start + Duration::from_secs_f64(k as f64 / class.rate);
                let req = class.requests[(k as usize) % class.requests.len()].clone();
                let gw = (k as usize) % ctx.gws.len();
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                shared.tallies.lock().unwrap()[c].sent += 1;
                tokio::spawn(fire(ctx.clone(), gw, c, class.name, req, scheduled));
            }
        }
        if now >= next_progress {
            next_progress += Duration::from_secs(10);
            let t = shared.tallies.lock().unwrap();
            eprintln!(
                "soak: {:>5.0} s: sent {} answered {} unexpected {} in flight {}",
                el,
                t.iter().map(|t| t.sent).sum::<u64>(),
                t.iter().map(|t| t.answered).sum::<u64>(),
                t.iter().map(|t| t.unexpected).sum::<u64>(),
                shared.in_flight.load(Ordering::Relaxed)
            );
        }
        if now >= deadline {
            return skipped;
        }
    }
}

/// An mTLS client presenting `$pki/clients/<name>`, with a bounded pool of connections that
/// it closes before the gateway would (see [`POOL_PER_GATEWAY`], [`CLIENT_IDLE_S`]).
fn pooled_client(pki: &str, name: &str) -> reqwest::Client {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    hcgw_adapters::upstream::install_crypto_provider();
    let read = |p: &str| std::fs::read(format!("{pki}/{p}")).expect("PKI file");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read("ca-bundle.pem")) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&format!("clients/{name}/cert.pem")))
            .collect::<Result<_, _>>()
            .expect("client certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(&read(&format!("clients/{name}/key.pem")))
        .expect("client key PEM");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("client identity");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(POOL_PER_GATEWAY)
        .pool_idle_timeout(Duration::from_secs(CLIENT_IDLE_S))
        .build()
        .expect("client")
}

/// `soak` and `soak-max` (arguments as in the module's documentation).
pub async fn run(mode: &str, args: &[String], pki: &str) {
    let gws: Vec<String> = args[2].split(',').map(str::to_owned).collect();
    let sim_base: u16 = args[3].parse().expect("SIM_BASE_PORT");
    let amount: f64 = args[4].parse().expect("RATE or CONC");
    let seconds: f64 = args[5].parse().expect("SECONDS");
    let clients = Clients {
        platform: pooled_client(pki, "platform-shanghai"),
        checkpoint: pooled_client(pki, "checkpoint-shanghai"),
    };
    let f = fixtures(sim_base).await;
    if let Some(path) = args.get(6) {
        write_subjects(path, &f);
    }
    let rate = if mode == "soak" { amount } else { 0.0 };
    let mut cls = classes(&f, rate);
    if mode == "soak-max" {
        cls.truncate(1);
    }
    let mut names: Vec<&str> = cls.iter().map(|c| c.name).collect();
    let mut rates: Vec<f64> = cls.iter().map(|c| c.rate).collect();
    let mut rules: Vec<&str> = cls.iter().map(|c| c.audit_rule).collect();
    names.push("warm");
    rates.push(0.0);
    rules.push("1 per answer");
    let warm_class = cls.len();
    let ctx = Arc::new(Ctx {
        shared: Shared {
            tallies: Mutex::new((0..=cls.len()).map(|_| Tally::new(gws.len())).collect()),
            seqs: Mutex::new(vec![Vec::new(); gws.len()]),
            duplicate_receipts: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
        },
        clients,
        pools: (0..gws.len() * 2)
            .map(|_| tokio::sync::Semaphore::new(POOL_PER_GATEWAY))
            .collect(),
        gws,
    });
    if mode == "soak" {
        // The error-injected region: taken down for the whole run (its breaker opens).
        let r = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/_sim/control",
                sim_base + HUZHOU
            ))
            .json(&json!({ "down": true }))
            .send()
            .await
            .expect("simulator control");
        assert!(
            r.status().is_success(),
            "taking huzhou down: {}",
            r.status()
        );
    }
    warm(&ctx, &cls[0].requests, warm_class).await;

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let skipped = if mode == "soak-max" {
        closed_loop(&ctx, &cls[0].requests, amount as usize, deadline).await;
        0
    } else {
        let skipped = open_loop(&ctx, &cls, start, deadline).await;
        // Every request sent gets its answer (or its error) before the tallies are final.
        let wait_until = Instant::now() + Duration::from_secs(90);
        while ctx.shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        skipped
    };
    let elapsed = start.elapsed().as_secs_f64();
    let mut out = report(&ctx, &names, &rates, &rules);
    let t = ctx.shared.tallies.lock().unwrap();
    let sent: u64 = t.iter().take(cls.len()).map(|t| t.sent).sum();
    let answered: u64 = t.iter().take(cls.len()).map(|t| t.answered).sum();
    out["mode"] = json!(mode);
    out["duration_s"] = json!(seconds);
    out["elapsed_s"] = json!(elapsed);
    out["target_rate"] = json!(rate);
    out["sent"] = json!(sent);
    out["answered"] = json!(answered);
    // Sent over the schedule's length: what the open loop achieved; answered over the time
    // taken: the closed loop's rate.
    out["achieved_rate"] = json!(sent as f64 / seconds);
    out["answered_rate"] = json!(answered as f64 / elapsed);
    out["skipped_overload"] = json!(skipped);
    out["still_in_flight"] = json!(ctx.shared.in_flight.load(Ordering::Relaxed));
    if mode == "soak-max" {
        out["concurrency_per_gateway"] = json!(amount);
    }
    println!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_item_that_failed_after_its_record_counts_its_receipt() {
        let expect = Expect::Batch {
            colors: vec!["green".into(), "green".into()],
        };
        let body = serde_json::json!({ "results": [
            { "status": { "color": "green" }, "audit": { "seq": 7 } },
            { "error": { "code": "upstream_rate_limited", "audit": { "seq": 8 } } },
            { "error": { "code": "unknown_region" } },
        ]});
        let j = judge(&expect, 200, body.to_string().as_bytes());
        assert_eq!(j.receipts, vec![7, 8]);
        assert_eq!(j.predicted_audit, 2);
        // Still unexpected: the second item was meant to be green.
        assert!(!j.expected);
    }
}
