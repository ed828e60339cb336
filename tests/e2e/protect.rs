//! Protection end to end, over real mTLS against in-process simulators: the cache coalesces
//! concurrent identical lookups into one upstream request, per-caller quotas answer 429
//! with Retry-After without touching other callers, a region never sees more than its rate
//! under a 10x burst, and a slow region times out, opens its circuit, leaves the others
//! working and recovers through half-open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hcgw_adapters::RegionId;
use hcgw_sim::{Fate, RunningSim, SimEnv, SimOptions, SimSubject};
use serde_json::{Value, json};

use crate::support::{TlsPaths, config_text, pki, sim_client, sim_url, start_gateway};
use crate::world::fresh_client;

struct Setup {
    gw: hcgw::app::Gateway,
    sims: BTreeMap<RegionId, RunningSim>,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.gw.api_addr.port())
    }

    fn active(&self, region: RegionId) -> Vec<SimSubject> {
        self.sims[&region]
            .context
            .population
            .subjects()
            .iter()
            .filter(|s| s.fate == Fate::Active)
            .cloned()
            .collect()
    }

    fn requests(&self, region: RegionId) -> u64 {
        self.sims[&region].context.requests.load(Ordering::SeqCst)
    }

    async fn control(&self, region: RegionId, body: Value) {
        let r = sim_client()
            .post(format!("{}/_sim/control", sim_url(&self.sims[&region])))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn lookup(
        &self,
        client: &reqwest::Client,
        region: RegionId,
        s: &SimSubject,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = client
            .post(self.url("/v1/lookup"))
            .json(&json!({ "region": region.as_str(), "subject": { "qr": s.qr } }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    async fn region_view(&self, region: RegionId) -> Value {
        let v: Value = fresh_client("ops")
            .get(self.url("/v1/regions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == region.as_str())
            .cloned()
            .unwrap()
    }
}

/// The most arrivals in any closed window of length `window` (exact: from the simulator's
/// own arrival times, not from sampling its counter).
fn most_in_window(arrivals: &[Instant], window: Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut most = 0;
    let mut from = 0;
    for (to, t) in sorted.iter().enumerate() {
        while t.duration_since(sorted[from]) > window {
            from += 1;
        }
        most = most.max(to - from + 1);
    }
    most
}

/// Huzhou and Hangzhou simulators and an in-process gateway serving them;
/// `huzhou`/`hangzhou` are extra lines of their region sections, `extra` more TOML.
async fn setup(latency: Duration, huzhou: &str, hangzhou: &str, extra: &str) -> Setup {
    setup_with(latency, huzhou, hangzhou, extra, None).await
}

/// As [`setup`], with Hangzhou served by `hangzhou_url` (a mock) instead of its simulator.
async fn setup_with(
    latency: Duration,
    huzhou: &str,
    hangzhou: &str,
    extra: &str,
    hangzhou_url: Option<String>,
) -> Setup {
    let pki = pki();
    let options = SimOptions {
        population: 300,
        latency,
        ..SimOptions::default()
    };
    let env = SimEnv {
        pki_dir: pki.clone(),
    };
    let mut sims = BTreeMap::new();
    for sim in hcgw_sim::all()
        .into_iter()
        .filter(|s| matches!(s.region(), RegionId::Huzhou | RegionId::Hangzhou))
    {
        let running = hcgw_sim::spawn(sim, &options, env.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sims.insert(running.region, running);
    }
    let p = |rel: &str| format!("{:?}", pki.join(rel).display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let regions = format!(
        r#"
{extra}

[regions.huzhou]
base_url = "{huz}"
{huzhou}
[regions.huzhou.auth]
token = {{ file = {huz_token} }}

[regions.hangzhou]
base_url = "{hz}"
{hangzhou}
[regions.hangzhou.auth]
appcode = {{ file = {hz_code} }}
"#,
        huz = sim_url(&sims[&RegionId::Huzhou]),
        hz = hangzhou_url.unwrap_or_else(|| sim_url(&sims[&RegionId::Hangzhou])),
        huz_token = p("secrets/huzhou_token"),
        hz_code = p("secrets/hangzhou_appcode"),
    );
    let text = config_text(&TlsPaths::standard(), &dir.path().join("audit"), &regions);
    let gw = start_gateway(&text, dir.path()).await;
    Setup {
        gw,
        sims,
        _dir: dir,
    }
}

#[test]
fn protection_settings_are_validated_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let region = "[regions.huzhou]\nbase_url = \"http://127.0.0.1:1\"\nqueue_ms = 20000\n[regions.huzhou.breaker]\nmin_calls = 50\n[regions.huzhou.auth]\ntoken = \"x\"\n";
    let extra = format!(
        "[limits]\nplatform_per_s = 0\nburst_s = 0\n[breaker]\nfailure_ratio = 1.5\nopen_s = 0\nhalf_open_probes = 0\nconsecutive_failures = 0\n[redis]\nlocal_share = 0\n{region}"
    );
    let text = config_text(&TlsPaths::standard(), &dir.path().join("audit"), &extra);
    let problems = match hcgw::config::load_str(&text, &dir.path().join("x.toml")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.problems().to_vec(),
    };
    let paths: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    for expected in [
        "limits.platform_per_s",
        "limits.burst_s",
        "breaker.failure_ratio",
        "breaker.open_s",
        "breaker.half_open_probes",
        "breaker.consecutive_failures",
        "redis.local_share",
        "regions.huzhou.queue_ms",
        "regions.huzhou.breaker.min_calls",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} missing from {paths:?}"
        );
    }
    // The defaults are valid and off for Redis.
    let text = config_text(&TlsPaths::standard(), &dir.path().join("audit"), "");
    let c = hcgw::config::load_str(&text, &dir.path().join("ok.toml")).unwrap();
    assert!(!c.redis.enabled);
    assert_eq!(c.limits.platform_per_s, 500);
    assert_eq!(c.breaker.consecutive_failures, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_identical_lookups_make_one_upstream_request() {
    // A deadline far above the simulator's 300 ms: this test is about coalescing, and 500
    // handshakes at once on a busy 2-core machine can starve the one upstream call past
    // the region's agreed 2 s.
    let s = Arc::new(
        setup(
            Duration::from_millis(300),
            "deadline_ms = 15000",
            "",
            "[limits]\nplatform_per_s = 100000",
        )
        .await,
    );
    let subject = s.active(RegionId::Huzhou)[0].clone();
    let before = s.requests(RegionId::Huzhou);
    let client = fresh_client("platform-shanghai");
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let (s, client, subject) = (s.clone(), client.clone(), subject.clone());
        tasks.push(tokio::spawn(async move {
            s.lookup(&client, RegionId::Huzhou, &subject).await
        }));
    }
    let mut colours = std::collections::HashSet::new();
    let mut misses = 0;
    for t in tasks {
        let (status, body, _) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        colours.insert(body["status"]["color"].as_str().unwrap().to_owned());
        if body["cache"]["hit"] == false {
            misses += 1;
        }
    }
    assert_eq!(colours.len(), 1, "everyone got the same answer");
    assert_eq!(
        misses, 1,
        "one caller asked the region, 499 shared its answer"
    );
    assert_eq!(s.requests(RegionId::Huzhou) - before, 1);
    // The simulator's own statistics agree.
    let stats: Value = sim_client()
        .get(format!(
            "{}/_sim/stats",
            sim_url(&s.sims[&RegionId::Huzhou])
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"].as_u64().unwrap(), before + 1, "{stats}");
    // Later lookups are hits that report their age.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, body, _) = s.lookup(&client, RegionId::Huzhou, &subject).await;
    assert_eq!(body["cache"]["hit"], true);
    assert!(body["cache"]["age_ms"].as_u64().unwrap() >= 20, "{body}");
    assert_eq!(s.requests(RegionId::Huzhou) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_quota_gets_429_with_retry_after_and_others_are_unaffected() {
    let s = setup(
        Duration::ZERO,
        "",
        "",
        "[limits]\nplatform_per_s = 2\nburst_s = 1",
    )
    .await;
    let subject = s.active(RegionId::Hangzhou)[0].clone();
    let shanghai = fresh_client("platform-shanghai");
    let mut limited = Vec::new();
    let mut ok = 0;
    for _ in 0..8 {
        let (status, body, headers) = s.lookup(&shanghai, RegionId::Hangzhou, &subject).await;
        match status {
            200 => ok += 1,
            429 => limited.push((body, headers)),
            other => panic!("{other}: {body}"),
        }
    }
    assert!(ok >= 2, "the burst is served");
    assert!(limited.len() >= 3, "{} limited of 8", limited.len());
    for (body, headers) in &limited {
        assert_eq!(body["code"], "rate_limited");
        let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        // 2/s: the next slot is at most half a second away, announced as 1 s.
        assert_eq!(after, 1, "{body}");
        assert_eq!(body["retry_after_s"], after);
    }
    // Another caller has its own quota.
    let guangdong = fresh_client("platform-guangdong");
    let (status, body, _) = s.lookup(&guangdong, RegionId::Hangzhou, &subject).await;
    assert_eq!(status, 200, "{body}");
    // Retry-After is honest: after waiting it, the caller is served again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, body, _) = s.lookup(&shanghai, RegionId::Hangzhou, &subject).await;
    assert_eq!(status, 200, "{body}");
    // The regions list is not quota-limited.
    let r = shanghai.get(s.url("/v1/regions")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_fold_burst_never_exceeds_the_region_rate() {
    // The region accepts at most 10/s; the gateway is configured below it.
    const REGION_LIMIT: u64 = 10;
    let s = Arc::new(
        setup(
            Duration::ZERO,
            "rate_limit_per_s = 9\nqueue_ms = 250",
            "",
            "[limits]\nplatform_per_s = 100000",
        )
        .await,
    );
    // The "mock" side: sample the region's request counter.
    let sampler = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(4) {
                samples.push((Instant::now(), s.requests(RegionId::Huzhou)));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };
    let subjects = s.active(RegionId::Huzhou);
    let client = fresh_client("platform-shanghai");
    let mut tasks = Vec::new();
    for subject in subjects.into_iter().take(100) {
        let (s, client) = (s.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            s.lookup(&client, RegionId::Huzhou, &subject).await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (status, body, headers) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert_eq!(body["code"], "upstream_rate_limited", "{body}");
                assert!(headers.contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(ok >= 1, "some lookups were queued and served");
    assert!(refused >= 50, "{refused} refused of 100");
    let samples = sampler.await.unwrap();
    let mut worst = 0;
    for (i, (t1, c1)) in samples.iter().enumerate() {
        for (t2, c2) in &samples[i..] {
            if t2.duration_since(*t1) <= Duration::from_secs(1) {
                worst = worst.max(c2 - c1);
            }
        }
    }
    assert!(
        worst <= REGION_LIMIT,
        "the region saw {worst} requests within one second"
    );
    assert_eq!(ok as u64, samples.last().unwrap().1 - samples[0].1);
    let exact = most_in_window(
        &s.sims[&RegionId::Huzhou].context.arrivals(),
        Duration::from_secs(1),
    );
    assert!(
        exact as u64 <= REGION_LIMIT,
        "the region saw {exact} requests within one second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_paced_at_the_region_rate_not_refused() {
    // The region accepts 10/s; a 25-item batch must be answered in full, at that rate.
    const REGION_LIMIT: u64 = 10;
    let s = Arc::new(
        setup(
            Duration::ZERO,
            "rate_limit_per_s = 10\nqueue_ms = 250",
            "",
            "[limits]\nplatform_per_s = 100000",
        )
        .await,
    );
    let items: Vec<Value> = s
        .active(RegionId::Huzhou)
        .into_iter()
        .skip(200)
        .take(25)
        .map(|sub| json!({ "region": "huzhou", "subject": { "qr": sub.qr } }))
        .collect();
    let started = Instant::now();
    let r = fresh_client("platform-shanghai")
        .post(s.url("/v1/lookup/batch"))
        .json(&json!({ "items": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let wall = started.elapsed();
    let results = body["results"].as_array().unwrap();
    let answered = results.iter().filter(|r| r.get("status").is_some()).count();
    assert_eq!(answered, 25, "every item answered, none refused: {body}");
    // 25 calls at 10/s need at least ~2.4 s after the first.
    assert!(
        wall >= Duration::from_millis(2300),
        "paced, not burst: {wall:?}"
    );
    // Exact about the window: the simulator's arrival times, any closed one-second window.
    let arrivals = s.sims[&RegionId::Huzhou].context.arrivals();
    assert!(arrivals.len() >= 25, "{}", arrivals.len());
    let worst = most_in_window(&arrivals, Duration::from_secs(1));
    eprintln!(
        "batch pacing: worst one-second window {worst} of {} calls",
        arrivals.len()
    );
    assert!(
        worst as u64 <= REGION_LIMIT,
        "the region saw {worst} requests within one second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_region_times_out_opens_its_circuit_spares_the_others_and_recovers() {
    let s = setup(
        Duration::ZERO,
        "deadline_ms = 300\n[regions.huzhou.breaker]\nconsecutive_failures = 3\nopen_s = 2",
        "",
        "[limits]\nplatform_per_s = 100000",
    )
    .await;
    let client = fresh_client("platform-shanghai");
    let huzhou = s.active(RegionId::Huzhou);
    let hangzhou = s.active(RegionId::Hangzhou);
    s.control(RegionId::Huzhou, json!({ "latency_ms": 5000 }))
        .await;
    for subject in &huzhou[..3] {
        let started = Instant::now();
        let (status, body, _) = s.lookup(&client, RegionId::Huzhou, subject).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (504, Some("region_timeout")),
            "{body}"
        );
        // Deadline 300 ms + 200 ms outer bound; generous margin for a loaded machine.
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
    }
    let view = s.region_view(RegionId::Huzhou).await;
    assert_eq!(view["protection"]["circuit"], "open", "{view}");
    assert_eq!(view["state"], "down", "{view}");
    assert_eq!(view["protection"]["recent_errors"], 3, "{view}");
    let (status, body, headers) = s.lookup(&client, RegionId::Huzhou, &huzhou[3]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("region_unavailable")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
    // The other region keeps working meanwhile.
    for subject in &hangzhou[..5] {
        let (status, body, _) = s.lookup(&client, RegionId::Hangzhou, subject).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        s.region_view(RegionId::Hangzhou).await["protection"]["circuit"],
        "closed"
    );
    // The region recovers; after open_s one probe closes the circuit.
    s.control(RegionId::Huzhou, json!({ "latency_ms": 0 }))
        .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body, _) = s.lookup(&client, RegionId::Huzhou, &huzhou[4]).await;
        if status == 200 {
            break;
        }
        assert_eq!(body["code"], "region_unavailable", "{body}");
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let view = s.region_view(RegionId::Huzhou).await;
    assert_eq!(view["protection"]["circuit"], "closed", "{view}");
    assert_eq!(view["state"], "up", "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_region_is_held_off_until_its_retry_after() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3"))
        .mount(&mock)
        .await;
    let s = setup_with(
        Duration::ZERO,
        "",
        "",
        "[limits]\nplatform_per_s = 100000",
        Some(mock.uri()),
    )
    .await;
    let client = fresh_client("platform-shanghai");
    let subjects = s.active(RegionId::Hangzhou);
    let (status, body, headers) = s.lookup(&client, RegionId::Hangzhou, &subjects[0]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("upstream_rate_limited")),
        "{body}"
    );
    assert_eq!(headers["retry-after"], "3");
    // Held off: the next lookups fail fast without asking the region.
    for subject in &subjects[1..4] {
        let (status, body, headers) = s.lookup(&client, RegionId::Hangzhou, subject).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("upstream_rate_limited")),
            "{body}"
        );
        let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3).contains(&after), "{after}");
    }
    assert_eq!(mock.received_requests().await.unwrap().len(), 1);
    let view = s.region_view(RegionId::Hangzhou).await;
    assert!(
        view["protection"]["held_off_s"].as_u64().unwrap() >= 1,
        "{view}"
    );
    // After the Retry-After the region is asked again.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, _, _) = s.lookup(&client, RegionId::Hangzhou, &subjects[5]).await;
    assert_eq!(status, 503);
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);
}

/// A throw-away `redis-server` on a free port (no persistence), killed on drop.
pub(crate) struct Redis {
    port: u16,
    child: Option<std::process::Child>,
}

impl Redis {
    pub(crate) fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis { port, child: None };
        r.restart();
        r
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the server: a Redis that stops talking
    /// without closing its connections.
    pub(crate) fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// How many commands the server ran, by command (`INFO commandstats`), leaving out
    /// `PING` (the gateways' probes) and `INFO` (this call's own).
    pub(crate) fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "info", "commandstats"])
            .output()
            .expect("redis-cli is installed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(":calls=")?;
                let n = rest.split(',').next()?.trim().parse().ok()?;
                (!["ping", "info"].contains(&name)).then(|| (name.to_owned(), n))
            })
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real `hcgw` process; stopped when dropped (stdin closed, then killed).
struct Process {
    api: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    child: std::process::Child,
}

impl Process {
    fn start(dir: &std::path::Path, config: &str) -> Process {
        use std::io::BufRead;
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("hcgw.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("gateway.log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hcgw"))
            .args(["serve", "--stop-on-stdin-eof", "--config"])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start hcgw");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = std::io::BufReader::new(std::fs::File::open(&log).unwrap())
                .lines()
                .map_while(Result::ok)
                .find(|l| l.contains("gateway listening"));
            if let Some(line) = line {
                let v: Value = serde_json::from_str(&line).unwrap();
                let addr = |k: &str| v[k].as_str().unwrap().parse().unwrap();
                return Process {
                    api: addr("api_addr"),
                    admin: addr("admin_addr"),
                    child,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "hcgw exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "hcgw did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.api.port())
    }

    async fn redis_degraded(&self) -> bool {
        let v: Value = sim_client()
            .get(format!("http://{}/readyz", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["ready"], true,
            "a degraded Redis never makes readiness fail: {v}"
        );
        v["redis_degraded"].as_bool().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn lookup_at(client: &reqwest::Client, gw: &Process, subject: &SimSubject) -> (u16, Value) {
    let r = client
        .post(gw.url("/v1/lookup"))
        .json(&json!({ "region": "hangzhou", "subject": { "qr": subject.qr } }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_cache_and_quota_through_redis_and_survive_its_outage() {
    const Q: u32 = 20;
    const REGION_RATE: u64 = 4;
    let mut redis = Redis::start();
    let pki = pki();
    let env = SimEnv {
        pki_dir: pki.clone(),
    };
    let sim = hcgw_sim::all()
        .into_iter()
        .find(|s| s.region() == RegionId::Hangzhou)
        .unwrap();
    let options = SimOptions {
        population: 300,
        ..SimOptions::default()
    };
    let sim = hcgw_sim::spawn(sim, &options, env, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let subjects: Vec<SimSubject> = sim
        .context
        .population
        .subjects()
        .iter()
        .filter(|s| s.fate == Fate::Active)
        .cloned()
        .collect();
    let requests = || sim.context.requests.load(Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let p = |rel: &str| format!("{:?}", pki.join(rel).display().to_string());
    let start = |name: &str| {
        let extra = format!(
            r#"
[limits]
platform_per_s = {Q}
burst_s = 1

[redis]
enabled = true
url = "{url}"
entry_key = {{ file = {entry_key} }}
# 1.0 so that only Redis can keep the two instances together under the region's rate.
local_share = 1.0

[regions.hangzhou]
base_url = "{hz}"
rate_limit_per_s = {REGION_RATE}
queue_ms = 2000
[regions.hangzhou.auth]
appcode = {{ file = {code} }}
"#,
            url = redis.url(),
            hz = sim_url(&sim),
            code = p("secrets/hangzhou_appcode"),
            entry_key = p("secrets/redis_entry_key"),
        );
        let text = config_text(
            &TlsPaths::standard(),
            &dir.path().join(name).join("audit"),
            &extra,
        )
        .replace(
            "log_level = \"warn\"",
            "log_format = \"json\"\nlog_level = \"info\"",
        );
        Process::start(&dir.path().join(name), &text)
    };
    let a = start("a");
    let b = start("b");
    for gw in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while gw.redis_degraded().await {
            assert!(Instant::now() < deadline, "the gateway never reached Redis");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let client = fresh_client("platform-shanghai");

    // An entry cached through A is a hit on B.
    let before = requests();
    let (status, body) = lookup_at(&client, &a, &subjects[0]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cache"]["hit"], false);
    let (status, body) = lookup_at(&client, &b, &subjects[0]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cache"]["hit"], true, "{body}");
    assert_eq!(requests() - before, 1, "B did not ask the region");

    // One quota of Q/s across both instances together.
    tokio::time::sleep(Duration::from_secs(2)).await; // a full burst again
    let started = Instant::now();
    let run_for = Duration::from_secs(4);
    let mut workers = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let url = if w % 2 == 0 {
            a.url("/v1/lookup")
        } else {
            b.url("/v1/lookup")
        };
        let qr = subjects[0].qr.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut limited) = (0u32, 0u32);
            while started.elapsed() < run_for {
                let r = client
                    .post(&url)
                    .json(&json!({ "region": "hangzhou", "subject": { "qr": qr } }))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 => limited += 1,
                    other => panic!("{other}"),
                }
            }
            (ok, limited)
        }));
    }
    let (mut ok, mut limited) = (0, 0);
    for w in workers {
        let (o, l) = w.await.unwrap();
        ok += o;
        limited += l;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A full burst (Q) plus Q per second.
    let expected = f64::from(Q) * (1.0 + elapsed);
    assert!(limited > 0, "the callers went over the quota");
    assert!(
        (f64::from(ok) - expected).abs() <= expected * 0.1,
        "{ok} served in {elapsed:.2} s across both instances; expected {expected:.0} ± 10%"
    );

    // One outbound rate for the region across both instances: a burst of distinct lookups
    // through A and B never gives the region more than REGION_RATE (+1 for network jitter)
    // in any second, where two local limiters would allow twice that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sampling, ctx) = (sampling.clone(), sim.context.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                samples.push((Instant::now(), ctx.requests.load(Ordering::SeqCst)));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };
    let mut burst = Vec::new();
    for (i, subject) in subjects[100..116].iter().enumerate() {
        let (client, subject) = (client.clone(), subject.clone());
        let url = if i % 2 == 0 {
            a.url("/v1/lookup")
        } else {
            b.url("/v1/lookup")
        };
        burst.push(tokio::spawn(async move {
            let r = client
                .post(&url)
                .json(&json!({ "region": "hangzhou", "subject": { "qr": subject.qr } }))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut served = 0;
    for t in burst {
        let (status, body) = t.await.unwrap();
        match status {
            200 => served += 1,
            503 => assert_eq!(body["code"], "upstream_rate_limited", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    sampling.store(false, Ordering::SeqCst);
    let samples = sampler.await.unwrap();
    let mut worst = 0;
    for (i, (t1, c1)) in samples.iter().enumerate() {
        for (t2, c2) in &samples[i..] {
            if t2.duration_since(*t1) <= Duration::from_secs(1) {
                worst = worst.max(c2 - c1);
            }
        }
    }
    assert!(served >= 2, "{served} served");
    assert!(
        worst <= REGION_RATE + 1,
        "the region saw {worst} requests within one second from two instances"
    );

    // Redis killed mid-test: both keep serving on local cache and limits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.kill();
    for gw in [&a, &b] {
        let mut i = 1;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = lookup_at(&client, gw, &subjects[i]).await;
            assert_eq!(status, 200, "{body}");
            i += 1;
            if gw.redis_degraded().await {
                break;
            }
            assert!(Instant::now() < deadline, "the outage was never noticed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let v: Value = fresh_client("ops")
        .get(a.url("/v1/regions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["shared_tier"]["degraded"], true, "{v}");

    // Redis back: shared mode resumes on both.
    redis.restart();
    for gw in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, _) = lookup_at(&client, gw, &subjects[0]).await;
            assert_eq!(status, 200);
            if !gw.redis_degraded().await {
                break;
            }
            assert!(Instant::now() < deadline, "shared mode never resumed");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let fresh = &subjects[50];
    let before = requests();
    let (status, body) = lookup_at(&client, &b, fresh).await;
    assert_eq!(
        (status, &body["cache"]["hit"]),
        (200, &json!(false)),
        "{body}"
    );
    let (status, body) = lookup_at(&client, &a, fresh).await;
    assert_eq!(
        (status, &body["cache"]["hit"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(requests() - before, 1);
}

/// `n` batch items asking `region` about `subjects` (cycled when fewer).
fn batch_items(region: RegionId, subjects: &[SimSubject], n: usize) -> Vec<Value> {
    subjects
        .iter()
        .cycle()
        .take(n)
        .map(|sub| json!({ "region": region.as_str(), "subject": { "qr": sub.qr } }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_item_batch_from_a_ten_per_second_client_is_refused_a_larger_than_burst_one_paced()
 {
    // 10/s with a 2 s burst: one cell holds 20 items; 20 + 10 × 60 s = 620 can be paced.
    let s = setup(
        Duration::ZERO,
        "",
        "",
        "[limits]\nplatform_per_s = 10\nburst_s = 2",
    )
    .await;
    let client = fresh_client("platform-shanghai");
    let subjects = s.active(RegionId::Huzhou);
    let before = s.requests(RegionId::Huzhou);
    let r = client
        .post(s.url("/v1/lookup/batch"))
        .json(&json!({ "items": batch_items(RegionId::Huzhou, &subjects, 1000) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, 2, "an empty bucket is full again after burst_s");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 620 items"),
        "{body}"
    );
    assert_eq!(s.requests(RegionId::Huzhou), before, "no region was asked");
    // Refusing it took nothing: the full burst is still there for a 20-item batch.
    let r = client
        .post(s.url("/v1/lookup/batch"))
        .json(&json!({ "items": batch_items(RegionId::Huzhou, &subjects[..20], 20) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A 50-item batch (over the burst) once the bucket is full again: paced, not served at
    // once: 20 now, 30 more at 10/s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let started = Instant::now();
    let before = s.requests(RegionId::Huzhou);
    let r = client
        .post(s.url("/v1/lookup/batch"))
        .json(&json!({ "items": batch_items(RegionId::Huzhou, &subjects[20..70], 50) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let wall = started.elapsed();
    let body: Value = r.json().await.unwrap();
    let answered = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("status").is_some())
        .count();
    assert_eq!(answered, 50, "{body}");
    assert!(wall >= Duration::from_millis(2900), "paced: {wall:?}");
    assert_eq!(s.requests(RegionId::Huzhou) - before, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_ten_seconds_a_callers_accepted_items_stay_within_its_quota() {
    const RATE: usize = 10;
    const BURST_S: usize = 1;
    let s = Arc::new(
        setup(
            Duration::ZERO,
            "",
            "",
            &format!("[limits]\nplatform_per_s = {RATE}\nburst_s = {BURST_S}"),
        )
        .await,
    );
    // Distinct subjects only (no cache hit), so every accepted item is one region request.
    let pool: Vec<(RegionId, SimSubject)> = [RegionId::Huzhou, RegionId::Hangzhou]
        .into_iter()
        .flat_map(|r| s.active(r).into_iter().map(move |sub| (r, sub)))
        .collect();
    let pool = Arc::new(pool);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let take = {
        let (pool, next) = (pool.clone(), next.clone());
        move |n: usize| -> Vec<Value> {
            (0..n)
                .map(|_| {
                    let (r, sub) = &pool[next.fetch_add(1, Ordering::SeqCst)];
                    json!({ "region": r.as_str(), "subject": { "qr": sub.qr } })
                })
                .collect()
        }
    };
    // Connections made before the clock starts (the regions list is not quota-limited), so
    // that handshakes do not leave the first burst unused.
    const BATCHERS: usize = 4;
    let mut clients = Vec::new();
    for _ in 0..=BATCHERS {
        let client = fresh_client("platform-shanghai");
        let r = client.get(s.url("/v1/regions")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        clients.push(client);
    }
    let run = Duration::from_secs(10);
    let started = Instant::now();
    let mut workers = Vec::new();
    // Four workers sending batches over the burst (paced; retried 5 ms after a refusal, so
    // that a full burst is taken as soon as it is there even on a loaded machine) and one
    // sending single lookups every 250 ms, all as the same client.
    for (w, client) in clients.into_iter().enumerate() {
        let (s, take) = (s.clone(), take.clone());
        workers.push(tokio::spawn(async move {
            let (mut items, mut refused) = (0usize, 0usize);
            let mut retry: Option<Value> = None;
            while started.elapsed() < run {
                let (path, n) = if w < BATCHERS {
                    ("/v1/lookup/batch", 15)
                } else {
                    ("/v1/lookup", 1)
                };
                let body = retry.take().unwrap_or_else(|| {
                    if n == 1 {
                        take(1).remove(0)
                    } else {
                        json!({ "items": take(n) })
                    }
                });
                let r = client.post(s.url(path)).json(&body).send().await.unwrap();
                match r.status().as_u16() {
                    200 => items += n,
                    429 => {
                        refused += 1;
                        retry = Some(body);
                    }
                    other => panic!("{other}: {}", r.text().await.unwrap_or_default()),
                }
                let pause = if n == 1 { 250 } else { 5 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            (w, items, refused)
        }));
    }
    let (mut served, mut refused, mut batched) = (0, 0, 0);
    for w in workers {
        let (w, i, r) = w.await.unwrap();
        served += i;
        refused += r;
        if w < BATCHERS {
            batched += i;
        }
    }
    assert!(
        batched >= 30,
        "batches over the burst were paced and served: {batched}"
    );
    assert!(refused > 0, "the caller went over its quota");
    let mut arrivals = s.sims[&RegionId::Huzhou].context.arrivals();
    arrivals.extend(s.sims[&RegionId::Hangzhou].context.arrivals());
    // Accepted items = region requests: one burst plus RATE per second.
    let quota = RATE * (10 + BURST_S);
    // The busiest 10 s (sliding, exact arrival times) holds the quota, ± 10%: never more
    // (batches do not bypass it) and not much less (paced batches are served at the rate).
    let worst = most_in_window(&arrivals, run);
    let in_run = arrivals
        .iter()
        .filter(|t| t.duration_since(started) <= run)
        .count();
    eprintln!(
        "caller quota: busiest 10 s window {worst} items, first 10 s {in_run}, quota {quota}; \
         {served} answered, {refused} refusals, {batched} in paced batches"
    );
    assert!(
        (worst as f64 - quota as f64).abs() <= quota as f64 * 0.1,
        "{worst} items in the busiest 10 s (answered {served}); the quota is {quota} (± 10%)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_probe_dropped_mid_flight_lets_the_next_call_probe() {
    let s = setup(
        Duration::ZERO,
        "deadline_ms = 8000\n[regions.huzhou.breaker]\nconsecutive_failures = 1\nopen_s = 1",
        "",
        "[limits]\nplatform_per_s = 100000",
    )
    .await;
    let client = fresh_client("platform-shanghai");
    let subjects = s.active(RegionId::Huzhou);
    // One failure opens the circuit.
    s.control(RegionId::Huzhou, json!({ "down": true })).await;
    let (status, body, _) = s.lookup(&client, RegionId::Huzhou, &subjects[0]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        s.region_view(RegionId::Huzhou).await["protection"]["circuit"],
        "open"
    );
    // Back, but slow; after open_s the next call is the probe, and its caller gives up.
    s.control(
        RegionId::Huzhou,
        json!({ "down": false, "latency_ms": 5000 }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = s.requests(RegionId::Huzhou);
    let impatient = crate::support::api_client(
        Some(&crate::support::client("platform-shanghai")),
        Duration::from_millis(1500),
    );
    let gave_up = impatient
        .post(s.url("/v1/lookup"))
        .json(&json!({ "region": "huzhou", "subject": { "qr": subjects[1].qr } }))
        .send()
        .await;
    assert!(gave_up.is_err(), "the probe was still in flight");
    drop(impatient);
    assert_eq!(
        s.requests(RegionId::Huzhou) - before,
        1,
        "the probe reached the region"
    );
    // The dropped request frees its probe slot and its concurrency slot long before the
    // region would have answered; the circuit is still half-open (no outcome recorded).
    let deadline = Instant::now() + Duration::from_millis(2500);
    loop {
        let view = s.region_view(RegionId::Huzhou).await;
        if view["protection"]["in_flight"] == 0 {
            assert_eq!(view["protection"]["circuit"], "half_open", "{view}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped probe is still held: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next call probes at once (not "being probed") and closes the circuit.
    s.control(RegionId::Huzhou, json!({ "latency_ms": 0 }))
        .await;
    let (status, body, _) = s.lookup(&client, RegionId::Huzhou, &subjects[2]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.region_view(RegionId::Huzhou).await["protection"]["circuit"],
        "closed"
    );
}

/// `GET /readyz` of an in-process gateway.
async fn readyz(s: &Setup) -> Value {
    sim_client()
        .get(format!("http://{}/readyz", s.gw.admin_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_trail_that_cannot_write_refuses_before_any_region_is_asked() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup(Duration::ZERO, "", "", "[limits]\nplatform_per_s = 100000").await;
    let audit = s._dir.path().join("audit");
    let platform = fresh_client("platform-shanghai");
    let checkpoint = fresh_client("checkpoint-shanghai");
    let subjects = s.active(RegionId::Huzhou);
    let (status, body, _) = s.lookup(&platform, RegionId::Huzhou, &subjects[0]).await;
    assert_eq!(status, 200, "{body}");
    // The audit directory made unwritable: the gateway notices within about a second.
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o500)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while readyz(&s).await["audit_healthy"] != false {
        assert!(
            Instant::now() < deadline,
            "the failing trail was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = (s.requests(RegionId::Huzhou), s.requests(RegionId::Hangzhou));
    let refused = |status: u16, body: &Value| {
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("audit_unavailable")),
            "{body}"
        );
    };
    let (status, body, headers) = s.lookup(&platform, RegionId::Huzhou, &subjects[1]).await;
    refused(status, &body);
    assert!(headers.contains_key("retry-after"));
    let r = platform
        .post(s.url("/v1/lookup/batch"))
        .json(&json!({ "items": batch_items(RegionId::Huzhou, &subjects[2..5], 3) }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    refused(status, &r.json().await.unwrap());
    let r = checkpoint
        .post(s.url("/v1/verify"))
        .json(&json!({ "qr": subjects[6].qr }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    refused(status, &r.json().await.unwrap());
    assert_eq!(
        (s.requests(RegionId::Huzhou), s.requests(RegionId::Hangzhou)),
        before,
        "no region was asked while the trail could not record"
    );
    // Writable again: the trail recovers and lookups are served (and audited) again.
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o755)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while readyz(&s).await["audit_healthy"] != true {
        assert!(Instant::now() < deadline, "the trail never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body, _) = s.lookup(&platform, RegionId::Huzhou, &subjects[1]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.requests(RegionId::Huzhou), before.0 + 1);
}

/// A region guard of Hangzhou at `per_s` with `queue_ms`, paced through `tier` (one
/// instance of several sharing the Redis tier).
fn shared_guard(
    tier: &Arc<hcgw::protect::redis_tier::RedisTier>,
    per_s: u32,
    queue_ms: u64,
) -> Arc<hcgw::protect::region::RegionGuard> {
    let entry: hcgw::config::RegionEntry = toml::from_str(&format!(
        "base_url = \"http://127.0.0.1:1\"\nrate_limit_per_s = {per_s}\nqueue_ms = {queue_ms}\nmax_concurrency = 1000"
    ))
    .unwrap();
    let mut g = hcgw::protect::region::RegionGuard::new(
        RegionId::Hangzhou,
        &entry,
        hcgw::config::BreakerSection::default(),
        Arc::new(hcgw::protect::SystemClock),
    );
    g.set_shared(Some(tier.clone()));
    Arc::new(g)
}

/// Admits `n` concurrent calls through `guards` (round robin); returns each call's outcome
/// and the instant it was admitted or refused.
async fn admit_all(
    guards: &[Arc<hcgw::protect::region::RegionGuard>],
    n: usize,
) -> Vec<(bool, Instant, Option<String>)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let g = guards[i % guards.len()].clone();
            tokio::spawn(async move {
                let r = g.admit().await;
                let at = Instant::now();
                match r {
                    Ok(permit) => {
                        drop(permit);
                        (true, at, None)
                    }
                    Err(e) => (false, at, Some(e.code.as_str().to_owned())),
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Many concurrent callers on the global region pace (two guards sharing a real Redis, as two
/// instances would): each makes exactly one Redis call, its slot reserved and then waited
/// for, so there is no retry herd after a stall; together they never go faster than the
/// rate; a caller whose slot would come after its queue time is refused and takes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_on_the_shared_region_pace_reserve_their_slots_with_one_call_each() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("redis_entry_key");
    std::fs::write(&key, "an entry key of this test only").unwrap();
    let section: hcgw::config::RedisSection = toml::from_str(&format!(
        "enabled = true\nurl = \"{}\"\nentry_key = {{ file = \"{}\" }}",
        redis.url(),
        key.display()
    ))
    .unwrap();
    let tier = hcgw::protect::redis_tier::RedisTier::start(&section).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tier.degraded() {
        assert!(Instant::now() < deadline, "the tier never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 50/s: calls 22 ms apart (the 10% margin); 100 calls span ~2.2 s, within 3 s.
    let patient = [shared_guard(&tier, 50, 3000), shared_guard(&tier, 50, 3000)];
    // One call first, so that the script is loaded (EVALSHA's first NOSCRIPT is not counted).
    assert!(admit_all(&patient, 1).await[0].0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let evalsha = || redis.calls().get("evalsha").copied().unwrap_or(0);
    let before = evalsha();
    let started = Instant::now();
    let got = admit_all(&patient, 100).await;
    let refused: Vec<_> = got.iter().filter(|g| !g.0).collect();
    assert!(refused.is_empty(), "all fit in the queue time: {refused:?}");
    assert_eq!(
        evalsha() - before,
        100,
        "one Redis call per caller, no retries"
    );
    let at: Vec<Instant> = got.iter().map(|g| g.1).collect();
    let span = at.iter().max().unwrap().duration_since(started);
    assert!(
        span >= Duration::from_millis(99 * 22 * 9 / 10),
        "100 calls at 50/s (+10%) take ~2.2 s, not {span:?}"
    );
    let most = most_in_window(&at, Duration::from_secs(1));
    assert!(most <= 50, "{most} calls in one second at 50/s");

    // Impatient callers: 60 at once with 500 ms of queue time. Slots 22 ms apart: those due
    // within 500 ms pass (~23), the others are refused at once and take no slot.
    let impatient = [shared_guard(&tier, 50, 500), shared_guard(&tier, 50, 500)];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = evalsha();
    let started = Instant::now();
    let got = admit_all(&impatient, 60).await;
    assert_eq!(evalsha() - before, 60, "one Redis call per caller");
    let passed = got.iter().filter(|g| g.0).count();
    assert!((18..=24).contains(&passed), "{passed} of 60 passed");
    for (ok, at, code) in &got {
        let waited = at.duration_since(started);
        if *ok {
            assert!(
                waited <= Duration::from_millis(700),
                "admitted after {waited:?}"
            );
        } else {
            assert_eq!(code.as_deref(), Some("upstream_rate_limited"));
            assert!(
                waited <= Duration::from_millis(200),
                "refused after {waited:?}"
            );
        }
    }
    // The refused took nothing: once the admitted are through, the next call passes at once.
    let last = got.iter().filter(|g| g.0).map(|g| g.1).max().unwrap();
    tokio::time::sleep_until((last + Duration::from_millis(30)).into()).await;
    let t = Instant::now();
    assert!(admit_all(&impatient, 1).await[0].0);
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
}
