//! Test helpers shared by the simulator modules' end-to-end tests.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The dev PKI in `target/test-pki`, made once per test process by `certs/dev-pki.sh`.
pub fn test_pki_dir() -> PathBuf {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/test-pki");
        crate::demo::run_dev_pki(&root, &out).expect("certs/dev-pki.sh");
        out
    })
    .clone()
}
