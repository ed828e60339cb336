//! Shared helpers of the contract tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

/// The fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Reads `fixtures/<region>/<name>` as bytes.
pub fn fixture(region: &str, name: &str) -> Vec<u8> {
    let p = fixtures_dir().join(region).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Reads `fixtures/<region>/<name>` as text.
pub fn fixture_str(region: &str, name: &str) -> String {
    String::from_utf8(fixture(region, name)).expect("fixture is UTF-8")
}

/// The dev PKI made by `certs/dev-pki.sh` into `target/test-pki` (once per test run;
/// the script is idempotent and locks against concurrent runs).
pub fn test_pki() -> PathBuf {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = root.join("target/test-pki");
        let status = std::process::Command::new("bash")
            .arg(root.join("certs/dev-pki.sh"))
            .arg(&out)
            .status()
            .expect("run certs/dev-pki.sh");
        assert!(status.success(), "certs/dev-pki.sh failed");
        out
    })
    .clone()
}
