//! Yuekang Code (`regions/guangdong.md`) against the mTLS mock: client certificates from
//! the test PKI's Guangdong CA, the mock verifying `X-Yss-Paasid` (E401 otherwise), JSON
//! answers from `fixtures/guangdong/`.

use std::time::Duration;

use hcgw_adapters::adapter::{Identity, RegionAdapter, Subject};
use hcgw_adapters::regions::guangdong::{
    self, CHECK_PATH, GuangdongAdapter, GuangdongConfig, PAAS_ID_HEADER,
};
use hcgw_adapters::upstream::{UpstreamConfig, UpstreamTls};
use hcgw_adapters::{
    AdapterCode, AdapterError, Color, HealthStatus, IdType, Level, Reason, Secret,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::hangzhou::json_mutations;
use crate::mtls_mock::{MtlsMock, Recorded, Reply, region_tls, tls_with, upstream_path};
use crate::support::{fixture, test_pki};

const PAAS_ID: &str = "a1b2c3d4e5f60718";
const TOKEN: &str = "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0";
const JSON: &str = "application/json;charset=UTF-8";

fn adapter_full(
    mock: &MtlsMock,
    tls: UpstreamTls,
    paas_id: &str,
    deadline: Duration,
) -> GuangdongAdapter {
    let mut upstream = UpstreamConfig::new(mock.base_url(), deadline);
    upstream.tls = tls;
    upstream.max_body_bytes = 64 * 1024;
    GuangdongAdapter::new(GuangdongConfig {
        upstream,
        paas_id: Secret::new(paas_id),
    })
    .expect("adapter")
}

fn adapter(mock: &MtlsMock) -> GuangdongAdapter {
    adapter_full(
        mock,
        region_tls("guangdong"),
        PAAS_ID,
        Duration::from_millis(1500),
    )
}

fn qr() -> Subject {
    Subject::QrToken(TOKEN.into())
}

/// A mock that, like the region, answers E401 without the right PaaS id and `reply` to
/// `POST /ykm/v2/health/check` otherwise.
async fn mock_with(reply: Reply) -> MtlsMock {
    MtlsMock::start("guangdong", move |req: &Recorded| {
        if req.header(PAAS_ID_HEADER).as_deref() != Some(PAAS_ID) {
            return Reply::new(200, JSON, fixture("guangdong", "error_E401.json"));
        }
        if req.method == "POST" && req.path == CHECK_PATH {
            reply.clone()
        } else {
            Reply::new(404, "text/plain", "not found")
        }
    })
    .await
}

async fn lookup_fixture(name: &str) -> Result<HealthStatus, AdapterError> {
    let mock = mock_with(Reply::new(200, JSON, fixture("guangdong", name))).await;
    adapter(&mock).status(&qr()).await
}

/// One codeStatus of the contract: colour, level, source code and reasons.
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
}

colour_tests! {
    colour_1_green_clear: ("green.json", Color::Green, Level::Clear, "1", vec![]),
    colour_2_yellow_monitoring: (
        "yellow.json",
        Color::Yellow,
        Level::Monitoring,
        "2",
        vec![Reason::HomeQuarantine],
    ),
    colour_3_red_quarantine: (
        "red.json",
        Color::Red,
        Level::Quarantine,
        "3",
        vec![Reason::CentralizedQuarantine],
    ),
    colour_0_unassigned_is_unknown: ("unassigned.json", Color::Unknown, Level::Unknown, "0", vec![]),
    colour_unlisted_is_unknown: ("unknown_status.json", Color::Unknown, Level::Unknown, "9", vec![]),
}

#[tokio::test]
async fn green_is_clear_with_compact_local_time() {
    let s = lookup_fixture("green.json").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
    assert_eq!(s.source.code, "1");
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-04-01T08:30:15+08:00");
    assert_eq!(s.holder.name_masked.as_deref(), Some("陈*"));
    assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
    assert!(s.reasons.is_empty());
}

#[tokio::test]
async fn yellow_is_monitoring() {
    let s = lookup_fixture("yellow.json").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
    assert_eq!(s.reasons, vec![Reason::HomeQuarantine]);
    assert_eq!(s.holder.id_type, Some(IdType::HkMacaoPermit));
    assert_eq!(s.source.label.as_deref(), Some("居家隔离"));
}

#[tokio::test]
async fn red_is_quarantine() {
    let s = lookup_fixture("red.json").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Red, Level::Quarantine));
    assert_eq!(s.reasons, vec![Reason::CentralizedQuarantine]);
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-04-01T10:00:00+08:00");
}

