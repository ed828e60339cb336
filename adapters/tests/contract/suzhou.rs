//! Suzhou (苏城码) against a wiremock of its contract: the mock verifies the HMAC
//! signature, the timestamp window and nonce freshness the way the region does.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hcgw_adapters::adapter::Identity;
use hcgw_adapters::regions::suzhou::{
    self, HEADER_APP_ID, HEADER_NONCE, HEADER_SIGN, HEADER_TIMESTAMP, PERSON_PATH, QR_PATH,
    SuzhouAdapter, SuzhouConfig,
};
use hcgw_adapters::upstream::UpstreamConfig;
use hcgw_adapters::{
    Action, AdapterCode, AdapterError, Color, IdType, Level, Reason, RegionAdapter, Secret, Subject,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::fixture_str;

const APP_ID: &str = "hcgw-test";
const SECRET: &str = "s3cr3t";
const TOKEN: &str = "5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8";

pub(crate) fn json_response(status: u16, body: impl Into<Vec<u8>>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), "application/json; charset=utf-8")
}

fn ret(code: &str) -> String {
    format!(r#"{{"retCode":"{code}","retMsg":"x","data":null}}"#)
}

/// Verifies the signature, timestamp window and nonce like the region; answers `1001`,
/// `1002` or `1003` on failure, else delegates.
struct Signed<F> {
    seen: Mutex<HashSet<String>>,
    calls: AtomicUsize,
    inner: F,
}

fn signed<F: Fn(&Request, usize) -> ResponseTemplate + Send + Sync>(inner: F) -> Signed<F> {
    Signed {
        seen: Mutex::new(HashSet::new()),
        calls: AtomicUsize::new(0),
        inner,
    }
}

fn header<'a>(req: &'a Request, name: &str) -> &'a str {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl<F: Fn(&Request, usize) -> ResponseTemplate + Send + Sync> Respond for Signed<F> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let ts: i64 = match header(req, HEADER_TIMESTAMP).parse() {
            Ok(t) => t,
            Err(_) => return json_response(200, ret("1001")),
        };
        let nonce = header(req, HEADER_NONCE);
        let nonce_ok = (16..=64).contains(&nonce.len())
            && nonce
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase());
        let mut pq = req.url.path().to_owned();
        if let Some(q) = req.url.query() {
            pq = format!("{pq}?{q}");
        }
        let s = suzhou::string_to_sign(
            header(req, HEADER_APP_ID),
            ts,
            nonce,
            req.method.as_str(),
            &pq,
            &req.body,
        );
        if header(req, HEADER_APP_ID) != APP_ID
            || !nonce_ok
            || header(req, HEADER_SIGN) != suzhou::sign(SECRET, &s)
            || header(req, "content-type") != "application/json; charset=utf-8"
        {
            return json_response(200, ret("1001"));
        }
        if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
            return json_response(200, ret("1002"));
        }
        if !self.seen.lock().unwrap().insert(nonce.to_owned()) {
            return json_response(200, ret("1003"));
        }
        (self.inner)(req, n)
    }
}

fn config(uri: &str, secret: &str) -> SuzhouConfig {
    SuzhouConfig {
        upstream: UpstreamConfig::new(uri, Duration::from_secs(2)),
        app_id: APP_ID.into(),
        app_secret: Secret::new(secret),
    }
}

