//! Sukang Code (`regions/sukang.md`) against the mTLS mock: XML answers from
//! `fixtures/sukang/`, client certificates from the test PKI's Jiangsu CA.

use std::time::Duration;

use hcgw_adapters::adapter::{Identity, RegionAdapter, Subject};
use hcgw_adapters::regions::sukang::{self, QUERY_PATH, SukangAdapter, SukangConfig};
use hcgw_adapters::upstream::{UpstreamConfig, UpstreamTls};
use hcgw_adapters::{
    Action, AdapterCode, AdapterError, Color, HealthStatus, IdType, Level, Reason,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::mtls_mock::{MtlsMock, Recorded, Reply, region_tls, tls_with, upstream_path};
use crate::support::{fixture, fixture_str, test_pki};

const TOKEN: &str = "7Q2KX9D4M1PZ8R6T3V5W0Y1A";
const XML: &str = "application/xml; charset=utf-8";

fn adapter_with(mock: &MtlsMock, tls: UpstreamTls, deadline: Duration) -> SukangAdapter {
    let mut upstream = UpstreamConfig::new(mock.base_url(), deadline);
    upstream.tls = tls;
    upstream.max_body_bytes = 64 * 1024;
    SukangAdapter::new(SukangConfig { upstream }).expect("adapter")
}

fn adapter(mock: &MtlsMock) -> SukangAdapter {
    adapter_with(mock, region_tls("sukang"), Duration::from_secs(2))
}

fn qr() -> Subject {
    Subject::QrToken(TOKEN.into())
}

fn identity(id_type: IdType, number: &str, name: &str) -> Subject {
    Subject::Identity(Identity {
        id_type,
        id_number: number.into(),
        name: name.into(),
    })
}

/// A mock answering `reply` on `GET /skm/query` and 404 elsewhere.
async fn mock_with(reply: Reply) -> MtlsMock {
    MtlsMock::start("sukang", move |req: &Recorded| {
        if req.method == "GET" && req.path == QUERY_PATH {
            reply.clone()
        } else {
            Reply::new(404, "text/plain", "not found")
        }
    })
    .await
}

async fn lookup_fixture(name: &str) -> Result<HealthStatus, AdapterError> {
    let mock = mock_with(Reply::new(200, XML, fixture("sukang", name))).await;
    adapter(&mock).status(&qr()).await
}

/// One Mys value of the contract: colour, level, source code and reasons.
async fn check_colour(
    name: &'static str,
    color: Color,
    level: Level,
    mys: &str,
    reasons: Vec<Reason>,
) {
    let s = lookup_fixture(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!((s.color, s.level), (color, level), "{name}");
    assert_eq!(s.source.code, mys, "{name}");
    assert_eq!(s.reasons, reasons, "{name}");
}

colour_tests! {
    colour_green_clear: ("green.xml", Color::Green, Level::Clear, "绿码", vec![]),
    colour_yellow_monitoring: (
        "yellow.xml",
        Color::Yellow,
        Level::Monitoring,
        "黄码",
        vec![Reason::HomeQuarantine],
    ),
    colour_red_quarantine: (
        "red.xml",
        Color::Red,
        Level::Quarantine,
        "红码",
        vec![Reason::CentralizedQuarantine],
    ),
    colour_unlisted_is_unknown: ("unknown_colour.xml", Color::Unknown, Level::Unknown, "橙码", vec![]),
}

#[tokio::test]
async fn green_is_clear_with_local_time_and_holder() {
    let s = lookup_fixture("green.xml").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
    assert_eq!(s.source.code, "绿码");
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-03-18T09:30:00+08:00");
    assert_eq!(s.holder.name_masked.as_deref(), Some("李*"));
    assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
    assert_eq!(s.holder.id_masked.as_deref(), Some("3201**********1234"));
    assert!(s.reasons.is_empty() && s.actions.is_empty());
}

#[tokio::test]
async fn yellow_is_monitoring_with_home_quarantine() {
    let s = lookup_fixture("yellow.xml").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
    assert_eq!(s.reasons, vec![Reason::HomeQuarantine]);
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-03-18T21:13:06+08:00");
}

#[tokio::test]
async fn red_is_quarantine_with_centralised_quarantine() {
    let s = lookup_fixture("red.xml").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Red, Level::Quarantine));
    assert_eq!(s.reasons, vec![Reason::CentralizedQuarantine]);
    assert_eq!(s.holder.id_type, Some(IdType::Passport));
    assert_eq!(s.holder.name_masked.as_deref(), Some("欧阳*"));
}

