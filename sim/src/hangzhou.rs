//! Simulator of the Hangzhou Health Code API (`regions/hangzhou.md`): APPCODE auth, JSON,
//! every colour and colour reason, an appeal-pending case, passports and permits, and the
//! contract's error codes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hcgw_adapters::identity::{mask_id, mask_name};
use hcgw_adapters::{Action, IdType, Level, Reason, RegionId};
use serde_json::{Value, json};

use super::{Fate, Intended, RegionSim, SimContext, SimSubject};

/// The query path of the Hangzhou API.
const QUERY_PATH: &str = "/hzjkm/open/v1/healthcode/query";

/// The Hangzhou simulator.
#[derive(Debug, Default)]
pub struct HangzhouSim;

/// One case: what the region sends and what it must normalise to.
struct Case {
    color: &'static str,
    reasons: &'static [&'static str],
    appeal_pending: bool,
    intended: Intended,
}

fn table() -> Vec<Case> {
    use Reason::*;
    let case = |color, reasons, appeal_pending, intended| Case {
        color,
        reasons,
        appeal_pending,
        intended,
    };
    vec![
        case(
            "green",
            &[],
            false,
            Intended::status("green", Level::Clear, vec![], vec![]),
        ),
        case(
            "yellow",
            &["FROM_EPIDEMIC_AREA"],
            false,
            Intended::status(
                "yellow FROM_EPIDEMIC_AREA",
                Level::Monitoring,
                vec![HighRiskAreaArrival],
                vec![],
            ),
        ),
        case(
            "yellow",
            &["SYMPTOMS_DECLARED"],
            false,
            Intended::status(
                "yellow SYMPTOMS_DECLARED",
                Level::Monitoring,
                vec![SelfReportedSymptoms],
                vec![],
            ),
        ),
        case(
            "red",
            &["SHARED_SPACE_WITH_CASE"],
            true,
            Intended::status(
                "red SHARED_SPACE_WITH_CASE, appeal pending",
                Level::Quarantine,
                vec![SharedSpaceWithCase],
                vec![Action::AppealPending],
            ),
        ),
        case(
            "red",
            &["FALSE_DECLARATION"],
            false,
            Intended::status(
                "red FALSE_DECLARATION",
                Level::Quarantine,
                vec![FalseDeclaration],
                vec![],
            ),
        ),
        case(
            "red",
            &["QUARANTINE", "FROM_EPIDEMIC_AREA"],
            false,
            Intended::status(
                "red QUARANTINE + FROM_EPIDEMIC_AREA",
                Level::Quarantine,
                vec![HomeQuarantine, HighRiskAreaArrival],
                vec![],
            ),
        ),
        case(
            "yellow",
            &["SYMPTOMS_DECLARED"],
            true,
            Intended::status(
                "yellow SYMPTOMS_DECLARED, appeal pending",
                Level::Monitoring,
                vec![SelfReportedSymptoms],
                vec![Action::AppealPending],
            ),
        ),
        case(
            "yellow",
            &["OVERSEAS_RETURNEE"],
            false,
            Intended::status(
                "yellow with an unlisted reason",
                Level::Monitoring,
                vec![OtherConcern],
                vec![],
            ),
        ),
    ]
}

fn cert_type(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "ID_CARD",
        IdType::Passport => "PASSPORT",
        IdType::HkMacaoPermit => "HK_MACAO_PASS",
        IdType::TaiwanPermit => "TAIWAN_PASS",
    }
}

fn failure(status: StatusCode, code: &str, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        json!({"success": false, "errorCode": code, "errorMsg": msg, "result": null}).to_string(),
    )
        .into_response()
}

