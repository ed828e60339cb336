//! The targets that are not a region's answer: QR detection, subject validation, the
//! gateway's request bodies and the peer answer parser.

use std::sync::OnceLock;

use arbitrary::Unstructured;
use chrono::{Datelike, NaiveDate};
use hcgw::api::endpoints::{BatchRequest, LookupRequest, VerifyRequest};
use hcgw::api::json;
use hcgw::subject::SubjectIn;
use hcgw_adapters::identity::{mask_id, mask_name, validate_resident_id_on};
use hcgw_adapters::qr::{self, MAX_QR_BYTES};
use hcgw_adapters::{Color, IdType, RegionId, Subject};

use crate::mutate::{Pool, mutate};
use crate::targets::{Finding, passable, today};
use crate::tree::Tree;

fn finding(target: &'static str, kind: &str, input: &[u8]) -> Finding {
    Finding {
        target,
        kind: kind.to_owned(),
        detail: String::from_utf8_lossy(input).chars().take(300).collect(),
    }
}

/// QR detection: a recognised text is exactly the region's prefix and a token of its
/// format, short and free of control characters.
pub fn qr_detect(data: &[u8]) -> Result<(), Finding> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(d) = qr::detect(text) else {
        return Ok(());
    };
    let bad = |kind: &str| Err(finding("qr_detect", kind, data));
    if qr::qr_text(d.region, &d.token) != text {
        return bad("detected-text-is-not-prefix-and-token");
    }
    if d.token.is_empty() || text.len() > MAX_QR_BYTES {
        return bad("detected-an-empty-or-oversized-token");
    }
    if !d
        .token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad("detected-a-token-outside-every-alphabet");
    }
    Ok(())
}

/// The GB 11643 check character, computed here independently of the adapters.
fn check_char(first17: &[u8]) -> u8 {
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .iter()
        .zip(weights)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize]
}

/// Why an accepted resident id is not one (`None`: it is).
fn resident_id_flaw(n: &str, today: NaiveDate) -> Option<&'static str> {
    let b = n.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return Some("resident-id-accepted-with-bad-characters");
    }
    if !(b[17].is_ascii_digit() || b[17] == b'X') {
        return Some("resident-id-accepted-with-bad-last-character");
    }
    match NaiveDate::parse_from_str(&n[6..14], "%Y%m%d") {
        Ok(d) if d.year() >= 1900 && d <= today => {}
        _ => return Some("resident-id-accepted-with-bad-birth-date"),
    }
    (check_char(&b[..17]) != b[17]).then_some("resident-id-accepted-with-bad-check-digit")
}

/// Subject validation: resident ids (mode 0), API subjects for every region (mode 1),
/// masking (mode 2).
pub fn subject(data: &[u8]) -> Result<(), Finding> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let bad = |kind: &str| Err(finding("subject", kind, rest));
    match mode % 3 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return Ok(());
            };
            if let Ok(n) = validate_resident_id_on(text, today())
                && let Some(kind) = resident_id_flaw(&n, today())
            {
                return bad(kind);
            }
        }
        1 => {
            let Ok(s) = json::parse::<SubjectIn>(rest) else {
                return Ok(());
            };
            for region in RegionId::ALL {
                match s.validate(region) {
                    Err(_) => {}
                    Ok(Subject::QrToken(token)) => {
                        let detected = s.qr.as_deref().map(qr::detect);
                        if !matches!(detected, Some(Ok(d)) if d.region == region && d.token == token)
                        {
                            return bad("qr-subject-accepted-for-another-region");
                        }
                    }
                    Ok(Subject::Identity(id)) => {
                        let name_ok = !id.name.is_empty()
                            && id.name.chars().count() <= 64
                            && !id.name.chars().any(char::is_control)
                            && id.name.trim() == id.name;
                        if !name_ok {
                            return bad("identity-accepted-with-a-bad-name");
                        }
                        let number_ok = match id.id_type {
                            IdType::ResidentId => {
                                resident_id_flaw(&id.id_number, chrono::Utc::now().date_naive())
                                    .is_none()
                            }
                            _ => {
                                (5..=20).contains(&id.id_number.len())
                                    && id
                                        .id_number
                                        .bytes()
                                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
                            }
                        };
                        if !number_ok {
                            return bad("identity-accepted-with-a-bad-number");
                        }
                    }
                }
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return Ok(());
            };
            let trimmed = text.trim();
            let name = mask_name(text);
            // A name already in masked form ("张*") may come back unchanged: nothing leaks.
            if !name.ends_with('*')
                || (trimmed.chars().count() >= 2 && name == trimmed && !trimmed.ends_with('*'))
            {
                return bad("name-not-masked");
            }
            let id = mask_id(text);
            let n = trimmed.chars().count();
            if id.chars().count() != n || (n > 2 && !id.contains('*')) {
                return bad("id-not-masked");
            }
            if n > 8 && id.chars().filter(|c| *c == '*').count() < n - 8 {
                return bad("id-masked-too-little");
            }
        }
    }
    Ok(())
}

