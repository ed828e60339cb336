//! 杭州健康码 Hangzhou Health Code (`shared/spec/regions/hangzhou.md`).
//!
//! `POST /hzjkm/open/v1/healthcode/query` with `Authorization: APPCODE <appcode>`; JSON in
//! and out. Decisions where the contract leaves room:
//! - `INVALID_ARGUMENT` (HTTP 400) → `upstream_invalid_response`: the gateway validates
//!   every identity before calling, so a region refusing our request means the two sides
//!   disagree on the contract, not that the caller's input was wrong.
//! - HTTP 401/403 → credentials refused (`region_unavailable`, alert) whatever the body;
//!   HTTP 429 → `upstream_rate_limited` with `Retry-After`; any 5xx → `region_unavailable`
//!   (retryable). Any other non-200 status → `upstream_invalid_response`.
//! - A `gmtModified` that is present but not RFC 3339 → `upstream_invalid_response`.
//! - `appealStatus` is a decision field: `PENDING` → `appeal_pending`, `NONE` → nothing;
//!   missing, `null` or unlisted → a green becomes `unknown` (yellow/red keep their colour).
//! - `employeeCode` (it names employers) and `overseas` are never read into the status.

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::{Deserialize, Serialize};

use crate::adapter::{RegionAdapter, Subject};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{keep_or_mask_present, mask_id, mask_name};
use crate::model::{Action, HealthStatus, Holder, IdType, Level, Reason, RegionId, Source};
use crate::secret::Secret;
use crate::time::parse_rfc3339;
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, parse_json_answer, read_body_limited,
    retry_after, transport_error,
};

/// The query path of the Hangzhou API.
pub const QUERY_PATH: &str = "/hzjkm/open/v1/healthcode/query";

/// How to reach the Hangzhou Health Code API.
#[derive(Clone, Debug)]
pub struct HangzhouConfig {
    /// Base URL, deadline (contract: 1.5 s) and body limit.
    pub upstream: UpstreamConfig,
    /// The API-marketplace APPCODE, sent as `Authorization: APPCODE <appcode>`.
    pub appcode: Secret,
}

/// The Hangzhou adapter.
#[derive(Debug)]
pub struct HangzhouAdapter {
    config: HangzhouConfig,
    client: reqwest::Client,
}

impl HangzhouAdapter {
    /// Builds the adapter and its HTTP client.
    pub fn new(config: HangzhouConfig) -> Result<Self, ClientBuildError> {
        let client = build_client(&config.upstream)?;
        Ok(HangzhouAdapter { config, client })
    }
}

/// The request body (`queryType` QR or CERT).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "queryType")]
pub enum QueryRequest<'a> {
    /// By QR content (the 20 digits after `HZJKM1`).
    #[serde(rename = "QR")]
    Qr {
        /// The token.
        #[serde(rename = "qrContent")]
        qr_content: &'a str,
    },
    /// By certificate (identity document).
    #[serde(rename = "CERT")]
    Cert {
        /// `ID_CARD`, `PASSPORT`, `HK_MACAO_PASS`, `TAIWAN_PASS`.
        #[serde(rename = "certType")]
        cert_type: &'static str,
        /// The document number.
        #[serde(rename = "certNo")]
        cert_no: &'a str,
        /// The holder's name.
        name: &'a str,
    },
}

/// The contract's `certType` for an identity type.
pub fn cert_type(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "ID_CARD",
        IdType::Passport => "PASSPORT",
        IdType::HkMacaoPermit => "HK_MACAO_PASS",
        IdType::TaiwanPermit => "TAIWAN_PASS",
    }
}

fn id_type_of(cert_type: &str) -> Option<IdType> {
    match cert_type {
        "ID_CARD" => Some(IdType::ResidentId),
        "PASSPORT" => Some(IdType::Passport),
        "HK_MACAO_PASS" => Some(IdType::HkMacaoPermit),
        "TAIWAN_PASS" => Some(IdType::TaiwanPermit),
        _ => None,
    }
}