#[tokio::test]
async fn shuffled_elements_with_unknown_ones_still_parse() {
    let s = lookup_fixture("shuffled.xml").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Green, Level::Clear));
    assert_eq!(s.actions, vec![Action::UpdateIdentity]);
    assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-03-18T09:30:00+08:00");
}

#[tokio::test]
async fn unknown_colour_is_unknown_never_green() {
    let s = lookup_fixture("unknown_colour.xml").await.unwrap();
    assert_eq!((s.color, s.level), (Color::Unknown, Level::Unknown));
    assert_eq!(s.source.code, "橙码");
}

#[tokio::test]
async fn every_gklx_and_xxgx_value_maps() {
    let green = fixture_str("sukang", "yellow.xml");
    let table: [(&str, &[Reason]); 6] = [
        ("集中隔离医学观察", &[Reason::CentralizedQuarantine]),
        ("居家健康监测", &[Reason::HomeQuarantine]),
        ("风险排查", &[Reason::OtherConcern]),
        ("核酸检测", &[Reason::OtherConcern]),
        ("无", &[]),
        ("新的管控类型", &[Reason::OtherConcern]),
    ];
    for (gklx, reasons) in table {
        let xml = green.replace("<Gklx>居家健康监测</Gklx>", &format!("<Gklx>{gklx}</Gklx>"));
        let mock = mock_with(Reply::new(200, XML, xml)).await;
        let s = adapter(&mock).status(&qr()).await.unwrap();
        assert_eq!(s.reasons, reasons, "Gklx {gklx}");
        assert_eq!(s.color, Color::Yellow, "Gklx {gklx}");
    }
    for (xxgx, actions) in [
        ("1", vec![Action::UpdateIdentity]),
        ("0", vec![]),
        // Unlisted or empty: fail safe, the holder may have to update.
        ("2", vec![Action::UpdateIdentity]),
        ("", vec![Action::UpdateIdentity]),
    ] {
        let xml = green.replace("<Xxgx>0</Xxgx>", &format!("<Xxgx>{xxgx}</Xxgx>"));
        let mock = mock_with(Reply::new(200, XML, xml)).await;
        let s = adapter(&mock).status(&qr()).await.unwrap();
        assert_eq!(s.actions, actions, "Xxgx {xxgx}");
    }
}

#[tokio::test]
async fn requests_follow_the_contract_with_percent_encoded_names() {
    let mock = mock_with(Reply::new(200, XML, fixture("sukang", "green.xml"))).await;
    let a = adapter(&mock);
    a.status(&qr()).await.unwrap();
    a.status(&identity(
        IdType::ResidentId,
        "320102199003071234",
        "王小明",
    ))
    .await
    .unwrap();
    a.status(&identity(IdType::Passport, "E12345678", "JOHN SMITH"))
        .await
        .unwrap();
    a.status(&identity(IdType::HkMacaoPermit, "H1234567", "陈大文"))
        .await
        .unwrap();
    a.status(&identity(IdType::TaiwanPermit, "12345678", "林美"))
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 5);
    assert_eq!(
        reqs[0].query.as_deref(),
        Some(format!("qr={TOKEN}").as_str())
    );
    let raw = reqs[1].query.clone().unwrap();
    assert!(raw.contains("xm=%E7%8E%8B%E5%B0%8F%E6%98%8E"), "{raw}");
    assert_eq!(reqs[1].param("zjlx").as_deref(), Some("1"));
    assert_eq!(reqs[1].param("zjhm").as_deref(), Some("320102199003071234"));
    assert_eq!(reqs[1].param("xm").as_deref(), Some("王小明"));
    assert_eq!(reqs[2].param("zjlx").as_deref(), Some("2"));
    assert_eq!(reqs[2].param("xm").as_deref(), Some("JOHN SMITH"));
    assert!(
        reqs[2]
            .query
            .as_deref()
            .unwrap()
            .ends_with("xm=JOHN%20SMITH")
    );
    assert_eq!(reqs[3].param("zjlx").as_deref(), Some("3"));
    assert_eq!(reqs[4].param("zjlx").as_deref(), Some("4"));
    assert!(
        reqs.iter()
            .all(|r| r.method == "GET" && r.path == QUERY_PATH)
    );
}

