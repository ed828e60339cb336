//! `bench-driver steady PLAN.json`: an open-loop load at a fixed rate, per (gateway,
//! region) series, with per-window figures on stdout and every request in a samples file.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

/// What to load: read from the JSON file given on the command line.
#[derive(Debug, Deserialize)]
pub struct Plan {
    /// The gateways, each asked the same questions (about different subjects).
    pub gateways: Vec<Target>,
    /// The regions asked, each with the simulator its subjects are taken from.
    pub regions: Vec<RegionPlan>,
    /// Requests per second of each (gateway, region) series.
    pub rate_per_s: f64,
    /// How long the load runs.
    pub duration_s: f64,
    /// Width of a reported window.
    pub window_ms: u64,
    /// Client-side bound of one request (keep it above every gateway deadline, so that
    /// every request the gateway audited is seen with its answer).
    pub timeout_ms: u64,
    /// Where every request is written, one JSON line each.
    pub samples: String,
    /// A file created when the subjects are fetched and the load starts (optional).
    #[serde(default)]
    pub ready_file: Option<String>,
}

/// A gateway under load.
#[derive(Debug, Deserialize)]
pub struct Target {
    /// Short name used in series names (`A/suzhou`).
    pub name: String,
    /// Its API base URL (`https://localhost:PORT`).
    pub url: String,
}

/// A region under load.
#[derive(Debug, Deserialize)]
pub struct RegionPlan {
    /// The region id (`suzhou`).
    pub region: String,
    /// Its simulator's base URL (plain HTTP), for `/_sim/subjects`.
    pub sim: String,
}

/// One request's outcome.
struct Sample {
    series: usize,
    sent_ms: u64,
    latency_ms: f64,
    status: u16,
    code: String,
    receipt: Option<(u64, String)>,
}

