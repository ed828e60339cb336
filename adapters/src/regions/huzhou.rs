//! Region `huzhou` — 湖州健康码 Huzhou Health Code (`shared/spec/regions/huzhou.md`).
//!
//! Transport: `POST /api/hzjkm/query` with a form-encoded body (`type=qr&content=…` or
//! `type=id&sfzh=…&xm=…`, `Content-Type: application/x-www-form-urlencoded;
//! charset=utf-8`) and `Authorization: Bearer <token>`. Domain: [`normalise`] maps a
//! parsed answer to a [`HealthStatus`] with no network.
//!
//! Decisions (contract gaps):
//! - Only resident identity cards are served ([`RegionAdapter::supports_id_type`]); other
//!   identity types are refused with `unsupported_id_type` before any call. A `422` for a
//!   QR lookup (the holder is from Hong Kong, Macao, Taiwan or abroad) is reported as
//!   `UnsupportedIdType(passport)`, the type being unknown to us.
//! - `locationOff: true` keeps the colour and sets [`HealthStatus::provisional`] (a field
//!   added to the common model for this), which the gateway's cache honours.
//! - `whitelist: true` adds the reason `whitelisted` even without a `WHITELIST` reason.
//! - `whitelist` and `locationOff` are required booleans: missing, `null` or not a boolean
//!   → `upstream_invalid_response` (docs/decisions.md, "Decision fields (fail safe)").
//! - `proxy_applied` is omitted: the region sends no such field (it does not support
//!   proxy applications at all).
//! - HTTP 401 and 403 are refused credentials (alert); 404/410/422/429 as the table;
//!   5xx is `region_unavailable` (retryable once: a lookup is idempotent); any other
//!   status, or a 200 whose body `status` is not 200, breaks the contract.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use serde::{Deserialize, Serialize};

use crate::adapter::{RegionAdapter, Subject};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{keep_or_mask, mask_id, mask_name};
use crate::model::{HealthStatus, Holder, IdType, Level, Reason, RegionId, Source};
use crate::secret::Secret;
use crate::time::parse_shanghai_local;
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, parse_json_answer, read_body_limited,
    retry_after, transport_error,
};

/// The query endpoint.
pub const QUERY_PATH: &str = "/api/hzjkm/query";
/// The request content type, exactly as the contract gives it.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The `updateTime` format (Asia/Shanghai local time).
pub const TIME_FORMAT: &str = "%Y/%m/%d %H:%M:%S";

/// How to reach and authenticate to the Huzhou Health Code API.
#[derive(Clone, Debug)]
pub struct HuzhouConfig {
    /// Base URL, deadline, body limit, TLS.
    pub upstream: UpstreamConfig,
    /// The static bearer token issued to the federation.
    pub token: Secret,
}

/// The Huzhou Health Code adapter.
pub struct HuzhouAdapter {
    config: HuzhouConfig,
    client: reqwest::Client,
}

/// The answer envelope: `status` mirrors the HTTP status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HuzhouResponse {
    /// 200 on success, else the error status.
    pub status: u16,
    /// A human message (never logged or copied into errors).
    #[serde(default)]
    pub msg: Option<String>,
    /// The status, for 200.
    #[serde(default)]
    pub body: Option<HuzhouBody>,
}

/// The status part of an answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HuzhouBody {
    /// `"1"` green, `"2"` yellow, `"3"` red.
    pub qr_color: String,
    /// The origin area's risk level (informational).
    #[serde(default)]
    pub risk_level: Option<String>,
    /// On the city's whitelist (required).
    pub whitelist: bool,
    /// Reason values (`CONFIRMED`, `HUBEI`, …).
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
    /// Submitted with location services off: the status is provisional.
    pub location_off: bool,
    /// `yyyy/MM/dd HH:mm:ss`, Asia/Shanghai.
    #[serde(default)]
    pub update_time: Option<String>,
    /// The masked name.
    #[serde(default)]
    pub xm_masked: Option<String>,
    /// The masked identity number.
    #[serde(default)]
    pub sfzh_masked: Option<String>,
}

/// The level and label of a `qrColor` value; `None` for an unlisted value.
pub fn level_of(qr_color: &str) -> Option<(Level, &'static str)> {
    match qr_color {
        "1" => Some((Level::Clear, "绿码")),
        "2" => Some((Level::Monitoring, "黄码")),
        "3" => Some((Level::Quarantine, "红码")),
        _ => None,
    }
}

