//! Load driver for the measurements oha cannot make (`scripts/bench.sh` runs it):
//!
//! - `uncached GW SIM N`: N sequential lookups of distinct subjects through the gateway
//!   (`POST /v1/lookup`, Xuzhou QR) and the same N questions asked of the simulator directly;
//!   prints p50/p99 of both and the added latency;
//! - `coalesce GW SIM N`: N concurrent identical cold lookups; prints the upstream calls the
//!   simulator counted;
//! - `batch GW SIM N RATE`: one batch of N distinct subjects; prints the wall time and the
//!   bound N / RATE set by the region's rate limit;
//! - `steady PLAN.json` (`scripts/faults.sh`): an open-loop load at a fixed rate per
//!   (gateway, region) series, each request a lookup of a subject not asked before (so it
//!   reaches the region). Prints one JSON line per time window and series (by send time,
//!   once every request of the window has ended): `n`, `ok`, `err`, `err_rate`, `p50_ms`,
//!   `p99_ms`, `codes`, `unaudited_ok` (2xx answers without an `audit` receipt); writes
//!   every request to the plan's `samples` file (send time, latency, status, code, receipt)
//!   for the script's own before/during/after figures. See [`Plan`].
//! - `spread-fill GW SIM FROM N` (`scripts/scale.sh`): puts subjects FROM..N of a synthetic
//!   Xuzhou population into the running gateway's cache. The region's published rate (100/s)
//!   would take hours for a million, so the entries are written to the shared Redis tier
//!   (`$BENCH_REDIS`, sealed with the dev PKI's `redis_entry_key` through the gateway's own
//!   writer, `RedisTier::put`) as another replica would have, then each subject is looked up
//!   once through the gateway, which takes it from Redis into its own cache. Prints both
//!   times; every answer must be a 200 cache hit and the region must not be asked;
//! - `spread-bodies N`: the lookup bodies of subjects 0..N, one a line (for `oha -Z`, which
//!   sends a line drawn at random with each request).
//! - `soak …` and `soak-max …`: the endurance load of `scripts/soak.sh` (see `soak.rs`).
//!
//! Client certificate: `$BENCH_PKI/clients/platform-shanghai`. Output: one JSON object
//! (`steady`: JSON lines).

#[path = "bench-driver/steady.rs"]
mod steady;

#[path = "bench-driver/soak.rs"]
mod soak;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn client(pki: &str) -> reqwest::Client {
    client_as(pki, "platform-shanghai")
}

/// An mTLS client presenting the dev client certificate `$pki/clients/<name>`.
fn client_as(pki: &str, name: &str) -> reqwest::Client {
    client_with_timeout(pki, name, Duration::from_secs(60))
}

/// The mTLS client of `$pki/clients/<name>`, each request bounded by `timeout`.
fn client_with_timeout(pki: &str, name: &str, timeout: Duration) -> reqwest::Client {
    hcgw_adapters::upstream::install_crypto_provider();
    let pem = |p: &str| std::fs::read(format!("{pki}/{p}")).expect("PKI file");
    let identity_cert = pem(&format!("clients/{name}/cert.pem"));
    let identity_key = String::from_utf8(pem(&format!("clients/{name}/key.pem"))).unwrap();
    let mut cfg = hcgw_adapters::upstream::UpstreamConfig::new("https://localhost", timeout);
    cfg.tls.ca_pem = Some(pem("ca-bundle.pem"));
    cfg.tls.client_cert_pem = Some(identity_cert);
    cfg.tls.client_key_pem = Some(hcgw_adapters::Secret::new(identity_key));
    cfg.max_idle_connections = 2048;
    hcgw_adapters::upstream::build_client(&cfg).expect("client")
}

async fn subjects(sim: &str, offset: usize, n: usize) -> Vec<Value> {
    let url = format!("{sim}/_sim/subjects?offset={offset}&limit={n}");
    let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["fate"] == "active")
        .cloned()
        .collect()
}

