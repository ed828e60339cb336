//! Simulator of `guangzhou` — 穗康码 Suikang Code (`shared/spec/regions/guangzhou.md`).
//!
//! - `GET /cgi-bin/token?grant_type=client_credential&appid=hcgw-dev&secret=<secret>` issues
//!   an access token (`expires_in` 7200 s, or `HCGW_SIM_GUANGZHOU_TOKEN_TTL_S`); a wrong
//!   secret is errcode 40001, an unknown appid 40013, a wrong grant type 40002.
//! - `POST /suikang/api/code/query?access_token=…` answers `{"code_id"}` and
//!   `{"id_card","name"}` lookups: an unknown token is 40001, an expired one 42001, an
//!   unknown subject 46004, a malformed body 47001. HTTP 200 always, like the region.
//! - Cases: `blue` (self-applied normal), `green` (proxy-applied normal — the trap), and
//!   `red` once per `red_category`, alternating `apply_mode`.
//! - Test hook outside the contract: `POST /_sim/guangzhou/expire_tokens` expires every
//!   issued token, so the next call gets errcode 42001.
//! - Suikang codes are long-term valid: a subject whose fate is "token expired" is still
//!   found by its QR code (the region has no expired-QR error).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hcgw_adapters::identity::{mask_id, mask_name};
use hcgw_adapters::{IdType, Level, Reason, RegionId};
use serde_json::{Value, json};

use super::{Fate, Intended, RegionSim, SimContext, SimSubject};

/// The env var overriding the lifetime of issued access tokens (seconds), so tests and
/// demos can force token refreshes.
pub const TOKEN_TTL_ENV: &str = "HCGW_SIM_GUANGZHOU_TOKEN_TTL_S";
/// The dev appid.
pub const DEV_APPID: &str = "hcgw-dev";
/// The dev secret's name in the PKI's `secrets/`.
pub const SECRET_NAME: &str = "guangzhou_secret";

const TOKEN_PATH: &str = "/cgi-bin/token";
const QUERY_PATH: &str = "/suikang/api/code/query";
const EXPIRE_PATH: &str = "/_sim/guangzhou/expire_tokens";

/// What Suikang sends for one case.
struct CaseAnswer {
    color: &'static str,
    apply_mode: &'static str,
    red_category: Option<&'static str>,
}

/// The cases: what the simulator sends and, written from the contract's tables (not from
/// the adapter), what it must normalise to.
fn case_table() -> Vec<(CaseAnswer, Intended)> {
    let normal = |color, apply_mode, label: &str, proxy| {
        let mut i = Intended::status(label, Level::Clear, vec![], vec![]);
        i.proxy_applied = Some(proxy);
        (
            CaseAnswer {
                color,
                apply_mode,
                red_category: None,
            },
            i,
        )
    };
    let red = |category, apply_mode: &'static str, reason| {
        let mut i = Intended::status(
            format!("red {category} ({apply_mode})"),
            Level::Quarantine,
            vec![reason],
            vec![],
        );
        i.proxy_applied = Some(apply_mode == "proxy");
        (
            CaseAnswer {
                color: "red",
                apply_mode,
                red_category: Some(category),
            },
            i,
        )
    };
    vec![
        normal("blue", "self", "blue 本人申领 (normal)", false),
        normal("green", "proxy", "green 他人代为申领 (normal, proxy)", true),
        red("home_quarantine", "self", Reason::HomeQuarantine),
        red(
            "centralized_quarantine",
            "proxy",
            Reason::CentralizedQuarantine,
        ),
        red("close_contact", "self", Reason::CloseContact),
        red("suspected", "proxy", Reason::SuspectedCase),
        red("confirmed", "self", Reason::ConfirmedCase),
        red("nat_positive", "proxy", Reason::NucleicAcidPositive),
        red("key_area_arrival", "self", Reason::HighRiskAreaArrival),
    ]
}

/// The Suikang simulator.
#[derive(Debug, Clone)]
pub struct GuangzhouSim {
    token_ttl: Duration,
}

