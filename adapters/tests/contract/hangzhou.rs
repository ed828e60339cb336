//! Hangzhou Health Code (`regions/hangzhou.md`) against a wiremock mock that verifies the
//! APPCODE and answers with the fixtures in `fixtures/hangzhou/`.

use std::time::Duration;

use hcgw_adapters::adapter::{Identity, RegionAdapter, Subject};
use hcgw_adapters::regions::hangzhou::{self, HangzhouAdapter, HangzhouConfig, QUERY_PATH};
use hcgw_adapters::upstream::UpstreamConfig;
use hcgw_adapters::{
    Action, AdapterCode, AdapterError, Color, HealthStatus, IdType, Level, Reason, Secret,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{fixture, fixture_str};

const APPCODE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const TOKEN: &str = "20200211000000012345";

fn adapter_for(server: &MockServer, appcode: &str, deadline: Duration) -> HangzhouAdapter {
    let mut upstream = UpstreamConfig::new(server.uri(), deadline);
    upstream.max_body_bytes = 64 * 1024;
    HangzhouAdapter::new(HangzhouConfig {
        upstream,
        appcode: Secret::new(appcode),
    })
    .expect("adapter")
}

fn adapter(server: &MockServer) -> HangzhouAdapter {
    adapter_for(server, APPCODE, Duration::from_millis(1500))
}

fn json_reply(status: u16, body: impl Into<Vec<u8>>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), "application/json;charset=UTF-8")
}

/// A mock that answers `reply` to correctly authenticated queries and, like the region,
/// 401 `AUTH_FAILED` to anything else.
async fn mock_with(reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .and(header(
            "authorization",
            format!("APPCODE {APPCODE}").as_str(),
        ))
        .respond_with(reply)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(json_reply(
            401,
            fixture("hangzhou", "error_AUTH_FAILED.json"),
        ))
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

fn qr() -> Subject {
    Subject::QrToken(TOKEN.into())
}

async fn lookup_fixture(name: &str) -> Result<HealthStatus, AdapterError> {
    let server = mock_with(json_reply(200, fixture("hangzhou", name))).await;
    adapter(&server).status(&qr()).await
}

/// One `color` of the contract: colour, level, source code, reasons; never an employee
/// code in the status.
async fn check_colour(
    name: &'static str,
    color: Color,
    level: Level,
    code: &str,
    reasons: Vec<Reason>,
) {
    let s = lookup_fixture(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!((s.color, s.level), (color, level), "{name}");
    assert_eq!(s.source.code, code, "{name}");
    assert_eq!(s.reasons, reasons, "{name}");
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.to_lowercase().contains("employee"), "{name}: {json}");
}

colour_tests! {
    colour_green_clear: ("green.json", Color::Green, Level::Clear, "green", vec![]),
    colour_yellow_monitoring: (
        "yellow.json",
        Color::Yellow,
        Level::Monitoring,
        "yellow",
        vec![Reason::HighRiskAreaArrival],
    ),
    colour_red_quarantine: (
        "red.json",
        Color::Red,
        Level::Quarantine,
        "red",
        vec![Reason::SharedSpaceWithCase],
    ),
    colour_unlisted_is_unknown: ("unknown_color.json", Color::Unknown, Level::Unknown, "orange", vec![]),
}

#[tokio::test]
async fn green_is_clear_with_time_holder_and_source() {
    let s = lookup_fixture("green.json").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
    assert_eq!(s.source.code, "green");
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-02-16T10:20:30+08:00");
    assert_eq!(s.holder.name_masked.as_deref(), Some("赵*"));
    assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
    assert_eq!(s.holder.id_masked.as_deref(), Some("3301**********0012"));
    assert!(s.reasons.is_empty() && s.actions.is_empty());
}

#[tokio::test]
async fn yellow_is_monitoring_with_its_reason_and_passport_holder() {
    let s = lookup_fixture("yellow.json").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
    assert_eq!(s.reasons, vec![Reason::HighRiskAreaArrival]);
    assert_eq!(s.holder.id_type, Some(IdType::Passport));
    assert!(s.actions.is_empty());
}

#[tokio::test]
async fn red_with_pending_appeal() {
    let s = lookup_fixture("red.json").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Red, Level::Quarantine));
    assert_eq!(s.reasons, vec![Reason::SharedSpaceWithCase]);
    assert_eq!(s.actions, vec![Action::AppealPending]);
}

