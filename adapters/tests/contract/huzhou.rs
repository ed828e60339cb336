//! Huzhou (湖州健康码) against a wiremock of its contract: the mock verifies the bearer
//! token, the form content type and the form body, and mirrors `status` in the HTTP status.

use std::time::Duration;

use hcgw_adapters::adapter::Identity;
use hcgw_adapters::regions::huzhou::{self, HuzhouAdapter, HuzhouConfig, QUERY_PATH};
use hcgw_adapters::upstream::UpstreamConfig;
use hcgw_adapters::{
    AdapterCode, AdapterError, Color, HealthStatus, IdType, Level, Reason, RegionAdapter, Secret,
    Subject,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::fixture_str;
use crate::suzhou::{json_mutations, json_response};

const TOKEN: &str = "huzhou-test-token";
const QR: &str = "9a8b7c6d5e4f3a2b1c0d9e8f";
const ID: &str = "33050219900101432X";

fn error_body(status: u16) -> String {
    fixture_str("huzhou", &format!("error_{status}.json"))
}

/// Verifies the region's request rules, then delegates.
fn checked<F>(inner: F) -> impl Respond
where
    F: Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
{
    move |req: &Request| {
        let h = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        if h("authorization") != format!("Bearer {TOKEN}") {
            return json_response(401, error_body(401));
        }
        let body = String::from_utf8_lossy(&req.body);
        let form_ok = body == format!("type=qr&content={QR}")
            || body.starts_with(&format!("type=id&sfzh={ID}&xm="));
        if h("content-type") != "application/x-www-form-urlencoded; charset=utf-8" || !form_ok {
            return json_response(400, r#"{"status":400,"msg":"bad request"}"#);
        }
        inner(req)
    }
}

fn config(uri: &str, token: &str) -> HuzhouConfig {
    HuzhouConfig {
        upstream: UpstreamConfig::new(uri, Duration::from_secs(2)),
        token: Secret::new(token),
    }
}

async fn lookup_with(
    responder: impl Respond + 'static,
    subject: &Subject,
) -> Result<HealthStatus, AdapterError> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .respond_with(responder)
        .mount(&server)
        .await;
    HuzhouAdapter::new(config(&server.uri(), TOKEN))
        .unwrap()
        .status(subject)
        .await
}

fn qr() -> Subject {
    Subject::QrToken(QR.into())
}

fn person(id_type: IdType, number: &str) -> Subject {
    Subject::Identity(Identity {
        id_type,
        id_number: number.into(),
        name: "孙悟空".into(),
    })
}

fn fixture_answer(name: &str) -> impl Respond {
    let body = fixture_str("huzhou", name);
    checked(move |_| json_response(200, body.clone()))
}

/// One qrColor fixture, by QR and by identity: colour, level, reasons, provisional and
/// the common fields.
async fn check_colour(
    name: &'static str,
    color: Color,
    level: Level,
    reasons: Vec<Reason>,
    provisional: bool,
) {
    for subject in [qr(), person(IdType::ResidentId, ID)] {
        let s = lookup_with(fixture_answer(name), &subject)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((s.color, s.level), (color, level), "{name}");
        assert_eq!(s.reasons, reasons, "{name}");
        assert_eq!(s.provisional, provisional, "{name}");
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-02-16T09:00:00+08:00");
        assert_eq!(s.holder.id_masked.as_deref(), Some("3305**********4321"));
        assert_eq!(s.holder.name_masked.as_deref(), Some("孙*"));
    }
}

colour_tests! {
    colour_1_green_clear: ("green.json", Color::Green, Level::Clear, vec![], false),
    colour_1_green_whitelist: (
        "green_whitelist.json",
        Color::Green,
        Level::Clear,
        vec![Reason::Whitelisted],
        false,
    ),
    colour_1_green_location_off_provisional: (
        "green_location_off.json",
        Color::Green,
        Level::Clear,
        vec![],
        true,
    ),
    colour_2_yellow_monitoring: (
        "yellow.json",
        Color::Yellow,
        Level::Monitoring,
        vec![Reason::MediumRiskAreaArrival],
        false,
    ),
    colour_3_red_quarantine: (
        "red.json",
        Color::Red,
        Level::Quarantine,
        vec![Reason::HighRiskAreaArrival],
        false,
    ),
    colour_unlisted_is_unknown: (
        "unknown_colour.json",
        Color::Unknown,
        Level::Unknown,
        vec![],
        false,
    ),
    colour_3_red_unlisted_reason_is_other_concern: (
        "unlisted_reason.json",
        Color::Red,
        Level::Quarantine,
        vec![Reason::OtherConcern],
        false,
    ),
}

/// One qrColor value with every reason of the table (and an unlisted one).
async fn check_colour_with_every_reason(color_value: &str, level: Level) {
    let base: Value = serde_json::from_str(&fixture_str("huzhou", "green.json")).unwrap();
    for (value, reason) in [
        ("CONFIRMED", Reason::ConfirmedCase),
        ("SUSPECTED", Reason::SuspectedCase),
        ("CONTACT", Reason::CloseContact),
        ("HUBEI", Reason::HighRiskAreaArrival),
        ("HIGH_RISK_AREA", Reason::HighRiskAreaArrival),
        ("MEDIUM_RISK_AREA", Reason::MediumRiskAreaArrival),
        ("SYMPTOMS", Reason::SelfReportedSymptoms),
        ("WHITELIST", Reason::Whitelisted),
        ("OTHER", Reason::OtherConcern),
        ("UNLISTED", Reason::OtherConcern),
    ] {
        let mut doc = base.clone();
        doc["body"]["qrColor"] = json!(color_value);
        doc["body"]["reasons"] = json!([value]);
        let body = doc.to_string();
        let s = lookup_with(checked(move |_| json_response(200, body.clone())), &qr())
            .await
            .unwrap_or_else(|e| panic!("{color_value}/{value}: {e}"));
        assert_eq!(s.level, level, "qrColor {color_value} reason {value}");
        assert_eq!(
            s.reasons,
            vec![reason],
            "qrColor {color_value} reason {value}"
        );
    }
}

case_tests!(check_colour_with_every_reason {
    colour_1_with_every_reason: ("1", Level::Clear),
    colour_2_with_every_reason: ("2", Level::Monitoring),
    colour_3_with_every_reason: ("3", Level::Quarantine),
});

/// One HTTP status of the error table (with `Retry-After: 11`).
async fn check_error(status: u16, expected: AdapterCode) {
    let body = error_body(status);
    let e = lookup_with(
        checked(move |_| json_response(status, body.clone()).insert_header("Retry-After", "11")),
        &qr(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), expected, "status {status}");
    if status == 429 {
        assert_eq!(e.retry_after(), Some(Duration::from_secs(11)));
    }
    if status == 401 {
        assert!(matches!(
            e,
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        ));
    }
}

error_tests! {
    error_401_bad_token: (401, AdapterCode::RegionUnavailable),
    error_404_subject_not_found: (404, AdapterCode::SubjectNotFound),
    error_410_token_expired: (410, AdapterCode::TokenExpired),
    error_422_unsupported_id_type: (422, AdapterCode::UnsupportedIdType),
    error_429_rate_limited: (429, AdapterCode::UpstreamRateLimited),
    error_500_unavailable: (500, AdapterCode::RegionUnavailable),
}

/// A wrong static Bearer token: the region answers 401, region_unavailable with an alert.
async fn check_auth(token: &str) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(fixture_answer("green.json"))
        .mount(&server)
        .await;
    let e = HuzhouAdapter::new(config(&server.uri(), token))
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
    auth_wrong_token: ("stolen"),
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let server = crate::support::ChunkedServer::start(
        "application/json",
        br#"{"status":200,"msg":""#,
        vec![],
    )
    .await;
    let e = HuzhouAdapter::new(config(&server.uri(), TOKEN))
        .unwrap()
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert!(server.streamed() >= 1, "the huge body was streamed");
}