async fn server_with(responder: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

async fn lookup_with(
    responder: impl Respond + 'static,
    subject: &Subject,
) -> Result<hcgw_adapters::HealthStatus, AdapterError> {
    let server = server_with(responder).await;
    let adapter = SuzhouAdapter::new(config(&server.uri(), SECRET)).unwrap();
    adapter.status(subject).await
}

fn qr() -> Subject {
    Subject::QrToken(TOKEN.into())
}

fn fixture_answer(name: &'static str) -> impl Respond {
    let body = fixture_str("suzhou", name);
    signed(move |_req: &Request, _| json_response(200, body.clone()))
}

/// One codeStatus of the contract: colour, level, source code and a local `as_of`.
async fn check_colour(name: &'static str, color: Color, level: Level, code: &str) {
    let s = lookup_with(fixture_answer(name), &qr())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!((s.color, s.level), (color, level), "{name}");
    assert_eq!(s.source.code, code, "{name}");
    assert!(s.as_of.is_some(), "{name}");
    assert_eq!(s.as_of.unwrap().offset().local_minus_utc(), 8 * 3600);
}

colour_tests! {
    colour_g_green_clear: ("green.json", Color::Green, Level::Clear, "G"),
    colour_gp_green_pending: ("green_pending.json", Color::Green, Level::ClearRestricted, "GP"),
    colour_y_yellow_monitoring: ("yellow.json", Color::Yellow, Level::Monitoring, "Y"),
    colour_r_red_quarantine: ("red.json", Color::Red, Level::Quarantine, "R"),
    colour_unlisted_is_unknown: ("unknown_colour.json", Color::Unknown, Level::Unknown, "B"),
}

#[tokio::test]
async fn colour_fixture_details() {
    let s = lookup_with(fixture_answer("green_pending.json"), &qr())
        .await
        .unwrap();
    assert_eq!(s.source.label.as_deref(), Some("绿码待定"));
    assert_eq!(s.reasons, vec![Reason::ShortStayVisitor]);
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2020-03-02T08:15:00+08:00");
    assert_eq!(s.holder.name_masked.as_deref(), Some("张*"));
    let s = lookup_with(fixture_answer("red.json"), &qr())
        .await
        .unwrap();
    assert_eq!(s.quarantine_until.unwrap().to_string(), "2020-03-17");
    assert_eq!(s.reasons, vec![Reason::CloseContact]);
    let s = lookup_with(fixture_answer("yellow.json"), &qr())
        .await
        .unwrap();
    assert_eq!(s.holder.id_type, Some(IdType::Passport));
    assert_eq!(s.holder.name_masked.as_deref(), Some("欧阳*"));
}

#[tokio::test]
async fn every_reason_code() {
    let base: Value = serde_json::from_str(&fixture_str("suzhou", "red.json")).unwrap();
    for (code, status, reason) in [
        ("R11", "R", Reason::ConfirmedCase),
        ("R12", "R", Reason::SuspectedCase),
        ("R13", "R", Reason::AsymptomaticInfection),
        ("R14", "R", Reason::CloseContact),
        ("R2", "R", Reason::FeverClinicObservation),
        ("R3", "R", Reason::RecoveredUnderObservation),
        ("R4", "R", Reason::HighRiskAreaArrival),
        ("Y1", "Y", Reason::HouseholdOfObserved),
        ("Y2", "Y", Reason::SelfReportedSymptoms),
        ("Y3", "Y", Reason::OtherConcern),
        ("P1", "GP", Reason::NonresidentWithoutResidence),
        ("P2", "GP", Reason::ShortStayVisitor),
        ("R99", "R", Reason::OtherConcern),
    ] {
        let mut doc = base.clone();
        doc["data"]["codeStatus"] = json!(status);
        doc["data"]["reasonCodes"] = json!([code]);
        let body = doc.to_string();
        let s = lookup_with(
            signed(move |_: &Request, _| json_response(200, body.clone())),
            &qr(),
        )
        .await
        .unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(s.reasons, vec![reason], "reason code {code}");
    }
    let s = lookup_with(fixture_answer("unlisted_reason.json"), &qr())
        .await
        .unwrap();
    assert_eq!(
        (s.color, s.reasons),
        (Color::Red, vec![Reason::OtherConcern])
    );
}

/// One retCode of the error table (the mock answers it to every call, with
/// `Retry-After: 7`).
async fn check_error(code: &'static str, http: u16, expected: AdapterCode) {
    let body = fixture_str("suzhou", &format!("error_{code}.json"));
    let responder = signed(move |_: &Request, _| {
        json_response(http, body.clone()).insert_header("Retry-After", "7")
    });
    let e = lookup_with(responder, &qr()).await.unwrap_err();
    assert_eq!(e.code(), expected, "retCode {code}");
    match code {
        "1001" => assert!(matches!(
            e,
            AdapterError::Unavailable {
                credentials: true,
                ..
            }
        )),
        "4290" => assert_eq!(e.retry_after(), Some(Duration::from_secs(7))),
        "9999" => assert!(e.is_retryable()),
        _ => {}
    }
}

error_tests! {
    error_1001_signature_invalid: ("1001", 200, AdapterCode::RegionUnavailable),
    error_1002_timestamp_outside_window: ("1002", 200, AdapterCode::RegionUnavailable),
    error_1003_nonce_reused: ("1003", 200, AdapterCode::RegionUnavailable),
    error_2001_subject_not_found: ("2001", 200, AdapterCode::SubjectNotFound),
    error_2002_token_expired: ("2002", 200, AdapterCode::TokenExpired),
    error_4290_rate_limited: ("4290", 429, AdapterCode::UpstreamRateLimited),
    error_9999_busy: ("9999", 503, AdapterCode::RegionUnavailable),
}

#[tokio::test]
async fn error_2003_redeclare_is_unknown_never_green() {
    // 2003: a status of colour unknown with action redeclare, never the green it carries.
    let s = lookup_with(fixture_answer("error_2003.json"), &qr())
        .await
        .unwrap();
    assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown));
    assert_eq!(s.actions, vec![Action::Redeclare]);
}