/// The request body for a subject.
pub fn request_for(subject: &Subject) -> QueryRequest<'_> {
    match subject {
        Subject::QrToken(t) => QueryRequest::Qr { qr_content: t },
        Subject::Identity(i) => QueryRequest::Cert {
            cert_type: cert_type(i.id_type),
            cert_no: &i.id_number,
            name: &i.name,
        },
    }
}

/// The response envelope. Unknown fields (`employeeCode`, `overseas`, …) are ignored and
/// never kept.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Whether the call succeeded.
    pub success: bool,
    /// The error code when `success` is false.
    #[serde(default)]
    pub error_code: Option<String>,
    /// The result when `success` is true.
    #[serde(default)]
    pub result: Option<QueryResult>,
}

/// The `result` object, only the fields the common model uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    /// `green`, `yellow`, `red`.
    pub color: Option<String>,
    /// Reason codes.
    #[serde(default)]
    pub color_reasons: Option<Vec<String>>,
    /// RFC 3339 time of the status.
    #[serde(default)]
    pub gmt_modified: Option<String>,
    /// Masked name.
    #[serde(default)]
    pub masked_name: Option<String>,
    /// Masked document number.
    #[serde(default)]
    pub masked_cert_no: Option<String>,
    /// Document type.
    #[serde(default)]
    pub cert_type: Option<String>,
    /// `PENDING` when an appeal is open.
    #[serde(default)]
    pub appeal_status: Option<String>,
}

/// The level of a Hangzhou colour; unlisted values are unknown.
pub fn level_of(color: &str) -> Level {
    match color {
        "green" => Level::Clear,
        "yellow" => Level::Monitoring,
        "red" => Level::Quarantine,
        _ => Level::Unknown,
    }
}

fn label_of(color: &str) -> Option<&'static str> {
    match color {
        "green" => Some("绿码"),
        "yellow" => Some("黄码"),
        "red" => Some("红码"),
        _ => None,
    }
}

/// The normalised reason of a `colorReasons` value (`None`: unlisted).
pub fn reason_of(code: &str) -> Option<Reason> {
    match code {
        "SHARED_SPACE_WITH_CASE" => Some(Reason::SharedSpaceWithCase),
        "FROM_EPIDEMIC_AREA" => Some(Reason::HighRiskAreaArrival),
        "SYMPTOMS_DECLARED" => Some(Reason::SelfReportedSymptoms),
        "FALSE_DECLARATION" => Some(Reason::FalseDeclaration),
        "QUARANTINE" => Some(Reason::HomeQuarantine),
        _ => None,
    }
}

/// Maps an error code (with the HTTP status and headers it came with) to the gateway error.
pub fn error_of(code: &str, headers: &HeaderMap) -> AdapterError {
    match code {
        "AUTH_FAILED" => AdapterError::credentials_refused("AUTH_FAILED"),
        "INVALID_ARGUMENT" => AdapterError::invalid_response("INVALID_ARGUMENT"),
        "NOT_FOUND" => AdapterError::SubjectNotFound,
        "QR_EXPIRED" => AdapterError::TokenExpired,
        "THROTTLED" => AdapterError::RateLimited {
            retry_after: retry_after(headers),
        },
        "SYSTEM_ERROR" => AdapterError::unavailable_retryable("SYSTEM_ERROR"),
        _ => AdapterError::invalid_response("unknown errorCode"),
    }
}