/// One Code of the error table, for a passport lookup.
async fn check_error(code: &str, status: u16, expected: AdapterCode) {
    let mock = mock_with(Reply::new(
        status,
        XML,
        fixture("sukang", &format!("error_{code}.xml")),
    ))
    .await;
    let subject = identity(IdType::Passport, "E12345678", "JOHN SMITH");
    let e = adapter(&mock).status(&subject).await.unwrap_err();
    assert_eq!(e.code(), expected, "Code {code} HTTP {status}");
    match code {
        "1003" => assert_eq!(e.retry_after(), Some(Duration::from_secs(30))),
        "1004" => assert_eq!(e, AdapterError::UnsupportedIdType(IdType::Passport)),
        "9001" => assert!(e.is_retryable()),
        _ => {}
    }
}

error_tests! {
    error_1001_subject_not_found: ("1001", 200, AdapterCode::SubjectNotFound),
    error_1002_token_expired: ("1002", 200, AdapterCode::TokenExpired),
    error_1003_rate_limited: ("1003", 200, AdapterCode::UpstreamRateLimited),
    error_1004_unsupported_id_type: ("1004", 200, AdapterCode::UnsupportedIdType),
    error_9001_busy_http_503: ("9001", 503, AdapterCode::RegionUnavailable),
    error_9001_busy_http_200: ("9001", 200, AdapterCode::RegionUnavailable),
}

#[tokio::test]
async fn error_1004_for_a_qr_lookup_is_invalid_response() {
    // 1004 for a QR lookup cannot be right.
    let mock = mock_with(Reply::new(200, XML, fixture("sukang", "error_1004.xml"))).await;
    let e = adapter(&mock).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
}

#[tokio::test]
async fn huge_chunked_body_without_content_length_is_invalid() {
    let mock = mock_with(Reply::huge_chunked(
        200,
        XML,
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Code>0</Code><Msg>",
    ))
    .await;
    let e = adapter(&mock).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    assert_eq!(mock.count(), 1);
}

async fn assert_handshake_refused(tls: UpstreamTls, what: &str) {
    let mock = mock_with(Reply::new(200, XML, fixture("sukang", "green.xml"))).await;
    let e = adapter_with(&mock, tls, Duration::from_secs(2))
        .status(&qr())
        .await
        .unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable, "{what}: {e:?}");
    assert_eq!(mock.count(), 0, "{what}: no request may reach the region");
}

