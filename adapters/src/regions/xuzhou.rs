//! Region `xuzhou` — 徐州健康宝 Xuzhou Health Treasure (`shared/spec/regions/xuzhou.md`).
//!
//! Transport: `GET /xzjkb/v1/qr/{token}/status` or
//! `GET /xzjkb/v1/person/status?idCard=…&name=…` with `X-Api-Key`. Domain: [`normalise`]
//! maps a parsed answer to a [`HealthStatus`] with no network. Colours follow Sukang's
//! rules (`GREEN`/`YELLOW`/`RED`; anything else is `unknown`).
//!
//! Decisions (contract gaps):
//! - Resident identity cards only: other identity types are refused with
//!   `unsupported_id_type` before any call; `errcode 40004` is `unsupported_id_type`
//!   too (reported with the looked-up type, or `passport` for a QR lookup).
//! - `errcode 40001` is `upstream_invalid_response`: the adapter only sends well-formed
//!   requests (the gateway validates resident ids first), so the region is at fault.
//! - `50001` (系统繁忙) and HTTP 5xx are `region_unavailable`, retryable once; HTTP 401 or
//!   `40101` are refused credentials (alert); an unknown `errcode` or an unlisted HTTP
//!   status breaks the contract.
//! - `entryRegistration`: `required && !completed` → action `register_on_arrival`. When
//!   the object or one of its flags is missing the registration is not known to be done,
//!   so the action is added too (fail safe); only `required: false` (with `completed`
//!   present) or `required: true, completed: true` omit it.
//!
//! ## Fallback to Sukang
//! With `fallback_to_sukang` on and a Sukang adapter given, an **identity** lookup (never
//! a QR lookup) falls back to Sukang when Xuzhou is unavailable, meaning the Xuzhou call
//! ended in `region_unavailable` *without* a credentials refusal (busy, 5xx, connection
//! failure) or in `region_timeout`. Refused credentials are not masked by a fallback (the
//! alert must surface); throttling, invalid answers and answers about the subject are
//! returned as they are. The fallback status keeps `region: xuzhou`, carries Sukang's
//! colour, level, reasons, actions, time and holder, has `source.code` = Sukang's raw
//! colour and `source.label` = [`FALLBACK_LABEL`], and always gets the action
//! `register_on_arrival` (meaning "arrival registration not known to be done"), so the
//! recognition decision is at best `manual_check`. It is also marked
//! [`HealthStatus::provisional`] so the gateway caches it only briefly. When Sukang fails
//! too, the original Xuzhou error is returned.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::adapter::{RegionAdapter, Subject};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{keep_or_mask, mask_id, mask_name};
use crate::model::{Action, HealthStatus, Holder, IdType, Level, RegionId, Source};
use crate::secret::Secret;
use crate::time::parse_rfc3339;
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, parse_json_answer, read_body_limited,
    retry_after, transport_error,
};

/// The API key header.
pub const HEADER_API_KEY: &str = "X-Api-Key";
/// The `source.label` of a status obtained from Sukang because Xuzhou was unavailable.
pub const FALLBACK_LABEL: &str = "苏康码 (fallback: 徐州健康宝 unavailable)";

/// How to reach and authenticate to the Xuzhou Health Treasure API.
#[derive(Clone, Debug)]
pub struct XuzhouConfig {
    /// Base URL, deadline, body limit, TLS.
    pub upstream: UpstreamConfig,
    /// The API key issued to the federation (`X-Api-Key`).
    pub api_key: Secret,
    /// Whether identity lookups fall back to Sukang when Xuzhou is unavailable (off by
    /// default in configuration).
    pub fallback_to_sukang: bool,
}

/// The Xuzhou Health Treasure adapter (with the optional Sukang fallback).
pub struct XuzhouAdapter {
    config: XuzhouConfig,
    client: reqwest::Client,
    sukang: Option<Arc<dyn RegionAdapter>>,
}

/// The answer envelope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct XuzhouResponse {
    /// 0 on success, else an error code.
    pub errcode: i64,
    /// A human message (never logged or copied into errors).
    #[serde(default)]
    pub errmsg: Option<String>,
    /// The status, for errcode 0.
    #[serde(default)]
    pub data: Option<XuzhouData>,
}

/// The status part of an answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct XuzhouData {
    /// The relayed Sukang code.
    pub skm: Skm,
    /// Arrival registration (入徐登记).
    #[serde(default)]
    pub entry_registration: Option<EntryRegistration>,
    /// The masked name.
    #[serde(default)]
    pub masked_name: Option<String>,
    /// The masked identity card number.
    #[serde(default)]
    pub masked_id_card: Option<String>,
}