#[tokio::test]
async fn error_4290_with_http_200_still_throttles() {
    // The retCode decides.
    let body = fixture_str("suzhou", "error_4290.json");
    let e = lookup_with(
        signed(move |_: &Request, _| {
            json_response(200, body.clone()).insert_header("Retry-After", "9")
        }),
        &qr(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));
}

#[tokio::test]
async fn error_unlisted_ret_code_is_invalid_response() {
    // An unknown retCode breaks the contract.
    let e = lookup_with(
        signed(|_: &Request, _| json_response(200, ret("7777"))),
        &qr(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
}

/// A timestamp (1002) or nonce (1003) refusal: retried exactly once with a fresh nonce
/// and timestamp; refused twice, region_unavailable.
async fn check_refused_then_retried(code: &'static str) {
    let green = fixture_str("suzhou", "green.json");
    let responder = signed(move |_: &Request, n| {
        if n == 0 {
            json_response(200, ret(code))
        } else {
            json_response(200, green.clone())
        }
    });
    let server = server_with(responder).await;
    let adapter = SuzhouAdapter::new(config(&server.uri(), SECRET)).unwrap();
    let s = adapter.status(&qr()).await.unwrap();
    assert_eq!(s.color, Color::Green, "{code} then success");
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2, "{code}: exactly one retry");
    assert_ne!(
        header(&reqs[0], HEADER_NONCE),
        header(&reqs[1], HEADER_NONCE),
        "{code}: fresh nonce"
    );
    // Twice refused: region_unavailable after exactly one retry.
    let responder = signed(move |_: &Request, _| json_response(200, ret(code)));
    let server = server_with(responder).await;
    let adapter = SuzhouAdapter::new(config(&server.uri(), SECRET)).unwrap();
    let e = adapter.status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable, "{code} twice");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

case_tests!(check_refused_then_retried {
    auth_timestamp_outside_window_is_retried_once: ("1002"),
    auth_nonce_reused_is_retried_once: ("1003"),
});

#[tokio::test]
async fn parallel_lookups_never_reuse_a_nonce() {
    let server = server_with(fixture_answer("green.json")).await;
    let adapter = std::sync::Arc::new(SuzhouAdapter::new(config(&server.uri(), SECRET)).unwrap());
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let a = adapter.clone();
            tokio::spawn(async move { a.status(&qr()).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap().color, Color::Green);
    }
    let reqs = server.received_requests().await.unwrap();
    let nonces: HashSet<&str> = reqs.iter().map(|r| header(r, HEADER_NONCE)).collect();
    assert_eq!(
        (reqs.len(), nonces.len()),
        (32, 32),
        "one request each, fresh nonces"
    );
}

/// Our credentials are wrong: the region answers 1001 (signature invalid), which is
/// region_unavailable with a credentials alert.
async fn check_auth(app_id: &str, secret: &str) {
    let server = server_with(fixture_answer("green.json")).await;
    let mut cfg = config(&server.uri(), secret);
    cfg.app_id = app_id.into();
    let e = SuzhouAdapter::new(cfg)
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
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no retry"
    );
}

auth_tests! {
    auth_wrong_hmac_secret: (APP_ID, "wrong"),
    auth_wrong_app_id: ("someone-else", SECRET),
}

