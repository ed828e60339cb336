//! RFC 9421 HTTP Message Signatures over an answer (a response), with RFC 9530
//! `Content-Digest`: building the signature base, signing, and verifying.
//!
//! hcgw signs every answer with one signature labelled [`LABEL`] that covers [`COVERED`]:
//!
//! ```text
//! Content-Digest: sha-256=:<base64 SHA-256 of the body>:
//! Signature-Input: hcgw=("@status" "content-digest" "content-type" "x-request-id");created=1764640000;keyid="<thumbprint>";alg="ecdsa-p256-sha256"
//! Signature: hcgw=:<base64 signature>:
//! ```
//!
//! The verifier here is strict: it accepts only that shape (the label, exactly these
//! components in this order, the three parameters), checks the digest against the body,
//! and looks the key up by `keyid`. Anything else is refused, never guessed at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::{SigAlgorithm, Signer, VerifyingKey};

/// The signature's label in `Signature-Input` and `Signature`.
pub const LABEL: &str = "hcgw";
/// The components every answer signature covers, in order.
pub const COVERED: [&str; 4] = ["@status", "content-digest", "content-type", "x-request-id"];
/// [`COVERED`] as the inner list of `Signature-Input` (a test checks the two agree).
pub(super) const COVERED_LIST: &str =
    r#"("@status" "content-digest" "content-type" "x-request-id")"#;

/// Why an answer's signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerSignatureError {
    /// A header the signature needs is absent (`signature`, `content-digest`, …).
    #[error("the answer has no {0} header")]
    Missing(&'static str),
    /// A header is present but not in the shape hcgw signs.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// `Content-Digest` does not match the body.
    #[error("content-digest does not match the body")]
    DigestMismatch,
    /// No known key has this id.
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// The key's algorithm is not the one the signature declares.
    #[error("the key {key_id} is {key_alg}, the signature says {declared}")]
    AlgorithmMismatch {
        /// The key id.
        key_id: String,
        /// The key's algorithm.
        key_alg: SigAlgorithm,
        /// The declared algorithm.
        declared: String,
    },
    /// `created` is too far from the verifier's clock.
    #[error("signature created at {created}, outside the accepted window around {now}")]
    Stale {
        /// The signature's `created`.
        created: i64,
        /// The verifier's time.
        now: i64,
    },
    /// The signature does not verify over the signature base.
    #[error("signature does not verify")]
    Invalid,
}

/// The RFC 9530 `Content-Digest` value of a body: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    let mut out = String::with_capacity(56);
    out.push_str("sha-256=:");
    STANDARD.encode_string(Sha256::digest(body), &mut out);
    out.push(':');
    out
}

/// The `@signature-params` value (and `Signature-Input` member value) for [`COVERED`].
pub fn signature_params(created: i64, key_id: &str, alg: SigAlgorithm) -> String {
    format!(
        "{COVERED_LIST};created={created};keyid=\"{key_id}\";alg=\"{}\"",
        alg.as_str()
    )
}

/// The RFC 9421 §2.5 signature base of an answer with `status` and `headers` (which must
/// hold every covered header), for the params value `params`.
pub fn signature_base(
    status: u16,
    headers: &HeaderMap,
    params: &str,
) -> Result<String, AnswerSignatureError> {
    use std::fmt::Write as _;
    let mut base = String::with_capacity(320);
    for component in COVERED {
        let _ = write!(base, "\"{component}\": ");
        if component == "@status" {
            let _ = write!(base, "{status}");
        } else {
            push_header_value(&mut base, headers, component)?;
        }
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(params);
    Ok(base)
}

/// Appends a covered header's value: every field line, trimmed, joined by `, ` (RFC 9421
/// §2.1).
fn push_header_value(
    base: &mut String,
    headers: &HeaderMap,
    name: &'static str,
) -> Result<(), AnswerSignatureError> {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return Err(AnswerSignatureError::Missing(name));
    }
    for (i, v) in values.enumerate() {
        let s = v
            .to_str()
            .map_err(|_| AnswerSignatureError::Malformed(name))?;
        if i > 0 {
            base.push_str(", ");
        }
        base.push_str(s.trim());
    }
    Ok(())
}