/// Normalises a successful `result` (no network).
pub fn normalise(result: QueryResult) -> Result<HealthStatus, AdapterError> {
    let region = RegionId::Hangzhou;
    let color = result
        .color
        .ok_or_else(|| AdapterError::invalid_response("result without color"))?;
    let level = level_of(&color);
    if level == Level::Unknown {
        record_unmapped(region, "color", &color);
    }
    let mut status = HealthStatus::new(
        region,
        level,
        Source {
            label: label_of(&color).map(str::to_owned),
            code: color,
        },
    );
    for code in result.color_reasons.unwrap_or_default() {
        match reason_of(&code) {
            Some(r) => status.push_reason(r),
            None => {
                record_unmapped(region, "colorReasons", &code);
                status.push_reason(Reason::OtherConcern);
            }
        }
    }
    if let Some(t) = result.gmt_modified {
        status.as_of = Some(
            parse_rfc3339(&t)
                .ok_or_else(|| AdapterError::invalid_response("gmtModified is not RFC 3339"))?,
        );
    }
    // Fail safe: only `NONE` says no appeal is open. Missing, `null` or unlisted: an appeal
    // may be open and the colour may change, so a green cannot pass (yellow and red, which
    // cannot pass anyway, keep their colour).
    match result.appeal_status.as_deref() {
        Some("PENDING") => status.push_action(Action::AppealPending),
        Some("NONE") => {}
        other => {
            if let Some(value) = other {
                record_unmapped(region, "appealStatus", value);
            }
            if status.level == Level::Clear {
                status.make_unknown();
            }
        }
    }
    status.holder = Holder {
        name_masked: keep_or_mask_present(result.masked_name, mask_name),
        id_type: result.cert_type.as_deref().and_then(id_type_of),
        id_masked: keep_or_mask_present(result.masked_cert_no, mask_id),
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
        401 | 403 => return Err(AdapterError::credentials_refused("HTTP 401/403")),
        429 => {
            return Err(AdapterError::RateLimited {
                retry_after: retry_after(headers),
            });
        }
        500..=599 => return Err(AdapterError::unavailable_retryable("HTTP 5xx")),
        200 | 400 => {}
        _ => return Err(AdapterError::invalid_response("unexpected HTTP status")),
    }
    let env: Envelope = parse_json_answer(headers, body)?;
    if !env.success || http != StatusCode::OK {
        let code = env.error_code.unwrap_or_default();
        if code.is_empty() {
            return Err(AdapterError::invalid_response("failure without errorCode"));
        }
        return Err(error_of(&code, headers));
    }
    let result = env
        .result
        .ok_or_else(|| AdapterError::invalid_response("success without result"))?;
    normalise(result)
}