/// The relayed Sukang code.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skm {
    /// `GREEN`, `YELLOW` or `RED`.
    pub color: String,
    /// RFC 3339 with offset.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Arrival registration state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EntryRegistration {
    /// Whether arrival registration is required.
    #[serde(default)]
    pub required: Option<bool>,
    /// Whether it is done.
    #[serde(default)]
    pub completed: Option<bool>,
}

/// The level and label of a `skm.color` value; `None` for an unlisted value.
pub fn level_of(color: &str) -> Option<(Level, &'static str)> {
    match color {
        "GREEN" => Some((Level::Clear, "绿码")),
        "YELLOW" => Some((Level::Monitoring, "黄码")),
        "RED" => Some((Level::Quarantine, "红码")),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (UTF-8).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The path and query of a lookup; `Err` for identity types the region does not serve.
pub fn request_path(subject: &Subject) -> Result<String, AdapterError> {
    match subject {
        Subject::QrToken(token) => Ok(format!("/xzjkb/v1/qr/{}/status", percent_encode(token))),
        Subject::Identity(id) if id.id_type == IdType::ResidentId => Ok(format!(
            "/xzjkb/v1/person/status?idCard={}&name={}",
            percent_encode(&id.id_number),
            percent_encode(&id.name)
        )),
        Subject::Identity(id) => Err(AdapterError::UnsupportedIdType(id.id_type)),
    }
}

/// Checks the HTTP status and content type and parses the envelope.
pub fn parse_answer(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<XuzhouResponse, AdapterError> {
    match status.as_u16() {
        200 => {}
        401 | 403 => {
            return Err(AdapterError::credentials_refused(format!(
                "HTTP {}: API key refused",
                status.as_u16()
            )));
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

/// Maps a parsed answer to the common model (pure). `retry_after` is the answer's
/// `Retry-After` (for `42901`); `id_type` the looked-up identity type (`None` for QR).
pub fn normalise(
    answer: &XuzhouResponse,
    retry_after: Option<Duration>,
    id_type: Option<IdType>,
) -> Result<HealthStatus, AdapterError> {
    match answer.errcode {
        0 => {}
        40001 => {
            return Err(AdapterError::invalid_response(
                "errcode 40001 for a well-formed request",
            ));
        }
        40004 => {
            return Err(AdapterError::UnsupportedIdType(
                id_type.unwrap_or(IdType::Passport),
            ));
        }
        40101 => return Err(AdapterError::credentials_refused("errcode 40101")),
        40401 => return Err(AdapterError::SubjectNotFound),
        41001 => return Err(AdapterError::TokenExpired),
        42901 => return Err(AdapterError::RateLimited { retry_after }),
        50001 => return Err(AdapterError::unavailable_retryable("errcode 50001")),
        _ => return Err(AdapterError::invalid_response("unknown errcode")),
    }
    let data = answer
        .data
        .as_ref()
        .ok_or_else(|| AdapterError::invalid_response("errcode 0 without data"))?;
    let color = &data.skm.color;
    let mut status = match level_of(color) {
        Some((level, label)) => HealthStatus::new(
            RegionId::Xuzhou,
            level,
            Source {
                code: color.clone(),
                label: Some(label.to_owned()),
            },
        ),
        None => {
            record_unmapped(RegionId::Xuzhou, "skm.color", color);
            HealthStatus::new(
                RegionId::Xuzhou,
                Level::Unknown,
                Source {
                    code: color.clone(),
                    label: None,
                },
            )
        }
    };
    if let Some(t) = &data.skm.updated_at {
        status.as_of = Some(
            parse_rfc3339(t)
                .ok_or_else(|| AdapterError::invalid_response("unparseable skm.updatedAt"))?,
        );
    }
    // Both flags decide the action, so both must be there: `required: false` without
    // `completed` is an incomplete answer (found by the fuzz target answer_xuzhou).
    let registration_known_not_pending = matches!(
        &data.entry_registration,
        Some(EntryRegistration {
            required: Some(false),
            completed: Some(_),
        }) | Some(EntryRegistration {
            required: Some(true),
            completed: Some(true),
        })
    );
    if !registration_known_not_pending {
        status.push_action(Action::RegisterOnArrival);
    }
    status.holder = Holder {
        name_masked: data.masked_name.as_deref().map(|n| keep_or_mask(n, mask_name)),
        id_type: data.masked_id_card.as_ref().map(|_| IdType::ResidentId),
        id_masked: data.masked_id_card.as_deref().map(|n| keep_or_mask(n, mask_id)),
    };
    Ok(status)
}

/// Whether a Xuzhou failure allows the Sukang fallback: the region is unavailable
/// (not because our credentials were refused) or timed out.
pub fn allows_fallback(err: &AdapterError) -> bool {
    matches!(
        err,
        AdapterError::Unavailable {
            credentials: false,
            ..
        } | AdapterError::Timeout(_)
    )
}

/// Turns a Sukang status into the Xuzhou fallback status (see the module docs).
pub fn fallback_status(sukang: HealthStatus) -> HealthStatus {
    let mut status = sukang;
    status.region = RegionId::Xuzhou;
    status.source.label = Some(FALLBACK_LABEL.to_owned());
    status.push_action(Action::RegisterOnArrival);
    status.provisional = true;
    status
}

impl XuzhouAdapter {
    /// Builds the adapter and its HTTP client; `sukang` is the adapter used for the
    /// fallback (only when `config.fallback_to_sukang`).
    pub fn new(
        config: XuzhouConfig,
        sukang: Option<Arc<dyn RegionAdapter>>,
    ) -> Result<Self, ClientBuildError> {
        let client = build_client(&config.upstream)?;
        Ok(XuzhouAdapter {
            config,
            client,
            sukang,
        })
    }

    async fn own_status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let path = request_path(subject)?;
        let deadline = self.config.upstream.deadline;
        let resp = self
            .client
            .get(self.config.upstream.url(&path))
            .header(HEADER_API_KEY, self.config.api_key.expose())
            .send()
            .await
            .map_err(|e| transport_error(&e, deadline))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_body_limited(resp, self.config.upstream.max_body_bytes, deadline).await?;
        let answer = parse_answer(status, &headers, &bytes)?;
        normalise(&answer, retry_after(&headers), subject.id_type())
    }
}

#[async_trait]
impl RegionAdapter for XuzhouAdapter {
    fn region(&self) -> RegionId {
        RegionId::Xuzhou
    }

    fn supports_id_type(&self, id_type: IdType) -> bool {
        id_type == IdType::ResidentId
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let err = match self.own_status(subject).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let sukang = match (&self.sukang, subject) {
            (Some(sukang), Subject::Identity(_))
                if self.config.fallback_to_sukang && allows_fallback(&err) =>
            {
                sukang
            }
            _ => return Err(err),
        };
        tracing::info!(
            region = "xuzhou",
            "Xuzhou unavailable: falling back to Sukang"
        );
        match sukang.status(subject).await {
            Ok(s) => Ok(fallback_status(s)),
            Err(_) => Err(err),
        }
    }
}

/// Xuzhou's credentials (`[regions.xuzhou.auth]`): API key, optional fallback to Sukang.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XuzhouAuth {
    /// `X-Api-Key`.
    pub api_key: crate::secret::SecretRef,
    /// Fall back to Sukang for identity lookups when Xuzhou is unavailable.
    #[serde(default)]
    pub fallback_to_sukang: bool,
}

impl crate::spec::Credentials for XuzhouAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        self.api_key.resolve_against(base);
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        vec![("api_key", &self.api_key)]
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<XuzhouAuth>(creds)?;
    let fallback = if a.fallback_to_sukang {
        built.get(&RegionId::Sukang).cloned()
    } else {
        None
    };
    let adapter = XuzhouAdapter::new(
        XuzhouConfig {
            upstream,
            api_key: crate::spec::load_secret(&a.api_key)?,
            fallback_to_sukang: a.fallback_to_sukang,
        },
        fallback,
    )
    .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Xuzhou (its own answer; the Sukang fallback is the adapter's, not the answer's).
pub fn decode(
    answer: &RawAnswer,
    ctx: &DecodeContext<'_>,
) -> Result<HealthStatus, AdapterError> {
    let parsed = parse_answer(crate::decode::http_status(answer)?, &answer.headers, &answer.body)?;
    normalise(&parsed, retry_after(&answer.headers), ctx.id_type)
}

/// 徐州健康宝 Xuzhou Health Treasure's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Xuzhou,
    jurisdiction: "jiangsu/xuzhou",
    published_rate_per_s: 100,
    agreed_deadline: std::time::Duration::from_secs(2),
    display_name: "徐州健康宝 Xuzhou Health Treasure",
    qr: crate::spec::QrFormat {
        prefix: "XZJKB:",
        min_len: 32,
        max_len: 32,
        alphabet: crate::spec::Alphabet::LowerHex,
        example: "XZJKB:0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f",
    },
    depends_on: &[RegionId::Sukang],
    parse_credentials: crate::spec::parse_credentials::<XuzhouAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Identity;
    use crate::model::Color;

    fn answer(json: &str) -> XuzhouResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn contract_example() {
        let s = normalise(
            &answer(
                r#"{"errcode":0,"errmsg":"ok","data":{
                "skm":{"color":"GREEN","updatedAt":"2022-03-18T21:13:06+08:00"},
                "entryRegistration":{"required":true,"completed":false},
                "maskedName":"刘*","maskedIdCard":"3203**********0021"}}"#,
            ),
            None,
            None,
        )
        .unwrap();
        assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
        assert_eq!(s.actions, vec![Action::RegisterOnArrival]);
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-03-18T21:13:06+08:00");
        assert_eq!(s.holder.name_masked.as_deref(), Some("刘*"));
        assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
    }

    #[test]
    fn colours_and_registration() {
        for (c, level) in [
            ("GREEN", Level::Clear),
            ("YELLOW", Level::Monitoring),
            ("RED", Level::Quarantine),
            ("green", Level::Unknown),
            ("BLUE", Level::Unknown),
        ] {
            let s = normalise(
                &answer(&format!(
                    r#"{{"errcode":0,"data":{{"skm":{{"color":"{c}"}},"entryRegistration":{{"required":false,"completed":false}}}}}}"#
                )),
                None,
                None,
            )
            .unwrap();
            assert_eq!(s.level, level, "{c}");
            assert!(s.actions.is_empty());
        }
        for (reg, action) in [
            (r#"{"required":true,"completed":false}"#, true),
            (r#"{"required":true,"completed":true}"#, false),
            (r#"{"required":false,"completed":false}"#, false),
            (r#"{"required":true}"#, true),
            (r#"{"required":false}"#, true),
            (r#"{}"#, true),
            ("null", true),
        ] {
            let s = normalise(
                &answer(&format!(
                    r#"{{"errcode":0,"data":{{"skm":{{"color":"GREEN"}},"entryRegistration":{reg}}}}}"#
                )),
                None,
                None,
            )
            .unwrap();
            assert_eq!(
                s.actions.contains(&Action::RegisterOnArrival),
                action,
                "{reg}"
            );
        }
    }

    #[test]
    fn every_errcode() {
        let err = |code: i64| {
            normalise(
                &answer(&format!(r#"{{"errcode":{code}}}"#)),
                Some(Duration::from_secs(5)),
                Some(IdType::ResidentId),
            )
            .unwrap_err()
        };
        use crate::error::AdapterCode::*;
        assert_eq!(err(40001).code(), UpstreamInvalidResponse);
        assert_eq!(
            err(40004),
            AdapterError::UnsupportedIdType(IdType::ResidentId)
        );
        assert!(matches!(
            err(40101),
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        ));
        assert_eq!(err(40401).code(), SubjectNotFound);
        assert_eq!(err(41001).code(), TokenExpired);
        assert_eq!(err(42901).retry_after(), Some(Duration::from_secs(5)));
        assert!(err(50001).is_retryable());
        assert_eq!(err(12345).code(), UpstreamInvalidResponse);
        assert_eq!(err(0).code(), UpstreamInvalidResponse);
    }

    #[test]
    fn request_paths_and_fallback_rules() {
        assert_eq!(
            request_path(&Subject::QrToken("0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f".into())).unwrap(),
            "/xzjkb/v1/qr/0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f/status"
        );
        let id = |t| {
            Subject::Identity(Identity {
                id_type: t,
                id_number: "320302199001010021".into(),
                name: "刘 备".into(),
            })
        };
        assert_eq!(
            request_path(&id(IdType::ResidentId)).unwrap(),
            "/xzjkb/v1/person/status?idCard=320302199001010021&name=%E5%88%98%20%E5%A4%87"
        );
        assert_eq!(
            request_path(&id(IdType::Passport)).unwrap_err(),
            AdapterError::UnsupportedIdType(IdType::Passport)
        );
        assert!(allows_fallback(&AdapterError::unavailable_retryable("x")));
        assert!(allows_fallback(&AdapterError::Timeout(
            Duration::from_secs(2)
        )));
        assert!(!allows_fallback(&AdapterError::credentials_refused("x")));
        assert!(!allows_fallback(&AdapterError::SubjectNotFound));
        assert!(!allows_fallback(&AdapterError::RateLimited {
            retry_after: None
        }));
        assert!(!allows_fallback(&AdapterError::invalid_response("x")));
    }
}
