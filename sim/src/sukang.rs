//! Simulator of the Sukang Code API (`regions/sukang.md`): mutual TLS with the dev Jiangsu
//! CA, `GET /skm/query`, XML answers whose elements come in a shuffled order
//! (deterministic per subject) with an element the contract does not list, every colour
//! and every 管控类型, the update-identity flag, and the contract's codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hcgw_adapters::identity::{mask_id, mask_name};
use hcgw_adapters::{Action, IdType, Level, Reason, RegionId};

use super::{Fate, Intended, RegionSim, SimContext, SimEnv, SimSubject};

/// The query path of the Sukang API.
const QUERY_PATH: &str = "/skm/query";

/// The Sukang simulator.
#[derive(Debug, Default)]
pub struct SukangSim;

struct Case {
    mys: &'static str,
    gklx: &'static str,
    xxgx: &'static str,
    intended: Intended,
}

fn table() -> Vec<Case> {
    use Reason::*;
    let case = |mys, gklx, xxgx, intended| Case {
        mys,
        gklx,
        xxgx,
        intended,
    };
    vec![
        case(
            "绿码",
            "无",
            "0",
            Intended::status("绿码", Level::Clear, vec![], vec![]),
        ),
        case(
            "黄码",
            "居家健康监测",
            "0",
            Intended::status(
                "黄码 居家健康监测",
                Level::Monitoring,
                vec![HomeQuarantine],
                vec![],
            ),
        ),
        case(
            "黄码",
            "风险排查",
            "0",
            Intended::status(
                "黄码 风险排查",
                Level::Monitoring,
                vec![OtherConcern],
                vec![],
            ),
        ),
        case(
            "黄码",
            "核酸检测",
            "0",
            Intended::status(
                "黄码 核酸检测",
                Level::Monitoring,
                vec![OtherConcern],
                vec![],
            ),
        ),
        case(
            "红码",
            "集中隔离医学观察",
            "0",
            Intended::status(
                "红码 集中隔离医学观察",
                Level::Quarantine,
                vec![CentralizedQuarantine],
                vec![],
            ),
        ),
        case(
            "绿码",
            "无",
            "1",
            Intended::status(
                "绿码, 苏康码需要更新",
                Level::Clear,
                vec![],
                vec![Action::UpdateIdentity],
            ),
        ),
        case(
            "黄码",
            "居家健康监测",
            "1",
            Intended::status(
                "黄码 居家健康监测, 苏康码需要更新",
                Level::Monitoring,
                vec![HomeQuarantine],
                vec![Action::UpdateIdentity],
            ),
        ),
    ]
}

fn zjlx(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "1",
        IdType::Passport => "2",
        IdType::HkMacaoPermit => "3",
        IdType::TaiwanPermit => "4",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Shuffles `items` with a small deterministic generator seeded by `seed`.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = ((state >> 33) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn code_only(status: StatusCode, code: &str, msg: &str, extra: &str) -> Response {
    xml_response(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Code>{code}</Code>\
             <Msg>{msg}</Msg>{extra}</Response>"
        ),
    )
}

/// The XML answer for an active subject, elements shuffled deterministically.
fn render(subject: &SimSubject, case: &Case) -> String {
    let mut data = vec![
        format!("<Mys>{}</Mys>", case.mys),
        format!(
            "<Gxsj>{}</Gxsj>",
            super::status_time(subject).format("%Y-%m-%d %H:%M:%S")
        ),
        format!("<Xm>{}</Xm>", escape(&mask_name(&subject.name))),
        format!("<Zjlx>{}</Zjlx>", zjlx(subject.id_type)),
        format!("<Zjhm>{}</Zjhm>", escape(&mask_id(&subject.id_number))),
        format!("<Gklx>{}</Gklx>", case.gklx),
        format!("<Xxgx>{}</Xxgx>", case.xxgx),
        "<Sjly>江苏省大数据管理中心</Sjly>".to_owned(),
    ];
    shuffle(&mut data, subject.index as u64);
    let mut top = vec![
        "<Code>0</Code>".to_owned(),
        "<Msg>成功</Msg>".to_owned(),
        format!("<Data>{}</Data>", data.concat()),
    ];
    shuffle(&mut top, subject.index as u64 ^ 0x5eed);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{}</Response>",
        top.concat()
    )
}

fn answer(subject: &SimSubject) -> Response {
    let table = table();
    xml_response(
        StatusCode::OK,
        render(subject, &table[subject.case % table.len()]),
    )
}

fn not_found() -> Response {
    code_only(StatusCode::OK, "1001", "未申领", "")
}

