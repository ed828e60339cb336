//! Simulator of `suishen` — 随申码 Suishen Code, Shanghai (`shared/spec/regions/suishen.md`).
//!
//! - `POST /oauth2/token` (form: `grant_type=client_credentials`, `client_id=hcgw-dev`,
//!   `client_secret=<suishen_client_secret>`) issues Bearer tokens (`expires_in` 7200 s, or
//!   `HCGW_SIM_SUISHEN_TOKEN_TTL_S`); a wrong client is 401 `invalid_client`.
//! - `POST /api/suishenma/v1/verify` with `{"qrcode"}` or `{"idType","idNo","name"}`:
//!   an unknown or expired token is 401/40101, an unknown subject 404/40401, an expired QR
//!   code 410/40402, system busy 503/50301.
//! - **Every body is SM2-signed** (SM3, distinguishing ID `1234567812345678`) with the dev
//!   PKI's `upstream/suishen/sign-key-1.pem`, key id `sign-key-1`; some cases are signed
//!   with `sign-key-2` (a key rotation in progress: configure both public keys), and one
//!   case — "Suishen bad-signature fault" — carries a signature over a different body,
//!   which the gateway must refuse (`upstream_invalid_response`).
//! - Test hook outside the contract: `POST /_sim/suishen/revoke_tokens` forgets every
//!   issued token, so the next call gets 401/40101.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hcgw_adapters::identity::{mask_id, mask_name};
use hcgw_adapters::regions::suishen::sm2::SigningKey;
use hcgw_adapters::regions::suishen::{KEY_ID_HEADER, SIGNATURE_HEADER, id_type_code};
use hcgw_adapters::{Action, AdapterCode, Level, Reason, RegionId};
use serde_json::{Value, json};

use super::{Fate, Intended, RegionSim, SimContext};

/// The env var overriding the lifetime of issued access tokens (seconds), so tests and
/// demos can force token refreshes.
pub const TOKEN_TTL_ENV: &str = "HCGW_SIM_SUISHEN_TOKEN_TTL_S";
/// The dev OAuth2 client id.
pub const DEV_CLIENT_ID: &str = "hcgw-dev";
/// The dev client secret's name in the PKI's `secrets/`.
pub const SECRET_NAME: &str = "suishen_client_secret";
/// The signing keys (id, private key, public key) inside the PKI directory.
pub const SIGNING_KEYS: [(&str, &str, &str); 2] = [
    (
        "sign-key-1",
        "upstream/suishen/sign-key-1.pem",
        "upstream/suishen/sign-key-1.pub.pem",
    ),
    (
        "sign-key-2",
        "upstream/suishen/sign-key-2.pem",
        "upstream/suishen/sign-key-2.pub.pem",
    ),
];
/// The label of the required bad-signature case.
pub const BAD_SIGNATURE_CASE: &str = "Suishen bad-signature fault";

const TOKEN_PATH: &str = "/oauth2/token";
const VERIFY_PATH: &str = "/api/suishenma/v1/verify";
const REVOKE_PATH: &str = "/_sim/suishen/revoke_tokens";

/// How a case's answer is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signing {
    /// By `sign-key-1`.
    Key1,
    /// By `sign-key-2` (rotation).
    Key2,
    /// By `sign-key-1`, but over a different body (a tampered answer).
    Tampered,
}

/// What Suishen sends for one case.
struct CaseAnswer {
    code_color: u8,
    status_desc: &'static str,
    control_measure: &'static str,
    reason_tags: &'static [&'static str],
    registration: &'static str,
    signing: Signing,
}

