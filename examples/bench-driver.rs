//! Load driver for the measurements oha cannot make (`scripts/bench.sh` runs it):
//!
//! - `uncached GW SIM N`: N sequential lookups of distinct subjects through the gateway
//!   (`POST /v1/lookup`, Xuzhou QR) and the same N questions asked of the simulator directly;
//!   prints p50/p99 of both and the added latency;
//! - `coalesce GW SIM N`: N concurrent identical cold lookups; prints the upstream calls the
//!   simulator counted;
//! - `batch GW SIM N RATE`: one batch of N distinct subjects; prints the wall time and the
//!   bound N / RATE set by the region's rate limit;
//! - `soak …` and `soak-max …`: the endurance load of `scripts/soak.sh` (see `soak.rs`).
//!
//! Client certificate: `$BENCH_PKI/clients/platform-shanghai`. Output: one JSON object.

#[path = "bench-driver/soak.rs"]
mod soak;

use std::time::{Duration, Instant};

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
    hcgw_adapters::upstream::install_crypto_provider();
    let pem = |p: &str| std::fs::read(format!("{pki}/{p}")).expect("PKI file");
    let identity_cert = pem(&format!("clients/{name}/cert.pem"));
    let identity_key = String::from_utf8(pem(&format!("clients/{name}/key.pem"))).unwrap();
    let mut cfg =
        hcgw_adapters::upstream::UpstreamConfig::new("https://localhost", Duration::from_secs(60));
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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pki = std::env::var("BENCH_PKI").expect("BENCH_PKI");
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
        other => panic!("unknown mode {other}"),
    }
}