#[tokio::test]
async fn employee_code_never_reaches_the_status() {
    for name in ["green.json", "red.json"] {
        let raw = fixture_str("hangzhou", name);
        assert!(raw.contains("employeeCode") && raw.contains("2020-02-14"));
        let s = lookup_fixture(name).await.unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.to_lowercase().contains("employee"), "{name}: {json}");
        assert!(
            !json.contains("2020-02-14"),
            "{name}: check-in date leaked: {json}"
        );
        assert!(
            !json.contains("lastCheckIn") && !json.contains("bound"),
            "{json}"
        );
    }
}

#[tokio::test]
async fn unknown_colour_is_unknown_never_green() {
    let s = lookup_fixture("unknown_color.json").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown));
    assert_eq!(s.source.code, "orange");
}

#[tokio::test]
async fn every_colour_reason_maps() {
    let table = [
        ("SHARED_SPACE_WITH_CASE", Reason::SharedSpaceWithCase),
        ("FROM_EPIDEMIC_AREA", Reason::HighRiskAreaArrival),
        ("SYMPTOMS_DECLARED", Reason::SelfReportedSymptoms),
        ("FALSE_DECLARATION", Reason::FalseDeclaration),
        ("QUARANTINE", Reason::HomeQuarantine),
        ("SOMETHING_NEW", Reason::OtherConcern),
    ];
    let mut base: Value = serde_json::from_slice(&fixture("hangzhou", "yellow.json")).unwrap();
    for (code, reason) in table {
        base["result"]["colorReasons"] = json!([code]);
        let server = mock_with(json_reply(200, base.to_string())).await;
        let s = adapter(&server).status(&qr()).await.unwrap();
        assert_eq!(s.reasons, vec![reason], "colorReasons {code}");
        assert_eq!(s.color, Color::Yellow, "colorReasons {code}");
    }
}

#[tokio::test]
async fn requests_carry_the_appcode_and_the_contract_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .and(header(
            "authorization",
            format!("APPCODE {APPCODE}").as_str(),
        ))
        .and(body_json(json!({"queryType":"QR","qrContent":TOKEN})))
        .respond_with(json_reply(200, fixture("hangzhou", "green.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .and(body_json(json!({"queryType":"CERT","certType":"ID_CARD",
            "certNo":"330106199001010012","name":"赵六"})))
        .respond_with(json_reply(200, fixture("hangzhou", "red.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .and(body_json(json!({"queryType":"CERT","certType":"PASSPORT",
            "certNo":"E12345678","name":"JOHN SMITH"})))
        .respond_with(json_reply(200, fixture("hangzhou", "yellow.json")))
        .expect(1)
        .mount(&server)
        .await;
    let a = adapter(&server);
    assert_eq!(a.status(&qr()).await.unwrap().color, Color::Green);
    let id = |id_type, n: &str, name: &str| {
        Subject::Identity(Identity {
            id_type,
            id_number: n.into(),
            name: name.into(),
        })
    };
    let s = a
        .status(&id(IdType::ResidentId, "330106199001010012", "赵六"))
        .await
        .unwrap();
    assert_eq!(s.color, Color::Red);
    let s = a
        .status(&id(IdType::Passport, "E12345678", "JOHN SMITH"))
        .await
        .unwrap();
    assert_eq!(s.color, Color::Yellow);
}

/// One `certType` of the contract: an identity lookup sends it, and an answer carrying it
/// reads back as the holder's id type.
async fn check_cert_type(id_type: IdType, cert_type: &str) {
    let mut answer: Value = serde_json::from_slice(&fixture("hangzhou", "green.json")).unwrap();
    answer["result"]["certType"] = json!(cert_type);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(QUERY_PATH))
        .and(header(
            "authorization",
            format!("APPCODE {APPCODE}").as_str(),
        ))
        .and(body_json(json!({"queryType":"CERT","certType":cert_type,
            "certNo":"X1234567","name":"赵六"})))
        .respond_with(json_reply(200, answer.to_string()))
        .expect(1)
        .mount(&server)
        .await;
    let a = adapter(&server);
    assert!(a.supports_id_type(id_type), "{cert_type}");
    let s = a
        .status(&Subject::Identity(Identity {
            id_type,
            id_number: "X1234567".into(),
            name: "赵六".into(),
        }))
        .await
        .unwrap_or_else(|e| panic!("{cert_type}: {e}"));
    assert_eq!(s.color, Color::Green, "{cert_type}");
    assert_eq!(s.holder.id_type, Some(id_type), "{cert_type}");
}