/// The cases: what the simulator sends and, written from the contract's tables (not from
/// the adapter), what it must normalise to.
fn case_table() -> Vec<(CaseAnswer, Intended)> {
    const GREEN: &str = "未见异常或已解除医学管理措施，可以通行";
    const YELLOW: &str = "重点地区来沪未满14天，建议观察";
    const RED: &str = "未解除医学管理措施、确诊未出院、疑似未排除，建议隔离";
    let case = |code_color, reason_tags, registration, signing| {
        let (status_desc, control_measure) = match code_color {
            0 => (GREEN, "NONE"),
            1 => (YELLOW, "OBSERVE"),
            _ => (RED, "ISOLATE"),
        };
        CaseAnswer {
            code_color,
            status_desc,
            control_measure,
            reason_tags,
            registration,
            signing,
        }
    };
    vec![
        (
            case(0, &[], "DONE", Signing::Key1),
            Intended::status("codeColor 0 green", Level::Clear, vec![], vec![]),
        ),
        (
            case(1, &["FROM_KEY_AREA"], "DONE", Signing::Key1),
            Intended::status(
                "codeColor 1 yellow FROM_KEY_AREA",
                Level::Monitoring,
                vec![Reason::HighRiskAreaArrival],
                vec![],
            ),
        ),
        (
            case(
                2,
                &["UNDER_MEDICAL_MANAGEMENT"],
                "NOT_APPLICABLE",
                Signing::Key1,
            ),
            Intended::status(
                "codeColor 2 red UNDER_MEDICAL_MANAGEMENT",
                Level::Quarantine,
                vec![Reason::UnderMedicalManagement],
                vec![],
            ),
        ),
        (
            case(
                2,
                &["CONFIRMED_NOT_DISCHARGED"],
                "NOT_APPLICABLE",
                Signing::Key2,
            ),
            Intended::status(
                "codeColor 2 red CONFIRMED_NOT_DISCHARGED (signed by sign-key-2)",
                Level::Quarantine,
                vec![Reason::ConfirmedCase],
                vec![],
            ),
        ),
        (
            case(2, &["SUSPECTED_NOT_EXCLUDED"], "DONE", Signing::Key1),
            Intended::status(
                "codeColor 2 red SUSPECTED_NOT_EXCLUDED",
                Level::Quarantine,
                vec![Reason::SuspectedCase],
                vec![],
            ),
        ),
        (
            case(0, &[], "REQUIRED", Signing::Key2),
            Intended::status(
                "codeColor 0 green, arrival registration REQUIRED (signed by sign-key-2)",
                Level::Clear,
                vec![],
                vec![Action::RegisterOnArrival],
            ),
        ),
        (
            case(1, &["FROM_KEY_AREA"], "REQUIRED", Signing::Key1),
            Intended::status(
                "codeColor 1 yellow FROM_KEY_AREA, arrival registration REQUIRED",
                Level::Monitoring,
                vec![Reason::HighRiskAreaArrival],
                vec![Action::RegisterOnArrival],
            ),
        ),
        (
            // A green body whose signature was made over a red one.
            case(0, &[], "DONE", Signing::Tampered),
            Intended::error(BAD_SIGNATURE_CASE, AdapterCode::UpstreamInvalidResponse),
        ),
    ]
}

/// The Suishen simulator.
#[derive(Debug)]
pub struct SuishenSim {
    token_ttl: Duration,
    keys: OnceLock<Vec<(&'static str, SigningKey)>>,
}

impl Default for SuishenSim {
    /// Tokens live 7200 s unless `HCGW_SIM_SUISHEN_TOKEN_TTL_S` says otherwise.
    fn default() -> Self {
        let ttl = std::env::var(TOKEN_TTL_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(7200);
        SuishenSim::with_token_ttl(Duration::from_secs(ttl))
    }
}

impl SuishenSim {
    /// A simulator issuing tokens that live `ttl` (whole seconds, at least 1).
    pub fn with_token_ttl(ttl: Duration) -> Self {
        SuishenSim {
            token_ttl: ttl.max(Duration::from_secs(1)),
            keys: OnceLock::new(),
        }
    }

    /// A signed JSON response (`key` 0 = sign-key-1, 1 = sign-key-2). `signed_body` is
    /// what the signature covers: the body itself, except for a tampered answer.
    fn respond(
        &self,
        status: StatusCode,
        key: usize,
        body: &Value,
        signed_body: &Value,
    ) -> Response {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("static"),
        );
        if let Some((id, signer)) = self.keys.get().and_then(|k| k.get(key)) {
            let covered = serde_json::to_vec(signed_body).unwrap_or_default();
            if let Ok(sig) = signer.sign(&covered)
                && let (Ok(id), Ok(sig)) = (id.parse(), BASE64.encode(sig).parse())
            {
                headers.insert(KEY_ID_HEADER, id);
                headers.insert(SIGNATURE_HEADER, sig);
            }
        }
        (status, headers, bytes).into_response()
    }