async fn query(
    State(ctx): State<Arc<SimContext>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(token) = q.get("qr") {
        return match ctx.population.by_token(token) {
            None => not_found(),
            Some(s) if s.fate == Fate::NotFound => not_found(),
            Some(s) if s.fate == Fate::TokenExpired => {
                code_only(StatusCode::OK, "1002", "二维码失效", "")
            }
            Some(s) => answer(s),
        };
    }
    let (Some(t), Some(no), Some(_name)) = (q.get("zjlx"), q.get("zjhm"), q.get("xm")) else {
        return (StatusCode::BAD_REQUEST, "missing parameters").into_response();
    };
    if !["1", "2", "3", "4"].contains(&t.as_str()) {
        return code_only(StatusCode::OK, "1004", "证件类型不支持", "");
    }
    match ctx.population.by_id_number(no) {
        Some(s) if s.fate != Fate::NotFound && zjlx(s.id_type) == t => answer(s),
        _ => not_found(),
    }
}

impl RegionSim for SukangSim {
    fn area_code(&self) -> &'static str {
        "320102"
    }

    fn region(&self) -> RegionId {
        RegionId::Sukang
    }

    fn cases(&self) -> Vec<Intended> {
        table().into_iter().map(|c| c.intended).collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        Router::new().route(QUERY_PATH, get(query)).with_state(ctx)
    }

    fn busy(&self) -> Response {
        code_only(StatusCode::SERVICE_UNAVAILABLE, "9001", "系统繁忙", "")
    }

    fn tls(&self, env: &SimEnv) -> Option<Result<rustls::ServerConfig, String>> {
        Some(env.region_server_tls("sukang"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use hcgw_adapters::regions::sukang::{SukangAdapter, SukangConfig};
    use hcgw_adapters::upstream::{UpstreamConfig, UpstreamTls};
    use hcgw_adapters::{AdapterCode, RegionAdapter, Subject};

    use super::*;
    use crate::testkit::{drive_all, test_pki, upstream_tls};
    use crate::{SimOptions, spawn};

    fn tls(env: &SimEnv, client_region: Option<&str>) -> UpstreamTls {
        upstream_tls(env, "sukang", client_region)
    }

    fn adapter(base_url: String, tls: UpstreamTls) -> SukangAdapter {
        let mut upstream = UpstreamConfig::new(base_url, Duration::from_secs(3));
        upstream.tls = tls;
        SukangAdapter::new(SukangConfig { upstream }).unwrap()
    }

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let env = test_pki();
        let sim = Arc::new(SukangSim);
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
        let a = adapter(running.base_url(), tls(&env, Some("sukang")));
        let subjects = running.context.population.subjects().to_vec();
        let seen = drive_all(sim.as_ref(), &a, &subjects).await;
        for key in ["status", "subject_not_found", "token_expired"] {
            assert!(seen.get(key).copied().unwrap_or(0) > 0, "{key}: {seen:?}");
        }

        // Without the Jiangsu client certificate, or with Guangdong's, no answer.
        let token = Subject::QrToken(subjects[0].token.clone());
        for client in [None, Some("guangdong")] {
            let e = adapter(running.base_url(), tls(&env, client))
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
    fn xml_is_shuffled_deterministically_per_subject() {
        let env_less = crate::Population::generate(
            RegionId::Sukang,
            "320102",
            10,
            table().len(),
            1,
            crate::Shares {
                expired: 0.0,
                not_found: 0.0,
            },
        );
        let t = table();
        let orders: Vec<String> = env_less
            .subjects()
            .iter()
            .map(|s| {
                let xml = render(s, &t[0]);
                assert_eq!(xml, render(s, &t[0]), "deterministic");
                xml.match_indices('<')
                    .map(|(i, _)| xml[i..].chars().nth(1).unwrap_or(' '))
                    .collect()
            })
            .collect();
        let distinct: std::collections::HashSet<_> = orders.iter().collect();
        assert!(distinct.len() > 3, "orders differ between subjects");
    }

    #[test]
    fn every_colour_and_control_type_is_covered() {
        let t = table();
        for m in ["绿码", "黄码", "红码"] {
            assert!(t.iter().any(|c| c.mys == m), "{m}");
        }
        for g in [
            "集中隔离医学观察",
            "居家健康监测",
            "风险排查",
            "核酸检测",
            "无",
        ] {
            assert!(t.iter().any(|c| c.gklx == g), "{g}");
        }
        assert!(t.iter().any(|c| c.xxgx == "1"));
    }
}
