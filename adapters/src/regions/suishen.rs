//! Region `suishen` — 随申码 Suishen Code, Shanghai (`shared/spec/regions/suishen.md`).
//!
//! - Auth: OAuth2 client credentials (`POST /oauth2/token`, form-encoded), then
//!   `Authorization: Bearer …`, cached in a single-flight [`TokenCache`]; HTTP 401 /
//!   code 40101 → one refresh for all waiting requests and one retry, then
//!   `region_unavailable`.
//! - **Every response body is SM2-signed** (SM3 digest, distinguishing ID
//!   `1234567812345678`, base64 DER in `X-Suishen-Signature`, key named by
//!   `X-Suishen-Key-Id`). The signature over the exact raw bytes is checked *before* the
//!   body is parsed, on the token endpoint too; a missing, malformed, unknown-key or wrong
//!   signature is `upstream_invalid_response`. See [`sm2`].
//! - Answers are parsed once, strictly, into typed structs ([`VerifyAnswer`]): a duplicate
//!   key, a wrong JSON type (`"0"`, `0.0`, `true` for `codeColor`) or a missing `code` /
//!   `codeColor` → `upstream_invalid_response`.
//! - `codeColor` 0/1/2 → green/yellow/red; any other integer → `unknown`.
//!   `registration: REQUIRED` → action `register_on_arrival`. `refreshTime` is epoch
//!   milliseconds.
//!
//! Decisions where the contract is silent (listed in the report):
//! - `codeColor` 0 with any `reasonTags` contradicts itself → `unknown`;
//! - a missing, `null` or unlisted `registration` → `register_on_arrival` (not known to be
//!   done); a green without `reasonTags` → `unknown`;
//! - an HTTP status and `code` that do not match the error table → `upstream_invalid_response`;
//! - token endpoint: 400/401/403 → our credentials were refused (`region_unavailable`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::adapter::{RegionAdapter, Subject};
pub use crate::sm2_signature::{KEY_ID_HEADER, SIGNATURE_HEADER, SignatureVerifier, sm2};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{mask_id, mask_name};
use crate::model::{Action, HealthStatus, Holder, IdType, Level, Reason, RegionId, Source};
use crate::secret::Secret;
use crate::time;
use crate::token::{
    Attempt, FetchedToken, RefreshPolicy, Token, TokenCache, lifetime_from_expires_in,
};
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, has_media_type, parse_json_body,
    read_body_limited, retry_after, transport_error,
};

/// The OAuth2 token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// The lookup endpoint.
pub const VERIFY_PATH: &str = "/api/suishenma/v1/verify";
/// The contract's deadline for one call.
pub const DEADLINE: Duration = Duration::from_millis(1500);

/// The contract's reason tags.
pub const REASON_TAGS: [(&str, Reason); 4] = [
    ("FROM_KEY_AREA", Reason::HighRiskAreaArrival),
    ("UNDER_MEDICAL_MANAGEMENT", Reason::UnderMedicalManagement),
    ("CONFIRMED_NOT_DISCHARGED", Reason::ConfirmedCase),
    ("SUSPECTED_NOT_EXCLUDED", Reason::SuspectedCase),
];

/// The contract's identity types (`idType`).
pub const ID_TYPES: [(&str, IdType); 4] = [
    ("01", IdType::ResidentId),
    ("02", IdType::Passport),
    ("03", IdType::HkMacaoPermit),
    ("04", IdType::TaiwanPermit),
];

/// How to reach and authenticate to Suishen, and the keys its answers are signed with.
#[derive(Clone, Debug)]
pub struct SuishenConfig {
    /// Base URL, deadline (1.5 s by contract), body limit, TLS.
    pub upstream: UpstreamConfig,
    /// Our OAuth2 client id (`hcgw-dev` against the simulator).
    pub client_id: String,
    /// Our OAuth2 client secret.
    pub client_secret: Secret,
    /// The region's signing keys: (key id, SM2 public key PEM). Two during a rotation.
    pub signing_keys: Vec<(String, Vec<u8>)>,
}

/// The Suishen adapter. One per gateway: it owns the shared access-token cache.
#[derive(Debug)]
pub struct SuishenAdapter {
    config: SuishenConfig,
    client: reqwest::Client,
    keys: SignatureVerifier,
    tokens: TokenCache,
}