/// The reason of a `reasons` value; `None` for an unlisted value.
pub fn reason_of(value: &str) -> Option<Reason> {
    Some(match value {
        "CONFIRMED" => Reason::ConfirmedCase,
        "SUSPECTED" => Reason::SuspectedCase,
        "CONTACT" => Reason::CloseContact,
        "HUBEI" | "HIGH_RISK_AREA" => Reason::HighRiskAreaArrival,
        "MEDIUM_RISK_AREA" => Reason::MediumRiskAreaArrival,
        "SYMPTOMS" => Reason::SelfReportedSymptoms,
        "WHITELIST" => Reason::Whitelisted,
        "OTHER" => Reason::OtherConcern,
        _ => return None,
    })
}

/// `application/x-www-form-urlencoded` serialisation (UTF-8; unreserved `*-._`, space as
/// `+`, everything else percent-encoded).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn enc(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(&mut out, k);
        out.push('=');
        enc(&mut out, v);
    }
    out
}

/// The form body of a lookup; `Err` for identity types the region does not serve.
pub fn request_body(subject: &Subject) -> Result<String, AdapterError> {
    match subject {
        Subject::QrToken(token) => Ok(form_encode(&[("type", "qr"), ("content", token)])),
        Subject::Identity(id) if id.id_type == IdType::ResidentId => Ok(form_encode(&[
            ("type", "id"),
            ("sfzh", &id.id_number),
            ("xm", &id.name),
        ])),
        Subject::Identity(id) => Err(AdapterError::UnsupportedIdType(id.id_type)),
    }
}

/// Checks the HTTP status and content type and parses the envelope. `id_type` is the
/// looked-up identity type (for `422`), `None` for QR lookups.
pub fn parse_answer(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    id_type: Option<IdType>,
) -> Result<HuzhouResponse, AdapterError> {
    match status.as_u16() {
        200 => {}
        401 | 403 => {
            return Err(AdapterError::credentials_refused(format!(
                "HTTP {}: bearer token refused",
                status.as_u16()
            )));
        }
        404 => return Err(AdapterError::SubjectNotFound),
        410 => return Err(AdapterError::TokenExpired),
        422 => {
            return Err(AdapterError::UnsupportedIdType(
                id_type.unwrap_or(IdType::Passport),
            ));
        }
        429 => {
            return Err(AdapterError::RateLimited {
                retry_after: retry_after(headers),
            });
        }
        s if status.is_server_error() => {
            return Err(AdapterError::unavailable_retryable(format!("HTTP {s}")));
        }
        s => {
            return Err(AdapterError::invalid_response(format!(
                "unlisted HTTP status {s}"
            )));
        }
    }
    parse_json_answer(headers, body)
}

/// Maps a parsed HTTP-200 answer to the common model (pure).
pub fn normalise(answer: &HuzhouResponse) -> Result<HealthStatus, AdapterError> {
    if answer.status != 200 {
        return Err(AdapterError::invalid_response(
            "body status does not mirror HTTP 200",
        ));
    }
    let body = answer
        .body
        .as_ref()
        .ok_or_else(|| AdapterError::invalid_response("status 200 without body"))?;
    let source = |label: Option<&str>| Source {
        code: body.qr_color.clone(),
        label: label.map(str::to_owned),
    };
    let mut status = match level_of(&body.qr_color) {
        Some((level, label)) => HealthStatus::new(RegionId::Huzhou, level, source(Some(label))),
        None => {
            record_unmapped(RegionId::Huzhou, "qrColor", &body.qr_color);
            HealthStatus::new(RegionId::Huzhou, Level::Unknown, source(None))
        }
    };
    if body.whitelist {
        status.push_reason(Reason::Whitelisted);
    }
    for value in body.reasons.iter().flatten() {
        match reason_of(value) {
            Some(r) => status.push_reason(r),
            None => {
                record_unmapped(RegionId::Huzhou, "reasons", value);
                status.push_reason(Reason::OtherConcern);
            }
        }
    }
    status.provisional = body.location_off;
    if let Some(t) = &body.update_time {
        status.as_of = Some(
            parse_shanghai_local(t, TIME_FORMAT)
                .ok_or_else(|| AdapterError::invalid_response("unparseable updateTime"))?,
        );
    }
    status.holder = Holder {
        name_masked: body.xm_masked.as_deref().map(|n| keep_or_mask(n, mask_name)),
        id_type: body.sfzh_masked.as_ref().map(|_| IdType::ResidentId),
        id_masked: body.sfzh_masked.as_deref().map(|n| keep_or_mask(n, mask_id)),
    };
    Ok(status)
}

