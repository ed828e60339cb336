//! The shared end-to-end world: every region's simulator (in a background runtime of this
//! test process) and the real `hcgw` binary serving them over mTLS, started once per test
//! run. Its JSON logs and audit files stay in one directory so tests can grep them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hcgw_adapters::RegionId;
use hcgw_sim::{Intended, RegionSim, SimContext, SimEnv, SimOptions, SimSubject};

use crate::support::{
    CLIENTS, api_client, pki, pki_path, region_section, repo, sim_client, sim_url,
};

/// One simulated region.
pub struct Sim {
    /// Its simulator.
    pub sim: Arc<dyn RegionSim>,
    /// Its state (population, request counter).
    pub ctx: Arc<SimContext>,
    /// Where it listens.
    pub base_url: String,
}

impl Sim {
    /// Requests the region has served so far.
    pub fn requests(&self) -> u64 {
        self.ctx.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The first subject with `fate` whose intended outcome (by QR or identity) satisfies `f`.
    pub fn find(
        &self,
        via_qr: bool,
        f: impl Fn(&SimSubject, &Intended) -> bool,
    ) -> Option<(SimSubject, Intended)> {
        self.ctx.population.subjects().iter().find_map(|s| {
            let i = self.sim.intended_for(s, via_qr);
            f(s, &i).then(|| (s.clone(), i))
        })
    }

    /// Changes the simulator's behaviour through its control endpoint.
    pub async fn control(&self, body: serde_json::Value) {
        let url = format!("{}/_sim/control", self.base_url);
        let client = sim_client();
        let r = client
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("sim control");
        assert!(r.status().is_success());
    }
}

/// The world.
pub struct World {
    /// The gateway's mTLS API.
    pub api: SocketAddr,
    /// The gateway's admin port.
    pub admin: SocketAddr,
    /// The simulators.
    pub sims: BTreeMap<RegionId, Sim>,
    /// The gateway's log file (JSON lines).
    pub log: PathBuf,
    /// The gateway's audit directory.
    pub audit_dir: PathBuf,
    /// The gateway's configuration file.
    pub config: PathBuf,
    child: Mutex<(Child, ChildStdin)>,
}

impl World {
    /// The simulator of a region.
    pub fn sim(&self, region: RegionId) -> &Sim {
        &self.sims[&region]
    }

    /// Everything the gateway logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The world of the lookup tests, started on first use.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| start_world("e2e", "debug", 300))
}

/// Starts a world: every simulator (`population` subjects each) and a gateway named
/// `hcgw-<label>` logging at `log_level`, in `target/e2e-<label>/`. Test modules that change
/// simulators in ways other tests must not see (taking regions down) start their own.
pub fn start_world(label: &str, log_level: &str, population: usize) -> World {
    let pki = pki();
    let root = repo().join(format!("target/e2e-{label}"));
    let dir = root.join(format!("run-{}", std::process::id()));
    // Leftovers of earlier runs go; the directories of test processes still running (cargo
    // nextest runs one process per test) stay.
    for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let alive = name
            .strip_prefix("run-")
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    std::fs::create_dir_all(&dir).unwrap();

    // Simulators live in their own runtime for the whole test process.
    let (tx, rx) = std::sync::mpsc::channel();
    let env = SimEnv {
        pki_dir: pki.clone(),
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let options = SimOptions {
                population,
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
    let started = rx.recv().expect("simulators started");
    let mut sims = BTreeMap::new();
    for (sim, ctx, base_url) in started {
        sims.insert(sim.region(), Sim { sim, ctx, base_url });
    }
    assert_eq!(sims.len(), 8, "a simulator for every region");

    let p = pki_path;
    let audit_dir = dir.join("audit");
    let config = format!(
        r#"
[gateway]
name = "hcgw-{label}"
log_format = "json"
log_level = "{log_level}"

[listener]
addr = "127.0.0.1:0"

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
previous = [{sign_previous}]
{CLIENTS}

{regions}
[[recognition.agreements]]
id = "yrd-mutual-recognition"
members = ["shanghai", "jiangsu", "zhejiang", "anhui"]
exclude_code_systems = ["xuzhou"]
source = "YRD health-code mutual recognition notice"

[[recognition.agreements]]
id = "guangdong-interop"
members = ["guangdong"]

[[recognition.agreements]]
id = "xuzhou-within-jiangsu"
members = ["jiangsu"]
code_systems = ["xuzhou"]
"#,
        cert = p("gateways/hcgw-dev/cert.pem"),
        key = p("gateways/hcgw-dev/key.pem"),
        ca = p("ca-bundle.pem"),
        crl1 = p("crl/intermediate.crl.pem"),
        crl2 = p("crl/root.crl.pem"),
        subject = p("secrets/subject_hash_key"),
        audit = audit_dir.display().to_string(),
        sign_key = p("signing/hcgw-dev/key.pem"),
        sign_cert = p("signing/hcgw-dev/cert.pem"),
        sign_previous = p("signing/hcgw-dev-previous/cert.pem"),
        regions = sims
            .iter()
            .map(|(r, sim)| region_section(*r, &sim.base_url))
            .collect::<String>(),
    );
    let config_path = dir.join("hcgw.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.join("gateway.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(["serve", "--stop-on-stdin-eof", "--config"])
        .arg(&config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start hcgw");
    let stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (api, admin) = loop {
        let line = std::io::BufReader::new(std::fs::File::open(&log).unwrap())
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("gateway listening"));
        if let Some(line) = line {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
            break (addr("api_addr"), addr("admin_addr"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "hcgw exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "hcgw did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::io::stderr().flush();
    World {
        api,
        admin,
        sims,
        log,
        audit_dir,
        config: config_path,
        child: Mutex::new((child, stdin)),
    }
}

/// A new API client (own connection pool) presenting `clients/<name>`.
pub fn fresh_client(name: &str) -> reqwest::Client {
    api_client(Some(&crate::support::client(name)), Duration::from_secs(20))
}

/// An API client presenting a client certificate of the PKI (`clients/<name>`). Not shared
/// between tests: each `#[tokio::test]` has its own runtime, and pooled connections whose
/// tasks lived in a finished test's runtime are dead.
pub fn client(name: &str) -> reqwest::Client {
    fresh_client(name)
}

/// `https://localhost:<port><path>` of the world's gateway.
pub fn url(path: &str) -> String {
    format!("https://localhost:{}{path}", world().api.port())
}