#[async_trait]
impl RegionAdapter for HangzhouAdapter {
    fn region(&self) -> RegionId {
        RegionId::Hangzhou
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let up = &self.config.upstream;
        let resp = self
            .client
            .post(up.url(QUERY_PATH))
            .header(
                AUTHORIZATION,
                format!("APPCODE {}", self.config.appcode.expose()),
            )
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

/// Hangzhou's credentials (`[regions.hangzhou.auth]`): APPCODE.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangzhouAuth {
    /// `Authorization: APPCODE …`.
    pub appcode: crate::secret::SecretRef,
}

impl crate::spec::Credentials for HangzhouAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        self.appcode.resolve_against(base);
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        vec![("appcode", &self.appcode)]
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    _built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<HangzhouAuth>(creds)?;
    let adapter = HangzhouAdapter::new(HangzhouConfig {
        upstream,
        appcode: crate::spec::load_secret(&a.appcode)?,
    })
    .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Hangzhou: `interpret`.
pub fn decode(answer: &RawAnswer, _: &DecodeContext<'_>) -> Result<HealthStatus, AdapterError> {
    interpret(crate::decode::http_status(answer)?, &answer.headers, &answer.body)
}

/// 杭州健康码 Hangzhou Health Code's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Hangzhou,
    jurisdiction: "zhejiang/hangzhou",
    published_rate_per_s: 1000,
    agreed_deadline: std::time::Duration::from_millis(1500),
    display_name: "杭州健康码 Hangzhou Health Code",
    qr: crate::spec::QrFormat {
        prefix: "HZJKM1",
        min_len: 20,
        max_len: 20,
        alphabet: crate::spec::Alphabet::Digits,
        example: "HZJKM120200211000000012345",
    },
    depends_on: &[],
    parse_credentials: crate::spec::parse_credentials::<HangzhouAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Identity;
    use crate::model::Color;
    use reqwest::header::{CONTENT_TYPE, HeaderValue};

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h
    }

    fn ok(body: &str) -> Result<HealthStatus, AdapterError> {
        interpret(StatusCode::OK, &json_headers(), body.as_bytes())
    }

    #[test]
    fn requests_follow_the_contract() {
        let q = serde_json::to_value(request_for(&Subject::QrToken("2020".into()))).unwrap();
        assert_eq!(q, serde_json::json!({"queryType":"QR","qrContent":"2020"}));
        let c = serde_json::to_value(request_for(&Subject::Identity(Identity {
            id_type: IdType::HkMacaoPermit,
            id_number: "H123".into(),
            name: "赵六".into(),
        })))
        .unwrap();
        assert_eq!(
            c,
            serde_json::json!({"queryType":"CERT","certType":"HK_MACAO_PASS","certNo":"H123","name":"赵六"})
        );
    }

    #[test]
    fn the_spec_example_normalises() {
        let s = ok(
            r#"{"success":true,"errorCode":null,"errorMsg":null,"result":{
          "color":"red","colorReasons":["SHARED_SPACE_WITH_CASE"],
          "gmtModified":"2020-02-16T10:20:30.000+08:00","maskedName":"赵*",
          "maskedCertNo":"3301**********0012","certType":"ID_CARD",
          "employeeCode":{"bound":true,"lastCheckInDate":"2020-02-16"},
          "overseas":false,"appealStatus":"PENDING"}}"#,
        )
        .unwrap();
        assert_eq!((s.color, s.level), (Color::Red, Level::Quarantine));
        assert_eq!(s.reasons, vec![Reason::SharedSpaceWithCase]);
        assert_eq!(s.actions, vec![Action::AppealPending]);
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-02-16T10:20:30+08:00");
        assert_eq!(s.holder.id_masked.as_deref(), Some("3301**********0012"));
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("employee") && !json.contains("2020-02-16\""),
            "{json}"
        );
    }

    #[test]
    fn unknown_colours_and_reasons_never_green() {
        for c in ["GREEN", "Green", "blue", "", "green "] {
            let s = ok(&format!(r#"{{"success":true,"result":{{"color":"{c}"}}}}"#)).unwrap();
            assert_eq!(s.color, Color::Unknown, "{c}");
        }
        let s =
            ok(r#"{"success":true,"result":{"color":"yellow","colorReasons":["NEW"]}}"#).unwrap();
        assert_eq!(s.reasons, vec![Reason::OtherConcern]);
    }

    #[test]
    fn unmasked_values_are_masked() {
        let s = ok(r#"{"success":true,"result":{"color":"green","maskedName":"赵六","maskedCertNo":"330106199001010012"}}"#).unwrap();
        assert_eq!(s.holder.name_masked.as_deref(), Some("赵*"));
        assert_eq!(s.holder.id_masked.as_deref(), Some("3301**********0012"));
    }

    #[test]
    fn errors_map_by_code() {
        let h = json_headers();
        let e = |status: u16, code: &str| {
            interpret(
                StatusCode::from_u16(status).unwrap(),
                &h,
                format!(r#"{{"success":false,"errorCode":"{code}"}}"#).as_bytes(),
            )
            .unwrap_err()
            .code()
            .as_str()
        };
        assert_eq!(e(200, "NOT_FOUND"), "subject_not_found");
        assert_eq!(e(200, "QR_EXPIRED"), "token_expired");
        assert_eq!(e(400, "INVALID_ARGUMENT"), "upstream_invalid_response");
        assert_eq!(e(401, "AUTH_FAILED"), "region_unavailable");
        assert_eq!(e(429, "THROTTLED"), "upstream_rate_limited");
        assert_eq!(e(500, "SYSTEM_ERROR"), "region_unavailable");
        assert_eq!(e(200, "WHATEVER"), "upstream_invalid_response");
        assert_eq!(e(200, "SYSTEM_ERROR"), "region_unavailable");
        assert!(ok(r#"{"success":true}"#).is_err());
        assert!(
            ok(r#"{"success":true,"result":{"color":"green","gmtModified":"yesterday"}}"#).is_err()
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
            br#"{"success":true,"result":["green"]}"#.as_slice(),
            br#"[true,null,["green"]]"#.as_slice(),
            br#"{"success":true,"result":["green","x","2026-11-22T10:00:00.000+08:00"]}"#
                .as_slice(),
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