case_tests!(check_cert_type {
    cert_type_id_card: (IdType::ResidentId, "ID_CARD"),
    cert_type_passport: (IdType::Passport, "PASSPORT"),
    cert_type_hk_macao_pass: (IdType::HkMacaoPermit, "HK_MACAO_PASS"),
    cert_type_taiwan_pass: (IdType::TaiwanPermit, "TAIWAN_PASS"),
});

/// A wrong (or missing) APPCODE: the region answers 401 AUTH_FAILED, region_unavailable
/// with an alert.
async fn check_auth(appcode: &str) {
    let server = mock_with(json_reply(200, fixture("hangzhou", "green.json"))).await;
    let a = adapter_for(&server, appcode, Duration::from_millis(1500));
    let e = a.status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert!(
        matches!(
            e,
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        ),
        "{e:?}"
    );
}

auth_tests! {
    auth_wrong_appcode: ("wrong"),
}

/// One errorCode of the error table.
async fn check_error(code: &str, status: u16, expected: AdapterCode) {
    let mut reply = json_reply(status, fixture("hangzhou", &format!("error_{code}.json")));
    if code == "THROTTLED" {
        reply = reply.insert_header("Retry-After", "17");
    }
    let server = mock_with(reply).await;
    let e = adapter(&server).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), expected, "errorCode {code}");
    if code == "THROTTLED" {
        assert_eq!(e.retry_after(), Some(Duration::from_secs(17)));
    }
    if code == "SYSTEM_ERROR" {
        assert!(e.is_retryable());
    }
    if code == "AUTH_FAILED" {
        assert!(!e.is_retryable());
    }
}

error_tests! {
    error_auth_failed: ("AUTH_FAILED", 401, AdapterCode::RegionUnavailable),
    error_invalid_argument: ("INVALID_ARGUMENT", 400, AdapterCode::UpstreamInvalidResponse),
    error_not_found: ("NOT_FOUND", 200, AdapterCode::SubjectNotFound),
    error_qr_expired: ("QR_EXPIRED", 200, AdapterCode::TokenExpired),
    error_throttled: ("THROTTLED", 429, AdapterCode::UpstreamRateLimited),
    error_system_error: ("SYSTEM_ERROR", 500, AdapterCode::RegionUnavailable),
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let server = crate::support::ChunkedServer::start(
        "application/json;charset=UTF-8",
        br#"{"success":true,"pad":""#,
        vec![],
    )
    .await;
    let mut upstream = UpstreamConfig::new(server.uri(), Duration::from_millis(1500));
    upstream.max_body_bytes = 64 * 1024;
    let e = HangzhouAdapter::new(HangzhouConfig {
        upstream,
        appcode: Secret::new(APPCODE),
    })
    .expect("adapter")
    .status(&qr())
    .await
    .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert!(server.streamed() >= 1, "the huge body was streamed");
}

#[tokio::test]
async fn slow_region_is_a_timeout() {
    let server = mock_with(
        json_reply(200, fixture("hangzhou", "green.json")).set_delay(Duration::from_secs(3)),
    )
    .await;
    let a = adapter_for(&server, APPCODE, Duration::from_millis(300));
    let e = a.status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);
}

#[tokio::test]
async fn http_5xx_without_contract_body_is_unavailable() {
    for status in [500, 502, 503, 504] {
        let reply = ResponseTemplate::new(status)
            .set_body_raw(fixture("hangzhou", "html_error.html"), "text/html");
        let server = mock_with(reply).await;
        let e = adapter(&server).status(&qr()).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable, "HTTP {status}");
    }
}

#[tokio::test]
async fn broken_answers_are_invalid_responses() {
    let green = fixture("hangzhou", "green.json");
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        (
            "malformed",
            json_reply(200, fixture("hangzhou", "malformed.json")),
        ),
        (
            "truncated",
            json_reply(200, green[..green.len() / 2].to_vec()),
        ),
        ("empty", json_reply(200, Vec::new())),
        (
            "wrong content type",
            ResponseTemplate::new(200).set_body_raw(green.clone(), "text/html"),
        ),
        (
            "huge body",
            json_reply(200, {
                let mut v = b"{\"success\":true,\"pad\":\"".to_vec();
                v.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024));
                v.extend(b"\"}");
                v
            }),
        ),
        ("HTTP 404", json_reply(404, green.clone())),
        (
            "unknown errorCode",
            json_reply(200, r#"{"success":false,"errorCode":"NEW_CODE"}"#),
        ),
        (
            "success without result",
            json_reply(200, r#"{"success":true}"#),
        ),
    ];
    for (name, reply) in cases {
        let server = mock_with(reply).await;
        let e = adapter(&server).status(&qr()).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{name}");
    }
}

