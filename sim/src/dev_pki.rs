//! The dev PKI runner: `certs/dev-pki.sh` makes every certificate, key and secret the
//! gateway, the simulators and the tests use (see `certs/README.md`).

use std::path::Path;

/// Runs `<root>/certs/dev-pki.sh OUT` (idempotent; the script locks against concurrent
/// runs). With `show_summary` its standard output (what it made) is shown, else discarded.
pub fn run(root: &Path, out: &Path, show_summary: bool) -> Result<(), String> {
    let stdout = if show_summary {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    };
    let status = std::process::Command::new("bash")
        .arg(root.join("certs/dev-pki.sh"))
        .arg(out)
        .stdout(stdout)
        .status()
        .map_err(|e| format!("cannot run certs/dev-pki.sh: {e}"))?;
    if !status.success() {
        return Err("certs/dev-pki.sh failed (is the openssl CLI installed?)".into());
    }
    Ok(())
}

/// Runs `<root>/certs/dev-pki.sh OUT` quietly: what tests use with their own output
/// directory.
pub fn run_quiet(root: &Path, out: &Path) -> Result<(), String> {
    run(root, out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_script_is_an_error_not_a_success() {
        let dir = std::env::temp_dir().join(format!("hcgw-sim-no-pki-{}", std::process::id()));
        let err = run_quiet(&dir, &dir.join("out")).unwrap_err();
        assert!(err.contains("dev-pki.sh"), "{err}");
    }
}