impl Default for GuangzhouSim {
    /// Tokens live 7200 s unless `HCGW_SIM_GUANGZHOU_TOKEN_TTL_S` says otherwise.
    fn default() -> Self {
        let ttl = std::env::var(TOKEN_TTL_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(7200);
        GuangzhouSim::with_token_ttl(Duration::from_secs(ttl))
    }
}

impl GuangzhouSim {
    /// A simulator issuing tokens that live `ttl` (whole seconds, at least 1).
    pub fn with_token_ttl(ttl: Duration) -> Self {
        GuangzhouSim {
            token_ttl: ttl.max(Duration::from_secs(1)),
        }
    }
}

struct SimState {
    sim: Arc<GuangzhouSim>,
    ctx: Arc<SimContext>,
    secret: Option<String>,
    tokens: Mutex<HashMap<String, Instant>>,
}

fn errcode(code: i64, msg: &str) -> Response {
    axum::Json(json!({ "errcode": code, "errmsg": msg })).into_response()
}

impl RegionSim for GuangzhouSim {
    fn area_code(&self) -> &'static str {
        "440106"
    }

    fn region(&self) -> RegionId {
        RegionId::Guangzhou
    }

    fn cases(&self) -> Vec<Intended> {
        case_table().into_iter().map(|(_, i)| i).collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        let secret = ctx.env.secret(SECRET_NAME).ok();
        if secret.is_none() {
            tracing::warn!(
                "guangzhou simulator: no {SECRET_NAME} secret; every token request is refused"
            );
        }
        let state = Arc::new(SimState {
            sim: self,
            ctx,
            secret,
            tokens: Mutex::new(HashMap::new()),
        });
        Router::new()
            .route(TOKEN_PATH, get(token))
            .route(QUERY_PATH, post(query))
            .route(EXPIRE_PATH, post(expire_tokens))
            .with_state(state)
    }

    fn busy(&self) -> Response {
        errcode(-1, "system error")
    }

    fn supports_id_type(&self, id_type: IdType) -> bool {
        id_type == IdType::ResidentId
    }

    fn intended_for(&self, subject: &SimSubject, via_qr: bool) -> Intended {
        match subject.fate {
            _ if !via_qr && !self.supports_id_type(subject.id_type) => Intended::error(
                "identity type not served",
                hcgw_adapters::AdapterCode::UnsupportedIdType,
            ),
            Fate::NotFound => {
                Intended::error("not found", hcgw_adapters::AdapterCode::SubjectNotFound)
            }
            // Codes are long-term valid: an "expired" token is still answered.
            _ => self.cases()[subject.case % self.cases().len()].clone(),
        }
    }
}

async fn token(
    State(st): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("grant_type").map(String::as_str) != Some("client_credential") {
        return errcode(40002, "invalid grant_type");
    }
    if q.get("appid").map(String::as_str) != Some(DEV_APPID) {
        return errcode(40013, "invalid appid");
    }
    match (&st.secret, q.get("secret")) {
        (Some(expected), Some(given)) if expected == given => {}
        _ => return errcode(40001, "invalid credential, AppSecret error"),
    }
    let value = format!("{:032x}", rand::random::<u128>());
    let now = Instant::now();
    {
        let mut tokens = st.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, expiry| *expiry > now);
        tokens.insert(value.clone(), now + st.sim.token_ttl);
    }
    axum::Json(json!({ "access_token": value, "expires_in": st.sim.token_ttl.as_secs() }))
        .into_response()
}

async fn expire_tokens(State(st): State<Arc<SimState>>) -> axum::http::StatusCode {
    let now = Instant::now();
    for expiry in st
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values_mut()
    {
        *expiry = now;
    }
    axum::http::StatusCode::NO_CONTENT
}