/// The client presents `client` (no certificate, one from Guangdong's CA, an untrusted
/// one): the handshake fails, region_unavailable, and nothing reaches the region.
async fn check_auth(client: &str) {
    let ca = upstream_path("sukang", "ca.pem");
    let tls = match client {
        "none" => tls_with(&ca, None),
        "guangdong" => tls_with(
            &ca,
            Some((
                &upstream_path("guangdong", "client/cert.pem"),
                &upstream_path("guangdong", "client/key.pem"),
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
    auth_client_certificate_from_another_region_ca: ("guangdong"),
    auth_client_certificate_untrusted: ("untrusted"),
}

#[tokio::test]
async fn auth_server_not_chaining_to_the_region_ca_is_refused() {
    // The server presents Guangdong's certificate (and would even accept our client
    // certificate): the adapter, configured with Jiangsu's CA only, must refuse it.
    let mock = MtlsMock::start_with("guangdong", "sukang", |_| {
        Reply::new(200, XML, fixture("sukang", "green.xml"))
    })
    .await;
    let e = adapter(&mock).status(&qr()).await.unwrap_err();
    assert_eq!(e.code(), AdapterCode::RegionUnavailable, "{e:?}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn slow_region_is_a_timeout() {
    let mock = mock_with(
        Reply::new(200, XML, fixture("sukang", "green.xml")).delay(Duration::from_secs(3)),
    )
    .await;
    let e = adapter_with(&mock, region_tls("sukang"), Duration::from_millis(400))
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
    let green = fixture("sukang", "green.xml");
    let mut huge = b"<Response><Code>0</Code><Pad>".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024));
    huge.extend(b"</Pad></Response>");
    let gbk_body: Vec<u8> = {
        // 绿码 in GBK: C2CC C2EB.
        let mut v = b"<Response><Code>0</Code><Data><Mys>".to_vec();
        v.extend([0xC2, 0xCC, 0xC2, 0xEB]);
        v.extend(b"</Mys></Data></Response>");
        v
    };
    let cases: Vec<(&str, Reply)> = vec![
        (
            "doctype",
            Reply::new(200, XML, fixture("sukang", "doctype.xml")),
        ),
        (
            "malformed",
            Reply::new(200, XML, fixture("sukang", "malformed.xml")),
        ),
        (
            "truncated",
            Reply::new(200, XML, green[..green.len() / 2].to_vec()),
        ),
        ("empty", Reply::new(200, XML, Vec::new())),
        (
            "json content type",
            Reply::new(200, "application/json", green.clone()),
        ),
        (
            "gbk charset",
            Reply::new(200, "application/xml; charset=GBK", green.clone()),
        ),
        ("gbk bytes", Reply::new(200, XML, gbk_body)),
        ("huge", Reply::new(200, XML, huge)),
        ("HTTP 404", Reply::new(404, XML, green.clone())),
        (
            "unknown code",
            Reply::new(200, XML, "<Response><Code>42</Code></Response>"),
        ),
    ];
    for (name, reply) in cases {
        let mock = mock_with(reply).await;
        let e = adapter(&mock).status(&qr()).await.unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{name}");
    }
    // text/xml is accepted as well.
    let mock = mock_with(Reply::new(200, "text/xml", green)).await;
    assert_eq!(
        adapter(&mock).status(&qr()).await.unwrap().color,
        Color::Green
    );
}

/// Deterministic mutations of the green XML fixture, each with whether the mutated
/// document may still be read as green (only changes away from `Code`, `Data` and `Mys`,
/// or to the same value, may).
fn xml_mutations(doc: &str) -> Vec<(String, String, bool)> {
    fn span(doc: &str, tag: &str) -> (usize, usize, usize, usize) {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let s = doc.find(&open).unwrap_or_else(|| panic!("{tag}"));
        let e = doc.find(&close).unwrap();
        (s, s + open.len(), e, e + close.len())
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
    let key = ["Code", "Data", "Mys"];
    let values = [
        "",
        " ",
        "绿码 ",
        " 绿码",
        "绿",
        "绿码码",
        "绿码待定",
        "green",
        "GREEN",
        "Green",
        "0",
        "1",
        "00",
        "-0",
        "黄码",
        "红码",
        "绿色",
        "&amp;",
        "綠碼",
        "NULL",
    ];
    let mut out = Vec::new();
    for tag in [
        "Code", "Msg", "Mys", "Gxsj", "Xm", "Zjlx", "Zjhm", "Gklx", "Xxgx", "Data",
    ] {
        let is_key = key.contains(&tag);
        let (s, inner_s, inner_e, e) = span(doc, tag);
        let element = &doc[s..e];
        let inner = &doc[inner_s..inner_e];
        let with = |replacement: &str| format!("{}{}{}", &doc[..s], replacement, &doc[e..]);
        out.push((format!("remove {tag}"), with(""), !is_key));
        out.push((
            format!("duplicate {tag}"),
            with(&format!("{element}{element}")),
            !is_key,
        ));
        out.push((
            format!("nest inside {tag}"),
            with(&format!("<{tag}><V>{inner}</V></{tag}>")),
            !is_key,
        ));
        out.push((
            format!("wrap {tag}"),
            with(&format!("<Wrap>{element}</Wrap>")),
            !is_key,
        ));
        let lower = tag.to_lowercase();
        out.push((
            format!("rename {tag} to {lower}"),
            with(&format!("<{lower}>{inner}</{lower}>")),
            !is_key,
        ));
        out.push((
            format!("swap case of {tag}'s text"),
            with(&format!("<{tag}>{}</{tag}>", swap_case(inner))),
            !is_key || swap_case(inner) == inner,
        ));
        out.push((
            format!("self-closing {tag}"),
            with(&format!("<{tag}/>")),
            !is_key,
        ));
        out.push((
            format!("attribute on {tag}"),
            with(&format!("<{tag} x=\"1\">{inner}</{tag}>")),
            true,
        ));
        if tag != "Data" {
            for v in values {
                out.push((
                    format!("{tag} = {v:?}"),
                    with(&format!("<{tag}>{v}</{tag}>")),
                    !is_key || v == inner,
                ));
            }
        }
    }
    let body = doc.split_once("?>").map(|(_, b)| b).unwrap_or(doc);
    out.push((
        "doctype".into(),
        format!("<?xml version=\"1.0\"?><!DOCTYPE Response []>{body}"),
        false,
    ));
    out.push((
        "gbk declaration".into(),
        format!("<?xml version=\"1.0\" encoding=\"GBK\"?>{body}"),
        false,
    ));
    out.push((
        "rename root".into(),
        doc.replace("Response>", "Answer>"),
        false,
    ));
    out.push((
        "wrap root".into(),
        format!("<Envelope>{body}</Envelope>"),
        false,
    ));
    out.push(("two roots".into(), format!("{doc}<Response/>"), false));
    out.push((
        "deep".into(),
        doc.replace("<Msg>", &"<X>".repeat(9))
            .replace("</Msg>", &"</X>".repeat(9)),
        false,
    ));
    let trimmed = doc.trim_end();
    for n in 0..trimmed.len() {
        if trimmed.is_char_boundary(n) {
            out.push((format!("truncated at {n}"), trimmed[..n].to_owned(), false));
        }
    }
    out
}

#[test]
fn mutations_of_the_green_fixture_never_turn_green_unless_still_green() {
    let doc = fixture_str("sukang", "green.xml");
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(XML));
    let mutations = xml_mutations(&doc);
    assert!(mutations.len() > 300, "{}", mutations.len());
    let mut greens = 0;
    for (name, m, still_green) in &mutations {
        if let Ok(s) = sukang::interpret(None, StatusCode::OK, &headers, m.as_bytes())
            && s.color == Color::Green
        {
            greens += 1;
            assert!(still_green, "mutation {name} gave green: {m}");
        }
    }
    assert!(
        greens > 10,
        "the generator keeps some green documents: {greens}"
    );
    // Truncated raw bytes (cutting UTF-8 sequences) too.
    let bytes = doc.trim_end().as_bytes();
    for n in 0..bytes.len() {
        let r = sukang::interpret(None, StatusCode::OK, &headers, &bytes[..n]);
        assert!(
            !matches!(r, Ok(ref s) if s.color == Color::Green),
            "bytes[..{n}]"
        );
    }
}
