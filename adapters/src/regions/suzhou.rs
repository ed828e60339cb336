//! Region `suzhou` — 苏城码 Suzhou Code (`shared/spec/regions/suzhou.md`).
//!
//! Transport: `POST` JSON to `/scm/api/v2/status/qr` or `/scm/api/v2/status/person`, each
//! request signed with HMAC-SHA256 over [`string_to_sign`] and a fresh 32-hex nonce.
//! Domain: [`normalise`] maps a parsed answer (`retCode` + `data`) to a [`HealthStatus`]
//! with no network.
//!
//! Decisions (contract gaps):
//! - `1002`/`1003` are retried once internally with a fresh timestamp and nonce; a second
//!   `1002`/`1003` is `region_unavailable` (not retryable).
//! - `2003` (重新申报) is a status of colour `unknown` with action `redeclare`; its
//!   `source.code` is the `codeStatus` when the region sent data, else `retCode:2003`.
//! - An unknown `retCode` is `upstream_invalid_response`; an unknown `codeStatus` is a
//!   status of colour `unknown` (recorded as unmapped).
//! - HTTP 429 is `upstream_rate_limited` whatever the body; HTTP 503 and other 5xx are
//!   `region_unavailable` (retryable); any other non-200 status is `region_unavailable`.
//! - An unparseable `updateTime` or `isolationEndDate` breaks the contract
//!   (`upstream_invalid_response`); an absent one is simply omitted.

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::adapter::{RegionAdapter, Subject};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{keep_or_mask, mask_id, mask_name};
use crate::model::{Action, HealthStatus, Holder, IdType, Level, Reason, RegionId, Source};
use crate::secret::Secret;
use crate::time::{parse_date, parse_shanghai_local};
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, parse_json_answer, read_body_limited,
    retry_after, transport_error,
};

/// Path of the QR lookup.
pub const QR_PATH: &str = "/scm/api/v2/status/qr";
/// Path of the identity lookup.
pub const PERSON_PATH: &str = "/scm/api/v2/status/person";
/// Header carrying the app id.
pub const HEADER_APP_ID: &str = "X-SCM-AppId";
/// Header carrying the Unix timestamp (seconds).
pub const HEADER_TIMESTAMP: &str = "X-SCM-Timestamp";
/// Header carrying the nonce.
pub const HEADER_NONCE: &str = "X-SCM-Nonce";
/// Header carrying the signature.
pub const HEADER_SIGN: &str = "X-SCM-Sign";
/// The `updateTime` format (Asia/Shanghai local time).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// How to reach and authenticate to the Suzhou Code API.
#[derive(Clone, Debug)]
pub struct SuzhouConfig {
    /// Base URL, deadline, body limit, TLS.
    pub upstream: UpstreamConfig,
    /// The app id issued to the federation (`X-SCM-AppId`).
    pub app_id: String,
    /// The HMAC key issued with the app id.
    pub app_secret: Secret,
}

/// The Suzhou Code adapter.
pub struct SuzhouAdapter {
    config: SuzhouConfig,
    client: reqwest::Client,
}

/// The string S the region signs: six lines joined by `\n`, no trailing newline; the last
/// line is the lowercase hex SHA-256 of the body.
pub fn string_to_sign(
    app_id: &str,
    timestamp: i64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{app_id}\n{timestamp}\n{nonce}\n{method}\n{path_and_query}\n{body_hash}")
}

/// Lowercase hex of HMAC-SHA256(secret, S).
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh nonce: 32 random lowercase hex characters.
pub fn fresh_nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The region's `certType` for an identity type.
pub fn cert_type(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "IDCARD",
        IdType::Passport => "PASSPORT",
        IdType::HkMacaoPermit => "HKMO",
        IdType::TaiwanPermit => "TW",
    }
}

/// The identity type of a region `certType`, when listed.
pub fn id_type_of(cert_type: &str) -> Option<IdType> {
    match cert_type {
        "IDCARD" => Some(IdType::ResidentId),
        "PASSPORT" => Some(IdType::Passport),
        "HKMO" => Some(IdType::HkMacaoPermit),
        "TW" => Some(IdType::TaiwanPermit),
        _ => None,
    }
}

/// The QR lookup body.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QrRequest {
    /// The 32 hex characters after `SCM:`.
    pub qr_token: String,
}

/// The identity lookup body.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonRequest {
    /// `IDCARD`, `PASSPORT`, `HKMO` or `TW`.
    pub cert_type: String,
    /// The document number.
    pub cert_no: String,
    /// The name.
    pub name: String,
}