/// Signs an answer in place: sets `Content-Digest` over `body`, then `Signature-Input` and
/// `Signature`. `headers` must already hold `content-type` and `x-request-id`.
pub fn sign_answer(
    signer: &dyn Signer,
    status: u16,
    headers: &mut HeaderMap,
    body: &[u8],
    created: i64,
) -> Result<(), AnswerSignatureError> {
    let digest = content_digest(body);
    headers.insert(
        "content-digest",
        digest
            .parse()
            .map_err(|_| AnswerSignatureError::Malformed("content-digest"))?,
    );
    let params = signature_params(created, signer.key_id(), signer.algorithm());
    let base = signature_base(status, headers, &params)?;
    let mut signature = String::with_capacity(96);
    signature.push_str(LABEL);
    signature.push_str("=:");
    STANDARD.encode_string(signer.sign(base.as_bytes()), &mut signature);
    signature.push(':');
    let input = format!("{LABEL}={params}");
    headers.insert(
        "signature-input",
        input
            .parse()
            .map_err(|_| AnswerSignatureError::Malformed("signature-input"))?,
    );
    headers.insert(
        "signature",
        signature
            .parse()
            .map_err(|_| AnswerSignatureError::Malformed("signature"))?,
    );
    Ok(())
}

/// What a verified answer signature said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAnswer {
    /// The signing key's id.
    pub key_id: String,
    /// `created`, in seconds since the epoch.
    pub created: i64,
    /// The `Signature-Input` header as received.
    pub signature_input: String,
    /// The `Signature` header as received.
    pub signature: String,
}

/// The parsed `Signature-Input` member.
struct Params<'a> {
    raw: &'a str,
    created: i64,
    key_id: &'a str,
    alg: &'a str,
}

/// Parses `hcgw=(<COVERED>);created=N;keyid="…";alg="…"` — that shape only.
fn parse_input(input: &str) -> Option<Params<'_>> {
    let raw = input.trim().strip_prefix(LABEL)?.strip_prefix('=')?;
    let rest = raw.strip_prefix(COVERED_LIST)?;
    let rest = rest.strip_prefix(";created=")?;
    let (created, rest) = rest.split_once(';')?;
    if created.is_empty() || created.len() > 15 || !created.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let created: i64 = created.parse().ok()?;
    let rest = rest.strip_prefix("keyid=\"")?;
    let (key_id, rest) = rest.split_once('"')?;
    let alg = rest.strip_prefix(";alg=\"")?.strip_suffix('"')?;
    let sane = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    };
    (sane(key_id) && sane(alg)).then_some(Params {
        raw,
        created,
        key_id,
        alg,
    })
}

/// Checks an answer's `Content-Digest` against `body` and its hcgw signature with the key
/// `keys` returns for its `keyid`; `created` must lie within `max_skew_s` of `now`.
pub fn verify_answer<'k>(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    keys: impl Fn(&str) -> Option<&'k VerifyingKey>,
    now: i64,
    max_skew_s: i64,
) -> Result<VerifiedAnswer, AnswerSignatureError> {
    use AnswerSignatureError as E;
    let one = |name: &'static str| -> Result<String, E> {
        let mut all = headers.get_all(name).iter();
        let v = all.next().ok_or(E::Missing(name))?;
        if all.next().is_some() {
            return Err(E::Malformed(name));
        }
        v.to_str()
            .map(str::to_owned)
            .map_err(|_| E::Malformed(name))
    };
    let input = one("signature-input")?;
    let signature = one("signature")?;
    let digest = one("content-digest")?;
    if digest.trim() != content_digest(body) {
        return Err(E::DigestMismatch);
    }
    let params = parse_input(&input).ok_or(E::Malformed("signature-input"))?;
    let sig_b64 = signature
        .trim()
        .strip_prefix(LABEL)
        .and_then(|s| s.strip_prefix("=:"))
        .and_then(|s| s.strip_suffix(':'))
        .ok_or(E::Malformed("signature"))?;
    let sig = STANDARD
        .decode(sig_b64)
        .map_err(|_| E::Malformed("signature"))?;
    if (params.created - now).abs() > max_skew_s {
        return Err(E::Stale {
            created: params.created,
            now,
        });
    }
    let key = keys(params.key_id).ok_or_else(|| E::UnknownKey(params.key_id.to_owned()))?;
    if key.algorithm().as_str() != params.alg {
        return Err(E::AlgorithmMismatch {
            key_id: params.key_id.to_owned(),
            key_alg: key.algorithm(),
            declared: params.alg.to_owned(),
        });
    }
    let base = signature_base(status, headers, params.raw)?;
    key.verify(base.as_bytes(), &sig).map_err(|_| E::Invalid)?;
    Ok(VerifiedAnswer {
        key_id: params.key_id.to_owned(),
        created: params.created,
        signature_input: input,
        signature,
    })
}
