//! Signed answers (issue 15, docs/proofs.md): every answer of the lookup routes, errors
//! included, carries an RFC 9421 signature that the gateway's own verifier and an
//! independent one (PyPI `http-message-signatures`, tests/e2e/rfc9421_verify.py) accept;
//! any changed byte of body, status or request id breaks it; a retired key's answers keep
//! verifying through `/v1/signing-keys`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use hcgw::signing::{AnswerSignatureError, VerifyingKey, verify_answer};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::{TlsPaths, config_text, curl_as, pki, start_gateway};
use crate::world::{client, url, world};

/// A saved answer.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.expect("request");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

/// The published keys of a gateway, by key id.
async fn published(base: &str, as_client: &str) -> (Value, HashMap<String, VerifyingKey>) {
    let v: Value = client(as_client)
        .get(format!("{base}/v1/signing-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut keys = HashMap::new();
    for k in v["keys"].as_array().unwrap() {
        let key = VerifyingKey::from_pem(k["certificate"].as_str().unwrap()).unwrap();
        assert_eq!(
            key.key_id(),
            k["key_id"].as_str().unwrap(),
            "key id is the thumbprint"
        );
        keys.insert(key.key_id().to_owned(), key);
    }
    (v, keys)
}

fn ours(a: &Answer, keys: &HashMap<String, VerifyingKey>) -> Result<String, AnswerSignatureError> {
    let now = chrono::Utc::now().timestamp();
    verify_answer(a.status, &a.headers, &a.body, |id| keys.get(id), now, 300).map(|v| v.key_id)
}

/// The independent verifier's verdict: Ok(keyid) or Err(its reason).
fn independent(a: &Answer, keys: &HashMap<String, VerifyingKey>) -> Result<String, String> {
    let headers: Vec<(String, String)> = a
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let pems: HashMap<_, _> = keys
        .iter()
        .map(|(id, k)| (id.clone(), k.certificate_pem()))
        .collect();
    let input = json!({
        "status": a.status,
        "headers": headers,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&a.body),
        "keys": pems,
    });
    let script = crate::support::repo().join("tests/e2e/rfc9421_verify.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(text.strip_prefix("ok ").unwrap_or(&text).to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn both_accept(a: &Answer, keys: &HashMap<String, VerifyingKey>, what: &str) -> String {
    let id = ours(a, keys).unwrap_or_else(|e| panic!("{what}: our verifier: {e}"));
    let theirs =
        independent(a, keys).unwrap_or_else(|e| panic!("{what}: independent verifier: {e}"));
    assert_eq!(id, theirs, "{what}");
    id
}

fn both_refuse(a: &Answer, keys: &HashMap<String, VerifyingKey>, what: &str) {
    assert!(ours(a, keys).is_err(), "{what}: our verifier accepted it");
    assert!(
        independent(a, keys).is_err(),
        "{what}: the independent verifier accepted it"
    );
}

fn a_subject() -> Value {
    let w = world();
    let sim = w.sim(hcgw_adapters::RegionId::Suzhou);
    let (s, _) = sim
        .find(true, |s, i| {
            i.error.is_none() && s.fate == hcgw_sim::Fate::Active
        })
        .expect("a subject with a status");
    json!({ "qr": s.qr })
}

#[tokio::test]
async fn every_answer_of_the_lookup_routes_is_signed_and_independently_verifiable() {
    let w = world();
    let base = url("");
    let (doc, keys) = published(base.trim_end_matches('/'), "platform-shanghai").await;
    let list = doc["keys"].as_array().unwrap();
    assert_eq!(list.len(), 2, "current and previous: {doc}");
    assert_eq!(list[0]["status"], "current");
    assert_eq!(list[1]["status"], "previous");
    // The dev PKI's current key is Ed25519, the retired one P-256: both verify here.
    assert_eq!(list[0]["algorithm"], "ed25519");
    assert_eq!(list[1]["algorithm"], "ecdsa-p256-sha256");
    let current = list[0]["key_id"].as_str().unwrap().to_owned();
    let body = json!({ "region": "suzhou", "subject": a_subject() });
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("a lookup", client("platform-shanghai").post(url("/v1/lookup")).json(&body)),
        (
            "a batch",
            client("platform-shanghai")
                .post(url("/v1/lookup/batch"))
                .json(&json!({ "items": [body.clone(), { "region": "atlantis", "subject": body["subject"] }] })),
        ),
        (
            "a verify",
            client("checkpoint-shanghai")
                .post(url("/v1/verify"))
                .json(&json!({ "qr": body["subject"]["qr"], "checkpoint": "SH-HONGQIAO-RAIL-G12" })),
        ),
        (
            "an invalid request",
            client("platform-shanghai").post(url("/v1/lookup")).body("{").header("content-type", "application/json"),
        ),
        (
            "a role refusal",
            client("checkpoint-shanghai").post(url("/v1/lookup")).json(&body),
        ),
        (
            "an unknown region",
            client("platform-shanghai")
                .post(url("/v1/lookup"))
                .json(&json!({ "region": "atlantis", "subject": body["subject"] })),
        ),
    ];
    let mut statuses = Vec::new();
    for (what, req) in cases {
        let a = send(req).await;
        statuses.push(a.status);
        assert_eq!(
            both_accept(&a, &keys, what),
            current,
            "{what}: signed with the current key"
        );
        assert!(a.headers.contains_key("x-request-id"));
    }
    assert!(
        statuses.contains(&200) && statuses.contains(&400) && statuses.contains(&403),
        "{statuses:?}"
    );
    // Answers of other routes are not signed.
    let a = send(client("platform-shanghai").get(url("/v1/whoami"))).await;
    assert_eq!(a.status, 200);
    assert!(
        !a.headers.contains_key("signature"),
        "whoami is not an answer"
    );
    let _ = w;
}

#[tokio::test]
async fn a_changed_byte_of_body_status_or_request_id_breaks_the_signature() {
    let base = url("");
    let (_, keys) = published(base.trim_end_matches('/'), "platform-shanghai").await;
    let body = json!({ "region": "suzhou", "subject": a_subject() });
    let a = send(
        client("platform-shanghai")
            .post(url("/v1/lookup"))
            .json(&body),
    )
    .await;
    assert_eq!(a.status, 200);
    both_accept(&a, &keys, "the answer as sent");

    let mut body_changed = a.clone();
    let i = body_changed.body.iter().position(|b| *b == b'"').unwrap();
    body_changed.body[i + 1] ^= 0x01;
    both_refuse(&body_changed, &keys, "one body byte changed");
    // Even with a Content-Digest recomputed for the new body, the signature breaks.
    body_changed.headers.insert(
        "content-digest",
        hcgw::signing::content_digest(&body_changed.body)
            .parse()
            .unwrap(),
    );
    both_refuse(&body_changed, &keys, "body and digest changed");

    let mut status_changed = a.clone();
    status_changed.status = 203;
    both_refuse(&status_changed, &keys, "status changed");

    let mut id_changed = a.clone();
    let mut id = id_changed.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let last = id.pop().unwrap();
    id.push(if last == 'A' { 'B' } else { 'A' });
    id_changed
        .headers
        .insert("x-request-id", id.parse().unwrap());
    both_refuse(&id_changed, &keys, "request id changed");

    let mut sig_changed = a.clone();
    sig_changed.headers.remove("signature");
    both_refuse(&sig_changed, &keys, "signature removed");

    // A verifier that does not know the key refuses too.
    let none = HashMap::new();
    assert!(matches!(
        ours(&a, &none),
        Err(AnswerSignatureError::UnknownKey(_))
    ));
}

#[tokio::test]
async fn answers_signed_by_a_retired_key_still_verify_after_the_rotation() {
    let p = pki();
    let signing = |name: &str| {
        format!(
            "[signing]\nkey = {:?}\ncert = {:?}\n",
            p.join(format!("signing/{name}/key.pem"))
                .display()
                .to_string(),
            p.join(format!("signing/{name}/cert.pem"))
                .display()
                .to_string()
        )
    };
    let body = json!({ "region": "atlantis", "subject": { "qr": "x" } });
    // Before: the gateway signs with what will be the retired key.
    let dir = tempfile::tempdir().unwrap();
    let before = start_gateway(
        &config_text(
            &TlsPaths::standard(),
            &dir.path().join("audit"),
            &signing("hcgw-dev-previous"),
        ),
        dir.path(),
    )
    .await;
    let old_base = format!("https://localhost:{}", before.api_addr.port());
    let old = send(
        client("platform-shanghai")
            .post(format!("{old_base}/v1/lookup"))
            .json(&body),
    )
    .await;
    assert_eq!(old.status, 400, "an unknown region (answered, signed)");
    before.shutdown().await;
    // After: a new current key, the old certificate listed as previous.
    let dir = tempfile::tempdir().unwrap();
    let rotated = format!(
        "{}previous = [{:?}]\n",
        signing("hcgw-dev"),
        p.join("signing/hcgw-dev-previous/cert.pem")
            .display()
            .to_string()
    );
    let after = start_gateway(
        &config_text(&TlsPaths::standard(), &dir.path().join("audit"), &rotated),
        dir.path(),
    )
    .await;
    let new_base = format!("https://localhost:{}", after.api_addr.port());
    let (doc, keys) = published(&new_base, "platform-shanghai").await;
    let previous = doc["keys"][1]["key_id"].as_str().unwrap();
    assert_eq!(both_accept(&old, &keys, "the old answer"), previous);
    let new = send(
        client("platform-shanghai")
            .post(format!("{new_base}/v1/lookup"))
            .json(&body),
    )
    .await;
    let current = doc["keys"][0]["key_id"].as_str().unwrap();
    assert_eq!(both_accept(&new, &keys, "a new answer"), current);
    assert_ne!(previous, current);
    // Without the previous certificate, the old answer no longer verifies.
    let only_current: HashMap<_, _> = keys.into_iter().filter(|(id, _)| id == current).collect();
    both_refuse(
        &old,
        &only_current,
        "old answer, previous key not published",
    );
    after.shutdown().await;
}

#[tokio::test]
async fn hcgw_proof_verify_checks_an_answer_saved_with_curl() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let curl = |args: &[&str], out: &std::path::Path| curl_as("platform-shanghai", args, out);
    let base = format!("https://localhost:{}", w.api.port());
    let keys = dir.path().join("keys.json");
    curl(&[&format!("{base}/v1/signing-keys")], &keys);
    let answer = dir.path().join("answer.http");
    let body = json!({ "region": "suzhou", "subject": a_subject() }).to_string();
    curl(
        &[
            "-i",
            "-H",
            "content-type: application/json",
            "-d",
            &body,
            &format!("{base}/v1/lookup"),
        ],
        &answer,
    );
    let verify = |file: &std::path::Path, key: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_hcgw"))
            .args(["proof", "verify"])
            .arg(file)
            .arg("--key")
            .arg(key)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = verify(&answer, &keys);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("signature: valid"), "{text}");
    // The certificate file works as a key too.
    let (code, text) = verify(&answer, &p.join("signing/hcgw-dev/cert.pem"));
    assert_eq!(code, Some(0), "{text}");
    // One changed byte of the body: not proved.
    let mut bytes = std::fs::read(&answer).unwrap();
    let at = bytes.len() - 3;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    let tampered = dir.path().join("tampered.http");
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, text) = verify(&tampered, &keys);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("NOT proved"), "{text}");
    // The wrong key: not proved. Not an answer: a usage error.
    let (code, text) = verify(&answer, &p.join("signing/hcgw-jiangsu/cert.pem"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("unknown signing key"), "{text}");
    let (code, text) = verify(&keys, &keys);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("curl -i"), "{text}");
}
