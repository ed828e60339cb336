//! Simulator of region `huzhou` (湖州健康码, `shared/spec/regions/huzhou.md`): bearer
//! token (401), form-encoded requests, resident identity cards only (422 for anything
//! else), HTTP status mirroring `status`, every `qrColor` and every reason value, the
//! whitelist and provisional (`locationOff`) answers. Written from the contract,
//! independently of the adapter's code.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hcgw_adapters::identity::{mask_id, mask_name, validate_resident_id};
use hcgw_adapters::{IdType, Level, Reason, RegionId};
use serde_json::{Value, json};

use super::{Fate, Intended, RegionSim, SimContext, SimSubject};

/// One case: qrColor, riskLevel, whitelist, reasons, locationOff.
type Case = (
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
);

/// Every qrColor, every reason value, the whitelist, a provisional answer and an
/// unlisted reason.
const CASES: [Case; 14] = [
    ("1", "LOW", false, &[], false),
    ("1", "HIGH", true, &["WHITELIST"], false),
    ("1", "LOW", false, &[], true),
    ("2", "LOW", false, &["SYMPTOMS"], false),
    ("2", "MEDIUM", false, &["MEDIUM_RISK_AREA"], false),
    ("2", "LOW", false, &["OTHER"], true),
    ("3", "HIGH", false, &["CONFIRMED"], false),
    ("3", "HIGH", false, &["SUSPECTED"], false),
    ("3", "HIGH", false, &["CONTACT"], false),
    ("3", "HIGH", false, &["HUBEI"], false),
    ("3", "HIGH", false, &["HIGH_RISK_AREA"], false),
    ("3", "HIGH", false, &["CONTACT", "SYMPTOMS"], false),
    ("3", "LOW", false, &["QUARANTINE_HOTEL"], false),
    (
        "2",
        "MEDIUM",
        false,
        &["MEDIUM_RISK_AREA", "UNLISTED"],
        false,
    ),
];

/// The intended normalisation of each case, from the contract's tables.
fn intended(i: usize) -> Intended {
    use Reason::*;
    let (label, level, reasons) = match i {
        0 => ("1 绿码", Level::Clear, vec![]),
        1 => ("1 绿码 whitelist", Level::Clear, vec![Whitelisted]),
        2 => ("1 绿码 locationOff (provisional)", Level::Clear, vec![]),
        3 => (
            "2 黄码 SYMPTOMS",
            Level::Monitoring,
            vec![SelfReportedSymptoms],
        ),
        4 => (
            "2 黄码 MEDIUM_RISK_AREA",
            Level::Monitoring,
            vec![MediumRiskAreaArrival],
        ),
        5 => (
            "2 黄码 OTHER, locationOff",
            Level::Monitoring,
            vec![OtherConcern],
        ),
        6 => ("3 红码 CONFIRMED", Level::Quarantine, vec![ConfirmedCase]),
        7 => ("3 红码 SUSPECTED", Level::Quarantine, vec![SuspectedCase]),
        8 => ("3 红码 CONTACT", Level::Quarantine, vec![CloseContact]),
        9 => ("3 红码 HUBEI", Level::Quarantine, vec![HighRiskAreaArrival]),
        10 => (
            "3 红码 HIGH_RISK_AREA",
            Level::Quarantine,
            vec![HighRiskAreaArrival],
        ),
        11 => (
            "3 红码 CONTACT + SYMPTOMS",
            Level::Quarantine,
            vec![CloseContact, SelfReportedSymptoms],
        ),
        12 => (
            "3 红码 unlisted reason",
            Level::Quarantine,
            vec![OtherConcern],
        ),
        _ => (
            "2 黄码 MEDIUM_RISK_AREA + unlisted",
            Level::Monitoring,
            vec![MediumRiskAreaArrival, OtherConcern],
        ),
    };
    Intended::status(label, level, reasons, vec![])
}

/// The Huzhou Health Code simulator.
#[derive(Default)]
pub struct HuzhouSim {
    token: OnceLock<Option<String>>,
}

fn reply(status: u16, msg: &str, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [("content-type", "application/json; charset=utf-8")],
        json!({ "status": status, "msg": msg, "body": body }).to_string(),
    )
        .into_response()
}

/// Decodes `application/x-www-form-urlencoded` (UTF-8); `None` when malformed.
fn parse_form(body: &[u8]) -> Option<HashMap<String, String>> {
    fn decode(s: &str) -> Option<String> {
        let mut out = Vec::with_capacity(s.len());
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut map = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        map.insert(decode(k)?, decode(v)?);
    }
    Some(map)
}

impl HuzhouSim {
    /// A simulator.
    pub fn new() -> Self {
        HuzhouSim::default()
    }

    fn token(&self, ctx: &SimContext) -> Option<&str> {
        self.token
            .get_or_init(|| ctx.env.secret("huzhou_token").ok())
            .as_deref()
    }