/// A verified response: HTTP status and signed body.
struct Verified {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// What one verify answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A status.
    Status(Box<HealthStatus>),
    /// HTTP 401 / 40101: the access token was rejected.
    TokenRejected,
}

impl SuishenAdapter {
    /// Builds the adapter, its HTTP client and its signature verifier (a key that is not
    /// an SM2 public key PEM is a configuration error).
    pub fn new(config: SuishenConfig) -> Result<Self, ClientBuildError> {
        SuishenAdapter::with_refresh_policy(config, RefreshPolicy::default())
    }

    /// Builds the adapter with a specific token refresh policy.
    pub fn with_refresh_policy(
        config: SuishenConfig,
        policy: RefreshPolicy,
    ) -> Result<Self, ClientBuildError> {
        let keys = SignatureVerifier::new(&config.signing_keys)
            .map_err(ClientBuildError::ClientIdentity)?;
        let client = build_client(&config.upstream)?;
        Ok(SuishenAdapter {
            config,
            client,
            keys,
            tokens: TokenCache::new(policy),
        })
    }

    /// How many access-token fetches this adapter has started (for metrics and tests).
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetches()
    }

    /// Sends a request, checks the media type, reads the body within the limit and
    /// verifies its signature before anything else looks at it.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Verified, AdapterError> {
        let up = &self.config.upstream;
        let resp = request
            .send()
            .await
            .map_err(|e| transport_error(&e, up.deadline))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body_limited(resp, up.max_body_bytes, up.deadline).await?;
        if body.is_empty() {
            return Err(if (500..600).contains(&status) {
                AdapterError::unavailable_retryable(format!("http {status}"))
            } else {
                AdapterError::invalid_response(format!("http {status} without a body"))
            });
        }
        self.keys.check(&headers, &body)?;
        if !has_media_type(&headers, "application/json") {
            return Err(AdapterError::invalid_response("content type is not JSON"));
        }
        Ok(Verified {
            status,
            headers,
            body,
        })
    }

    async fn fetch_token(&self) -> Result<FetchedToken, AdapterError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
        ];
        let request = self
            .client
            .post(self.config.upstream.url(TOKEN_PATH))
            .form(&form);
        let v = self.send(request).await?;
        parse_token_response(v.status, &v.headers, &v.body)
    }

    async fn verify(&self, token: &Token, request: &Value) -> Attempt<HealthStatus> {
        let builder = self
            .client
            .post(self.config.upstream.url(VERIFY_PATH))
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            .json(request);
        let result = match self.send(builder).await {
            Err(e) => Err(e),
            Ok(v) => match interpret(v.status, &v.headers, &v.body, Utc::now()) {
                Ok(Answer::TokenRejected) => return Attempt::TokenRejected,
                Ok(Answer::Status(s)) => Ok(*s),
                Err(e) => Err(e),
            },
        };
        Attempt::Done(result)
    }
}

#[async_trait]
impl RegionAdapter for SuishenAdapter {
    fn region(&self) -> RegionId {
        RegionId::Suishen
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let request = match subject {
            Subject::QrToken(token) => json!({ "qrcode": token }),
            Subject::Identity(id) => json!({
                "idType": id_type_code(id.id_type),
                "idNo": id.id_number,
                "name": id.name,
            }),
        };
        self.tokens
            .call(
                || self.fetch_token(),
                |token| {
                    let request = &request;
                    async move { self.verify(&token, request).await }
                },
            )
            .await
    }
}

/// The contract's `idType` code of an identity type.
pub fn id_type_code(id_type: IdType) -> &'static str {
    ID_TYPES
        .iter()
        .find(|(_, t)| *t == id_type)
        .map(|(c, _)| *c)
        .unwrap_or("01")
}

