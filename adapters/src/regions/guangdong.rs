//! 粤康码 Yuekang Code (Guangdong) (`shared/spec/regions/guangdong.md`).
//!
//! `POST /ykm/v2/health/check` over mutual TLS with Guangdong's private CA, plus the header
//! `X-Yss-Paasid` on every call; JSON in and out. Decisions where the contract leaves room:
//! - `codeStatus` must be one of the strings `"1"`, `"2"`, `"3"`; `"0"` (未赋码) and any
//!   other string are colour `unknown` (the others recorded as unmapped); a non-string
//!   `codeStatus` breaks the contract → `upstream_invalid_response`.
//! - `source.label` is the region's `riskTips` when sent, else its wording of the code.
//! - HTTP 503 (and any 5xx) → `region_unavailable` (retryable) whatever the body; HTTP
//!   401/403 → credentials refused; any other non-200 → `upstream_invalid_response`.
//!   `E503` with HTTP 200 is `region_unavailable` too.
//! - `retryAfter` may be a number or a numeric string of seconds.
//! - A present but unparseable `statusTime` → `upstream_invalid_response`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::adapter::{RegionAdapter, Subject};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{keep_or_mask_present, mask_id, mask_name};
use crate::model::{HealthStatus, Holder, IdType, Level, Reason, RegionId, Source};
use crate::secret::Secret;
use crate::time::parse_shanghai_local;
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, parse_json_answer, read_body_limited,
    transport_error,
};

/// The check path of the Guangdong API.
pub const CHECK_PATH: &str = "/ykm/v2/health/check";

/// The header carrying the 粤省事 PaaS id.
pub const PAAS_ID_HEADER: &str = "X-Yss-Paasid";

/// How to reach the Yuekang Code API. The upstream's `tls` must carry Guangdong's CA
/// bundle and our client certificate and key.
#[derive(Clone, Debug)]
pub struct GuangdongConfig {
    /// Base URL (`https://…`), deadline (contract: 1.5 s), body limit and mTLS material.
    pub upstream: UpstreamConfig,
    /// The PaaS id sent as `X-Yss-Paasid` on every call.
    pub paas_id: Secret,
}

/// The Guangdong adapter.
#[derive(Debug)]
pub struct GuangdongAdapter {
    config: GuangdongConfig,
    client: reqwest::Client,
}

impl GuangdongAdapter {
    /// Builds the adapter and its mTLS client.
    pub fn new(config: GuangdongConfig) -> Result<Self, ClientBuildError> {
        let client = build_client(&config.upstream)?;
        Ok(GuangdongAdapter { config, client })
    }
}

/// The contract's `cardType` for an identity type.
pub fn card_type(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "1",
        IdType::Passport => "2",
        IdType::HkMacaoPermit => "3",
        IdType::TaiwanPermit => "4",
    }
}

fn id_type_of(card_type: &str) -> Option<IdType> {
    match card_type {
        "1" => Some(IdType::ResidentId),
        "2" => Some(IdType::Passport),
        "3" => Some(IdType::HkMacaoPermit),
        "4" => Some(IdType::TaiwanPermit),
        _ => None,
    }
}

/// The request body: by QR text or by card.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CheckRequest<'a> {
    /// `{"qrText": …}`.
    Qr {
        /// The token after `YKM:`.
        #[serde(rename = "qrText")]
        qr_text: &'a str,
    },
    /// `{"cardType": …, "cardNo": …, "name": …}`.
    Card {
        /// `"1"`..`"4"`.
        #[serde(rename = "cardType")]
        card_type: &'static str,
        /// The document number.
        #[serde(rename = "cardNo")]
        card_no: &'a str,
        /// The holder's name.
        name: &'a str,
    },
}

/// The request body for a subject.
pub fn request_for(subject: &Subject) -> CheckRequest<'_> {
    match subject {
        Subject::QrToken(t) => CheckRequest::Qr { qr_text: t },
        Subject::Identity(i) => CheckRequest::Card {
            card_type: card_type(i.id_type),
            card_no: &i.id_number,
            name: &i.name,
        },
    }
}