/// Request bodies seeds: a lookup, a verify and a batch.
fn request_seeds() -> &'static (Vec<Tree>, Pool) {
    static SEEDS: OnceLock<(Vec<Tree>, Pool)> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let docs: Vec<Tree> = [
            r#"{"region":"suzhou","subject":{"qr":"SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8"},"purpose":"entry"}"#,
            r#"{"region":"sukang","subject":{"id_type":"resident_id","id_number":"11010519491231002X","name":"张三"}}"#,
            r#"{"qr":"SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8","checkpoint":"SH-HONGQIAO-RAIL-G12"}"#,
            r#"{"items":[{"region":"suzhou","subject":{"qr":"SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8"}},{"region":"hangzhou","subject":{"id_type":"passport","id_number":"E12345678","name":"LI SI"}}]}"#,
        ]
        .iter()
        .filter_map(|s| Tree::from_json(s.as_bytes()))
        .collect();
        let pool = Pool::of(&docs);
        (docs, pool)
    })
}

/// The gateway's request bodies (lookup, verify, batch and each batch item, parsed as the
/// handlers do): no panic, and a body with a duplicate key at any depth is refused.
pub fn request_bodies(data: &[u8]) -> Result<(), Finding> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let body = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut u = Unstructured::new(rest);
        let (docs, pool) = request_seeds();
        let Ok(doc) = u.choose(docs) else {
            return Ok(());
        };
        let mut doc = doc.clone();
        let _ = mutate(&mut doc, pool, &mut u);
        doc.to_json()
    };
    let duplicated = Tree::from_json(&body).is_some_and(|t| t.has_duplicate_key());
    let bad = |kind: &str| Err(finding("request_bodies", kind, &body));
    match (mode / 2) % 3 {
        0 => {
            if let Ok(req) = json::parse::<LookupRequest>(&body) {
                if duplicated {
                    return bad("lookup-accepted-a-duplicate-key");
                }
                if let Ok(region) = req.region.parse::<RegionId>() {
                    let _ = req.subject.validate(region);
                }
            }
        }
        1 => {
            if let Ok(req) = json::parse::<VerifyRequest>(&body) {
                if duplicated {
                    return bad("verify-accepted-a-duplicate-key");
                }
                let _ = qr::detect(&req.qr);
            }
        }
        _ => {
            if let Ok(req) = json::parse::<BatchRequest>(&body) {
                // As the batch handler reads each item (src/api/lookup.rs `batch`).
                let items: Vec<Option<LookupRequest>> = req
                    .items
                    .iter()
                    .map(|item| serde_json::from_value(item.clone()).ok())
                    .collect();
                if duplicated && items.iter().all(Option::is_some) {
                    return bad("batch-accepted-a-duplicate-key");
                }
                for item in items.into_iter().flatten() {
                    if let Ok(region) = item.region.parse::<RegionId>() {
                        let _ = item.subject.validate(region);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Peer answers as a peer gateway sends them (platform and checkpoint views).
fn peer_seeds() -> &'static (Vec<Tree>, Pool) {
    static SEEDS: OnceLock<(Vec<Tree>, Pool)> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let docs: Vec<Tree> = [
            r#"{"status":{"region":"suzhou","color":"red","level":"quarantine","source":{"code":"R","label":"红码"},"reasons":["close_contact"],"as_of":"2020-03-03T10:00:00+08:00","observed_at":"2020-03-03T02:00:01Z","quarantine_until":"2020-03-17","holder":{"name_masked":"李*","id_type":"resident_id","id_masked":"3205**********4411"},"actions":[]},"cache":{"hit":false,"age_ms":0},"federation":{"decision_actions":[],"provisional":false}}"#,
            r#"{"status":{"region":"suishen","color":"yellow","level":"monitoring","as_of":"2020-03-03T10:00:00+08:00","holder":{"name_masked":"王*"}},"cache":{"hit":true,"age_ms":1200},"federation":{"decision_actions":[],"provisional":false}}"#,
            r#"{"status":{"region":"hangzhou","color":"unknown","level":"unknown","source":{"code":"purple"},"reasons":[],"as_of":"2020-02-16T10:20:30+08:00","actions":[]},"federation":{"decision_actions":[],"provisional":false}}"#,
            r#"{"status":{"region":"suishen","color":"green","level":"clear","source":{"code":"0","label":"绿码"},"reasons":[],"as_of":"2020-03-03T12:35:12+08:00","actions":["register_on_arrival"]},"cache":{"hit":false,"age_ms":0},"federation":{"decision_actions":["register_on_arrival"],"provisional":false}}"#,
            r#"{"status":{"region":"sukang","color":"green","level":"clear","as_of":"2022-03-18T09:30:00+08:00","holder":{"name_masked":"李*"}},"federation":{"decision_actions":["update_identity"],"provisional":false}}"#,
        ]
        .iter()
        .filter_map(|s| Tree::from_json(s.as_bytes()))
        .collect();
        let pool = Pool::of(&docs);
        (docs, pool)
    })
}

fn decision_action_in(t: Option<&Tree>) -> bool {
    match t {
        Some(Tree::Arr(items)) => items.iter().any(
            |a| matches!(a, Tree::Str(s) if s == "register_on_arrival" || s == "update_identity"),
        ),
        _ => false,
    }
}

/// Why a peer answer may not be a green of `region` (`None`: it may).
fn peer_green_flaw(doc: &Tree, region: RegionId) -> Option<&'static str> {
    if doc.has_duplicate_key() {
        return Some("peer-green-with-duplicate-key");
    }
    if doc.str_at(&["status", "region"]) != Some(region.as_str()) {
        return Some("peer-green-for-another-region");
    }
    if doc.str_at(&["status", "color"]) != Some("green") {
        return Some("peer-green-without-colour-green");
    }
    if !matches!(
        doc.str_at(&["status", "level"]),
        Some("clear" | "clear_restricted")
    ) {
        return Some("peer-green-without-a-green-level");
    }
    None
}

/// Why a peer answer may not pass (`None`: it may): the decision needs the peer's hints.
fn peer_pass_flaw(doc: &Tree) -> Option<&'static str> {
    match doc.get(&["federation", "decision_actions"]) {
        Some(Tree::Arr(_)) => {}
        _ => return Some("peer-pass-without-decision-hints"),
    }
    if decision_action_in(doc.get(&["federation", "decision_actions"]))
        || decision_action_in(doc.get(&["status", "actions"]))
    {
        return Some("peer-pass-despite-a-decision-action");
    }
    None
}

