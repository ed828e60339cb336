//! The access log of the real binary: one JSON line per API request with its fields, no
//! subject, token, name or certificate subject in it, and one cached hit in N logged.

use hcgw_adapters::RegionId;
use hcgw_sim::Fate;
use serde_json::{Value, json};

use crate::drain::{Spawned, spawn_gateway};
use crate::world::{fresh_client, world};

const SAMPLE: usize = 3;

/// The access lines (target `hcgw::access`) of `g`'s log.
fn access_lines(g: &Spawned) -> Vec<Value> {
    g.logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == json!(hcgw::api::access_log::TARGET))
        .collect()
}

fn with_id<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|v| v["request_id"] == json!(id))
        .collect()
}

async fn post(client: &reqwest::Client, g: &Spawned, path: &str, id: &str, body: &Value) -> Value {
    let r = client
        .post(g.url(path))
        .header("x-request-id", id)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{id}: {e:?}"));
    assert_eq!(r.status(), 200, "{id}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn one_line_per_request_with_its_fields_and_no_personal_data() {
    let w = world();
    let g = spawn_gateway(w, "access-log-gateway", |text| {
        format!("{text}\n[access_log]\nsample_cache_hits = {SAMPLE}\n")
    });
    let region = RegionId::Suzhou;
    let sim = w.sim(region);
    let subjects: Vec<_> = sim
        .ctx
        .population
        .subjects()
        .iter()
        .filter(|s| {
            s.fate == Fate::Active
                && sim.sim.intended_for(s, false).error.is_none()
                && sim.sim.intended_for(s, true).error.is_none()
        })
        .take(2)
        .cloned()
        .collect();
    let (by_id, by_qr) = (&subjects[0], &subjects[1]);
    let platform = fresh_client("platform-shanghai");
    let lookup = json!({ "region": region, "subject": {
        "id_type": by_id.id_type, "id_number": by_id.id_number, "name": by_id.name } });

    // A lookup by identity (a miss), then the same lookup again: cached hits.
    let first = post(&platform, &g, "/v1/lookup", "acc-miss", &lookup).await;
    assert_eq!(first["cache"]["hit"], json!(false), "{first}");
    let mut hits: usize = 0;
    for i in 0..7 {
        let b = post(
            &platform,
            &g,
            "/v1/lookup",
            &format!("acc-hit-{i}"),
            &lookup,
        )
        .await;
        assert_eq!(b["cache"]["hit"], json!(true), "{b}");
        hits += 1;
    }
    // A verify by QR as a checkpoint, a whoami, and an unmatched path carrying the number.
    let checkpoint = fresh_client("checkpoint-shanghai");
    post(
        &checkpoint,
        &g,
        "/v1/verify",
        "acc-verify",
        &json!({ "qr": by_qr.qr }),
    )
    .await;
    let r = platform
        .get(g.url("/v1/whoami"))
        .header("x-request-id", "acc-whoami")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = platform
        .get(g.url(&format!("/v1/lookup/{}", by_id.id_number)))
        .header("x-request-id", "acc-404")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let mut lines = Vec::new();
    crate::support::eventually(10, "the access lines are written", async || {
        lines = access_lines(&g);
        !with_id(&lines, "acc-404").is_empty()
    })
    .await;

    // One line per request, with every field.
    let miss = with_id(&lines, "acc-miss");
    assert_eq!(miss.len(), 1, "{miss:?}");
    let m = miss[0];
    assert_eq!(m["route"], json!("/v1/lookup"), "{m}");
    assert_eq!(m["method"], json!("POST"), "{m}");
    assert_eq!(m["status"], json!(200), "{m}");
    assert_eq!(m["code"], json!("ok"), "{m}");
    assert_eq!(m["client"], json!("platform-shanghai"), "{m}");
    assert_eq!(m["role"], json!("platform"), "{m}");
    assert_eq!(m["cache_hit"], json!(false), "{m}");
    assert_eq!(m["region"], json!("suzhou"), "{m}");
    assert!(m["latency_ms"].as_f64().is_some_and(|l| l > 0.0), "{m}");
    assert!(m["bytes_in"].as_u64().is_some_and(|b| b > 0), "{m}");
    assert!(m["bytes_out"].as_u64().is_some_and(|b| b > 0), "{m}");

    let v = with_id(&lines, "acc-verify");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["route"], json!("/v1/verify"));
    assert_eq!(v[0]["client"], json!("checkpoint-shanghai"));
    assert_eq!(v[0]["role"], json!("checkpoint"));
    assert_eq!(v[0]["region"], json!("suzhou"));

    let who = with_id(&lines, "acc-whoami");
    assert_eq!(who.len(), 1, "{who:?}");
    assert_eq!(who[0]["route"], json!("/v1/whoami"));
    assert!(who[0].get("region").is_none() && who[0].get("cache_hit").is_none());

    let nf = with_id(&lines, "acc-404");
    assert_eq!(nf.len(), 1, "{nf:?}");
    assert_eq!(nf[0]["route"], json!("unmatched"));
    assert_eq!(nf[0]["status"], json!(404));

    // Cached hits sampled: the first, then one in SAMPLE.
    let logged_hits = (0..hits)
        .filter(|i| with_id(&lines, &format!("acc-hit-{i}")).len() == 1)
        .count();
    assert_eq!(logged_hits, hits.div_ceil(SAMPLE), "{lines:?}");
    assert_eq!(with_id(&lines, "acc-hit-0").len(), 1);
    assert!(with_id(&lines, "acc-hit-1").is_empty());

    // No subject, token, name or certificate subject, in the access lines or anywhere.
    let access_text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    for secret in [&by_id.id_number, &by_id.name, &by_qr.token, &by_qr.qr] {
        assert!(
            !access_text.contains(secret.as_str()),
            "access log holds {secret}"
        );
        assert!(!g.logs().contains(secret.as_str()), "log holds {secret}");
    }
    for dn in ["CN=", "OU=", "O=shanghai"] {
        assert!(
            !access_text.contains(dn),
            "access log holds a certificate subject"
        );
    }
}
