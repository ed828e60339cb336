//! Region `guangzhou` — 穗康码 Suikang Code (`shared/spec/regions/guangzhou.md`).
//!
//! - Auth: an `access_token` from `GET /cgi-bin/token` (appid + secret), sent as the
//!   `access_token` query parameter, cached in a single-flight [`TokenCache`]; errcode
//!   `40001`/`42001` → one refresh for all waiting requests and one retry.
//! - Lookup: `POST /suikang/api/code/query` with `{"code_id"}` or `{"id_card","name"}`
//!   (resident ids only); HTTP 200 always, the outcome is in `errcode`.
//! - The trap: **`blue` is the normal self-applied code and `green` the normal code applied
//!   by someone else** (both green/clear; `proxy_applied` false and true). There is no
//!   yellow: anything but `blue`/`green`/`red` is `unknown`.
//! - `update_time` is epoch seconds; `45009` (daily quota) asks us to wait until the next
//!   00:00 Asia/Shanghai.
//!
//! Decisions where the contract is silent (docs in the report):
//! - `blue`/`green` with a non-null `red_category` contradicts itself → `unknown`;
//! - `proxy_applied` of `blue`/`green` follows the colour (the contract's table); of `red`
//!   it follows `apply_mode` (omitted when `apply_mode` is not `self`/`proxy`);
//! - `blue` with an `apply_mode` other than `self`, or `green` with one other than `proxy`
//!   (missing, `null` and unlisted included), contradicts itself → `unknown`;
//! - answers are parsed once, strictly, into typed structs: a duplicate key, a wrong JSON
//!   type or a missing `errcode`/`color` → `upstream_invalid_response`;
//! - an unlisted errcode → `upstream_invalid_response`; token-endpoint errcodes other than
//!   `-1`/`45009`/`45011` → our credentials were refused (`region_unavailable`, alert).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Days, TimeZone, Utc};
use serde_json::{Value, json};

use crate::adapter::{RegionAdapter, Subject};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{mask_id, mask_name};
use crate::model::{Holder, IdType, Level, Reason, RegionId, Source};
use crate::secret::Secret;
use crate::token::{
    Attempt, FetchedToken, RefreshPolicy, Token, TokenCache, lifetime_from_expires_in,
};
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, has_media_type, parse_json_body,
    read_body_limited, retry_after, transport_error,
};
use crate::{HealthStatus, time};
use serde::Deserialize;

/// The token endpoint.
pub const TOKEN_PATH: &str = "/cgi-bin/token";
/// The lookup endpoint.
pub const QUERY_PATH: &str = "/suikang/api/code/query";
/// The contract's deadline for one call.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// How long `45011` (minute quota reached) asks us to wait.
pub const MINUTE_QUOTA_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The contract's red categories and their reasons (`red_category` table).
pub const RED_CATEGORIES: [(&str, Reason); 7] = [
    ("home_quarantine", Reason::HomeQuarantine),
    ("centralized_quarantine", Reason::CentralizedQuarantine),
    ("close_contact", Reason::CloseContact),
    ("suspected", Reason::SuspectedCase),
    ("confirmed", Reason::ConfirmedCase),
    ("nat_positive", Reason::NucleicAcidPositive),
    ("key_area_arrival", Reason::HighRiskAreaArrival),
];

/// How to reach and authenticate to Suikang.
#[derive(Clone, Debug)]
pub struct GuangzhouConfig {
    /// Base URL, deadline (2 s by contract), body limit, TLS.
    pub upstream: UpstreamConfig,
    /// Our appid (`hcgw-dev` against the simulator).
    pub appid: String,
    /// Our app secret.
    pub secret: Secret,
}

/// The Suikang adapter. One per gateway: it owns the shared access-token cache.
#[derive(Debug)]
pub struct GuangzhouAdapter {
    config: GuangzhouConfig,
    client: reqwest::Client,
    tokens: TokenCache,
}

/// What one query answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A status.
    Status(Box<HealthStatus>),
    /// `40001`/`42001`: the access token was rejected.
    TokenRejected,
}

