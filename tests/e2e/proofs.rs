//! Receipts, signed tree heads and proofs with a real gateway process (issue 15): every
//! answer and audited error carries its record's `audit: {seq, hash}`; the gateway signs
//! tree heads of the RFC 9162 Merkle tree over its trail; the inclusion and consistency
//! proofs it serves — across file rotation — are checked by an independent Python
//! implementation (tests/e2e/rfc9162.py) against the trail files themselves; only the
//! record's caller or ops gets a record's proof; `hcgw audit checkpoints` and `hcgw audit
//! verify` check the heads, and a trail rewritten with a recomputed chain fails on them.

use std::path::Path;
use std::process::Command;

use hcgw_adapters::RegionId;
use hcgw_sim::Fate;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::drain::{Spawned, good_qrs, spawn_gateway};
use crate::support::{curl_as, eventually, pki, repo};
use crate::world::{fresh_client, world};

const REGION: RegionId = RegionId::Suzhou;

/// Every line of the trail, oldest first.
fn trail_lines(dir: &Path) -> Vec<String> {
    hcgw::audit::trail_files(dir)
        .unwrap()
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn get(client: &reqwest::Client, g: &Spawned, path: &str) -> (u16, Value) {
    let r = client.get(g.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The latest head's tree size, once it covers at least `n` records.
async fn head_covering(client: &reqwest::Client, g: &Spawned, n: u64) -> Value {
    let mut head = Value::Null;
    eventually(15, "a signed tree head covering the records", async || {
        let (s, body) = get(client, g, "/v1/audit/checkpoints/latest").await;
        head = body;
        s == 200 && head["tree_size"].as_u64().unwrap_or(0) >= n
    })
    .await;
    head
}

/// The world's configuration without its `[signing]` section.
fn without_signing(text: String) -> String {
    let Some(start) = text.find("\n[signing]\n") else {
        return text;
    };
    let rest = &text[start + 1..];
    let end = rest[1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 1 + 1 + i);
    format!("{}{}", &text[..start], &text[end..])
}

fn hcgw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_signed_tree_heads_and_proofs_check_out_independently_across_rotation() {
    let w = world();
    let key = pki().join("signing/hcgw-dev/key.pem");
    let cert = pki().join("signing/hcgw-dev/cert.pem");
    let g = spawn_gateway(w, "proofs", |text| {
        let text = without_signing(text).replacen(
            "[audit]\n",
            "[audit]\ncheckpoint_s = 1\nrotate_bytes = 65536\n",
            1,
        );
        format!(
            "{text}\n[signing]\nkey = {:?}\ncert = {:?}\n",
            key.display().to_string(),
            cert.display().to_string()
        )
    });
    let platform = fresh_client("platform-shanghai");
    let other = fresh_client("platform-guangdong");
    let ops = fresh_client("ops");
    let qrs = good_qrs(w, REGION);

    // One lookup: its receipt is the seq and chain hash of its record.
    let r = platform
        .post(g.url("/v1/lookup"))
        .json(&json!({ "region": REGION, "subject": { "qr": qrs[0] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let receipt = &body["audit"];
    assert_eq!(receipt["seq"], 1, "{body}");
    let lines = trail_lines(&g.audit_dir);
    assert_eq!(receipt["hash"], sha_hex(lines[0].as_bytes()));
    let first = head_covering(&platform, &g, 1).await;
    let first_size = first["tree_size"].as_u64().unwrap();

    // An audited error carries its receipt too.
    let sim = w.sim(REGION);
    let missing = sim
        .ctx
        .population
        .subjects()
        .iter()
        .find(|s| s.fate == Fate::NotFound)
        .expect("a subject the region does not know")
        .qr
        .clone();
    let r = platform
        .post(g.url("/v1/lookup"))
        .json(&json!({ "region": REGION, "subject": { "qr": missing } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "subject_not_found");
    assert_eq!(problem["audit"]["seq"], 2, "{problem}");
    // A request refused before the pipeline (invalid) is not audited: no receipt.
    let r = platform
        .post(g.url("/v1/lookup"))
        .json(&json!({ "region": "atlantis", "subject": { "qr": "x" } }))
        .send()
        .await
        .unwrap();
    let problem: Value = r.json().await.unwrap();
    assert!(problem.get("audit").is_none(), "{problem}");

    // Batches: one receipt per item, consecutive seqs; enough records to rotate 64 KiB
    // files many times and to complete two of the tree's 1,024-record chunks (whose leaf
    // hashes leave memory for tree-leaves.bin).
    let mut last_seq = 2;
    for round in 0..12 {
        let items: Vec<Value> = (0..200)
            .map(|i| json!({ "region": REGION, "subject": { "qr": qrs[(round * 200 + i) % qrs.len()] } }))
            .collect();
        // The caller's quota paces this many items: a refused batch (429, not audited)
        // is sent again after its Retry-After.
        let r = loop {
            let r = platform
                .post(g.url("/v1/lookup/batch"))
                .json(&json!({ "items": items }))
                .send()
                .await
                .unwrap();
            if r.status() != 429 {
                break r;
            }
            let wait = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1u64);
            tokio::time::sleep(std::time::Duration::from_secs(wait.clamp(1, 5))).await;
        };
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        for item in body["results"].as_array().unwrap() {
            let seq = item["audit"]["seq"]
                .as_u64()
                .or_else(|| item["error"]["audit"]["seq"].as_u64())
                .unwrap_or_else(|| panic!("no receipt: {item}"));
            assert_eq!(seq, last_seq + 1);
            last_seq = seq;
        }
    }
    assert!(
        hcgw::audit::trail_files(&g.audit_dir).unwrap().len() >= 3,
        "the trail rotated"
    );
    let lines = trail_lines(&g.audit_dir);
    assert_eq!(lines.len() as u64, last_seq);
    let head = head_covering(&platform, &g, last_seq).await;
    let size = head["tree_size"].as_u64().unwrap();
    assert!(size > first_size);
    let signing_key = hcgw_core::signing::VerifyingKey::from_pem_file(&cert).unwrap();
    let parsed: hcgw::audit::TreeHead = serde_json::from_value(head.clone()).unwrap();
    parsed.verify(&signing_key).unwrap();

    // Inclusion proofs of records in every file and every chunk, for their caller and for
    // ops: chunks 0 and 1 are read back from tree-leaves.bin, the last one is in memory.
    let mut inclusion = Vec::new();
    for seq in [
        1,
        2,
        150,
        300,
        1024,
        1025,
        last_seq / 2,
        2048,
        2049,
        last_seq,
    ] {
        let (s, p) = get(&platform, &g, &format!("/v1/audit/proof/{seq}")).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["seq"], seq);
        assert_eq!(p["checkpoint"]["tree_size"], size);
        inclusion.push(p);
    }
    let (s, p) = get(&ops, &g, "/v1/audit/proof/3").await;
    assert_eq!(s, 200, "{p}");
    inclusion.push(p);
    // Another caller's record: 403. Unknown seq: 404. Not a number: 400.
    let (s, p) = get(&other, &g, "/v1/audit/proof/3").await;
    assert_eq!((s, p["code"].as_str()), (403, Some("forbidden")), "{p}");
    let (s, p) = get(&platform, &g, "/v1/audit/proof/999999").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (404, Some("proof_not_found")),
        "{p}"
    );
    let (s, _) = get(&platform, &g, "/v1/audit/proof/0").await;
    assert_eq!(s, 404);
    let (s, p) = get(&platform, &g, "/v1/audit/proof/abc").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (400, Some("invalid_request")),
        "{p}"
    );

    // Consistency between the first head and the latest; bad ranges refused.
    let (s, c) = get(
        &other,
        &g,
        &format!("/v1/audit/consistency?from={first_size}&to={size}"),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    let (s, _) = get(
        &platform,
        &g,
        &format!("/v1/audit/consistency?from={size}&to={first_size}"),
    )
    .await;
    assert_eq!(s, 400);
    let (s, p) = get(
        &platform,
        &g,
        &format!("/v1/audit/consistency?from={first_size}&to={}", size + 1000),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (404, Some("proof_not_found")),
        "{p}"
    );
    let (s, _) = get(&platform, &g, "/v1/audit/consistency?from=1").await;
    assert_eq!(s, 400);

    // The leaf file holds the two completed chunks (32 bytes a record), no more. Changed
    // under the running gateway, it is refused, not used: the proofs reaching into the
    // changed chunk are 503, the others still given.
    let leaves = g.audit_dir.join("tree-leaves.bin");
    let mut bytes = std::fs::read(&leaves).unwrap();
    assert_eq!(bytes.len(), 2 * 1024 * 32);
    bytes[32 * 1030] ^= 1;
    std::fs::write(&leaves, &bytes).unwrap();
    let (s, p) = get(&platform, &g, "/v1/audit/proof/1100").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (503, Some("proof_unavailable")),
        "{p}"
    );
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("records 1025..=2048"),
        "{p}"
    );
    let (s, p) = get(&platform, &g, "/v1/audit/proof/150").await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p, inclusion[2], "the same proof as before the change");
    let (s, p) = get(&platform, &g, &format!("/v1/audit/proof/{last_seq}")).await;
    assert_eq!(s, 200, "{p}");

    // The metrics count the heads and show the tree size.
    let metrics = ops
        .get(g.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("hcgw_audit_tree_heads_total"), "{metrics}");
    assert!(metrics.contains("hcgw_audit_tree_size"), "{metrics}");

    // The independent check, on the files the gateway wrote.
    let audit_dir = g.audit_dir.clone();
    drop(g);
    let proofs = audit_dir.parent().unwrap().join("proofs.json");
    std::fs::write(
        &proofs,
        serde_json::to_vec(&json!({ "inclusion": inclusion, "consistency": [c] })).unwrap(),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(repo().join("tests/e2e/rfc9162.py"))
        .arg(&audit_dir)
        .arg(&proofs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok consistency"), "{stdout}");

    cli_checks(&audit_dir, &cert);
}

/// `hcgw audit checkpoints` and `hcgw audit verify` on the trail of the test above.
fn cli_checks(audit_dir: &Path, cert: &Path) {
    let dir = audit_dir.to_str().unwrap();
    let cert = cert.to_str().unwrap();
    let wrong = pki().join("signing/hcgw-shanghai/cert.pem");
    let wrong = wrong.to_str().unwrap();

    let out = hcgw(&["audit", "checkpoints", dir, "--key", cert]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" ok "), "{stdout}");
    assert!(!stdout.contains("BAD"), "{stdout}");
    // Without a key: listed, unchecked. With another gateway's key: BAD, exit 1.
    let out = hcgw(&["audit", "checkpoints", dir]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchecked"));
    let out = hcgw(&["audit", "checkpoints", dir, "--key", wrong]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("BAD"));

    let out = hcgw(&["audit", "verify", dir, "--key", cert]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tree heads intact"), "{stdout}");
    assert!(stdout.contains("signatures verified"), "{stdout}");
    let out = hcgw(&["audit", "verify", dir, "--key", wrong]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature does not verify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An operator rewrites record 5 and recomputes the whole chain: the chain verifies,
    // the signed tree heads do not.
    let files = hcgw::audit::trail_files(audit_dir).unwrap();
    let mut prev = hcgw::audit::GENESIS_PREV.to_string();
    let mut seq = 0u64;
    for f in &files {
        let mut out = String::new();
        for line in std::fs::read_to_string(f).unwrap().lines() {
            seq += 1;
            let v: Value = serde_json::from_str(line).unwrap();
            let mut line = line.to_owned();
            let old_prev = v["prev"].as_str().unwrap().to_owned();
            line = line.replacen(
                &format!("\"prev\":\"{old_prev}\""),
                &format!("\"prev\":\"{prev}\""),
                1,
            );
            if seq == 5 {
                let id = v["request_id"].as_str().unwrap().to_owned();
                line = line.replacen(&id, "rewritten-by-the-operator", 1);
            }
            prev = sha_hex(line.as_bytes());
            out.push_str(&line);
            out.push('\n');
        }
        std::fs::write(f, out).unwrap();
    }
    let out = hcgw(&["audit", "verify", dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("chain intact"),
        "the rewritten chain is consistent: {stdout}{stderr}"
    );
    // Named: the first head covering record 5.
    let line = hcgw::audit::read_heads(&audit_dir.join(hcgw::audit::HEADS_FILE))
        .unwrap()
        .into_iter()
        .find(|(_, h)| h.as_ref().unwrap().tree_size >= 5)
        .unwrap()
        .0;
    assert!(
        stderr.contains(&format!(
            "tree-heads.jsonl:{line}: the root of the trail's first"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("the trail was changed"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_newer_than_the_latest_head_is_409_and_no_signing_key_means_404() {
    let w = world();
    // No head for an hour: the first record is not yet covered by any.
    let g = spawn_gateway(w, "proofs-unsigned-yet", |text| {
        let text = without_signing(text).replacen("[audit]\n", "[audit]\ncheckpoint_s = 3600\n", 1);
        format!(
            "{text}\n[signing]\nkey = {:?}\ncert = {:?}\n",
            pki().join("signing/hcgw-dev/key.pem").display().to_string(),
            pki()
                .join("signing/hcgw-dev/cert.pem")
                .display()
                .to_string()
        )
    });
    let platform = fresh_client("platform-shanghai");
    let qr = good_qrs(w, REGION)[0].clone();
    let body: Value = platform
        .post(g.url("/v1/lookup"))
        .json(&json!({ "region": REGION, "subject": { "qr": qr } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["audit"]["seq"], 1, "{body}");
    let r = platform
        .get(g.url("/v1/audit/proof/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["retry-after"], "3600");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "proof_not_yet_signed", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("retry after the next one"),
        "{p}"
    );
    let (s, p) = get(&platform, &g, "/v1/audit/checkpoints/latest").await;
    assert_eq!(
        (s, p["code"].as_str()),
        (404, Some("proof_not_found")),
        "{p}"
    );
    drop(g);

    // A gateway without a [signing] key: receipts still, but no heads, no proofs.
    let g = spawn_gateway(w, "proofs-unsigned", without_signing);
    let body: Value = platform
        .post(g.url("/v1/lookup"))
        .json(&json!({ "region": REGION, "subject": { "qr": qr } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seq = body["audit"]["seq"].as_u64().expect("a receipt");
    for path in [
        "/v1/audit/checkpoints/latest".to_string(),
        format!("/v1/audit/proof/{seq}"),
        "/v1/audit/consistency?from=1&to=2".to_string(),
    ] {
        let r = platform.get(g.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "proof_not_found", "{path}: {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hcgw_proof_verify_proves_a_saved_answer_is_in_the_signed_tree() {
    let w = world();
    let g = spawn_gateway(w, "proofs-cli", |text| {
        text.replacen("[audit]\n", "[audit]\ncheckpoint_s = 1\n", 1)
    });
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| dir.path().join(n);
    let qr = good_qrs(w, REGION)[0].clone();
    let body = json!({ "region": REGION, "subject": { "qr": qr } }).to_string();
    curl_as(
        "platform-shanghai",
        &[
            "-i",
            "-H",
            "content-type: application/json",
            "-d",
            &body,
            &g.url("/v1/lookup"),
        ],
        &file("answer.http"),
    );
    curl_as(
        "platform-shanghai",
        &[&g.url("/v1/signing-keys")],
        &file("keys.json"),
    );
    let saved = std::fs::read_to_string(file("answer.http")).unwrap();
    let json_body = &saved[saved.find("\r\n\r\n").unwrap() + 4..];
    let seq = serde_json::from_str::<Value>(json_body).unwrap()["audit"]["seq"]
        .as_u64()
        .expect("a receipt");
    // Once a tree head covers the record (checkpoint_s = 1), its proof can be fetched.
    let platform = fresh_client("platform-shanghai");
    eventually(20, "a signed head covering the record", async || {
        let r = platform
            .get(g.url(&format!("/v1/audit/proof/{seq}")))
            .send()
            .await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
    curl_as(
        "platform-shanghai",
        &[&g.url(&format!("/v1/audit/proof/{seq}"))],
        &file("proof.json"),
    );
    let proof: Value =
        serde_json::from_str(&std::fs::read_to_string(file("proof.json")).unwrap()).unwrap();
    std::fs::write(file("checkpoint.json"), proof["checkpoint"].to_string()).unwrap();
    let verify = |extra: &[&Path]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcgw"));
        cmd.args(["proof", "verify"])
            .arg(file("answer.http"))
            .arg("--key")
            .arg(file("keys.json"));
        if let [proof, rest @ ..] = extra {
            cmd.arg("--proof").arg(proof);
            if let [c] = rest {
                cmd.arg("--checkpoint").arg(c);
            }
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = verify(&[&file("proof.json"), &file("checkpoint.json")]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("inclusion: record seq {seq} included")),
        "{text}"
    );

    // A changed hash of the audit path: not included.
    let mut bad = proof.clone();
    let path = bad["audit_path"].as_array_mut().unwrap();
    if let Some(first) = path.first_mut() {
        let mut h = first.as_str().unwrap().to_owned();
        let c = if h.starts_with('0') { "1" } else { "0" };
        h.replace_range(0..1, c);
        *first = Value::String(h);
    } else {
        // A tree of one record has an empty path: claim a bigger tree instead.
        bad["tree_size"] = json!(2);
    }
    std::fs::write(file("bad-proof.json"), bad.to_string()).unwrap();
    let (code, text) = verify(&[&file("bad-proof.json")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("NOT proved"), "{text}");
    // Another checkpoint than the proof's: refused.
    let mut other = proof["checkpoint"].clone();
    other["tree_size"] = json!(other["tree_size"].as_u64().unwrap() + 7);
    std::fs::write(file("other.json"), other.to_string()).unwrap();
    let (code, text) = verify(&[&file("proof.json"), &file("other.json")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not the checkpoint given"), "{text}");
    // A record line that is not the answer's record: refused.
    let mut forged = proof.clone();
    forged["record_line"] = json!(
        proof["record_line"]
            .as_str()
            .unwrap()
            .replace("\"cache_hit\":false", "\"cache_hit\":true")
    );
    std::fs::write(file("forged.json"), forged.to_string()).unwrap();
    let (code, text) = verify(&[&file("forged.json")]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does not hash to the receipt"), "{text}");
    // Stopped (SIGTERM: the trail and its heads flushed), the saved key document checks
    // the trail's signed heads too.
    let mut g = g;
    let term = Command::new("kill")
        .args(["-TERM", &g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    g.child.wait().unwrap();
    let out = hcgw(&[
        "audit",
        "verify",
        g.audit_dir.to_str().unwrap(),
        "--key",
        file("keys.json").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("signatures verified"), "{text}");
    drop(g);
}