/// The peer answer parser (`hcgw::federation::parse_answer`): a green only from a green
/// the peer sent for the region asked, a pass only with the decision hints.
pub fn peer_answer(data: &[u8]) -> Result<(), Finding> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let (body, region) = if mode % 2 == 0 {
        let region = RegionId::ALL[usize::from(mode / 2) % RegionId::ALL.len()];
        (rest.to_vec(), region)
    } else {
        let mut u = Unstructured::new(rest);
        let (docs, pool) = peer_seeds();
        let Ok(doc) = u.choose(docs) else {
            return Ok(());
        };
        let region = doc
            .str_at(&["status", "region"])
            .and_then(|r| r.parse().ok())
            .unwrap_or(RegionId::Suzhou);
        let mut doc = doc.clone();
        let _ = mutate(&mut doc, pool, &mut u);
        (doc.to_json(), region)
    };
    let Ok(fetched) = hcgw::federation::parse_answer(&body, region, "fuzz-peer") else {
        return Ok(());
    };
    let s = &fetched.status;
    let bad = |kind: &str| Err(finding("peer_answer", kind, &body));
    if s.region != region {
        return bad("peer-status-of-another-region");
    }
    if s.color != s.level.color() {
        return bad("peer-colour-and-level-disagree");
    }
    let doc = Tree::from_json(&body).unwrap_or(Tree::Null);
    if s.color == Color::Green
        && let Some(kind) = peer_green_flaw(&doc, region)
    {
        return bad(kind);
    }
    if passable(s)
        && let Some(kind) = peer_pass_flaw(&doc)
    {
        return bad(kind);
    }
    Ok(())
}
