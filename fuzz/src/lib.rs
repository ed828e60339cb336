//! # hcgw-fuzz
//!
//! Fuzzing that proves hcgw's first principle, *never a false green*:
//!
//! - [`tree`]: documents that keep key order and duplicate keys (JSON, and Sukang's XML);
//! - [`mutate`]: structure-aware mutations (change, duplicate, remove, retype, reorder,
//!   rename, insert, nest) driven by the fuzzer's bytes;
//! - [`oracle`]: an independent statement of when each contract's answer may be green, and
//!   when a green may pass;
//! - [`targets`], [`inputs`]: one check per target (each region's answer through
//!   `hcgw_adapters::decode`, QR detection, subject validation, request bodies, the peer
//!   answer parser);
//! - [`enforce`]: runs a target and fails on any finding not listed in
//!   `fuzz/known-findings.txt`.
//!
//! The coverage-guided engine is libFuzzer (`fuzz/libfuzzer`, run by `scripts/fuzz.sh`);
//! the same checks run as seeded property tests in `cargo test` (`tests/properties.rs`).

pub mod inputs;
pub mod mutate;
pub mod oracle;
pub mod targets;
pub mod tree;

use std::collections::BTreeSet;
use std::sync::Mutex;

pub use targets::{Finding, TARGETS, run};

/// The findings tolerated for now (`fuzz/known-findings.txt`): `target kind` per line,
/// `#` comments. Each is a known bug not yet fixed (none today: the list is empty).
pub const KNOWN_FINDINGS: &str = include_str!("../known-findings.txt");

/// Whether `finding` is in [`KNOWN_FINDINGS`].
pub fn is_known(finding: &Finding) -> bool {
    KNOWN_FINDINGS
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .any(|l| {
            let mut parts = l.split_whitespace();
            parts.next() == Some(finding.target) && parts.next() == Some(finding.kind.as_str())
        })
}

/// The known findings this process met (each reported once on stderr).
static MET: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

/// Runs `target` on `data`: panics on a finding not in the known list (the engine keeps the
/// input as a crash), reports a known one once per process on stderr as
/// `hcgw-fuzz: known finding: <target> <kind>`.
pub fn enforce(target: &str, data: &[u8]) {
    let Err(finding) = run(target, data) else {
        return;
    };
    if !is_known(&finding) {
        panic!("hcgw-fuzz: NEW FINDING: {finding}");
    }
    let mut met = MET.lock().unwrap_or_else(|p| p.into_inner());
    if met.insert((finding.target.to_owned(), finding.kind.clone())) {
        eprintln!("hcgw-fuzz: known finding: {finding}");
    }
}

/// The known findings met so far in this process (`target kind`).
pub fn known_met() -> Vec<String> {
    let met = MET.lock().unwrap_or_else(|p| p.into_inner());
    met.iter().map(|(t, k)| format!("{t} {k}")).collect()
}
