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
//! - an unlisted errcode → `upstream_invalid_response`; token-endpoint errcodes other than
//!   `-1`/`45009`/`45011` → our credentials were refused (`region_unavailable`, alert).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Days, TimeZone, Utc};
use serde_json::{Value, json};

use crate::adapter::{RegionAdapter, Subject};
use crate::error::AdapterError;
use crate::identity::{mask_id, mask_name};
use crate::model::{Holder, IdType, Level, Reason, RegionId, Source};
use crate::secret::Secret;
use crate::token::{Attempt, FetchedToken, RefreshPolicy, Token, TokenCache};
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, has_media_type, read_body_limited, retry_after,
    transport_error,
};
use crate::{HealthStatus, time};

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

    async fn lookup(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
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

fn errcode(v: &Value) -> Result<Option<i64>, AdapterError> {
    match v.get("errcode") {
        None | Some(Value::Null) => Ok(None),
        Some(c) => c
            .as_i64()
            .map(Some)
            .ok_or_else(|| AdapterError::invalid_response("errcode is not an integer")),
    }
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
pub fn parse_token_response(body: &[u8], now: DateTime<Utc>) -> Result<FetchedToken, AdapterError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| AdapterError::invalid_response("token answer is not JSON"))?;
    match errcode(&v)? {
        None | Some(0) => {}
        Some(code) => {
            return Err(common_error(code, now).unwrap_or_else(|| {
                AdapterError::credentials_refused(format!("token errcode {code}"))
            }));
        }
    }
    let value = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AdapterError::invalid_response("token answer without access_token"))?;
    let lifetime = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .ok_or_else(|| AdapterError::invalid_response("token answer without expires_in"))?;
    Ok(FetchedToken {
        value: Secret::new(value),
        lifetime: Duration::from_secs(lifetime),
    })
}

/// Interprets a query answer (the raw body): errcode first, then the status. `now` is
/// only used for the daily-quota `Retry-After`.
pub fn interpret(body: &[u8], now: DateTime<Utc>) -> Result<Answer, AdapterError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| AdapterError::invalid_response("answer is not JSON"))?;
    if !v.is_object() {
        return Err(AdapterError::invalid_response(
            "answer is not a JSON object",
        ));
    }
    let code = errcode(&v)?.ok_or_else(|| AdapterError::invalid_response("no errcode"))?;
    match code {
        0 => {
            let info = v
                .get("code_info")
                .ok_or_else(|| AdapterError::invalid_response("errcode 0 without code_info"))?;
            normalise(info, now).map(|s| Answer::Status(Box::new(s)))
        }
        40001 | 42001 => Ok(Answer::TokenRejected),
        46004 => Err(AdapterError::SubjectNotFound),
        _ => Err(common_error(code, now)
            .unwrap_or_else(|| AdapterError::invalid_response(format!("unlisted errcode {code}")))),
    }
}

