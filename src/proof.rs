//! `hcgw proof verify ANSWER.http --key KEYS [--proof P.json] [--checkpoint C.json]`:
//! checks an answer saved with `curl -i` — its `Content-Digest` against the body, its
//! RFC 9421 signature against the signing keys (certificate PEM files, or the
//! `/v1/signing-keys` document saved as JSON) — and, given the inclusion proof of its
//! receipt (`GET /v1/audit/proof/{seq}` saved as JSON), that its audit record is in the
//! signed tree head the proof is against (and, given one, that this head is the saved
//! checkpoint). docs/proofs.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hcgw_core::signing::{VerifiedAnswer, VerifyingKey, verify_answer};

/// An answer as `curl -i` saved it: the final status line, its headers and the body.
#[derive(Debug)]
pub struct SavedAnswer {
    /// The status code.
    pub status: u16,
    /// The header fields.
    pub headers: http::HeaderMap,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

/// Why a saved answer cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// A file cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// The answer file is not an HTTP response as `curl -i` writes it.
    #[error("{0}: not an HTTP answer saved with `curl -i` ({1})")]
    NotAnAnswer(String, &'static str),
    /// A key file holds neither a certificate nor a `/v1/signing-keys` document.
    #[error("{0}: {1}")]
    Key(String, String),
}

/// Parses `curl -i` output: status line, headers, an empty line, the body. Interim
/// (1xx) responses before the final one are skipped.
pub fn parse_saved(bytes: &[u8], name: &str) -> Result<SavedAnswer, ProofError> {
    let bad = |why| ProofError::NotAnAnswer(name.to_owned(), why);
    let mut rest = bytes;
    loop {
        let end = find(rest, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(rest, b"\n\n").map(|i| (i, 2)))
            .ok_or(bad("no empty line after the headers"))?;
        let head = std::str::from_utf8(&rest[..end.0]).map_err(|_| bad("headers are not text"))?;
        let body = &rest[end.0 + end.1..];
        let mut lines = head.lines();
        let status_line = lines.next().ok_or(bad("no status line"))?;
        let mut parts = status_line.split_whitespace();
        if !parts.next().is_some_and(|v| v.starts_with("HTTP/")) {
            return Err(bad("the first line is not an HTTP status line"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..600).contains(s))
            .ok_or(bad("no status code"))?;
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let mut headers = http::HeaderMap::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or(bad("a header line without ':'"))?;
            let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad("an invalid header name"))?;
            let value = http::HeaderValue::from_str(value.trim())
                .map_err(|_| bad("an invalid header value"))?;
            headers.append(name, value);
        }
        return Ok(SavedAnswer {
            status,
            headers,
            body: body.to_vec(),
        });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads verifying keys from files: PEM certificates, or `/v1/signing-keys` documents.
pub fn load_keys(paths: &[PathBuf]) -> Result<HashMap<String, VerifyingKey>, ProofError> {
    let mut keys = HashMap::new();
    for path in paths {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProofError::Read(name.clone(), e))?;
        let mut add = |k: VerifyingKey| {
            keys.insert(k.key_id().to_owned(), k);
        };
        if text.trim_start().starts_with('{') {
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ProofError::Key(name.clone(), format!("not JSON ({e})")))?;
            let list = doc["keys"].as_array().ok_or_else(|| {
                ProofError::Key(
                    name.clone(),
                    "no \"keys\" list (GET /v1/signing-keys)".into(),
                )
            })?;
            for k in list {
                let pem = k["certificate"].as_str().unwrap_or_default();
                let key = VerifyingKey::from_pem(pem)
                    .map_err(|e| ProofError::Key(name.clone(), e.to_string()))?;
                if k["key_id"].as_str() != Some(key.key_id()) {
                    return Err(ProofError::Key(
                        name,
                        "a key_id that is not its key's thumbprint".into(),
                    ));
                }
                add(key);
            }
        } else {
            add(VerifyingKey::from_pem_file(path)
                .map_err(|e| ProofError::Key(name.clone(), e.to_string()))?);
        }
    }
    Ok(keys)
}

/// The outcome of `hcgw proof verify`: what was proved.
#[derive(Debug)]
pub struct Proved {
    /// The signature that held.
    pub signature: VerifiedAnswer,
    /// The answer's receipts (`audit` of a lookup or verify; one per item of a batch).
    pub receipts: Vec<(u64, String)>,
}

/// Checks a saved answer against keys. `created` may be any age: a proof is checked later.
pub fn verify_saved(
    answer: &SavedAnswer,
    keys: &HashMap<String, VerifyingKey>,
) -> Result<Proved, hcgw_core::signing::AnswerSignatureError> {
    let signature = verify_answer(
        answer.status,
        &answer.headers,
        &answer.body,
        |id| keys.get(id),
        0,
        i64::MAX / 2,
    )?;
    let mut receipts = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&answer.body) {
        let mut take = |a: &serde_json::Value| {
            if let (Some(seq), Some(hash)) = (a["seq"].as_u64(), a["hash"].as_str()) {
                receipts.push((seq, hash.to_owned()));
            }
        };
        take(&v["audit"]);
        for item in v["items"].as_array().into_iter().flatten() {
            take(&item["audit"]);
        }
    }
    Ok(Proved {
        signature,
        receipts,
    })
}

