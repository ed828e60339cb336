//! Federation: several gateways in this process (`hcgw::app::start` on real ports, real
//! mTLS between them with the dev PKI's gateway certificates), each hosting its provinces'
//! regions against the simulators: forwarding by region, recognition decided by the gateway
//! the caller talks to, certificate checks of peers, on-behalf-of capping, loops and hop
//! limits, a peer down, fail-over, and the audit trail on both sides.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hcgw_adapters::{Action, Color, Level, RegionId};
use hcgw_sim::{Fate, Intended, RegionSim, SimContext, SimEnv, SimOptions, SimSubject};
use serde_json::{Value, json};

use crate::support::{
    CLIENTS, api_client, client, eventually, pki, pki_path, region_section, sim_url,
};

// ------------------------------------------------------------------ simulators

struct Sim {
    sim: Arc<dyn RegionSim>,
    ctx: Arc<SimContext>,
    base_url: String,
}

impl Sim {
    /// An active subject whose QR lookup is intended to satisfy `f`.
    fn find(&self, f: impl Fn(&Intended) -> bool) -> SimSubject {
        self.ctx
            .population
            .subjects()
            .iter()
            .find(|s| s.fate == Fate::Active && f(&self.sim.intended_for(s, true)))
            .cloned()
            .unwrap_or_else(|| panic!("{}: no subject of that kind", self.sim.region()))
    }

    fn intended(&self, s: &SimSubject) -> Intended {
        self.sim.intended_for(s, true)
    }

    /// Like `find`, skipping the first `skip` matches: a subject nobody asked about yet,
    /// so that no cached answer hides what a test is about.
    fn find_nth(&self, skip: usize, f: impl Fn(&Intended) -> bool) -> SimSubject {
        self.ctx
            .population
            .subjects()
            .iter()
            .filter(|s| s.fate == Fate::Active && f(&self.sim.intended_for(s, true)))
            .nth(skip)
            .cloned()
            .unwrap_or_else(|| panic!("{}: not enough subjects of that kind", self.sim.region()))
    }
}

/// The simulators of every region, in a background runtime for the whole test process
/// (not shared with the `world` of the lookup tests, whose tests switch simulators down).
fn sims() -> &'static BTreeMap<RegionId, Sim> {
    static SIMS: OnceLock<BTreeMap<RegionId, Sim>> = OnceLock::new();
    SIMS.get_or_init(|| {
        let env = SimEnv { pki_dir: pki() };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let options = SimOptions {
                    population: 200,
                    ..SimOptions::default()
                };
                let mut out = Vec::new();
                for sim in hcgw_sim::all() {
                    let running = hcgw_sim::spawn(
                        sim.clone(),
                        &options,
                        env.clone(),
                        "127.0.0.1:0".parse().unwrap(),
                    )
                    .await
                    .expect("simulator starts");
                    out.push((sim, running.context.clone(), sim_url(&running)));
                    std::mem::forget(running);
                }
                tx.send(out).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv()
            .expect("simulators started")
            .into_iter()
            .map(|(sim, ctx, base_url)| (sim.region(), Sim { sim, ctx, base_url }))
            .collect()
    })
}

fn sim(r: RegionId) -> &'static Sim {
    &sims()[&r]
}

// ------------------------------------------------------------------ gateways

/// A peer entry of a gateway configuration.
#[derive(Clone)]
struct PeerSpec {
    /// Its name (`hcgw-jiangsu`).
    name: &'static str,
    port: u16,
    regions: Vec<RegionId>,
    /// `server_name` (default: the gateway's name).
    server_name: Option<&'static str>,
    pinned_sha256: Option<String>,
    /// `max_concurrency` (default: the gateway's).
    max_concurrency: Option<u32>,
}

impl PeerSpec {
    fn new(name: &'static str, port: u16, regions: &[RegionId]) -> Self {
        PeerSpec {
            name,
            port,
            regions: regions.to_vec(),
            server_name: None,
            pinned_sha256: None,
            max_concurrency: None,
        }
    }
}

/// One gateway to start.
struct GwSpec {
    /// `hcgw-shanghai`, … (its certificate is `gateways/<name>`).
    name: &'static str,
    /// 0 for any.
    port: u16,
    regions: Vec<RegionId>,
    peers: Vec<PeerSpec>,
    /// The `max_on_behalf_of` of the other gateways as this one's clients.
    peer_max: &'static str,
    max_hops: u32,
    circuit_failures: u32,
    /// `acts_for` of other gateways as this one's clients (gateway name, TOML list);
    /// default: their own jurisdiction.
    acts_for: Vec<(&'static str, &'static str)>,
}

impl GwSpec {
    fn new(name: &'static str, regions: &[RegionId]) -> Self {
        GwSpec {
            name,
            port: 0,
            regions: regions.to_vec(),
            peers: Vec::new(),
            peer_max: "platform",
            max_hops: 2,
            circuit_failures: 3,
            acts_for: Vec::new(),
        }
    }
}

/// The gateways of the dev PKI (name, jurisdiction).
const GATEWAYS: [(&str, &str); 4] = [
    ("hcgw-shanghai", "shanghai"),
    ("hcgw-jiangsu", "jiangsu"),
    ("hcgw-guangdong", "guangdong"),
    ("hcgw-zhejiang", "zhejiang"),
];

struct Gw {
    gw: hcgw::app::Gateway,
    audit_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gw {
    fn port(&self) -> u16 {
        self.gw.api_addr.port()
    }

    /// Every audit record written so far.
    fn audit(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.audit_dir) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.extend(
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
                );
            }
        }
        out
    }

    /// Waits for an audit record satisfying `f`.
    async fn audited(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        eventually(20, what, async || {
            found = self.audit().into_iter().find(|r| f(r));
            found.is_some()
        })
        .await;
        found.unwrap()
    }
}

fn config(spec: &GwSpec, audit_dir: &std::path::Path) -> String {
    let mut text = format!(
        r#"
[gateway]
name = "{name}"
log_level = "warn"

[listener]
addr = "127.0.0.1:{port}"

[admin]
addr = "127.0.0.1:0"

[tls]
cert = {cert}
key = {key}
client_ca = [{ca}]
crls = [{crl1}, {crl2}]

[cache]
subject_key = {{ file = {subject} }}

[audit]
dir = {audit:?}

[signing]
key = {sign_key}
cert = {sign_cert}

[federation]
max_hops = {max_hops}
circuit_failures = {circuit_failures}
circuit_open_ms = 60000
{CLIENTS}
"#,
        name = spec.name,
        port = spec.port,
        cert = pki_path(&format!("gateways/{}/cert.pem", spec.name)),
        key = pki_path(&format!("gateways/{}/key.pem", spec.name)),
        ca = pki_path("ca-bundle.pem"),
        crl1 = pki_path("crl/intermediate.crl.pem"),
        crl2 = pki_path("crl/root.crl.pem"),
        subject = pki_path("secrets/subject_hash_key"),
        audit = audit_dir.display().to_string(),
        sign_key = pki_path(&format!("signing/{}/key.pem", spec.name)),
        sign_cert = pki_path(&format!("signing/{}/cert.pem", spec.name)),
        max_hops = spec.max_hops,
        circuit_failures = spec.circuit_failures,
    );
    // The other gateways are known as peers (by their certificate subject).
    for (name, jurisdiction) in GATEWAYS.iter().filter(|(n, _)| *n != spec.name) {
        text.push_str(&format!(
            "\n[[clients]]\nname = \"{name}\"\nrole = \"peer\"\njurisdiction = \"{jurisdiction}\"\nsubject = \"O={jurisdiction}, OU=peer, CN={name}\"\nmax_on_behalf_of = \"{}\"\n",
            spec.peer_max
        ));
        if let Some((_, list)) = spec.acts_for.iter().find(|(n, _)| n == name) {
            text.push_str(&format!("acts_for = {list}\n"));
        }
    }
    for r in &spec.regions {
        text.push_str(&region_section(*r, &sim(*r).base_url));
    }
    for peer in &spec.peers {
        let regions: Vec<String> = peer.regions.iter().map(|r| format!("\"{r}\"")).collect();
        text.push_str(&format!(
            "\n[[peers]]\nname = \"{name}\"\nurl = \"https://127.0.0.1:{port}\"\nregions = [{regions}]\nca = {ca}\nserver_name = \"{server_name}\"\nclient_cert = {cert}\nclient_key = {key}\ndeadline_ms = 8000\n",
            name = peer.name,
            port = peer.port,
            regions = regions.join(", "),
            ca = pki_path("root/ca.pem"),
            server_name = peer.server_name.unwrap_or(peer.name),
            cert = pki_path(&format!("gateways/{}/cert.pem", spec.name)),
            key = pki_path(&format!("gateways/{}/key.pem", spec.name)),
        ));
        if let Some(pin) = &peer.pinned_sha256 {
            text.push_str(&format!("pinned_sha256 = \"{pin}\"\n"));
        }
        if let Some(n) = peer.max_concurrency {
            text.push_str(&format!("max_concurrency = {n}\n"));
        }
    }
    text.push_str(
        r#"
[[recognition.agreements]]
id = "yrd-mutual-recognition"
members = ["shanghai", "jiangsu", "zhejiang", "anhui"]
exclude_code_systems = ["xuzhou"]

[[recognition.agreements]]
id = "guangdong-interop"
members = ["guangdong"]

[[recognition.agreements]]
id = "xuzhou-within-jiangsu"
members = ["jiangsu"]
code_systems = ["xuzhou"]
"#,
    );
    text
}

