//! One check per fuzz target: decode the input the way the gateway does and return the
//! [`Finding`] when an invariant breaks (a panic is a finding by itself: the engines report
//! it). The first input byte of an answer target chooses the mode:
//! - even: the rest is the body itself, sent with HTTP 200 and the region's content type
//!   (Suishen: signed with the run's key), judged by the contract's oracle;
//! - odd: the rest drives a structure-aware mutation ([`crate::mutate`]) of one of the
//!   region's contract fixtures, with an HTTP status, content type and (Suishen) signature
//!   also taken from the bytes.
//!
//! In both, a green must satisfy [`Contract::may_be_green`] and a passable status
//! [`Contract::may_pass`].

use std::sync::OnceLock;

use arbitrary::Unstructured;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, Utc};
use hcgw_adapters::decode::{DecodeContext, RawAnswer};
use hcgw_adapters::regions::decode_answer;
use hcgw_adapters::regions::suishen::{self, SignatureVerifier, sm2};
use hcgw_adapters::{Action, Color, HealthStatus, IdType, RegionId};
use http::{HeaderMap, HeaderValue};

use crate::mutate::{Pool, mutate};
use crate::oracle::{Contract, Format};
use crate::tree::Tree;

/// Longest input the targets look at (libFuzzer's `-max_len` is set to the same).
pub const MAX_INPUT: usize = 16 * 1024;

/// Every target, by name.
pub const TARGETS: [&str; 12] = [
    "answer_suzhou",
    "answer_suishen",
    "answer_sukang",
    "answer_xuzhou",
    "answer_hangzhou",
    "answer_huzhou",
    "answer_guangzhou",
    "answer_guangdong",
    "qr_detect",
    "subject",
    "request_bodies",
    "peer_answer",
];

/// An input that broke an invariant: the target and a short, stable kind (the unit of
/// `fuzz/known-findings.txt`), with a detail for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The target.
    pub target: &'static str,
    /// What broke, e.g. `green-with-duplicate-key`.
    pub kind: String,
    /// The decoded status or the input, shortened.
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.target, self.kind, self.detail)
    }
}

/// Runs `target` on `data`.
pub fn run(target: &str, data: &[u8]) -> Result<(), Finding> {
    let data = &data[..data.len().min(MAX_INPUT)];
    let Some(name) = TARGETS.iter().copied().find(|t| *t == target) else {
        panic!("unknown fuzz target {target}");
    };
    if let Some(region) = name.strip_prefix("answer_") {
        let region: RegionId = region.parse().expect("target names a region");
        return answer(name, region, data);
    }
    match name {
        "qr_detect" => crate::inputs::qr_detect(data),
        "subject" => crate::inputs::subject(data),
        "request_bodies" => crate::inputs::request_bodies(data),
        _ => crate::inputs::peer_answer(data),
    }
}

/// The time answers are judged at: after every fixture's timestamp.
pub fn judged_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2022-04-02T00:00:00Z")
        .expect("constant")
        .with_timezone(&Utc)
}

/// Whether a status lets the holder through (recognition.md: green, and no action that
/// makes the decision a manual check).
pub fn passable(s: &HealthStatus) -> bool {
    s.color == Color::Green
        && !s
            .actions
            .iter()
            .any(|a| matches!(a, Action::RegisterOnArrival | Action::UpdateIdentity))
}

/// The run's Suishen signing key and the verifier that trusts it as `fuzz-key`.
fn suishen_keys() -> &'static (sm2::SigningKey, SignatureVerifier) {
    static KEYS: OnceLock<(sm2::SigningKey, SignatureVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SM2).expect("OpenSSL has SM2");
        let ec = openssl::ec::EcKey::generate(&group).expect("an SM2 key");
        let signer = sm2::SigningKey::from_pem(&ec.private_key_to_pem().expect("PEM"))
            .expect("an SM2 signing key");
        let verifier =
            SignatureVerifier::new(&[("fuzz-key".into(), ec.public_key_to_pem().expect("PEM"))])
                .expect("an SM2 verifying key");
        (signer, verifier)
    })
}

/// A region's contract fixtures as documents (`adapters/tests/fixtures/<region>/`), with the
/// pool of their values and keys.
pub fn seeds(region: RegionId) -> &'static (Vec<Tree>, Pool) {
    static SEEDS: OnceLock<Vec<(Vec<Tree>, Pool)>> = OnceLock::new();
    let all = SEEDS.get_or_init(|| {
        RegionId::ALL
            .iter()
            .map(|r| {
                let docs: Vec<Tree> = fixture_files(*r)
                    .iter()
                    .filter_map(|(_, body)| Contract::of(*r).parse(body))
                    .collect();
                let pool = Pool::of(&docs);
                (docs, pool)
            })
            .collect()
    });
    let i = RegionId::ALL
        .iter()
        .position(|r| *r == region)
        .expect("every region");
    &all[i]
}

/// The fixture files of a region (name, bytes), sorted by name.
pub fn fixture_files(region: RegionId) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/tests/fixtures")
        .join(region.as_str());
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with("token"))
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).ok()?,
            ))
        })
        .collect();
    files.sort();
    files
}

/// How a Suishen answer is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signature {
    Valid,
    Missing,
    NoKeyId,
    UnknownKeyId,
    NotBase64,
    OfAnotherBody,
    WithTheEmptyId,
    Truncated,
}