#[tokio::test]
async fn only_resident_ids_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(fixture_answer("green.json"))
        .mount(&server)
        .await;
    let adapter = HuzhouAdapter::new(config(&server.uri(), TOKEN)).unwrap();
    for t in [
        IdType::Passport,
        IdType::HkMacaoPermit,
        IdType::TaiwanPermit,
    ] {
        assert!(!adapter.supports_id_type(t));
        let e = adapter.status(&person(t, "E12345678")).await.unwrap_err();
        assert_eq!(e, AdapterError::UnsupportedIdType(t));
    }
    assert!(adapter.supports_id_type(IdType::ResidentId));
    assert!(server.received_requests().await.unwrap().is_empty());
    // The name is form-encoded UTF-8.
    adapter
        .status(&person(IdType::ResidentId, ID))
        .await
        .unwrap();
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reqs[0].body),
        format!("type=id&sfzh={ID}&xm=%E5%AD%99%E6%82%9F%E7%A9%BA")
    );
}

#[tokio::test]
async fn transport_failures() {
    let green = fixture_str("huzhou", "green.json");
    let g = green.clone();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(checked(move |_| {
            json_response(200, g.clone()).set_delay(Duration::from_millis(1500))
        }))
        .mount(&server)
        .await;
    let mut cfg = config(&server.uri(), TOKEN);
    cfg.upstream.deadline = Duration::from_millis(300);
    let e = HuzhouAdapter::new(cfg)
        .unwrap()
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);

    let cases: Vec<(&str, ResponseTemplate, AdapterCode)> = vec![
        (
            "HTTP 503",
            ResponseTemplate::new(503),
            AdapterCode::RegionUnavailable,
        ),
        (
            "HTTP 418",
            json_response(418, "{}"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "HTTP 200 with status 500",
            json_response(200, error_body(500)),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "malformed",
            json_response(200, "{status:200"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "truncated",
            json_response(200, green[..green.len() - 10].to_owned()),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "wrong content type",
            ResponseTemplate::new(200).set_body_raw(green.clone(), "text/plain"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "huge body",
            json_response(
                200,
                format!(
                    r#"{{"status":200,"pad":"{}","body":{{"qrColor":"1"}}}}"#,
                    "x".repeat(4 << 20)
                ),
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

/// Every green answer comes from a document with `status` 200 and `qrColor` `"1"`.
#[test]
fn mutations_of_green_are_never_falsely_green() {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
    let (mut total, mut greens) = (0, 0);
    for name in [
        "green.json",
        "green_whitelist.json",
        "green_location_off.json",
    ] {
        let doc: Value = serde_json::from_str(&fixture_str("huzhou", name)).unwrap();
        for (label, bytes) in json_mutations(&doc) {
            total += 1;
            let result = huzhou::parse_answer(StatusCode::OK, &headers, &bytes, None)
                .and_then(|a| huzhou::normalise(&a));
            if let Ok(s) = result
                && s.color == Color::Green
            {
                greens += 1;
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(v["status"], 200, "{name}: {label}");
                assert_eq!(v["body"]["qrColor"], "1", "{name}: {label}");
            }
        }
    }
    assert!(
        total > 500 && greens > 0 && greens < total,
        "{greens}/{total}"
    );
}