/// Maps `code_info` to the common status model (no network). `now` bounds a plausible
/// `update_time` (a time in the future by more than a day is dropped, not trusted).
pub fn normalise(info: &Value, now: DateTime<Utc>) -> Result<HealthStatus, AdapterError> {
    let obj = info
        .as_object()
        .ok_or_else(|| AdapterError::invalid_response("code_info is not an object"))?;
    let color = match obj.get("color") {
        None | Some(Value::Null) => {
            return Err(AdapterError::invalid_response("code_info without color"));
        }
        Some(c) => c,
    };
    let raw_color = match color {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let apply_mode = match obj.get("apply_mode") {
        Some(Value::String(m)) if m == "self" => Some(false),
        Some(Value::String(m)) if m == "proxy" => Some(true),
        None | Some(Value::Null) => None,
        Some(other) => {
            record_unmapped(RegionId::Guangzhou, "apply_mode", &value_text(other));
            None
        }
    };
    let red_category = match obj.get("red_category") {
        None | Some(Value::Null) => None,
        Some(c) => Some(c),
    };
    let (level, proxy_applied, label) = match color.as_str() {
        // Blue: applied for by the holder, normal.
        Some("blue") => (Level::Clear, Some(false), Some("蓝码（本人申领）")),
        // Green: applied for by someone else (代为申领), normal — NOT "the" green.
        Some("green") => (Level::Clear, Some(true), Some("绿码（他人代为申领）")),
        Some("red") => (Level::Quarantine, apply_mode, Some("红码")),
        _ => {
            record_unmapped(RegionId::Guangzhou, "color", &raw_color);
            (Level::Unknown, apply_mode, None)
        }
    };
    // A normal colour that carries a red category contradicts itself: not sure → unknown.
    let level = if level == Level::Clear && red_category.is_some() {
        Level::Unknown
    } else {
        level
    };
    let mut status = HealthStatus::new(
        RegionId::Guangzhou,
        level,
        Source {
            code: raw_color,
            label: label.map(str::to_owned),
        },
    );
    status.proxy_applied = proxy_applied;
    if let Some(category) = red_category {
        let mapped = category
            .as_str()
            .and_then(|c| RED_CATEGORIES.iter().find(|(k, _)| *k == c))
            .map(|(_, r)| *r);
        match mapped {
            Some(reason) => status.push_reason(reason),
            None => {
                record_unmapped(RegionId::Guangzhou, "red_category", &value_text(category));
                status.push_reason(Reason::OtherConcern);
            }
        }
    }
    status.as_of = obj
        .get("update_time")
        .and_then(Value::as_i64)
        .and_then(time::from_epoch_seconds)
        .filter(|t| plausible(t.with_timezone(&Utc), now));
    status.holder = Holder {
        name_masked: obj.get("name_mask").and_then(Value::as_str).map(mask_name),
        id_type: obj
            .get("id_mask")
            .and_then(Value::as_str)
            .map(|_| IdType::ResidentId),
        id_masked: obj.get("id_mask").and_then(Value::as_str).map(mask_id),
    };
    Ok(status)
}

/// An update time is plausible from 2020 (the first health codes) to one day ahead.
fn plausible(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let earliest = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single();
    earliest.is_some_and(|e| t >= e) && t <= now + chrono::Duration::days(1)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::model::Color;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap()
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
        // The colour decides, whatever apply_mode says.
        let s = normalise(&info(json!("green"), "self", Value::Null), now()).unwrap();
        assert_eq!(s.proxy_applied, Some(true));
        let s = normalise(&info(json!("blue"), "proxy", Value::Null), now()).unwrap();
        assert_eq!(s.proxy_applied, Some(false));
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
            json!(0),
            json!(true),
            json!(["green"]),
            json!({"color": "green"}),
        ] {
            let s = normalise(&info(c.clone(), "self", Value::Null), now()).unwrap();
            assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown), "{c}");
        }
        assert!(normalise(&info(Value::Null, "self", Value::Null), now()).is_err());
    }

    #[test]
    fn normal_colour_with_a_red_category_is_unknown() {
        let s = normalise(&info(json!("blue"), "self", json!("confirmed")), now()).unwrap();
        assert_eq!(s.level, Level::Unknown);
        assert_eq!(s.reasons, vec![Reason::ConfirmedCase]);
    }

    #[test]
    fn update_time_is_epoch_seconds_in_shanghai_time() {
        let s = normalise(&info(json!("blue"), "self", Value::Null), now()).unwrap();
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-03-24T05:46:40+08:00");
        // Milliseconds by mistake, strings, far future: dropped, never trusted.
        for t in [json!(1585000000000i64), json!("1585000000"), json!(1.5e9)] {
            let mut i = info(json!("blue"), "self", Value::Null);
            i["update_time"] = t.clone();
            assert_eq!(normalise(&i, now()).unwrap().as_of, None, "{t}");
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
        assert_eq!(e.code(), ErrorCode::UpstreamRateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(14 * 3600)));
        let e = err(-1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::RegionUnavailable);
        assert_eq!(
            err(12345).unwrap_err().code(),
            ErrorCode::UpstreamInvalidResponse
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
                ErrorCode::UpstreamInvalidResponse,
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
        let e = parse_token_response(br#"{"errcode":40001,"errmsg":"invalid credential"}"#, now())
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::RegionUnavailable);
        assert!(!e.is_retryable());
        for bad in [
            &br#"{"access_token":"","expires_in":7200}"#[..],
            br#"{"access_token":"abc"}"#,
            br#"{"access_token":"abc","expires_in":"7200"}"#,
            br#"{"access_token":7,"expires_in":7200}"#,
            b"<html>",
        ] {
            assert_eq!(
                parse_token_response(bad, now()).unwrap_err().code(),
                ErrorCode::UpstreamInvalidResponse
            );
        }
    }
}
