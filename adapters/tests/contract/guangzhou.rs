//! Contract tests of the `guangzhou` (穗康码 Suikang) adapter against a wiremock of
//! `shared/spec/regions/guangzhou.md`. The mock verifies the appid/secret at the token
//! endpoint and the access token on every query, the way Suikang does (errcode 40001).

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hcgw_adapters::adapter::Identity;
use hcgw_adapters::regions::guangzhou::{
    Answer, GuangzhouAdapter, GuangzhouConfig, QUERY_PATH, RED_CATEGORIES, TOKEN_PATH, interpret,
};
use hcgw_adapters::upstream::UpstreamConfig;
use hcgw_adapters::{
    AdapterCode, AdapterError, Color, HealthStatus, IdType, Level, Reason, RegionAdapter, Secret,
    Subject,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{fixture, fixture_str};

const REGION: &str = "guangzhou";
const APPID: &str = "hcgw-dev";
const SECRET: &str = "gz-secret-for-tests";
const QR_TOKEN: &str = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4";

fn json_response(body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/json")
}

fn token_body(token: &str) -> Vec<u8> {
    json!({"access_token": token, "expires_in": 7200})
        .to_string()
        .into_bytes()
}

/// A Suikang mock: the token endpoint issues `token` only for our appid and secret (and
/// answers 40001 otherwise); the query endpoint answers 40001 to any other token.
async fn suikang(token: &str) -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server, token, 5, None).await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(json_response(fixture(REGION, "token_error_40001.json")))
        .with_priority(50)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .respond_with(json_response(fixture(REGION, "error_40001.json")))
        .with_priority(50)
        .mount(&server)
        .await;
    server
}

/// Issues `token` for valid credentials (at `priority`, at most `times` times).
async fn mount_token(server: &MockServer, token: &str, priority: u8, times: Option<u64>) {
    let mut mock = Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .and(query_param("grant_type", "client_credential"))
        .and(query_param("appid", APPID))
        .and(query_param("secret", SECRET))
        .respond_with(json_response(token_body(token)).set_delay(Duration::from_millis(100)))
        .with_priority(priority);
    if let Some(n) = times {
        mock = mock.up_to_n_times(n);
    }
    mock.mount(server).await;
}

/// Answers a query made with `token` with `body`.
async fn answer(server: &MockServer, token: &str, body: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .and(query_param("access_token", token))
        .and(body_json(json!({ "code_id": QR_TOKEN })))
        .respond_with(body)
        .with_priority(10)
        .mount(server)
        .await;
}

fn adapter_with(server: &MockServer, secret: &str, deadline: Duration) -> GuangzhouAdapter {
    GuangzhouAdapter::new(GuangzhouConfig {
        upstream: UpstreamConfig::new(server.uri(), deadline),
        appid: APPID.into(),
        secret: Secret::new(secret),
    })
    .expect("adapter builds")
}

fn adapter(server: &MockServer) -> GuangzhouAdapter {
    adapter_with(server, SECRET, Duration::from_secs(2))
}

fn qr() -> Subject {
    Subject::QrToken(QR_TOKEN.into())
}

async fn token_fetches(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == TOKEN_PATH)
        .count()
}

/// Looks up `fixture` through the whole adapter.
async fn lookup_fixture(body: Vec<u8>) -> Result<HealthStatus, AdapterError> {
    let server = suikang("TOK").await;
    answer(&server, "TOK", json_response(body)).await;
    adapter(&server).status(&qr()).await
}

/// One `color` of the contract (with `apply_mode` set): colour, level, source code and
/// proxy_applied.
async fn check_colour(
    file: &'static str,
    apply_mode: &'static str,
    color: Color,
    level: Level,
    proxy_applied: Option<bool>,
) {
    let mut body: Value = serde_json::from_slice(&fixture(REGION, file)).unwrap();
    body["code_info"]["apply_mode"] = json!(apply_mode);
    let s = lookup_fixture(body.to_string().into_bytes())
        .await
        .unwrap_or_else(|e| panic!("{file}/{apply_mode}: {e}"));
    assert_eq!(
        (s.color, s.level, s.proxy_applied),
        (color, level, proxy_applied),
        "{file}/{apply_mode}"
    );
    assert_eq!(s.source.code, body["code_info"]["color"].as_str().unwrap());
}

