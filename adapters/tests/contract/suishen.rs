//! Contract tests of the `suishen` (随申码 Suishen Code) adapter against a wiremock of
//! `shared/spec/regions/suishen.md`. The mock verifies the OAuth2 client credentials and
//! the Bearer token like the region does, and SM2-signs every body with the dev PKI's
//! `upstream/suishen/sign-key-{1,2}.pem`. Interoperability with the `openssl` CLI is
//! proven both ways.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{TimeZone, Utc};
use hcgw_adapters::adapter::Identity;
use hcgw_adapters::regions::suishen::{
    Answer, KEY_ID_HEADER, REASON_TAGS, SIGNATURE_HEADER, SuishenAdapter, SuishenConfig,
    TOKEN_PATH, VERIFY_PATH, interpret, sm2,
};
use hcgw_adapters::upstream::UpstreamConfig;
use hcgw_adapters::{
    Action, AdapterCode, AdapterError, Color, HealthStatus, IdType, Level, Reason, RegionAdapter,
    Secret, Subject,
};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::support::{fixture, fixture_str, test_pki};

const REGION: &str = "suishen";
const CLIENT_ID: &str = "hcgw-dev";
const SECRET: &str = "suishen-secret-for-tests";
const QR: &str = "Qm9vdHN0cmFwLXRva2VuLTAwMDAwMDAx";

fn key_dir() -> PathBuf {
    test_pki().join("upstream/suishen")
}

fn signing_key(n: u8) -> sm2::SigningKey {
    let pem = std::fs::read(key_dir().join(format!("sign-key-{n}.pem"))).unwrap();
    sm2::SigningKey::from_pem(&pem).unwrap()
}

fn public_keys() -> Vec<(String, Vec<u8>)> {
    (1..=2)
        .map(|n| {
            (
                format!("sign-key-{n}"),
                std::fs::read(key_dir().join(format!("sign-key-{n}.pub.pem"))).unwrap(),
            )
        })
        .collect()
}

/// A response whose body is signed by `sign-key-<n>`.
fn signed_by(n: u8, status: u16, body: Vec<u8>) -> ResponseTemplate {
    let sig = BASE64.encode(signing_key(n).sign(&body).unwrap());
    ResponseTemplate::new(status)
        .set_body_raw(body, "application/json")
        .insert_header(KEY_ID_HEADER, format!("sign-key-{n}").as_str())
        .insert_header(SIGNATURE_HEADER, sig.as_str())
}

fn signed(status: u16, body: Vec<u8>) -> ResponseTemplate {
    signed_by(1, status, body)
}

fn token_body(token: &str) -> Vec<u8> {
    json!({"access_token": token, "token_type": "Bearer", "expires_in": 7200})
        .to_string()
        .into_bytes()
}

/// Matches a form-encoded body with exactly these fields.
struct FormIs(Vec<(&'static str, &'static str)>);

impl Match for FormIs {
    fn matches(&self, req: &Request) -> bool {
        let form_type = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = std::str::from_utf8(&req.body).unwrap_or("");
        let fields: HashMap<&str, &str> =
            body.split('&').filter_map(|p| p.split_once('=')).collect();
        form_type
            && fields.len() == self.0.len()
            && self.0.iter().all(|(k, v)| fields.get(k) == Some(v))
    }
}

fn valid_credentials() -> FormIs {
    FormIs(vec![
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
    ])
}

/// A Suishen mock: issues `token` for our client credentials (401 invalid_client
/// otherwise); the verify endpoint answers 401/40101 to any other token.
async fn suishen(token: &str) -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server, token, 5, None).await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(signed(401, fixture(REGION, "token_invalid_client.json")))
        .with_priority(50)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(VERIFY_PATH))
        .respond_with(signed(401, fixture(REGION, "error_40101.json")))
        .with_priority(50)
        .mount(&server)
        .await;
    server
}

async fn mount_token(server: &MockServer, token: &str, priority: u8, times: Option<u64>) {
    let mut mock = Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(valid_credentials())
        .respond_with(signed(200, token_body(token)).set_delay(Duration::from_millis(100)))
        .with_priority(priority);
    if let Some(n) = times {
        mock = mock.up_to_n_times(n);
    }
    mock.mount(server).await;
}