#[tokio::test]
async fn every_category_maps() {
    let table = [
        ("CENTRAL_ISOLATION", Reason::CentralizedQuarantine),
        ("HOME_ISOLATION", Reason::HomeQuarantine),
        ("CLOSE_CONTACT", Reason::CloseContact),
        ("CONFIRMED", Reason::ConfirmedCase),
        ("ASYMPTOMATIC", Reason::AsymptomaticInfection),
        ("NAT_POSITIVE", Reason::NucleicAcidPositive),
        ("RISK_AREA", Reason::HighRiskAreaArrival),
        ("HEALTH_MONITORING", Reason::HomeQuarantine),
        ("SOMETHING_NEW", Reason::OtherConcern),
    ];
    let mut base: Value = serde_json::from_slice(&fixture("guangdong", "red.json")).unwrap();
    for (category, reason) in table {
        base["data"]["categories"] = json!([category]);
        let mock = mock_with(Reply::new(200, JSON, base.to_string())).await;
        let s = adapter(&mock).status(&qr()).await.unwrap();
        assert_eq!(s.reasons, vec![reason], "category {category}");
        assert_eq!(s.color, Color::Red, "category {category}");
    }
}

#[tokio::test]
async fn requests_carry_the_paas_id_and_the_contract_body() {
    let mock = mock_with(Reply::new(200, JSON, fixture("guangdong", "green.json"))).await;
    let a = adapter(&mock);
    a.status(&qr()).await.unwrap();
    for (id_type, card) in [
        (IdType::ResidentId, "1"),
        (IdType::Passport, "2"),
        (IdType::HkMacaoPermit, "3"),
        (IdType::TaiwanPermit, "4"),
    ] {
        a.status(&Subject::Identity(Identity {
            id_type,
            id_number: "440304199001011234".into(),
            name: "黄大仙".into(),
        }))
        .await
        .unwrap();
        let last = mock.requests().pop().unwrap();
        let body: Value = serde_json::from_slice(&last.body).unwrap();
        assert_eq!(
            body,
            json!({"cardType": card, "cardNo": "440304199001011234", "name": "黄大仙"})
        );
    }
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 5);
    let first: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(first, json!({"qrText": TOKEN}));
    for r in &reqs {
        assert_eq!(r.header(PAAS_ID_HEADER).as_deref(), Some(PAAS_ID));
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", CHECK_PATH));
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
}

#[tokio::test]
async fn auth_wrong_paas_id() {
    let mock = mock_with(Reply::new(200, JSON, fixture("guangdong", "green.json"))).await;
    let a = adapter_full(
        &mock,
        region_tls("guangdong"),
        "0000000000000000",
        Duration::from_millis(1500),
    );
    let e = a.status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable);
    assert!(matches!(
        e,
        AdapterError::Unavailable {
            credentials: true,
            ..
        }
    ));
    assert_eq!(mock.count(), 1);
}

/// One errCode of the error table.
async fn check_error(code: &str, status: u16, expected: AdapterCode) {
    let mock = mock_with(Reply::new(
        status,
        JSON,
        fixture("guangdong", &format!("error_{code}.json")),
    ))
    .await;
    let e = adapter(&mock).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), expected, "errCode {code} HTTP {status}");
    match code {
        "E429" => assert_eq!(e.retry_after(), Some(Duration::from_secs(20))),
        "E503" => assert!(e.is_retryable()),
        "E401" => assert!(!e.is_retryable()),
        _ => {}
    }
}

error_tests! {
    error_e401_not_authorised: ("E401", 200, AdapterCode::RegionUnavailable),
    error_e404_subject_not_found: ("E404", 200, AdapterCode::SubjectNotFound),
    error_e410_token_expired: ("E410", 200, AdapterCode::TokenExpired),
    error_e429_rate_limited: ("E429", 200, AdapterCode::UpstreamRateLimited),
    error_e503_unavailable_http_503: ("E503", 503, AdapterCode::RegionUnavailable),
    error_e503_unavailable_http_200: ("E503", 200, AdapterCode::RegionUnavailable),
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let mock = mock_with(Reply::huge_chunked(
        200,
        JSON,
        br#"{"errCode":"0","errMsg":""#,
    ))
    .await;
    let e = adapter(&mock).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert_eq!(mock.count(), 1);
}

async fn assert_handshake_refused(tls: UpstreamTls, what: &str) {
    let mock = mock_with(Reply::new(200, JSON, fixture("guangdong", "green.json"))).await;
    let e = adapter_full(&mock, tls, PAAS_ID, Duration::from_millis(1500))
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable, "{what}: {e:?}");
    assert_eq!(mock.count(), 0, "{what}: no request may reach the region");
}

/// The client presents `client` (no certificate, one from Sukang's CA, an untrusted
/// one): the handshake fails, region_unavailable, and nothing reaches the region.
async fn check_auth(client: &str) {
    let ca = upstream_path("guangdong", "ca.pem");
    let tls = match client {
        "none" => tls_with(&ca, None),
        "sukang" => tls_with(
            &ca,
            Some((
                &upstream_path("sukang", "client/cert.pem"),
                &upstream_path("sukang", "client/key.pem"),
            )),
        ),
        "untrusted" => {
            let untrusted = test_pki().join("untrusted/client");
            tls_with(
                &ca,
                Some((&untrusted.join("cert.pem"), &untrusted.join("key.pem"))),
            )
        }
        other => unreachable!("{other}"),
    };
    assert_handshake_refused(tls, client).await;
}