impl GuangzhouAdapter {
    /// Builds the adapter and its HTTP client.
    pub fn new(config: GuangzhouConfig) -> Result<Self, ClientBuildError> {
        GuangzhouAdapter::with_refresh_policy(config, RefreshPolicy::default())
    }

    /// Builds the adapter with a specific token refresh policy.
    pub fn with_refresh_policy(
        config: GuangzhouConfig,
        policy: RefreshPolicy,
    ) -> Result<Self, ClientBuildError> {
        let client = build_client(&config.upstream)?;
        Ok(GuangzhouAdapter {
            config,
            client,
            tokens: TokenCache::new(policy),
        })
    }

    /// How many access-token fetches this adapter has started (for metrics and tests).
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetches()
    }

    async fn fetch_token(&self) -> Result<FetchedToken, AdapterError> {
        let up = &self.config.upstream;
        let resp = self
            .client
            .get(up.url(TOKEN_PATH))
            .query(&[
                ("grant_type", "client_credential"),
                ("appid", self.config.appid.as_str()),
                ("secret", self.config.secret.expose()),
            ])
            .send()
            .await
            .map_err(|e| transport_error(&e, up.deadline))?;
        let body = checked_body(resp, up).await?;
        parse_token_response(&body, Utc::now())
    }

    async fn query(&self, token: &Token, request: &Value) -> Attempt<HealthStatus> {
        let up = &self.config.upstream;
        let sent = self
            .client
            .post(up.url(QUERY_PATH))
            .query(&[("access_token", token.expose())])
            .json(request)
            .send()
            .await;
        let result = match sent {
            Err(e) => Err(transport_error(&e, up.deadline)),
            Ok(resp) => match checked_body(resp, up).await {
                Err(e) => Err(e),
                Ok(body) => match interpret(&body, Utc::now()) {
                    Ok(Answer::TokenRejected) => return Attempt::TokenRejected,
                    Ok(Answer::Status(s)) => Ok(*s),
                    Err(e) => Err(e),
                },
            },
        };
        Attempt::Done(result)
    }
}

/// Checks the HTTP status (200 by contract) and the media type, then reads the body
/// within the size limit.
async fn checked_body(
    resp: reqwest::Response,
    up: &UpstreamConfig,
) -> Result<Vec<u8>, AdapterError> {
    let status = resp.status();
    if status.is_server_error() {
        return Err(AdapterError::unavailable_retryable(format!(
            "http {}",
            status.as_u16()
        )));
    }
    if status.as_u16() == 429 {
        return Err(AdapterError::RateLimited {
            retry_after: retry_after(resp.headers()),
        });
    }
    if status.as_u16() != 200 {
        return Err(AdapterError::invalid_response(format!(
            "unexpected http {}",
            status.as_u16()
        )));
    }
    if !has_media_type(resp.headers(), "application/json") {
        return Err(AdapterError::invalid_response("content type is not JSON"));
    }
    read_body_limited(resp, up.max_body_bytes, up.deadline).await
}

#[async_trait]
impl RegionAdapter for GuangzhouAdapter {
    fn region(&self) -> RegionId {
        RegionId::Guangzhou
    }

    /// Suikang is queried by `id_card` (resident identity card) only.
    fn supports_id_type(&self, id_type: IdType) -> bool {
        id_type == IdType::ResidentId
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let request = match subject {
            Subject::QrToken(token) => json!({ "code_id": token }),
            Subject::Identity(id) if id.id_type == IdType::ResidentId => {
                json!({ "id_card": id.id_number, "name": id.name })
            }
            Subject::Identity(id) => return Err(AdapterError::UnsupportedIdType(id.id_type)),
        };
        self.tokens
            .call(
                || self.fetch_token(),
                |token| {
                    let request = &request;
                    async move { self.query(&token, request).await }
                },
            )
            .await
    }
}

/// The token endpoint's answer: a token and its lifetime, or an `errcode`.
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    /// Absent or `0` on success.
    #[serde(default)]
    pub errcode: Option<i64>,
    /// The opaque token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Lifetime in whole seconds (a non-negative integer; anything else breaks the contract).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A query answer: `errcode` and, with `0`, `code_info`.