/// Parses the (already signature-checked) token endpoint answer.
pub fn parse_token_response(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<FetchedToken, AdapterError> {
    match status {
        200 => {}
        400 | 401 | 403 => {
            return Err(AdapterError::credentials_refused(format!(
                "token endpoint http {status}"
            )));
        }
        429 => {
            return Err(AdapterError::RateLimited {
                retry_after: retry_after(headers),
            });
        }
        500..=599 => {
            return Err(AdapterError::unavailable_retryable(format!(
                "token endpoint http {status}"
            )));
        }
        _ => {
            return Err(AdapterError::invalid_response(format!(
                "token endpoint http {status}"
            )));
        }
    }
    let answer: TokenAnswer = parse_json_body(body)?;
    let value = answer
        .access_token
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| AdapterError::invalid_response("token answer without access_token"))?;
    if !answer
        .token_type
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        return Err(AdapterError::invalid_response("token type is not Bearer"));
    }
    let expires_in = answer
        .expires_in
        .ok_or_else(|| AdapterError::invalid_response("token answer without expires_in"))?;
    Ok(FetchedToken {
        value: Secret::new(value),
        lifetime: lifetime_from_expires_in(expires_in)?,
    })
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    /// The opaque token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Lifetime in whole seconds (a non-negative integer; anything else breaks the contract).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A verify answer (success or error, both signed).
#[derive(Debug, Deserialize)]
pub struct VerifyAnswer {
    /// `0` on success, else the error code (required, an integer).
    pub code: i64,
    /// The status, with code `0`.
    #[serde(default)]
    pub data: Option<VerifyData>,
}

/// The `data` of a successful verify, the fields the common model uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyData {
    /// `0`, `1` or `2` (required, an integer).
    pub code_color: i64,
    /// The region's wording.
    #[serde(default)]
    pub status_desc: Option<String>,
    /// Epoch milliseconds (UTC).
    #[serde(default)]
    pub refresh_time: Option<i64>,
    /// The masked name.
    #[serde(default)]
    pub masked_name: Option<String>,
    /// The masked document number.
    #[serde(default)]
    pub masked_id_no: Option<String>,
    /// `01`–`04`.
    #[serde(default)]
    pub id_type: Option<String>,
    /// Reason tags (a green needs the list, empty).
    #[serde(default)]
    pub reason_tags: Option<Vec<String>>,
    /// `DONE`, `REQUIRED` or `NOT_APPLICABLE`.
    #[serde(default)]
    pub registration: Option<String>,
}