/// Answers a QR lookup made with Bearer `token`.
async fn answer(server: &MockServer, token: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(VERIFY_PATH))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .and(body_json(json!({ "qrcode": QR })))
        .respond_with(response)
        .with_priority(10)
        .mount(server)
        .await;
}

fn adapter_with(server: &MockServer, secret: &str, deadline: Duration) -> SuishenAdapter {
    SuishenAdapter::new(SuishenConfig {
        upstream: UpstreamConfig::new(server.uri(), deadline),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(secret),
        signing_keys: public_keys(),
    })
    .expect("adapter builds")
}

fn adapter(server: &MockServer) -> SuishenAdapter {
    adapter_with(server, SECRET, Duration::from_millis(1500))
}

fn qr() -> Subject {
    Subject::QrToken(QR.into())
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

async fn lookup_with(response: ResponseTemplate) -> Result<HealthStatus, AdapterError> {
    let server = suishen("TOK").await;
    answer(&server, "TOK", response).await;
    adapter(&server).status(&qr()).await
}

async fn lookup_signed(status: u16, body: Vec<u8>) -> Result<HealthStatus, AdapterError> {
    lookup_with(signed(status, body)).await
}

/// One codeColor of the contract: colour, level, source code and reasons.
async fn check_colour(
    file: &'static str,
    color: Color,
    level: Level,
    code: &str,
    reasons: Vec<Reason>,
) {
    let s = lookup_signed(200, fixture(REGION, file))
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!((s.color, s.level), (color, level), "{file}");
    assert_eq!(s.source.code, code, "{file}");
    assert_eq!(s.reasons, reasons, "{file}");
}

colour_tests! {
    colour_0_green_clear: ("green.json", Color::Green, Level::Clear, "0", vec![]),
    colour_1_yellow_monitoring: (
        "yellow.json",
        Color::Yellow,
        Level::Monitoring,
        "1",
        vec![Reason::HighRiskAreaArrival],
    ),
    colour_2_red_quarantine: (
        "red.json",
        Color::Red,
        Level::Quarantine,
        "2",
        vec![Reason::UnderMedicalManagement],
    ),
}

#[tokio::test]
async fn code_color_0_is_green_clear() {
    let s = lookup_signed(200, fixture(REGION, "green.json"))
        .await
        .unwrap();
    assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
    assert_eq!(s.source.code, "0");
    assert!(s.reasons.is_empty() && s.actions.is_empty());
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-03-03T12:35:12+08:00");
    assert_eq!(s.holder.name_masked.as_deref(), Some("李*"));
    assert_eq!(s.holder.id_masked.as_deref(), Some("310***********0012"));
    assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
}

#[tokio::test]
async fn code_color_1_is_yellow_monitoring() {
    let s = lookup_signed(200, fixture(REGION, "yellow.json"))
        .await
        .unwrap();
    assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
    assert_eq!(s.reasons, vec![Reason::HighRiskAreaArrival]);
    assert_eq!(
        s.source.label.as_deref(),
        Some("重点地区来沪未满14天，建议观察")
    );
}

#[tokio::test]
async fn code_color_2_is_red_quarantine() {
    let s = lookup_signed(200, fixture(REGION, "red.json"))
        .await
        .unwrap();
    assert_eq!((s.color, s.level), (Color::Red, Level::Quarantine));
    assert_eq!(s.reasons, vec![Reason::UnderMedicalManagement]);
}

#[tokio::test]
async fn every_reason_tag_maps() {
    let template: Value = serde_json::from_slice(&fixture(REGION, "red.json")).unwrap();
    // The spec's table, literally (not only the adapter's own constant).
    let spec = [
        ("FROM_KEY_AREA", Reason::HighRiskAreaArrival),
        ("UNDER_MEDICAL_MANAGEMENT", Reason::UnderMedicalManagement),
        ("CONFIRMED_NOT_DISCHARGED", Reason::ConfirmedCase),
        ("SUSPECTED_NOT_EXCLUDED", Reason::SuspectedCase),
    ];
    assert_eq!(REASON_TAGS, spec, "the adapter's table is the spec's");
    for (tag, reason) in spec {
        let mut body = template.clone();
        body["data"]["reasonTags"] = json!([tag]);
        let s = lookup_signed(200, body.to_string().into_bytes())
            .await
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(s.reasons, vec![reason], "reasonTags {tag}");
    }
    let mut body = template.clone();
    body["data"]["reasonTags"] = json!(["NEW_TAG"]);
    let s = lookup_signed(200, body.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(s.reasons, vec![Reason::OtherConcern], "unlisted tag");
}

#[tokio::test]
async fn registration_required_means_register_on_arrival() {
    let s = lookup_signed(200, fixture(REGION, "green_registration_required.json"))
        .await
        .unwrap();
    assert_eq!(s.level, Level::Clear);
    assert_eq!(s.actions, vec![Action::RegisterOnArrival]);
    assert_eq!(s.holder.id_type, Some(IdType::Passport));
}

#[tokio::test]
async fn colour_unlisted_is_unknown_never_green() {
    let s = lookup_signed(200, fixture(REGION, "unknown_color.json"))
        .await
        .unwrap();
    assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown));
}