#[derive(Default)]
struct Window {
    sent: usize,
    samples: Vec<Sample>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// At least `wanted` (when it has them) active subjects the simulator answers with a status
/// (no intended error), by QR.
async fn qr_subjects(sim: &str, wanted: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    while out.len() < wanted {
        let limit = ((wanted - out.len()) * 5 / 4 + 10).min(10_000);
        let url = format!("{sim}/_sim/subjects?offset={offset}&limit={limit}");
        let v: Value = reqwest::get(url)
            .await
            .expect("simulator subjects")
            .json()
            .await
            .expect("subjects JSON");
        let page = v.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        out.extend(
            page.iter()
                .filter(|s| s["fate"] == "active" && s["intended_by_qr"].get("error").is_none())
                .filter_map(|s| s["qr"].as_str().map(str::to_owned)),
        );
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn window_line(t0: u64, name: &str, samples: &[&Sample]) -> Value {
    let mut lat: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    let ok = samples
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .count();
    let unaudited = samples
        .iter()
        .filter(|s| (200..300).contains(&s.status) && s.receipt.is_none())
        .count();
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    for s in samples {
        *codes.entry(s.code.as_str()).or_default() += 1;
    }
    let n = samples.len();
    json!({
        "t0_ms": t0, "series": name, "n": n, "ok": ok, "err": n - ok,
        "err_rate": if n == 0 { 0.0 } else { (n - ok) as f64 / n as f64 },
        "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
        "codes": codes, "unaudited_ok": unaudited,
    })
}

/// Runs the plan: returns when every request has ended and every window is printed.
pub async fn run(plan: Plan, http: reqwest::Client) {
    let gateways = plan.gateways.len();
    let mut series = Vec::new(); // (name, gateway url, region, subjects)
    for r in &plan.regions {
        let needed = (plan.rate_per_s * plan.duration_s).ceil() as usize;
        let all = qr_subjects(&r.sim, needed * gateways).await;
        assert!(!all.is_empty(), "no subjects from {}", r.sim);
        if all.len() / gateways < needed {
            eprintln!(
                "steady: {} has {} usable subjects for {gateways} gateways, {needed} needed per series: some are asked twice (cache hits)",
                r.region,
                all.len()
            );
        }
        for (g, t) in plan.gateways.iter().enumerate() {
            let mine: Vec<String> = all.iter().skip(g).step_by(gateways).cloned().collect();
            series.push((
                format!("{}/{}", t.name, r.region),
                t.url.clone(),
                r.region.clone(),
                mine,
            ));
        }
    }
    let names: Arc<Vec<String>> = Arc::new(series.iter().map(|s| s.0.clone()).collect());
    let windows: Arc<Mutex<BTreeMap<u64, Window>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    if let Some(f) = &plan.ready_file {
        std::fs::write(f, b"").expect("ready file");
    }
    let start = now_ms();
    let end = start + (plan.duration_s * 1000.0) as u64;
    let window_ms = plan.window_ms.max(1);
    let period = Duration::from_secs_f64(1.0 / plan.rate_per_s);
    let n_series = series.len();
    let mut senders = Vec::new();
    for (i, (_, url, region, subjects)) in series.into_iter().enumerate() {
        let (http, tx, windows) = (http.clone(), tx.clone(), windows.clone());
        senders.push(tokio::spawn(async move {
            // Staggered starts, so the series do not all send at the same instant.
            tokio::time::sleep(period.mul_f64(i as f64 / n_series as f64)).await;
            let mut tick = tokio::time::interval(period);
            let mut k = 0usize;
            let mut tasks = Vec::new();
            loop {
                tick.tick().await;
                let sent_ms = now_ms();
                if sent_ms >= end {
                    break;
                }
                let w = (sent_ms - start) / window_ms;
                windows.lock().unwrap().entry(w).or_default().sent += 1;
                let body =
                    json!({ "region": region, "subject": { "qr": subjects[k % subjects.len()] } });
                k += 1;
                let (http, tx, url) = (http.clone(), tx.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    let t = std::time::Instant::now();
                    let (status, code, receipt) = match http
                        .post(format!("{url}/v1/lookup"))
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            let receipt = v["audit"]["seq"]
                                .as_u64()
                                .zip(v["audit"]["hash"].as_str().map(str::to_owned));
                            let code = v["code"]
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| status.to_string());
                            (status, code, receipt)
                        }
                        Err(e) if e.is_timeout() => (0, "client_timeout".to_owned(), None),
                        Err(_) => (0, "transport".to_owned(), None),
                    };
                    let _ = tx.send(Sample {
                        series: i,
                        sent_ms,
                        latency_ms: t.elapsed().as_secs_f64() * 1000.0,
                        status,
                        code,
                        receipt,
                    });
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }));
    }
    drop(tx);
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&plan.samples).expect("samples file"));
    let stdout = std::io::stdout();
    // Prints every complete window, oldest first (all of it once `all` is set).
    let flush = |windows: &Mutex<BTreeMap<u64, Window>>, all: bool| {
        let current = (now_ms().saturating_sub(start)) / window_ms;
        let mut ws = windows.lock().unwrap();
        while let Some((&w, win)) = ws.iter().next() {
            if !all && (w >= current || win.samples.len() < win.sent) {
                break;
            }
            let win = ws.remove(&w).expect("present");
            let mut by: HashMap<usize, Vec<&Sample>> = HashMap::new();
            for s in &win.samples {
                by.entry(s.series).or_default().push(s);
            }
            let mut lock = stdout.lock();
            for (i, name) in names.iter().enumerate() {
                let line = window_line(
                    start + w * window_ms,
                    name,
                    by.get(&i).map_or(&[][..], |v| v),
                );
                let _ = writeln!(lock, "{line}");
            }
        }
    };
    let mut report = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            s = rx.recv() => match s {
                Some(s) => {
                    let line = json!({
                        "t": s.sent_ms, "series": names[s.series], "ms": s.latency_ms,
                        "status": s.status, "code": s.code,
                        "seq": s.receipt.as_ref().map(|r| r.0), "hash": s.receipt.as_ref().map(|r| r.1.clone()),
                    });
                    let _ = writeln!(out, "{line}");
                    let w = (s.sent_ms - start) / window_ms;
                    windows.lock().unwrap().entry(w).or_default().samples.push(s);
                }
                None => break,
            },
            _ = report.tick() => flush(&windows, false),
        }
    }
    for s in senders {
        let _ = s.await;
    }
    flush(&windows, true);
    out.flush().expect("samples written");
}
