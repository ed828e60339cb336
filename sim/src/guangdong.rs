//! Simulator of the Yuekang Code API (`regions/guangdong.md`): mutual TLS with the dev
//! Guangdong CA, `X-Yss-Paasid` verified on every call (E401 otherwise), JSON answers
//! with every `codeStatus` (including `"0"` 未赋码, intended colour unknown) and every
//! category, and the contract's error codes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hcgw_adapters::identity::{mask_id, mask_name};
use hcgw_adapters::{IdType, Level, Reason, RegionId};
use serde_json::{Value, json};

use super::{Fate, Intended, RegionSim, SimContext, SimEnv, SimSubject};

/// The check path of the Guangdong API.
const CHECK_PATH: &str = "/ykm/v2/health/check";

/// The Guangdong simulator.
#[derive(Debug, Default)]
pub struct GuangdongSim;

struct Case {
    code_status: &'static str,
    risk_tips: &'static str,
    categories: &'static [&'static str],
    intended: Intended,
}

fn table() -> Vec<Case> {
    use Reason::*;
    let case = |code_status, risk_tips, categories, intended| Case {
        code_status,
        risk_tips,
        categories,
        intended,
    };
    vec![
        case(
            "1",
            "",
            &[],
            Intended::status("1 绿码", Level::Clear, vec![], vec![]),
        ),
        case(
            "2",
            "居家隔离",
            &["HOME_ISOLATION"],
            Intended::status(
                "2 HOME_ISOLATION",
                Level::Monitoring,
                vec![HomeQuarantine],
                vec![],
            ),
        ),
        case(
            "2",
            "居家健康监测",
            &["HEALTH_MONITORING"],
            Intended::status(
                "2 HEALTH_MONITORING",
                Level::Monitoring,
                vec![HomeQuarantine],
                vec![],
            ),
        ),
        case(
            "2",
            "中高风险地区旅居史",
            &["RISK_AREA"],
            Intended::status(
                "2 RISK_AREA",
                Level::Monitoring,
                vec![HighRiskAreaArrival],
                vec![],
            ),
        ),
        case(
            "3",
            "集中隔离",
            &["CENTRAL_ISOLATION"],
            Intended::status(
                "3 CENTRAL_ISOLATION",
                Level::Quarantine,
                vec![CentralizedQuarantine],
                vec![],
            ),
        ),
        case(
            "3",
            "密切接触者",
            &["CLOSE_CONTACT"],
            Intended::status(
                "3 CLOSE_CONTACT",
                Level::Quarantine,
                vec![CloseContact],
                vec![],
            ),
        ),
        case(
            "3",
            "确诊病例",
            &["CONFIRMED", "NAT_POSITIVE"],
            Intended::status(
                "3 CONFIRMED + NAT_POSITIVE",
                Level::Quarantine,
                vec![ConfirmedCase, NucleicAcidPositive],
                vec![],
            ),
        ),
        case(
            "3",
            "无症状感染者",
            &["ASYMPTOMATIC"],
            Intended::status(
                "3 ASYMPTOMATIC",
                Level::Quarantine,
                vec![AsymptomaticInfection],
                vec![],
            ),
        ),
        case(
            "0",
            "未赋码",
            &[],
            Intended::status("0 未赋码 (colour unknown)", Level::Unknown, vec![], vec![]),
        ),
    ]
}

fn card_type(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "1",
        IdType::Passport => "2",
        IdType::HkMacaoPermit => "3",
        IdType::TaiwanPermit => "4",
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, msg: &str, data: Value) -> Response {
    reply(
        status,
        json!({"errCode": code, "errMsg": msg, "data": data}),
    )
}

fn not_found() -> Response {
    error(StatusCode::OK, "E404", "无此人粤康码", Value::Null)
}

fn answer(subject: &SimSubject) -> Response {
    let table = table();
    let case = &table[subject.case % table.len()];
    reply(
        StatusCode::OK,
        json!({"errCode": "0", "errMsg": "", "data": {
            "codeStatus": case.code_status,
            "statusTime": super::status_time(subject).format("%Y%m%d%H%M%S").to_string(),
            "riskTips": case.risk_tips,
            "categories": case.categories,
            "maskName": mask_name(&subject.name),
            "maskCardNo": mask_id(&subject.id_number),
            "cardType": card_type(subject.id_type),
        }}),
    )
}

