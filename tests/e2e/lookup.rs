//! Lookup, batch and verify through the real `hcgw` binary over mTLS, against the region
//! simulators: every region, every caller role, every decision of the table; validation
//! before any upstream call; upstream faults; and no personal data in logs or audit files.

use std::collections::HashSet;
use std::sync::OnceLock;

use hcgw_adapters::{Action, AdapterCode, Color, IdType, Level, RegionId};
use hcgw_sim::{Fate, Intended, SimSubject};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::world::{client, fresh_client, url, world};

/// Tests that count upstream calls or change a simulator take this exclusively.
fn lock() -> &'static RwLock<()> {
    static L: OnceLock<RwLock<()>> = OnceLock::new();
    L.get_or_init(|| RwLock::new(()))
}

async fn post(
    as_client: &str,
    path: &str,
    body: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = client(as_client)
        .post(url(path))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

fn qr_subject(s: &SimSubject) -> Value {
    json!({ "qr": s.qr })
}

fn id_subject(s: &SimSubject) -> Value {
    json!({ "id_type": s.id_type, "id_number": s.id_number, "name": s.name })
}

fn set<T: serde::Serialize>(v: &[T]) -> HashSet<String> {
    v.iter()
        .map(|x| {
            serde_json::to_value(x)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn json_set(v: &Value) -> HashSet<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Asserts a lookup answer is what the simulator intended.
fn assert_intended(intended: &Intended, status: u16, body: &Value, what: &str) {
    if let Some(code) = intended.error {
        assert_eq!(
            body["code"],
            json!(code),
            "{what} ({}): expected error {code}, got {status} {body}",
            intended.label
        );
        assert_eq!(
            u16::try_from(body["status"].as_u64().unwrap()).unwrap(),
            status
        );
        return;
    }
    assert_eq!(status, 200, "{what} ({}): {body}", intended.label);
    let s = &body["status"];
    assert_eq!(
        s["color"],
        json!(intended.color),
        "{what} ({}) colour: {s}",
        intended.label
    );
    assert_eq!(
        s["level"],
        json!(intended.level),
        "{what} ({}) level: {s}",
        intended.label
    );
    assert_eq!(
        json_set(&s["reasons"]),
        set(&intended.reasons),
        "{what} ({}) reasons",
        intended.label
    );
    assert_eq!(
        json_set(&s["actions"]),
        set(&intended.actions),
        "{what} ({}) actions",
        intended.label
    );
    if let Some(p) = intended.proxy_applied {
        assert_eq!(
            s["proxy_applied"],
            json!(p),
            "{what} ({}) proxy_applied",
            intended.label
        );
    }
    // Never a green the simulator did not intend.
    if s["color"] == "green" {
        assert_eq!(intended.color, Color::Green);
    }
}

#[tokio::test]
async fn every_region_answers_what_its_simulator_intended_by_qr_and_by_identity() {
    let _g = lock().read().await;
    let w = world();
    for (region, sim) in &w.sims {
        let cases = sim.sim.cases().len();
        let subjects = sim.ctx.population.subjects();
        // Every case, plus the first not-found and token-expired subjects.
        let mut sample: Vec<&SimSubject> = subjects.iter().take(cases).collect();
        sample.extend(subjects.iter().find(|s| s.fate == Fate::NotFound));
        sample.extend(subjects.iter().find(|s| s.fate == Fate::TokenExpired));
        sample.extend(subjects.iter().find(|s| s.id_type == IdType::Passport));
        for s in sample {
            for via_qr in [true, false] {
                let subject = if via_qr { qr_subject(s) } else { id_subject(s) };
                let (status, body, _) = post(
                    "platform-shanghai",
                    "/v1/lookup",
                    &json!({ "region": region, "subject": subject }),
                )
                .await;
                let what = format!(
                    "{region} subject {} by {}",
                    s.index,
                    if via_qr { "QR" } else { "identity" }
                );
                assert_intended(&sim.sim.intended_for(s, via_qr), status, &body, &what);
            }
        }
    }
}

#[tokio::test]
async fn the_required_samples_come_through_normalised() {
    let _g = lock().read().await;
    let w = world();
    let check = async |region: RegionId, f: &dyn Fn(&Intended) -> bool, what: &str| {
        let (s, intended) = w
            .sim(region)
            .find(true, |s, i| s.fate == Fate::Active && f(i))
            .unwrap_or_else(|| panic!("no {what} case"));
        let (status, body, _) = post(
            "platform-shanghai",
            "/v1/lookup",
            &json!({ "region": region, "subject": qr_subject(&s) }),
        )
        .await;
        assert_intended(&intended, status, &body, what);
        body
    };
    let blue = check(
        RegionId::Guangzhou,
        &|i| i.color == Color::Green && i.proxy_applied == Some(false),
        "Guangzhou blue",
    )
    .await;
    assert_eq!(blue["status"]["source"]["code"], "blue");
    let proxy = check(
        RegionId::Guangzhou,
        &|i| i.color == Color::Green && i.proxy_applied == Some(true),
        "Guangzhou proxy green",
    )
    .await;
    assert_eq!(
        (
            proxy["status"]["source"]["code"].as_str(),
            proxy["status"]["color"].as_str()
        ),
        (Some("green"), Some("green"))
    );
    let gp = check(
        RegionId::Suzhou,
        &|i| i.level == Level::ClearRestricted,
        "Suzhou 绿码待定",
    )
    .await;
    assert_eq!(gp["status"]["source"]["code"], "GP");
    assert_eq!(gp["recognition"]["decision"], "pass_restricted");
    check(
        RegionId::Xuzhou,
        &|i| i.actions.contains(&Action::RegisterOnArrival),
        "Xuzhou register_on_arrival",
    )
    .await;
    let bad = check(
        RegionId::Suishen,
        &|i| i.error == Some(AdapterCode::UpstreamInvalidResponse),
        "Suishen bad signature",
    )
    .await;
    assert_eq!(bad["status"], 502);
    // Sukang's simulator shuffles its XML elements in every answer.
    check(
        RegionId::Sukang,
        &|i| i.color == Color::Yellow,
        "Sukang XML (shuffled)",
    )
    .await;
}

/// Verifies the first active subject of `region` whose intent satisfies `f`, as `who`.
async fn verify_case(who: &str, region: RegionId, f: impl Fn(&Intended) -> bool) -> (u16, Value) {
    let (s, _) = world()
        .sim(region)
        .find(true, |s, i| s.fate == Fate::Active && f(i))
        .expect("case exists");
    let (status, body, _) = post(
        who,
        "/v1/verify",
        &json!({ "qr": s.qr, "checkpoint": "SH-HONGQIAO-RAIL-G12" }),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn a_shanghai_checkpoint_gets_every_decision_of_the_table_and_only_its_fields() {
    let _g = lock().read().await;
    let green = |i: &Intended| i.level == Level::Clear && i.actions.is_empty() && i.error.is_none();
    type Case<'a> = (
        RegionId,
        Box<dyn Fn(&Intended) -> bool>,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (RegionId::Suzhou, Box::new(green), "pass", None),
        (RegionId::Hangzhou, Box::new(green), "pass", None),
        (RegionId::Suishen, Box::new(green), "pass", None),
        (
            RegionId::Suzhou,
            Box::new(|i: &Intended| i.level == Level::ClearRestricted),
            "pass_restricted",
            None,
        ),
        (
            RegionId::Suzhou,
            Box::new(|i: &Intended| i.color == Color::Red),
            "deny",
            None,
        ),
        (
            RegionId::Huzhou,
            Box::new(|i: &Intended| i.color == Color::Yellow),
            "deny",
            None,
        ),
        (
            RegionId::Guangzhou,
            Box::new(|i: &Intended| i.color == Color::Green),
            "register_locally",
            None,
        ),
        (
            RegionId::Xuzhou,
            Box::new(|i: &Intended| i.color == Color::Green),
            "register_locally",
            None,
        ),
        (
            RegionId::Guangdong,
            Box::new(|i: &Intended| i.color == Color::Unknown && i.error.is_none()),
            "manual_check",
            None,
        ),
        (
            RegionId::Suishen,
            Box::new(|i: &Intended| {
                i.color == Color::Green && i.actions.contains(&Action::RegisterOnArrival)
            }),
            "manual_check",
            None,
        ),
        (
            RegionId::Suishen,
            Box::new(|i: &Intended| i.error == Some(AdapterCode::UpstreamInvalidResponse)),
            "manual_check",
            Some("upstream_invalid_response"),
        ),
    ];
    for (region, f, decision, cause) in cases {
        let (status, body) = verify_case("checkpoint-shanghai", region, f).await;
        assert_eq!(status, 200, "{region} {decision}: {body}");
        assert_eq!(
            body["recognition"]["decision"], decision,
            "{region}: {body}"
        );
        assert_eq!(body["recognition"]["verifier"], "shanghai");
        assert_eq!(
            body["recognition"]["cause"].as_str(),
            cause,
            "{region}: {body}"
        );
        let fields: HashSet<&str> = body["status"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for forbidden in [
            "reasons",
            "source",
            "quarantine_until",
            "actions",
            "proxy_applied",
            "observed_at",
        ] {
            assert!(
                !fields.contains(forbidden),
                "a checkpoint must not receive `{forbidden}`: {body}"
            );
        }
        assert!(
            fields.is_subset(&HashSet::from([
                "region", "color", "level", "as_of", "holder"
            ])),
            "{fields:?}"
        );
    }
}

#[tokio::test]
async fn each_role_gets_its_endpoints_and_its_view() {
    let _g = lock().read().await;
    let w = world();
    let (s, _) = w
        .sim(RegionId::Suzhou)
        .find(true, |s, i| {
            s.fate == Fate::Active && i.color == Color::Red && !i.reasons.is_empty()
        })
        .unwrap();
    let lookup = json!({ "region": "suzhou", "subject": qr_subject(&s) });
    let batch = json!({ "items": [lookup.clone()] });
    let verify = json!({ "qr": s.qr });
    // ops: no personal data at all, no lookups.
    for (path, body) in [
        ("/v1/lookup", &lookup),
        ("/v1/lookup/batch", &batch),
        ("/v1/verify", &verify),
    ] {
        let (status, b, _) = post("ops", path, body).await;
        assert_eq!(
            (status, b["code"].as_str()),
            (403, Some("forbidden")),
            "ops {path}"
        );
    }
    // checkpoint: verify only.
    for (path, body) in [("/v1/lookup", &lookup), ("/v1/lookup/batch", &batch)] {
        let (status, _, _) = post("checkpoint-shanghai", path, body).await;
        assert_eq!(status, 403, "checkpoint {path}");
    }
    // platform: everything, all fields.
    let (status, b, _) = post("platform-shanghai", "/v1/lookup", &lookup).await;
    assert_eq!(status, 200);
    for field in ["reasons", "source", "observed_at"] {
        assert!(
            b["status"].get(field).is_some(),
            "platform sees {field}: {b}"
        );
    }
    let (status, b, _) = post("platform-shanghai", "/v1/verify", &verify).await;
    assert_eq!(
        (status, b["recognition"]["decision"].as_str()),
        (200, Some("deny"))
    );
    assert!(b["status"].get("reasons").is_some());
    // A Guangdong platform: Guangzhou is recognised, Suzhou is not.
    let (g, _) = w
        .sim(RegionId::Guangzhou)
        .find(true, |s, i| {
            s.fate == Fate::Active && i.color == Color::Green
        })
        .unwrap();
    let (_, b, _) = post("platform-guangdong", "/v1/verify", &json!({ "qr": g.qr })).await;
    assert_eq!(
        (
            b["recognition"]["decision"].as_str(),
            b["recognition"]["basis"].as_str()
        ),
        (Some("pass"), Some("home-jurisdiction"))
    );
    let (_, b, _) = post("platform-guangdong", "/v1/verify", &verify).await;
    assert_eq!(b["recognition"]["decision"], "register_locally");
    // A Guangzhou checkpoint honours Yuekang under guangdong-interop.
    let (y, _) = w
        .sim(RegionId::Guangdong)
        .find(true, |s, i| {
            s.fate == Fate::Active && i.color == Color::Green
        })
        .unwrap();
    let (_, b, _) = post("checkpoint-guangzhou", "/v1/verify", &json!({ "qr": y.qr })).await;
    assert_eq!(
        (
            b["recognition"]["decision"].as_str(),
            b["recognition"]["basis"].as_str()
        ),
        (Some("pass"), Some("guangdong-interop"))
    );
    // Every role may list the regions and read the OpenAPI document.
    for who in [
        "ops",
        "checkpoint-shanghai",
        "platform-shanghai",
        "peer-jiangsu",
    ] {
        let r = client(who).get(url("/v1/regions")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{who}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["regions"].as_array().unwrap().len(), 8);
        assert!(
            v["regions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["state"] == "up"),
            "{v}"
        );
        assert_eq!(v["agreements"].as_array().unwrap().len(), 3);
        let r = client(who)
            .get(url("/v1/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn a_peer_acts_on_behalf_of_its_caller_capped_at_its_maximum() {
    let _g = lock().read().await;
    let (s, _) = world()
        .sim(RegionId::Suzhou)
        .find(true, |s, i| s.fate == Fate::Active && i.color == Color::Red)
        .unwrap();
    let send = async |on_behalf: &str| {
        let r = client("peer-jiangsu")
            .post(url("/v1/verify"))
            .header("x-hcgw-on-behalf-of", on_behalf)
            .json(&json!({ "qr": s.qr }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, b) = send("checkpoint:shanghai").await;
    assert_eq!(status, 200);
    assert!(
        b["status"].get("reasons").is_none(),
        "a checkpoint never receives reasons through a peer: {b}"
    );
    assert_eq!(b["recognition"]["verifier"], "shanghai");
    let (_, b) = send("platform:zhejiang").await;
    assert!(
        b["status"].get("reasons").is_some(),
        "platform view within the peer's maximum: {b}"
    );
    let (status, _) = send("ops:federation").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn batches_keep_order_report_item_errors_and_ask_once_per_distinct_subject() {
    let _g = lock().write().await;
    let w = world();
    let sim = w.sim(RegionId::Hangzhou);
    let active: Vec<&SimSubject> = sim
        .ctx
        .population
        .subjects()
        .iter()
        .filter(|s| s.fate == Fate::Active)
        .skip(40)
        .take(3)
        .collect();
    let item = |s: &SimSubject| json!({ "region": "hangzhou", "subject": qr_subject(s), "purpose": "train G7 manifest" });
    let items = vec![
        item(active[0]),
        item(active[1]),
        item(active[0]), // duplicate
        json!({ "region": "hangzhou", "subject": { "id_type": "resident_id", "id_number": "110105194912310021", "name": "张三" } }), // bad check digit
        item(active[2]),
        item(active[0]), // duplicate
        json!({ "region": "atlantis", "subject": qr_subject(active[0]) }),
        json!({ "region": "hangzhou", "subject": qr_subject(active[1]), "colour": "red" }), // unknown field
    ];
    let before = sim.requests();
    let (status, body, _) = post(
        "platform-shanghai",
        "/v1/lookup/batch",
        &json!({ "items": items }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sim.requests() - before,
        3,
        "three distinct subjects, three upstream calls"
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    for (i, s) in [
        (0, active[0]),
        (1, active[1]),
        (2, active[0]),
        (4, active[2]),
        (5, active[0]),
    ] {
        assert_intended(
            &sim.sim.intended_for(s, true),
            200,
            &results[i],
            &format!("item {i}"),
        );
    }
    assert_eq!(results[3]["error"]["code"], "invalid_request");
    assert_eq!(results[6]["error"]["code"], "unknown_region");
    assert_eq!(results[7]["error"]["code"], "invalid_request");

    // Envelope limits fail the whole call.
    let too_many: Vec<Value> = (0..1001).map(|_| item(active[0])).collect();
    let (status, b, _) = post(
        "platform-shanghai",
        "/v1/lookup/batch",
        &json!({ "items": too_many }),
    )
    .await;
    assert_eq!((status, b["code"].as_str()), (400, Some("invalid_request")));
    let (status, _, _) = post(
        "platform-shanghai",
        "/v1/lookup/batch",
        &json!({ "things": [] }),
    )
    .await;
    assert_eq!(status, 400);
}

/// Posts a raw JSON text (duplicate keys cannot be written with `json!`).
async fn post_raw(as_client: &str, path: &str, body: &str) -> (u16, Value) {
    let r = client(as_client)
        .post(url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_duplicate_key_in_a_request_body_or_a_batch_item_is_invalid_request() {
    let _g = lock().write().await;
    let sim = world().sim(RegionId::Suzhou);
    let qr = "SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8";
    let item = format!(r#"{{"region":"suzhou","subject":{{"qr":"{qr}"}}}}"#);
    let before = sim.requests();
    for (path, body) in [
        (
            "/v1/lookup",
            format!(r#"{{"region":"suzhou","region":"suzhou","subject":{{"qr":"{qr}"}}}}"#),
        ),
        (
            "/v1/lookup",
            format!(r#"{{"region":"suzhou","subject":{{"qr":"{qr}","qr":"{qr}"}}}}"#),
        ),
        (
            "/v1/verify",
            format!(r#"{{"qr":"{qr}","checkpoint":"G1","checkpoint":"G2"}}"#),
        ),
        (
            "/v1/lookup/batch",
            format!(
                r#"{{"items":[{item},{{"region":"suzhou","region":"hangzhou","subject":{{"qr":"{qr}"}}}}]}}"#
            ),
        ),
        (
            "/v1/lookup/batch",
            format!(
                r#"{{"items":[{item},{{"region":"suzhou","subject":{{"qr":"{qr}","qr":"{qr}"}}}}]}}"#
            ),
        ),
        (
            "/v1/lookup/batch",
            format!(r#"{{"items":[{item}],"items":[]}}"#),
        ),
    ] {
        let who = if path == "/v1/verify" {
            "checkpoint-shanghai"
        } else {
            "platform-shanghai"
        };
        let (status, b) = post_raw(who, path, &body).await;
        assert_eq!(
            (status, b["code"].as_str()),
            (400, Some("invalid_request")),
            "{body} → {b}"
        );
        assert!(
            b["detail"].as_str().unwrap_or("").contains("duplicate key"),
            "{b}"
        );
    }
    assert_eq!(
        sim.requests(),
        before,
        "no upstream call for a duplicate key"
    );
    // A batch item written as an array is an item error, as in a single lookup.
    let (status, b) = post_raw(
        "platform-shanghai",
        "/v1/lookup/batch",
        r#"{"items":[["suzhou",{"qr":"x"}]]}"#,
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["results"][0]["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn bad_input_is_refused_before_any_upstream_call() {
    let _g = lock().write().await;
    let sim = world().sim(RegionId::Suzhou);
    let before = sim.requests();
    let bad = [
        json!({ "region": "suzhou", "subject": { "id_type": "resident_id", "id_number": "110105194912310021", "name": "张三" } }),
        json!({ "region": "suzhou", "subject": { "id_type": "resident_id", "id_number": "11010519491231002", "name": "张三" } }),
        json!({ "region": "suzhou", "subject": { "id_type": "driver_license", "id_number": "11010519491231002X", "name": "张三" } }),
        json!({ "region": "suzhou", "subject": { "id_type": "resident_id", "id_number": "11010519491231002X" } }),
        json!({ "region": "suzhou", "subject": { "qr": "SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8", "name": "张三" } }),
        json!({ "region": "suzhou", "subject": { "qr": "SKM|7Q2KX9D4M1PZ8R6T3V5W0Y1A" } }),
        json!({ "region": "suzhou", "subject": { "qr": "SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8" }, "purpose": "x".repeat(65) }),
        json!({ "region": "suzhou", "subject": { "qr": "SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8" }, "extra": 1 }),
        json!({ "region": 7, "subject": {} }),
    ];
    for body in &bad {
        let (status, b, headers) = post("platform-shanghai", "/v1/lookup", body).await;
        assert_eq!(status, 400, "{body} → {b}");
        assert_eq!(b["code"], "invalid_request");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(
            !b["detail"].as_str().unwrap().contains("11010519491231002"),
            "details never echo the number: {b}"
        );
    }
    let (status, b, _) = post(
        "platform-shanghai",
        "/v1/lookup",
        &json!({ "region": "atlantis", "subject": { "qr": "x" } }),
    )
    .await;
    assert_eq!((status, b["code"].as_str()), (400, Some("unknown_region")));
    let (status, b, _) = post(
        "checkpoint-shanghai",
        "/v1/verify",
        &json!({ "qr": "SCM:not-a-token" }),
    )
    .await;
    assert_eq!((status, b["code"].as_str()), (422, Some("unrecognized_qr")));
    let (status, _, _) = post(
        "checkpoint-shanghai",
        "/v1/verify",
        &json!({ "qr": "Q".repeat(600) }),
    )
    .await;
    assert_eq!(status, 422);
    // Deeply nested JSON, a wrong content type, an oversized body.
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let r = client("platform-shanghai")
        .post(url("/v1/lookup"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client("platform-shanghai")
        .post(url("/v1/lookup"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let huge = format!(
        "{{\"region\":\"suzhou\",\"purpose\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let r = // The server answers 413 without reading the body and closes that connection:
    // a client of its own, as a real client would see it.
    fresh_client("platform-shanghai")
        .post(url("/v1/lookup"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "payload_too_large");
    assert_eq!(sim.requests(), before, "no upstream call for invalid input");

    // Request ids: a sane one is echoed, an insane one replaced.
    let r = client("platform-shanghai")
        .get(url("/v1/regions"))
        .header("x-request-id", "gate-7.abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "gate-7.abc");
    let r = client("platform-shanghai")
        .get(url("/v1/regions"))
        .header("x-request-id", "bad id;")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id;");
}

#[tokio::test]
async fn a_region_down_is_an_error_for_lookups_and_a_manual_check_for_gates() {
    let _g = lock().write().await;
    let sim = world().sim(RegionId::Huzhou);
    let (s, _) = sim
        .find(true, |s, i| {
            s.fate == Fate::Active && i.color == Color::Green
        })
        .unwrap();
    sim.control(json!({ "down": true })).await;
    let (status, b, headers) = post(
        "platform-shanghai",
        "/v1/lookup",
        &json!({ "region": "huzhou", "subject": qr_subject(&s) }),
    )
    .await;
    let (vstatus, vb, _) = post("checkpoint-shanghai", "/v1/verify", &json!({ "qr": s.qr })).await;
    sim.control(json!({ "down": false })).await;
    assert_eq!(
        (status, b["code"].as_str()),
        (503, Some("region_unavailable")),
        "{b}"
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(b["region"], "huzhou");
    assert_eq!(vstatus, 200);
    assert_eq!(vb["recognition"]["decision"], "manual_check");
    assert_eq!(vb["recognition"]["cause"], "region_unavailable");
    assert_eq!(vb["status"]["color"], "unknown");
}

#[tokio::test]
async fn no_identity_number_name_or_token_reaches_logs_or_audit_files() {
    let _g = lock().write().await;
    let w = world();
    let mut used: Vec<String> = Vec::new();
    for (region, sim) in &w.sims {
        for s in sim.ctx.population.subjects().iter().take(6) {
            for subject in [qr_subject(s), id_subject(s)] {
                post(
                    "platform-shanghai",
                    "/v1/lookup",
                    &json!({ "region": region, "subject": subject }),
                )
                .await;
            }
            post("checkpoint-shanghai", "/v1/verify", &json!({ "qr": s.qr })).await;
            used.extend([s.id_number.clone(), s.name.clone(), s.token.clone()]);
        }
    }
    // Everything the gateway wrote: its log and its audit trail.
    let mut written = w.logs();
    assert!(written.contains("gateway listening"), "the log is captured");
    let mut audit_records = 0;
    for entry in std::fs::read_dir(&w.audit_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        audit_records += text.lines().count();
        written.push_str(&text);
    }
    assert!(
        audit_records >= 8 * 6 * 3,
        "every lookup and verify is audited ({audit_records})"
    );
    for value in &used {
        assert!(
            !written.contains(value.as_str()),
            "personal data leaked into logs or audit files"
        );
    }
    // And the audit chain written by the running gateway verifies.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(["audit", "verify"])
        .arg(&w.audit_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
