//! Fail safe, every adapter: strict parsing (duplicate keys at any depth, wrong JSON types,
//! wrong content types) and the decision fields of `docs/decisions.md` ("Decision fields
//! (fail safe)"), driven by [`TABLE`], which must be the doc's table row for row.
//!
//! Each case starts from the region's green fixture (checked to be a passable green first),
//! changes one thing and runs the adapter's own parser and normaliser (no network: the
//! transport is covered by each region's module).

use chrono::{DateTime, TimeZone, Utc};
use hcgw_adapters::regions::{
    guangdong, guangzhou, hangzhou, huzhou, suishen, sukang, suzhou, xuzhou,
};
use hcgw_adapters::{Action, AdapterCode, AdapterError, Color, HealthStatus, Level};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use crate::support::fixture_str;

const INVALID: &str = "`upstream_invalid_response`";
const UNKNOWN: &str = "colour `unknown`";
const REGISTER: &str = "action `register_on_arrival`";
const UPDATE: &str = "action `update_identity`";
const NA: &str = "—";
const NA_NORMAL: &str = "— (the normal value)";

/// One row of the decision-field table: region, field, what it decides, and the outcome
/// when the field is missing, `null` or unlisted; then (test only) the unlisted value used
/// (JSON, or the element text for Sukang's XML).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The decision-field table, as in `docs/decisions.md`.
const TABLE: &[Row] = &[
    (
        "suzhou",
        "`retCode`",
        "the outcome",
        INVALID,
        INVALID,
        INVALID,
        r#""0001""#,
    ),
    (
        "suzhou",
        "`data.codeStatus`",
        "colour, level",
        INVALID,
        INVALID,
        UNKNOWN,
        r#""B""#,
    ),
    (
        "suishen",
        "`code`",
        "the outcome",
        INVALID,
        INVALID,
        INVALID,
        "1",
    ),
    (
        "suishen",
        "`data.codeColor`",
        "colour, level",
        INVALID,
        INVALID,
        UNKNOWN,
        "3",
    ),
    (
        "suishen",
        "`data.reasonTags`",
        "a green stays green only with an empty list",
        UNKNOWN,
        UNKNOWN,
        UNKNOWN,
        r#"["NEW_TAG"]"#,
    ),
    (
        "suishen",
        "`data.registration`",
        "action `register_on_arrival`",
        REGISTER,
        REGISTER,
        REGISTER,
        r#""PENDING""#,
    ),
    ("sukang", "`Code`", "the outcome", INVALID, NA, INVALID, "7"),
    (
        "sukang",
        "`Data/Mys`",
        "colour, level",
        INVALID,
        NA,
        UNKNOWN,
        "蓝码",
    ),
    (
        "sukang",
        "`Data/Xxgx`",
        "action `update_identity`",
        UPDATE,
        NA,
        UPDATE,
        "2",
    ),
    (
        "xuzhou",
        "`errcode`",
        "the outcome",
        INVALID,
        INVALID,
        INVALID,
        "12345",
    ),
    (
        "xuzhou",
        "`data.skm.color`",
        "colour, level",
        INVALID,
        INVALID,
        UNKNOWN,
        r#""BLUE""#,
    ),
    (
        "xuzhou",
        "`data.entryRegistration`",
        "action `register_on_arrival`",
        REGISTER,
        REGISTER,
        NA,
        "",
    ),
    (
        "xuzhou",
        "`data.entryRegistration.required`",
        "action `register_on_arrival`",
        REGISTER,
        REGISTER,
        NA,
        "",
    ),
    (
        "xuzhou",
        "`data.entryRegistration.completed`",
        "action `register_on_arrival`",
        REGISTER,
        REGISTER,
        NA,
        "",
    ),
    (
        "hangzhou",
        "`success`",
        "the outcome",
        INVALID,
        INVALID,
        NA,
        "",
    ),
    (
        "hangzhou",
        "`result.color`",
        "colour, level",
        INVALID,
        INVALID,
        UNKNOWN,
        r#""blue""#,
    ),
    (
        "hangzhou",
        "`result.appealStatus`",
        "action `appeal_pending`; a green stays green only with `NONE`",
        UNKNOWN,
        UNKNOWN,
        UNKNOWN,
        r#""REJECTED""#,
    ),
    (
        "huzhou",
        "`status`",
        "the outcome",
        INVALID,
        INVALID,
        INVALID,
        "201",
    ),
    (
        "huzhou",
        "`body.qrColor`",
        "colour, level",
        INVALID,
        INVALID,
        UNKNOWN,
        r#""4""#,
    ),
    (
        "huzhou",
        "`body.whitelist`",
        "reason `whitelisted`",
        INVALID,
        INVALID,
        NA,
        "",
    ),
    (
        "huzhou",
        "`body.locationOff`",
        "provisional (short cache TTL)",
        INVALID,
        INVALID,
        NA,
        "",
    ),
    (
        "guangzhou",
        "`errcode`",
        "the outcome",
        INVALID,
        INVALID,
        INVALID,
        "12345",
    ),
    (
        "guangzhou",
        "`code_info.color`",
        "colour, level, proxy_applied",
        INVALID,
        INVALID,
        UNKNOWN,
        r#""yellow""#,
    ),
    (
        "guangzhou",
        "`code_info.apply_mode`",
        "must agree with `blue` (self) / `green` (proxy); proxy_applied of `red`",
        UNKNOWN,
        UNKNOWN,
        UNKNOWN,
        r#""robot""#,
    ),
    (
        "guangzhou",
        "`code_info.red_category`",
        "`blue`/`green` need `null`",
        UNKNOWN,
        NA_NORMAL,
        UNKNOWN,
        r#""new_category""#,
    ),
    (
        "guangdong",
        "`errCode`",
        "the outcome",
        INVALID,
        INVALID,
        INVALID,
        r#""E999""#,
    ),
    (
        "guangdong",
        "`data.codeStatus`",
        "colour, level",
        INVALID,
        INVALID,
        UNKNOWN,
        r#""4""#,
    ),
];

