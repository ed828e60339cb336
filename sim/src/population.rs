//! The deterministic synthetic population behind every region simulator: valid resident
//! ids (GB 11643), names (including compound surnames), QR tokens in the region's format,
//! and for each subject the simulator case it exhibits and its fate (active, not found,
//! token expired). Same seed, same population.

use std::collections::HashMap;

use hcgw_adapters::identity::resident_id_check_char;
use hcgw_adapters::{IdType, RegionId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// How a subject behaves beyond its case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Found, with its case's status.
    Active,
    /// The region has no code for this subject (QR and identity).
    NotFound,
    /// The QR token is expired; identity lookups still find the subject.
    TokenExpired,
}

/// One synthetic person as a region knows them.
#[derive(Clone, Debug, Serialize)]
pub struct SimSubject {
    /// Position in the population.
    pub index: usize,
    /// The token part of the QR text.
    pub token: String,
    /// The full QR text as scanned.
    pub qr: String,
    /// Document type (mostly resident ids, every 20th a passport).
    pub id_type: IdType,
    /// Document number (valid resident ids).
    pub id_number: String,
    /// Name.
    pub name: String,
    /// Which of the simulator's cases this subject exhibits.
    pub case: usize,
    /// Active, not found or token expired.
    pub fate: Fate,
}

/// Shares of the population with special fates.
#[derive(Clone, Copy, Debug)]
pub struct Shares {
    /// Share of subjects whose QR token is expired.
    pub expired: f64,
    /// Share of subjects the region does not know.
    pub not_found: f64,
}

/// A region's population with lookups by token and by identity.
#[derive(Debug)]
pub struct Population {
    subjects: Vec<SimSubject>,
    by_token: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

const SURNAMES: [&str; 24] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "欧阳", "司马", "诸葛", "上官",
];
const GIVEN: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "桂英", "建华",
];

/// A random token in the region's QR alphabet, of the longest length its format accepts
/// (the region's spec).
fn token(region: RegionId, rng: &mut StdRng) -> String {
    let qr = &region.spec().qr;
    let alphabet = qr.alphabet.chars();
    (0..qr.max_len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

fn resident_id(area_code: &str, rng: &mut StdRng) -> String {
    let year = rng.random_range(1950..=2012);
    let month = rng.random_range(1..=12);
    let day = rng.random_range(1..=28);
    let seq = rng.random_range(0..1000);
    let first17 = format!("{area_code}{year:04}{month:02}{day:02}{seq:03}");
    let check = resident_id_check_char(first17.as_bytes());
    format!("{first17}{check}")
}

impl Population {
    /// Generates `size` subjects for `region` exhibiting `cases` cases. The first `cases`
    /// subjects are always active (so every case is present); the rest get their fate
    /// from the shares.
    pub fn generate(
        region: RegionId,
        area_code: &str,
        size: usize,
        cases: usize,
        seed: u64,
        shares: Shares,
    ) -> Self {
        let region_salt = region
            .as_str()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
        let mut rng = StdRng::seed_from_u64(seed ^ region_salt);
        let cases = cases.max(1);
        let mut subjects = Vec::with_capacity(size);
        let mut by_token = HashMap::with_capacity(size);
        let mut by_id = HashMap::with_capacity(size);
        for index in 0..size {
            let (token, id_number) = loop {
                let t = token(region, &mut rng);
                let id = if index % 20 == 19 {
                    format!("E{:08}", rng.random_range(0..100_000_000u32))
                } else {
                    resident_id(area_code, &mut rng)
                };
                if !by_token.contains_key(&t) && !by_id.contains_key(&id) {
                    break (t, id);
                }
            };
            let id_type = if index % 20 == 19 {
                IdType::Passport
            } else {
                IdType::ResidentId
            };
            let name = format!(
                "{}{}",
                SURNAMES[rng.random_range(0..SURNAMES.len())],
                GIVEN[rng.random_range(0..GIVEN.len())]
            );
            let roll: f64 = rng.random();
            let fate = if index < cases {
                Fate::Active
            } else if roll < shares.not_found {
                Fate::NotFound
            } else if roll < shares.not_found + shares.expired {
                Fate::TokenExpired
            } else {
                Fate::Active
            };
            by_token.insert(token.clone(), index);
            by_id.insert(id_number.clone(), index);
            subjects.push(SimSubject {
                index,
                qr: hcgw_adapters::qr::qr_text(region, &token),
                token,
                id_type,
                id_number,
                name,
                case: index % cases,
                fate,
            });
        }
        Population {
            subjects,
            by_token,
            by_id,
        }
    }

    /// All subjects.
    pub fn subjects(&self) -> &[SimSubject] {
        &self.subjects
    }

    /// The subject with this QR token.
    pub fn by_token(&self, token: &str) -> Option<&SimSubject> {
        self.by_token.get(token).map(|i| &self.subjects[*i])
    }

    /// The subject with this document number (names are not checked: regions match on
    /// the number).
    pub fn by_id_number(&self, number: &str) -> Option<&SimSubject> {
        self.by_id
            .get(&number.to_ascii_uppercase())
            .map(|i| &self.subjects[*i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcgw_adapters::identity::validate_resident_id;

    fn shares() -> Shares {
        Shares {
            expired: 0.1,
            not_found: 0.1,
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = Population::generate(RegionId::Suzhou, "320505", 200, 7, 42, shares());
        let b = Population::generate(RegionId::Suzhou, "320505", 200, 7, 42, shares());
        let c = Population::generate(RegionId::Suzhou, "320505", 200, 7, 43, shares());
        let ids = |p: &Population| {
            p.subjects()
                .iter()
                .map(|s| s.id_number.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&c));
    }

    #[test]
    fn every_case_present_and_active_and_ids_valid() {
        for region in RegionId::ALL {
            let area = crate::for_region(region).unwrap().area_code();
            let p = Population::generate(region, area, 500, 12, 1, shares());
            for case in 0..12 {
                assert!(
                    p.subjects()
                        .iter()
                        .any(|s| s.case == case && s.fate == Fate::Active)
                );
            }
            for s in p.subjects() {
                let detected = hcgw_adapters::qr::detect(&s.qr).unwrap();
                assert_eq!(
                    (detected.region, detected.token.as_str()),
                    (region, s.token.as_str())
                );
                if s.id_type == IdType::ResidentId {
                    assert_eq!(
                        validate_resident_id(&s.id_number).as_deref(),
                        Ok(s.id_number.as_str())
                    );
                }
                assert_eq!(p.by_token(&s.token).unwrap().index, s.index);
                assert_eq!(p.by_id_number(&s.id_number).unwrap().index, s.index);
            }
            let n = |f| p.subjects().iter().filter(|s| s.fate == f).count();
            assert!(
                n(Fate::NotFound) > 20 && n(Fate::TokenExpired) > 20,
                "{region}"
            );
            assert!(p.subjects().iter().any(|s| s.id_type == IdType::Passport));
        }
    }
}