/// Interprets an (already signature-checked) verify answer: HTTP status and `code` must
/// agree with the contract's error table. `now` bounds a plausible `refreshTime`.
pub fn interpret(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Answer, AdapterError> {
    let answer: VerifyAnswer = parse_json_body(body)?;
    let code = answer.code;
    match (status, code) {
        (200, 0) => {
            let data = answer
                .data
                .as_ref()
                .ok_or_else(|| AdapterError::invalid_response("code 0 without data"))?;
            normalise(data, now).map(|s| Answer::Status(Box::new(s)))
        }
        (401, 40101) => Ok(Answer::TokenRejected),
        (403, 40301) => Err(AdapterError::credentials_refused(
            "40301 client not allowed",
        )),
        (404, 40401) => Err(AdapterError::SubjectNotFound),
        (410, 40402) => Err(AdapterError::TokenExpired),
        (429, 42901) => Err(AdapterError::RateLimited {
            retry_after: retry_after(headers),
        }),
        (503, 50301) => Err(AdapterError::unavailable_retryable("50301 system busy")),
        (500..=599, _) => Err(AdapterError::unavailable_retryable(format!(
            "http {status}"
        ))),
        _ => Err(AdapterError::invalid_response(format!(
            "http {status} with code {code} is not in the contract"
        ))),
    }
}

/// Maps `data` to the common status model (no network). `now` bounds a plausible
/// `refreshTime` (more than a day in the future is dropped, not trusted).
///
/// Fail safe (docs/decisions.md, "Decision fields (fail safe)"): a `codeColor` integer
/// other than 0/1/2 is `unknown`; a green without `reasonTags` (missing or `null`) or with
/// any tag is `unknown`; `registration` other than `DONE`/`NOT_APPLICABLE` (missing,
/// `null`, `REQUIRED` or unlisted) adds `register_on_arrival`.
pub fn normalise(data: &VerifyData, now: DateTime<Utc>) -> Result<HealthStatus, AdapterError> {
    let level = match data.code_color {
        0 => Level::Clear,
        1 => Level::Monitoring,
        2 => Level::Quarantine,
        other => {
            record_unmapped(RegionId::Suishen, "codeColor", &other.to_string());
            Level::Unknown
        }
    };
    let default_label = match level {
        Level::Clear => Some("未见异常或已解除医学管理措施，可以通行"),
        Level::Monitoring => Some("重点地区来沪未满14天，建议观察"),
        Level::Quarantine => Some("未解除医学管理措施、确诊未出院、疑似未排除，建议隔离"),
        _ => None,
    };
    let label = data
        .status_desc
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(default_label);
    let mut reasons = Vec::new();
    for tag in data.reason_tags.iter().flatten() {
        let mapped = REASON_TAGS.iter().find(|(k, _)| k == tag).map(|(_, r)| *r);
        reasons.push(mapped.unwrap_or_else(|| {
            record_unmapped(RegionId::Suishen, "reasonTags", tag);
            Reason::OtherConcern
        }));
    }
    // Green with reasons to worry contradicts itself, and a green whose tag list is missing
    // is not known to be free of them: not sure → unknown.
    let level = if level == Level::Clear && (data.reason_tags.is_none() || !reasons.is_empty()) {
        Level::Unknown
    } else {
        level
    };
    let mut status = HealthStatus::new(
        RegionId::Suishen,
        level,
        Source {
            code: data.code_color.to_string(),
            label: label.map(str::to_owned),
        },
    );
    for r in reasons {
        status.push_reason(r);
    }
    match data.registration.as_deref() {
        Some("DONE" | "NOT_APPLICABLE") => {}
        Some("REQUIRED") => status.push_action(Action::RegisterOnArrival),
        other => {
            // Missing, null or unlisted: not known to be done, so ask for it.
            record_unmapped(
                RegionId::Suishen,
                "registration",
                other.unwrap_or("<missing>"),
            );
            status.push_action(Action::RegisterOnArrival);
        }
    }
    // Out of chrono's range or implausible: dropped, so the decision is manual_check.
    status.as_of = data
        .refresh_time
        .and_then(time::from_epoch_millis)
        .filter(|t| plausible(t.with_timezone(&Utc), now));
    let id_type = data.id_type.as_deref().and_then(|c| {
        let t = ID_TYPES.iter().find(|(k, _)| *k == c).map(|(_, t)| *t);
        if t.is_none() {
            record_unmapped(RegionId::Suishen, "idType", c);
        }
        t
    });
    status.holder = Holder {
        name_masked: data.masked_name.as_deref().map(mask_name),
        id_type,
        id_masked: data.masked_id_no.as_deref().map(mask_id),
    };
    Ok(status)
}

/// A refresh time is plausible from 2020 (the first health codes) to one day ahead.
fn plausible(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let earliest = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single();
    earliest.is_some_and(|e| t >= e) && t <= now + chrono::Duration::days(1)
}

/// One of Suishen's published SM2 keys.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// `X-Suishen-Key-Id`.
    pub key_id: String,
    /// The SM2 public key (PEM).
    pub public_key: std::path::PathBuf,
}

/// Suishen's credentials (`[regions.suishen.auth]`): OAuth2 client credentials and the
/// response-signing keys.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuishenAuth {
    /// OAuth2 client id.
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: crate::secret::SecretRef,
    /// The region's published keys (two during a rotation).
    pub signing_keys: Vec<SigningKey>,
}