#[derive(Debug, Deserialize)]
pub struct QueryAnswer {
    /// `0` on success, else an error code (required).
    pub errcode: i64,
    /// The status, with errcode `0`.
    #[serde(default)]
    pub code_info: Option<CodeInfo>,
}

/// The `code_info` object, the fields the common model uses.
#[derive(Debug, Deserialize)]
pub struct CodeInfo {
    /// `blue`, `green` or `red` (required).
    pub color: String,
    /// `self` or `proxy`.
    #[serde(default)]
    pub apply_mode: Option<String>,
    /// A red category, `null` for the normal codes: `None` when the field is absent,
    /// `Some(None)` for `null` (a normal code needs the explicit `null`).
    #[serde(default, deserialize_with = "present")]
    pub red_category: Option<Option<String>>,
    /// Epoch seconds.
    #[serde(default)]
    pub update_time: Option<i64>,
    /// The masked name.
    #[serde(default)]
    pub name_mask: Option<String>,
    /// The masked identity card number.
    #[serde(default)]
    pub id_mask: Option<String>,
}

/// Reads a field that is present (possibly `null`) as `Some`, so that an absent field
/// (`None`, by `#[serde(default)]`) is told apart from `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The errors Suikang reports the same way on every endpoint (quota, busy).
fn common_error(code: i64, now: DateTime<Utc>) -> Option<AdapterError> {
    match code {
        45011 => Some(AdapterError::RateLimited {
            retry_after: Some(MINUTE_QUOTA_RETRY_AFTER),
        }),
        45009 => Some(AdapterError::RateLimited {
            retry_after: Some(until_next_shanghai_midnight(now)),
        }),
        -1 => Some(AdapterError::unavailable_retryable(
            "errcode -1 (system busy)",
        )),
        _ => None,
    }
}

/// Parses the token endpoint's answer: `{"access_token","expires_in"}`, or an errcode.
/// `expires_in` must be a positive integer; it is capped at [`MAX_TOKEN_LIFETIME`]
/// (`0`, negative, fractional, string or beyond 2^64 − 1 → `upstream_invalid_response`).
///
/// [`MAX_TOKEN_LIFETIME`]: crate::token::MAX_TOKEN_LIFETIME
pub fn parse_token_response(body: &[u8], now: DateTime<Utc>) -> Result<FetchedToken, AdapterError> {
    let answer: TokenAnswer = parse_json_body(body)?;
    match answer.errcode {
        None | Some(0) => {}
        Some(code) => {
            return Err(common_error(code, now).unwrap_or_else(|| {
                AdapterError::credentials_refused(format!("token errcode {code}"))
            }));
        }
    }
    let value = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AdapterError::invalid_response("token answer without access_token"))?;
    let expires_in = answer
        .expires_in
        .ok_or_else(|| AdapterError::invalid_response("token answer without expires_in"))?;
    Ok(FetchedToken {
        value: Secret::new(value),
        lifetime: lifetime_from_expires_in(expires_in)?,
    })
}

/// Interprets a query answer (the raw body): errcode first, then the status. `now` is
/// only used for the daily-quota `Retry-After`.
pub fn interpret(body: &[u8], now: DateTime<Utc>) -> Result<Answer, AdapterError> {
    let answer: QueryAnswer = parse_json_body(body)?;
    match answer.errcode {
        0 => {
            let info = answer
                .code_info
                .ok_or_else(|| AdapterError::invalid_response("errcode 0 without code_info"))?;
            normalise(&info, now).map(|s| Answer::Status(Box::new(s)))
        }
        40001 | 42001 => Ok(Answer::TokenRejected),
        46004 => Err(AdapterError::SubjectNotFound),
        code => Err(common_error(code, now)
            .unwrap_or_else(|| AdapterError::invalid_response(format!("unlisted errcode {code}")))),
    }
}

