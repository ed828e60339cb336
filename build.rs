//! Build script: records the commit the gateway is built from, for `hcgw_build_info` and
//! `hcgw --version`. `HCGW_COMMIT` in the environment wins (container builds have no `.git`);
//! otherwise `git rev-parse`; otherwise `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=HCGW_COMMIT");
    let commit = std::env::var("HCGW_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves (a commit, a checkout).
    // Only files that exist: a missing one would rerun this script, and rebuild the
    // gateway, on every build (a packed ref has no file of its own).
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &reference]));
    }
    for path in watch.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=HCGW_COMMIT={commit}");
}
