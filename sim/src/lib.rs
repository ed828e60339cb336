//! Region simulators: for each region, a server that speaks its published contract exactly
//! (auth, signatures, XML, error codes), backed by a deterministic synthetic population.
//! `hcgw simulate` and `hcgw demo` run them; end-to-end tests and benchmarks call them.
//!
//! This crate depends on `hcgw-adapters` only, never on the gateway crate `hcgw`: the
//! gateway uses it behind its default cargo feature `sim` (`hcgw simulate`, `hcgw demo`),
//! and a gateway built with `--no-default-features` contains no simulator code (checked
//! by `scripts/test.sh`: `cargo check -p hcgw --no-default-features --bins`). Besides the
//! simulators: [`net`] (HTTPS serving and the simulators' mTLS settings, also used by test
//! fixtures) and [`dev_pki`] (the runner of `certs/dev-pki.sh`).
//!
//! Every simulator also serves, outside its region's API:
//! - `GET /_sim/subjects?offset=&limit=`: subjects with the status each is *intended* to
//!   normalise to (synthetic data only), for tests and demos;
//! - `GET /_sim/stats`: requests served to the region API;
//! - `POST /_sim/control`: `{"down": bool, "latency_ms": n, "error_rate": x,
//!   "bad_signatures": bool}` to change behaviour at run time (taking a region down in a
//!   test; `bad_signatures`: a region that signs its answers signs them wrong, see
//!   [`RegionSim::tamper_signature`]).

pub mod dev_pki;
pub mod guangdong;
pub mod guangzhou;
pub mod hangzhou;
pub mod huzhou;
pub mod net;
pub mod population;
pub mod suishen;
pub mod sukang;
pub mod suzhou;
#[cfg(test)]
mod testkit;
pub mod xuzhou;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hcgw_adapters::{Action, AdapterCode, Color, IdType, Level, Reason, RegionId};
use serde::{Deserialize, Serialize};

pub use population::{Fate, Population, Shares, SimSubject};

/// Start-up options of a simulator.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Added latency before each region API answer.
    pub latency: Duration,
    /// Share of region API calls answered with the region's "system busy" error.
    pub error_rate: f64,
    /// Share of subjects whose QR token is expired.
    pub expired_share: f64,
    /// Share of subjects the region does not know.
    pub not_found_share: f64,
    /// Subjects per region.
    pub population: usize,
    /// Seed of the synthetic population.
    pub seed: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            latency: Duration::ZERO,
            error_rate: 0.0,
            expired_share: 0.05,
            not_found_share: 0.05,
            population: 1000,
            seed: 2020,
        }
    }
}

/// Where the simulators find the dev PKI: secrets (`secrets/<name>`), upstream TLS
/// material (`upstream/<region>/…`) and Suishen's signing keys.
#[derive(Clone, Debug)]
pub struct SimEnv {
    /// The dev PKI directory (`certs/dev`).
    pub pki_dir: PathBuf,
}

impl SimEnv {
    /// Reads the dev secret `name` (e.g. `suzhou_app_secret`).
    pub fn secret(&self, name: &str) -> std::io::Result<String> {
        Ok(
            std::fs::read_to_string(self.pki_dir.join("secrets").join(name))?
                .trim()
                .to_owned(),
        )
    }

    /// A path inside the PKI directory.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.pki_dir.join(rel)
    }

    /// The server TLS settings of an mTLS region's simulator (`upstream/<region>/`): its
    /// server certificate, client certificates required from the region's own CA.
    pub fn region_server_tls(&self, region: &str) -> Result<rustls::ServerConfig, String> {
        crate::net::mtls_server_config(
            &self.path(format!("upstream/{region}/server/cert.pem")),
            &self.path(format!("upstream/{region}/server/key.pem")),
            &self.path(format!("upstream/{region}/ca.pem")),
        )
    }
}

/// Behaviour that tests change at run time.
#[derive(Debug, Default)]
pub struct SimControl {
    down: AtomicBool,
    latency_ms: AtomicU64,
    error_rate_ppm: AtomicU64,
    bad_signatures: AtomicBool,
}

impl SimControl {
    /// Whether the region answers every call with its outage error.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
    /// Current added latency.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }
    /// Current injected error rate (0..=1).
    pub fn error_rate(&self) -> f64 {
        self.error_rate_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }
    /// Whether answers that the region signs carry a signature that does not match them.
    pub fn bad_signatures(&self) -> bool {
        self.bad_signatures.load(Ordering::Relaxed)
    }
    fn set(&self, c: &ControlRequest) {
        if let Some(b) = c.bad_signatures {
            self.bad_signatures.store(b, Ordering::Relaxed);
        }
        if let Some(d) = c.down {
            self.down.store(d, Ordering::Relaxed);
        }
        if let Some(l) = c.latency_ms {
            self.latency_ms.store(l, Ordering::Relaxed);
        }
        if let Some(e) = c.error_rate {
            self.error_rate_ppm
                .store((e.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Relaxed);
        }
    }
}

/// Everything a region simulator's handlers share.
#[derive(Debug)]
pub struct SimContext {
    /// The simulated region.
    pub region: RegionId,
    /// Its population.
    pub population: Population,
    /// Run-time behaviour.
    pub control: SimControl,
    /// The dev PKI.
    pub env: SimEnv,
    /// Region API requests served.
    pub requests: AtomicU64,
    /// When the latest requests arrived (the last [`ARRIVALS_KEPT`]), for tests that check
    /// a rate over exact windows.
    pub arrivals: std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>,
}

/// Arrival times a simulator keeps.
pub const ARRIVALS_KEPT: usize = 4096;

impl SimContext {
    /// The arrival times of the latest requests (at most [`ARRIVALS_KEPT`]), oldest first.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        a.iter().copied().collect()
    }
}