async fn sim_requests(sim: &str) -> u64 {
    let v: Value = reqwest::get(format!("{sim}/_sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"].as_u64().unwrap()
}

/// Subject `i` of the synthetic population of `spread-fill` and `spread-bodies`: a Xuzhou QR token
/// (32 lower-case hex characters), distinct for every `i`.
fn spread_qr(i: u64) -> String {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    hcgw_adapters::qr::qr_text(
        hcgw_adapters::RegionId::Xuzhou,
        &format!("{:016x}{i:016x}", z ^ (z >> 31)),
    )
}

fn spread_body(i: u64) -> String {
    json!({ "region": "xuzhou", "subject": { "qr": spread_qr(i) } }).to_string()
}

/// A green Xuzhou status with masked holder data, as the adapter would normalise it.
fn spread_status(i: u64) -> hcgw_adapters::HealthStatus {
    use hcgw_adapters::{HealthStatus, Holder, IdType, Level, RegionId, Source};
    let mut s = HealthStatus::new(
        RegionId::Xuzhou,
        Level::Clear,
        Source {
            code: "GREEN".into(),
            label: None,
        },
    );
    s.as_of = Some(chrono::Utc::now().fixed_offset());
    s.holder = Holder {
        name_masked: Some("郭*".into()),
        id_type: Some(IdType::ResidentId),
        id_masked: Some(format!("3203**********{:04}", i % 10_000)),
    };
    s
}

/// `spread-fill`: see the module documentation.
async fn spread_fill(http: &reqwest::Client, pki: &str, gw: &str, sim: &str, from: u64, n: u64) {
    use hcgw_adapters::{RegionId, SecretRef, Subject};
    let url = std::env::var("BENCH_REDIS").expect("BENCH_REDIS (redis://127.0.0.1:PORT)");
    let section = hcgw_core::config::RedisSection {
        enabled: true,
        url: Some(url.clone()),
        local_share: 1.0,
        entry_key: Some(SecretRef::File(
            format!("{pki}/secrets/redis_entry_key").into(),
        )),
    };
    let tier = hcgw_core::protect::redis_tier::RedisTier::start(&section).expect("Redis tier");
    let started = Instant::now();
    while tier.degraded() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Redis unreachable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hasher = hcgw_core::subject::SubjectHasher::new(
        SecretRef::File(format!("{pki}/secrets/subject_hash_key").into())
            .load()
            .expect("subject_hash_key"),
    );
    let key_of = |i: u64| {
        let qr = spread_qr(i);
        let token = qr.strip_prefix("XZJKB:").unwrap().to_string();
        hasher.cache_key(RegionId::Xuzhou, &Subject::QrToken(token))
    };
    let put = |i: u64| {
        let (tier, key) = (&tier, key_of(i));
        async move {
            let status = spread_status(i);
            tier.put(hcgw_core::protect::redis_tier::L2Put {
                key: &key,
                region: RegionId::Xuzhou,
                status: Some(&status),
                via_peer: None,
                peer_view: None,
                age: Duration::ZERO,
                ttl: Duration::from_secs(3600),
            })
            .await;
        }
    };
    // A write is best effort (dropped past the tier's 250 ms timeout): each is checked with
    // EXISTS and written again until all are there.
    let mut redis = redis::Client::open(url)
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis connection");
    let t = Instant::now();
    let mut todo: Vec<u64> = (from..n).collect();
    for _ in 0..5 {
        futures_util::stream::iter(todo.iter().copied())
            .for_each_concurrent(64, put)
            .await;
        let mut missing = Vec::new();
        for chunk in todo.chunks(1000) {
            let mut pipe = redis::pipe();
            for &i in chunk {
                pipe.exists(format!("hcgw:c:{}", key_of(i)));
            }
            let there: Vec<bool> = pipe.query_async(&mut redis).await.expect("EXISTS");
            missing.extend(chunk.iter().zip(there).filter(|(_, t)| !t).map(|(i, _)| *i));
        }
        todo = missing;
        if todo.is_empty() {
            break;
        }
    }
    assert!(
        todo.is_empty(),
        "{} entries could not be written to Redis",
        todo.len()
    );
    let l2_write_s = t.elapsed().as_secs_f64();
    let before = sim_requests(sim).await;
    let t = Instant::now();
    let failed = futures_util::stream::iter(from..n)
        .map(|i| {
            let (http, gw) = (http.clone(), gw.to_string());
            async move {
                let r = http
                    .post(format!("{gw}/v1/lookup"))
                    .header("content-type", "application/json")
                    .body(spread_body(i))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap_or_default();
                        v["cache"]["hit"] != true
                    }
                    _ => true,
                }
            }
        })
        .buffer_unordered(64)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let fill_s = t.elapsed().as_secs_f64();
    let upstream_calls = sim_requests(sim).await - before;
    println!(
        "{}",
        json!({ "from": from, "n": n, "l2_write_s": l2_write_s, "fill_s": fill_s, "failed": failed, "upstream_calls": upstream_calls })
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "spread-bodies" {
        let n: u64 = args[2].parse().unwrap();
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for i in 0..n {
            std::io::Write::write_all(&mut out, format!("{}\n", spread_body(i)).as_bytes())
                .unwrap();
        }
        return;
    }
    let pki = std::env::var("BENCH_PKI").expect("BENCH_PKI");
    if args[1] == "steady" {
        let plan: steady::Plan =
            serde_json::from_slice(&std::fs::read(&args[2]).expect("plan file")).expect("plan");
        let http = client_with_timeout(
            &pki,
            "platform-shanghai",
            Duration::from_millis(plan.timeout_ms),
        );
        steady::run(plan, http).await;
        return;
    }
    if let mode @ ("soak" | "soak-max") = args[1].as_str() {
        return soak::run(mode, &args, &pki).await;
    }
    let (mode, gw, sim) = (args[1].as_str(), args[2].clone(), args[3].clone());
    let n: usize = args[4].parse().unwrap();
    let http = client(&pki);
    match mode {
        "uncached" => {
            let api_key = std::fs::read_to_string(format!("{pki}/secrets/xuzhou_api_key")).unwrap();
            let plain = reqwest::Client::new();
            let subs = subjects(&sim, 100, n * 2).await;
            let (mut via_gw, mut direct) = (Vec::new(), Vec::new());
            for s in subs.iter().take(n) {
                let token = s["token"].as_str().unwrap();
                let t = Instant::now();
                let r = plain
                    .get(format!("{sim}/xzjkb/v1/qr/{token}/status"))
                    .header("x-api-key", api_key.trim())
                    .send()
                    .await
                    .unwrap();
                let _ = r.bytes().await;
                direct.push(t.elapsed().as_secs_f64() * 1000.0);
                let body = json!({ "region": "xuzhou", "subject": { "qr": s["qr"] } });
                let t = Instant::now();
                let r = http
                    .post(format!("{gw}/v1/lookup"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap();
                via_gw.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(
                    status.is_success() && v["cache"]["hit"] == false,
                    "an uncached answer: {v}"
                );
            }
            via_gw.sort_by(f64::total_cmp);
            direct.sort_by(f64::total_cmp);
            let (g50, g99, d50, d99) = (
                percentile(&via_gw, 0.5),
                percentile(&via_gw, 0.99),
                percentile(&direct, 0.5),
                percentile(&direct, 0.99),
            );
            println!(
                "{}",
                json!({ "n": via_gw.len(), "gateway_p50_ms": g50, "gateway_p99_ms": g99, "simulator_p50_ms": d50, "simulator_p99_ms": d99, "added_p50_ms": g50 - d50, "added_p99_ms": g99 - d99 })
            );
        }
        "coalesce" => {
            let s = subjects(&sim, 5000, 50)
                .await
                .into_iter()
                .last()
                .expect("a subject");
            let body = json!({ "region": "xuzhou", "subject": { "qr": s["qr"] } });
            let before = sim_requests(&sim).await;
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (http, gw, body) = (http.clone(), gw.clone(), body.clone());
                    tokio::spawn(async move {
                        http.post(format!("{gw}/v1/lookup"))
                            .json(&body)
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                    })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                if matches!(t.await, Ok(Ok(200))) {
                    ok += 1;
                }
            }
            let calls = sim_requests(&sim).await - before;
            println!(
                "{}",
                json!({ "concurrent": n, "answered_200": ok, "upstream_calls": calls })
            );
        }
        "batch" => {
            let rate: f64 = args[5].parse().unwrap();
            let subs = subjects(&sim, 10_000, n * 2).await;
            let items: Vec<Value> = subs
                .iter()
                .take(n)
                .map(|s| json!({ "region": "xuzhou", "subject": { "qr": s["qr"] } }))
                .collect();
            let t = Instant::now();
            let r = http
                .post(format!("{gw}/v1/lookup/batch"))
                .json(&json!({ "items": items }))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            let wall = t.elapsed().as_secs_f64();
            let answered = v["results"]
                .as_array()
                .map(|a| a.iter().filter(|r| r.get("status").is_some()).count())
                .unwrap_or(0);
            println!(
                "{}",
                json!({ "items": items.len(), "answered": answered, "wall_s": wall, "rate_bound_s": items.len() as f64 / rate, "ratio": wall / (items.len() as f64 / rate) })
            );
        }
        "spread-fill" => {
            let to: u64 = args[5].parse().unwrap();
            spread_fill(&http, &pki, &gw, &sim, n as u64, to).await;
        }
        other => panic!("unknown mode {other}"),
    }
}