    fn signed(&self, status: StatusCode, body: Value) -> Response {
        self.respond(status, 0, &body, &body)
    }

    fn error(&self, status: StatusCode, code: u32, message: &str) -> Response {
        self.signed(status, json!({ "code": code, "message": message }))
    }
}

struct SimState {
    sim: Arc<SuishenSim>,
    ctx: Arc<SimContext>,
    secret: Option<String>,
    tokens: Mutex<HashMap<String, Instant>>,
}

impl RegionSim for SuishenSim {
    fn area_code(&self) -> &'static str {
        "310104"
    }

    fn region(&self) -> RegionId {
        RegionId::Suishen
    }

    fn cases(&self) -> Vec<Intended> {
        case_table().into_iter().map(|(_, i)| i).collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        let mut keys = Vec::new();
        for (id, private, _) in SIGNING_KEYS {
            match std::fs::read(ctx.env.path(private))
                .map_err(|e| e.to_string())
                .and_then(|pem| SigningKey::from_pem(&pem))
            {
                Ok(k) => keys.push((id, k)),
                Err(e) => {
                    tracing::error!("suishen simulator: signing key {id}: {e}; answers go unsigned")
                }
            }
        }
        let _ = self.keys.set(keys);
        let secret = ctx.env.secret(SECRET_NAME).ok();
        if secret.is_none() {
            tracing::warn!(
                "suishen simulator: no {SECRET_NAME} secret; every token request is refused"
            );
        }
        let state = Arc::new(SimState {
            sim: self,
            ctx,
            secret,
            tokens: Mutex::new(HashMap::new()),
        });
        Router::new()
            .route(TOKEN_PATH, post(token))
            .route(VERIFY_PATH, post(verify))
            .route(REVOKE_PATH, post(revoke))
            .with_state(state)
    }

    fn busy(&self) -> Response {
        self.error(StatusCode::SERVICE_UNAVAILABLE, 50301, "system busy")
    }

    /// Re-signs the answer with its own key id, but over other bytes than its body.
    fn tamper_signature(&self, mut response: Response) -> Response {
        if !response.headers().contains_key(SIGNATURE_HEADER) {
            return response;
        }
        let kid = response
            .headers()
            .get(KEY_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let signer = self
            .keys
            .get()
            .and_then(|k| k.iter().find(|(id, _)| Some(*id) == kid.as_deref()))
            .map(|(_, signer)| signer);
        let forged = signer
            .and_then(|s| s.sign(b"not the body of this answer").ok())
            .and_then(|sig| BASE64.encode(sig).parse().ok());
        match forged {
            Some(sig) => {
                response.headers_mut().insert(SIGNATURE_HEADER, sig);
            }
            None => {
                response.headers_mut().remove(SIGNATURE_HEADER);
            }
        }
        response
    }
}

/// Parses an `application/x-www-form-urlencoded` body of plain values (what OAuth2
/// clients send here: ids, hex secrets, fixed words).
fn form_fields(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    Some(
        text.split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.replace('+', " ")))
            .collect(),
    )
}

async fn token(State(st): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let sim = &st.sim;
    let Some(form) = form_fields(&headers, &body) else {
        return sim.signed(
            StatusCode::BAD_REQUEST,
            json!({ "error": "invalid_request" }),
        );
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return sim.signed(
            StatusCode::BAD_REQUEST,
            json!({ "error": "unsupported_grant_type" }),
        );
    }
    let client_ok = form.get("client_id").map(String::as_str) == Some(DEV_CLIENT_ID)
        && matches!((&st.secret, form.get("client_secret")), (Some(a), Some(b)) if a == b);
    if !client_ok {
        return sim.signed(
            StatusCode::UNAUTHORIZED,
            json!({ "error": "invalid_client", "error_description": "client authentication failed" }),
        );
    }
    let value = BASE64.encode(rand::random::<[u8; 24]>());
    let now = Instant::now();
    {
        let mut tokens = st.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, expiry| *expiry > now);
        tokens.insert(value.clone(), now + sim.token_ttl);
    }
    sim.signed(
        StatusCode::OK,
        json!({ "access_token": value, "token_type": "Bearer", "expires_in": sim.token_ttl.as_secs() }),
    )
}