    fn answer(&self, subject: &SimSubject, via_qr: bool) -> Response {
        match subject.fate {
            Fate::NotFound => return reply(404, "not applied", Value::Null),
            Fate::TokenExpired if via_qr => return reply(410, "qr expired", Value::Null),
            _ => {}
        }
        if subject.id_type != IdType::ResidentId {
            // Foreign holders have no Huzhou code (a QR of theirs is answered like
            // a resident's: the code exists, the region simply knows the holder).
            if !via_qr {
                return reply(422, "暂不支持港澳台及外籍用户", Value::Null);
            }
        }
        let (color, risk, whitelist, reasons, location_off) = CASES[subject.case % CASES.len()];
        let now = chrono::Utc::now().with_timezone(&hcgw_adapters::time::shanghai());
        reply(
            200,
            "success",
            json!({
                "qrColor": color,
                "riskLevel": risk,
                "whitelist": whitelist,
                "reasons": reasons,
                "locationOff": location_off,
                "updateTime": now.format("%Y/%m/%d %H:%M:%S").to_string(),
                "xmMasked": mask_name(&subject.name),
                "sfzhMasked": mask_id(&subject.id_number),
            }),
        )
    }

    fn handle(&self, ctx: &SimContext, headers: &HeaderMap, body: &[u8]) -> Response {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let Some(token) = self.token(ctx) else {
            return reply(500, "error", Value::Null);
        };
        if header("authorization") != format!("Bearer {token}") {
            return reply(401, "invalid token", Value::Null);
        }
        let content_type = header("content-type").to_ascii_lowercase();
        let mut parts = content_type.split(';').map(str::trim);
        if parts.next() != Some("application/x-www-form-urlencoded")
            || !parts.any(|p| p == "charset=utf-8")
        {
            return reply(400, "bad content type", Value::Null);
        }
        let Some(form) = parse_form(body) else {
            return reply(400, "bad form", Value::Null);
        };
        let get = |k: &str| form.get(k).map(String::as_str);
        let found = match get("type") {
            Some("qr") => match get("content") {
                Some(t) => ctx.population.by_token(t).map(|s| (s, true)),
                None => return reply(400, "missing content", Value::Null),
            },
            Some("id") => match (get("sfzh"), get("xm")) {
                (Some(sfzh), Some(xm)) if !xm.is_empty() => {
                    if validate_resident_id(sfzh).is_err() {
                        return reply(422, "暂不支持港澳台及外籍用户", Value::Null);
                    }
                    ctx.population.by_id_number(sfzh).map(|s| (s, false))
                }
                _ => return reply(400, "missing sfzh or xm", Value::Null),
            },
            _ => return reply(400, "bad type", Value::Null),
        };
        match found {
            None => reply(404, "not applied", Value::Null),
            Some((s, via_qr)) => self.answer(s, via_qr),
        }
    }
}

impl RegionSim for HuzhouSim {
    fn area_code(&self) -> &'static str {
        "330502"
    }

    fn region(&self) -> RegionId {
        RegionId::Huzhou
    }

    fn cases(&self) -> Vec<Intended> {
        (0..CASES.len()).map(intended).collect()
    }

    fn routes(self: Arc<Self>, ctx: Arc<SimContext>) -> Router {
        Router::new()
            .route(
                "/api/hzjkm/query",
                post(
                    |State((sim, ctx)): State<(Arc<HuzhouSim>, Arc<SimContext>)>,
                     headers: HeaderMap,
                     body: Bytes| async move { sim.handle(&ctx, &headers, &body) },
                ),
            )
            .with_state((self, ctx))
    }

    fn busy(&self) -> Response {
        reply(500, "error", Value::Null)
    }

    fn supports_id_type(&self, id_type: IdType) -> bool {
        id_type == IdType::ResidentId
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hcgw_adapters::regions::huzhou::{HuzhouAdapter, HuzhouConfig};
    use hcgw_adapters::upstream::UpstreamConfig;
    use hcgw_adapters::{AdapterCode, RegionAdapter, Secret, Subject};

    use super::*;
    use crate::testkit::{drive_all_cases, spawn_sim};

    fn adapter(base_url: String, token: &str) -> HuzhouAdapter {
        HuzhouAdapter::new(HuzhouConfig {
            upstream: UpstreamConfig::new(base_url, Duration::from_secs(2)),
            token: Secret::new(token),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn adapter_and_simulator_agree_on_every_case() {
        let sim: Arc<dyn RegionSim> = Arc::new(HuzhouSim::new());
        let running = spawn_sim(sim.clone()).await;
        let token = running.context.env.secret("huzhou_token").unwrap();
        let adapter = adapter(running.base_url(), &token);
        drive_all_cases(&sim, &running, &adapter).await;
        let subjects = running.context.population.subjects();
        // locationOff: the colour is kept and the status is provisional.
        let s = adapter
            .status(&Subject::QrToken(subjects[2].token.clone()))
            .await
            .unwrap();
        assert!(s.provisional && s.color == hcgw_adapters::Color::Green);
        let s = adapter
            .status(&Subject::QrToken(subjects[0].token.clone()))
            .await
            .unwrap();
        assert!(!s.provisional);
        assert!(s.as_of.is_some());
        // A wrong token → 401 → region_unavailable.
        let e = self::adapter(running.base_url(), "wrong")
            .status(&Subject::QrToken(subjects[0].token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        // Busy: 500 → region_unavailable.
        running.context.control.set(&crate::ControlRequest {
            down: Some(true),
            latency_ms: None,
            error_rate: None,
            bad_signatures: None,
        });
        let e = adapter
            .status(&Subject::QrToken(subjects[0].token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        running.task.abort();
    }

    #[test]
    fn form_decoding() {
        let f = parse_form(b"type=id&sfzh=33050219900101432X&xm=%E5%AD%99+%E4%B8%89").unwrap();
        assert_eq!(f["xm"], "孙 三");
        assert!(parse_form(b"type=id&xm=%E5%A").is_none());
    }
}