/// The green fixture with `codeColor` replaced by a value outside the contract (which
/// wants the integer 0): an unlisted integer is unknown, any other JSON type is not the
/// contract's answer at all (`upstream_invalid_response`); never green.
async fn check_code_color_value(c: Value, invalid: bool) {
    let mut body: Value = serde_json::from_slice(&fixture(REGION, "green.json")).unwrap();
    body["data"]["codeColor"] = c.clone();
    let r = lookup_signed(200, body.to_string().into_bytes()).await;
    if invalid {
        assert_eq!(
            r.unwrap_err().code(),
            AdapterCode::UpstreamInvalidResponse,
            "codeColor {c}"
        );
    } else {
        assert_eq!(r.unwrap().color, Color::Unknown, "codeColor {c}");
    }
}

case_tests!(check_code_color_value {
    colour_string_0_is_invalid: (json!("0"), true),
    colour_float_0_is_invalid: (json!(0.0), true),
    colour_true_is_invalid: (json!(true), true),
    colour_minus_1_is_unknown: (json!(-1), false),
});

/// One code of the error table, answered (signed, with `retry-after: 12`) to every
/// query made with a valid token.
async fn check_error(status: u16, file: &str, expected: AdapterCode) {
    let server = suishen("TOK").await;
    answer(
        &server,
        "TOK",
        signed(status, fixture(REGION, file)).insert_header("retry-after", "12"),
    )
    .await;
    let e = adapter(&server).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), expected, "{file}");
    match file {
        // Token expired: refresh once, retry once, then give up.
        "error_40101.json" => assert_eq!(token_fetches(&server).await, 2),
        "error_40301.json" => assert!(
            matches!(
                e,
                AdapterError::Unavailable {
                    credentials: true,
                    ..
                }
            ),
            "40301 alerts"
        ),
        "error_42901.json" => assert_eq!(e.retry_after(), Some(Duration::from_secs(12))),
        _ => {}
    }
}

error_tests! {
    error_40101_token_expired_twice: (401, "error_40101.json", AdapterCode::RegionUnavailable),
    error_40301_client_not_allowed: (403, "error_40301.json", AdapterCode::RegionUnavailable),
    error_40401_subject_not_found: (404, "error_40401.json", AdapterCode::SubjectNotFound),
    error_40402_qr_expired: (410, "error_40402.json", AdapterCode::TokenExpired),
    error_42901_rate_limited: (429, "error_42901.json", AdapterCode::UpstreamRateLimited),
    error_50301_busy: (503, "error_50301.json", AdapterCode::RegionUnavailable),
}

#[tokio::test]
async fn identity_lookup_sends_id_type_codes() {
    for (id_type, code, number) in [
        (IdType::ResidentId, "01", "310104199003070012"),
        (IdType::Passport, "02", "E12345678"),
        (IdType::HkMacaoPermit, "03", "H12345678"),
        (IdType::TaiwanPermit, "04", "T1234567"),
    ] {
        let server = suishen("TOK").await;
        Mock::given(method("POST"))
            .and(path(VERIFY_PATH))
            .and(header("authorization", "Bearer TOK"))
            .and(body_json(
                json!({"idType": code, "idNo": number, "name": "李雷"}),
            ))
            .respond_with(signed(200, fixture(REGION, "green.json")))
            .with_priority(10)
            .mount(&server)
            .await;
        let s = adapter(&server)
            .status(&Subject::Identity(Identity {
                id_type,
                id_number: number.into(),
                name: "李雷".into(),
            }))
            .await
            .unwrap_or_else(|e| panic!("{id_type}: {e}"));
        assert_eq!(s.level, Level::Clear);
    }
}