impl HuzhouAdapter {
    /// Builds the adapter and its HTTP client.
    pub fn new(config: HuzhouConfig) -> Result<Self, ClientBuildError> {
        let client = build_client(&config.upstream)?;
        Ok(HuzhouAdapter { config, client })
    }

    fn deadline(&self) -> Duration {
        self.config.upstream.deadline
    }
}

#[async_trait]
impl RegionAdapter for HuzhouAdapter {
    fn region(&self) -> RegionId {
        RegionId::Huzhou
    }

    fn supports_id_type(&self, id_type: IdType) -> bool {
        id_type == IdType::ResidentId
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let form = request_body(subject)?;
        let resp = self
            .client
            .post(self.config.upstream.url(QUERY_PATH))
            .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.config.token.expose()),
            )
            .body(form)
            .send()
            .await
            .map_err(|e| transport_error(&e, self.deadline()))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes =
            read_body_limited(resp, self.config.upstream.max_body_bytes, self.deadline()).await?;
        let answer = parse_answer(status, &headers, &bytes, subject.id_type())?;
        normalise(&answer)
    }
}

/// Huzhou's credentials (`[regions.huzhou.auth]`): static bearer token.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuzhouAuth {
    /// `Authorization: Bearer …`.
    pub token: crate::secret::SecretRef,
}

impl crate::spec::Credentials for HuzhouAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        self.token.resolve_against(base);
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        vec![("token", &self.token)]
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    _built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<HuzhouAuth>(creds)?;
    let adapter = HuzhouAdapter::new(HuzhouConfig {
        upstream,
        token: crate::spec::load_secret(&a.token)?,
    })
    .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Huzhou: `parse_answer` then `normalise`.
pub fn decode(
    answer: &RawAnswer,
    ctx: &DecodeContext<'_>,
) -> Result<HealthStatus, AdapterError> {
    let parsed = parse_answer(
        crate::decode::http_status(answer)?,
        &answer.headers,
        &answer.body,
        ctx.id_type,
    )?;
    normalise(&parsed)
}