async fn query(
    State(st): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(access_token) = q.get("access_token") else {
        return errcode(41001, "access_token missing");
    };
    let expiry = st
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(access_token)
        .copied();
    match expiry {
        None => {
            return errcode(
                40001,
                "invalid credential, access_token is invalid or not latest",
            );
        }
        Some(t) if t <= Instant::now() => return errcode(42001, "access_token expired"),
        Some(_) => {}
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return errcode(47001, "data format error");
    };
    let population = &st.ctx.population;
    let subject = match (
        request.get("code_id").and_then(Value::as_str),
        request.get("id_card").and_then(Value::as_str),
        request.get("name").and_then(Value::as_str),
    ) {
        (Some(code), None, None) => population.by_token(code),
        // Suikang matches on the number; names are not checked.
        (None, Some(id), Some(_name)) if id.len() == 18 => population
            .by_id_number(id)
            .filter(|s| s.id_type == IdType::ResidentId),
        _ => return errcode(47001, "data format error"),
    };
    let Some(subject) = subject else {
        return errcode(46004, "user not exist");
    };
    if subject.fate == Fate::NotFound {
        return errcode(46004, "user not exist");
    }
    let table = case_table();
    let (answer, _) = &table[subject.case % table.len()];
    let update_time = chrono::Utc::now().timestamp() - 600 - (subject.index as i64 % 3600);
    axum::Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "code_info": {
            "color": answer.color,
            "apply_mode": answer.apply_mode,
            "red_category": answer.red_category,
            "update_time": update_time,
            "name_mask": mask_name(&subject.name),
            "id_mask": mask_id(&subject.id_number),
        }
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimEnv, SimOptions, spawn};
    use hcgw_adapters::adapter::Identity;
    use hcgw_adapters::regions::guangzhou::{GuangzhouAdapter, GuangzhouConfig};
    use hcgw_adapters::upstream::UpstreamConfig;
    use hcgw_adapters::{HealthStatus, RegionAdapter, Secret, Subject};
    use std::path::PathBuf;

    use crate::testkit::{assert_intended, test_pki_dir as test_pki};

    /// The test kit's check, and an answer carries its time and the (masked) holder.
    fn check(label: &str, got: Result<HealthStatus, hcgw_adapters::AdapterError>, want: &Intended) {
        assert_intended(label, &got, want);
        if let Ok(s) = got {
            assert!(s.as_of.is_some(), "{label}: as_of");
            assert!(s.holder.name_masked.is_some(), "{label}: holder");
        }
    }

    async fn start(sim: GuangzhouSim, pki: PathBuf) -> (crate::RunningSim, GuangzhouAdapter) {
        let env = SimEnv { pki_dir: pki };
        let secret = env.secret(SECRET_NAME).unwrap();
        let options = SimOptions {
            population: 200,
            ..SimOptions::default()
        };
        let running = spawn(Arc::new(sim), &options, env, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let adapter = GuangzhouAdapter::new(GuangzhouConfig {
            upstream: UpstreamConfig::new(running.base_url(), Duration::from_secs(2)),
            appid: DEV_APPID.into(),
            secret: Secret::new(secret),
        })
        .unwrap();
        (running, adapter)
    }

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let sim = GuangzhouSim::with_token_ttl(Duration::from_secs(7200));
        let cases = sim.cases();
        let labels: Vec<_> = cases.iter().map(|c| c.label.as_str()).collect();
        assert!(
            labels.iter().any(|l| l.starts_with("blue"))
                && labels.iter().any(|l| l.starts_with("green"))
        );
        let (running, adapter) = start(sim.clone(), test_pki()).await;
        let subjects = running.context.population.subjects().to_vec();
        for (case, intended) in cases.iter().enumerate() {
            let s = subjects
                .iter()
                .find(|s| {
                    s.case == case && s.fate == Fate::Active && s.id_type == IdType::ResidentId
                })
                .expect("an active resident for every case");
            let want = sim.intended_for(s, true);
            assert_eq!(&want, intended);
            check(
                "qr",
                adapter.status(&Subject::QrToken(s.token.clone())).await,
                &want,
            );
            let by_id = Subject::Identity(Identity {
                id_type: s.id_type,
                id_number: s.id_number.clone(),
                name: s.name.clone(),
            });
            check(
                "identity",
                adapter.status(&by_id).await,
                &sim.intended_for(s, false),
            );
        }
        for fate in [Fate::NotFound, Fate::TokenExpired] {
            let s = subjects
                .iter()
                .find(|s| s.fate == fate)
                .expect("fate present");
            check(
                &format!("{fate:?} qr"),
                adapter.status(&Subject::QrToken(s.token.clone())).await,
                &sim.intended_for(s, true),
            );
        }
        let passport = subjects
            .iter()
            .find(|s| s.id_type == IdType::Passport)
            .unwrap();
        let by_passport = Subject::Identity(Identity {
            id_type: IdType::Passport,
            id_number: passport.id_number.clone(),
            name: passport.name.clone(),
        });
        check(
            "passport",
            adapter.status(&by_passport).await,
            &sim.intended_for(passport, false),
        );
        // An unknown QR token is not found.
        let e = adapter
            .status(&Subject::QrToken("Z".repeat(28)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), hcgw_adapters::AdapterCode::SubjectNotFound);
        assert_eq!(adapter.token_fetches(), 1, "one token for the whole run");
        running.task.abort();
    }

    #[tokio::test]
    async fn wrong_secret_and_busy_are_region_unavailable() {
        let pki = test_pki();
        let (running, _) =
            start(GuangzhouSim::with_token_ttl(Duration::from_secs(7200)), pki).await;
        let wrong = GuangzhouAdapter::new(GuangzhouConfig {
            upstream: UpstreamConfig::new(running.base_url(), Duration::from_secs(2)),
            appid: DEV_APPID.into(),
            secret: Secret::new("not-the-secret"),
        })
        .unwrap();
        let token = running.context.population.subjects()[0].token.clone();
        let e = wrong
            .status(&Subject::QrToken(token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), hcgw_adapters::AdapterCode::RegionUnavailable);
        // Taken down: every call is errcode -1 (system busy) → region_unavailable.
        let (running, adapter) = start(
            GuangzhouSim::with_token_ttl(Duration::from_secs(7200)),
            test_pki(),
        )
        .await;
        let client = hcgw_adapters::upstream::build_client(&UpstreamConfig::new(
            running.base_url(),
            Duration::from_secs(2),
        ))
        .unwrap();
        let resp = client
            .post(format!("{}/_sim/control", running.base_url()))
            .json(&json!({"down": true}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let e = adapter
            .status(&Subject::QrToken(token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), hcgw_adapters::AdapterCode::RegionUnavailable);
        assert!(e.is_retryable(), "system busy may be retried once");
        running.task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_tokens_42001_are_refreshed_once_for_many_callers() {
        let (running, adapter) = start(
            GuangzhouSim::with_token_ttl(Duration::from_secs(7200)),
            test_pki(),
        )
        .await;
        let adapter = Arc::new(adapter);
        let qr = Subject::QrToken(running.context.population.subjects()[1].token.clone());
        assert_eq!(adapter.status(&qr).await.unwrap().proxy_applied, Some(true));
        let client = hcgw_adapters::upstream::build_client(&UpstreamConfig::new(
            running.base_url(),
            Duration::from_secs(2),
        ))
        .unwrap();
        let resp = client
            .post(format!("{}{EXPIRE_PATH}", running.base_url()))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (a, q) = (adapter.clone(), qr.clone());
                tokio::spawn(async move { a.status(&q).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().proxy_applied, Some(true));
        }
        assert_eq!(adapter.token_fetches(), 2, "one refresh for twenty callers");
        running.task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_lived_tokens_are_refreshed_once_for_many_callers() {
        let (running, adapter) = start(
            GuangzhouSim::with_token_ttl(Duration::from_secs(2)),
            test_pki(),
        )
        .await;
        let adapter = Arc::new(adapter);
        let token = running.context.population.subjects()[0].token.clone();
        for round in 1..=2u64 {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let (a, t) = (adapter.clone(), token.clone());
                    tokio::spawn(async move { a.status(&Subject::QrToken(t)).await })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap().unwrap().level, Level::Clear);
            }
            assert_eq!(adapter.token_fetches(), round, "round {round}");
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
        running.task.abort();
    }
}