/// The region's answer envelope.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuzhouResponse {
    /// `0000` on success, else an error code.
    pub ret_code: String,
    /// A human message (never logged or copied into errors).
    #[serde(default)]
    pub ret_msg: Option<String>,
    /// The status, for `0000` (and possibly `2003`).
    #[serde(default)]
    pub data: Option<SuzhouData>,
}

/// The status part of an answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuzhouData {
    /// `G`, `GP`, `Y` or `R`.
    pub code_status: String,
    /// Reason codes (`R11`, `P2`, …).
    #[serde(default)]
    pub reason_codes: Option<Vec<String>>,
    /// `yyyy-MM-dd HH:mm:ss`, Asia/Shanghai.
    #[serde(default)]
    pub update_time: Option<String>,
    /// The masked name.
    #[serde(default)]
    pub name: Option<String>,
    /// The masked document number.
    #[serde(default)]
    pub cert_no_masked: Option<String>,
    /// The document type.
    #[serde(default)]
    pub cert_type: Option<String>,
    /// `LOCAL` / `NONLOCAL` (not used by the model).
    #[serde(default)]
    pub household_type: Option<String>,
    /// `yyyy-MM-dd` or null.
    #[serde(default)]
    pub isolation_end_date: Option<String>,
}

/// The level and label of a `codeStatus` value; `None` for an unlisted value.
pub fn level_of(code_status: &str) -> Option<(Level, &'static str)> {
    match code_status {
        "G" => Some((Level::Clear, "绿码")),
        "GP" => Some((Level::ClearRestricted, "绿码待定")),
        "Y" => Some((Level::Monitoring, "黄码")),
        "R" => Some((Level::Quarantine, "红码")),
        _ => None,
    }
}

/// The reason of a `reasonCodes` value; `None` for an unlisted value.
pub fn reason_of(code: &str) -> Option<Reason> {
    Some(match code {
        "R11" => Reason::ConfirmedCase,
        "R12" => Reason::SuspectedCase,
        "R13" => Reason::AsymptomaticInfection,
        "R14" => Reason::CloseContact,
        "R2" => Reason::FeverClinicObservation,
        "R3" => Reason::RecoveredUnderObservation,
        "R4" => Reason::HighRiskAreaArrival,
        "Y1" => Reason::HouseholdOfObserved,
        "Y2" => Reason::SelfReportedSymptoms,
        "Y3" => Reason::OtherConcern,
        "P1" => Reason::NonresidentWithoutResidence,
        "P2" => Reason::ShortStayVisitor,
        _ => return None,
    })
}

/// Checks the HTTP status and content type and parses the envelope. HTTP 429 is
/// throttling whatever the body says; 5xx is an outage.
pub fn parse_answer(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SuzhouResponse, AdapterError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(AdapterError::RateLimited {
            retry_after: retry_after(headers),
        });
    }
    if status.is_server_error() {
        return Err(AdapterError::unavailable_retryable(format!(
            "HTTP {}",
            status.as_u16()
        )));
    }
    if status != StatusCode::OK {
        return Err(AdapterError::unavailable(format!(
            "HTTP {}",
            status.as_u16()
        )));
    }
    parse_json_answer(headers, body)
}

/// Maps a parsed answer to the common model (pure). `retry_after` is the answer's
/// `Retry-After`, used for `4290`. `1002`/`1003` reaching this function (the retry
/// already failed) are `region_unavailable`.
pub fn normalise(
    answer: &SuzhouResponse,
    retry_after: Option<Duration>,
) -> Result<HealthStatus, AdapterError> {
    match answer.ret_code.as_str() {
        "0000" => {
            let data = answer
                .data
                .as_ref()
                .ok_or_else(|| AdapterError::invalid_response("retCode 0000 without data"))?;
            status_of(data)
        }
        "1001" => Err(AdapterError::credentials_refused(
            "retCode 1001: signature refused",
        )),
        "1002" => Err(AdapterError::unavailable(
            "retCode 1002: timestamp refused twice",
        )),
        "1003" => Err(AdapterError::unavailable(
            "retCode 1003: nonce refused twice",
        )),
        "2001" => Err(AdapterError::SubjectNotFound),
        "2002" => Err(AdapterError::TokenExpired),
        "2003" => Ok(redeclare(answer.data.as_ref())?),
        "4290" => Err(AdapterError::RateLimited { retry_after }),
        "9999" => Err(AdapterError::unavailable_retryable("retCode 9999")),
        _ => Err(AdapterError::invalid_response("unknown retCode")),
    }
}

fn source(code: &str, label: Option<&str>) -> Source {
    Source {
        code: code.to_owned(),
        label: label.map(str::to_owned),
    }
}