colour_tests! {
    colour_blue_green_clear_self_applied: ("blue.json", "self", Color::Green, Level::Clear, Some(false)),
    // THE TRAP: `green` is 他人代为申领, proxy_applied true.
    colour_green_green_clear_proxy_applied: ("green.json", "proxy", Color::Green, Level::Clear, Some(true)),
    colour_red_quarantine_self_applied: ("red.json", "self", Color::Red, Level::Quarantine, Some(false)),
    colour_red_quarantine_proxy_applied: ("red.json", "proxy", Color::Red, Level::Quarantine, Some(true)),
    colour_yellow_is_not_in_the_contract_unknown: ("yellow.json", "self", Color::Unknown, Level::Unknown, Some(false)),
}

#[tokio::test]
async fn blue_is_green_clear_self_applied() {
    let s = lookup_fixture(fixture(REGION, "blue.json")).await.unwrap();
    assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
    assert_eq!(s.proxy_applied, Some(false));
    assert_eq!(s.source.code, "blue");
    assert!(s.reasons.is_empty() && s.actions.is_empty());
    assert_eq!(
        s.as_of.unwrap().to_rfc3339(),
        "2020-03-24T05:46:40+08:00",
        "update_time is epoch SECONDS"
    );
    assert_eq!(s.holder.name_masked.as_deref(), Some("陈*"));
    assert_eq!(s.holder.id_masked.as_deref(), Some("4401**********1234"));
}

/// THE TRAP. Suikang `green` = the normal code applied for by someone else (代为申领):
/// green/clear with proxy_applied = TRUE. Not "the usual green with no proxy".
#[tokio::test]
async fn green_is_green_clear_with_proxy_applied_true() {
    let s = lookup_fixture(fixture(REGION, "green.json")).await.unwrap();
    assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
    assert_eq!(
        s.proxy_applied,
        Some(true),
        "TRAP: Suikang `green` means 他人代为申领 → proxy_applied MUST be true"
    );
    assert_eq!(s.source.code, "green");
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["proxy_applied"], json!(true));
}

#[tokio::test]
async fn red_maps_every_category_and_apply_mode() {
    let template: Value = serde_json::from_slice(&fixture(REGION, "red.json")).unwrap();
    // The spec's table, literally (not only the adapter's own constant).
    let spec = [
        ("home_quarantine", Reason::HomeQuarantine),
        ("centralized_quarantine", Reason::CentralizedQuarantine),
        ("close_contact", Reason::CloseContact),
        ("suspected", Reason::SuspectedCase),
        ("confirmed", Reason::ConfirmedCase),
        ("nat_positive", Reason::NucleicAcidPositive),
        ("key_area_arrival", Reason::HighRiskAreaArrival),
    ];
    assert_eq!(RED_CATEGORIES, spec, "the adapter's table is the spec's");
    for (category, reason) in spec {
        for (mode, proxy) in [("self", false), ("proxy", true)] {
            let mut body = template.clone();
            body["code_info"]["red_category"] = json!(category);
            body["code_info"]["apply_mode"] = json!(mode);
            let s = lookup_fixture(body.to_string().into_bytes())
                .await
                .unwrap_or_else(|e| panic!("red {category}/{mode}: {e}"));
            assert_eq!(
                (s.color, s.level, s.proxy_applied),
                (Color::Red, Level::Quarantine, Some(proxy)),
                "red {category}/{mode}"
            );
            assert_eq!(s.reasons, vec![reason], "red_category {category}");
        }
    }
}

#[tokio::test]
async fn unlisted_red_category_is_other_concern() {
    let mut body: Value = serde_json::from_slice(&fixture(REGION, "red.json")).unwrap();
    body["code_info"]["red_category"] = json!("overseas_arrival");
    let s = lookup_fixture(body.to_string().into_bytes()).await.unwrap();
    assert_eq!(s.level, Level::Quarantine);
    assert_eq!(s.reasons, vec![hcgw_adapters::Reason::OtherConcern]);
}

#[tokio::test]
async fn there_is_no_yellow_unknown_colours_are_unknown() {
    let s = lookup_fixture(fixture(REGION, "yellow.json"))
        .await
        .unwrap();
    assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown));
    assert_eq!(s.source.code, "yellow");
    for c in [json!("purple"), json!("GREEN"), json!(1), json!(null)] {
        let mut body: Value = serde_json::from_slice(&fixture(REGION, "green.json")).unwrap();
        body["code_info"]["color"] = c.clone();
        match lookup_fixture(body.to_string().into_bytes()).await {
            Ok(s) => assert_eq!(s.color, Color::Unknown, "{c}"),
            Err(e) => assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{c}"),
        }
    }
}