auth_tests! {
    auth_client_certificate_missing: ("none"),
    auth_client_certificate_from_another_region_ca: ("sukang"),
    auth_client_certificate_untrusted: ("untrusted"),
}

#[tokio::test]
async fn auth_server_not_chaining_to_the_region_ca_is_refused() {
    let mock = MtlsMock::start_with("sukang", "guangdong", |_| {
        Reply::new(200, JSON, fixture("guangdong", "green.json"))
    })
    .await;
    let e = adapter(&mock).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable, "{e:?}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn slow_region_is_a_timeout() {
    let mock = mock_with(
        Reply::new(200, JSON, fixture("guangdong", "green.json")).delay(Duration::from_secs(3)),
    )
    .await;
    let e = adapter_full(
        &mock,
        region_tls("guangdong"),
        PAAS_ID,
        Duration::from_millis(400),
    )
    .status(&qr())
    .await
    .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);
}

#[tokio::test]
async fn http_5xx_is_unavailable() {
    for status in [500, 502, 503, 504] {
        let mock = mock_with(Reply::new(status, "text/html", "<html>busy</html>")).await;
        let e = adapter(&mock).status(&qr()).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::RegionUnavailable, "HTTP {status}");
    }
}

#[tokio::test]
async fn broken_answers_are_invalid_responses() {
    let green = fixture("guangdong", "green.json");
    let mut huge = b"{\"errCode\":\"0\",\"pad\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024));
    huge.extend(b"\"}");
    let cases: Vec<(&str, Reply)> = vec![
        (
            "malformed",
            Reply::new(200, JSON, fixture("guangdong", "malformed.json")),
        ),
        (
            "truncated",
            Reply::new(200, JSON, green[..green.len() / 2].to_vec()),
        ),
        ("empty", Reply::new(200, JSON, Vec::new())),
        (
            "wrong content type",
            Reply::new(200, "text/plain", green.clone()),
        ),
        ("huge", Reply::new(200, JSON, huge)),
        ("HTTP 404", Reply::new(404, JSON, green.clone())),
        (
            "unknown errCode",
            Reply::new(200, JSON, r#"{"errCode":"E418","errMsg":"teapot"}"#),
        ),
        (
            "numeric codeStatus",
            Reply::new(200, JSON, r#"{"errCode":"0","data":{"codeStatus":1}}"#),
        ),
        (
            "bad statusTime",
            Reply::new(
                200,
                JSON,
                r#"{"errCode":"0","data":{"codeStatus":"1","statusTime":"2022-04-01 10:00:00"}}"#,
            ),
        ),
        ("no data", Reply::new(200, JSON, r#"{"errCode":"0"}"#)),
    ];
    for (name, reply) in cases {
        let mock = mock_with(reply).await;
        let e = adapter(&mock).status(&qr()).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{name}");
    }
}

#[test]
fn mutations_of_the_green_fixture_never_turn_green_unless_still_green() {
    let green = fixture("guangdong", "green.json");
    let doc: Value = serde_json::from_slice(&green).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let check = |name: &str, bytes: &[u8], still_green: bool| {
        let r = guangdong::interpret(StatusCode::OK, &headers, bytes);
        if let Ok(s) = &r
            && s.color == Color::Green
        {
            assert!(still_green, "mutation {name} gave green: {s:?}");
        }
    };
    let mutations = json_mutations(&doc);
    assert!(mutations.len() > 100, "{}", mutations.len());
    for (name, m) in &mutations {
        let still_green = m["errCode"] == json!("0") && m["data"]["codeStatus"] == json!("1");
        check(name, m.to_string().as_bytes(), still_green);
    }
    for c in [
        "0", "2", "3", "01", " 1", "1 ", "一", "green", "GREEN", "11", "-1", "1.0",
    ] {
        let mut m = doc.clone();
        m["data"]["codeStatus"] = json!(c);
        check(c, m.to_string().as_bytes(), false);
    }
    for v in [
        json!(1),
        json!(1.0),
        json!(true),
        json!(["1"]),
        json!({"v": "1"}),
    ] {
        let mut m = doc.clone();
        m["data"]["codeStatus"] = v.clone();
        check(&format!("retyped {v}"), m.to_string().as_bytes(), false);
    }
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
    for status in [201, 204, 301, 400, 401, 404, 429, 500, 503] {
        let r = guangdong::interpret(StatusCode::from_u16(status).unwrap(), &headers, &green);
        assert!(r.is_err(), "HTTP {status}");
    }
}