const SIGNATURES: [Signature; 10] = [
    Signature::Valid,
    Signature::Valid,
    Signature::Valid,
    Signature::Missing,
    Signature::NoKeyId,
    Signature::UnknownKeyId,
    Signature::NotBase64,
    Signature::OfAnotherBody,
    Signature::WithTheEmptyId,
    Signature::Truncated,
];

fn sign(headers: &mut HeaderMap, body: &[u8], how: Signature) {
    let (signer, _) = suishen_keys();
    let der = match how {
        Signature::OfAnotherBody => {
            let mut other = body.to_vec();
            other.push(b' ');
            signer.sign(&other)
        }
        Signature::WithTheEmptyId => signer.sign_with_id(body, b""),
        _ => signer.sign(body),
    }
    .expect("SM2 signing");
    let mut sig = BASE64.encode(&der);
    match how {
        Signature::NotBase64 => sig = "not base64!".into(),
        Signature::Truncated => sig.truncate(sig.len() / 2),
        _ => {}
    }
    let key_id = if how == Signature::UnknownKeyId {
        "other-key"
    } else {
        "fuzz-key"
    };
    if how != Signature::NoKeyId {
        headers.insert(suishen::KEY_ID_HEADER, HeaderValue::from_static(key_id));
    }
    if how != Signature::Missing {
        headers.insert(
            suishen::SIGNATURE_HEADER,
            HeaderValue::from_str(&sig).expect("base64 is a header value"),
        );
    }
}

const STATUSES: [u16; 14] = [
    200, 200, 200, 200, 200, 200, 200, 400, 401, 403, 404, 410, 429, 503,
];

/// The answer to decode for one input.
fn build_answer(
    contract: &Contract,
    data: &[u8],
) -> Option<(RawAnswer, Signature, Option<IdType>)> {
    let (&mode, rest) = data.split_first()?;
    let mut headers = HeaderMap::new();
    if mode % 2 == 0 {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(contract.content_type()),
        );
        let raw = RawAnswer {
            status: 200,
            headers,
            body: rest.to_vec(),
        };
        return Some((raw, Signature::Valid, None));
    }
    let mut u = Unstructured::new(rest);
    let (docs, pool) = seeds(contract.region);
    let mut doc = u.choose(docs).ok()?.clone();
    let _ = mutate(&mut doc, pool, &mut u);
    let status = *u.choose(&STATUSES).unwrap_or(&200);
    let other = match contract.format {
        Format::Json => "application/xml",
        Format::Xml => "application/json",
    };
    let content_types = [
        contract.content_type(),
        contract.content_type(),
        contract.content_type(),
        "text/plain",
        "text/html; charset=utf-8",
        other,
        "",
    ];
    let ct = *u.choose(&content_types).unwrap_or(&content_types[0]);
    if !ct.is_empty() {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if u.ratio(1, 8).unwrap_or(false) {
        let secs = u.arbitrary::<u64>().unwrap_or(0);
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(&secs.to_string()).expect("digits"),
        );
    }
    let signature = *u.choose(&SIGNATURES).unwrap_or(&Signature::Valid);
    let id_type = *u
        .choose(&[
            None,
            Some(IdType::ResidentId),
            Some(IdType::Passport),
            Some(IdType::HkMacaoPermit),
            Some(IdType::TaiwanPermit),
        ])
        .unwrap_or(&None);
    let raw = RawAnswer {
        status,
        headers,
        body: contract.write(&doc),
    };
    Some((raw, signature, id_type))
}

fn short(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.chars().take(300).collect()
}

fn answer(target: &'static str, region: RegionId, data: &[u8]) -> Result<(), Finding> {
    let contract = Contract::of(region);
    let Some((mut raw, signature, id_type)) = build_answer(&contract, data) else {
        return Ok(());
    };
    let keys = (region == RegionId::Suishen).then(|| {
        sign(&mut raw.headers, &raw.body.clone(), signature);
        &suishen_keys().1
    });
    let ctx = DecodeContext {
        now: judged_at(),
        id_type,
        suishen_keys: keys,
    };
    let result = decode_answer(region, &raw, &ctx);
    let finding = |kind: &str, s: &HealthStatus| Finding {
        target,
        kind: kind.to_owned(),
        detail: format!(
            "decoded {:?}/{:?} actions {:?} from HTTP {} body {}",
            s.color,
            s.level,
            s.actions,
            raw.status,
            short(&raw.body)
        ),
    };
    let Ok(status) = result else { return Ok(()) };
    if region == RegionId::Suishen && signature != Signature::Valid {
        return Err(finding("accepted-a-bad-signature", &status));
    }
    if status.region != region {
        return Err(finding("status-of-another-region", &status));
    }
    if status.color != status.level.color() {
        return Err(finding("colour-and-level-disagree", &status));
    }
    if status.color == Color::Green {
        contract
            .may_be_green(&raw)
            .map_err(|kind| finding(&kind, &status))?;
    }
    if passable(&status) {
        contract
            .may_pass(&raw)
            .map_err(|kind| finding(&kind, &status))?;
    }
    Ok(())
}

/// A date no fixture's birth date is after (keeps the subject target deterministic).
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).expect("constant")
}