/// One errcode of the error table, answered to every query. Returns the error and the
/// number of token fetches.
async fn check_error(file: &str, expected: AdapterCode) {
    let server = suikang("TOK").await;
    answer(&server, "TOK", json_response(fixture(REGION, file))).await;
    let e = adapter(&server).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), expected, "{file}");
    match file {
        // Credential invalid / token expired: one refresh, one retry, then unavailable.
        "error_40001.json" | "error_42001.json" => {
            assert_eq!(token_fetches(&server).await, 2, "{file}: one refresh");
            assert!(!e.is_retryable(), "{file}");
        }
        "error_45011.json" => assert_eq!(e.retry_after(), Some(Duration::from_secs(60))),
        "error_45009.json" => {
            let wait = e.retry_after().expect("45009 has a Retry-After");
            assert!(wait > Duration::ZERO && wait <= Duration::from_secs(86_400));
            // And it is the wait until the next Shanghai midnight (pure function of now).
            let now = Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap();
            let e = interpret(&fixture(REGION, "error_45009.json"), now).unwrap_err();
            assert_eq!(e.retry_after(), Some(Duration::from_secs(14 * 3600)));
        }
        _ => {}
    }
}

error_tests! {
    error_40001_credential_invalid: ("error_40001.json", AdapterCode::RegionUnavailable),
    error_42001_token_expired: ("error_42001.json", AdapterCode::RegionUnavailable),
    error_46004_subject_not_found: ("error_46004.json", AdapterCode::SubjectNotFound),
    error_45011_minute_quota: ("error_45011.json", AdapterCode::UpstreamRateLimited),
    error_45009_daily_quota: ("error_45009.json", AdapterCode::UpstreamRateLimited),
    error_minus_1_busy: ("error_busy.json", AdapterCode::RegionUnavailable),
    error_unlisted_is_invalid_response: ("error_unlisted.json", AdapterCode::UpstreamInvalidResponse),
}

#[tokio::test]
async fn identity_lookup_sends_id_card_and_name() {
    let server = suikang("TOK").await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .and(query_param("access_token", "TOK"))
        .and(body_json(
            json!({"id_card": "440106199003071234", "name": "陈小明"}),
        ))
        .respond_with(json_response(fixture(REGION, "blue.json")))
        .with_priority(10)
        .mount(&server)
        .await;
    let s = adapter(&server)
        .status(&Subject::Identity(Identity {
            id_type: IdType::ResidentId,
            id_number: "440106199003071234".into(),
            name: "陈小明".into(),
        }))
        .await
        .unwrap();
    assert_eq!(s.proxy_applied, Some(false));
}

