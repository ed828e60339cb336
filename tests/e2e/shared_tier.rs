//! The authenticated shared tier, against a real `redis-server` on a free port and two
//! in-process gateways sharing it: entries forged in Redis (edited, copied from another key,
//! of another region, in the old unauthenticated format) are misses, counted in
//! `hcgw_shared_cache_rejected_total{reason}`, and the answer is fetched afresh from the
//! region; a provisional entry keeps its short TTL (and its `provisional` flag) through Redis.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hcgw::protect::redis_tier::{EntrySealer, StoredEntry};
use hcgw_adapters::{Color, Level, RegionId, Secret, Subject};
use hcgw_sim::{Fate, Intended, RegionSim, RunningSim, SimEnv, SimOptions, SimSubject};
use serde_json::{Value, json};

use crate::protect::Redis;
use crate::support::{TlsPaths, config_text, eventually, pki, start_gateway};
use crate::support::{sim_client, sim_url};
use crate::world::fresh_client;

/// A simulator and the intended answer of each subject.
struct Sim {
    sim: Arc<dyn RegionSim>,
    running: RunningSim,
}

impl Sim {
    async fn start(region: RegionId) -> Sim {
        let sim = hcgw_sim::all()
            .into_iter()
            .find(|s| s.region() == region)
            .unwrap();
        let options = SimOptions {
            population: 300,
            ..SimOptions::default()
        };
        let env = SimEnv { pki_dir: pki() };
        let running = hcgw_sim::spawn(sim.clone(), &options, env, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Sim { sim, running }
    }

    /// Active subjects whose QR lookup is intended to satisfy `f`.
    fn subjects(&self, f: impl Fn(&Intended) -> bool) -> Vec<SimSubject> {
        self.running
            .context
            .population
            .subjects()
            .iter()
            .filter(|s| s.fate == Fate::Active && f(&self.sim.intended_for(s, true)))
            .cloned()
            .collect()
    }

    fn requests(&self) -> u64 {
        self.running.context.requests.load(Ordering::SeqCst)
    }
}

/// Two gateways (A and B) serving Hangzhou and Huzhou from the simulators, sharing `redis`.
/// Huzhou's shortest TTL is 2 s (unknown colours), so a provisional green lives 2 s.
async fn two_gateways(
    redis: &Redis,
    hz: &Sim,
    huz: &Sim,
) -> Vec<(hcgw::app::Gateway, tempfile::TempDir)> {
    let p = |rel: &str| format!("{:?}", pki().join(rel).display().to_string());
    let mut out = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!(
            r#"
[redis]
enabled = true
url = "{url}"
entry_key = {{ file = {entry_key} }}

[regions.hangzhou]
base_url = "{hz}"
[regions.hangzhou.auth]
appcode = {{ file = {hz_code} }}

[regions.huzhou]
base_url = "{huz}"
[regions.huzhou.ttl]
green_s = 60
unknown_s = 2
[regions.huzhou.auth]
token = {{ file = {huz_token} }}
"#,
            url = redis.url(),
            entry_key = p("secrets/redis_entry_key"),
            hz = sim_url(&hz.running),
            huz = sim_url(&huz.running),
            hz_code = p("secrets/hangzhou_appcode"),
            huz_token = p("secrets/huzhou_token"),
        );
        let text = config_text(&TlsPaths::standard(), &dir.path().join("audit"), &extra);
        let gw = start_gateway(&text, dir.path()).await;
        let shared = gw.state.shared.clone().expect("redis enabled");
        eventually(15, "the gateway reaches Redis", async || !shared.degraded()).await;
        out.push((gw, dir));
    }
    out
}