/// Fills the fields that do not depend on the colour.
fn fill_common(status: &mut HealthStatus, data: &SuzhouData) -> Result<(), AdapterError> {
    if let Some(t) = &data.update_time {
        status.as_of = Some(
            parse_shanghai_local(t, TIME_FORMAT)
                .ok_or_else(|| AdapterError::invalid_response("unparseable updateTime"))?,
        );
    }
    if let Some(d) = &data.isolation_end_date {
        status.quarantine_until = Some(
            parse_date(d)
                .ok_or_else(|| AdapterError::invalid_response("unparseable isolationEndDate"))?,
        );
    }
    status.holder = Holder {
        name_masked: data.name.as_deref().map(|n| keep_or_mask(n, mask_name)),
        id_type: data.cert_type.as_deref().and_then(id_type_of),
        id_masked: data.cert_no_masked.as_deref().map(|n| keep_or_mask(n, mask_id)),
    };
    Ok(())
}

fn status_of(data: &SuzhouData) -> Result<HealthStatus, AdapterError> {
    let mut status = match level_of(&data.code_status) {
        Some((level, label)) => HealthStatus::new(
            RegionId::Suzhou,
            level,
            source(&data.code_status, Some(label)),
        ),
        None => {
            record_unmapped(RegionId::Suzhou, "codeStatus", &data.code_status);
            HealthStatus::new(
                RegionId::Suzhou,
                Level::Unknown,
                source(&data.code_status, None),
            )
        }
    };
    for code in data.reason_codes.iter().flatten() {
        match reason_of(code) {
            Some(r) => status.push_reason(r),
            None => {
                record_unmapped(RegionId::Suzhou, "reasonCodes", code);
                status.push_reason(Reason::OtherConcern);
            }
        }
    }
    fill_common(&mut status, data)?;
    Ok(status)
}

/// `2003`: colour unknown, the holder must redeclare.
fn redeclare(data: Option<&SuzhouData>) -> Result<HealthStatus, AdapterError> {
    let code = data.map_or("retCode:2003", |d| d.code_status.as_str());
    let mut status = HealthStatus::new(
        RegionId::Suzhou,
        Level::Unknown,
        source(code, Some("信息填错, 重新申报")),
    );
    status.push_action(Action::Redeclare);
    if let Some(d) = data {
        fill_common(&mut status, d)?;
    }
    Ok(status)
}

impl SuzhouAdapter {
    /// Builds the adapter and its HTTP client.
    pub fn new(config: SuzhouConfig) -> Result<Self, ClientBuildError> {
        let client = build_client(&config.upstream)?;
        Ok(SuzhouAdapter { config, client })
    }

    /// One signed call; returns the parsed envelope and its `Retry-After`.
    async fn call_once(
        &self,
        path: &str,
        body: &[u8],
    ) -> Result<(SuzhouResponse, Option<Duration>), AdapterError> {
        let url = reqwest::Url::parse(&self.config.upstream.url(path))
            .map_err(|_| AdapterError::unavailable("the configured base URL is invalid"))?;
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let timestamp = chrono::Utc::now().timestamp();
        let nonce = fresh_nonce();
        let s = string_to_sign(
            &self.config.app_id,
            timestamp,
            &nonce,
            "POST",
            &path_and_query,
            body,
        );
        let signature = sign(self.config.app_secret.expose(), &s);
        let deadline = self.config.upstream.deadline;
        let resp = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .header(HEADER_APP_ID, &self.config.app_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_NONCE, &nonce)
            .header(HEADER_SIGN, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| transport_error(&e, deadline))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_body_limited(resp, self.config.upstream.max_body_bytes, deadline).await?;
        let answer = parse_answer(status, &headers, &bytes)?;
        Ok((answer, retry_after(&headers)))
    }
}

#[async_trait]
impl RegionAdapter for SuzhouAdapter {
    fn region(&self) -> RegionId {
        RegionId::Suzhou
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let (path, body) = match subject {
            Subject::QrToken(token) => (
                QR_PATH,
                serde_json::to_vec(&QrRequest {
                    qr_token: token.clone(),
                }),
            ),
            Subject::Identity(id) => (
                PERSON_PATH,
                serde_json::to_vec(&PersonRequest {
                    cert_type: cert_type(id.id_type).to_owned(),
                    cert_no: id.id_number.clone(),
                    name: id.name.clone(),
                }),
            ),
        };
        let body = body.map_err(|_| AdapterError::InvalidRequest("unencodable subject".into()))?;
        let (mut answer, mut wait) = self.call_once(path, &body).await?;
        if matches!(answer.ret_code.as_str(), "1002" | "1003") {
            // Fresh timestamp and nonce, once.
            (answer, wait) = self.call_once(path, &body).await?;
        }
        normalise(&answer, wait)
    }
}