async fn check(State(ctx): State<Arc<SimContext>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(paas_id) = ctx.env.secret("guangdong_paas_id") else {
        return GuangdongSim.busy();
    };
    if headers.get("x-yss-paasid").and_then(|v| v.to_str().ok()) != Some(paas_id.as_str()) {
        return error(StatusCode::OK, "E401", "paasid未授权", Value::Null);
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(token) = text("qrText") {
        return match ctx.population.by_token(token) {
            None => not_found(),
            Some(s) if s.fate == Fate::NotFound => not_found(),
            Some(s) if s.fate == Fate::TokenExpired => {
                error(StatusCode::OK, "E410", "二维码已过期", Value::Null)
            }
            Some(s) => answer(s),
        };
    }
    let (Some(ct), Some(no), Some(_name)) = (text("cardType"), text("cardNo"), text("name")) else {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    };
    match ctx.population.by_id_number(no) {
        Some(s) if s.fate != Fate::NotFound && card_type(s.id_type) == ct => answer(s),
        _ => not_found(),
    }
}

impl RegionSim for GuangdongSim {
    fn area_code(&self) -> &'static str {
        "440304"
    }

    fn region(&self) -> RegionId {
        RegionId::Guangdong
    }

    fn cases(&self) -> Vec<Intended> {
        table().into_iter().map(|c| c.intended).collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        Router::new().route(CHECK_PATH, post(check)).with_state(ctx)
    }

    fn busy(&self) -> Response {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "E503",
            "服务不可用",
            Value::Null,
        )
    }

    fn tls(&self, env: &SimEnv) -> Option<Result<rustls::ServerConfig, String>> {
        Some(env.region_server_tls("guangdong"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use hcgw_adapters::regions::guangdong::{GuangdongAdapter, GuangdongConfig};
    use hcgw_adapters::upstream::{UpstreamConfig, UpstreamTls};
    use hcgw_adapters::{AdapterCode, Color, RegionAdapter, Secret, Subject};

    use super::*;
    use crate::testkit::{drive_all, test_pki, upstream_tls};
    use crate::{SimOptions, spawn};

    fn tls(env: &SimEnv, client_region: Option<&str>) -> UpstreamTls {
        upstream_tls(env, "guangdong", client_region)
    }

    fn adapter(base_url: String, tls: UpstreamTls, paas_id: String) -> GuangdongAdapter {
        let mut upstream = UpstreamConfig::new(base_url, Duration::from_secs(3));
        upstream.tls = tls;
        GuangdongAdapter::new(GuangdongConfig {
            upstream,
            paas_id: Secret::new(paas_id),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let env = test_pki();
        let paas_id = env.secret("guangdong_paas_id").unwrap();
        let sim = Arc::new(GuangdongSim);
        let options = SimOptions {
            population: 120,
            expired_share: 0.1,
            not_found_share: 0.1,
            ..SimOptions::default()
        };
        let running = spawn(
            sim.clone(),
            &options,
            env.clone(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(running.scheme, "https");
        let a = adapter(
            running.base_url(),
            tls(&env, Some("guangdong")),
            paas_id.clone(),
        );
        let subjects = running.context.population.subjects().to_vec();
        let seen = drive_all(sim.as_ref(), &a, &subjects).await;
        for key in ["status", "subject_not_found", "token_expired"] {
            assert!(seen.get(key).copied().unwrap_or(0) > 0, "{key}: {seen:?}");
        }
        // The 未赋码 case really reaches the adapter and comes out unknown.
        let unassigned = subjects
            .iter()
            .find(|s| table()[s.case % table().len()].code_status == "0")
            .unwrap();
        let s = a
            .status(&Subject::QrToken(unassigned.token.clone()))
            .await
            .unwrap();
        assert_eq!((s.color, s.source.code.as_str()), (Color::Unknown, "0"));

        let token = Subject::QrToken(subjects[0].token.clone());
        // Wrong PaaS id: E401.
        let e = adapter(
            running.base_url(),
            tls(&env, Some("guangdong")),
            "wrong".into(),
        )
        .status(&token)
        .await
        .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        // Without the Guangdong client certificate, or with Jiangsu's, no answer.
        for client in [None, Some("sukang")] {
            let e = adapter(running.base_url(), tls(&env, client), paas_id.clone())
                .status(&token)
                .await
                .unwrap_err();
            assert_eq!(e.code(), AdapterCode::RegionUnavailable, "{client:?}");
        }
        // Busy.
        running.context.control.set(&crate::ControlRequest {
            down: Some(true),
            latency_ms: None,
            error_rate: None,
            bad_signatures: None,
        });
        let e = a.status(&token).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        assert!(e.is_retryable());
        running.task.abort();
    }

    #[test]
    fn every_code_status_and_category_is_covered() {
        let t = table();
        for c in ["0", "1", "2", "3"] {
            assert!(t.iter().any(|x| x.code_status == c), "{c}");
        }
        for cat in [
            "CENTRAL_ISOLATION",
            "HOME_ISOLATION",
            "CLOSE_CONTACT",
            "CONFIRMED",
            "ASYMPTOMATIC",
            "NAT_POSITIVE",
            "RISK_AREA",
            "HEALTH_MONITORING",
        ] {
            assert!(t.iter().any(|x| x.categories.contains(&cat)), "{cat}");
        }
    }
}
