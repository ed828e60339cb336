//! Simulator of region `xuzhou` (徐州健康宝, `shared/spec/regions/xuzhou.md`): `X-Api-Key`
//! (HTTP 401 / 40101), resident identity cards only (40004 for anything else), 40001 for
//! malformed requests, every Sukang colour relayed, and arrival registration (入徐登记)
//! required-and-pending, required-and-done or not required. Written from the contract,
//! independently of the adapter's code.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hcgw_adapters::identity::{mask_id, mask_name, validate_resident_id};
use hcgw_adapters::{Action, Level, RegionId};
use serde_json::{Value, json};

use super::{Fate, Intended, RegionSim, SimContext, SimSubject};

/// One case: skm.color, entryRegistration.required, entryRegistration.completed.
type Case = (&'static str, bool, bool);

/// Every colour, with arrival registration pending, done and not required, plus
/// unlisted colour values.
const CASES: [Case; 9] = [
    ("GREEN", false, false),
    ("GREEN", true, true),
    ("GREEN", true, false),
    ("YELLOW", false, false),
    ("YELLOW", true, false),
    ("RED", false, false),
    ("RED", true, true),
    ("BLUE", false, false),
    ("green", true, true),
];

/// The intended normalisation of each case, from the contract.
fn intended(i: usize) -> Intended {
    let register = vec![Action::RegisterOnArrival];
    let (label, level, actions) = match i {
        0 => ("GREEN, registration not required", Level::Clear, vec![]),
        1 => ("GREEN, registration done", Level::Clear, vec![]),
        2 => ("GREEN, registration pending", Level::Clear, register),
        3 => (
            "YELLOW, registration not required",
            Level::Monitoring,
            vec![],
        ),
        4 => ("YELLOW, registration pending", Level::Monitoring, register),
        5 => ("RED, registration not required", Level::Quarantine, vec![]),
        6 => ("RED, registration done", Level::Quarantine, vec![]),
        7 => ("unlisted colour BLUE", Level::Unknown, vec![]),
        _ => ("unlisted colour green (lowercase)", Level::Unknown, vec![]),
    };
    Intended::status(label, level, vec![], actions)
}

/// The Xuzhou Health Treasure simulator.
#[derive(Default)]
pub struct XuzhouSim {
    key: OnceLock<Option<String>>,
}

fn reply(status: StatusCode, errcode: i64, errmsg: &str, data: Option<Value>) -> Response {
    let mut body = json!({ "errcode": errcode, "errmsg": errmsg });
    if let Some(d) = data {
        body["data"] = d;
    }
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn error(errcode: i64, errmsg: &str) -> Response {
    let status = match errcode {
        40101 => StatusCode::UNAUTHORIZED,
        42901 => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::OK,
    };
    reply(status, errcode, errmsg, None)
}

impl XuzhouSim {
    /// A simulator.
    pub fn new() -> Self {
        XuzhouSim::default()
    }

    fn authorised(&self, ctx: &SimContext, headers: &HeaderMap) -> bool {
        let key = self
            .key
            .get_or_init(|| ctx.env.secret("xuzhou_api_key").ok());
        let sent = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        matches!((key, sent), (Some(k), Some(s)) if k == s)
    }

    fn answer(&self, subject: &SimSubject, via_qr: bool) -> Response {
        match subject.fate {
            Fate::NotFound => return error(40401, "not registered"),
            Fate::TokenExpired if via_qr => return error(41001, "qr expired"),
            _ => {}
        }
        let (color, required, completed) = CASES[subject.case % CASES.len()];
        let now = chrono::Utc::now().with_timezone(&hcgw_adapters::time::shanghai());
        reply(
            StatusCode::OK,
            0,
            "ok",
            Some(json!({
                "skm": { "color": color, "updatedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false) },
                "entryRegistration": { "required": required, "completed": completed },
                "maskedName": mask_name(&subject.name),
                "maskedIdCard": mask_id(&subject.id_number),
            })),
        )
    }

    fn by_qr(&self, ctx: &SimContext, headers: &HeaderMap, token: &str) -> Response {
        if !self.authorised(ctx, headers) {
            return error(40101, "invalid api key");
        }
        if token.len() != 32
            || !token
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return error(40001, "invalid parameter");
        }
        match ctx.population.by_token(token) {
            None => error(40401, "not registered"),
            Some(s) => self.answer(s, true),
        }
    }

    fn by_person(
        &self,
        ctx: &SimContext,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
    ) -> Response {
        if !self.authorised(ctx, headers) {
            return error(40101, "invalid api key");
        }
        let (Some(id), Some(name)) = (query.get("idCard"), query.get("name")) else {
            return error(40001, "invalid parameter");
        };
        if name.is_empty() {
            return error(40001, "invalid parameter");
        }
        if validate_resident_id(id).is_err() {
            // Not a resident identity card: a foreign national's document.
            return error(40004, "暂不支持外籍人士");
        }
        match ctx.population.by_id_number(id) {
            None => error(40401, "not registered"),
            Some(s) => self.answer(s, false),
        }
    }
}

impl RegionSim for XuzhouSim {
    fn area_code(&self) -> &'static str {
        "320302"
    }

    fn region(&self) -> RegionId {
        RegionId::Xuzhou
    }

    fn cases(&self) -> Vec<Intended> {
        (0..CASES.len()).map(intended).collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        type St = State<(Arc<XuzhouSim>, Arc<SimContext>)>;
        Router::new()
            .route(
                "/xzjkb/v1/qr/{token}/status",
                get(
                    |State((sim, ctx)): St, headers: HeaderMap, Path(token): Path<String>| async move {
                        sim.by_qr(&ctx, &headers, &token)
                    },
                ),
            )
            .route(
                "/xzjkb/v1/person/status",
                get(
                    |State((sim, ctx)): St,
                     headers: HeaderMap,
                     Query(q): Query<HashMap<String, String>>| async move {
                        sim.by_person(&ctx, &headers, &q)
                    },
                ),
            )
            .with_state((self, ctx))
    }

    fn busy(&self) -> Response {
        error(50001, "系统繁忙")
    }

    fn supports_id_type(&self, id_type: hcgw_adapters::IdType) -> bool {
        id_type == hcgw_adapters::IdType::ResidentId
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use hcgw_adapters::regions::xuzhou::{FALLBACK_LABEL, XuzhouAdapter, XuzhouConfig};
    use hcgw_adapters::upstream::UpstreamConfig;
    use hcgw_adapters::{
        AdapterCode, AdapterError, Color, HealthStatus, RegionAdapter, Secret, Source, Subject,
    };

    use super::*;
    use crate::testkit::{drive_all_cases, identity, spawn_sim};

    /// A stand-in Sukang adapter that always answers green.
    struct GreenSukang;

    #[async_trait]
    impl RegionAdapter for GreenSukang {
        fn region(&self) -> RegionId {
            RegionId::Sukang
        }
        async fn status(&self, _: &Subject) -> Result<HealthStatus, AdapterError> {
            Ok(HealthStatus::new(
                RegionId::Sukang,
                Level::Clear,
                Source {
                    code: "绿码".into(),
                    label: Some("绿码".into()),
                },
            ))
        }
    }

    fn adapter(base_url: String, key: &str, fallback: bool) -> XuzhouAdapter {
        XuzhouAdapter::new(
            XuzhouConfig {
                upstream: UpstreamConfig::new(base_url, Duration::from_secs(2)),
                api_key: Secret::new(key),
                fallback_to_sukang: fallback,
            },
            Some(Arc::new(GreenSukang)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let sim: Arc<dyn RegionSim> = Arc::new(XuzhouSim::new());
        let running = spawn_sim(sim.clone()).await;
        let key = running.context.env.secret("xuzhou_api_key").unwrap();
        let plain = adapter(running.base_url(), &key, false);
        drive_all_cases(&sim, &running, &plain).await;
        // With the fallback configured, answers are the same while Xuzhou is up.
        let with_fallback = adapter(running.base_url(), &key, true);
        drive_all_cases(&sim, &running, &with_fallback).await;
        let subjects = running.context.population.subjects();
        // The required sample: registration required and not done → register_on_arrival.
        let s = plain
            .status(&Subject::QrToken(subjects[2].token.clone()))
            .await
            .unwrap();
        assert_eq!(s.color, Color::Green);
        assert_eq!(s.actions, vec![Action::RegisterOnArrival]);
        // A wrong key → 401/40101 → region_unavailable.
        let e = adapter(running.base_url(), "wrong", false)
            .status(&Subject::QrToken(subjects[0].token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        // Xuzhou busy (50001): identity lookups fall back to Sukang, QR lookups do not.
        running.context.control.set(&crate::ControlRequest {
            down: Some(true),
            latency_ms: None,
            error_rate: None,
            bad_signatures: None,
        });
        let e = plain.status(&identity(&subjects[0])).await.unwrap_err();
        assert!(e.is_retryable() && e.code() == AdapterCode::RegionUnavailable);
        let s = with_fallback.status(&identity(&subjects[0])).await.unwrap();
        assert_eq!(s.region, RegionId::Xuzhou);
        assert_eq!(s.source.label.as_deref(), Some(FALLBACK_LABEL));
        assert!(s.actions.contains(&Action::RegisterOnArrival));
        let e = with_fallback
            .status(&Subject::QrToken(subjects[0].token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        running.task.abort();
    }
}