#[tokio::test]
async fn auth_wrong_client_secret() {
    let server = suishen("TOK").await;
    answer(&server, "TOK", signed(200, fixture(REGION, "green.json"))).await;
    let e = adapter_with(&server, "wrong", Duration::from_millis(1500))
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

#[tokio::test]
async fn auth_token_rejected_twice() {
    // The region issues a token its API then refuses (401/40101): refresh once, retry
    // once, then give up.
    let server = suishen("REFUSED").await;
    let e = adapter(&server).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert_eq!(token_fetches(&server).await, 2);
}

#[tokio::test]
async fn auth_token_expired_is_refreshed_once() {
    let server = suishen("TOK-B").await;
    mount_token(&server, "TOK-A", 1, Some(1)).await;
    answer(
        &server,
        "TOK-B",
        signed(200, fixture(REGION, "yellow.json")),
    )
    .await;
    let a = adapter(&server);
    assert_eq!(a.status(&qr()).await.unwrap().level, Level::Monitoring);
    assert_eq!(token_fetches(&server).await, 2);
    a.status(&qr()).await.unwrap();
    assert_eq!(token_fetches(&server).await, 2, "the fresh token is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_lookups_fetch_one_token() {
    let server = suishen("TOK").await;
    answer(&server, "TOK", signed(200, fixture(REGION, "green.json"))).await;
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
    assert_eq!(token_fetches(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_lookups_on_an_expired_token_refresh_once() {
    let server = suishen("TOK-B").await;
    mount_token(&server, "TOK-A", 1, Some(1)).await;
    answer(&server, "TOK-B", signed(200, fixture(REGION, "red.json"))).await;
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
        "initial fetch + one shared refresh"
    );
}

#[tokio::test]
async fn key_rotation_accepts_both_configured_keys() {
    let s = lookup_with(signed_by(2, 200, fixture(REGION, "red.json")))
        .await
        .unwrap();
    assert_eq!(s.level, Level::Quarantine);
}

/// A verify answer whose signature is missing or wrong (`case`): always
/// upstream_invalid_response, even on error bodies.
async fn check_auth(case: &str) {
    let green = fixture(REGION, "green.json");
    let sig_of = |body: &[u8]| BASE64.encode(signing_key(1).sign(body).unwrap());
    let plain = |status: u16, body: Vec<u8>| {
        ResponseTemplate::new(status).set_body_raw(body, "application/json")
    };
    let response = match case {
        "unsigned green" => plain(200, green.clone()),
        "signature of another body" => plain(200, green.clone())
            .insert_header(KEY_ID_HEADER, "sign-key-1")
            .insert_header(
                SIGNATURE_HEADER,
                sig_of(&fixture(REGION, "red.json")).as_str(),
            ),
        "signed with the empty distinguishing id" => {
            let empty_id_sig = BASE64.encode(signing_key(1).sign_with_id(&green, b"").unwrap());
            plain(200, green.clone())
                .insert_header(KEY_ID_HEADER, "sign-key-1")
                .insert_header(SIGNATURE_HEADER, empty_id_sig.as_str())
        }
        "unknown key id" => plain(200, green.clone())
            .insert_header(KEY_ID_HEADER, "sign-key-9")
            .insert_header(SIGNATURE_HEADER, sig_of(&green).as_str()),
        "key id of the other key" => plain(200, green.clone())
            .insert_header(KEY_ID_HEADER, "sign-key-2")
            .insert_header(SIGNATURE_HEADER, sig_of(&green).as_str()),
        "no key id" => {
            plain(200, green.clone()).insert_header(SIGNATURE_HEADER, sig_of(&green).as_str())
        }
        "not base64" => plain(200, green.clone())
            .insert_header(KEY_ID_HEADER, "sign-key-1")
            .insert_header(SIGNATURE_HEADER, "!!not-base64!!"),
        "not DER" => plain(200, green.clone())
            .insert_header(KEY_ID_HEADER, "sign-key-1")
            .insert_header(SIGNATURE_HEADER, BASE64.encode(b"hello").as_str()),
        "unsigned not-found" => plain(404, fixture(REGION, "error_40401.json")),
        "unsigned token-expired" => plain(410, fixture(REGION, "error_40402.json")),
        "unsigned 40101" => plain(401, fixture(REGION, "error_40101.json")),
        other => unreachable!("{other}"),
    };
    let e = lookup_with(response).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{case}");
}

auth_tests! {
    auth_bad_signature_unsigned_green: ("unsigned green"),
    auth_bad_signature_of_another_body: ("signature of another body"),
    auth_bad_signature_empty_distinguishing_id: ("signed with the empty distinguishing id"),
    auth_bad_signature_unknown_key_id: ("unknown key id"),
    auth_bad_signature_key_id_of_the_other_key: ("key id of the other key"),
    auth_bad_signature_no_key_id: ("no key id"),
    auth_bad_signature_not_base64: ("not base64"),
    auth_bad_signature_not_der: ("not DER"),
    auth_bad_signature_unsigned_not_found: ("unsigned not-found"),
    auth_bad_signature_unsigned_token_expired: ("unsigned token-expired"),
    auth_bad_signature_unsigned_40101: ("unsigned 40101"),
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let token = token_body("TOK");
    let sig = BASE64.encode(signing_key(1).sign(&token).unwrap());
    let server = crate::support::ChunkedServer::start(
        "application/json",
        br#"{"code":0,"message":""#,
        vec![crate::support::Fixed {
            path: TOKEN_PATH.into(),
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (KEY_ID_HEADER.into(), "sign-key-1".into()),
                (SIGNATURE_HEADER.into(), sig),
            ],
            body: token,
        }],
    )
    .await;
    let e = SuishenAdapter::new(SuishenConfig {
        upstream: UpstreamConfig::new(server.uri(), Duration::from_millis(1500)),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(SECRET),
        signing_keys: public_keys(),
    })
    .expect("adapter builds")
    .status(&qr())
    .await
    .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert!(server.streamed() >= 1, "the huge body was streamed");
}

#[tokio::test]
async fn auth_bad_signature_unsigned_token_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(token_body("TOK"), "application/json"),
        )
        .mount(&server)
        .await;
    answer(&server, "TOK", signed(200, fixture(REGION, "green.json"))).await;
    let e = adapter(&server).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
}

#[tokio::test]
async fn timeouts() {
    let e =
        lookup_with(signed(200, fixture(REGION, "green.json")).set_delay(Duration::from_secs(3)))
            .await
            .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(signed(200, token_body("TOK")).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let e = adapter_with(&server, SECRET, Duration::from_millis(300))
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);
}

#[tokio::test]
async fn http_5xx_is_region_unavailable() {
    for (name, response) in [
        ("empty 500", ResponseTemplate::new(500)),
        ("empty 502", ResponseTemplate::new(502)),
        (
            "signed 500",
            signed(500, br#"{"code":50001,"message":"x"}"#.to_vec()),
        ),
        (
            "signed 50301",
            signed(503, fixture(REGION, "error_50301.json")),
        ),
    ] {
        let e = lookup_with(response).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable, "{name}");
    }
}

#[tokio::test]
async fn broken_bodies_are_invalid_responses() {
    let mut huge = br#"{"code":0,"message":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    huge.extend_from_slice(br#"","data":{"codeColor":0}}"#);
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        ("malformed", signed(200, fixture(REGION, "malformed.json"))),
        ("truncated", signed(200, fixture(REGION, "truncated.json"))),
        ("text/plain", {
            let body = fixture(REGION, "green.json");
            let sig = BASE64.encode(signing_key(1).sign(&body).unwrap());
            ResponseTemplate::new(200)
                .set_body_raw(body, "text/plain")
                .insert_header(KEY_ID_HEADER, "sign-key-1")
                .insert_header(SIGNATURE_HEADER, sig.as_str())
        }),
        ("huge", signed(200, huge)),
        ("empty 200", ResponseTemplate::new(200)),
        (
            "data missing",
            signed(200, br#"{"code":0,"message":"ok"}"#.to_vec()),
        ),
        (
            "status/code mismatch",
            signed(200, fixture(REGION, "error_40401.json")),
        ),
    ];
    for (name, response) in cases {
        let e = lookup_with(response).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Interoperability with the openssl CLI (OpenSSL 3): the spec's own test-vector commands.
// ---------------------------------------------------------------------------------------

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-suishen-sm2")
        .join(format!("{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cli_sign(key: &str, body: &[u8], distid: Option<&str>, dir: &std::path::Path) -> Vec<u8> {
    let (body_path, sig_path) = (dir.join("body"), dir.join("sig"));
    std::fs::write(&body_path, body).unwrap();
    let key = key_dir().join(key);
    let distid = distid.map(|d| format!("distid:{d}"));
    let mut args = vec![
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-inkey",
        key.to_str().unwrap(),
        "-in",
        body_path.to_str().unwrap(),
        "-out",
        sig_path.to_str().unwrap(),
    ];
    if let Some(d) = &distid {
        args.extend(["-pkeyopt", d.as_str()]);
    }
    let out = openssl(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(sig_path).unwrap()
}

#[test]
fn cli_signatures_verify_in_rust_and_only_with_the_right_distid() {
    let dir = scratch("cli-to-rust");
    let body = fixture(REGION, "yellow.json");
    let headers = |kid: &str, sig: &[u8]| {
        let mut h = HeaderMap::new();
        h.insert(KEY_ID_HEADER, kid.parse().unwrap());
        h.insert(SIGNATURE_HEADER, BASE64.encode(sig).parse().unwrap());
        h
    };
    let verifier = hcgw_adapters::regions::suishen::SignatureVerifier::new(&public_keys()).unwrap();
    for n in [1, 2] {
        let sig = cli_sign(
            &format!("sign-key-{n}.pem"),
            &body,
            Some("1234567812345678"),
            &dir,
        );
        verifier
            .check(&headers(&format!("sign-key-{n}"), &sig), &body)
            .unwrap_or_else(|e| panic!("CLI signature by key {n}: {e}"));
        // The same signature under the other key id fails.
        let other = format!("sign-key-{}", 3 - n);
        assert!(verifier.check(&headers(&other, &sig), &body).is_err());
    }
    // OpenSSL 3's default distinguishing ID is empty: such a signature must FAIL.
    let sig = cli_sign("sign-key-1.pem", &body, None, &dir);
    assert_eq!(
        verifier
            .check(&headers("sign-key-1", &sig), &body)
            .unwrap_err()
            .code(),
        AdapterCode::UpstreamInvalidResponse
    );
    let sig = cli_sign("sign-key-1.pem", &body, Some("0000000000000000"), &dir);
    assert!(verifier.check(&headers("sign-key-1", &sig), &body).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rust_signatures_verify_with_the_cli() {
    let dir = scratch("rust-to-cli");
    let body = fixture(REGION, "red.json");
    let sig = signing_key(1).sign(&body).unwrap();
    let (body_path, sig_path) = (dir.join("body"), dir.join("sig"));
    std::fs::write(&body_path, &body).unwrap();
    std::fs::write(&sig_path, &sig).unwrap();
    let pub_key = key_dir().join("sign-key-1.pub.pem");
    let verify = |distid: Option<&str>, key: &std::path::Path| {
        let distid = distid.map(|d| format!("distid:{d}"));
        let mut args = vec![
            "pkeyutl",
            "-verify",
            "-rawin",
            "-digest",
            "sm3",
            "-pubin",
            "-inkey",
            key.to_str().unwrap(),
            "-in",
            body_path.to_str().unwrap(),
            "-sigfile",
            sig_path.to_str().unwrap(),
        ];
        if let Some(d) = &distid {
            args.extend(["-pkeyopt", d.as_str()]);
        }
        openssl(&args)
    };
    let out = verify(Some("1234567812345678"), &pub_key);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("Verified Successfully"),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !verify(None, &pub_key).status.success(),
        "empty distid must fail"
    );
    assert!(
        !verify(
            Some("1234567812345678"),
            &key_dir().join("sign-key-2.pub.pem")
        )
        .status
        .success(),
        "other key must fail"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------
// Mutation property test (on the signature-checked body: `interpret`).
// ---------------------------------------------------------------------------------------

fn replacements(original: &Value) -> Vec<Value> {
    let mut out = vec![
        Value::Null,
        json!(0),
        json!(1),
        json!(2),
        json!(3),
        json!(-1),
        json!(0.0),
        json!(1.5),
        json!(true),
        json!(false),
        json!(""),
        json!("0"),
        json!([]),
        json!({}),
        json!([original.clone()]),
        json!({ "value": original.clone() }),
        json!("DONE"),
        json!("REQUIRED"),
        json!("green"),
        json!(["FROM_KEY_AREA"]),
        json!(["CONFIRMED_NOT_DISCHARGED"]),
        json!(["SOMETHING_NEW"]),
        json!("01"),
        json!("05"),
    ];
    if let Value::String(s) = original {
        out.push(json!(s.to_uppercase()));
        out.push(json!(s.to_lowercase()));
        out.push(json!(format!(" {s}")));
        out.push(json!(format!("{s}x")));
        out.push(json!(
            s.chars().take(s.chars().count() / 2).collect::<String>()
        ));
    }
    if let Some(n) = original.as_i64() {
        out.push(json!(n.to_string()));
        out.push(json!(n + 1));
        out.push(json!(n / 1000));
    }
    out
}

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
    let data = doc["data"].as_object().unwrap();
    for key in data.keys() {
        let mut m = doc.clone();
        m["data"].as_object_mut().unwrap().remove(key);
        out.push(m.to_string().into_bytes());
        for r in replacements(&data[key]) {
            let mut m = doc.clone();
            m["data"][key] = r;
            out.push(m.to_string().into_bytes());
        }
        let mut m = doc.clone();
        let v = m["data"].as_object_mut().unwrap().remove(key).unwrap();
        m["data"][key.to_lowercase()] = v;
        out.push(m.to_string().into_bytes());
    }
    out.push(json!({ "result": doc }).to_string().into_bytes());
    out.push(json!([doc]).to_string().into_bytes());
    let raw = doc.to_string().into_bytes();
    for cut in 0..raw.len() {
        out.push(raw[..cut].to_vec());
    }
    out
}

/// Whether the body is still a green answer of the contract: code 0, codeColor the
/// integer 0, no reason tags.
fn is_contract_green(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let data = &v["data"];
    v.get("code") == Some(&json!(0))
        && data.get("codeColor").and_then(Value::as_u64) == Some(0)
        && data.get("codeColor").is_some_and(|c| c.is_u64())
        && match data.get("reasonTags") {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        }
}

#[test]
fn mutations_of_a_green_answer_are_never_a_false_green() {
    let now = Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap();
    let mut checked = 0;
    for file in ["green.json", "green_registration_required.json"] {
        let doc: Value = serde_json::from_str(&fixture_str(REGION, file)).unwrap();
        for body in mutations(&doc) {
            for status in [200, 404] {
                checked += 1;
                let Ok(Answer::Status(s)) = interpret(status, &HeaderMap::new(), &body, now) else {
                    continue;
                };
                if s.color == Color::Green {
                    assert_eq!(status, 200);
                    assert!(
                        is_contract_green(&body),
                        "false green from a mutation of {file}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        }
    }
    assert!(checked > 800, "only {checked} mutations");
}

#[test]
fn the_token_answer_fixture_parses() {
    use hcgw_adapters::regions::suishen::parse_token_response;
    let t = parse_token_response(200, &HeaderMap::new(), &fixture(REGION, "token.json")).unwrap();
    assert_eq!(t.value.expose(), "SUISHEN_TOKEN_A");
    assert_eq!(t.lifetime, Duration::from_secs(7200));
    let e = parse_token_response(
        401,
        &HeaderMap::new(),
        &fixture(REGION, "token_invalid_client.json"),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        AdapterError::Unavailable {
            credentials: true,
            ..
        }
    ));
    let mut not_bearer: Value = serde_json::from_slice(&fixture(REGION, "token.json")).unwrap();
    not_bearer["token_type"] = json!("mac");
    let e = parse_token_response(200, &HeaderMap::new(), not_bearer.to_string().as_bytes())
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
}
