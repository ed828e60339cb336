//! The subject of a lookup as callers send it, its validation (resident-id check digit
//! before any upstream call), and the keyed hashes that stand for it in cache keys and the
//! audit trail (HMAC-SHA256 with `cache.subject_key`): raw numbers, names and QR tokens
//! never leave this module except towards the region itself.

use hcgw_adapters::adapter::Identity;
use hcgw_adapters::identity::validate_resident_id;
use hcgw_adapters::qr;
use hcgw_adapters::{IdType, RegionId, Secret, Subject};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::error_code::ErrorCode;
use crate::pipeline::LookupError;

/// A subject as sent on the API: `{ "qr": "…" }` or
/// `{ "id_type": "resident_id", "id_number": "…", "name": "…" }`.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectIn {
    /// The scanned QR text (with its region prefix, e.g. `SCM:…`).
    #[serde(default)]
    pub qr: Option<String>,
    /// The identity document type.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "resident_id")]
    pub id_type: Option<IdType>,
    /// The document number.
    #[serde(default)]
    pub id_number: Option<String>,
    /// The holder's name as on the document.
    #[serde(default)]
    pub name: Option<String>,
}

impl std::fmt::Debug for SubjectIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectIn([redacted])")
    }
}

fn plain_text(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

impl SubjectIn {
    /// Validates the subject for `region` and turns it into what the adapter takes.
    pub fn validate(&self, region: RegionId) -> Result<Subject, LookupError> {
        match (&self.qr, &self.id_type, &self.id_number, &self.name) {
            (Some(text), None, None, None) => {
                let detected = qr::detect(text)
                    .map_err(|e| LookupError::new(ErrorCode::UnrecognizedQr, e.to_string()))?;
                if detected.region != region {
                    return Err(LookupError::invalid(format!(
                        "the QR code was issued by {}, not {region}",
                        detected.region
                    ))
                    .with_region(region));
                }
                Ok(Subject::QrToken(detected.token))
            }
            (None, Some(id_type), Some(number), Some(name)) => {
                let number = match id_type {
                    IdType::ResidentId => validate_resident_id(number)
                        .map_err(|e| LookupError::invalid(format!("subject.id_number: {e}")))?,
                    _ => {
                        let n = number.trim();
                        if !(5..=20).contains(&n.len())
                            || !n.bytes().all(|b| b.is_ascii_alphanumeric())
                        {
                            return Err(LookupError::invalid(
                                "subject.id_number: a document number is 5 to 20 letters or digits",
                            ));
                        }
                        n.to_ascii_uppercase()
                    }
                };
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 64 || !plain_text(name) {
                    return Err(LookupError::invalid(
                        "subject.name: 1 to 64 characters, no control characters",
                    ));
                }
                Ok(Subject::Identity(Identity {
                    id_type: *id_type,
                    id_number: number,
                    name: name.to_owned(),
                }))
            }
            (None, None, None, None) => Err(LookupError::invalid(
                "subject: give `qr`, or `id_type`, `id_number` and `name`",
            )),
            (Some(_), ..) => Err(LookupError::invalid(
                "subject: give either `qr` or an identity, not both",
            )),
            _ => Err(LookupError::invalid(
                "subject: an identity needs `id_type`, `id_number` and `name`",
            )),
        }
    }
}

/// Keyed hashes of subjects.
#[derive(Clone)]
pub struct SubjectHasher {
    /// HMAC-SHA256 with the key already absorbed: each hash clones it instead of deriving
    /// the inner and outer key blocks again.
    keyed: HmacSha256,
}

type HmacSha256 = Hmac<Sha256>;

impl SubjectHasher {
    /// A hasher with the configured key.
    pub fn new(key: Secret) -> Self {
        SubjectHasher {
            keyed: HmacSha256::new_from_slice(key.expose().as_bytes())
                .expect("HMAC takes any key length"),
        }
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut mac = self.keyed.clone();
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(&[0]);
        }
        crate::hexfmt::lower(&mac.finalize().into_bytes())
    }

    /// The cache key of a lookup: everything the region is asked (region, token, or type,
    /// number and name), so a cached answer is only reused for the very same question.
    pub fn cache_key(&self, region: RegionId, subject: &Subject) -> String {
        match subject {
            Subject::QrToken(t) => self.mac(&["qr", region.as_str(), t]),
            Subject::Identity(i) => self.mac(&[
                "id",
                region.as_str(),
                i.id_type.as_str(),
                &i.id_number,
                &i.name,
            ]),
        }
    }

    /// The audit hash of a subject: the person (type and number) or the token, without the
    /// region, so the same person looked up in several regions links in the audit trail.
    pub fn audit_hash(&self, subject: &Subject) -> String {
        match subject {
            Subject::QrToken(t) => self.mac(&["qr", t]),
            Subject::Identity(i) => self.mac(&["person", i.id_type.as_str(), &i.id_number]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(number: &str) -> SubjectIn {
        SubjectIn {
            id_type: Some(IdType::ResidentId),
            id_number: Some(number.into()),
            name: Some("张三".into()),
            qr: None,
        }
    }

    #[test]
    fn resident_ids_are_validated_before_any_call() {
        assert!(
            identity("11010519491231002X")
                .validate(RegionId::Suzhou)
                .is_ok()
        );
        let e = identity("110105194912310021")
            .validate(RegionId::Suzhou)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(
            e.detail.contains("check digit") && !e.detail.contains("1101"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn qr_subjects_must_match_the_named_region() {
        let s = SubjectIn {
            qr: Some("SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8".into()),
            ..Default::default()
        };
        assert_eq!(
            s.validate(RegionId::Suzhou).unwrap(),
            Subject::QrToken("5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8".into())
        );
        assert_eq!(
            s.validate(RegionId::Sukang).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let bad = SubjectIn {
            qr: Some("SCM:nope".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.validate(RegionId::Suzhou).unwrap_err().code,
            ErrorCode::UnrecognizedQr
        );
    }

    #[test]
    fn incomplete_or_mixed_subjects_are_invalid() {
        assert!(SubjectIn::default().validate(RegionId::Suzhou).is_err());
        let mut s = identity("11010519491231002X");
        s.qr = Some("SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8".into());
        assert!(s.validate(RegionId::Suzhou).is_err());
        let mut s = identity("11010519491231002X");
        s.name = None;
        assert!(s.validate(RegionId::Suzhou).is_err());
        let mut s = identity("11010519491231002X");
        s.name = Some("张\u{0}三".into());
        assert!(s.validate(RegionId::Suzhou).is_err());
    }

    #[test]
    fn hashes_are_keyed_and_never_contain_the_subject() {
        let h = SubjectHasher::new(Secret::new("k1-k1-k1-k1-k1-k1"));
        let h2 = SubjectHasher::new(Secret::new("k2-k2-k2-k2-k2-k2"));
        let s = identity("11010519491231002X")
            .validate(RegionId::Suzhou)
            .unwrap();
        let k = h.cache_key(RegionId::Suzhou, &s);
        assert_eq!(k.len(), 64);
        assert!(!k.contains("11010519491231002"));
        assert_ne!(k, h2.cache_key(RegionId::Suzhou, &s));
        assert_ne!(k, h.cache_key(RegionId::Sukang, &s));
        assert_eq!(h.audit_hash(&s), h.audit_hash(&s));
        let mut other_name = identity("11010519491231002X");
        other_name.name = Some("李四".into());
        let s2 = other_name.validate(RegionId::Suzhou).unwrap();
        assert_ne!(
            h.cache_key(RegionId::Suzhou, &s),
            h.cache_key(RegionId::Suzhou, &s2)
        );
        assert_eq!(h.audit_hash(&s), h.audit_hash(&s2));
    }
}