/// Maps `code_info` to the common status model (no network). `now` bounds a plausible
/// `update_time` (a time in the future by more than a day is dropped, not trusted).
///
/// Fail safe (docs/decisions.md, "Decision fields (fail safe)"): `blue`/`green` need an
/// `apply_mode` that agrees with them (`self`/`proxy`) and `red_category: null`; a missing,
/// `null`, unlisted or contradicting `apply_mode`, or a missing or non-null `red_category`,
/// makes them `unknown`.
pub fn normalise(info: &CodeInfo, now: DateTime<Utc>) -> Result<HealthStatus, AdapterError> {
    let apply_mode = match info.apply_mode.as_deref() {
        Some("self") => Some(false),
        Some("proxy") => Some(true),
        other => {
            record_unmapped(
                RegionId::Guangzhou,
                "apply_mode",
                other.unwrap_or("<missing>"),
            );
            None
        }
    };
    let (level, proxy_applied, label) = match info.color.as_str() {
        // Blue: applied for by the holder, normal.
        "blue" => (Level::Clear, Some(false), Some("蓝码（本人申领）")),
        // Green: applied for by someone else (代为申领), normal — NOT "the" green.
        "green" => (Level::Clear, Some(true), Some("绿码（他人代为申领）")),
        "red" => (Level::Quarantine, apply_mode, Some("红码")),
        other => {
            record_unmapped(RegionId::Guangzhou, "color", other);
            (Level::Unknown, apply_mode, None)
        }
    };
    // A normal colour that carries a red category (or does not say it has none), or whose
    // apply_mode is not the one the colour stands for, contradicts itself: not sure →
    // unknown.
    let category = info.red_category.clone().flatten();
    let level = if level == Level::Clear
        && (info.red_category != Some(None) || apply_mode != proxy_applied)
    {
        Level::Unknown
    } else {
        level
    };
    let mut status = HealthStatus::new(
        RegionId::Guangzhou,
        level,
        Source {
            code: info.color.clone(),
            label: label.map(str::to_owned),
        },
    );
    status.proxy_applied = proxy_applied;
    if let Some(category) = category.as_deref() {
        match RED_CATEGORIES.iter().find(|(k, _)| *k == category) {
            Some((_, reason)) => status.push_reason(*reason),
            None => {
                record_unmapped(RegionId::Guangzhou, "red_category", category);
                status.push_reason(Reason::OtherConcern);
            }
        }
    }
    // Out of chrono's range or implausible: dropped, so the decision is manual_check.
    status.as_of = info
        .update_time
        .and_then(time::from_epoch_seconds)
        .filter(|t| plausible(t.with_timezone(&Utc), now));
    status.holder = Holder {
        name_masked: info.name_mask.as_deref().map(mask_name),
        id_type: info.id_mask.as_ref().map(|_| IdType::ResidentId),
        id_masked: info.id_mask.as_deref().map(mask_id),
    };
    Ok(status)
}

/// An update time is plausible from 2020 (the first health codes) to one day ahead.
fn plausible(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let earliest = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single();
    earliest.is_some_and(|e| t >= e) && t <= now + chrono::Duration::days(1)
}

/// How long until the next 00:00 Asia/Shanghai after `now` (a full day at exactly
/// midnight), rounded up to whole seconds: the `Retry-After` of `45009` (daily quota).
pub fn until_next_shanghai_midnight(now: DateTime<Utc>) -> Duration {
    let local = now.with_timezone(&time::shanghai());
    let next_midnight = local
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| time::shanghai().from_local_datetime(&t).single());
    let Some(next) = next_midnight else {
        return Duration::from_secs(86_400);
    };
    let ms = (next.with_timezone(&Utc) - now).num_milliseconds().max(0) as u64;
    Duration::from_secs(ms.div_ceil(1000))
}

/// Guangzhou's credentials (`[regions.guangzhou.auth]`): access token from appid and secret.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuangzhouAuth {
    /// The app id.
    pub appid: String,
    /// The app secret.
    pub secret: crate::secret::SecretRef,
}