/// What a simulator intends a case to normalise to: the expectation end-to-end tests
/// check the gateway against. Written from the region contract, independently of the
/// adapter's mapping code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Intended {
    /// A short name of the case (e.g. `GP 绿码待定 P2`).
    pub label: String,
    /// Normalised colour.
    pub color: Color,
    /// Normalised level.
    pub level: Level,
    /// Normalised reasons, in any order.
    pub reasons: Vec<Reason>,
    /// Normalised actions, in any order.
    pub actions: Vec<Action>,
    /// proxy_applied, when the region says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_applied: Option<bool>,
    /// The gateway error this case must produce instead of a status (e.g. a bad
    /// signature → `upstream_invalid_response`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AdapterCode>,
}

impl Intended {
    /// A status case.
    pub fn status(
        label: impl Into<String>,
        level: Level,
        reasons: Vec<Reason>,
        actions: Vec<Action>,
    ) -> Self {
        Intended {
            label: label.into(),
            color: level.color(),
            level,
            reasons,
            actions,
            proxy_applied: None,
            error: None,
        }
    }

    /// A case that must end in a gateway error.
    pub fn error(label: impl Into<String>, code: AdapterCode) -> Self {
        Intended {
            label: label.into(),
            color: Color::Unknown,
            level: Level::Unknown,
            reasons: vec![],
            actions: vec![],
            proxy_applied: None,
            error: Some(code),
        }
    }
}

/// One region's simulator.
pub trait RegionSim: Send + Sync + 'static {
    /// The simulated region.
    fn region(&self) -> RegionId;

    /// The six-digit administrative area code that begins the resident-id numbers of the
    /// region's synthetic people.
    fn area_code(&self) -> &'static str;

    /// The cases the population exhibits (subject `i` has case `i % cases().len()`).
    fn cases(&self) -> Vec<Intended>;

    /// The region API's routes.
    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router;

    /// The region's own outage answer ("system busy"), used for injected errors and
    /// when the region is taken down.
    fn busy(&self) -> Response;

    /// `response` with its signature broken, for the `bad_signatures` switch of
    /// `/_sim/control`: still well-formed and made by the region's key, but over other
    /// bytes, so a client that checks it must refuse the answer. The default, for regions
    /// that do not sign their answers, returns it unchanged.
    fn tamper_signature(&self, response: Response) -> Response {
        response
    }

    /// Identity types the region serves.
    fn supports_id_type(&self, id_type: IdType) -> bool {
        let _ = id_type;
        true
    }

    /// TLS server settings for regions reached over mTLS (`None`: plain HTTP).
    fn tls(&self, env: &SimEnv) -> Option<Result<rustls::ServerConfig, String>> {
        let _ = env;
        None
    }

    /// What a lookup of `subject` must normalise to, by QR (`via_qr`) or by identity.
    fn intended_for(&self, subject: &SimSubject, via_qr: bool) -> Intended {
        match subject.fate {
            Fate::NotFound => Intended::error("not found", AdapterCode::SubjectNotFound),
            Fate::TokenExpired if via_qr => {
                Intended::error("QR token expired", AdapterCode::TokenExpired)
            }
            _ if !via_qr && !self.supports_id_type(subject.id_type) => {
                Intended::error("identity type not served", AdapterCode::UnsupportedIdType)
            }
            _ => self.cases()[subject.case % self.cases().len()].clone(),
        }
    }
}