/// The eight regions, in table order.
const REGIONS: [&str; 8] = [
    "suzhou",
    "suishen",
    "sukang",
    "xuzhou",
    "hangzhou",
    "huzhou",
    "guangzhou",
    "guangdong",
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2022, 4, 1, 2, 0, 0).unwrap()
}

/// The green answer each case starts from.
fn base(region: &str) -> String {
    let name = match region {
        "sukang" => "green.xml",
        "xuzhou" => "green_registered.json",
        "guangzhou" => "blue.json",
        _ => "green.json",
    };
    fixture_str(region, name)
}

fn headers(content_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    h
}

/// The region's own parser and normaliser on an HTTP 200 answer with `content_type`.
fn run_as(region: &str, body: &str, content_type: &str) -> Result<HealthStatus, AdapterError> {
    let h = headers(content_type);
    let b = body.as_bytes();
    match region {
        "suzhou" => {
            suzhou::parse_answer(StatusCode::OK, &h, b).and_then(|a| suzhou::normalise(&a, None))
        }
        // Suishen and Guangzhou check the content type in transport (their own modules).
        "suishen" => match suishen::interpret(200, &h, b, now())? {
            suishen::Answer::Status(s) => Ok(*s),
            suishen::Answer::TokenRejected => Err(AdapterError::invalid_response("token")),
        },
        "sukang" => sukang::interpret(None, StatusCode::OK, &h, b),
        "xuzhou" => xuzhou::parse_answer(StatusCode::OK, &h, b)
            .and_then(|a| xuzhou::normalise(&a, None, None)),
        "hangzhou" => hangzhou::interpret(StatusCode::OK, &h, b),
        "huzhou" => {
            huzhou::parse_answer(StatusCode::OK, &h, b, None).and_then(|a| huzhou::normalise(&a))
        }
        "guangzhou" => match guangzhou::interpret(b, now())? {
            guangzhou::Answer::Status(s) => Ok(*s),
            guangzhou::Answer::TokenRejected => Err(AdapterError::invalid_response("token")),
        },
        "guangdong" => guangdong::interpret(StatusCode::OK, &h, b),
        other => panic!("no region {other}"),
    }
}

fn content_type_of(region: &str) -> &'static str {
    if region == "sukang" {
        "application/xml; charset=utf-8"
    } else {
        "application/json; charset=utf-8"
    }
}

fn run(region: &str, body: &str) -> Result<HealthStatus, AdapterError> {
    run_as(region, body, content_type_of(region))
}

/// Whether a status would be `pass` on a fresh, recognised answer.
fn passable(s: &HealthStatus) -> bool {
    s.color == Color::Green
        && s.level == Level::Clear
        && !s.actions.contains(&Action::RegisterOnArrival)
        && !s.actions.contains(&Action::UpdateIdentity)
}