async fn try_start(spec: &GwSpec) -> Result<Gw, hcgw::app::StartError> {
    let _ = sims();
    let dir = tempfile::tempdir().unwrap();
    let audit_dir = dir.path().join("audit");
    let path = dir.path().join("hcgw.toml");
    std::fs::write(&path, config(spec, &audit_dir)).unwrap();
    let config = hcgw::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let gw = hcgw::app::start(config).await?;
    Ok(Gw {
        gw,
        audit_dir,
        _dir: dir,
    })
}

async fn start(spec: GwSpec) -> Gw {
    try_start(&spec).await.expect("gateway starts")
}

/// A port that was free a moment ago (another process may take it: callers retry).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two gateways that name each other as peers (so each must know the other's port before
/// it starts): ports are picked free and the pair is retried if one was taken meanwhile.
async fn start_pair(a: impl Fn(u16, u16) -> GwSpec, b: impl Fn(u16, u16) -> GwSpec) -> (Gw, Gw) {
    for _ in 0..10 {
        let (pa, pb) = (free_port(), free_port());
        let Ok(ga) = try_start(&a(pa, pb)).await else {
            continue;
        };
        match try_start(&b(pa, pb)).await {
            Ok(gb) => return (ga, gb),
            Err(_) => ga.gw.shutdown().await,
        }
    }
    panic!("could not start two gateways on free ports");
}

/// A port where connections are accepted and dropped at once: a peer that is "down".
async fn dead_peer() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            drop(tcp);
        }
    });
    port
}

/// The SHA-256 of a gateway's leaf certificate (lowercase hex).
fn fingerprint(gateway: &str) -> String {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let leaf = CertificateDer::pem_file_iter(pki().join(format!("gateways/{gateway}/cert.pem")))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    hcgw::identity::fingerprint(leaf.as_ref())
}

// ------------------------------------------------------------------ calls

/// An API client presenting `dir`'s certificate (`clients/<name>` or `gateways/<name>`).
fn http(dir: Option<PathBuf>) -> reqwest::Client {
    api_client(dir.as_deref(), Duration::from_secs(30))
}