/// `POST /v1/lookup` of a QR subject: HTTP status and body.
async fn lookup(
    client: &reqwest::Client,
    gw: &hcgw::app::Gateway,
    region: RegionId,
    s: &SimSubject,
) -> (u16, Value) {
    let r = client
        .post(format!(
            "https://localhost:{}/v1/lookup",
            gw.api_addr.port()
        ))
        .json(&json!({ "region": region, "subject": { "qr": s.qr } }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `hcgw_shared_cache_rejected_total{reason}` as `gw`'s admin port shows it.
async fn rejected(gw: &hcgw::app::Gateway, reason: &str) -> u64 {
    let text = sim_client()
        .get(format!("http://{}/metrics", gw.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("hcgw_shared_cache_rejected_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The Redis key of a QR lookup of a region served locally.
fn redis_key(region: RegionId, s: &SimSubject) -> (String, String) {
    let key = std::fs::read_to_string(pki().join("secrets/subject_hash_key")).unwrap();
    let hasher = hcgw::subject::SubjectHasher::new(Secret::new(key.trim()));
    let cache_key = hasher.cache_key(region, &Subject::QrToken(s.token.clone()));
    (format!("hcgw:c:{cache_key}"), cache_key)
}

fn sealer() -> EntrySealer {
    let key = std::fs::read_to_string(pki().join("secrets/redis_entry_key")).unwrap();
    EntrySealer::new(&Secret::new(key.trim()))
}

/// Makes a forged Redis value for a cache key.
type Forge<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// The payload of an L2 value (`hcgw-l2/1.<mac>.<json>`).
fn payload(value: &str) -> StoredEntry {
    let json = value.splitn(3, '.').nth(2).expect("tag.mac.json");
    serde_json::from_str(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_entries_in_redis_are_misses_counted_and_fetched_afresh() {
    let redis = Redis::start();
    let (hz, huz) = (
        Sim::start(RegionId::Hangzhou).await,
        Sim::start(RegionId::Huzhou).await,
    );
    let gws = two_gateways(&redis, &hz, &huz).await;
    let (a, b) = (&gws[0].0, &gws[1].0);
    let mut r = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let client = fresh_client("platform-shanghai");
    let greens = hz.subjects(|i| {
        i.error.is_none()
            && i.color == Color::Green
            && i.level == Level::Clear
            && i.actions.is_empty()
    });
    let reds = hz.subjects(|i| i.error.is_none() && i.color == Color::Red);
    assert!(reds.len() >= 5, "enough red subjects");

    // A genuine green entry, written by A.
    let green = &greens[0];
    let (status, body) = lookup(&client, a, RegionId::Hangzhou, green).await;
    assert_eq!(
        (status, &body["status"]["color"]),
        (200, &json!("green")),
        "{body}"
    );
    let (green_key, _) = redis_key(RegionId::Hangzhou, green);
    let genuine: String = redis::cmd("GET").arg(&green_key).query(&mut r).unwrap();
    assert!(genuine.starts_with("hcgw-l2/1."), "{genuine}");
    // The control: B serves it from Redis without asking the region.
    let before = hz.requests();
    let (_, body) = lookup(&client, b, RegionId::Hangzhou, green).await;
    assert_eq!(body["cache"]["hit"], true, "{body}");
    assert_eq!(hz.requests(), before);

    // A red subject's entry, edited to green without the key (the MAC no longer verifies).
    let red = &reds[0];
    lookup(&client, a, RegionId::Hangzhou, red).await;
    let (red_key, _) = redis_key(RegionId::Hangzhou, red);
    let red_value: String = redis::cmd("GET").arg(&red_key).query(&mut r).unwrap();
    let edited = red_value.replacen(
        r#""color":"red","level":"quarantine""#,
        r#""color":"green","level":"clear""#,
        1,
    );
    assert_ne!(
        edited, red_value,
        "the entry holds the red status: {red_value}"
    );
    // The region-changed green, sealed with the real key: authentic, but of another region.
    let mut other_region = payload(&genuine);
    other_region.region = RegionId::Huzhou;
    if let Some(s) = &mut other_region.status {
        s.region = RegionId::Huzhou;
    }
    // The old format: plain JSON of a green status, as the tier stored it before.
    let plain =
        json!({ "status": payload(&genuine).status, "inserted_ms": payload(&genuine).inserted_ms })
            .to_string();
    let cases: Vec<(&str, &SimSubject, Forge)> = vec![
        ("mac", red, Box::new(move |_| edited.clone())),
        ("key", &reds[1], Box::new(|_| genuine.clone())),
        (
            "region",
            &reds[2],
            Box::new(move |cache_key: &str| {
                sealer().seal_entry(&StoredEntry {
                    key: cache_key.to_owned(),
                    ..other_region.clone()
                })
            }),
        ),
        ("format", &reds[3], Box::new(move |_| plain.clone())),
    ];
    for (reason, subject, forge) in cases {
        let (key, cache_key) = redis_key(RegionId::Hangzhou, subject);
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(forge(&cache_key))
            .arg("PX")
            .arg(60_000)
            .query(&mut r)
            .unwrap();
        let (counted, asked) = (rejected(b, reason).await, hz.requests());
        let (status, body) = lookup(&client, b, RegionId::Hangzhou, subject).await;
        assert_eq!(status, 200, "{reason}: {body}");
        assert_eq!(
            body["status"]["color"], "red",
            "{reason}: never the forged green: {body}"
        );
        assert_ne!(body["recognition"]["decision"], "pass", "{reason}: {body}");
        assert_eq!(body["cache"]["hit"], false, "{reason}: a miss: {body}");
        assert_eq!(
            hz.requests(),
            asked + 1,
            "{reason}: fetched afresh from the region"
        );
        assert_eq!(rejected(b, reason).await, counted + 1, "{reason}: counted");
        // The fresh answer replaced the forged entry: authentic and red now, and A (which
        // never asked, or holds it already) serves the red.
        let value: String = redis::cmd("GET").arg(&key).query(&mut r).unwrap();
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        let entry = sealer()
            .open(&cache_key, RegionId::Hangzhou, &value, now_ms)
            .unwrap_or_else(|e| panic!("{reason}: {e:?}: {value}"));
        assert_eq!(entry.status.unwrap().color, Color::Red, "{reason}");
        let (_, body) = lookup(&client, a, RegionId::Hangzhou, subject).await;
        assert_eq!(
            (&body["status"]["color"], &body["cache"]["hit"]),
            (&json!("red"), &json!(true)),
            "{reason}: {body}"
        );
    }

    // An entry kept by Redis without expiry was not written by a gateway.
    let subject = &reds[4];
    let (key, cache_key) = redis_key(RegionId::Hangzhou, subject);
    let forever = StoredEntry {
        key: cache_key.clone(),
        inserted_ms: chrono::Utc::now().timestamp_millis() as u64,
        ..payload(&red_value)
    };
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(sealer().seal_entry(&forever))
        .query(&mut r)
        .unwrap();
    let (counted, asked) = (rejected(b, "time").await, hz.requests());
    let (_, body) = lookup(&client, b, RegionId::Hangzhou, subject).await;
    assert_eq!(body["cache"]["hit"], false, "{body}");
    assert_eq!(body["status"]["color"], "red", "{body}");
    assert_eq!(hz.requests(), asked + 1);
    assert_eq!(rejected(b, "time").await, counted + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisional_entry_keeps_its_short_ttl_and_flag_through_redis() {
    let redis = Redis::start();
    let (hz, huz) = (
        Sim::start(RegionId::Hangzhou).await,
        Sim::start(RegionId::Huzhou).await,
    );
    let gws = two_gateways(&redis, &hz, &huz).await;
    let (a, b) = (&gws[0].0, &gws[1].0);
    let mut r = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let green = |provisional: bool| {
        move |i: &Intended| {
            i.error.is_none()
                && i.color == Color::Green
                && i.actions.is_empty()
                && i.label.contains("locationOff") == provisional
        }
    };
    let provisional = huz.subjects(green(true))[0].clone();
    let lasting = huz.subjects(green(false))[0].clone();
    let platform = fresh_client("platform-shanghai");
    let peer = fresh_client("peer-jiangsu");

    for s in [&provisional, &lasting] {
        let (status, body) = lookup(&platform, a, RegionId::Huzhou, s).await;
        assert_eq!(
            (status, &body["status"]["color"]),
            (200, &json!("green")),
            "{body}"
        );
    }
    // In Redis: the provisional one with its flag and a TTL of at most 2 s.
    let (key, _) = redis_key(RegionId::Huzhou, &provisional);
    let value: String = redis::cmd("GET").arg(&key).query(&mut r).unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut r).unwrap();
    let stored = payload(&value);
    assert!(stored.provisional, "{value}");
    assert_eq!(stored.ttl_ms, 2000, "{value}");
    assert!((1..=2000).contains(&pttl), "PTTL {pttl}");
    let (key, _) = redis_key(RegionId::Huzhou, &lasting);
    assert!(!payload(&redis::cmd("GET").arg(&key).query::<String>(&mut r).unwrap()).provisional);

    // B serves both from Redis; to a peer, the provisional flag travels on (a downstream
    // gateway caches it briefly too).
    let before = huz.requests();
    for (s, flag) in [(&provisional, true), (&lasting, false)] {
        let (status, body) = lookup(&peer, b, RegionId::Huzhou, s).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["cache"]["hit"], true, "{body}");
        assert_eq!(body["federation"]["provisional"], flag, "{body}");
    }
    assert_eq!(huz.requests(), before, "both from Redis");

    // After 2 s the provisional one is asked again on B; the other is still cached.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = huz.requests();
    let (_, body) = lookup(&platform, b, RegionId::Huzhou, &provisional).await;
    assert_eq!(
        body["cache"]["hit"], false,
        "provisional: 2 s at most: {body}"
    );
    assert_eq!(huz.requests(), before + 1);
    let (_, body) = lookup(&platform, b, RegionId::Huzhou, &lasting).await;
    assert_eq!(body["cache"]["hit"], true, "{body}");
    assert_eq!(huz.requests(), before + 1);
}

/// `check-config` requires `redis.entry_key` when Redis is enabled: present, readable, at
/// least 16 characters and not the subject key.
#[test]
fn the_entry_key_is_required_and_checked_when_redis_is_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let short = d.join("short");
    std::fs::write(&short, "0123456789").unwrap();
    let p = |f: &std::path::Path| format!("{:?}", f.display().to_string());
    let redis = |entry_key: Option<String>| {
        let base = config_text(&TlsPaths::standard(), &d.join("audit"), "");
        let key = entry_key
            .map(|k| format!("entry_key = {{ file = {k} }}\n"))
            .unwrap_or_default();
        format!("{base}\n[redis]\nenabled = true\nurl = \"redis://127.0.0.1:1\"\n{key}")
    };
    let problems = |text: String| match hcgw::config::load_str(&text, &d.join("c.toml")) {
        Ok(_) => vec![],
        Err(e) => e
            .problems()
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>(),
    };
    for (entry_key, expected) in [
        (None, "required when redis.enabled"),
        (Some(p(&d.join("missing"))), "cannot read secret file"),
        (Some(p(&short)), "at least 16 characters"),
        (
            Some(p(&pki().join("secrets/subject_hash_key"))),
            "must differ from cache.subject_key",
        ),
    ] {
        let found = problems(redis(entry_key.clone()));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("redis.entry_key: ") && p.contains(expected)),
            "{entry_key:?}: expected `{expected}`, got {found:?}"
        );
        // The value of a secret never appears in a problem.
        assert!(!found.iter().any(|p| p.contains("0123456789")), "{found:?}");
    }
    let ok = problems(redis(Some(p(&pki().join("secrets/redis_entry_key")))));
    assert_eq!(ok, Vec::<String>::new());
    // Disabled, it is not needed.
    let base = config_text(
        &TlsPaths::standard(),
        &d.join("audit"),
        "[redis]\nenabled = false\n",
    );
    assert_eq!(problems(base), Vec::<String>::new());
}

/// What an idle gateway shows of the shared tier: `redis_degraded` in `/readyz`,
/// `shared_tier.degraded` in `/v1/regions` and the `hcgw_redis_degraded` gauge.
async fn shown_degraded(gw: &hcgw::app::Gateway) -> (Value, Value, Option<String>) {
    let readyz: Value = sim_client()
        .get(format!("http://{}/readyz", gw.admin_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let regions: Value = fresh_client("ops")
        .get(format!(
            "https://localhost:{}/v1/regions",
            gw.api_addr.port()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metrics = sim_client()
        .get(format!("http://{}/metrics", gw.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hcgw_redis_degraded "))
        .map(|v| v.trim().to_string());
    (
        readyz["redis_degraded"].clone(),
        regions["shared_tier"]["degraded"].clone(),
        gauge,
    )
}

/// Redis is probed in the background: with no request at all, killing it shows as degraded
/// in `/readyz`, `/v1/regions` and `hcgw_redis_degraded` within a few seconds, and
/// restarting it clears all three again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_notices_redis_going_and_coming_back_within_seconds() {
    let mut redis = Redis::start();
    let (hz, huz) = (
        Sim::start(RegionId::Hangzhou).await,
        Sim::start(RegionId::Huzhou).await,
    );
    let gws = two_gateways(&redis, &hz, &huz).await;
    let healthy = (json!(false), json!(false), Some("0".to_string()));
    let degraded = (json!(true), json!(true), Some("1".to_string()));
    for (gw, _) in &gws {
        eventually(5, "healthy shown", async || {
            shown_degraded(gw).await == healthy
        })
        .await;
    }
    let (hz_before, huz_before) = (hz.requests(), huz.requests());

    redis.kill();
    let t = std::time::Instant::now();
    for (gw, _) in &gws {
        eventually(5, "degraded shown with no traffic", async || {
            shown_degraded(gw).await == degraded
        })
        .await;
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    redis.restart();
    for (gw, _) in &gws {
        eventually(10, "recovery shown with no traffic", async || {
            shown_degraded(gw).await == healthy
        })
        .await;
    }
    // Looking at the gateways asked no region anything.
    assert_eq!((hz.requests(), huz.requests()), (hz_before, huz_before));
}

/// A Redis that stops answering (SIGSTOP: connections stay open, nothing comes back) is
/// left to the background probe: once the tier shows degraded, requests send Redis
/// nothing, so none of them waits out its timeout. Counted by Redis itself: what was sent
/// while it was stopped runs when it resumes, and nothing but the probes' PINGs arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_tier_is_not_touched_by_requests() {
    let redis = Redis::start();
    let (hz, huz) = (
        Sim::start(RegionId::Hangzhou).await,
        Sim::start(RegionId::Huzhou).await,
    );
    let gws = two_gateways(&redis, &hz, &huz).await;
    let (gw, _) = &gws[0];
    let shared = gw.state.shared.clone().unwrap();
    let client = fresh_client("platform-shanghai");
    let subjects = hz.subjects(|i| i.error.is_none());
    let (status, body) = lookup(&client, gw, RegionId::Hangzhou, &subjects[0]).await;
    assert_eq!(status, 200, "{body}");
    // The miss asked the tier and stored its answer there (settled before counting).
    let mut before = redis.calls();
    eventually(5, "the tier's traffic settles", async || {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = redis.calls();
        let settled = now == before && now.values().sum::<u64>() >= 2;
        before = now;
        settled
    })
    .await;

    redis.signal("-STOP");
    eventually(5, "the probe marks the tier degraded", async || {
        shared.degraded()
    })
    .await;
    for s in &subjects[1..6] {
        for _ in 0..2 {
            let (status, body) = lookup(&client, gw, RegionId::Hangzhou, s).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    redis.signal("-CONT");
    eventually(10, "the probe finds Redis back", async || {
        !shared.degraded()
    })
    .await;
    assert_eq!(redis.calls(), before, "commands sent to a degraded tier");
}
