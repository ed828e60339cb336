//! Xuzhou (徐州健康宝) against a wiremock of its contract: the mock verifies the API key
//! and the request form; the Sukang fallback is tested with a small fake Sukang adapter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hcgw_adapters::adapter::Identity;
use hcgw_adapters::regions::xuzhou::{self, FALLBACK_LABEL, XuzhouAdapter, XuzhouConfig};
use hcgw_adapters::upstream::UpstreamConfig;
use hcgw_adapters::{
    Action, AdapterCode, AdapterError, Color, HealthStatus, IdType, Level, Reason, RegionAdapter,
    RegionId, Secret, Source, Subject,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::fixture_str;
use crate::suzhou::{json_mutations, json_response};

const KEY: &str = "xuzhou-test-key";
const QR: &str = "0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f";
const ID: &str = "320302199001010021";
const NAME: &str = "刘 备";

fn fixture_body(name: &str) -> String {
    fixture_str("xuzhou", name)
}

/// Verifies the API key and the request's path and query like the region, then
/// delegates.
fn checked<F>(inner: F) -> impl Respond
where
    F: Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
{
    move |req: &Request| {
        let key = req
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if key != KEY {
            return json_response(401, fixture_body("error_40101.json"));
        }
        let path = req.url.path();
        let ok = if path == format!("/xzjkb/v1/qr/{QR}/status") {
            req.url.query().is_none()
        } else if path == "/xzjkb/v1/person/status" {
            let q: std::collections::HashMap<String, String> =
                req.url.query_pairs().into_owned().collect();
            q.get("idCard").map(String::as_str) == Some(ID)
                && q.get("name").map(String::as_str) == Some(NAME)
                && q.len() == 2
                && req.url.query().is_some_and(|q| q.contains("%20"))
        } else {
            false
        };
        if req.method.as_str() != "GET" || !ok {
            return json_response(200, fixture_body("error_40001.json"));
        }
        inner(req)
    }
}

fn config(uri: &str, key: &str, fallback: bool) -> XuzhouConfig {
    XuzhouConfig {
        upstream: UpstreamConfig::new(uri, Duration::from_secs(2)),
        api_key: Secret::new(key),
        fallback_to_sukang: fallback,
    }
}

async fn server_with(responder: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

async fn lookup_with(
    responder: impl Respond + 'static,
    subject: &Subject,
) -> Result<HealthStatus, AdapterError> {
    let server = server_with(responder).await;
    XuzhouAdapter::new(config(&server.uri(), KEY, false), None)
        .unwrap()
        .status(subject)
        .await
}

fn qr() -> Subject {
    Subject::QrToken(QR.into())
}

fn person() -> Subject {
    Subject::Identity(Identity {
        id_type: IdType::ResidentId,
        id_number: ID.into(),
        name: NAME.into(),
    })
}

fn fixture_answer(name: &str) -> impl Respond {
    let body = fixture_body(name);
    checked(move |_| json_response(200, body.clone()))
}

/// One skm.color of the contract, by QR and by identity: colour, level, arrival
/// registration action and the common fields.
async fn check_colour(name: &'static str, color: Color, level: Level, register: bool) {
    for subject in [qr(), person()] {
        let s = lookup_with(fixture_answer(name), &subject)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((s.color, s.level), (color, level), "{name}");
        assert_eq!(
            s.actions.contains(&Action::RegisterOnArrival),
            register,
            "{name}"
        );
        assert_eq!(s.region, RegionId::Xuzhou);
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-03-18T21:13:06+08:00");
        assert_eq!(s.holder.name_masked.as_deref(), Some("刘*"));
        assert_eq!(s.holder.id_masked.as_deref(), Some("3203**********0021"));
        assert!(s.reasons.is_empty());
        assert!(!s.provisional);
    }
}

colour_tests! {
    colour_green_clear: ("green.json", Color::Green, Level::Clear, false),
    colour_green_registered_clear: ("green_registered.json", Color::Green, Level::Clear, false),
    colour_green_registration_pending_register_on_arrival: (
        "green_registration_pending.json",
        Color::Green,
        Level::Clear,
        true,
    ),
    colour_yellow_monitoring: ("yellow.json", Color::Yellow, Level::Monitoring, false),
    colour_red_quarantine: ("red.json", Color::Red, Level::Quarantine, true),
    colour_unlisted_is_unknown: ("unknown_colour.json", Color::Unknown, Level::Unknown, false),
}

/// One errcode of the error table, answered with `http` and `Retry-After: 13`.
async fn check_error(code: u32, http: u16, expected: AdapterCode) {
    let body = fixture_body(&format!("error_{code}.json"));
    let e = lookup_with(
        checked(move |_| json_response(http, body.clone()).insert_header("Retry-After", "13")),
        &person(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), expected, "errcode {code} HTTP {http}");
    match code {
        42901 => assert_eq!(e.retry_after(), Some(Duration::from_secs(13))),
        40101 => assert!(matches!(
            e,
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        )),
        40004 => assert_eq!(e, AdapterError::UnsupportedIdType(IdType::ResidentId)),
        50001 => assert!(e.is_retryable()),
        _ => {}
    }
}

error_tests! {
    error_40001_invalid_parameter: (40001, 200, AdapterCode::UpstreamInvalidResponse),
    error_40004_unsupported_id_type: (40004, 200, AdapterCode::UnsupportedIdType),
    error_40101_bad_api_key_http_401: (40101, 401, AdapterCode::RegionUnavailable),
    error_40101_bad_api_key_http_200: (40101, 200, AdapterCode::RegionUnavailable),
    error_40401_subject_not_found: (40401, 200, AdapterCode::SubjectNotFound),
    error_41001_token_expired: (41001, 200, AdapterCode::TokenExpired),
    error_42901_rate_limited_http_429: (42901, 429, AdapterCode::UpstreamRateLimited),
    error_42901_rate_limited_http_200: (42901, 200, AdapterCode::UpstreamRateLimited),
    error_50001_busy: (50001, 200, AdapterCode::RegionUnavailable),
}

/// A wrong API key: the region answers 401/40101, region_unavailable with an alert.
async fn check_auth(key: &str) {
    let server = server_with(fixture_answer("green.json")).await;
    let e = XuzhouAdapter::new(config(&server.uri(), key, false), None)
        .unwrap()
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert!(matches!(
        e,
        AdapterError::Unavailable {
            credentials: true,
            ..
        }
    ));
}

auth_tests! {
    auth_wrong_api_key: ("wrong"),
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let server = crate::support::ChunkedServer::start(
        "application/json",
        br#"{"errcode":0,"errmsg":""#,
        vec![],
    )
    .await;
    let e = XuzhouAdapter::new(config(&server.uri(), KEY, false), None)
        .unwrap()
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert!(server.streamed() >= 1, "the huge body was streamed");
}

#[tokio::test]
async fn foreigners_are_refused_before_any_call() {
    let server = server_with(fixture_answer("green.json")).await;
    let adapter = XuzhouAdapter::new(config(&server.uri(), KEY, false), None).unwrap();
    for t in [
        IdType::Passport,
        IdType::HkMacaoPermit,
        IdType::TaiwanPermit,
    ] {
        assert!(!adapter.supports_id_type(t));
        let e = adapter
            .status(&Subject::Identity(Identity {
                id_type: t,
                id_number: "E12345678".into(),
                name: "JOHN SMITH".into(),
            }))
            .await
            .unwrap_err();
        assert_eq!(e, AdapterError::UnsupportedIdType(t));
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(adapter.supports_id_type(IdType::ResidentId));
}

#[tokio::test]
async fn transport_failures() {
    let green = fixture_body("green.json");
    let g = green.clone();
    let server = server_with(checked(move |_| {
        json_response(200, g.clone()).set_delay(Duration::from_millis(1500))
    }))
    .await;
    let mut cfg = config(&server.uri(), KEY, false);
    cfg.upstream.deadline = Duration::from_millis(300);
    let e = XuzhouAdapter::new(cfg, None)
        .unwrap()
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);

    let cases: Vec<(&str, ResponseTemplate, AdapterCode)> = vec![
        (
            "HTTP 500",
            ResponseTemplate::new(500),
            AdapterCode::RegionUnavailable,
        ),
        (
            "HTTP 404",
            json_response(404, "{}"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "malformed",
            json_response(200, "{errcode:0"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "truncated",
            json_response(200, green[..green.len() - 5].to_owned()),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "wrong content type",
            ResponseTemplate::new(200).set_body_raw(green.clone(), "application/xml"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "huge body",
            json_response(
                200,
                format!(
                    r#"{{"errcode":0,"pad":"{}","data":{{"skm":{{"color":"GREEN"}}}}}}"#,
                    "x".repeat(4 << 20)
                ),
            ),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "offsetless updatedAt",
            json_response(
                200,
                green.replace("2022-03-18T21:13:06+08:00", "2022-03-18 21:13:06"),
            ),
            AdapterCode::UpstreamInvalidResponse,
        ),
    ];
    for (name, template, expected) in cases {
        let e = lookup_with(checked(move |_| template.clone()), &qr())
            .await
            .unwrap_err();
        assert_eq!(e.code(), expected, "{name}");
    }
}

/// A fake Sukang adapter: counts calls, answers what it is given.
struct FakeSukang {
    calls: AtomicUsize,
    answer: Result<HealthStatus, AdapterError>,
}

#[async_trait]
impl RegionAdapter for FakeSukang {
    fn region(&self) -> RegionId {
        RegionId::Sukang
    }
    async fn status(&self, _subject: &Subject) -> Result<HealthStatus, AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
}

fn sukang_yellow() -> HealthStatus {
    let mut s = HealthStatus::new(
        RegionId::Sukang,
        Level::Monitoring,
        Source {
            code: "黄码".into(),
            label: Some("黄码".into()),
        },
    );
    s.push_reason(Reason::HomeQuarantine);
    s.push_action(Action::UpdateIdentity);
    s
}

fn fake(answer: Result<HealthStatus, AdapterError>) -> Arc<FakeSukang> {
    Arc::new(FakeSukang {
        calls: AtomicUsize::new(0),
        answer,
    })
}

async fn with_fallback(
    responder: impl Respond + 'static,
    fallback: bool,
    sukang: &Arc<FakeSukang>,
    subject: &Subject,
) -> Result<HealthStatus, AdapterError> {
    let server = server_with(responder).await;
    let mut cfg = config(&server.uri(), KEY, fallback);
    cfg.upstream.deadline = Duration::from_millis(400);
    let s: Arc<dyn RegionAdapter> = sukang.clone();
    XuzhouAdapter::new(cfg, Some(s))
        .unwrap()
        .status(subject)
        .await
}

fn busy() -> impl Respond {
    fixture_answer("error_50001.json")
}

#[tokio::test]
async fn fallback_to_sukang_when_xuzhou_is_unavailable() {
    // Busy (50001), HTTP 503 and a timeout all fall back for identity lookups.
    let responders: Vec<(&str, Box<dyn Respond>)> = vec![
        ("50001", Box::new(busy())),
        (
            "HTTP 503",
            Box::new(checked(|_| ResponseTemplate::new(503))),
        ),
        (
            "timeout",
            Box::new(checked(|_| {
                json_response(200, fixture_body("green.json")).set_delay(Duration::from_secs(2))
            })),
        ),
    ];
    for (name, responder) in responders {
        let sukang = fake(Ok(sukang_yellow()));
        let responder = move |r: &Request| responder.respond(r);
        let s = with_fallback(responder, true, &sukang, &person())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sukang.calls.load(Ordering::SeqCst), 1, "{name}");
        assert_eq!(s.region, RegionId::Xuzhou, "{name}");
        assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
        assert_eq!(s.source.code, "黄码");
        assert_eq!(s.source.label.as_deref(), Some(FALLBACK_LABEL));
        assert!(s.actions.contains(&Action::RegisterOnArrival), "{name}");
        assert!(s.actions.contains(&Action::UpdateIdentity), "{name}");
        assert_eq!(s.reasons, vec![Reason::HomeQuarantine]);
        assert!(s.provisional);
    }
    // Connection refused falls back too.
    let sukang = fake(Ok(sukang_yellow()));
    let s: Arc<dyn RegionAdapter> = sukang.clone();
    let r = XuzhouAdapter::new(config("http://127.0.0.1:9", KEY, true), Some(s))
        .unwrap()
        .status(&person())
        .await
        .unwrap();
    assert_eq!(r.source.label.as_deref(), Some(FALLBACK_LABEL));
}

#[tokio::test]
async fn no_fallback_outside_its_rules() {
    // QR lookups never fall back.
    let sukang = fake(Ok(sukang_yellow()));
    let e = with_fallback(busy(), true, &sukang, &qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert_eq!(sukang.calls.load(Ordering::SeqCst), 0);
    // Off by configuration.
    let e = with_fallback(busy(), false, &sukang, &person())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert_eq!(sukang.calls.load(Ordering::SeqCst), 0);
    // Refused credentials, throttling, not found, invalid answers: no fallback.
    for (name, status) in [
        ("error_40101.json", 401),
        ("error_42901.json", 429),
        ("error_40401.json", 200),
        ("error_40001.json", 200),
    ] {
        let body = fixture_body(name);
        let e = with_fallback(
            checked(move |_| json_response(status, body.clone())),
            true,
            &sukang,
            &person(),
        )
        .await
        .unwrap_err();
        assert_ne!(e.code(), AdapterCode::InvalidRequest, "{name}");
        assert_eq!(sukang.calls.load(Ordering::SeqCst), 0, "{name}");
    }
    // Xuzhou answers: Sukang is not asked.
    with_fallback(fixture_answer("green.json"), true, &sukang, &person())
        .await
        .unwrap();
    assert_eq!(sukang.calls.load(Ordering::SeqCst), 0);
    // Sukang failing too: the original Xuzhou error.
    let failing = fake(Err(AdapterError::Timeout(Duration::from_secs(2))));
    let e = with_fallback(busy(), true, &failing, &person())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert_eq!(failing.calls.load(Ordering::SeqCst), 1);
    // Fallback on but no Sukang adapter configured.
    let server = server_with(busy()).await;
    let e = XuzhouAdapter::new(config(&server.uri(), KEY, true), None)
        .unwrap()
        .status(&person())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
}

/// Every green answer comes from a document with `errcode` 0 and `skm.color` `GREEN`.
#[test]
fn mutations_of_green_are_never_falsely_green() {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
    let (mut total, mut greens) = (0, 0);
    for name in ["green.json", "green_registration_pending.json"] {
        let doc: Value = serde_json::from_str(&fixture_body(name)).unwrap();
        for (label, bytes) in json_mutations(&doc) {
            total += 1;
            let result = xuzhou::parse_answer(StatusCode::OK, &headers, &bytes)
                .and_then(|a| xuzhou::normalise(&a, None, None));
            if let Ok(s) = result
                && s.color == Color::Green
            {
                greens += 1;
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(v["errcode"], 0, "{name}: {label}");
                assert_eq!(v["data"]["skm"]["color"], "GREEN", "{name}: {label}");
            }
        }
    }
    assert!(
        total > 500 && greens > 0 && greens < total,
        "{greens}/{total}"
    );
}