async fn call(
    as_client: &reqwest::Client,
    gw: &Gw,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Value) {
    let mut req = as_client
        .post(format!("https://localhost:{}{path}", gw.port()))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(as_name: &str, gw: &Gw, path: &str, body: &Value) -> (u16, Value) {
    call(&http(Some(client(as_name))), gw, path, &[], body).await
}

fn green_clear_no_actions(i: &Intended) -> bool {
    i.error.is_none() && i.color == Color::Green && i.level == Level::Clear && i.actions.is_empty()
}

const CHECKPOINT_FIELDS: [&str; 5] = ["region", "color", "level", "as_of", "holder"];

fn only_checkpoint_fields(status: &Value) -> bool {
    status
        .as_object()
        .is_some_and(|o| o.keys().all(|k| CHECKPOINT_FIELDS.contains(&k.as_str())))
}

use RegionId::{Guangdong, Guangzhou, Suishen, Sukang, Suzhou, Xuzhou};

/// Jiangsu and Guangdong hosting their regions, Shanghai hosting Suishen with both as
/// peers.
async fn three(jiangsu_peer_max: &'static str) -> (Gw, Gw, Gw) {
    let jiangsu = start(GwSpec {
        peer_max: jiangsu_peer_max,
        ..GwSpec::new("hcgw-jiangsu", &[Sukang, Suzhou, Xuzhou])
    })
    .await;
    let guangdong = start(GwSpec::new("hcgw-guangdong", &[Guangdong, Guangzhou])).await;
    let shanghai = start(GwSpec {
        peers: vec![
            PeerSpec::new("hcgw-jiangsu", jiangsu.port(), &[Sukang, Suzhou, Xuzhou]),
            PeerSpec::new("hcgw-guangdong", guangdong.port(), &[Guangdong, Guangzhou]),
        ],
        ..GwSpec::new("hcgw-shanghai", &[Suishen])
    })
    .await;
    (shanghai, jiangsu, guangdong)
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_shanghai_checkpoint_verifies_suzhou_and_guangzhou_codes_through_peers() {
    let (shanghai, jiangsu, guangdong) = three("platform").await;

    // /v1/regions shows which peer serves what.
    let r = http(Some(client("ops")))
        .get(format!("https://localhost:{}/v1/regions", shanghai.port()))
        .send()
        .await
        .unwrap();
    let regions: Value = r.json().await.unwrap();
    let served = |id: &str| {
        regions["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["served"]
            .clone()
    };
    assert_eq!(
        served("suzhou"),
        json!({"kind": "peer", "peers": ["hcgw-jiangsu"]})
    );
    assert_eq!(
        served("guangzhou"),
        json!({"kind": "peer", "peers": ["hcgw-guangdong"]})
    );
    assert_eq!(served("suishen"), json!({"kind": "local"}));
    let state = |id: &str| {
        regions["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("suzhou"), "up", "{regions}");
    assert_eq!(
        state("hangzhou"),
        "down",
        "served by nobody here: {regions}"
    );

    // Suzhou: recognised in Shanghai under the YRD agreement, decided by Shanghai.
    let suzhou = sim(Suzhou).find(green_clear_no_actions);
    let (status, body) = post(
        "checkpoint-shanghai",
        &shanghai,
        "/v1/verify",
        &json!({ "qr": suzhou.qr, "checkpoint": "SH-HONGQIAO-RAIL-G12" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "pass", "{body}");
    assert_eq!(body["recognition"]["basis"], "yrd-mutual-recognition");
    assert_eq!(body["recognition"]["verifier"], "shanghai");
    assert_eq!(body["served_by"], "hcgw-shanghai");
    assert_eq!(body["status"]["region"], "suzhou");
    assert!(
        only_checkpoint_fields(&body["status"]),
        "a checkpoint never sees reasons, source or actions through a peer: {body}"
    );
    assert!(body.get("federation").is_none(), "hints are for peers only");

    // Guangzhou: not recognised in Shanghai.
    let guangzhou = sim(Guangzhou).find(|i| i.error.is_none() && i.color != Color::Unknown);
    let (status, body) = post(
        "checkpoint-shanghai",
        &shanghai,
        "/v1/verify",
        &json!({ "qr": guangzhou.qr }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["recognition"]["decision"], "register_locally",
        "{body}"
    );
    assert_eq!(body["recognition"]["basis"], "none");
    assert!(only_checkpoint_fields(&body["status"]), "{body}");

    // A green with a pending arrival registration stays a manual check through a peer,
    // although the checkpoint view carries no actions.
    let pending = sim(Sukang).find(|i| {
        i.error.is_none()
            && i.color == Color::Green
            && i.level == Level::Clear
            && i.actions
                .iter()
                .any(|a| matches!(a, Action::RegisterOnArrival | Action::UpdateIdentity))
    });
    let (status, body) = post(
        "checkpoint-shanghai",
        &shanghai,
        "/v1/verify",
        &json!({ "qr": pending.qr }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "manual_check", "{body}");
    assert!(only_checkpoint_fields(&body["status"]), "{body}");

    // A platform caller gets the full status through the peer.
    let intended = sim(Suzhou).intended(&suzhou);
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "suzhou", "subject": { "id_type": suzhou.id_type, "id_number": suzhou.id_number, "name": suzhou.name }, "purpose": "arrival-registration" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["color"], json!(intended.color));
    assert!(body["status"]["source"]["code"].is_string(), "{body}");
    assert!(body["status"]["reasons"].is_array(), "{body}");
    assert_eq!(body["recognition"]["decision"], "pass");

    // Errors of the peer's region keep their code.
    let gone = sim(Suzhou)
        .ctx
        .population
        .subjects()
        .iter()
        .find(|s| s.fate == Fate::NotFound)
        .cloned()
        .unwrap();
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "suzhou", "subject": { "qr": gone.qr } }),
    )
    .await;
    assert_eq!((status, &body["code"]), (404, &json!("subject_not_found")));

    // Batch: local and peer regions, answered in order.
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup/batch",
        &json!({ "items": [
            { "region": "guangzhou", "subject": { "qr": guangzhou.qr } },
            { "region": "suishen", "subject": { "qr": sim(Suishen).find(|i| i.error.is_none()).qr } },
            { "region": "suzhou", "subject": { "qr": suzhou.qr } },
            { "region": "suzhou", "subject": { "qr": gone.qr } },
        ] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"]["region"], "guangzhou", "{body}");
    assert_eq!(results[1]["status"]["region"], "suishen", "{body}");
    assert_eq!(results[2]["status"]["region"], "suzhou", "{body}");
    assert_eq!(results[2]["recognition"]["decision"], "pass");
    assert_eq!(results[3]["error"]["code"], "subject_not_found");

    // The audit trail on both sides records the hop.
    let sent = shanghai
        .audited("verify via hcgw-jiangsu in Shanghai's audit", |r| {
            r["endpoint"] == "verify"
                && r["region"] == "suzhou"
                && r["via_peer"] == "hcgw-jiangsu"
                && r["decision"] == "pass"
        })
        .await;
    assert_eq!(sent["caller"]["name"], "checkpoint-shanghai");
    let received = jiangsu
        .audited("lookup for checkpoint:shanghai in Jiangsu's audit", |r| {
            r["endpoint"] == "lookup"
                && r["region"] == "suzhou"
                && r["on_behalf_of"] == "checkpoint:shanghai"
        })
        .await;
    assert_eq!(received["caller"]["name"], "hcgw-shanghai");
    assert_eq!(received["caller"]["role"], "peer");
    // The original caller's purpose travels with the forwarded lookup.
    jiangsu
        .audited("the forwarded purpose in Jiangsu's audit", |r| {
            r["on_behalf_of"] == "platform:shanghai" && r["purpose"] == "arrival-registration"
        })
        .await;
    assert_eq!(
        received["subject_hash"], sent["subject_hash"],
        "same keyed hash on both sides (same key in this test)"
    );
    shanghai
        .audited("an error answered through a peer names it", |r| {
            r["error"] == "subject_not_found" && r["via_peer"] == "hcgw-jiangsu"
        })
        .await;
    guangdong
        .audited("lookup for checkpoint:shanghai in Guangdong's audit", |r| {
            r["region"] == "guangzhou" && r["on_behalf_of"] == "checkpoint:shanghai"
        })
        .await;
    shanghai
        .audited("batch item via hcgw-guangdong", |r| {
            r["endpoint"] == "batch" && r["via_peer"] == "hcgw-guangdong"
        })
        .await;
    // No personal data in any audit file.
    for gw in [&shanghai, &jiangsu, &guangdong] {
        let all = serde_json::to_string(&gw.audit()).unwrap();
        for secret in [
            &suzhou.token,
            &suzhou.id_number,
            &suzhou.name,
            &guangzhou.token,
        ] {
            assert!(!all.contains(secret.as_str()), "personal data in audit");
        }
    }
}

#[tokio::test]
async fn peers_with_the_wrong_certificate_or_none_are_refused() {
    // On port P runs the *Guangdong* gateway; Shanghai expects Jiangsu there.
    let guangdong = start(GwSpec::new("hcgw-guangdong", &[Guangdong, Guangzhou])).await;
    let gz = sim(Guangzhou).find(|i| i.error.is_none());
    let lookup = json!({ "region": "guangzhou", "subject": { "qr": gz.qr } });

    // A Shanghai gateway with the one peer `peer` for Guangzhou.
    let shanghai_with = |peer: PeerSpec| {
        start(GwSpec {
            peers: vec![peer],
            ..GwSpec::new("hcgw-shanghai", &[Suishen])
        })
    };
    // The lookup is refused because the peer's TLS handshake failed.
    let assert_handshake_refused = |(status, body): (u16, Value)| {
        assert_eq!(
            (status, &body["code"]),
            (503, &json!("region_unavailable")),
            "{body}"
        );
        assert_eq!(body["region"], "guangzhou");
        assert!(
            body["detail"].as_str().unwrap().contains("TLS handshake"),
            "{body}"
        );
    };

    // By name: the certificate says hcgw-guangdong, not hcgw-jiangsu.
    let by_name = shanghai_with(PeerSpec::new(
        "hcgw-jiangsu",
        guangdong.port(),
        &[Guangzhou],
    ))
    .await;
    assert_handshake_refused(post("platform-shanghai", &by_name, "/v1/lookup", &lookup).await);

    // By pin: a name every gateway certificate carries, but Jiangsu's fingerprint pinned.
    let by_pin = shanghai_with(PeerSpec {
        server_name: Some("localhost"),
        pinned_sha256: Some(fingerprint("hcgw-jiangsu")),
        ..PeerSpec::new("hcgw-jiangsu", guangdong.port(), &[Guangzhou])
    })
    .await;
    assert_handshake_refused(post("platform-shanghai", &by_pin, "/v1/lookup", &lookup).await);

    // The right pin is accepted (the control).
    let pinned_right = shanghai_with(PeerSpec {
        server_name: Some("localhost"),
        pinned_sha256: Some(fingerprint("hcgw-guangdong")),
        ..PeerSpec::new("hcgw-guangdong", guangdong.port(), &[Guangzhou])
    })
    .await;
    let (status, body) = post("platform-shanghai", &pinned_right, "/v1/lookup", &lookup).await;
    assert_eq!(status, 200, "{body}");
    // Only that one lookup reached Guangdong: the refused connections carried nothing.
    guangdong
        .audited("the pinned lookup in Guangdong's audit", |r| {
            r["caller"]["name"] == "hcgw-shanghai"
        })
        .await;
    assert_eq!(guangdong.audit().len(), 1);

    // The receiving side: no client certificate → no connection; a CA-valid certificate
    // that is not configured as a client (peer or otherwise) → 403.
    let refused = http(None)
        .post(format!("https://localhost:{}/v1/lookup", guangdong.port()))
        .json(&lookup)
        .send()
        .await;
    if let Ok(r) = refused {
        panic!("answered without a client certificate: {}", r.status());
    }
    let (status, body) = call(
        &http(Some(client("unknown"))),
        &guangdong,
        "/v1/lookup",
        &[("X-Hcgw-On-Behalf-Of", "platform:shanghai")],
        &lookup,
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
}

#[tokio::test]
async fn a_peer_claiming_a_role_above_its_maximum_is_capped() {
    // Jiangsu lets other gateways act for checkpoints only.
    let (shanghai, jiangsu, _guangdong) = three("checkpoint").await;
    let s = sim(Suzhou).find(green_clear_no_actions);
    let lookup = json!({ "region": "suzhou", "subject": { "qr": s.qr } });

    // Directly, with Shanghai's gateway certificate, claiming platform.
    let as_shanghai = http(Some(pki().join("gateways/hcgw-shanghai")));
    let (status, body) = call(
        &as_shanghai,
        &jiangsu,
        "/v1/lookup",
        &[
            ("X-Hcgw-On-Behalf-Of", "platform:shanghai"),
            ("X-Hcgw-Hops", "1"),
        ],
        &lookup,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(only_checkpoint_fields(&body["status"]), "{body}");
    assert_eq!(body["recognition"]["verifier"], "shanghai");
    assert!(body["federation"].is_object(), "hints for the peer: {body}");
    jiangsu
        .audited("capped on_behalf_of", |r| {
            r["on_behalf_of"] == "checkpoint:shanghai" && r["caller"]["name"] == "hcgw-shanghai"
        })
        .await;
    assert!(
        jiangsu
            .audit()
            .iter()
            .all(|r| r["on_behalf_of"] != "platform:shanghai")
    );

    // Through Shanghai: its platform caller gets only what Jiangsu showed.
    let (status, body) = post("platform-shanghai", &shanghai, "/v1/lookup", &lookup).await;
    assert_eq!(status, 200, "{body}");
    assert!(only_checkpoint_fields(&body["status"]), "{body}");
    assert_eq!(body["recognition"]["decision"], "pass");
}

#[tokio::test]
async fn loops_and_too_many_hops_are_refused_with_federation_loop() {
    // A → B → A: both think the other serves Guangzhou.
    let (a, _b) = start_pair(
        |port_a, port_b| GwSpec {
            port: port_a,
            peers: vec![PeerSpec::new("hcgw-jiangsu", port_b, &[Guangzhou])],
            ..GwSpec::new("hcgw-shanghai", &[Suishen])
        },
        |port_a, port_b| GwSpec {
            port: port_b,
            peers: vec![PeerSpec::new("hcgw-shanghai", port_a, &[Guangzhou])],
            ..GwSpec::new("hcgw-jiangsu", &[Suzhou])
        },
    )
    .await;
    let gz = sim(Guangzhou).find(|i| i.error.is_none());
    let lookup = json!({ "region": "guangzhou", "subject": { "qr": gz.qr } });
    let (status, body) = post("platform-shanghai", &a, "/v1/lookup", &lookup).await;
    assert_eq!(
        (status, &body["code"]),
        (508, &json!("federation_loop")),
        "{body}"
    );
    // A gate gets a manual check with the cause.
    let (status, body) = post(
        "checkpoint-shanghai",
        &a,
        "/v1/verify",
        &json!({ "qr": gz.qr }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "manual_check");
    assert_eq!(body["recognition"]["cause"], "federation_loop");

    // Hop limit: Shanghai → Jiangsu → Guangdong is two hops: fine with the default limit,
    // refused where the limit is one.
    // Jiangsu relays Shanghai's callers to Guangdong: Guangdong lets it act for them.
    let guangdong = start(GwSpec {
        acts_for: vec![("hcgw-jiangsu", r#"["jiangsu", "shanghai"]"#)],
        ..GwSpec::new("hcgw-guangdong", &[Guangzhou])
    })
    .await;
    for (max_hops, expected) in [(2, 200), (1, 508)] {
        let jiangsu = start(GwSpec {
            max_hops,
            peers: vec![PeerSpec::new(
                "hcgw-guangdong",
                guangdong.port(),
                &[Guangzhou],
            )],
            ..GwSpec::new("hcgw-jiangsu", &[Suzhou])
        })
        .await;
        let shanghai = start(GwSpec {
            peers: vec![PeerSpec::new("hcgw-jiangsu", jiangsu.port(), &[Guangzhou])],
            ..GwSpec::new("hcgw-shanghai", &[Suishen])
        })
        .await;
        let (status, body) = post("platform-shanghai", &shanghai, "/v1/lookup", &lookup).await;
        assert_eq!(status, expected, "max_hops {max_hops}: {body}");
        if expected == 508 {
            assert_eq!(body["code"], "federation_loop");
        } else {
            assert_eq!(body["status"]["region"], "guangzhou");
            // The decision is Shanghai's, two hops away from the region.
            assert_eq!(body["recognition"]["verifier"], "shanghai");
            assert_eq!(body["recognition"]["decision"], "register_locally");
        }
    }

    // On entry: a peer arriving with too many hops, or naming this gateway in its path.
    let as_shanghai = http(Some(pki().join("gateways/hcgw-shanghai")));
    for headers in [
        vec![("X-Hcgw-Hops", "3")],
        vec![("X-Hcgw-Hops", "1"), ("X-Hcgw-Via", "hcgw-guangdong")],
    ] {
        let (status, body) = call(&as_shanghai, &guangdong, "/v1/lookup", &headers, &lookup).await;
        assert_eq!(
            (status, &body["code"]),
            (508, &json!("federation_loop")),
            "{headers:?}: {body}"
        );
    }
    let (status, _) = call(
        &as_shanghai,
        &guangdong,
        "/v1/lookup",
        &[("X-Hcgw-Hops", "2"), ("X-Hcgw-Via", "hcgw-x,hcgw-shanghai")],
        &lookup,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_peer_down_affects_only_its_regions_and_a_second_peer_takes_over() {
    let jiangsu = start(GwSpec::new("hcgw-jiangsu", &[Sukang, Suzhou, Xuzhou])).await;
    let guangdong = start(GwSpec::new("hcgw-guangdong", &[Guangdong, Guangzhou])).await;
    let dead = dead_peer().await;
    let shanghai = start(GwSpec {
        peers: vec![
            // First in line for Suzhou, but nobody listens there.
            PeerSpec::new("hcgw-zhejiang", dead, &[Suzhou]),
            PeerSpec::new("hcgw-jiangsu", jiangsu.port(), &[Sukang, Suzhou, Xuzhou]),
            PeerSpec::new("hcgw-guangdong", guangdong.port(), &[Guangdong, Guangzhou]),
        ],
        ..GwSpec::new("hcgw-shanghai", &[Suishen])
    })
    .await;
    let sz = sim(Suzhou).find(green_clear_no_actions);
    let gz = sim(Guangzhou).find(|i| i.error.is_none());
    let ss = sim(Suishen).find(|i| i.error.is_none());

    // Fail-over: the dead peer first, then Jiangsu.
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "suzhou", "subject": { "qr": sz.qr } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "pass");
    shanghai
        .audited("fail-over to hcgw-jiangsu", |r| {
            r["region"] == "suzhou" && r["via_peer"] == "hcgw-jiangsu"
        })
        .await;
    // Both attempts are in the metrics, by peer: the dead peer's failure, Jiangsu's answer.
    let text = hcgw::metrics::render().expect("the gateway installed the recorder");
    let peer_series = |peer: &str| -> Vec<String> {
        let prefix = format!(r#"hcgw_peer_requests_total{{peer="{peer}",code=""#);
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        peer_series("hcgw-jiangsu")
            .iter()
            .any(|l| l.contains(r#"code="ok""#)),
        "{text}"
    );
    assert!(
        peer_series("hcgw-zhejiang")
            .iter()
            .any(|l| !l.contains(r#"code="ok""#)),
        "{text}"
    );

    // Guangdong's gateway goes away: its regions are unavailable, nothing else is.
    let (status, _) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "guangzhou", "subject": { "qr": gz.qr } }),
    )
    .await;
    assert_eq!(status, 200);
    guangdong.gw.shutdown().await;
    // Subjects not asked before: the answer above is cached, and serving it within its TTL
    // is right.
    let gz = sim(Guangzhou).find_nth(5, |i| i.error.is_none());
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "guangzhou", "subject": { "qr": gz.qr } }),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("region_unavailable")),
        "{body}"
    );
    assert_eq!(body["region"], "guangzhou");
    let (status, body) = post(
        "checkpoint-shanghai",
        &shanghai,
        "/v1/verify",
        &json!({ "qr": gz.qr }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "manual_check");
    assert_eq!(body["recognition"]["cause"], "region_unavailable");
    // A third failure opens Guangdong's circuit (circuit_failures = 3 here): /v1/regions
    // says so, and its regions fail fast.
    let (status, _) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "guangdong", "subject": { "qr": sim(Guangdong).find(|i| i.error.is_none()).qr } }),
    )
    .await;
    assert_eq!(status, 503);
    let regions: Value = http(Some(client("ops")))
        .get(format!("https://localhost:{}/v1/regions", shanghai.port()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let view = |id: &str| {
        regions["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(view("guangzhou")["state"], "down", "{regions}");
    assert!(
        view("guangzhou")["note"]
            .as_str()
            .unwrap()
            .contains("circuit open")
    );
    assert_eq!(view("suzhou")["state"], "up", "{regions}");
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "guangzhou", "subject": { "qr": gz.qr } }),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("region_unavailable")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("circuit towards peer hcgw-guangdong is open"),
        "{body}"
    );
    // Every failure through Guangdong's gateway is audited naming it: the refused
    // connections and the calls the open circuit refused (three lookups and one verify).
    eventually(20, "four failures audited via hcgw-guangdong", async || {
        shanghai
            .audit()
            .iter()
            .filter(|r| {
                (r["region"] == "guangzhou" || r["region"] == "guangdong")
                    && !r["error"].is_null()
                    && r["via_peer"] == "hcgw-guangdong"
            })
            .count()
            == 4
    })
    .await;
    let unnamed: Vec<Value> = shanghai
        .audit()
        .into_iter()
        .filter(|r| !r["error"].is_null() && r["via_peer"].is_null())
        .collect();
    assert!(unnamed.is_empty(), "failures without via_peer: {unnamed:?}");
    // The peer's circuit is shown beside the note: on /v1/regions and /status.json.
    assert_eq!(view("guangzhou")["circuit"], "open", "{regions}");
    assert_eq!(view("suzhou")["circuit"], "closed", "{regions}");
    assert!(view("suishen").get("circuit").is_none(), "local: {regions}");
    let page: Value = reqwest::get(format!("http://{}/status.json", shanghai.gw.admin_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = |id: &str| {
        page["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row("guangzhou")["circuit"], "open", "{page}");
    assert_eq!(row("guangzhou")["state"], "down", "{page}");
    assert_eq!(row("suzhou")["circuit"], "closed", "{page}");
    for (region, qr) in [("suzhou", &sz.qr), ("suishen", &ss.qr)] {
        let (status, body) = post(
            "platform-shanghai",
            &shanghai,
            "/v1/lookup",
            &json!({ "region": region, "subject": { "qr": qr } }),
        )
        .await;
        assert_eq!(status, 200, "{region}: {body}");
    }
}

/// The demo configurations of `config/federation/` pass `check-config` once the dev PKI
/// exists in `certs/dev`.
#[test]
fn the_federation_demo_configurations_are_valid() {
    let repo = crate::support::repo();
    hcgw_sim::dev_pki::run_quiet(&repo, &repo.join("certs/dev")).expect("certs/dev-pki.sh");
    let mut names = Vec::new();
    for province in ["shanghai", "jiangsu", "zhejiang", "guangdong"] {
        let file = repo.join(format!("config/federation/{province}.toml"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcgw"))
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let config = hcgw::config::load(&file).unwrap();
        // Every region is served here or by exactly the peers hosting it.
        let served: Vec<RegionId> = config
            .regions
            .keys()
            .copied()
            .chain(config.peers.iter().flat_map(|p| p.regions.clone()))
            .collect();
        for r in RegionId::ALL {
            assert_eq!(
                served.iter().filter(|x| **x == r).count(),
                1,
                "{province}: {r}"
            );
        }
        names.push((
            config.gateway.name.clone(),
            config.listener.addr,
            config.admin.addr,
        ));
    }
    let mut ports: Vec<u16> = names
        .iter()
        .flat_map(|(_, a, b)| [a.port(), b.port()])
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 8, "distinct listener and admin ports");
}

/// How a fake peer signs its answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum FakeSigning {
    /// With hcgw-jiangsu's answer-signing key, as a real peer does.
    #[default]
    Good,
    /// One byte of the signature flipped.
    Corrupt,
    /// No signature at all.
    Unsigned,
    /// With hcgw-zhejiang's key (published, but not issued to hcgw-jiangsu).
    OtherGatewaysKey,
}

/// What a fake peer answers, and what it was sent.
#[derive(Default)]
struct FakePeer {
    answer: std::sync::Mutex<(u16, &'static str, String)>,
    signing: std::sync::Mutex<FakeSigning>,
    seen: std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>,
    /// How long it takes to answer.
    delay: std::sync::Mutex<Duration>,
}

/// A fake "Jiangsu gateway" over mTLS (its real certificate), answering whatever the test
/// sets.
async fn fake_peer() -> (u16, Arc<FakePeer>) {
    use axum::response::IntoResponse;
    use axum::routing::post;
    let state = Arc::new(FakePeer::default());
    let st = state.clone();
    let key = |name: &str| {
        Arc::new(
            hcgw::signing::SigningKey::from_files(
                &pki().join(format!("signing/{name}/key.pem")),
                &pki().join(format!("signing/{name}/cert.pem")),
            )
            .unwrap(),
        )
    };
    let (own, other) = (key("hcgw-jiangsu"), key("hcgw-zhejiang"));
    let keys: Vec<Value> = [own.verifying_key(), other.verifying_key()]
        .iter()
        .map(|k| {
            json!({ "key_id": k.key_id(), "algorithm": k.algorithm().as_str(),
                    "status": "current", "certificate": k.certificate_pem() })
        })
        .collect();
    let published = json!({ "keys": keys });
    let app = axum::Router::new()
        .route(
            "/v1/signing-keys",
            axum::routing::get(move || {
                let published = published.clone();
                async move { axum::Json(published) }
            }),
        )
        .route(
            "/v1/lookup",
            post(
                move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                    let st = st.clone();
                    let (own, other) = (own.clone(), other.clone());
                    async move {
                        let request_id = headers.get("x-request-id").cloned();
                        st.seen.lock().unwrap().push((headers, body));
                        let delay = *st.delay.lock().unwrap();
                        tokio::time::sleep(delay).await;
                        let (status, ct, text) = st.answer.lock().unwrap().clone();
                        let mut resp = (
                            axum::http::StatusCode::from_u16(status).unwrap(),
                            [(axum::http::header::CONTENT_TYPE, ct)],
                            text.clone(),
                        )
                            .into_response();
                        if let Some(id) = request_id {
                            resp.headers_mut().insert("x-request-id", id);
                        }
                        let mode = *st.signing.lock().unwrap();
                        let signer: &dyn hcgw::signing::Signer = match mode {
                            FakeSigning::OtherGatewaysKey => other.as_ref(),
                            _ => own.as_ref(),
                        };
                        if mode != FakeSigning::Unsigned {
                            let now = chrono::Utc::now().timestamp();
                            hcgw::signing::sign_answer(
                                signer,
                                status,
                                resp.headers_mut(),
                                text.as_bytes(),
                                now,
                            )
                            .unwrap();
                        }
                        if mode == FakeSigning::Corrupt {
                            use base64::Engine;
                            let b64 = base64::engine::general_purpose::STANDARD;
                            let sig = resp.headers()["signature"].to_str().unwrap();
                            let inner = sig
                                .strip_prefix("hcgw=:")
                                .unwrap()
                                .strip_suffix(':')
                                .unwrap();
                            let mut raw = b64.decode(inner).unwrap();
                            raw[5] ^= 0x01;
                            let flipped = format!("hcgw=:{}:", b64.encode(raw));
                            resp.headers_mut()
                                .insert("signature", flipped.parse().unwrap());
                        }
                        resp
                    }
                },
            ),
        );
    let tls = hcgw_sim::net::mtls_server_config(
        &pki().join("gateways/hcgw-jiangsu/cert.pem"),
        &pki().join("gateways/hcgw-jiangsu/key.pem"),
        &pki().join("ca-bundle.pem"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    hcgw_sim::net::spawn_https(listener, Arc::new(tls), app);
    (port, state)
}

#[tokio::test]
async fn the_forwarded_request_carries_the_hop_headers_and_peer_answers_are_parsed_strictly() {
    let (port, peer) = fake_peer().await;
    let shanghai = start(GwSpec {
        peers: vec![PeerSpec::new("hcgw-jiangsu", port, &[Suzhou])],
        // Junk answers count against the circuit; keep it closed for this test.
        circuit_failures: 1000,
        ..GwSpec::new("hcgw-shanghai", &[Suishen])
    })
    .await;
    let s = sim(Suzhou).find(green_clear_no_actions);
    let next = std::sync::atomic::AtomicU64::new(1);
    let fresh_qr = || {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut f = s.clone();
        f.token = format!("{n:032x}");
        f.qr = hcgw_adapters::qr::qr_text(hcgw_adapters::RegionId::Suzhou, &f.token);
        f
    };
    let as_of = chrono::Utc::now().fixed_offset().to_rfc3339();
    let answer = |status: Value| {
        json!({ "request_id": "x", "status": status, "recognition": {}, "cache": { "hit": true, "age_ms": 10 }, "served_by": "hcgw-jiangsu",
                "federation": { "decision_actions": [], "provisional": false } })
            .to_string()
    };
    let set = |status: u16, ct: &'static str, body: String| {
        *peer.answer.lock().unwrap() = (status, ct, body);
    };

    // A valid checkpoint view with a pending action: the gate gets a manual check.
    set(
        200,
        "application/json",
        json!({ "request_id": "x", "status": { "region": "suzhou", "color": "green", "level": "clear", "as_of": as_of },
                "recognition": {}, "cache": { "hit": false, "age_ms": 0 }, "served_by": "hcgw-jiangsu",
                "federation": { "decision_actions": ["update_identity"], "provisional": false } })
        .to_string(),
    );
    let (status, body) = post(
        "checkpoint-shanghai",
        &shanghai,
        "/v1/verify",
        &json!({ "qr": s.qr }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "manual_check", "{body}");
    {
        let seen = peer.seen.lock().unwrap();
        let (headers, sent) = seen.last().unwrap();
        assert_eq!(headers["x-hcgw-hops"], "1");
        assert_eq!(headers["x-hcgw-on-behalf-of"], "checkpoint:shanghai");
        assert_eq!(headers["x-hcgw-via"], "hcgw-shanghai");
        assert!(headers.contains_key("x-request-id"));
        assert_eq!(
            sent,
            &json!({ "region": "suzhou", "subject": { "qr": s.qr } })
        );
    }
    // An identity travels as type, number and name; a platform as platform.
    set(
        200,
        "application/json",
        answer(json!({ "region": "suzhou", "color": "green", "level": "clear", "as_of": as_of })),
    );
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "suzhou", "subject": { "id_type": s.id_type, "id_number": s.id_number, "name": s.name } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "pass");
    {
        let seen = peer.seen.lock().unwrap();
        let (headers, sent) = seen.last().unwrap();
        assert_eq!(headers["x-hcgw-on-behalf-of"], "platform:shanghai");
        assert_eq!(
            sent["subject"],
            json!({ "id_type": s.id_type, "id_number": s.id_number, "name": s.name })
        );
    }

    // Anything that is not a valid status of the region asked: 502, never a green.
    for (code, ct, text) in [
        (
            200,
            "application/json",
            answer(
                json!({ "region": "suzhou", "color": "green", "level": "quarantine", "as_of": as_of }),
            ),
        ),
        (
            200,
            "application/json",
            answer(
                json!({ "region": "sukang", "color": "green", "level": "clear", "as_of": as_of }),
            ),
        ),
        (
            200,
            "application/json",
            answer(
                json!({ "region": "suzhou", "color": "green", "level": "clear", "as_of": as_of, "verdict": "pass" }),
            ),
        ),
        (
            200,
            "application/json",
            answer(json!({ "region": "suzhou", "colour": "green" })),
        ),
        (200, "text/html", "<html>green</html>".to_owned()),
        (200, "application/json", "{\"status\":".to_owned()),
        (500, "text/plain", "oops".to_owned()),
        (
            404,
            "application/problem+json",
            json!({ "code": "token_expired", "status": 410 }).to_string(),
        ),
    ] {
        set(code, ct, text.clone());
        // A QR nobody asked about yet (the fake peer answers any): earlier good answers
        // are cached, rightly, and would hide the broken ones.
        let s = fresh_qr();
        let (status, body) = post(
            "platform-shanghai",
            &shanghai,
            "/v1/lookup",
            &json!({ "region": "suzhou", "subject": { "qr": s.qr } }),
        )
        .await;
        assert_eq!(
            (status, &body["code"]),
            (502, &json!("upstream_invalid_response")),
            "{code} {text}: {body}"
        );
        let (status, body) = post(
            "checkpoint-shanghai",
            &shanghai,
            "/v1/verify",
            &json!({ "qr": s.qr }),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["recognition"]["decision"], "manual_check",
            "{text}: {body}"
        );
        assert_eq!(body["status"]["color"], "unknown");
    }

    // The peer's errors keep their code (its detail is not relayed).
    for (code, http_status) in [
        ("subject_not_found", 404),
        ("token_expired", 410),
        ("region_timeout", 504),
    ] {
        set(
            http_status,
            "application/problem+json",
            json!({ "type": "x", "title": "x", "status": http_status, "code": code, "detail": "张三 secret detail" }).to_string(),
        );
        let s = fresh_qr();
        let (status, body) = post(
            "platform-shanghai",
            &shanghai,
            "/v1/lookup",
            &json!({ "region": "suzhou", "subject": { "qr": s.qr } }),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str().unwrap()),
            (http_status, code),
            "{body}"
        );
        assert!(!body.to_string().contains("secret detail"), "{body}");
    }
}

#[tokio::test]
async fn calls_in_flight_to_a_peer_are_capped_and_the_excess_refused_at_once() {
    let (port, peer) = fake_peer().await;
    *peer.delay.lock().unwrap() = Duration::from_secs(2);
    *peer.answer.lock().unwrap() = (503, "application/json", "{}".into());
    let shanghai = start(GwSpec {
        peers: vec![PeerSpec {
            max_concurrency: Some(2),
            ..PeerSpec::new("hcgw-jiangsu", port, &[Suzhou])
        }],
        circuit_failures: 1000,
        ..GwSpec::new("hcgw-shanghai", &[Suishen])
    })
    .await;
    // Five different subjects at once (nothing to coalesce): two calls go out, three are
    // refused without waiting for them.
    let lookups = (1..=5u64).map(|n| {
        let qr = hcgw_adapters::qr::qr_text(Suzhou, &format!("{n:032x}"));
        let shanghai = &shanghai;
        async move {
            let started = std::time::Instant::now();
            let (status, body) = post(
                "platform-shanghai",
                shanghai,
                "/v1/lookup",
                &json!({ "region": "suzhou", "subject": { "qr": qr } }),
            )
            .await;
            (
                status,
                body["code"].as_str().unwrap_or("").to_owned(),
                started.elapsed(),
            )
        }
    });
    let answers = futures_util::future::join_all(lookups).await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, code, _)| *status == 503 && code == "upstream_rate_limited")
        .collect();
    assert_eq!(refused.len(), 3, "{answers:?}");
    assert!(
        refused
            .iter()
            .all(|(_, _, took)| *took < Duration::from_secs(2)),
        "refused at once, not after the calls in flight: {answers:?}"
    );
    assert_eq!(peer.seen.lock().unwrap().len(), 2, "{answers:?}");
    let text = hcgw::metrics::render().expect("the gateway installed the recorder");
    assert!(
        text.contains(r#"hcgw_rate_limited_total{scope="peer_concurrency",name="hcgw-jiangsu"}"#),
        "{text}"
    );
    shanghai.gw.shutdown().await;
}

/// A peer's answer missing anything the decision needs — the `federation` hints, the
/// platform view's `actions`, `as_of` — or naming a key twice is never a pass: a lookup
/// answers `502 upstream_invalid_response`, a gate `200 manual_check` with that cause.
#[tokio::test]
async fn peer_answers_without_hints_or_actions_are_a_manual_check_never_a_pass() {
    let (port, peer) = fake_peer().await;
    let shanghai = start(GwSpec {
        peers: vec![PeerSpec::new("hcgw-jiangsu", port, &[Suzhou])],
        circuit_failures: 1000,
        ..GwSpec::new("hcgw-shanghai", &[Suishen])
    })
    .await;
    let next = std::sync::atomic::AtomicU64::new(0x1000);
    let fresh_qr = || {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hcgw_adapters::qr::qr_text(Suzhou, &format!("{n:032x}"))
    };
    let as_of = chrono::Utc::now().fixed_offset().to_rfc3339();
    let checkpoint_view =
        json!({ "region": "suzhou", "color": "green", "level": "clear", "as_of": as_of });
    let platform_view = json!({ "region": "suzhou", "color": "green", "level": "clear",
        "source": { "code": "G" }, "reasons": [], "as_of": as_of,
        "observed_at": chrono::Utc::now().to_rfc3339(), "actions": [] });
    let no_hints = json!({ "decision_actions": [], "provisional": false });
    let answer = |status: &Value, hints: Option<Value>| {
        let mut v = json!({ "request_id": "x", "status": status, "recognition": { "decision": "pass" },
            "cache": { "hit": false, "age_ms": 0 }, "served_by": "hcgw-jiangsu" });
        if let Some(h) = hints {
            v["federation"] = h;
        }
        v.to_string()
    };
    let set = |text: String| {
        *peer.answer.lock().unwrap() = (200, "application/json", text);
    };
    // Asks both ways; returns (lookup status, lookup code, verify decision, verify cause).
    let ask = async || {
        let qr = fresh_qr();
        let (status, lookup) = post(
            "platform-shanghai",
            &shanghai,
            "/v1/lookup",
            &json!({ "region": "suzhou", "subject": { "qr": qr } }),
        )
        .await;
        let (vstatus, verify) = post(
            "checkpoint-shanghai",
            &shanghai,
            "/v1/verify",
            &json!({ "qr": qr }),
        )
        .await;
        assert_eq!(vstatus, 200, "{verify}");
        (status, lookup, verify)
    };

    // The controls: complete answers of both views pass, so the refusals below are about
    // what each one lacks.
    for status in [&checkpoint_view, &platform_view] {
        set(answer(status, Some(no_hints.clone())));
        let (status, lookup, verify) = ask().await;
        assert_eq!(status, 200, "{lookup}");
        assert_eq!(lookup["recognition"]["decision"], "pass", "{lookup}");
        assert_eq!(verify["recognition"]["decision"], "pass", "{verify}");
    }

    let mut without_actions = platform_view.clone();
    without_actions.as_object_mut().unwrap().remove("actions");
    let mut null_actions = platform_view.clone();
    null_actions["actions"] = Value::Null;
    let mut without_as_of = checkpoint_view.clone();
    without_as_of.as_object_mut().unwrap().remove("as_of");
    let duplicate_colour = answer(&checkpoint_view, Some(no_hints.clone())).replacen(
        r#""color":"green""#,
        r#""color":"red","color":"green""#,
        1,
    );
    assert!(duplicate_colour.contains(r#""color":"red","color":"green""#));
    let cases = [
        (
            "checkpoint view without hints",
            answer(&checkpoint_view, None),
        ),
        ("platform view without hints", answer(&platform_view, None)),
        (
            "hints without decision_actions",
            answer(&checkpoint_view, Some(json!({ "provisional": false }))),
        ),
        (
            "hints without provisional",
            answer(&checkpoint_view, Some(json!({ "decision_actions": [] }))),
        ),
        ("null hints", answer(&checkpoint_view, Some(Value::Null))),
        (
            "platform view without actions",
            answer(&without_actions, Some(no_hints.clone())),
        ),
        (
            "platform view with null actions",
            answer(&null_actions, Some(no_hints.clone())),
        ),
        ("no as_of", answer(&without_as_of, Some(no_hints.clone()))),
        ("a duplicate colour", duplicate_colour),
    ];
    for (why, text) in cases {
        set(text.clone());
        let (status, lookup, verify) = ask().await;
        assert_eq!(
            (status, &lookup["code"]),
            (502, &json!("upstream_invalid_response")),
            "{why}: {text} → {lookup}"
        );
        assert_eq!(
            verify["recognition"]["decision"], "manual_check",
            "{why}: {verify}"
        );
        assert_eq!(
            verify["recognition"]["cause"], "upstream_invalid_response",
            "{why}: {verify}"
        );
        assert_eq!(verify["status"]["color"], "unknown", "{why}: {verify}");
    }
    shanghai.gw.shutdown().await;
}

/// A peer acts only for the jurisdictions of its `acts_for` (default: its own and those
/// below it); anything else is `403 forbidden` — at the receiving gateway, and the forwarding
/// gateway turns that into its own region fault, never a status.
#[tokio::test]
async fn a_peer_acting_for_a_jurisdiction_outside_its_list_is_forbidden() {
    let jiangsu = start(GwSpec {
        acts_for: vec![("hcgw-zhejiang", r#"["zhejiang", "anhui"]"#)],
        ..GwSpec::new("hcgw-jiangsu", &[Sukang, Suzhou, Xuzhou])
    })
    .await;
    let s = sim(Suzhou).find(green_clear_no_actions);
    let lookup = json!({ "region": "suzhou", "subject": { "qr": s.qr } });
    let verify = json!({ "qr": s.qr });
    let as_gateway = |name: &str| http(Some(pki().join(format!("gateways/{name}"))));
    let (shanghai_gw, zhejiang_gw) = (as_gateway("hcgw-shanghai"), as_gateway("hcgw-zhejiang"));
    for (who, client, claim, expected) in [
        // Default for hcgw-shanghai: shanghai and below.
        (
            "hcgw-shanghai",
            &shanghai_gw,
            Some("platform:shanghai"),
            200,
        ),
        (
            "hcgw-shanghai",
            &shanghai_gw,
            Some("checkpoint:shanghai/pudong"),
            200,
        ),
        ("hcgw-shanghai", &shanghai_gw, None, 200),
        (
            "hcgw-shanghai",
            &shanghai_gw,
            Some("platform:guangdong"),
            403,
        ),
        (
            "hcgw-shanghai",
            &shanghai_gw,
            Some("checkpoint:jiangsu"),
            403,
        ),
        (
            "hcgw-shanghai",
            &shanghai_gw,
            Some("platform:shanghai2"),
            403,
        ),
        // Configured for hcgw-zhejiang: zhejiang and anhui, with what is below them.
        ("hcgw-zhejiang", &zhejiang_gw, Some("platform:anhui"), 200),
        (
            "hcgw-zhejiang",
            &zhejiang_gw,
            Some("checkpoint:zhejiang/huzhou"),
            200,
        ),
        (
            "hcgw-zhejiang",
            &zhejiang_gw,
            Some("platform:shanghai"),
            403,
        ),
    ] {
        for (path, body) in [("/v1/lookup", &lookup), ("/v1/verify", &verify)] {
            let headers: Vec<(&str, &str)> = claim
                .map(|c| vec![("X-Hcgw-On-Behalf-Of", c), ("X-Hcgw-Hops", "1")])
                .unwrap_or_default();
            let (status, answer) = call(client, &jiangsu, path, &headers, body).await;
            assert_eq!(
                status, expected,
                "{who} claiming {claim:?} at {path}: {answer}"
            );
            if expected == 403 {
                assert_eq!(answer["code"], "forbidden", "{answer}");
                assert!(answer.get("recognition").is_none(), "{answer}");
            } else {
                assert_eq!(answer["status"]["region"], "suzhou", "{answer}");
            }
        }
    }
    // Nothing refused was looked up, nor audited as a lookup on someone's behalf.
    assert!(jiangsu.audit().iter().all(|r| {
        ![
            "platform:guangdong",
            "checkpoint:jiangsu",
            "platform:shanghai2",
        ]
        .contains(&r["on_behalf_of"].as_str().unwrap_or(""))
    }),);
    // Through Shanghai: a Guangdong platform's lookup of Suzhou is forwarded as
    // `platform:guangdong`, which Jiangsu refuses: Shanghai answers that the region is
    // unavailable from here (a gate would get a manual check), never a status.
    let shanghai = start(GwSpec {
        peers: vec![PeerSpec::new("hcgw-jiangsu", jiangsu.port(), &[Suzhou])],
        ..GwSpec::new("hcgw-shanghai", &[Suishen])
    })
    .await;
    let (status, body) = post("platform-guangdong", &shanghai, "/v1/lookup", &lookup).await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("region_unavailable")),
        "{body}"
    );
    let (status, body) = post("platform-shanghai", &shanghai, "/v1/lookup", &lookup).await;
    assert_eq!(status, 200, "{body}");
}

/// `check-config` checks `acts_for`: peers only, not empty, valid and distinct jurisdictions.
#[test]
fn acts_for_is_checked_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let base = crate::support::config_text(
        &crate::support::TlsPaths::standard(),
        &dir.path().join("audit"),
        "",
    );
    let with = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        base.replacen(from, to, 1)
    };
    let problems = |text: String| match hcgw::config::load_str(&text, &dir.path().join("c.toml")) {
        Ok(_) => vec![],
        Err(e) => e
            .problems()
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>(),
    };
    // The standard peer client of the tests, with another list.
    let peer_with = |list: &str| {
        with(
            "acts_for = [\"jiangsu\", \"shanghai\", \"zhejiang\"]\n",
            &format!("acts_for = {list}\n"),
        )
    };
    for (text, path) in [
        (peer_with("[]"), "acts_for"),
        (peer_with(r#"["jiangsu", "Not Valid"]"#), "acts_for[1]"),
        (peer_with(r#"["jiangsu", "jiangsu"]"#), "acts_for[1]"),
        (
            with(
                "subject = \"O=shanghai, OU=platform, CN=platform-shanghai\"\n",
                "subject = \"O=shanghai, OU=platform, CN=platform-shanghai\"\nacts_for = [\"shanghai\"]\n",
            ),
            "acts_for",
        ),
    ] {
        let found = problems(text);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("clients[") && p.contains(&format!("].{path}:"))),
            "expected a problem at clients[…].{path}: {found:?}"
        );
    }
    assert_eq!(
        problems(peer_with(r#"["jiangsu", "anhui/hefei"]"#)),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_peer_answer_is_used_only_when_its_signature_holds_and_its_proof_is_audited() {
    let (port, peer) = fake_peer().await;
    let shanghai = start(GwSpec {
        peers: vec![PeerSpec::new("hcgw-jiangsu", port, &[Suzhou])],
        circuit_failures: 1000,
        ..GwSpec::new("hcgw-shanghai", &[Suishen])
    })
    .await;
    let s = sim(Suzhou).find(green_clear_no_actions);
    let as_of = chrono::Utc::now().fixed_offset().to_rfc3339();
    let receipt_hash = "ab".repeat(32);
    *peer.answer.lock().unwrap() = (
        200,
        "application/json",
        json!({ "request_id": "x", "status": { "region": "suzhou", "color": "green", "level": "clear", "as_of": as_of },
                "recognition": {}, "cache": { "hit": false, "age_ms": 0 }, "served_by": "hcgw-jiangsu",
                "federation": { "decision_actions": [], "provisional": false },
                "audit": { "seq": 41, "hash": receipt_hash } })
        .to_string(),
    );
    let next = std::sync::atomic::AtomicU64::new(1);
    let ask = async |mode: FakeSigning| {
        *peer.signing.lock().unwrap() = mode;
        // A new token each time: nothing comes from the cache.
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let qr = hcgw_adapters::qr::qr_text(Suzhou, &format!("{n:032x}"));
        post(
            "checkpoint-shanghai",
            &shanghai,
            "/v1/verify",
            &json!({ "qr": qr, "checkpoint": "SH-HONGQIAO-RAIL-G12" }),
        )
        .await
    };
    for mode in [
        FakeSigning::Corrupt,
        FakeSigning::Unsigned,
        FakeSigning::OtherGatewaysKey,
    ] {
        let (status, body) = ask(mode).await;
        assert_eq!(status, 200, "{mode:?}: {body}");
        assert_eq!(
            body["recognition"]["decision"], "manual_check",
            "{mode:?}: an answer that cannot be proved is never a pass: {body}"
        );
        assert_eq!(
            body["recognition"]["cause"], "upstream_invalid_response",
            "{mode:?}: {body}"
        );
    }
    // Signed by hcgw-jiangsu's own key: used, and its proof kept in this gateway's record.
    let (status, body) = ask(FakeSigning::Good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recognition"]["decision"], "pass", "{body}");
    let jiangsu_key =
        hcgw::signing::VerifyingKey::from_pem_file(&pki().join("signing/hcgw-jiangsu/cert.pem"))
            .unwrap();
    let record = shanghai
        .audited("the record of the proved answer", |r| {
            r["peer_answer"]["key_id"] == jiangsu_key.key_id()
        })
        .await;
    let proof = &record["peer_answer"];
    assert_eq!(record["via_peer"], "hcgw-jiangsu");
    assert!(
        proof["signature"].as_str().unwrap().starts_with("hcgw=:"),
        "{proof}"
    );
    assert!(
        proof["signature_input"]
            .as_str()
            .unwrap()
            .contains("\"x-request-id\""),
        "{proof}"
    );
    assert!(
        proof["content_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha-256=:"),
        "{proof}"
    );
    assert_eq!(proof["receipt"], json!({ "seq": 41, "hash": receipt_hash }));
    // The refused answers were audited as errors, with no proof.
    let refused: Vec<Value> = shanghai
        .audit()
        .into_iter()
        .filter(|r| r["error"] == "upstream_invalid_response")
        .collect();
    assert!(refused.len() >= 3, "{refused:?}");
    assert!(
        refused.iter().all(|r| r.get("peer_answer").is_none()),
        "{refused:?}"
    );
    let _ = s;
}

#[tokio::test]
async fn between_real_gateways_the_forwarding_one_keeps_the_peers_signature() {
    let (shanghai, jiangsu) = start_pair(
        |a, j| GwSpec {
            port: a,
            peers: vec![PeerSpec::new("hcgw-jiangsu", j, &[Suzhou])],
            ..GwSpec::new("hcgw-shanghai", &[Suishen])
        },
        |_, j| GwSpec {
            port: j,
            ..GwSpec::new("hcgw-jiangsu", &[Suzhou])
        },
    )
    .await;
    let s = sim(Suzhou).find(green_clear_no_actions);
    let (status, body) = post(
        "platform-shanghai",
        &shanghai,
        "/v1/lookup",
        &json!({ "region": "suzhou", "subject": { "qr": s.qr } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let key =
        hcgw::signing::VerifyingKey::from_pem_file(&pki().join("signing/hcgw-jiangsu/cert.pem"))
            .unwrap();
    let ours = shanghai
        .audited("shanghai's record with jiangsu's proof", |r| {
            r["peer_answer"]["key_id"] == key.key_id()
        })
        .await;
    // Jiangsu's own record of the forwarded request has the same request id.
    let theirs = jiangsu
        .audited("jiangsu's record", |r| {
            r["request_id"] == ours["request_id"]
        })
        .await;
    assert_eq!(theirs["on_behalf_of"], "platform:shanghai");
    assert!(
        ours["peer_answer"]["signature_input"]
            .as_str()
            .unwrap()
            .contains(key.key_id())
    );
}