/// What a case does to the field.
#[derive(Clone, Copy, Debug)]
enum Change<'a> {
    Remove,
    Null,
    Set(&'a str),
}

/// Applies `change` at `path` (`a.b.c`) in a JSON answer.
fn change_json(body: &str, path: &str, change: Change<'_>) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    let (parents, leaf) = match path.rsplit_once('.') {
        Some((p, l)) => (p.split('.').collect::<Vec<_>>(), l),
        None => (vec![], path),
    };
    let mut obj = &mut v;
    for p in parents {
        obj = obj
            .get_mut(p)
            .unwrap_or_else(|| panic!("{path} in the fixture"));
    }
    let obj = obj.as_object_mut().unwrap();
    assert!(obj.contains_key(leaf), "{path} in the fixture");
    match change {
        Change::Remove => {
            obj.remove(leaf);
        }
        Change::Null => {
            obj.insert(leaf.into(), Value::Null);
        }
        Change::Set(json) => {
            obj.insert(leaf.into(), serde_json::from_str(json).unwrap());
        }
    }
    v.to_string()
}

/// Applies `change` to the element `path` (`Code`, `Data/Mys`) of a Sukang answer.
fn change_xml(body: &str, path: &str, change: Change<'_>) -> String {
    let name = path.rsplit('/').next().unwrap();
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("{path} in the fixture"));
    let end = body[start..].find(&close).unwrap() + start + close.len();
    let replacement = match change {
        Change::Remove => String::new(),
        Change::Null => panic!("XML has no null"),
        Change::Set(text) => format!("{open}{text}{close}"),
    };
    format!("{}{replacement}{}", &body[..start], &body[end..])
}

fn changed(region: &str, field: &str, change: Change<'_>) -> String {
    let path = field.trim_matches('`');
    if region == "sukang" {
        change_xml(&base(region), path, change)
    } else {
        change_json(&base(region), path, change)
    }
}

/// Checks one outcome cell of the table against what the adapter did.
fn check(cell: &str, result: Result<HealthStatus, AdapterError>, case: &str) {
    if cell.starts_with(NA) {
        return;
    }
    if cell == INVALID {
        let e = result.expect_err(case);
        assert_eq!(
            e.code(),
            AdapterCode::UpstreamInvalidResponse,
            "{case}: {e:?}"
        );
        return;
    }
    let s = result.unwrap_or_else(|e| panic!("{case}: {e:?}"));
    assert!(!passable(&s), "{case}: passable {s:?}");
    if cell.contains(UNKNOWN) {
        assert_eq!(
            (s.color, s.level),
            (Color::Unknown, Level::Unknown),
            "{case}"
        );
    }
    for (name, action) in [
        ("register_on_arrival", Action::RegisterOnArrival),
        ("update_identity", Action::UpdateIdentity),
        ("appeal_pending", Action::AppealPending),
    ] {
        if cell.contains(&format!("action `{name}`")) {
            assert!(s.actions.contains(&action), "{case}: {:?}", s.actions);
        }
    }
}

#[test]
fn every_base_answer_is_a_passable_green() {
    for region in REGIONS {
        let s = run(region, &base(region)).unwrap_or_else(|e| panic!("{region}: {e:?}"));
        assert!(passable(&s), "{region}: {s:?}");
    }
}