impl crate::spec::Credentials for GuangzhouAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        self.secret.resolve_against(base);
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        vec![("secret", &self.secret)]
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    _built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<GuangzhouAuth>(creds)?;
    let adapter = GuangzhouAdapter::new(GuangzhouConfig {
        upstream,
        appid: a.appid.clone(),
        secret: crate::spec::load_secret(&a.secret)?,
    })
    .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Guangzhou: `interpret` of the body (status and media type are checked before the body
/// is read, in the adapter).
pub fn decode(
    answer: &RawAnswer,
    ctx: &DecodeContext<'_>,
) -> Result<HealthStatus, AdapterError> {
    match interpret(&answer.body, ctx.now)? {
        Answer::Status(s) => Ok(*s),
        Answer::TokenRejected => Err(crate::decode::token_refused()),
    }
}

/// 穗康码 Suikang Code's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Guangzhou,
    jurisdiction: "guangdong/guangzhou",
    published_rate_per_s: 50,
    agreed_deadline: DEADLINE,
    display_name: "穗康码 Suikang Code",
    qr: crate::spec::QrFormat {
        prefix: "SUIKANG/",
        min_len: 28,
        max_len: 28,
        alphabet: crate::spec::Alphabet::Alnum,
        example: "SUIKANG/a1B2c3D4e5F6g7H8i9J0k1L2m3N4",
    },
    depends_on: &[],
    parse_credentials: crate::spec::parse_credentials::<GuangzhouAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AdapterCode;
    use crate::model::Color;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap()
    }

    /// `code_info` as JSON, read strictly like the adapter reads it, then normalised.
    fn normalise(info: &Value, now: DateTime<Utc>) -> Result<HealthStatus, AdapterError> {
        let info: CodeInfo = parse_json_body(info.to_string().as_bytes())?;
        super::normalise(&info, now)
    }

    fn info(color: Value, apply_mode: &str, red_category: Value) -> Value {
        json!({
            "color": color,
            "apply_mode": apply_mode,
            "red_category": red_category,
            "update_time": 1585000000,
            "name_mask": "陈*",
            "id_mask": "4401**********1234"
        })
    }

    #[test]
    fn blue_is_the_self_applied_normal_code() {
        let s = normalise(&info(json!("blue"), "self", Value::Null), now()).unwrap();
        assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
        assert_eq!(s.proxy_applied, Some(false));
        assert_eq!(s.source.code, "blue");
        assert!(s.reasons.is_empty());
    }

    /// THE TRAP: Suikang's `green` is not "the" green of other regions. It is the normal
    /// code *applied for by someone else* (代为申领) — green/clear with proxy_applied TRUE.
    #[test]
    fn green_is_the_proxy_applied_normal_code_with_proxy_applied_true() {
        let s = normalise(&info(json!("green"), "proxy", Value::Null), now()).unwrap();
        assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
        assert_eq!(
            s.proxy_applied,
            Some(true),
            "Suikang green means 代为申领: proxy_applied must be true"
        );
        assert_eq!(s.source.code, "green");
        // An apply_mode that contradicts the colour (or is missing/unlisted): not sure.
        for (color, mode) in [("green", "self"), ("blue", "proxy"), ("blue", "robot")] {
            let s = normalise(&info(json!(color), mode, Value::Null), now()).unwrap();
            assert_eq!(s.level, Level::Unknown, "{color}/{mode}");
        }
        for mode in [Value::Null, json!(1)] {
            let mut i = info(json!("blue"), "self", Value::Null);
            i["apply_mode"] = mode.clone();
            let s = normalise(&i, now());
            assert!(s.is_err() || s.unwrap().level == Level::Unknown, "{mode}");
        }
        let mut i = info(json!("blue"), "self", Value::Null);
        i.as_object_mut().unwrap().remove("apply_mode");
        assert_eq!(normalise(&i, now()).unwrap().level, Level::Unknown);
    }

    #[test]
    fn red_per_category_and_apply_mode() {
        for (category, reason) in RED_CATEGORIES {
            for (mode, proxy) in [("self", false), ("proxy", true)] {
                let s = normalise(&info(json!("red"), mode, json!(category)), now()).unwrap();
                assert_eq!(
                    (s.color, s.level, s.proxy_applied),
                    (Color::Red, Level::Quarantine, Some(proxy)),
                    "{category}/{mode}"
                );
                assert_eq!(s.reasons, vec![reason], "{category}");
            }
        }
        let s = normalise(&info(json!("red"), "self", json!("NEW_CATEGORY")), now()).unwrap();
        assert_eq!(s.reasons, vec![Reason::OtherConcern]);
        let s = normalise(&info(json!("red"), "robot", Value::Null), now()).unwrap();
        assert_eq!((s.level, s.proxy_applied), (Level::Quarantine, None));
        assert!(s.reasons.is_empty());
    }

    #[test]
    fn no_yellow_and_no_default_colour() {
        for c in [
            json!("yellow"),
            json!("Blue"),
            json!("GREEN"),
            json!(" green"),
            json!(""),
        ] {
            let s = normalise(&info(c.clone(), "self", Value::Null), now()).unwrap();
            assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown), "{c}");
        }
        // Not a string, or null: not the contract's answer at all.
        for c in [
            Value::Null,
            json!(0),
            json!(true),
            json!(["green"]),
            json!({"color": "green"}),
        ] {
            let e = normalise(&info(c.clone(), "self", Value::Null), now()).unwrap_err();
            assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{c}");
        }
    }

    #[test]
    fn normal_colour_with_a_red_category_is_unknown() {
        let s = normalise(&info(json!("blue"), "self", json!("confirmed")), now()).unwrap();
        assert_eq!(s.level, Level::Unknown);
        assert_eq!(s.reasons, vec![Reason::ConfirmedCase]);
        // Without the field at all, a normal colour is not known to be free of one.
        let mut i = info(json!("blue"), "self", Value::Null);
        i.as_object_mut().unwrap().remove("red_category");
        assert_eq!(normalise(&i, now()).unwrap().level, Level::Unknown);
        let mut i = info(json!("red"), "self", Value::Null);
        i.as_object_mut().unwrap().remove("red_category");
        assert_eq!(normalise(&i, now()).unwrap().level, Level::Quarantine);
    }

    #[test]
    fn update_time_is_epoch_seconds_in_shanghai_time() {
        let s = normalise(&info(json!("blue"), "self", Value::Null), now()).unwrap();
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-03-24T05:46:40+08:00");
        // Milliseconds by mistake, far future, beyond chrono's range: dropped, never
        // trusted (so the decision is manual_check), and no panic.
        for t in [
            json!(1585000000000i64),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(-1),
        ] {
            let mut i = info(json!("blue"), "self", Value::Null);
            i["update_time"] = t.clone();
            assert_eq!(normalise(&i, now()).unwrap().as_of, None, "{t}");
        }
        // Not an integer (string, float, beyond i64): not the contract's answer.
        for t in [json!("1585000000"), json!(1.5e9), json!(u64::MAX)] {
            let mut i = info(json!("blue"), "self", Value::Null);
            i["update_time"] = t.clone();
            assert!(normalise(&i, now()).is_err(), "{t}");
        }
    }

    #[test]
    fn holder_is_masked() {
        let s = normalise(&info(json!("blue"), "self", Value::Null), now()).unwrap();
        assert_eq!(s.holder.name_masked.as_deref(), Some("陈*"));
        assert_eq!(s.holder.id_masked.as_deref(), Some("4401**********1234"));
        assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
        // An unmasked value is masked by the gateway.
        let mut i = info(json!("blue"), "self", Value::Null);
        i["name_mask"] = json!("陈小明");
        i["id_mask"] = json!("440106199003071234");
        let s = normalise(&i, now()).unwrap();
        assert_eq!(s.holder.name_masked.as_deref(), Some("陈*"));
        assert_eq!(s.holder.id_masked.as_deref(), Some("4401**********1234"));
    }

    #[test]
    fn errcodes_map_to_gateway_errors() {
        let err = |code: i64| {
            interpret(
                json!({"errcode": code, "errmsg": "x"})
                    .to_string()
                    .as_bytes(),
                now(),
            )
        };
        assert_eq!(err(40001).unwrap(), Answer::TokenRejected);
        assert_eq!(err(42001).unwrap(), Answer::TokenRejected);
        assert_eq!(err(46004).unwrap_err(), AdapterError::SubjectNotFound);
        assert_eq!(
            err(45011).unwrap_err().retry_after(),
            Some(Duration::from_secs(60))
        );
        // now() is 10:00 in Shanghai: 14 hours until midnight.
        let e = err(45009).unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamRateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(14 * 3600)));
        let e = err(-1).unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        assert_eq!(
            err(12345).unwrap_err().code(),
            AdapterCode::UpstreamInvalidResponse
        );
        for bad in [
            &b"{\"errcode\":0}"[..],
            b"{\"errcode\":\"0\",\"code_info\":{}}",
            b"{\"errmsg\":\"ok\"}",
            b"[]",
            b"{\"errcode\":0,\"code_info\":{\"color\":\"blue\"",
            b"",
        ] {
            assert_eq!(
                interpret(bad, now()).unwrap_err().code(),
                AdapterCode::UpstreamInvalidResponse,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn daily_quota_waits_until_shanghai_midnight() {
        let at = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
        // 2022-04-01 10:00 Shanghai (02:00 UTC) → 14 h.
        assert_eq!(
            until_next_shanghai_midnight(at(2022, 4, 1, 2, 0, 0)),
            Duration::from_secs(14 * 3600)
        );
        // 23:59:30 Shanghai (15:59:30 UTC) → 30 s.
        assert_eq!(
            until_next_shanghai_midnight(at(2022, 4, 1, 15, 59, 30)),
            Duration::from_secs(30)
        );
        // Exactly 00:00 Shanghai (16:00 UTC the day before) → a full day.
        assert_eq!(
            until_next_shanghai_midnight(at(2022, 3, 31, 16, 0, 0)),
            Duration::from_secs(86_400)
        );
        // 00:00:01 Shanghai → a day minus one second.
        assert_eq!(
            until_next_shanghai_midnight(at(2022, 3, 31, 16, 0, 1)),
            Duration::from_secs(86_399)
        );
        // 23:30 UTC is already 07:30 the next day in Shanghai → 16.5 h.
        assert_eq!(
            until_next_shanghai_midnight(at(2022, 12, 31, 23, 30, 0)),
            Duration::from_secs(16 * 3600 + 1800)
        );
        // Sub-second remainders round up.
        let t = at(2022, 4, 1, 15, 59, 59) + chrono::Duration::milliseconds(500);
        assert_eq!(until_next_shanghai_midnight(t), Duration::from_secs(1));
    }

    #[test]
    fn token_answers() {
        let t =
            parse_token_response(br#"{"access_token":"abc","expires_in":7200}"#, now()).unwrap();
        assert_eq!(
            (t.value.expose(), t.lifetime),
            ("abc", Duration::from_secs(7200))
        );
        // Huge lifetimes are capped, never an overflow.
        for huge in ["9223372036854775808", "18446744073709551615"] {
            let body = format!(r#"{{"access_token":"abc","expires_in":{huge}}}"#);
            let t = parse_token_response(body.as_bytes(), now()).unwrap();
            assert_eq!(t.lifetime, crate::token::MAX_TOKEN_LIFETIME);
        }
        let e = parse_token_response(br#"{"errcode":40001,"errmsg":"invalid credential"}"#, now())
            .unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        assert!(!e.is_retryable());
        for bad in [
            &br#"{"access_token":"","expires_in":7200}"#[..],
            br#"{"access_token":"abc"}"#,
            br#"{"access_token":"abc","expires_in":"7200"}"#,
            br#"{"access_token":"abc","expires_in":0}"#,
            br#"{"access_token":"abc","expires_in":-1}"#,
            br#"{"access_token":"abc","expires_in":7200.5}"#,
            br#"{"access_token":"abc","expires_in":18446744073709551616}"#,
            br#"{"access_token":"abc","expires_in":7200,"expires_in":7200}"#,
            br#"{"access_token":7,"expires_in":7200}"#,
            b"<html>",
        ] {
            assert_eq!(
                parse_token_response(bad, now()).unwrap_err().code(),
                AdapterCode::UpstreamInvalidResponse
            );
        }
    }
}
