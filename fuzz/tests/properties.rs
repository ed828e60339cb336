//! The fuzz targets as seeded property tests: every committed corpus input, then a fixed
//! number of pseudo-random inputs from a fixed seed (half of them structure-aware mutations
//! of the contract fixtures), each through the same check as under libFuzzer. A finding not
//! in `fuzz/known-findings.txt` fails the test.

mod regressions;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Pseudo-random inputs per target.
const ITERATIONS: usize = 1500;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn property(target: &str) {
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "{target} has no corpus");
    for input in &seeds {
        hcgw_fuzz::enforce(target, input);
    }
    let seed = target
        .bytes()
        .fold(0x11u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..ITERATIONS {
        let mut input = if i % 4 == 0 {
            // A corpus input with a few bytes overwritten.
            let mut c = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                if !c.is_empty() {
                    let at = rng.random_range(0..c.len());
                    c[at] = rng.random();
                }
            }
            c
        } else {
            let mut b = vec![0u8; rng.random_range(1..=512)];
            rng.fill(&mut b[..]);
            // Mostly the structure-aware mode (odd first byte).
            b[0] |= u8::from(i % 4 != 1);
            b
        };
        input.truncate(hcgw_fuzz::targets::MAX_INPUT);
        hcgw_fuzz::enforce(target, &input);
    }
}

#[test]
fn every_target_has_a_test_and_a_corpus() {
    let src = include_str!("properties.rs");
    for t in hcgw_fuzz::TARGETS {
        assert!(
            src.contains(&format!("fn {t}()")),
            "no property test for {t}"
        );
        assert!(!corpus(t).is_empty(), "no corpus for {t}");
    }
}

#[test]
fn answer_suzhou() {
    property("answer_suzhou");
}

#[test]
fn answer_suishen() {
    property("answer_suishen");
}

#[test]
fn answer_sukang() {
    property("answer_sukang");
}

#[test]
fn answer_xuzhou() {
    property("answer_xuzhou");
}

#[test]
fn answer_hangzhou() {
    property("answer_hangzhou");
}

#[test]
fn answer_huzhou() {
    property("answer_huzhou");
}

#[test]
fn answer_guangzhou() {
    property("answer_guangzhou");
}

#[test]
fn answer_guangdong() {
    property("answer_guangdong");
}

#[test]
fn qr_detect() {
    property("qr_detect");
}

#[test]
fn subject() {
    property("subject");
}

#[test]
fn request_bodies() {
    property("request_bodies");
}

#[test]
fn peer_answer() {
    property("peer_answer");
}

#[test]
fn the_fixtures_decode_as_their_contract_says() {
    // Sanity of the harness itself: every green fixture is a green the oracle accepts, so
    // the oracle is no stricter than the contract, and every fixture goes through decode.
    use hcgw_adapters::RegionId;
    for region in RegionId::ALL {
        for (name, body) in hcgw_fuzz::targets::fixture_files(region) {
            let mut input = vec![0u8];
            input.extend_from_slice(&body);
            let target = format!("answer_{}", region.as_str());
            assert_eq!(
                hcgw_fuzz::run(&target, &input),
                Ok(()),
                "{region} {name} (a contract fixture) breaks an invariant"
            );
        }
    }
}
