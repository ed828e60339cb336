//! The graceful drain with real processes: on SIGTERM `/readyz` turns 503 `draining` while
//! the listener keeps serving for `shutdown.drain_s`; then the port closes; a slow request
//! in flight finishes; the process exits and its audit trail verifies with one record per
//! answered request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcgw_adapters::RegionId;
use hcgw_sim::Fate;
use serde_json::{Value, json};

use crate::world::{World, fresh_client, start_world};

/// A second `hcgw serve` process on a world's simulators (killed when dropped).
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// Its mTLS API.
    pub api: SocketAddr,
    /// Its admin port.
    pub admin: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
    /// Its audit directory.
    pub audit_dir: PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Spawned {
    /// `https://localhost:<port><path>` of its API.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.api.port())
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts `hcgw serve` with `world`'s configuration changed by `edit`, in its own directory
/// `<world dir>/<label>` with its own audit trail and log.
pub fn spawn_gateway(world: &World, label: &str, edit: impl Fn(String) -> String) -> Spawned {
    let dir = world.config.parent().unwrap().join(label);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let audit_dir = dir.join("audit");
    let quoted = |p: &PathBuf| format!("{:?}", p.display().to_string());
    let text = std::fs::read_to_string(&world.config).unwrap();
    assert!(text.contains(&quoted(&world.audit_dir)));
    let text = text.replace(&quoted(&world.audit_dir), &quoted(&audit_dir));
    let config = dir.join("hcgw.toml");
    std::fs::write(&config, edit(text)).unwrap();
    let log = dir.join("gateway.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start hcgw");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("gateway listening")) {
            let v: Value = serde_json::from_str(line).expect("JSON log line");
            let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
            return Spawned {
                api: addr("api_addr"),
                admin: addr("admin_addr"),
                child,
                log,
                audit_dir,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hcgw exited with {status}: {text}");
        }
        assert!(Instant::now() < deadline, "hcgw did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Active subjects of `region` whose QR lookup the simulator answers with a status.
pub fn good_qrs(world: &World, region: RegionId) -> Vec<String> {
    let sim = world.sim(region);
    sim.ctx
        .population
        .subjects()
        .iter()
        .filter(|s| s.fate == Fate::Active && sim.sim.intended_for(s, true).error.is_none())
        .map(|s| s.qr.clone())
        .collect()
}

/// `POST /v1/lookup` of a QR in `region` with request id `id`: the status.
async fn lookup(
    client: &reqwest::Client,
    g: &Spawned,
    region: RegionId,
    qr: &str,
    id: &str,
) -> u16 {
    client
        .post(g.url("/v1/lookup"))
        .header("x-request-id", id)
        .json(&json!({ "region": region, "subject": { "qr": qr } }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("lookup {id}: {e:?}"))
        .status()
        .as_u16()
}

async fn readyz(g: &Spawned) -> Option<(u16, Value)> {
    hcgw_adapters::upstream::install_crypto_provider();
    let r = reqwest::Client::new()
        .get(format!("http://{}/readyz", g.admin))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

const DRAIN_S: u64 = 3;
const SLOW_MS: u64 = 6000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_stops_accepting_then_finishes_in_flight_requests() {
    let w = start_world("drain", "info", 80);
    // Huzhou answers slowly (within its deadline); the drain window is short.
    let mut g = spawn_gateway(&w, "drain-gateway", |text| {
        let text = text.replacen(
            "[regions.huzhou]\n",
            "[regions.huzhou]\ndeadline_ms = 15000\n",
            1,
        );
        assert!(text.contains("deadline_ms = 15000"));
        format!("{text}\n[shutdown]\ndrain_s = {DRAIN_S}\ngrace_s = 20\n")
    });
    let (fast, slow) = (RegionId::Suzhou, RegionId::Huzhou);
    let fast_qrs = good_qrs(&w, fast);
    let slow_qr = good_qrs(&w, slow)[0].clone();

    let (status, body) = readyz(&g).await.expect("admin answers");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["draining"], json!(false), "{body}");
    let client = fresh_client("platform-shanghai");
    assert_eq!(
        lookup(&client, &g, fast, &fast_qrs[0], "drain-before").await,
        200
    );

    // A slow lookup in flight across the whole drain window and the stop.
    w.sim(slow).control(json!({ "latency_ms": SLOW_MS })).await;
    let slow_client = fresh_client("platform-shanghai");
    let slow_url = g.url("/v1/lookup");
    let slow_task = tokio::spawn(async move {
        let r = slow_client
            .post(slow_url)
            .header("x-request-id", "drain-slow")
            .json(&json!({ "region": slow, "subject": { "qr": slow_qr } }))
            .send()
            .await
            .expect("the in-flight lookup is answered");
        r.status().as_u16()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let term = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // Unready first, with the reason, while the listener still serves new connections.
    let mut draining = None;
    while term.elapsed() < Duration::from_secs(DRAIN_S) {
        if let Some((503, body)) = readyz(&g).await {
            draining = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = draining.expect("/readyz turns 503 within the drain window");
    assert_eq!(body["reason"], json!("draining"), "{body}");
    assert_eq!(body["ready"], json!(false), "{body}");
    let during = fresh_client("platform-shanghai");
    assert_eq!(
        lookup(&during, &g, fast, &fast_qrs[1], "drain-during").await,
        200,
        "a new connection is served during the drain"
    );
    assert!(
        term.elapsed() < Duration::from_secs(DRAIN_S),
        "checked within the window"
    );

    // Then the port closes: not before the drain window, long before the slow answer.
    while accepts(g.api) {
        assert!(
            term.elapsed() < Duration::from_secs(DRAIN_S + 3),
            "the listener still accepts after the drain window"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed_after = term.elapsed();
    assert!(
        closed_after >= Duration::from_millis(DRAIN_S * 1000 - 200),
        "the listener stopped after {closed_after:?}, before the drain window ended"
    );
    assert!(
        !slow_task.is_finished(),
        "the slow lookup is still in flight"
    );

    // The in-flight lookup completes within the grace period; the process exits cleanly.
    let status = tokio::time::timeout(Duration::from_secs(15), slow_task)
        .await
        .expect("the slow lookup finishes within the grace")
        .unwrap();
    assert_eq!(status, 200);
    w.sim(slow).control(json!({ "latency_ms": 0 })).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = g.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "hcgw did not exit: {}", g.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "exit {exit}: {}", g.logs());
    let logs = g.logs();
    assert!(logs.contains("draining"), "{logs}");
    assert!(logs.contains("audit trail flushed"), "{logs}");

    // The trail verifies, with one record per answered request.
    let out = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(["audit", "verify"])
        .arg(&g.audit_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&g.audit_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if let Some(id) = v["request_id"].as_str().filter(|id| !id.is_empty()) {
                    ids.push(id.to_owned());
                }
            }
        }
    }
    ids.sort();
    assert_eq!(ids, ["drain-before", "drain-during", "drain-slow"]);
}