#[test]
fn the_table_is_the_one_in_docs_decisions_md() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/decisions.md"),
    )
    .unwrap();
    let section = doc
        .split("\n## Decision fields (fail safe)\n")
        .nth(1)
        .expect("the section in docs/decisions.md");
    let rows: Vec<Vec<String>> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    let ours: Vec<Vec<String>> = TABLE
        .iter()
        .map(|r| {
            [r.0, r.1, r.2, r.3, r.4, r.5]
                .iter()
                .map(|c| c.to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows, ours, "docs/decisions.md and this table differ");
    // Every region has rows.
    for region in REGIONS {
        assert!(TABLE.iter().any(|r| r.0 == region), "{region}");
    }
}

#[test]
fn each_decision_field_missing_null_or_unlisted_cannot_pass() {
    for &(region, field, _, missing, null, unlisted, example) in TABLE {
        let case = |what: &str| format!("{region} {field} {what}");
        check(
            missing,
            run(region, &changed(region, field, Change::Remove)),
            &case("missing"),
        );
        if !null.starts_with(NA) {
            check(
                null,
                run(region, &changed(region, field, Change::Null)),
                &case("null"),
            );
        }
        if !unlisted.starts_with(NA) {
            check(
                unlisted,
                run(region, &changed(region, field, Change::Set(example))),
                &case("unlisted"),
            );
        }
    }
}

/// Inserts `member` as the first member of the object that is the value of `key` (the
/// root object for `""`).
fn insert_first(body: &str, key: &str, member: &str) -> String {
    let from = if key.is_empty() {
        0
    } else {
        body.find(&format!("\"{key}\""))
            .unwrap_or_else(|| panic!("{key}"))
    };
    let open = body[from..].find('{').unwrap() + from + 1;
    format!("{}{member},{}", &body[..open], &body[open..])
}

/// Per region: a duplicate at top level, the object holding the status, a duplicate of
/// its colour with a red value (read last-wins, the green would win).
const DUPLICATES: [(&str, &str, &str, &str); 7] = [
    (
        "suzhou",
        r#""retCode":"9999""#,
        "data",
        r#""codeStatus":"R""#,
    ),
    ("suishen", r#""code":40401"#, "data", r#""codeColor":2"#),
    ("xuzhou", r#""errcode":50001"#, "skm", r#""color":"RED""#),
    (
        "hangzhou",
        r#""success":false"#,
        "result",
        r#""color":"red""#,
    ),
    ("huzhou", r#""status":500"#, "body", r#""qrColor":"3""#),
    (
        "guangzhou",
        r#""errcode":-1"#,
        "code_info",
        r#""color":"red""#,
    ),
    (
        "guangdong",
        r#""errCode":"E503""#,
        "data",
        r#""codeStatus":"3""#,
    ),
];

#[test]
fn a_duplicate_key_at_any_depth_is_invalid() {
    let invalid = |region: &str, body: &str, what: &str| {
        let e = run(region, body).expect_err(what);
        assert_eq!(
            e.code(),
            AdapterCode::UpstreamInvalidResponse,
            "{region} {what}"
        );
    };
    for (region, top, data, inner) in DUPLICATES {
        let green = base(region);
        invalid(region, &insert_first(&green, "", top), "top level");
        invalid(region, &insert_first(&green, data, inner), "inside data");
        // In a field the adapter ignores, and inside an array in it.
        let ignored = r#""ignored_by_us":{"k":1,"k":2}"#;
        invalid(
            region,
            &insert_first(&green, data, ignored),
            "ignored field",
        );
        let in_array = r#""ignored_list":[{"a":[{"b":1,"b":1}]}]"#;
        invalid(
            region,
            &insert_first(&green, "", in_array),
            "inside an array",
        );
        // The same body without the duplicate is accepted (the test can fail).
        let unique = r#""ignored_by_us":{"k":1,"l":2}"#;
        assert!(
            run(region, &insert_first(&green, data, unique)).is_ok(),
            "{region}"
        );
    }
}

#[test]
fn sukang_a_repeated_element_inside_response_or_data_is_invalid() {
    let green = base("sukang");
    for (what, from, to) in [
        ("Code", "<Code>0</Code>", "<Code>1001</Code><Code>0</Code>"),
        ("Mys", "<Mys>绿码</Mys>", "<Mys>红码</Mys><Mys>绿码</Mys>"),
        (
            "unknown in Data",
            "<Xm>",
            "<Extra>1</Extra><Extra>2</Extra><Xm>",
        ),
        ("unknown in Response", "<Data>", "<Note/><Note/><Data>"),
        ("Data", "</Data>", "</Data><Data><Mys>红码</Mys></Data>"),
    ] {
        let body = green.replacen(from, to, 1);
        assert_ne!(body, green, "{what}");
        let e = run("sukang", &body).expect_err(what);
        assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse, "{what}");
    }
    // Different unknown elements, or a repeat deeper inside one, are still fine.
    let body = green.replacen("<Xm>", "<A><B/><B/></A><C/><Xm>", 1);
    assert!(passable(&run("sukang", &body).unwrap()));
}

/// Per region: (field, a value of the wrong JSON type).
const WRONG_TYPES: &[(&str, &str, &str)] = &[
    ("suzhou", "retCode", "0"),
    ("suzhou", "data.codeStatus", "1"),
    ("suzhou", "data.reasonCodes", r#""R11""#),
    ("suzhou", "data", r#"["G"]"#),
    ("suishen", "code", r#""0""#),
    ("suishen", "data.codeColor", r#""0""#),
    ("suishen", "data.codeColor", "0.0"),
    ("suishen", "data.codeColor", "false"),
    ("suishen", "data.registration", "true"),
    ("suishen", "data.reasonTags", r#""FROM_KEY_AREA""#),
    ("suishen", "data.refreshTime", r#""1583210112000""#),
    ("xuzhou", "errcode", r#""0""#),
    ("xuzhou", "data.entryRegistration.required", r#""false""#),
    ("xuzhou", "data.entryRegistration.completed", "1"),
    ("xuzhou", "data.skm", r#"["GREEN"]"#),
    ("hangzhou", "success", r#""true""#),
    ("hangzhou", "result.color", "1"),
    ("hangzhou", "result.appealStatus", "false"),
    ("huzhou", "status", r#""200""#),
    ("huzhou", "body.whitelist", r#""false""#),
    ("huzhou", "body.locationOff", "0"),
    ("huzhou", "body.qrColor", "1"),
    ("guangzhou", "errcode", r#""0""#),
    ("guangzhou", "code_info.color", "1"),
    ("guangzhou", "code_info.apply_mode", "true"),
    ("guangzhou", "code_info.update_time", r#""1585000000""#),
    ("guangzhou", "code_info.update_time", "1585000000.5"),
    ("guangdong", "errCode", "0"),
    ("guangdong", "data.codeStatus", "1"),
    ("guangdong", "data.categories", r#""CONFIRMED""#),
];

#[test]
fn wrong_json_types_are_invalid() {
    for &(region, path, value) in WRONG_TYPES {
        let body = change_json(&base(region), path, Change::Set(value));
        let e = run(region, &body).expect_err(path);
        assert_eq!(
            e.code(),
            AdapterCode::UpstreamInvalidResponse,
            "{region} {path} = {value}"
        );
    }
}

#[test]
fn a_wrong_content_type_family_is_invalid() {
    // Suishen and Guangzhou check it in transport (tested in their modules).
    for region in [
        "suzhou",
        "sukang",
        "xuzhou",
        "hangzhou",
        "huzhou",
        "guangdong",
    ] {
        let body = base(region);
        for ct in [
            "text/plain",
            "text/html; charset=utf-8",
            "application/jsonx",
        ] {
            let e = run_as(region, &body, ct).expect_err(ct);
            assert_eq!(
                e.code(),
                AdapterCode::UpstreamInvalidResponse,
                "{region} {ct}"
            );
        }
    }
    let e = run_as("sukang", &base("sukang"), "application/json").unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
    let e = run_as("suzhou", &base("suzhou"), "application/xml").unwrap_err();
    assert_eq!(e.code(), AdapterCode::UpstreamInvalidResponse);
}

/// `expires_in` values and their documented outcome: `Some(seconds)` of the cached
/// lifetime, or `None` for `upstream_invalid_response`. Never a panic.
const EXPIRES_IN: &[(&str, Option<u64>)] = &[
    ("7200", Some(7200)),
    ("1", Some(1)),
    ("0", None),
    ("-1", None),
    ("-9223372036854775808", None),
    ("86401", Some(86_400)),
    ("9223372036854775808", Some(86_400)),
    ("18446744073709551615", Some(86_400)),
    ("18446744073709551616", None),
    ("7200.5", None),
    ("7200.0", None),
    ("1e3", None),
    (r#""7200""#, None),
    ("null", None),
    ("true", None),
];

#[test]
fn token_answers_with_absurd_expires_in_never_panic() {
    use hcgw_adapters::token::MAX_TOKEN_LIFETIME;
    assert_eq!(MAX_TOKEN_LIFETIME.as_secs(), 86_400);
    for &(value, outcome) in EXPIRES_IN {
        let suishen_body =
            format!(r#"{{"access_token":"t0k","token_type":"Bearer","expires_in":{value}}}"#);
        let guangzhou_body = format!(r#"{{"access_token":"t0k","expires_in":{value}}}"#);
        let results = [
            suishen::parse_token_response(200, &HeaderMap::new(), suishen_body.as_bytes()),
            guangzhou::parse_token_response(guangzhou_body.as_bytes(), now()),
        ];
        for r in results {
            match outcome {
                Some(secs) => assert_eq!(r.unwrap().lifetime.as_secs(), secs, "{value}"),
                None => assert_eq!(
                    r.unwrap_err().code(),
                    AdapterCode::UpstreamInvalidResponse,
                    "{value}"
                ),
            }
        }
    }
    // A duplicate in a token answer is refused too.
    let dup = br#"{"access_token":"a","access_token":"b","token_type":"Bearer","expires_in":7200}"#;
    assert!(suishen::parse_token_response(200, &HeaderMap::new(), dup).is_err());
    let dup = br#"{"access_token":"a","expires_in":1,"expires_in":7200}"#;
    assert!(guangzhou::parse_token_response(dup, now()).is_err());
}

#[test]
fn retry_after_values_are_capped_or_ignored_never_a_panic() {
    // The header (Suzhou, Suishen, Xuzhou, Hangzhou, Huzhou).
    for (value, secs) in [
        ("17", Some(17)),
        ("0", Some(0)),
        ("86401", Some(86_400)),
        ("18446744073709551615", Some(86_400)),
        ("18446744073709551616", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
    ] {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        let got = hcgw_adapters::upstream::retry_after(&h).map(|d| d.as_secs());
        assert_eq!(got, secs, "Retry-After {value}");
    }
    // Guangdong's `data.retryAfter`.
    for (value, secs) in [
        ("20", Some(20)),
        (r#""6""#, Some(6)),
        ("1e300", None),
        ("-1", None),
        ("5.5", None),
        ("18446744073709551615", Some(86_400)),
        (r#""-3""#, None),
        ("null", None),
    ] {
        let body = format!(r#"{{"errCode":"E429","errMsg":"x","data":{{"retryAfter":{value}}}}}"#);
        let e = run("guangdong", &body).unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamRateLimited, "{value}");
        assert_eq!(
            e.retry_after().map(|d| d.as_secs()),
            secs,
            "retryAfter {value}"
        );
    }
    // Sukang's `<RetryAfter>`.
    for (value, secs) in [
        ("30", Some(30)),
        ("999999", Some(86_400)),
        ("99999999999999999999", None),
        ("-1", None),
        ("1.5", None),
    ] {
        let body =
            format!("<Response><Code>1003</Code><RetryAfter>{value}</RetryAfter></Response>");
        let e = run("sukang", &body).unwrap_err();
        assert_eq!(e.code(), AdapterCode::UpstreamRateLimited, "{value}");
        assert_eq!(
            e.retry_after().map(|d| d.as_secs()),
            secs,
            "RetryAfter {value}"
        );
    }
}

#[test]
fn epoch_times_out_of_range_never_panic_and_give_no_as_of() {
    for (region, path) in [
        ("suishen", "data.refreshTime"),
        ("guangzhou", "code_info.update_time"),
    ] {
        for value in ["9223372036854775807", "-9223372036854775808", "-1", "0"] {
            let body = change_json(&base(region), path, Change::Set(value));
            let s = run(region, &body).unwrap_or_else(|e| panic!("{region} {value}: {e:?}"));
            assert_eq!(s.as_of, None, "{region} {value}");
        }
        for value in ["9223372036854775808", "18446744073709551615", "1e20"] {
            let body = change_json(&base(region), path, Change::Set(value));
            assert!(run(region, &body).is_err(), "{region} {value}");
        }
    }
    // Dates: out of range or impossible → invalid, never a panic.
    for (region, path, value) in [
        ("suzhou", "data.updateTime", r#""2020-03-02 24:00:00""#),
        ("suzhou", "data.isolationEndDate", r#""2020-02-30""#),
        (
            "xuzhou",
            "data.skm.updatedAt",
            r#""+275760-09-13T00:00:00+08:00""#,
        ),
        (
            "hangzhou",
            "result.gmtModified",
            r#""2020-13-01T00:00:00+08:00""#,
        ),
        ("huzhou", "body.updateTime", r#""2020/02/16 25:00:00""#),
        ("guangdong", "data.statusTime", r#""20220230100000""#),
    ] {
        let body = change_json(&base(region), path, Change::Set(value));
        let e = run(region, &body).expect_err(path);
        assert_eq!(
            e.code(),
            AdapterCode::UpstreamInvalidResponse,
            "{region} {path}"
        );
    }
}