#[tokio::test]
async fn requests_follow_the_contract_for_both_endpoints() {
    let green = fixture_str("suzhou", "green.json");
    let server = MockServer::start().await;
    let g = green.clone();
    Mock::given(method("POST"))
        .and(path(QR_PATH))
        .respond_with(signed(move |req: &Request, _| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body, json!({ "qrToken": TOKEN }));
            json_response(200, g.clone())
        }))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(PERSON_PATH))
        .respond_with(signed(move |req: &Request, _| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let expected = match body["certNo"].as_str().unwrap() {
                "32050119900307123X" => "IDCARD",
                "E12345678" => "PASSPORT",
                "H12345678" => "HKMO",
                "T12345678" => "TW",
                _ => "?",
            };
            if body["certType"] != expected || body["name"] != "张三" {
                return json_response(200, ret("2001"));
            }
            json_response(200, green.clone())
        }))
        .mount(&server)
        .await;
    let adapter = SuzhouAdapter::new(config(&server.uri(), SECRET)).unwrap();
    assert_eq!(adapter.status(&qr()).await.unwrap().color, Color::Green);
    for (id_type, number) in [
        (IdType::ResidentId, "32050119900307123X"),
        (IdType::Passport, "E12345678"),
        (IdType::HkMacaoPermit, "H12345678"),
        (IdType::TaiwanPermit, "T12345678"),
    ] {
        assert!(adapter.supports_id_type(id_type));
        let s = adapter
            .status(&Subject::Identity(Identity {
                id_type,
                id_number: number.into(),
                name: "张三".into(),
            }))
            .await
            .unwrap_or_else(|e| panic!("{id_type}: {e}"));
        assert_eq!(s.color, Color::Green, "{id_type}");
    }
}

#[tokio::test]
async fn transport_failures() {
    let green = fixture_str("suzhou", "green.json");
    // Timeout: the mock answers after the deadline.
    let g = green.clone();
    let server = server_with(signed(move |_: &Request, _| {
        json_response(200, g.clone()).set_delay(Duration::from_millis(1500))
    }))
    .await;
    let mut cfg = config(&server.uri(), SECRET);
    cfg.upstream.deadline = Duration::from_millis(300);
    let e = SuzhouAdapter::new(cfg)
        .unwrap()
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionTimeout);

    let cases: Vec<(&str, ResponseTemplate, AdapterCode)> = vec![
        (
            "HTTP 500",
            json_response(500, ret("9999")),
            AdapterCode::RegionUnavailable,
        ),
        (
            "HTTP 502 empty",
            ResponseTemplate::new(502),
            AdapterCode::RegionUnavailable,
        ),
        (
            "malformed",
            json_response(200, "{retCode:0000"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "truncated",
            json_response(200, green[..green.len() / 2].to_owned()),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "empty",
            json_response(200, ""),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "wrong content type",
            ResponseTemplate::new(200).set_body_raw(green.clone(), "text/html"),
            AdapterCode::UpstreamInvalidResponse,
        ),
        (
            "huge body",
            json_response(
                200,
                format!(
                    r#"{{"retCode":"0000","pad":"{}","data":{{"codeStatus":"G"}}}}"#,
                    "x".repeat(4 << 20)
                ),
            ),
            AdapterCode::UpstreamInvalidResponse,
        ),
    ];
    for (name, template, expected) in cases {
        let e = lookup_with(signed(move |_: &Request, _| template.clone()), &qr())
            .await
            .unwrap_err();
        assert_eq!(e.code(), expected, "{name}");
    }
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let server = crate::support::ChunkedServer::start(
        "application/json; charset=utf-8",
        br#"{"retCode":"0000","pad":""#,
        vec![],
    )
    .await;
    let e = SuzhouAdapter::new(config(&server.uri(), SECRET))
        .unwrap()
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert!(server.streamed() >= 1, "the huge body was streamed");
}

/// Every answer that is green must come from a document whose `retCode` is `0000` and
/// whose `codeStatus` is `G` or `GP`.
#[test]
fn mutations_of_green_are_never_falsely_green() {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        "application/json; charset=utf-8".parse().unwrap(),
    );
    let mut greens = 0;
    let mut total = 0;
    for name in ["green.json", "green_pending.json"] {
        let doc: Value = serde_json::from_str(&fixture_str("suzhou", name)).unwrap();
        for (label, bytes) in json_mutations(&doc) {
            total += 1;
            let result = suzhou::parse_answer(StatusCode::OK, &headers, &bytes)
                .and_then(|a| suzhou::normalise(&a, None));
            if let Ok(s) = result
                && s.color == Color::Green
            {
                greens += 1;
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(v["retCode"], "0000", "{name}: {label}");
                let code = v["data"]["codeStatus"].as_str();
                assert!(
                    matches!(code, Some("G") | Some("GP")),
                    "{name}: {label} gave green from {code:?}"
                );
                assert_eq!(s.source.code, code.unwrap());
            }
        }
    }
    assert!(total > 500, "{total} mutations");
    assert!(greens > 0 && greens < total);
}