impl crate::spec::Credentials for SuishenAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        self.client_secret.resolve_against(base);
        for k in &mut self.signing_keys {
            crate::spec::resolve_path(&mut k.public_key, base);
        }
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        vec![("client_secret", &self.client_secret)]
    }
    fn files(&self) -> Vec<(String, &std::path::Path)> {
        self.signing_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    format!("signing_keys[{i}].public_key"),
                    k.public_key.as_path(),
                )
            })
            .collect()
    }
    fn problems(&self) -> Vec<(String, String)> {
        if self.signing_keys.is_empty() {
            vec![(
                "signing_keys".into(),
                "at least one key is required".into(),
            )]
        } else {
            Vec::new()
        }
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    _built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<SuishenAuth>(creds)?;
    let signing_keys = a
        .signing_keys
        .iter()
        .map(|k| Ok((k.key_id.clone(), crate::spec::read_file(&k.public_key)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let adapter = SuishenAdapter::new(SuishenConfig {
        upstream,
        client_id: a.client_id.clone(),
        client_secret: crate::spec::load_secret(&a.client_secret)?,
        signing_keys,
    })
    .map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Suishen: non-empty body, SM2 signature, JSON media type, then `interpret`.
pub fn decode(
    answer: &RawAnswer,
    ctx: &DecodeContext<'_>,
) -> Result<HealthStatus, AdapterError> {
    let keys = ctx.suishen_keys.ok_or_else(|| {
        AdapterError::unavailable("no Suishen signing key to verify the answer with")
    })?;
    if answer.body.is_empty() {
        return Err(if (500..600).contains(&answer.status) {
            AdapterError::unavailable_retryable(format!("http {}", answer.status))
        } else {
            AdapterError::invalid_response(format!("http {} without a body", answer.status))
        });
    }
    keys.check(&answer.headers, &answer.body)?;
    if !has_media_type(&answer.headers, "application/json") {
        return Err(AdapterError::invalid_response("content type is not JSON"));
    }
    match interpret(answer.status, &answer.headers, &answer.body, ctx.now)? {
        Answer::Status(s) => Ok(*s),
        Answer::TokenRejected => Err(crate::decode::token_refused()),
    }
}

/// 随申码 Suishen Code's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Suishen,
    jurisdiction: "shanghai",
    published_rate_per_s: 500,
    agreed_deadline: DEADLINE,
    display_name: "随申码 Suishen Code",
    qr: crate::spec::QrFormat {
        prefix: "ssm://v1/",
        min_len: 32,
        max_len: 32,
        alphabet: crate::spec::Alphabet::Base64Url,
        example: "ssm://v1/Qm9vdHN0cmFwLXRva2VuLTAwMDAwMDAx",
    },
    depends_on: &[],
    parse_credentials: crate::spec::parse_credentials::<SuishenAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use crate::error::AdapterCode;
    use crate::model::Color;
    use reqwest::header::HeaderValue;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap()
    }

    /// `data` as JSON, read strictly like the adapter reads it, then normalised.
    fn normalise(data: &Value, now: DateTime<Utc>) -> Result<HealthStatus, AdapterError> {
        let data: VerifyData = parse_json_body(data.to_string().as_bytes())?;
        super::normalise(&data, now)
    }

    fn data(color: Value, tags: Value, registration: &str) -> Value {
        json!({
            "codeColor": color,
            "statusDesc": "说明",
            "refreshTime": 1583210112000i64,
            "maskedName": "李*",
            "maskedIdNo": "310***********0012",
            "idType": "01",
            "controlMeasure": "OBSERVE",
            "reasonTags": tags,
            "registration": registration
        })
    }

    #[test]
    fn code_colours() {
        let s = normalise(&data(json!(0), json!([]), "DONE"), now()).unwrap();
        assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
        assert_eq!(s.source.code, "0");
        assert_eq!(s.source.label.as_deref(), Some("说明"));
        let s = normalise(&data(json!(1), json!(["FROM_KEY_AREA"]), "DONE"), now()).unwrap();
        assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
        assert_eq!(s.reasons, vec![Reason::HighRiskAreaArrival]);
        let s = normalise(&data(json!(2), json!([]), "DONE"), now()).unwrap();
        assert_eq!((s.color, s.level), (Color::Red, Level::Quarantine));
    }

    #[test]
    fn any_other_integer_is_unknown_and_any_other_type_invalid() {
        for c in [json!(3), json!(-1), json!(i64::MAX)] {
            let s = normalise(&data(c.clone(), json!([]), "DONE"), now()).unwrap();
            assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown), "{c}");
        }
        for c in [
            Value::Null,
            json!("0"),
            json!("1"),
            json!(0.0),
            json!(1.0),
            json!(0.5),
            json!(true),
            json!([0]),
            json!({"v": 0}),
            json!("green"),
            json!(u64::MAX),
        ] {
            let e = normalise(&data(c.clone(), json!([]), "DONE"), now()).unwrap_err();
            assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{c}");
        }
        let mut d = data(json!(0), json!([]), "DONE");
        d.as_object_mut().unwrap().remove("codeColor");
        assert!(normalise(&d, now()).is_err());
    }

    #[test]
    fn reason_tags() {
        for (tag, reason) in REASON_TAGS {
            let s = normalise(&data(json!(2), json!([tag]), "DONE"), now()).unwrap();
            assert_eq!(s.reasons, vec![reason], "{tag}");
        }
        let s = normalise(&data(json!(2), json!(["NEW_TAG"]), "DONE"), now()).unwrap();
        assert_eq!(s.reasons, vec![Reason::OtherConcern]);
        // Not a list of strings: not the contract's answer.
        for tags in [json!("FROM_KEY_AREA"), json!(["NEW_TAG", 7])] {
            assert!(normalise(&data(json!(1), tags.clone(), "DONE"), now()).is_err());
        }
        // A green without its tag list is not known to be clear.
        let s = normalise(&data(json!(0), Value::Null, "DONE"), now()).unwrap();
        assert_eq!(s.level, Level::Unknown);
        let mut d = data(json!(0), json!([]), "DONE");
        d.as_object_mut().unwrap().remove("reasonTags");
        assert_eq!(normalise(&d, now()).unwrap().level, Level::Unknown);
        // A red without it stays red.
        let s = normalise(&data(json!(2), Value::Null, "DONE"), now()).unwrap();
        assert_eq!(s.level, Level::Quarantine);
        // Green with a reason to worry is unknown.
        let s = normalise(
            &data(json!(0), json!(["CONFIRMED_NOT_DISCHARGED"]), "DONE"),
            now(),
        )
        .unwrap();
        assert_eq!(s.level, Level::Unknown);
    }

    #[test]
    fn registration_required_is_an_action() {
        let s = normalise(&data(json!(0), json!([]), "REQUIRED"), now()).unwrap();
        assert_eq!(s.level, Level::Clear);
        assert_eq!(s.actions, vec![Action::RegisterOnArrival]);
        for done in ["DONE", "NOT_APPLICABLE"] {
            let s = normalise(&data(json!(0), json!([]), done), now()).unwrap();
            assert!(s.actions.is_empty(), "{done}");
        }
        let s = normalise(&data(json!(0), json!([]), "PENDING"), now()).unwrap();
        assert_eq!(s.actions, vec![Action::RegisterOnArrival]);
        // Missing or null: not known to be done either.
        let mut d = data(json!(0), json!([]), "DONE");
        d["registration"] = Value::Null;
        assert_eq!(
            normalise(&d, now()).unwrap().actions,
            vec![Action::RegisterOnArrival]
        );
        d.as_object_mut().unwrap().remove("registration");
        assert_eq!(
            normalise(&d, now()).unwrap().actions,
            vec![Action::RegisterOnArrival]
        );
    }

    #[test]
    fn refresh_time_and_holder() {
        let s = normalise(&data(json!(1), json!([]), "DONE"), now()).unwrap();
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-03-03T12:35:12+08:00");
        assert_eq!(s.holder.name_masked.as_deref(), Some("李*"));
        assert_eq!(s.holder.id_masked.as_deref(), Some("310***********0012"));
        assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
        for (code, t) in ID_TYPES {
            let mut d = data(json!(0), json!([]), "DONE");
            d["idType"] = json!(code);
            assert_eq!(normalise(&d, now()).unwrap().holder.id_type, Some(t));
        }
        let mut d = data(json!(0), json!([]), "DONE");
        d["idType"] = json!("05");
        d["refreshTime"] = json!(1583210112); // seconds by mistake: 1970, dropped
        d["maskedName"] = json!("李小龙");
        let s = normalise(&d, now()).unwrap();
        assert_eq!(s.holder.id_type, None);
        assert_eq!(s.as_of, None);
        assert_eq!(s.holder.name_masked.as_deref(), Some("李*"));
        // Epoch values out of range: dropped (manual_check), never a panic; beyond i64 or
        // not an integer: invalid.
        for t in [json!(i64::MAX), json!(i64::MIN), json!(-1)] {
            let mut d = data(json!(0), json!([]), "DONE");
            d["refreshTime"] = t.clone();
            assert_eq!(normalise(&d, now()).unwrap().as_of, None, "{t}");
        }
        for t in [json!(u64::MAX), json!(1.5e12), json!("1583210112000")] {
            let mut d = data(json!(0), json!([]), "DONE");
            d["refreshTime"] = t.clone();
            assert!(normalise(&d, now()).is_err(), "{t}");
        }
    }

    #[test]
    fn error_table() {
        let h = |retry: Option<&'static str>| {
            let mut h = HeaderMap::new();
            if let Some(r) = retry {
                h.insert("retry-after", HeaderValue::from_static(r));
            }
            h
        };
        let body = |code: i64| {
            json!({"code": code, "message": "m"})
                .to_string()
                .into_bytes()
        };
        let run = |status, code| interpret(status, &h(Some("17")), &body(code), now());
        assert_eq!(run(401, 40101).unwrap(), Answer::TokenRejected);
        let e = run(403, 40301).unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        assert!(!e.is_retryable());
        assert_eq!(run(404, 40401).unwrap_err(), AdapterError::SubjectNotFound);
        assert_eq!(run(410, 40402).unwrap_err(), AdapterError::TokenExpired);
        let e = run(429, 42901).unwrap_err();
        assert_eq!(
            (e.code(), e.retry_after()),
            (
                AdapterCode::UpstreamRateLimited,
                Some(Duration::from_secs(17))
            )
        );
        let e = run(503, 50301).unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable);
        // Mismatched status and code, unknown codes: broken contract.
        for (status, code) in [(200, 40401), (404, 0), (401, 40301), (400, 40001), (200, 1)] {
            assert_eq!(
                run(status, code).unwrap_err().code(),
                AdapterCode::UpstreamInvalidResponse,
                "{status}/{code}"
            );
        }
    }

    fn pki_key(name: &str) -> Option<Vec<u8>> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-pki/upstream/suishen")
            .join(name);
        std::fs::read(p).ok()
    }

    #[test]
    fn sm2_sign_and_verify_round_trip_and_need_the_right_id() {
        // A fresh key made by OpenSSL itself (independent of the dev PKI).
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SM2).unwrap(),
        )
        .unwrap();
        let pem = ec.private_key_to_pem().unwrap();
        let signer = sm2::SigningKey::from_pem(&pem).unwrap();
        let verifier = signer.verifying_key().unwrap();
        let msg = br#"{"code":0}"#;
        let sig = signer.sign(msg).unwrap();
        assert!(verifier.verify(msg, &sig));
        assert!(!verifier.verify(br#"{"code":1}"#, &sig));
        assert!(!verifier.verify(msg, b"not der"));
        // Signed with the empty (OpenSSL 3 default) ID: must not verify.
        let wrong_id = signer.sign_with_id(msg, b"").unwrap();
        assert!(!verifier.verify(msg, &wrong_id));
        assert!(verifier.verify_with_id(msg, &wrong_id, b""));
        // A P-256 key is refused.
        let p256 = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        assert!(sm2::SigningKey::from_pem(&p256.private_key_to_pem().unwrap()).is_err());
        assert!(sm2::VerifyingKey::from_pem(&p256.public_key_to_pem().unwrap()).is_err());
        if let Some(pem) = pki_key("sign-key-1.pub.pem") {
            assert!(sm2::VerifyingKey::from_pem(&pem).is_ok());
        }
    }

    #[test]
    fn signature_headers_are_checked() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SM2).unwrap(),
        )
        .unwrap();
        let signer = sm2::SigningKey::from_pem(&ec.private_key_to_pem().unwrap()).unwrap();
        let pub_pem = ec.public_key_to_pem().unwrap();
        let v = SignatureVerifier::new(&[("k1".into(), pub_pem)]).unwrap();
        let body = br#"{"code":0,"data":{}}"#;
        let sig = BASE64.encode(signer.sign(body).unwrap());
        let headers = |kid: Option<&str>, sig: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(k) = kid {
                h.insert(KEY_ID_HEADER, HeaderValue::from_str(k).unwrap());
            }
            if let Some(s) = sig {
                h.insert(SIGNATURE_HEADER, HeaderValue::from_str(s).unwrap());
            }
            h
        };
        assert!(v.check(&headers(Some("k1"), Some(&sig)), body).is_ok());
        for (name, h, b) in [
            ("no key id", headers(None, Some(&sig)), &body[..]),
            ("no signature", headers(Some("k1"), None), &body[..]),
            ("unknown key", headers(Some("k9"), Some(&sig)), &body[..]),
            ("not base64", headers(Some("k1"), Some("%%%")), &body[..]),
            ("garbage DER", headers(Some("k1"), Some("AAAA")), &body[..]),
            (
                "other body",
                headers(Some("k1"), Some(&sig)),
                &br#"{"code":1,"data":{}}"#[..],
            ),
        ] {
            assert_eq!(
                v.check(&h, b).unwrap_err().code(),
                AdapterCode::UpstreamInvalidResponse,
                "{name}"
            );
        }
        assert!(SignatureVerifier::new(&[]).is_err());
        assert!(SignatureVerifier::new(&[("k".into(), b"junk".to_vec())]).is_err());
    }
}