/// The response envelope.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// `"0"` or an `E…` code.
    pub err_code: String,
    /// The data (status, or `retryAfter` with E429).
    #[serde(default)]
    pub data: Option<CheckData>,
}

/// The `data` object: a successful check's status (only the fields the common model uses),
/// or `retryAfter` with `E429`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckData {
    /// `"1"`, `"2"`, `"3"`, `"0"`.
    pub code_status: Option<String>,
    /// Local `yyyyMMddHHmmss`.
    #[serde(default)]
    pub status_time: Option<String>,
    /// The region's wording.
    #[serde(default)]
    pub risk_tips: Option<String>,
    /// Category codes.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// Masked name.
    #[serde(default)]
    pub mask_name: Option<String>,
    /// Masked card number.
    #[serde(default)]
    pub mask_card_no: Option<String>,
    /// Card type.
    #[serde(default)]
    pub card_type: Option<String>,
    /// Seconds to wait, with `E429`: a number or a numeric string (read by [`retry_after_of`]).
    #[serde(default)]
    pub retry_after: Option<serde_json::Value>,
}

/// The level of a `codeStatus`; `"0"` and unlisted values are unknown.
pub fn level_of(code_status: &str) -> Level {
    match code_status {
        "1" => Level::Clear,
        "2" => Level::Monitoring,
        "3" => Level::Quarantine,
        _ => Level::Unknown,
    }
}

fn label_of(code_status: &str) -> Option<&'static str> {
    match code_status {
        "1" => Some("绿码"),
        "2" => Some("黄码"),
        "3" => Some("红码"),
        "0" => Some("未赋码"),
        _ => None,
    }
}

/// The reason of a category (`None`: unlisted).
pub fn reason_of(category: &str) -> Option<Reason> {
    match category {
        "CENTRAL_ISOLATION" => Some(Reason::CentralizedQuarantine),
        "HOME_ISOLATION" | "HEALTH_MONITORING" => Some(Reason::HomeQuarantine),
        "CLOSE_CONTACT" => Some(Reason::CloseContact),
        "CONFIRMED" => Some(Reason::ConfirmedCase),
        "ASYMPTOMATIC" => Some(Reason::AsymptomaticInfection),
        "NAT_POSITIVE" => Some(Reason::NucleicAcidPositive),
        "RISK_AREA" => Some(Reason::HighRiskAreaArrival),
        _ => None,
    }
}