/// Checks that the record of `receipt` is in the tree head of `proof` (a saved
/// `GET /v1/audit/proof/{seq}` answer): the record line hashes to the receipt, its leaf is
/// included under the head's root, the head is signed by one of `keys`, and — given
/// `checkpoint` — is that checkpoint. What holds, as text; `Err` says what does not.
pub fn check_inclusion(
    receipt: (u64, &str),
    proof: &serde_json::Value,
    checkpoint: Option<&hcgw_core::audit::TreeHead>,
    keys: &HashMap<String, VerifyingKey>,
) -> Result<String, String> {
    use hcgw_core::audit::merkle;
    let (seq, hash) = receipt;
    if proof["seq"].as_u64() != Some(seq) {
        return Err(format!(
            "the proof is for seq {}, the receipt says {seq}",
            proof["seq"]
        ));
    }
    let line = proof["record_line"]
        .as_str()
        .ok_or("the proof has no record_line")?;
    if hcgw_core::audit::hash_line(line.as_bytes()) != hash {
        return Err("the proof's record line does not hash to the receipt".into());
    }
    let head: hcgw_core::audit::TreeHead = serde_json::from_value(proof["checkpoint"].clone())
        .map_err(|e| format!("the proof's checkpoint is not a tree head ({e})"))?;
    if let Some(c) = checkpoint
        && c != &head
    {
        return Err(format!(
            "the proof is against tree size {}, not the checkpoint given (tree size {})",
            head.tree_size, c.tree_size
        ));
    }
    let key = keys
        .get(&head.key_id)
        .ok_or_else(|| format!("the checkpoint is signed by an unknown key {}", head.key_id))?;
    head.verify(key)
        .map_err(|_| "the checkpoint's signature does not hold".to_owned())?;
    let index = proof["leaf_index"]
        .as_u64()
        .ok_or("the proof has no leaf_index")?;
    let size = proof["tree_size"]
        .as_u64()
        .ok_or("the proof has no tree_size")?;
    if index + 1 != seq || size != head.tree_size {
        return Err("the proof's leaf index or tree size does not match".into());
    }
    let path: Vec<merkle::Hash> = proof["audit_path"]
        .as_array()
        .ok_or("the proof has no audit_path")?
        .iter()
        .map(|h| h.as_str().and_then(merkle::from_hex))
        .collect::<Option<_>>()
        .ok_or("the audit path holds a malformed hash")?;
    let root = head
        .root()
        .ok_or("the checkpoint's root hash is malformed")?;
    let leaf = merkle::leaf_hash(line.as_bytes());
    if !merkle::verify_inclusion(index, size, &leaf, &path, &root) {
        return Err("the record is not included under the checkpoint's root".into());
    }
    Ok(format!(
        "record seq {seq} included in the tree head of size {size} signed at {} (key {})",
        head.time, head.key_id
    ))
}

/// `hcgw proof verify`: prints what holds, or why not; exit code 0 (everything asked
/// holds), 1 (something does not) or 2 (a file cannot be used).
pub fn run_verify(
    answer: &Path,
    keys: &[PathBuf],
    proof: Option<&Path>,
    checkpoint: Option<&Path>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let name = answer.display().to_string();
    let result = std::fs::read(answer)
        .map_err(|e| ProofError::Read(name.clone(), e))
        .and_then(|b| parse_saved(&b, &name))
        .and_then(|a| load_keys(keys).map(|k| (a, k)));
    let (saved, keys) = match result {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hcgw proof verify: {e}");
            return ExitCode::from(2);
        }
    };
    match verify_saved(&saved, &keys) {
        Ok(p) => {
            let created = chrono::DateTime::from_timestamp(p.signature.created, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            println!("{name}: HTTP {} answer", saved.status);
            println!("  content-digest: matches the body");
            println!(
                "  signature: valid (key {}, created {created})",
                p.signature.key_id
            );
            if p.receipts.is_empty() {
                println!("  receipt: none in the body");
            }
            for (seq, hash) in &p.receipts {
                println!("  receipt: audit record seq {seq}, hash {hash}");
            }
            let Some(proof) = proof else {
                return ExitCode::SUCCESS;
            };
            let read_json = |path: &Path| -> Result<serde_json::Value, String> {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                serde_json::from_str(&text)
                    .map_err(|e| format!("{}: not JSON ({e})", path.display()))
            };
            let inputs = read_json(proof).and_then(|proof| {
                let head = match checkpoint {
                    None => None,
                    Some(c) => Some(
                        serde_json::from_value::<hcgw_core::audit::TreeHead>(read_json(c)?)
                            .map_err(|e| format!("{}: not a checkpoint ({e})", c.display()))?,
                    ),
                };
                Ok((proof, head))
            });
            let (proof, head) = match inputs {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("hcgw proof verify: {e}");
                    return ExitCode::from(2);
                }
            };
            let seq = proof["seq"].as_u64();
            let Some((s, h)) = p.receipts.iter().find(|(s, _)| Some(*s) == seq) else {
                eprintln!(
                    "{name}: NOT proved: the proof is for a record this answer has no receipt of"
                );
                return ExitCode::FAILURE;
            };
            match check_inclusion((*s, h), &proof, head.as_ref(), &keys) {
                Ok(what) => {
                    println!("  inclusion: {what}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{name}: NOT proved: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{name}: NOT proved: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_i_output_is_parsed_with_interim_answers_and_both_line_endings() {
        let text = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Request-Id: a\r\n\r\n{\"x\":1}";
        let a = parse_saved(text, "t").unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["x-request-id"], "a");
        assert_eq!(a.body, b"{\"x\":1}");
        let a = parse_saved(b"HTTP/2 404 \ncontent-type: x\n\n", "t").unwrap();
        assert_eq!(a.status, 404);
        assert!(a.body.is_empty());
    }

    #[test]
    fn what_is_not_an_answer_is_refused_clearly() {
        for (text, why) in [
            (&b"{\"x\":1}"[..], "no empty line"),
            (b"GET / HTTP/1.1\r\n\r\n", "status line"),
            (b"HTTP/1.1 abc\r\n\r\n", "no status code"),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "without ':'"),
        ] {
            let e = parse_saved(text, "t").unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