/// Deterministic mutations of a JSON document: each field removed, nulled, retyped,
/// case-swapped, nested one level deeper; each string replaced by odd values.
pub fn json_mutations(doc: &Value) -> Vec<(String, Value)> {
    fn paths(v: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    prefix.push(PathStep::Key(k.clone()));
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    prefix.push(PathStep::Index(i));
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }
    fn get_mut<'a>(v: &'a mut Value, p: &[PathStep]) -> &'a mut Value {
        p.iter().fold(v, |v, s| match s {
            PathStep::Key(k) => &mut v[k.as_str()],
            PathStep::Index(i) => &mut v[*i],
        })
    }
    fn swap_case(s: &str) -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let mut out = Vec::new();
    for p in &all {
        let name = format!("{p:?}");
        let (parent, last) = p.split_at(p.len() - 1);
        // Removal.
        let mut m = doc.clone();
        match (&last[0], get_mut(&mut m, parent)) {
            (PathStep::Key(k), Value::Object(o)) => {
                o.remove(k);
            }
            (PathStep::Index(i), Value::Array(a)) => {
                a.remove(*i);
            }
            _ => {}
        }
        out.push((format!("remove {name}"), m));
        let original = get_mut(&mut doc.clone(), p).clone();
        let mut replacements: Vec<(&str, Value)> = vec![
            ("null", Value::Null),
            ("number", json!(1)),
            ("zero", json!(0)),
            ("bool", json!(true)),
            ("array", json!([original.clone()])),
            ("object", json!({"value": original.clone()})),
            ("empty string", json!("")),
            ("unknown colour", json!("GREENISH")),
            ("blue", json!("blue")),
            ("chinese", json!("绿码")),
        ];
        if let Value::String(s) = &original {
            replacements.push(("swap case", json!(swap_case(s))));
            replacements.push(("upper", json!(s.to_uppercase())));
            replacements.push(("padded", json!(format!(" {s} "))));
            replacements.push(("prefix", json!(format!("x{s}"))));
            replacements.push((
                "half",
                json!(s.chars().take(s.chars().count() / 2).collect::<String>()),
            ));
        }
        for (what, value) in replacements {
            let mut m = doc.clone();
            *get_mut(&mut m, p) = value;
            out.push((format!("{what} at {name}"), m));
        }
    }
    out
}

/// One step of a JSON path.
#[derive(Clone, Debug)]
pub enum PathStep {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

#[test]
fn mutations_of_the_green_fixture_never_turn_green_unless_still_green() {
    let green = fixture("hangzhou", "green.json");
    let doc: Value = serde_json::from_slice(&green).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let check = |name: &str, bytes: &[u8], still_green: bool| {
        let r = hangzhou::interpret(StatusCode::OK, &headers, bytes);
        if let Ok(s) = &r
            && s.color == Color::Green
        {
            assert!(still_green, "mutation {name} gave green: {s:?}");
        }
    };
    let mutations = json_mutations(&doc);
    assert!(mutations.len() > 100, "{}", mutations.len());
    for (name, m) in &mutations {
        let still_green = m["success"] == json!(true) && m["result"]["color"] == json!("green");
        check(name, m.to_string().as_bytes(), still_green);
    }
    // Every colour value we can think of except the contract's one.
    for c in [
        "Green", "GREEN", "green ", " green", "gr", "greenish", "绿", "绿码", "G", "1", "0",
    ] {
        let mut m = doc.clone();
        m["result"]["color"] = json!(c);
        check(c, m.to_string().as_bytes(), false);
    }
    // Truncations at every byte, and extra nesting of the whole document.
    let compact = doc.to_string().into_bytes();
    for n in 0..compact.len() {
        check(&format!("truncated at {n}"), &compact[..n], false);
    }
    check(
        "nested",
        json!({ "data": doc }).to_string().as_bytes(),
        false,
    );
    check("array", json!([doc]).to_string().as_bytes(), false);
    // Non-200 statuses with the green body.
    for status in [201, 204, 301, 400, 401, 404, 429, 500, 503] {
        let r = hangzhou::interpret(StatusCode::from_u16(status).unwrap(), &headers, &green);
        assert!(r.is_err(), "HTTP {status}");
    }
}

#[test]
fn fixtures_are_readable_text() {
    for name in [
        "green.json",
        "yellow.json",
        "red.json",
        "unknown_color.json",
    ] {
        let _: Value = serde_json::from_str(&fixture_str("hangzhou", name)).unwrap();
    }
}