/// `data.retryAfter` in seconds, capped at one day; a negative, fractional, non-numeric or
/// out-of-range value gives no wait (the gateway's own default applies), never a panic.
pub fn retry_after_of(data: Option<&CheckData>) -> Option<Duration> {
    let v = data?.retry_after.as_ref()?;
    let secs = match v {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(Duration::from_secs(secs.min(86_400)))
}

/// Normalises the `data` of a successful check (no network).
pub fn normalise(data: CheckData) -> Result<HealthStatus, AdapterError> {
    let region = RegionId::Guangdong;
    let code = data
        .code_status
        .ok_or_else(|| AdapterError::invalid_response("data without codeStatus"))?;
    let level = level_of(&code);
    if level == Level::Unknown && code != "0" {
        record_unmapped(region, "codeStatus", &code);
    }
    let label = data
        .risk_tips
        .filter(|t| !t.trim().is_empty())
        .or_else(|| label_of(&code).map(str::to_owned));
    let mut status = HealthStatus::new(region, level, Source { code, label });
    for category in data.categories.unwrap_or_default() {
        match reason_of(&category) {
            Some(r) => status.push_reason(r),
            None => {
                record_unmapped(region, "categories", &category);
                status.push_reason(Reason::OtherConcern);
            }
        }
    }
    if let Some(t) = data.status_time {
        status.as_of =
            Some(parse_shanghai_local(&t, "%Y%m%d%H%M%S").ok_or_else(|| {
                AdapterError::invalid_response("statusTime is not yyyyMMddHHmmss")
            })?);
    }
    status.holder = Holder {
        name_masked: keep_or_mask_present(data.mask_name, mask_name),
        id_type: data.card_type.as_deref().and_then(id_type_of),
        id_masked: keep_or_mask_present(data.mask_card_no, mask_id),
    };
    Ok(status)
}

/// Interprets a whole HTTP answer (status, headers, body) per the contract (no network).
pub fn interpret(
    http: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HealthStatus, AdapterError> {
    match http.as_u16() {
        200 => {}
        401 | 403 => return Err(AdapterError::credentials_refused("HTTP 401/403")),
        500..=599 => return Err(AdapterError::unavailable_retryable("HTTP 5xx")),
        _ => return Err(AdapterError::invalid_response("unexpected HTTP status")),
    }
    let env: Envelope = parse_json_answer(headers, body)?;
    match env.err_code.as_str() {
        "0" => {}
        "E401" => return Err(AdapterError::credentials_refused("E401")),
        "E404" => return Err(AdapterError::SubjectNotFound),
        "E410" => return Err(AdapterError::TokenExpired),
        "E429" => {
            return Err(AdapterError::RateLimited {
                retry_after: retry_after_of(env.data.as_ref()),
            });
        }
        "E503" => return Err(AdapterError::unavailable_retryable("E503")),
        _ => return Err(AdapterError::invalid_response("unknown errCode")),
    }
    let data = env
        .data
        .ok_or_else(|| AdapterError::invalid_response("success without data"))?;
    normalise(data)
}

#[async_trait]
impl RegionAdapter for GuangdongAdapter {
    fn region(&self) -> RegionId {
        RegionId::Guangdong
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let up = &self.config.upstream;
        let resp = self
            .client
            .post(up.url(CHECK_PATH))
            .header(PAAS_ID_HEADER, self.config.paas_id.expose())
            .json(&request_for(subject))
            .send()
            .await
            .map_err(|e| transport_error(&e, up.deadline))?;
        let http = resp.status();
        let headers = resp.headers().clone();
        let body = read_body_limited(resp, up.max_body_bytes, up.deadline).await?;
        interpret(http, &headers, &body)
    }
}

/// Guangdong's credentials (`[regions.guangdong.auth]`): mTLS plus the paas id header.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuangdongAuth {
    /// Guangdong's server CA bundle.
    pub ca: std::path::PathBuf,
    /// Our client certificate chain.
    pub client_cert: std::path::PathBuf,
    /// Its key.
    pub client_key: std::path::PathBuf,
    /// `X-Yss-Paasid`.
    pub paas_id: crate::secret::SecretRef,
}

impl crate::spec::Credentials for GuangdongAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        crate::spec::resolve_path(&mut self.ca, base);
        crate::spec::resolve_path(&mut self.client_cert, base);
        crate::spec::resolve_path(&mut self.client_key, base);
        self.paas_id.resolve_against(base);
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        vec![("paas_id", &self.paas_id)]
    }
    fn files(&self) -> Vec<(String, &std::path::Path)> {
        vec![
            ("ca".into(), self.ca.as_path()),
            ("client_cert".into(), self.client_cert.as_path()),
            ("client_key".into(), self.client_key.as_path()),
        ]
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    _built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<GuangdongAuth>(creds)?;
    let mut upstream = upstream;
    upstream.tls = crate::spec::mtls(&a.ca, &a.client_cert, &a.client_key)?;
    let adapter = GuangdongAdapter::new(GuangdongConfig {
        upstream,
        paas_id: crate::spec::load_secret(&a.paas_id)?,
    })
    .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Guangdong: `interpret`.
pub fn decode(answer: &RawAnswer, _: &DecodeContext<'_>) -> Result<HealthStatus, AdapterError> {
    interpret(crate::decode::http_status(answer)?, &answer.headers, &answer.body)
}

/// 粤康码 Yuekang Code's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Guangdong,
    jurisdiction: "guangdong",
    published_rate_per_s: 800,
    agreed_deadline: std::time::Duration::from_millis(1500),
    display_name: "粤康码 Yuekang Code",
    // The contract says 30 characters but its own example has 29; both are accepted
    // (docs/decisions.md): recognising a format only routes the token to the region, which
    // remains the judge of whether the token is valid.
    qr: crate::spec::QrFormat {
        prefix: "YKM:",
        min_len: 29,
        max_len: 30,
        alphabet: crate::spec::Alphabet::Alnum,
        example: "YKM:Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg",
    },
    depends_on: &[],
    parse_credentials: crate::spec::parse_credentials::<GuangdongAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Identity;
    use crate::model::Color;
    use reqwest::header::{CONTENT_TYPE, HeaderValue};

    fn run(body: &str) -> Result<HealthStatus, AdapterError> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        interpret(StatusCode::OK, &h, body.as_bytes())
    }

    #[test]
    fn the_spec_example_normalises() {
        let s = run(r#"{"errCode":"0","errMsg":"","data":{
          "codeStatus":"3","statusTime":"20220401100000","riskTips":"集中隔离",
          "categories":["CENTRAL_ISOLATION"],"maskName":"黄*",
          "maskCardNo":"4403**********5566","cardType":"1"}}"#)
        .unwrap();
        assert_eq!((s.color, s.level), (Color::Red, Level::Quarantine));
        assert_eq!(s.reasons, vec![Reason::CentralizedQuarantine]);
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-04-01T10:00:00+08:00");
        assert_eq!(s.source.code, "3");
        assert_eq!(s.source.label.as_deref(), Some("集中隔离"));
        assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
    }

    #[test]
    fn unassigned_and_unknown_codes_are_unknown() {
        for c in ["\"0\"", "\"4\"", "\"\"", "\"01\""] {
            let s = run(&format!(r#"{{"errCode":"0","data":{{"codeStatus":{c}}}}}"#)).unwrap();
            assert_eq!(s.color, Color::Unknown, "{c}");
        }
        assert!(run(r#"{"errCode":"0","data":{"codeStatus":1}}"#).is_err());
    }

    #[test]
    fn requests_follow_the_contract() {
        let q = serde_json::to_value(request_for(&Subject::QrToken("Zx9".into()))).unwrap();
        assert_eq!(q, serde_json::json!({"qrText":"Zx9"}));
        let c = serde_json::to_value(request_for(&Subject::Identity(Identity {
            id_type: IdType::TaiwanPermit,
            id_number: "123".into(),
            name: "林美".into(),
        })))
        .unwrap();
        assert_eq!(
            c,
            serde_json::json!({"cardType":"4","cardNo":"123","name":"林美"})
        );
    }

    #[test]
    fn errors_map() {
        let e = |code: &str, data: &str| {
            run(&format!(
                r#"{{"errCode":"{code}","errMsg":"x","data":{data}}}"#
            ))
            .unwrap_err()
        };
        assert_eq!(e("E404", "null").code(), crate::AdapterCode::SubjectNotFound);
        assert_eq!(e("E410", "null").code(), crate::AdapterCode::TokenExpired);
        assert_eq!(
            e("E429", r#"{"retryAfter":5}"#).retry_after(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            e("E429", r#"{"retryAfter":"6"}"#).retry_after(),
            Some(Duration::from_secs(6))
        );
        assert!(matches!(
            e("E401", "null"),
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        ));
        assert!(e("E503", "null").is_retryable());
        assert_eq!(
            e("E999", "null").code(),
            crate::AdapterCode::UpstreamInvalidResponse
        );
    }

    #[test]
    fn arrays_where_the_contract_has_objects_are_never_green() {
        // serde would read these structs written as arrays as green answers.
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        for body in [
            br#"{"errCode":"0","data":["1","20220401100000"]}"#.as_slice(),
            br#"["0","",{"codeStatus":"1","statusTime":"20220401100000"}]"#.as_slice(),
        ] {
            let r = interpret(reqwest::StatusCode::OK, &h, body);
            assert!(
                matches!(r, Err(AdapterError::InvalidResponse(_))),
                "{}: {r:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