fn success(subject: &SimSubject, case: &Case) -> Response {
    let body = json!({
        "success": true,
        "errorCode": null,
        "errorMsg": null,
        "result": {
            "color": case.color,
            "colorReasons": case.reasons,
            "gmtModified": super::status_time(subject).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
            "maskedName": mask_name(&subject.name),
            "maskedCertNo": mask_id(&subject.id_number),
            "certType": cert_type(subject.id_type),
            "employeeCode": {"bound": subject.index.is_multiple_of(2), "lastCheckInDate": super::status_time(subject).format("%Y-%m-%d").to_string()},
            "overseas": subject.id_type != IdType::ResidentId,
            "appealStatus": if case.appeal_pending { "PENDING" } else { "NONE" },
        }
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    failure(StatusCode::OK, "NOT_FOUND", "未查询到健康码")
}

fn invalid(msg: &str) -> Response {
    failure(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", msg)
}

async fn query(State(ctx): State<Arc<SimContext>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(appcode) = ctx.env.secret("hangzhou_appcode") else {
        return HangzhouSim.busy();
    };
    let expected = format!("APPCODE {appcode}");
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return failure(StatusCode::UNAUTHORIZED, "AUTH_FAILED", "APPCODE 无效");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return invalid("请求体不是 JSON");
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let table = table();
    match text("queryType") {
        Some("QR") => {
            let Some(token) = text("qrContent") else {
                return invalid("缺少 qrContent");
            };
            match ctx.population.by_token(token) {
                None => not_found(),
                Some(s) if s.fate == Fate::NotFound => not_found(),
                Some(s) if s.fate == Fate::TokenExpired => {
                    failure(StatusCode::OK, "QR_EXPIRED", "二维码已过期")
                }
                Some(s) => success(s, &table[s.case % table.len()]),
            }
        }
        Some("CERT") => {
            let (Some(ct), Some(no), Some(_name)) =
                (text("certType"), text("certNo"), text("name"))
            else {
                return invalid("缺少证件信息");
            };
            if !["ID_CARD", "PASSPORT", "HK_MACAO_PASS", "TAIWAN_PASS"].contains(&ct) {
                return invalid("certType 无效");
            }
            match ctx.population.by_id_number(no) {
                Some(s) if s.fate != Fate::NotFound && cert_type(s.id_type) == ct => {
                    success(s, &table[s.case % table.len()])
                }
                _ => not_found(),
            }
        }
        _ => invalid("queryType 无效"),
    }
}

impl RegionSim for HangzhouSim {
    fn area_code(&self) -> &'static str {
        "330106"
    }

    fn region(&self) -> RegionId {
        RegionId::Hangzhou
    }

    fn cases(&self) -> Vec<Intended> {
        table().into_iter().map(|c| c.intended).collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        Router::new().route(QUERY_PATH, post(query)).with_state(ctx)
    }

    fn busy(&self) -> Response {
        failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "系统错误",
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use hcgw_adapters::adapter::Identity;
    use hcgw_adapters::regions::hangzhou::{HangzhouAdapter, HangzhouConfig};
    use hcgw_adapters::upstream::UpstreamConfig;
    use hcgw_adapters::{AdapterCode, IdType, RegionAdapter, Secret, Subject};

    use super::*;
    use crate::testkit::{drive_all, test_pki};
    use crate::{SimOptions, spawn};

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let env = test_pki();
        let appcode = env.secret("hangzhou_appcode").unwrap();
        let sim = Arc::new(HangzhouSim);
        let options = SimOptions {
            population: 120,
            expired_share: 0.1,
            not_found_share: 0.1,
            ..SimOptions::default()
        };
        let running = spawn(sim.clone(), &options, env, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let adapter = HangzhouAdapter::new(HangzhouConfig {
            upstream: UpstreamConfig::new(running.base_url(), Duration::from_secs(3)),
            appcode: Secret::new(appcode),
        })
        .unwrap();
        let subjects = running.context.population.subjects().to_vec();
        let seen = drive_all(sim.as_ref(), &adapter, &subjects).await;
        for key in ["status", "subject_not_found", "token_expired"] {
            assert!(seen.get(key).copied().unwrap_or(0) > 0, "{key}: {seen:?}");
        }
        assert!(
            subjects
                .iter()
                .any(|s| s.id_type == IdType::Passport && s.fate == Fate::Active)
        );

        // A wrong APPCODE is refused the way the region refuses it.
        let wrong = HangzhouAdapter::new(HangzhouConfig {
            upstream: UpstreamConfig::new(running.base_url(), Duration::from_secs(3)),
            appcode: Secret::new("wrong"),
        })
        .unwrap();
        let s = &subjects[0];
        let e = wrong
            .status(&Subject::QrToken(s.token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);

        // The busy answer.
        running.context.control.set(&crate::ControlRequest {
            down: Some(true),
            latency_ms: None,
            error_rate: None,
            bad_signatures: None,
        });
        let e = adapter
            .status(&Subject::Identity(Identity {
                id_type: s.id_type,
                id_number: s.id_number.clone(),
                name: s.name.clone(),
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        assert!(e.is_retryable());
        running.task.abort();
    }

    #[test]
    fn every_colour_and_reason_is_covered() {
        let t = table();
        for c in ["green", "yellow", "red"] {
            assert!(t.iter().any(|x| x.color == c), "{c}");
        }
        for r in [
            "SHARED_SPACE_WITH_CASE",
            "FROM_EPIDEMIC_AREA",
            "SYMPTOMS_DECLARED",
            "FALSE_DECLARATION",
            "QUARANTINE",
        ] {
            assert!(t.iter().any(|x| x.reasons.contains(&r)), "{r}");
        }
        assert!(t.iter().any(|x| x.appeal_pending));
    }
}