/// 湖州健康码 Huzhou Health Code's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Huzhou,
    jurisdiction: "zhejiang/huzhou",
    published_rate_per_s: 100,
    agreed_deadline: std::time::Duration::from_secs(2),
    display_name: "湖州健康码 Huzhou Health Code",
    qr: crate::spec::QrFormat {
        prefix: "HUZJKM-",
        min_len: 24,
        max_len: 24,
        alphabet: crate::spec::Alphabet::LowerHex,
        example: "HUZJKM-9a8b7c6d5e4f3a2b1c0d9e8f",
    },
    depends_on: &[],
    parse_credentials: crate::spec::parse_credentials::<HuzhouAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Identity;
    use crate::model::Color;

    fn answer(json: &str) -> HuzhouResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn contract_example_is_yellow() {
        let s = normalise(&answer(
            r#"{"status":200,"msg":"success","body":{"qrColor":"2","riskLevel":"MEDIUM",
            "whitelist":false,"reasons":["MEDIUM_RISK_AREA"],"locationOff":false,
            "updateTime":"2020/02/16 09:00:00","xmMasked":"孙*","sfzhMasked":"3305**********4321"}}"#,
        ))
        .unwrap();
        assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
        assert_eq!(s.reasons, vec![Reason::MediumRiskAreaArrival]);
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-02-16T09:00:00+08:00");
        assert_eq!(s.holder.name_masked.as_deref(), Some("孙*"));
        assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
        assert!(!s.provisional);
        assert_eq!(s.source.code, "2");
    }

    #[test]
    fn every_colour_reason_whitelist_and_location_off() {
        for (c, level) in [
            ("1", Level::Clear),
            ("2", Level::Monitoring),
            ("3", Level::Quarantine),
            ("0", Level::Unknown),
            ("4", Level::Unknown),
            ("GREEN", Level::Unknown),
        ] {
            let s = normalise(&answer(&format!(
                r#"{{"status":200,"body":{{"qrColor":"{c}","whitelist":false,"locationOff":false}}}}"#
            )))
            .unwrap();
            assert_eq!(s.level, level, "{c}");
        }
        for (v, r) in [
            ("CONFIRMED", Reason::ConfirmedCase),
            ("SUSPECTED", Reason::SuspectedCase),
            ("CONTACT", Reason::CloseContact),
            ("HUBEI", Reason::HighRiskAreaArrival),
            ("HIGH_RISK_AREA", Reason::HighRiskAreaArrival),
            ("MEDIUM_RISK_AREA", Reason::MediumRiskAreaArrival),
            ("SYMPTOMS", Reason::SelfReportedSymptoms),
            ("WHITELIST", Reason::Whitelisted),
            ("OTHER", Reason::OtherConcern),
            ("NEW_THING", Reason::OtherConcern),
        ] {
            let s = normalise(&answer(&format!(
                r#"{{"status":200,"body":{{"qrColor":"3","reasons":["{v}"],"whitelist":false,"locationOff":false}}}}"#
            )))
            .unwrap();
            assert_eq!(s.reasons, vec![r], "{v}");
        }
        let s = normalise(&answer(
            r#"{"status":200,"body":{"qrColor":"1","whitelist":true,"locationOff":true}}"#,
        ))
        .unwrap();
        assert_eq!(s.reasons, vec![Reason::Whitelisted]);
        assert!(s.provisional);
        assert_eq!(s.color, Color::Green, "locationOff keeps the colour");
        assert!(
            !serde_json::to_string(&s).unwrap().contains("provisional"),
            "internal field"
        );
        // Both flags are required booleans.
        for body in [
            r#"{"status":200,"body":{"qrColor":"1","locationOff":false}}"#,
            r#"{"status":200,"body":{"qrColor":"1","whitelist":false}}"#,
            r#"{"status":200,"body":{"qrColor":"1","whitelist":null,"locationOff":false}}"#,
            r#"{"status":200,"body":{"qrColor":"1","whitelist":false,"locationOff":"false"}}"#,
        ] {
            assert!(
                serde_json::from_str::<HuzhouResponse>(body).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn statuses_map_to_gateway_errors() {
        let h = HeaderMap::new();
        let code = |s: u16, id: Option<IdType>| {
            parse_answer(StatusCode::from_u16(s).unwrap(), &h, b"{}", id)
                .unwrap_err()
                .code()
        };
        use crate::error::AdapterCode::*;
        assert_eq!(code(401, None), RegionUnavailable);
        assert_eq!(code(404, None), SubjectNotFound);
        assert_eq!(code(410, None), TokenExpired);
        assert_eq!(code(422, Some(IdType::ResidentId)), UnsupportedIdType);
        assert_eq!(code(429, None), UpstreamRateLimited);
        assert_eq!(code(500, None), RegionUnavailable);
        assert_eq!(code(418, None), UpstreamInvalidResponse);
        assert!(normalise(&answer(r#"{"status":404}"#)).is_err());
        assert!(normalise(&answer(r#"{"status":200}"#)).is_err());
    }

    #[test]
    fn form_bodies_and_id_types() {
        assert_eq!(
            request_body(&Subject::QrToken("9a8b7c6d5e4f3a2b1c0d9e8f".into())).unwrap(),
            "type=qr&content=9a8b7c6d5e4f3a2b1c0d9e8f"
        );
        let id = |id_type| {
            Subject::Identity(Identity {
                id_type,
                id_number: "33050219900101432X".into(),
                name: "孙 悟空&".into(),
            })
        };
        assert_eq!(
            request_body(&id(IdType::ResidentId)).unwrap(),
            "type=id&sfzh=33050219900101432X&xm=%E5%AD%99+%E6%82%9F%E7%A9%BA%26"
        );
        for t in [
            IdType::Passport,
            IdType::HkMacaoPermit,
            IdType::TaiwanPermit,
        ] {
            assert_eq!(
                request_body(&id(t)).unwrap_err(),
                AdapterError::UnsupportedIdType(t)
            );
        }
    }
}