/// Suzhou's credentials (`[regions.suzhou.auth]`): HMAC request signing.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuzhouAuth {
    /// `X-SCM-AppId`.
    pub app_id: String,
    /// The HMAC key.
    pub app_secret: crate::secret::SecretRef,
}

impl crate::spec::Credentials for SuzhouAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        self.app_secret.resolve_against(base);
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        vec![("app_secret", &self.app_secret)]
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    _built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<SuzhouAuth>(creds)?;
    let adapter = SuzhouAdapter::new(SuzhouConfig {
        upstream,
        app_id: a.app_id.clone(),
        app_secret: crate::spec::load_secret(&a.app_secret)?,
    })
    .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Suzhou: `parse_answer` then `normalise` with the answer's `Retry-After`.
pub fn decode(answer: &RawAnswer, _: &DecodeContext<'_>) -> Result<HealthStatus, AdapterError> {
    let parsed = parse_answer(crate::decode::http_status(answer)?, &answer.headers, &answer.body)?;
    normalise(&parsed, retry_after(&answer.headers))
}

/// 苏城码 Suzhou Code's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Suzhou,
    jurisdiction: "jiangsu/suzhou",
    published_rate_per_s: 200,
    agreed_deadline: std::time::Duration::from_secs(2),
    display_name: "苏城码 Suzhou Code",
    qr: crate::spec::QrFormat {
        prefix: "SCM:",
        min_len: 32,
        max_len: 32,
        alphabet: crate::spec::Alphabet::LowerHex,
        example: "SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8",
    },
    depends_on: &[],
    parse_credentials: crate::spec::parse_credentials::<SuzhouAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Color;

    fn answer(json: &str) -> SuzhouResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn string_to_sign_reproduces_the_contract_example() {
        let body = br#"{"qrToken":"5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8"}"#;
        let s = string_to_sign(
            "hcgw-test",
            1583112000,
            "00112233445566778899aabbccddeeff",
            "POST",
            "/scm/api/v2/status/qr",
            body,
        );
        assert_eq!(
            s,
            "hcgw-test\n1583112000\n00112233445566778899aabbccddeeff\nPOST\n\
             /scm/api/v2/status/qr\n\
             1a88ff0e2a8b84906000f0eb8b08191aabd3ae57c8fb701438bbb7b15c2ed2d3"
        );
        assert!(!s.ends_with('\n'));
        let sig = sign("s3cr3t", &s);
        assert_eq!(sig, sign("s3cr3t", &s), "deterministic");
        assert_eq!(sig.len(), 64);
        assert!(sig.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        // Cross-checked with `openssl dgst -sha256 -hmac s3cr3t`.
        assert_eq!(
            sig,
            "5978df089c3eae63da6f9c9da3297b4db8884760225e287cad946ac985b4defe"
        );
        assert_ne!(sig, sign("s3cr3u", &s));
    }

    #[test]
    fn nonces_are_fresh_32_hex() {
        let a = fresh_nonce();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert_ne!(a, fresh_nonce());
    }

    #[test]
    fn cert_types_round_trip() {
        for t in [
            IdType::ResidentId,
            IdType::Passport,
            IdType::HkMacaoPermit,
            IdType::TaiwanPermit,
        ] {
            assert_eq!(id_type_of(cert_type(t)), Some(t));
        }
        assert_eq!(cert_type(IdType::HkMacaoPermit), "HKMO");
        assert_eq!(cert_type(IdType::TaiwanPermit), "TW");
    }

    #[test]
    fn contract_example_is_green_pending() {
        let s = normalise(
            &answer(
                r#"{"retCode":"0000","retMsg":"成功","data":{"codeStatus":"GP","reasonCodes":["P2"],
                "updateTime":"2020-03-02 08:15:00","name":"张*","certNoMasked":"3205**********123X",
                "certType":"IDCARD","householdType":"NONLOCAL","isolationEndDate":null}}"#,
            ),
            None,
        )
        .unwrap();
        assert_eq!((s.color, s.level), (Color::Green, Level::ClearRestricted));
        assert_eq!(s.reasons, vec![Reason::ShortStayVisitor]);
        assert_eq!(s.source.code, "GP");
        assert_eq!(s.source.label.as_deref(), Some("绿码待定"));
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-03-02T08:15:00+08:00");
        assert_eq!(s.holder.name_masked.as_deref(), Some("张*"));
        assert_eq!(s.holder.id_masked.as_deref(), Some("3205**********123X"));
        assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
        assert_eq!(s.quarantine_until, None);
    }

    #[test]
    fn every_colour_and_reason() {
        for (code, level) in [
            ("G", Level::Clear),
            ("GP", Level::ClearRestricted),
            ("Y", Level::Monitoring),
            ("R", Level::Quarantine),
            ("g", Level::Unknown),
            ("B", Level::Unknown),
            ("", Level::Unknown),
        ] {
            let s = normalise(
                &answer(&format!(
                    r#"{{"retCode":"0000","data":{{"codeStatus":"{code}"}}}}"#
                )),
                None,
            )
            .unwrap();
            assert_eq!(s.level, level, "{code}");
            assert_eq!(s.color, level.color(), "{code}");
        }
        for (code, reason) in [
            ("R11", Reason::ConfirmedCase),
            ("R12", Reason::SuspectedCase),
            ("R13", Reason::AsymptomaticInfection),
            ("R14", Reason::CloseContact),
            ("R2", Reason::FeverClinicObservation),
            ("R3", Reason::RecoveredUnderObservation),
            ("R4", Reason::HighRiskAreaArrival),
            ("Y1", Reason::HouseholdOfObserved),
            ("Y2", Reason::SelfReportedSymptoms),
            ("Y3", Reason::OtherConcern),
            ("P1", Reason::NonresidentWithoutResidence),
            ("P2", Reason::ShortStayVisitor),
            ("R99", Reason::OtherConcern),
        ] {
            let s = normalise(
                &answer(&format!(
                    r#"{{"retCode":"0000","data":{{"codeStatus":"R","reasonCodes":["{code}"],"isolationEndDate":"2020-03-16"}}}}"#
                )),
                None,
            )
            .unwrap();
            assert_eq!(s.reasons, vec![reason], "{code}");
            assert_eq!(s.quarantine_until.unwrap().to_string(), "2020-03-16");
        }
    }

    #[test]
    fn every_ret_code() {
        let err = |code: &str| {
            normalise(
                &answer(&format!(r#"{{"retCode":"{code}"}}"#)),
                Some(Duration::from_secs(3)),
            )
            .unwrap_err()
        };
        assert!(matches!(
            err("1001"),
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        ));
        assert!(matches!(
            err("1002"),
            AdapterError::Unavailable {
                retryable: false,
                ..
            }
        ));
        assert!(matches!(err("1003"), AdapterError::Unavailable { .. }));
        assert_eq!(err("2001"), AdapterError::SubjectNotFound);
        assert_eq!(err("2002"), AdapterError::TokenExpired);
        assert_eq!(
            err("4290"),
            AdapterError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(err("9999").is_retryable());
        assert!(matches!(err("0001"), AdapterError::InvalidResponse(_)));
        assert!(matches!(err("0000"), AdapterError::InvalidResponse(_)));
        let s = normalise(&answer(r#"{"retCode":"2003"}"#), None).unwrap();
        assert_eq!(s.color, Color::Unknown);
        assert_eq!(s.actions, vec![Action::Redeclare]);
    }

    #[test]
    fn unmasked_values_are_masked_and_bad_times_refused() {
        let s = normalise(
            &answer(
                r#"{"retCode":"0000","data":{"codeStatus":"G","name":"张三","certNoMasked":"32050119900307123X"}}"#,
            ),
            None,
        )
        .unwrap();
        assert_eq!(s.holder.name_masked.as_deref(), Some("张*"));
        assert_eq!(s.holder.id_masked.as_deref(), Some("3205**********123X"));
        let e = normalise(
            &answer(r#"{"retCode":"0000","data":{"codeStatus":"G","updateTime":"2020-03-02T08:15:00"}}"#),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, AdapterError::InvalidResponse(_)));
    }

    #[test]
    fn http_layer_checks_status_and_content_type() {
        let mut json = HeaderMap::new();
        json.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        let ok = br#"{"retCode":"0000","data":{"codeStatus":"G"}}"#;
        assert!(parse_answer(StatusCode::OK, &json, ok).is_ok());
        assert!(matches!(
            parse_answer(StatusCode::OK, &HeaderMap::new(), ok),
            Err(AdapterError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_answer(StatusCode::OK, &json, &ok[..20]),
            Err(AdapterError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_answer(StatusCode::TOO_MANY_REQUESTS, &json, ok),
            Err(AdapterError::RateLimited { .. })
        ));
        assert!(
            parse_answer(StatusCode::SERVICE_UNAVAILABLE, &json, ok)
                .unwrap_err()
                .is_retryable()
        );
    }
}