/// When the simulated region last computed `subject`'s status: a few minutes ago (0–59,
/// by subject), in Asia/Shanghai time, so statuses are fresh for the recognition policy.
pub fn status_time(subject: &SimSubject) -> chrono::DateTime<chrono::FixedOffset> {
    let minutes = (subject.index % 60) as i64;
    (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .with_timezone(&hcgw_adapters::time::shanghai())
}

/// Every region's simulator.
pub fn all() -> Vec<Arc<dyn RegionSim>> {
    vec![
        Arc::new(suzhou::SuzhouSim::new()),
        Arc::new(huzhou::HuzhouSim::new()),
        Arc::new(xuzhou::XuzhouSim::new()),
        Arc::new(sukang::SukangSim),
        Arc::new(hangzhou::HangzhouSim),
        Arc::new(guangdong::GuangdongSim),
        Arc::new(suishen::SuishenSim::default()),
        Arc::new(guangzhou::GuangzhouSim::default()),
    ]
}

/// The simulator of one region, when it exists.
pub fn for_region(region: RegionId) -> Option<Arc<dyn RegionSim>> {
    all().into_iter().find(|s| s.region() == region)
}

#[derive(Deserialize)]
struct ControlRequest {
    down: Option<bool>,
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    bad_signatures: Option<bool>,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

#[derive(Serialize)]
struct SubjectView<'a> {
    #[serde(flatten)]
    subject: &'a SimSubject,
    intended_by_qr: Intended,
    intended_by_identity: Intended,
}

/// The full router of a simulator: the region API (with injected latency, errors and
/// outage) and the `/_sim` endpoints.
pub fn router(sim: Arc<dyn RegionSim>, ctx: Arc<SimContext>) -> Router {
    let api = sim
        .clone()
        .routes(ctx.clone())
        .layer(middleware::from_fn_with_state(
            (sim.clone(), ctx.clone()),
            inject_behaviour,
        ));
    let sim_for_subjects = sim.clone();
    let admin = Router::new()
        .route(
            "/_sim/subjects",
            get(
                move |State(ctx): State<Arc<SimContext>>, Query(p): Query<Page>| async move {
                    let views: Vec<SubjectView<'_>> = ctx
                        .population
                        .subjects()
                        .iter()
                        .skip(p.offset)
                        .take(p.limit.min(10_000))
                        .map(|s| SubjectView {
                            subject: s,
                            intended_by_qr: sim_for_subjects.intended_for(s, true),
                            intended_by_identity: sim_for_subjects.intended_for(s, false),
                        })
                        .collect();
                    Json(serde_json::to_value(views).unwrap_or_default())
                },
            ),
        )
        .route(
            "/_sim/stats",
            get(|State(ctx): State<Arc<SimContext>>| async move {
                Json(serde_json::json!({
                    "region": ctx.region,
                    "requests": ctx.requests.load(Ordering::Relaxed),
                    "down": ctx.control.is_down(),
                    "latency_ms": ctx.control.latency().as_millis() as u64,
                    "error_rate": ctx.control.error_rate(),
                    "bad_signatures": ctx.control.bad_signatures(),
                }))
            }),
        )
        .route(
            "/_sim/control",
            post(
                |State(ctx): State<Arc<SimContext>>, Json(c): Json<ControlRequest>| async move {
                    ctx.control.set(&c);
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(ctx);
    api.merge(admin)
}

async fn inject_behaviour(
    State((sim, ctx)): State<(Arc<dyn RegionSim>, Arc<SimContext>)>,
    req: Request,
    next: Next,
) -> Response {
    ctx.requests.fetch_add(1, Ordering::Relaxed);
    {
        let mut a = ctx.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        if a.len() == ARRIVALS_KEPT {
            a.pop_front();
        }
        a.push_back(std::time::Instant::now());
    }
    let latency = ctx.control.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let rate = ctx.control.error_rate();
    if ctx.control.is_down() || (rate > 0.0 && rand::random::<f64>() < rate) {
        return sim.busy().into_response();
    }
    let response = next.run(req).await;
    if ctx.control.bad_signatures() {
        return sim.tamper_signature(response);
    }
    response
}

/// A running simulator.
pub struct RunningSim {
    /// The region.
    pub region: RegionId,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Its shared state.
    pub context: Arc<SimContext>,
    /// The server task.
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    /// The base URL adapters are configured with.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

/// Starts the simulator of `sim.region()` on `addr` (port 0 for any).
pub async fn spawn(
    sim: Arc<dyn RegionSim>,
    options: &SimOptions,
    env: SimEnv,
    addr: SocketAddr,
) -> Result<RunningSim, String> {
    let region = sim.region();
    let population = Population::generate(
        region,
        sim.area_code(),
        options.population,
        sim.cases().len(),
        options.seed,
        Shares {
            expired: options.expired_share,
            not_found: options.not_found_share,
        },
    );
    let control = SimControl::default();
    control.set(&ControlRequest {
        down: Some(false),
        latency_ms: Some(options.latency.as_millis() as u64),
        error_rate: Some(options.error_rate),
        bad_signatures: Some(false),
    });
    let tls = sim
        .tls(&env)
        .transpose()
        .map_err(|e| format!("{region} simulator TLS: {e}"))?;
    let context = Arc::new(SimContext {
        region,
        population,
        control,
        env,
        requests: AtomicU64::new(0),
        arrivals: Default::default(),
    });
    let app = router(sim, context.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{region} simulator cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (scheme, task) = match tls {
        None => (
            "http",
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        ),
        Some(cfg) => (
            "https",
            crate::net::spawn_https(listener, Arc::new(cfg), app),
        ),
    };
    Ok(RunningSim {
        region,
        addr,
        scheme,
        context,
        task,
    })
}
