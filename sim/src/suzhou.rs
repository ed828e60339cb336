//! Simulator of region `suzhou` (苏城码, `shared/spec/regions/suzhou.md`): verifies the
//! HMAC-SHA256 signature (retCode 1001), the ±300 s timestamp window (1002) and nonce
//! freshness over 10 minutes (1003, a bounded set), and answers every `codeStatus` and
//! reason code. Written from the contract, independently of the adapter's code.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hcgw_adapters::identity::{mask_id, mask_name};
use hcgw_adapters::{Action, IdType, Level, Reason, RegionId};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Fate, Intended, RegionSim, SimContext, SimSubject};

/// The app id the dev simulator accepts.
pub const DEV_APP_ID: &str = "hcgw-dev";
/// Allowed clock skew in seconds.
const WINDOW_S: i64 = 300;
/// How long a nonce may not be reused, in seconds.
const NONCE_TTL_S: i64 = 600;
/// Most nonces remembered (oldest forgotten first beyond this).
const NONCE_CAP: usize = 200_000;

/// What a case answers.
#[derive(Clone, Copy)]
enum Answer {
    /// retCode 0000 with this codeStatus and these reason codes.
    Status(&'static str, &'static [&'static str]),
    /// retCode 2003 (declaration must be redone).
    Redeclare,
}

/// The cases: every codeStatus, every reason code, an unlisted reason and retCode 2003.
const CASES: [(&str, Answer); 15] = [
    ("G 绿码", Answer::Status("G", &[])),
    ("GP 绿码待定 P1", Answer::Status("GP", &["P1"])),
    ("GP 绿码待定 P2", Answer::Status("GP", &["P2"])),
    ("Y 黄码 Y1", Answer::Status("Y", &["Y1"])),
    ("Y 黄码 Y2", Answer::Status("Y", &["Y2"])),
    ("Y 黄码 Y3", Answer::Status("Y", &["Y3"])),
    ("R 红码 R11", Answer::Status("R", &["R11"])),
    ("R 红码 R12", Answer::Status("R", &["R12"])),
    ("R 红码 R13", Answer::Status("R", &["R13"])),
    ("R 红码 R14", Answer::Status("R", &["R14"])),
    ("R 红码 R2", Answer::Status("R", &["R2"])),
    ("R 红码 R3", Answer::Status("R", &["R3"])),
    ("R 红码 R4", Answer::Status("R", &["R4"])),
    ("R 红码 unlisted reason R99", Answer::Status("R", &["R99"])),
    ("retCode 2003 重新申报", Answer::Redeclare),
];

/// The intended normalisation of each case, from the contract's tables.
fn intended(i: usize) -> Intended {
    use Reason::*;
    let (label, level, reasons, actions) = match i {
        0 => ("G 绿码", Level::Clear, vec![], vec![]),
        1 => (
            "GP 绿码待定 P1",
            Level::ClearRestricted,
            vec![NonresidentWithoutResidence],
            vec![],
        ),
        2 => (
            "GP 绿码待定 P2",
            Level::ClearRestricted,
            vec![ShortStayVisitor],
            vec![],
        ),
        3 => (
            "Y 黄码 Y1",
            Level::Monitoring,
            vec![HouseholdOfObserved],
            vec![],
        ),
        4 => (
            "Y 黄码 Y2",
            Level::Monitoring,
            vec![SelfReportedSymptoms],
            vec![],
        ),
        5 => ("Y 黄码 Y3", Level::Monitoring, vec![OtherConcern], vec![]),
        6 => ("R 红码 R11", Level::Quarantine, vec![ConfirmedCase], vec![]),
        7 => ("R 红码 R12", Level::Quarantine, vec![SuspectedCase], vec![]),
        8 => (
            "R 红码 R13",
            Level::Quarantine,
            vec![AsymptomaticInfection],
            vec![],
        ),
        9 => ("R 红码 R14", Level::Quarantine, vec![CloseContact], vec![]),
        10 => (
            "R 红码 R2",
            Level::Quarantine,
            vec![FeverClinicObservation],
            vec![],
        ),
        11 => (
            "R 红码 R3",
            Level::Quarantine,
            vec![RecoveredUnderObservation],
            vec![],
        ),
        12 => (
            "R 红码 R4",
            Level::Quarantine,
            vec![HighRiskAreaArrival],
            vec![],
        ),
        13 => (
            "R 红码 unlisted reason R99",
            Level::Quarantine,
            vec![OtherConcern],
            vec![],
        ),
        _ => (
            "retCode 2003 重新申报",
            Level::Unknown,
            vec![],
            vec![Action::Redeclare],
        ),
    };
    Intended::status(label, level, reasons, actions)
}

/// Nonces seen in the last 10 minutes, bounded.
#[derive(Default)]
struct Nonces {
    set: HashSet<String>,
    order: VecDeque<(i64, String)>,
}

impl Nonces {
    /// Remembers `nonce` at `now`; false when it was already used within the TTL.
    fn fresh(&mut self, nonce: &str, now: i64) -> bool {
        while let Some((t, _)) = self.order.front() {
            if now - *t > NONCE_TTL_S || self.order.len() >= NONCE_CAP {
                let (_, n) = self.order.pop_front().expect("front exists");
                self.set.remove(&n);
            } else {
                break;
            }
        }
        if !self.set.insert(nonce.to_owned()) {
            return false;
        }
        self.order.push_back((now, nonce.to_owned()));
        true
    }
}

/// The Suzhou Code simulator.
#[derive(Default)]
pub struct SuzhouSim {
    nonces: Mutex<Nonces>,
    secret: OnceLock<Option<String>>,
}

fn ret(code: &str, msg: &str) -> Value {
    json!({ "retCode": code, "retMsg": msg, "data": null })
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl SuzhouSim {
    /// A simulator with an empty nonce memory.
    pub fn new() -> Self {
        SuzhouSim::default()
    }

    fn secret(&self, ctx: &SimContext) -> Option<&str> {
        self.secret
            .get_or_init(|| ctx.env.secret("suzhou_app_secret").ok())
            .as_deref()
    }

    /// Checks the signature headers; `Err` carries the refusal retCode.
    fn authenticate(
        &self,
        ctx: &SimContext,
        headers: &HeaderMap,
        uri: &Uri,
        body: &[u8],
    ) -> Result<(), &'static str> {
        let secret = self.secret(ctx).ok_or("1001")?;
        let app_id = header(headers, "x-scm-appid");
        let ts_text = header(headers, "x-scm-timestamp");
        let nonce = header(headers, "x-scm-nonce");
        let sign = header(headers, "x-scm-sign");
        let ts: i64 = ts_text.parse().map_err(|_| "1001")?;
        let nonce_ok = (16..=64).contains(&nonce.len())
            && nonce
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        if app_id != DEV_APP_ID || !nonce_ok {
            return Err("1001");
        }
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let s = format!(
            "{app_id}\n{ts_text}\n{nonce}\nPOST\n{path_and_query}\n{}",
            hex::encode(Sha256::digest(body))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "1001")?;
        mac.update(s.as_bytes());
        let expected = hex::decode(sign).map_err(|_| "1001")?;
        mac.verify_slice(&expected).map_err(|_| "1001")?;
        let now = chrono::Utc::now().timestamp();
        if (now - ts).abs() > WINDOW_S {
            return Err("1002");
        }
        if !self.nonces.lock().map_err(|_| "9999")?.fresh(nonce, now) {
            return Err("1003");
        }
        Ok(())
    }

    fn answer(&self, subject: &SimSubject, via_qr: bool) -> Value {
        match subject.fate {
            Fate::NotFound => return ret("2001", "未申报"),
            Fate::TokenExpired if via_qr => return ret("2002", "二维码已过期"),
            _ => {}
        }
        let now = chrono::Utc::now().with_timezone(&hcgw_adapters::time::shanghai());
        let cert_type = match subject.id_type {
            IdType::ResidentId => "IDCARD",
            IdType::Passport => "PASSPORT",
            IdType::HkMacaoPermit => "HKMO",
            IdType::TaiwanPermit => "TW",
        };
        let mut data = json!({
            "codeStatus": "G",
            "reasonCodes": [],
            "updateTime": now.format("%Y-%m-%d %H:%M:%S").to_string(),
            "name": mask_name(&subject.name),
            "certNoMasked": mask_id(&subject.id_number),
            "certType": cert_type,
            "householdType": if subject.id_number.starts_with("3205") { "LOCAL" } else { "NONLOCAL" },
            "isolationEndDate": null,
        });
        match CASES[subject.case % CASES.len()].1 {
            Answer::Status(code, reasons) => {
                data["codeStatus"] = json!(code);
                data["reasonCodes"] = json!(reasons);
                if code == "R" {
                    data["isolationEndDate"] = json!(
                        (now.date_naive() + chrono::Days::new(14))
                            .format("%Y-%m-%d")
                            .to_string()
                    );
                }
                json!({ "retCode": "0000", "retMsg": "成功", "data": data })
            }
            Answer::Redeclare => {
                json!({ "retCode": "2003", "retMsg": "信息填错，请重新申报", "data": null })
            }
        }
    }

    fn handle(&self, ctx: &SimContext, headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Response {
        if let Err(code) = self.authenticate(ctx, headers, uri, body) {
            let msg = match code {
                "1002" => "时间戳超出范围",
                "1003" => "随机数重复",
                "9999" => "系统繁忙",
                _ => "签名无效",
            };
            return reply(StatusCode::OK, ret(code, msg));
        }
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return reply(StatusCode::BAD_REQUEST, ret("4000", "参数错误"));
        };
        let subject = if uri.path().ends_with("/qr") {
            let Some(token) = req.get("qrToken").and_then(Value::as_str) else {
                return reply(StatusCode::BAD_REQUEST, ret("4000", "参数错误"));
            };
            ctx.population.by_token(token).map(|s| (s, true))
        } else {
            let (Some(cert_type), Some(cert_no), Some(_name)) = (
                req.get("certType").and_then(Value::as_str),
                req.get("certNo").and_then(Value::as_str),
                req.get("name").and_then(Value::as_str),
            ) else {
                return reply(StatusCode::BAD_REQUEST, ret("4000", "参数错误"));
            };
            let id_type = match cert_type {
                "IDCARD" => IdType::ResidentId,
                "PASSPORT" => IdType::Passport,
                "HKMO" => IdType::HkMacaoPermit,
                "TW" => IdType::TaiwanPermit,
                _ => return reply(StatusCode::BAD_REQUEST, ret("4000", "参数错误")),
            };
            ctx.population
                .by_id_number(cert_no)
                .filter(|s| s.id_type == id_type)
                .map(|s| (s, false))
        };
        match subject {
            None => reply(StatusCode::OK, ret("2001", "未申报")),
            Some((s, via_qr)) => reply(StatusCode::OK, self.answer(s, via_qr)),
        }
    }
}

impl RegionSim for SuzhouSim {
    fn area_code(&self) -> &'static str {
        "320505"
    }

    fn region(&self) -> RegionId {
        RegionId::Suzhou
    }

    fn cases(&self) -> Vec<Intended> {
        (0..CASES.len())
            .map(|i| {
                let it = intended(i);
                debug_assert_eq!(it.label, CASES[i].0);
                it
            })
            .collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        let handler =
            |State((sim, ctx)): State<(Arc<SuzhouSim>, Arc<SimContext>)>,
             uri: Uri,
             headers: HeaderMap,
             body: Bytes| async move { sim.handle(&ctx, &headers, &uri, &body) };
        Router::new()
            .route("/scm/api/v2/status/qr", post(handler))
            .route("/scm/api/v2/status/person", post(handler))
            .with_state((self, ctx))
    }

    fn busy(&self) -> Response {
        reply(StatusCode::SERVICE_UNAVAILABLE, ret("9999", "系统繁忙"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hcgw_adapters::regions::suzhou::{SuzhouAdapter, SuzhouConfig};
    use hcgw_adapters::upstream::UpstreamConfig;
    use hcgw_adapters::{RegionAdapter, Secret, Subject};

    use super::*;
    use crate::RunningSim;
    use crate::testkit::{drive_all_cases, spawn_sim};

    fn adapter(base_url: String, secret: &str) -> SuzhouAdapter {
        SuzhouAdapter::new(SuzhouConfig {
            upstream: UpstreamConfig::new(base_url, Duration::from_secs(2)),
            app_id: DEV_APP_ID.into(),
            app_secret: Secret::new(secret),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let sim: Arc<dyn RegionSim> = Arc::new(SuzhouSim::new());
        let running = spawn_sim(sim.clone()).await;
        let secret = running.context.env.secret("suzhou_app_secret").unwrap();
        let adapter = adapter(running.base_url(), &secret);
        drive_all_cases(&sim, &running, &adapter).await;
        // The required sample: 绿码待定 is green / clear_restricted.
        let gp = running.context.population.subjects()[2].clone();
        let s = adapter
            .status(&Subject::QrToken(gp.token.clone()))
            .await
            .unwrap();
        assert_eq!(s.level, Level::ClearRestricted);
        assert_eq!(s.source.label.as_deref(), Some("绿码待定"));
        assert!(s.as_of.is_some());
        // A wrong secret is refused (1001) → region_unavailable.
        let wrong = self::adapter(running.base_url(), "not-the-secret");
        let e = wrong.status(&Subject::QrToken(gp.token)).await.unwrap_err();
        assert_eq!(e.code(), hcgw_adapters::AdapterCode::RegionUnavailable);
        // Busy: 9999 → region_unavailable (retryable).
        running.context.control.set(&crate::ControlRequest {
            down: Some(true),
            latency_ms: None,
            error_rate: None,
            bad_signatures: None,
        });
        let e = adapter
            .status(&Subject::QrToken(gp_token(&running)))
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        running.task.abort();
    }

    #[tokio::test]
    async fn simulator_refuses_bad_signatures_stale_timestamps_and_replays() {
        use hcgw_adapters::regions::suzhou::{sign, string_to_sign};
        let sim: Arc<dyn RegionSim> = Arc::new(SuzhouSim::new());
        let running = spawn_sim(sim).await;
        let secret = running.context.env.secret("suzhou_app_secret").unwrap();
        let token = gp_token(&running);
        let body = format!(r#"{{"qrToken":"{token}"}}"#);
        hcgw_adapters::upstream::install_crypto_provider();
        let client = reqwest::Client::new();
        let call = |ts: i64, nonce: &str, key: &str| {
            let s = string_to_sign(
                DEV_APP_ID,
                ts,
                nonce,
                "POST",
                "/scm/api/v2/status/qr",
                body.as_bytes(),
            );
            client
                .post(format!("{}/scm/api/v2/status/qr", running.base_url()))
                .header("content-type", "application/json; charset=utf-8")
                .header("X-SCM-AppId", DEV_APP_ID)
                .header("X-SCM-Timestamp", ts.to_string())
                .header("X-SCM-Nonce", nonce)
                .header("X-SCM-Sign", sign(key, &s))
                .body(body.clone())
                .send()
        };
        let ret_code = |r: reqwest::Response| async move {
            let v: Value = r.json().await.unwrap();
            v["retCode"].as_str().unwrap().to_owned()
        };
        let now = chrono::Utc::now().timestamp();
        let n1 = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            ret_code(call(now, n1, &secret).await.unwrap()).await,
            "0000"
        );
        assert_eq!(
            ret_code(call(now, n1, &secret).await.unwrap()).await,
            "1003"
        );
        let n2 = "1123456789abcdef0123456789abcdef";
        assert_eq!(
            ret_code(call(now - 301, n2, &secret).await.unwrap()).await,
            "1002"
        );
        assert_eq!(
            ret_code(call(now + 301, n2, &secret).await.unwrap()).await,
            "1002"
        );
        assert_eq!(
            ret_code(call(now, n2, "wrong").await.unwrap()).await,
            "1001"
        );
        assert_eq!(
            ret_code(call(now, "short", &secret).await.unwrap()).await,
            "1001"
        );
        assert_eq!(
            ret_code(call(now, n2, &secret).await.unwrap()).await,
            "0000"
        );
        running.task.abort();
    }

    fn gp_token(running: &RunningSim) -> String {
        running.context.population.subjects()[2].token.clone()
    }

    #[test]
    fn nonces_are_refused_within_ten_minutes_and_forgotten_after() {
        let mut n = Nonces::default();
        assert!(n.fresh("aa", 1000));
        assert!(!n.fresh("aa", 1100));
        assert!(n.fresh("bb", 1100));
        assert!(n.fresh("aa", 1000 + NONCE_TTL_S + 1));
    }
}