async fn revoke(State(st): State<Arc<SimState>>) -> StatusCode {
    st.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
    StatusCode::NO_CONTENT
}

async fn verify(State(st): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let sim = &st.sim;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer.is_some_and(|t| {
        st.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(t)
            .is_some_and(|expiry| *expiry > Instant::now())
    });
    if !valid {
        return sim.error(StatusCode::UNAUTHORIZED, 40101, "token expired");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return sim.error(StatusCode::BAD_REQUEST, 40001, "bad request");
    };
    let population = &st.ctx.population;
    let field = |k: &str| request.get(k).and_then(Value::as_str);
    let (subject, via_qr) = match (
        field("qrcode"),
        field("idType"),
        field("idNo"),
        field("name"),
    ) {
        (Some(qr), None, None, None) => (population.by_token(qr), true),
        (None, Some(t), Some(no), Some(_name)) if ["01", "02", "03", "04"].contains(&t) => (
            population
                .by_id_number(no)
                .filter(|s| id_type_code(s.id_type) == t),
            false,
        ),
        _ => return sim.error(StatusCode::BAD_REQUEST, 40001, "bad request"),
    };
    let Some(subject) = subject.filter(|s| s.fate != Fate::NotFound) else {
        return sim.error(
            StatusCode::NOT_FOUND,
            40401,
            "no Suishen Code for this person",
        );
    };
    if via_qr && subject.fate == Fate::TokenExpired {
        return sim.error(StatusCode::GONE, 40402, "QR code expired");
    }
    let table = case_table();
    let (answer, _) = &table[subject.case % table.len()];
    let refresh_ms =
        chrono::Utc::now().timestamp_millis() - 60_000 - (subject.index as i64 % 600) * 1000;
    let body_for = |code_color: u8| {
        json!({
            "code": 0,
            "message": "ok",
            "data": {
                "codeColor": code_color,
                "statusDesc": answer.status_desc,
                "refreshTime": refresh_ms,
                "maskedName": mask_name(&subject.name),
                "maskedIdNo": mask_id(&subject.id_number),
                "idType": id_type_code(subject.id_type),
                "controlMeasure": answer.control_measure,
                "reasonTags": answer.reason_tags,
                "registration": answer.registration,
            }
        })
    };
    let body = body_for(answer.code_color);
    match answer.signing {
        Signing::Key1 => sim.respond(StatusCode::OK, 0, &body, &body),
        Signing::Key2 => sim.respond(StatusCode::OK, 1, &body, &body),
        Signing::Tampered => sim.respond(StatusCode::OK, 0, &body, &body_for(2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RunningSim, SimEnv, SimOptions, spawn};
    use hcgw_adapters::regions::suishen::{SuishenAdapter, SuishenConfig};
    use hcgw_adapters::upstream::{UpstreamConfig, build_client};
    use hcgw_adapters::{AdapterError, HealthStatus, IdType, RegionAdapter, Secret, Subject};
    use std::path::PathBuf;

    use crate::testkit::{assert_intended, identity, test_pki_dir as test_pki};

    /// The test kit's check, and an answer carries its time and the (masked) holder.
    fn check(label: &str, got: Result<HealthStatus, AdapterError>, want: &Intended) {
        assert_intended(label, &got, want);
        if let Ok(s) = got {
            assert!(s.as_of.is_some(), "{label}: as_of");
            assert!(s.holder.id_masked.is_some(), "{label}: holder");
        }
    }

    fn adapter_for(running: &RunningSim, secret: &str) -> SuishenAdapter {
        let env = &running.context.env;
        let keys = SIGNING_KEYS
            .iter()
            .map(|(id, _, public)| (id.to_string(), std::fs::read(env.path(public)).unwrap()))
            .collect();
        SuishenAdapter::new(SuishenConfig {
            upstream: UpstreamConfig::new(running.base_url(), Duration::from_millis(1500)),
            client_id: DEV_CLIENT_ID.into(),
            client_secret: Secret::new(secret),
            signing_keys: keys,
        })
        .unwrap()
    }

    async fn start(sim: SuishenSim) -> (RunningSim, SuishenAdapter) {
        let env = SimEnv {
            pki_dir: test_pki(),
        };
        let secret = env.secret(SECRET_NAME).unwrap();
        let options = SimOptions {
            population: 200,
            ..SimOptions::default()
        };
        let running = spawn(Arc::new(sim), &options, env, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let adapter = adapter_for(&running, &secret);
        (running, adapter)
    }

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let sim = SuishenSim::with_token_ttl(Duration::from_secs(7200));
        let cases = sim.cases();
        assert!(
            cases.iter().any(|c| c.label == BAD_SIGNATURE_CASE
                && c.error == Some(AdapterCode::UpstreamInvalidResponse)),
            "the bad-signature fault is a case"
        );
        let (running, adapter) = start(SuishenSim::with_token_ttl(Duration::from_secs(7200))).await;
        let subjects = running.context.population.subjects().to_vec();
        for (case, intended) in cases.iter().enumerate() {
            let s = subjects
                .iter()
                .find(|s| s.case == case && s.fate == Fate::Active)
                .expect("an active subject for every case");
            assert_eq!(&sim.intended_for(s, true), intended);
            check(
                "qr",
                adapter.status(&Subject::QrToken(s.token.clone())).await,
                intended,
            );
            check(
                "identity",
                adapter.status(&identity(s)).await,
                &sim.intended_for(s, false),
            );
        }
        for fate in [Fate::NotFound, Fate::TokenExpired] {
            let s = subjects
                .iter()
                .find(|s| s.fate == fate)
                .expect("fate present");
            check(
                &format!("{fate:?} by qr"),
                adapter.status(&Subject::QrToken(s.token.clone())).await,
                &sim.intended_for(s, true),
            );
            check(
                &format!("{fate:?} by identity"),
                adapter.status(&identity(s)).await,
                &sim.intended_for(s, false),
            );
        }
        // Passports (idType 02) are served too.
        let p = subjects
            .iter()
            .find(|s| s.id_type == IdType::Passport && s.fate == Fate::Active)
            .unwrap();
        check(
            "passport",
            adapter.status(&identity(p)).await,
            &sim.intended_for(p, false),
        );
        assert_eq!(adapter.token_fetches(), 1, "one token for the whole run");
        running.task.abort();
    }

    #[tokio::test]
    async fn the_bad_signatures_switch_makes_every_answer_fail_verification_until_cleared() {
        let sim = SuishenSim::with_token_ttl(Duration::from_secs(7200));
        let cases = sim.cases();
        let (running, adapter) = start(SuishenSim::with_token_ttl(Duration::from_secs(7200))).await;
        let s = running
            .context
            .population
            .subjects()
            .iter()
            .find(|s| s.fate == Fate::Active && cases[s.case].error.is_none())
            .cloned()
            .expect("a well-signed subject");
        let qr = Subject::QrToken(s.token.clone());
        assert!(adapter.status(&qr).await.is_ok(), "signed answer accepted");
        let switch = |on: bool| crate::ControlRequest {
            down: None,
            latency_ms: None,
            error_rate: None,
            bad_signatures: Some(on),
        };
        running.context.control.set(&switch(true));
        assert!(running.context.control.bad_signatures());
        for _ in 0..3 {
            match adapter.status(&qr).await {
                Err(e) => assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{e:?}"),
                Ok(st) => panic!("a badly signed answer was accepted: {st:?}"),
            }
        }
        running.context.control.set(&switch(false));
        assert!(
            adapter.status(&qr).await.is_ok(),
            "accepted again once cleared"
        );
        running.task.abort();
    }

    #[tokio::test]
    async fn the_openssl_cli_verifies_the_simulators_signatures() {
        let (running, _) = start(SuishenSim::with_token_ttl(Duration::from_secs(7200))).await;
        let env = running.context.env.clone();
        let client = build_client(&UpstreamConfig::new(
            running.base_url(),
            Duration::from_secs(2),
        ))
        .unwrap();
        let secret = env.secret(SECRET_NAME).unwrap();
        let resp = client
            .post(format!("{}{TOKEN_PATH}", running.base_url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEV_CLIENT_ID),
                ("client_secret", secret.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let token_headers = resp.headers().clone();
        let token_body = resp.bytes().await.unwrap().to_vec();
        let token: Value = serde_json::from_slice(&token_body).unwrap();
        let bearer = token["access_token"].as_str().unwrap().to_owned();
        let mut answers = vec![("token", token_headers, token_body)];
        let subjects = running.context.population.subjects().to_vec();
        // Case 0 (sign-key-1), case 3 (sign-key-2), a not-found error body.
        let not_found = subjects.iter().find(|s| s.fate == Fate::NotFound).unwrap();
        for (name, qr) in [
            ("green", subjects[0].token.clone()),
            ("rotated", subjects[3].token.clone()),
            ("not found", not_found.token.clone()),
        ] {
            let resp = client
                .post(format!("{}{VERIFY_PATH}", running.base_url()))
                .bearer_auth(&bearer)
                .json(&json!({ "qrcode": qr }))
                .send()
                .await
                .unwrap();
            let h = resp.headers().clone();
            answers.push((name, h, resp.bytes().await.unwrap().to_vec()));
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-suishen-sim")
            .join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        for (name, headers, body) in answers {
            let kid = headers[KEY_ID_HEADER].to_str().unwrap();
            let sig = BASE64.decode(headers[SIGNATURE_HEADER].as_bytes()).unwrap();
            let public = SIGNING_KEYS.iter().find(|(id, _, _)| *id == kid).unwrap().2;
            let (b, s) = (dir.join("body"), dir.join("sig"));
            std::fs::write(&b, &body).unwrap();
            std::fs::write(&s, &sig).unwrap();
            let run = |distid: Option<&str>| {
                let mut cmd = std::process::Command::new("openssl");
                cmd.args([
                    "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey",
                ])
                .arg(env.path(public))
                .arg("-in")
                .arg(&b)
                .arg("-sigfile")
                .arg(&s);
                if let Some(d) = distid {
                    cmd.args(["-pkeyopt", &format!("distid:{d}")]);
                }
                cmd.output().unwrap()
            };
            let out = run(Some("1234567812345678"));
            assert!(
                out.status.success(),
                "{name} ({kid}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !run(None).status.success(),
                "{name}: the empty distid must fail"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
        running.task.abort();
    }

    #[tokio::test]
    async fn wrong_secret_busy_and_revoked_tokens() {
        let (running, adapter) = start(SuishenSim::with_token_ttl(Duration::from_secs(7200))).await;
        let qr = Subject::QrToken(running.context.population.subjects()[0].token.clone());
        let wrong = adapter_for(&running, "not-the-secret");
        let e = wrong.status(&qr).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        assert!(matches!(
            e,
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        ));
        // Revoked tokens: 401/40101 → one refresh shared by all callers, then success.
        let adapter = Arc::new(adapter);
        adapter.status(&qr).await.unwrap();
        let client = build_client(&UpstreamConfig::new(
            running.base_url(),
            Duration::from_secs(2),
        ))
        .unwrap();
        let post = |path: &'static str, body: Value| {
            let req = client
                .post(format!("{}{path}", running.base_url()))
                .json(&body);
            async move { req.send().await.unwrap().status() }
        };
        assert!(post(REVOKE_PATH, json!({})).await.is_success());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (a, q) = (adapter.clone(), qr.clone());
                tokio::spawn(async move { a.status(&q).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().level, Level::Clear);
        }
        assert_eq!(adapter.token_fetches(), 2, "one refresh for twenty callers");
        // Down: signed 503/50301 → region_unavailable (retryable).
        assert!(
            post("/_sim/control", json!({"down": true}))
                .await
                .is_success()
        );
        let e = adapter.status(&qr).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        assert!(e.is_retryable());
        running.task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_lived_tokens_are_refreshed_once_for_many_callers() {
        let (running, adapter) = start(SuishenSim::with_token_ttl(Duration::from_secs(2))).await;
        let adapter = Arc::new(adapter);
        let qr = Subject::QrToken(running.context.population.subjects()[0].token.clone());
        for round in 1..=2u64 {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let (a, q) = (adapter.clone(), qr.clone());
                    tokio::spawn(async move { a.status(&q).await })
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