#[tokio::test]
async fn other_identity_types_are_unsupported_without_a_call() {
    let server = suikang("TOK").await;
    let a = adapter(&server);
    assert!(!a.supports_id_type(IdType::Passport));
    let e = a
        .status(&Subject::Identity(Identity {
            id_type: IdType::Passport,
            id_number: "E12345678".into(),
            name: "CHAN".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UnsupportedIdType);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn auth_wrong_secret() {
    let server = suikang("TOK").await;
    answer(&server, "TOK", json_response(fixture(REGION, "blue.json"))).await;
    let a = adapter_with(&server, "wrong-secret", Duration::from_secs(2));
    let e = a.status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert!(!e.is_retryable(), "refused credentials are not retried");
    // No query was made without a token.
    let queries = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == QUERY_PATH)
        .count();
    assert_eq!(queries, 0);
}

#[tokio::test]
async fn auth_token_not_accepted_40001() {
    // The token endpoint issues a token the query endpoint does not accept (40001):
    // one refresh, one retry, then region_unavailable.
    let server = suikang("NOT-ACCEPTED").await;
    answer(&server, "TOK", json_response(fixture(REGION, "blue.json"))).await;
    let e = adapter(&server).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert_eq!(token_fetches(&server).await, 2, "one refresh, then give up");
}

#[tokio::test]
async fn auth_token_expired_42001_is_refreshed_once() {
    let server = suikang("TOK-B").await;
    mount_token(&server, "TOK-A", 1, Some(1)).await;
    answer(
        &server,
        "TOK-A",
        json_response(fixture(REGION, "error_42001.json")),
    )
    .await;
    answer(
        &server,
        "TOK-B",
        json_response(fixture(REGION, "green.json")),
    )
    .await;
    let a = adapter(&server);
    let s = a.status(&qr()).await.unwrap();
    assert_eq!(s.proxy_applied, Some(true));
    assert_eq!(token_fetches(&server).await, 2);
    // The fresh token is cached.
    a.status(&qr()).await.unwrap();
    assert_eq!(token_fetches(&server).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_lookups_fetch_one_token() {
    let server = suikang("TOK").await;
    answer(&server, "TOK", json_response(fixture(REGION, "blue.json"))).await;
    let a = Arc::new(adapter(&server));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.status(&qr()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().level, Level::Clear);
    }
    assert_eq!(token_fetches(&server).await, 1, "exactly one token fetch");
    assert_eq!(a.token_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_lookups_hitting_an_expired_token_refresh_once() {
    let server = suikang("TOK-B").await;
    mount_token(&server, "TOK-A", 1, Some(1)).await;
    answer(
        &server,
        "TOK-A",
        json_response(fixture(REGION, "error_42001.json")),
    )
    .await;
    answer(&server, "TOK-B", json_response(fixture(REGION, "red.json"))).await;
    let a = Arc::new(adapter(&server));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.status(&qr()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().level, Level::Quarantine);
    }
    assert_eq!(
        token_fetches(&server).await,
        2,
        "one initial fetch, one refresh shared by all 50"
    );
}

#[tokio::test]
async fn slow_query_is_a_timeout() {
    let server = suikang("TOK").await;
    answer(
        &server,
        "TOK",
        json_response(fixture(REGION, "blue.json")).set_delay(Duration::from_secs(2)),
    )
    .await;
    let e = adapter_with(&server, SECRET, Duration::from_millis(400))
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);
}

#[tokio::test]
async fn slow_token_endpoint_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(json_response(token_body("TOK")).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let e = adapter_with(&server, SECRET, Duration::from_millis(400))
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);
}

#[tokio::test]
async fn http_5xx_is_region_unavailable() {
    for status in [500, 502, 503] {
        let server = suikang("TOK").await;
        answer(&server, "TOK", ResponseTemplate::new(status)).await;
        let e = adapter(&server).status(&qr()).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable, "http {status}");
    }
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let server = crate::support::ChunkedServer::start(
        "application/json",
        br#"{"errcode":0,"errmsg":""#,
        vec![crate::support::Fixed {
            path: TOKEN_PATH.into(),
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: token_body("TOK"),
        }],
    )
    .await;
    let e = GuangzhouAdapter::new(GuangzhouConfig {
        upstream: UpstreamConfig::new(server.uri(), Duration::from_secs(2)),
        appid: APPID.into(),
        secret: Secret::new(SECRET),
    })
    .expect("adapter builds")
    .status(&qr())
    .await
    .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert!(server.streamed() >= 1, "the huge body was streamed");
}

#[tokio::test]
async fn broken_bodies_are_invalid_responses() {
    let huge = {
        let mut v = br#"{"errcode":0,"errmsg":""#.to_vec();
        v.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
        v.extend_from_slice(br#"","code_info":{"color":"blue"}}"#);
        v
    };
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        (
            "malformed",
            json_response(fixture(REGION, "malformed.json")),
        ),
        (
            "truncated",
            json_response(fixture(REGION, "truncated.json")),
        ),
        ("empty", json_response(Vec::new())),
        (
            "text/html",
            ResponseTemplate::new(200)
                .set_body_raw(fixture(REGION, "blue.json"), "text/html; charset=utf-8"),
        ),
        (
            "no content type",
            ResponseTemplate::new(200).set_body_bytes(fixture(REGION, "blue.json")),
        ),
        ("huge", json_response(huge)),
        ("http 404", ResponseTemplate::new(404)),
    ];
    for (name, response) in cases {
        let server = suikang("TOK").await;
        answer(&server, "TOK", response).await;
        let e = adapter(&server).status(&qr()).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Mutation property test: no mutation of a normal answer is green unless the mutated
// answer is still a normal answer of the contract.
// ---------------------------------------------------------------------------------------

/// Replacement values: retypes, case swaps, unknown colours, extra nesting.
fn replacements(original: &Value) -> Vec<Value> {
    let mut out = vec![
        Value::Null,
        json!(0),
        json!(1),
        json!(-1),
        json!(1.5),
        json!(true),
        json!(false),
        json!(""),
        json!([]),
        json!({}),
        json!([original.clone()]),
        json!({ "value": original.clone() }),
        json!("yellow"),
        json!("red"),
        json!("blue"),
        json!("green"),
        json!("GREEN"),
        json!("Blue"),
        json!("unknown"),
        json!("绿码"),
        json!("self"),
        json!("proxy"),
        json!("confirmed"),
    ];
    if let Value::String(s) = original {
        out.push(json!(s.to_uppercase()));
        out.push(json!(s.to_lowercase()));
        out.push(json!(format!(" {s}")));
        out.push(json!(format!("{s} ")));
        out.push(json!(format!("{s}x")));
        out.push(json!(
            s.chars().take(s.chars().count() / 2).collect::<String>()
        ));
        out.push(json!(s.chars().rev().collect::<String>()));
    }
    if let Some(n) = original.as_i64() {
        out.push(json!(n.to_string()));
        out.push(json!(n + 1));
        out.push(json!(n * 1000));
    }
    out
}

/// Every mutation of `doc`: each field of the envelope and of `code_info` removed or
/// replaced, `code_info` nested or replaced, plus every truncation of the raw bytes.
fn mutations(doc: &Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let top = doc.as_object().unwrap();
    for key in top.keys() {
        let mut m = doc.clone();
        m.as_object_mut().unwrap().remove(key);
        out.push(m.to_string().into_bytes());
        for r in replacements(&top[key]) {
            let mut m = doc.clone();
            m[key] = r;
            out.push(m.to_string().into_bytes());
        }
    }
    let info = doc["code_info"].as_object().unwrap();
    for key in info.keys() {
        let mut m = doc.clone();
        m["code_info"].as_object_mut().unwrap().remove(key);
        out.push(m.to_string().into_bytes());
        for r in replacements(&info[key]) {
            let mut m = doc.clone();
            m["code_info"][key] = r;
            out.push(m.to_string().into_bytes());
        }
        // Renamed key (case swap).
        let mut m = doc.clone();
        let v = m["code_info"].as_object_mut().unwrap().remove(key).unwrap();
        m["code_info"][key.to_uppercase()] = v;
        out.push(m.to_string().into_bytes());
    }
    // Extra nesting of the whole envelope.
    out.push(json!({ "data": doc }).to_string().into_bytes());
    out.push(json!([doc]).to_string().into_bytes());
    let raw = doc.to_string().into_bytes();
    for cut in 0..raw.len() {
        out.push(raw[..cut].to_vec());
    }
    out
}

/// Whether `body` is still a normal (green) answer of the contract: errcode 0, colour
/// exactly `blue` or `green`, no red category.
fn is_contract_green(body: &[u8]) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("errcode") != Some(&json!(0)) {
        return None;
    }
    let info = v.get("code_info")?;
    if !matches!(info.get("red_category"), None | Some(Value::Null)) {
        return None;
    }
    match info.get("color")?.as_str()? {
        "blue" => Some("blue"),
        "green" => Some("green"),
        _ => None,
    }
}

#[test]
fn mutations_of_normal_answers_are_never_a_false_green() {
    let now = Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap();
    let mut checked = 0;
    for file in ["green.json", "blue.json"] {
        let doc: Value = serde_json::from_str(&fixture_str(REGION, file)).unwrap();
        for body in mutations(&doc) {
            checked += 1;
            let Ok(Answer::Status(s)) = interpret(&body, now) else {
                continue;
            };
            if s.color != Color::Green {
                continue;
            }
            let shown = String::from_utf8_lossy(&body);
            let colour = is_contract_green(&body)
                .unwrap_or_else(|| panic!("false green from mutation of {file}: {shown}"));
            assert_eq!(s.level, Level::Clear, "{shown}");
            assert_eq!(
                s.proxy_applied,
                Some(colour == "green"),
                "proxy_applied follows the colour: {shown}"
            );
        }
    }
    assert!(checked > 500, "only {checked} mutations");
}

#[test]
fn the_token_answer_fixture_parses() {
    let now = Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap();
    let t = hcgw_adapters::regions::guangzhou::parse_token_response(
        &fixture(REGION, "token.json"),
        now,
    )
    .unwrap();
    assert_eq!(t.value.expose(), "ACCESS_TOKEN_A");
    assert_eq!(t.lifetime, Duration::from_secs(7200));
    let e = hcgw_adapters::regions::guangzhou::parse_token_response(
        &fixture(REGION, "token_error_40001.json"),
        now,
    )
    .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
}