/// A deterministic set of mutations of a JSON document: each value at every path
/// removed, nulled, retyped, replaced by colour-like values, case-swapped, padded and
/// wrapped; plus truncations of the whole text and extra nesting. Each comes with a label.
pub(crate) fn json_mutations(doc: &Value) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut paths = Vec::new();
    collect_paths(doc, &mut Vec::new(), &mut paths);
    let replacements = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(2),
        json!(3),
        json!(-1),
        json!(1.5),
        json!(""),
        json!(" "),
        json!("X"),
        json!("G"),
        json!("GP"),
        json!("g"),
        json!("gp"),
        json!("GREEN"),
        json!("green"),
        json!("Green"),
        json!("1"),
        json!("2"),
        json!("3"),
        json!("0"),
        json!("0000"),
        json!("绿码"),
        json!([]),
        json!({}),
        json!(["G"]),
        json!({"value": "G"}),
        json!("x".repeat(300)),
    ];
    for p in &paths {
        let label = p.join(".");
        let original = get(doc, p).clone();
        if !p.is_empty() {
            let mut d = doc.clone();
            remove(&mut d, p);
            out.push((format!("remove {label}"), d.to_string().into_bytes()));
        }
        let mut variants: Vec<(String, Value)> = replacements
            .iter()
            .map(|r| (format!("{label} = {r}"), r.clone()))
            .collect();
        variants.push((format!("wrap {label} in []"), json!([original.clone()])));
        variants.push((
            format!("nest {label} in object"),
            json!({ "value": original.clone() }),
        ));
        match &original {
            Value::String(s) => {
                let swapped: String = s
                    .chars()
                    .map(|c| {
                        if c.is_uppercase() {
                            c.to_lowercase().next().unwrap()
                        } else {
                            c.to_uppercase().next().unwrap()
                        }
                    })
                    .collect();
                variants.push((format!("swap case of {label}"), json!(swapped)));
                variants.push((format!("pad {label}"), json!(format!(" {s} "))));
                variants.push((format!("suffix {label}"), json!(format!("{s}0"))));
                variants.push((format!("double {label}"), json!(format!("{s}{s}"))));
                if let Some((i, _)) = s.char_indices().last() {
                    variants.push((format!("chop {label}"), json!(&s[..i])));
                }
                if let Ok(n) = s.parse::<i64>() {
                    variants.push((format!("{label} as number"), json!(n)));
                }
            }
            Value::Number(n) => {
                variants.push((format!("{label} as string"), json!(n.to_string())));
                if let Some(i) = n.as_i64() {
                    variants.push((format!("{label} + 1"), json!(i + 1)));
                }
            }
            Value::Bool(b) => {
                variants.push((format!("negate {label}"), json!(!b)));
                variants.push((format!("{label} as string"), json!(b.to_string())));
            }
            _ => {}
        }
        for (vl, v) in variants {
            let mut d = doc.clone();
            *get_mut(&mut d, p) = v;
            out.push((vl, d.to_string().into_bytes()));
        }
    }
    let text = doc.to_string();
    for cut in (0..text.len()).step_by(3) {
        if text.is_char_boundary(cut) {
            out.push((
                format!("truncate at {cut}"),
                text.as_bytes()[..cut].to_vec(),
            ));
        }
    }
    out.push((
        "nest whole document".into(),
        json!({ "data": doc }).to_string().into_bytes(),
    ));
    out.push((
        "wrap whole document".into(),
        json!([doc]).to_string().into_bytes(),
    ));
    out.push(("trailing garbage".into(), format!("{text}}}").into_bytes()));
    out.push(("two documents".into(), format!("{text}{text}").into_bytes()));
    out
}

fn collect_paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(k.clone());
                collect_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(i.to_string());
                collect_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn get<'a>(v: &'a Value, p: &[String]) -> &'a Value {
    p.iter().fold(v, |v, k| match v {
        Value::Array(a) => &a[k.parse::<usize>().unwrap()],
        _ => &v[k.as_str()],
    })
}

fn get_mut<'a>(v: &'a mut Value, p: &[String]) -> &'a mut Value {
    p.iter().fold(v, |v, k| match v {
        Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
        _ => &mut v[k.as_str()],
    })
}

fn remove(v: &mut Value, p: &[String]) {
    let (last, parent) = p.split_last().unwrap();
    match get_mut(v, parent) {
        Value::Object(m) => {
            m.remove(last);
        }
        Value::Array(a) => {
            a.remove(last.parse::<usize>().unwrap());
        }
        _ => {}
    }
}
