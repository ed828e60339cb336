//! `hcgw check-config`: every invalid field gives a problem naming the field; secrets never
//! appear in errors or logs.

use std::process::Command;

use crate::support::*;

fn base(dir: &std::path::Path) -> String {
    config_text(&TlsPaths::standard(), &dir.join("audit"), "")
}

fn suzhou(auth: &str) -> String {
    format!(
        "[regions.suzhou]\nbase_url = \"http://127.0.0.1:7101\"\n[regions.suzhou.auth]\napp_id = \"x\"\n{auth}\n"
    )
}

fn problems(text: &str, dir: &std::path::Path) -> Vec<hcgw::config::Problem> {
    let path = dir.join("bad.toml");
    match hcgw::config::load_str(text, &path) {
        Ok(_) => vec![],
        Err(e) => e.problems().to_vec(),
    }
}

#[test]
fn the_base_configuration_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(problems(&base(dir.path()), dir.path()), vec![]);
}

#[test]
fn every_invalid_field_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret_file = pki().join("secrets/suzhou_app_secret");
    let client = |body: &str| format!("[[clients]]\n{body}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            base(d).replace(
                "log_level = \"warn\"",
                "log_level = \"warn\"\nlog_format = \"xml\"",
            ),
            "gateway.log_format",
        ),
        (
            base(d).replace("log_level = \"warn\"", "log_level = \"[[[\""),
            "gateway.log_level",
        ),
        (
            base(d).replace(
                "addr = \"127.0.0.1:0\"\n\n[admin]",
                "addr = \"not-an-address\"\n\n[admin]",
            ),
            "listener.addr",
        ),
        (
            base(d).replace("hcgw-dev/cert.pem", "hcgw-dev/missing.pem"),
            "tls.cert",
        ),
        (
            base(d).replace("hcgw-dev/key.pem", "hcgw-dev/cert.pem"),
            "tls.key",
        ),
        (
            base(d).replace("reload_interval_ms = 100", "reload_interval_ms = 5"),
            "tls.reload_interval_ms",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client(
                    "name = \"x\"\nrole = \"admin\"\njurisdiction = \"shanghai\"\nsubject = \"CN=x\""
                )
            ),
            "clients[8].role",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client("name = \"x\"\nrole = \"platform\"\njurisdiction = \"shanghai\"")
            ),
            "clients[8]",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client(
                    "name = \"x\"\nrole = \"platform\"\njurisdiction = \"shanghai\"\nfingerprint_sha256 = \"abc\""
                )
            ),
            "clients[8].fingerprint_sha256",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client(
                    "name = \"x\"\nrole = \"platform\"\njurisdiction = \"Shang Hai\"\nsubject = \"CN=x\""
                )
            ),
            "clients[8].jurisdiction",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client(
                    "name = \"ops\"\nrole = \"platform\"\njurisdiction = \"shanghai\"\nsubject = \"CN=x\""
                )
            ),
            "clients[8].name",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client(
                    "name = \"x\"\nrole = \"platform\"\njurisdiction = \"shanghai\"\nsubject = \"CN=x\"\ncolour = \"red\""
                )
            ),
            "clients[8]",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client(
                    "name = \"x\"\nrole = \"peer\"\njurisdiction = \"jiangsu\"\nsubject = \"CN=x\""
                )
            ),
            "clients[8].max_on_behalf_of",
        ),
        (
            format!(
                "{}{}",
                base(d),
                client(
                    "name = \"x\"\nrole = \"platform\"\njurisdiction = \"jiangsu\"\nsubject = \"no-equals-sign\""
                )
            ),
            "clients[8].subject",
        ),
        (
            format!("{}[regions.atlantis]\nbase_url = \"http://x\"\n", base(d)),
            "regions.atlantis",
        ),
        (
            format!(
                "{}{}",
                base(d),
                suzhou(&format!(
                    "app_secret = {{ file = {:?} }}",
                    secret_file.display().to_string()
                ))
                .replace("http://127.0.0.1:7101", "ftp://x")
            ),
            "regions.suzhou.base_url",
        ),
        (
            format!(
                "{}{}",
                base(d),
                suzhou(&format!(
                    "app_secret = {{ file = {:?} }}",
                    secret_file.display().to_string()
                ))
                .replace("base_url", "rate_limit_per_s = 1000\nbase_url")
            ),
            "regions.suzhou.rate_limit_per_s",
        ),
        (
            format!(
                "{}{}",
                base(d),
                suzhou(&format!(
                    "app_secret = {{ file = {:?} }}",
                    secret_file.display().to_string()
                ))
                .replace("base_url", "deadline_ms = 0\nbase_url")
            ),
            "regions.suzhou.deadline_ms",
        ),
        (format!("{}{}", base(d), suzhou("")), "regions.suzhou.auth"),
        (
            format!(
                "{}{}",
                base(d),
                suzhou("app_secret = { file = \"/nonexistent/secret\" }")
            ),
            "regions.suzhou.auth.app_secret",
        ),
        (
            format!(
                "{}{}",
                base(d),
                suzhou("app_secret = { env = \"HCGW_TEST_UNSET_SECRET_VAR\" }")
            ),
            "regions.suzhou.auth.app_secret",
        ),
        (
            format!(
                "{}[recognition]\n[[recognition.agreements]]\nid = \"x\"\nmembers = []\n",
                base(d)
            ),
            "recognition.agreements[0].members",
        ),
        (
            format!(
                "{}[[peers]]\nname = \"p\"\nurl = \"http://peer\"\nregions = [\"sukang\"]\nca = \"/nonexistent\"\nclient_cert = \"/nonexistent\"\nclient_key = \"/nonexistent\"\n",
                base(d)
            ),
            "peers[0].url",
        ),
        (
            format!(
                "{}[[peers]]\nname = \"p\"\nurl = \"https://peer\"\nregions = [\"sukang\"]\nca = \"/nonexistent\"\nclient_cert = \"/nonexistent\"\nclient_key = \"/nonexistent\"\nmax_concurrency = 0\n",
                base(d)
            ),
            "peers[0].max_concurrency",
        ),
        (format!("{}[redis]\nenabled = true\n", base(d)), "redis.url"),
        (
            base(d).replace("[audit]\n", "[audit]\nrotate_bytes = 10\n"),
            "audit.rotate_bytes",
        ),
        (
            base(d).replace("[audit]\n", "[audit]\ncheckpoint_s = 0\n"),
            "audit.checkpoint_s",
        ),
        (
            base(d).replace("[audit]\n", "[audit]\ncheckpoint_s = 86401\n"),
            "audit.checkpoint_s",
        ),
        (
            base(d).replace("secrets/subject_hash_key", "secrets/none"),
            "cache.subject_key",
        ),
        (format!("{}[frobnicate]\nx = 1\n", base(d)), "frobnicate"),
        (base(d).replace("[audit]", "[audit"), "(syntax, line"),
        (
            base(d).replace(
                "[gateway]\nname = \"hcgw-test\"\nlog_level = \"warn\"\n",
                "",
            ),
            "gateway",
        ),
    ];
    for (text, path) in cases {
        let found = problems(&text, d);
        assert!(
            found.iter().any(|p| p.path.starts_with(path)),
            "expected a problem at `{path}`, got {found:?}"
        );
        for p in &found {
            assert!(!p.message.is_empty(), "{p}");
        }
    }
}

#[test]
fn one_run_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = base(dir.path())
        .replace("reload_interval_ms = 100", "reload_interval_ms = 5")
        .replace("[audit]\n", "[audit]\nrotate_bytes = 10\n")
        + "[regions.atlantis]\nbase_url = \"x\"\n[[clients]]\nname = \"x\"\nrole = \"admin\"\njurisdiction = \"x\"\nsubject = \"CN=x\"\n";
    let found = problems(&text, dir.path());
    let paths: Vec<_> = found.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "tls.reload_interval_ms",
        "audit.rotate_bytes",
        "regions.atlantis",
        "clients[8].role",
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(expected)),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn inline_or_misplaced_secrets_never_appear_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "INLINE-SECRET-4d3c2b1a";
    let text = format!(
        "{}{}",
        base(dir.path()),
        suzhou(&format!("app_secret = \"{secret}\""))
    )
    // A secret pasted into a non-secret field, too.
    .replace(
        "name = \"hcgw-test\"",
        &format!("name = \"hcgw-test\"\nlog_format = \"{secret}\""),
    );
    let found = problems(&text, dir.path());
    assert!(
        found
            .iter()
            .any(|p| p.path == "regions.suzhou.auth.app_secret"),
        "{found:?}"
    );
    for p in &found {
        assert!(
            !p.to_string().contains(secret) && !p.to_string().contains("4d3c2b1a"),
            "secret leaked: {p}"
        );
    }
    // The same through the real command.
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("regions.suzhou.auth.app_secret"), "{all}");
    assert!(!all.contains("4d3c2b1a"), "secret leaked: {all}");
}

/// Every configuration shipped under `config/` (`dev.toml`, `federation/*.toml`,
/// `shared-tier/*.toml`, and any added later) passes `check-config` once the dev PKI exists
/// in `certs/dev`; only the production template, which names files of a real deployment,
/// is checked apart (below).
#[test]
fn check_config_accepts_every_shipped_configuration() {
    hcgw_sim::dev_pki::run_quiet(&repo(), &repo().join("certs/dev")).expect("certs/dev-pki.sh");
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("config"), &mut files);
    files.retain(|f| !f.ends_with("production.example.toml"));
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    for expected in [
        "config/dev.toml",
        "config/federation/shanghai.toml",
        "config/shared-tier/a.toml",
        "config/shared-tier/b.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found: {names:?}"
        );
    }
    for file in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_hcgw"))
            .arg("check-config")
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `config/shared-tier/`: two replicas of one gateway on one Redis, differing only where
/// two processes on one machine must (name, ports, audit directory), with every relative
/// path resolving inside the repository.
#[test]
fn the_shared_tier_pair_are_two_replicas_of_one_gateway() {
    hcgw_sim::dev_pki::run_quiet(&repo(), &repo().join("certs/dev")).expect("certs/dev-pki.sh");
    let load = |f: &str| hcgw::config::load(&repo().join("config/shared-tier").join(f)).unwrap();
    let (a, b) = (load("a.toml"), load("b.toml"));
    assert_ne!(a.gateway.name, b.gateway.name);
    assert_ne!(a.listener.addr, b.listener.addr);
    assert_ne!(a.admin.addr, b.admin.addr);
    assert_ne!(a.audit.dir, b.audit.dir);
    for c in [&a, &b] {
        assert!(c.redis.enabled, "{}", c.gateway.name);
        assert!(
            c.audit
                .dir
                .starts_with(repo().join("config/shared-tier/../../var/audit"))
        );
        assert!(c.tls.cert.exists(), "{}", c.tls.cert.display());
    }
    assert_eq!(a.redis.url, b.redis.url);
    let dev = hcgw::config::load(&repo().join("config/dev.toml")).unwrap();
    let regions = |c: &hcgw::config::Config| c.regions.keys().copied().collect::<Vec<_>>();
    assert_eq!(regions(&a), regions(&dev));
    assert_eq!(regions(&b), regions(&dev));
    // Apart from the four lines that must differ, the two files are the same.
    let text =
        |f: &str| std::fs::read_to_string(repo().join("config/shared-tier").join(f)).unwrap();
    let (ta, tb) = (text("a.toml"), text("b.toml"));
    let differing: Vec<(&str, &str)> = ta
        .lines()
        .zip(tb.lines())
        .filter(|(x, y)| x != y && !x.starts_with('#'))
        .collect();
    assert_eq!(differing.len(), 4, "{differing:?}");
    assert_eq!(ta.lines().count(), tb.lines().count());
}

#[tokio::test]
async fn secrets_never_reach_the_logs_of_a_running_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let text = base(dir.path()).replace(
        "log_level = \"warn\"",
        "log_level = \"trace\"\nlog_format = \"json\"",
    ) + &suzhou(&format!(
        "app_secret = {{ file = {:?} }}",
        p.join("secrets/suzhou_app_secret").display().to_string()
    ));
    let path = dir.path().join("hcgw.toml");
    std::fs::write(&path, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(["serve", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        logs.contains("gateway listening"),
        "the gateway started and logged: {logs}"
    );
    for name in ["suzhou_app_secret", "subject_hash_key"] {
        let secret = std::fs::read_to_string(p.join("secrets").join(name)).unwrap();
        assert!(!logs.contains(secret.trim()), "{name} leaked into the logs");
    }
}

#[test]
fn the_production_template_is_well_formed() {
    // On a developer machine its files and environment variables do not exist; every other
    // kind of problem would be a mistake in the template itself.
    let path = repo().join("config/production.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let found = problems(&text, &repo().join("config"));
    assert!(
        !found.is_empty(),
        "the template names files that do not exist here"
    );
    for p in &found {
        let m = &p.message;
        assert!(
            m.contains("cannot read") || m.contains("not found") || m.contains("is not set"),
            "unexpected problem in config/production.example.toml: {p}"
        );
    }
}

fn problem_at(text: &str, dir: &std::path::Path, path: &str) -> String {
    let found = problems(text, dir);
    found
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no problem at {path}: {found:?}"))
        .message
        .clone()
}

fn without_crls(dir: &std::path::Path, tls_extra: &str) -> String {
    let mut tls = TlsPaths::standard();
    tls.crls.clear();
    // config_text marks a CRL-less test configuration as `revocation = "disabled"`;
    // replace that line with what the case needs.
    config_text(&tls, &dir.join("audit"), "").replace("revocation = \"disabled\"", tls_extra)
}

#[test]
fn no_crls_without_disabling_revocation_explicitly_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = problem_at(&without_crls(dir.path(), ""), dir.path(), "tls.crls");
    assert!(m.contains("tls.revocation = \"disabled\""), "{m}");
}

#[test]
fn disabled_revocation_is_accepted_with_a_loud_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = without_crls(dir.path(), "revocation = \"disabled\"");
    let config = hcgw::config::load_str(&text, &dir.path().join("ok.toml")).unwrap();
    let warnings = hcgw::config::warnings(&config);
    assert!(
        warnings
            .iter()
            .any(|w| w.path == "tls.revocation" && w.message.contains("DISABLED")),
        "{warnings:?}"
    );
    // check-config prints it (the real binary)
    let path = dir.path().join("disabled.toml");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARNING tls.revocation: REVOCATION CHECKING IS DISABLED"),
        "{stderr}"
    );
    // and the standard configuration warns only that it has no [signing] key (no signed
    // tree heads of the audit log), and with one about nothing
    let config = hcgw::config::load_str(&base(dir.path()), &dir.path().join("ok.toml")).unwrap();
    let warnings = hcgw::config::warnings(&config);
    assert_eq!(
        warnings.iter().map(|w| w.path.as_str()).collect::<Vec<_>>(),
        vec!["signing"],
        "{warnings:?}"
    );
    assert!(warnings[0].message.contains("no signed tree heads"));
    let signing = format!(
        "{}\n[signing]\nkey = {:?}\ncert = {:?}\n",
        base(dir.path()),
        pki().join("signing/hcgw-dev/key.pem").display().to_string(),
        pki()
            .join("signing/hcgw-dev/cert.pem")
            .display()
            .to_string()
    );
    let config = hcgw::config::load_str(&signing, &dir.path().join("ok.toml")).unwrap();
    assert_eq!(hcgw::config::warnings(&config), vec![]);
}

#[test]
fn crls_with_revocation_disabled_is_contradictory() {
    let dir = tempfile::tempdir().unwrap();
    let text = base(dir.path()).replace(
        "reload_interval_ms = 100",
        "revocation = \"disabled\"\nreload_interval_ms = 100",
    );
    problem_at(&text, dir.path(), "tls.revocation");
}

#[test]
fn every_ca_of_the_bundle_needs_its_crl() {
    let dir = tempfile::tempdir().unwrap();
    let mut tls = TlsPaths::standard();
    tls.crls = vec![pki().join("crl/root.crl.pem")];
    let text = config_text(&tls, &dir.path().join("audit"), "");
    let m = problem_at(&text, dir.path(), "tls.client_ca[0]");
    assert!(m.contains("CN=hcgw dev intermediate CA"), "{m}");
}

#[test]
fn an_expired_crl_is_a_warning_of_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let crl = dir.path().join("lapsed.crl.pem");
    make_expired_intermediate_crl(&crl);
    let mut tls = TlsPaths::standard();
    tls.crls = vec![crl, pki().join("crl/root.crl.pem")];
    let text = config_text(&tls, &dir.path().join("audit"), "");
    let config = hcgw::config::load_str(&text, &dir.path().join("ok.toml")).unwrap();
    let warnings = hcgw::config::warnings(&config);
    assert!(
        warnings
            .iter()
            .any(|w| w.path == "tls.crls[0]" && w.message.contains("passed its nextUpdate")),
        "{warnings:?}"
    );
}

#[test]
fn a_subject_entry_whose_issuer_is_ambiguous_or_untrusted_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zj = pki().join("intermediate-zhejiang/ca.pem");
    let int = pki().join("intermediate/ca.pem");

    // Two intermediates trusted: which one issues `platform-shanghai`?
    let bundle = d.join("two-operators.pem");
    let mut pem = std::fs::read(pki().join("ca-bundle.pem")).unwrap();
    pem.extend(std::fs::read(&zj).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let mut tls = TlsPaths::standard();
    tls.client_ca = bundle;
    tls.crls
        .push(pki().join("crl/intermediate-zhejiang.crl.pem"));
    let text = config_text(&tls, &d.join("audit"), "");
    let m = problem_at(&text, d, "clients[0].issuer");
    assert!(m.contains("several CA certificates"), "{m}");
    // naming the issuer of every subject entry settles it
    let named = text.replace(
        "\nsubject = ",
        &format!("\nissuer = {:?}\nsubject = ", int.display().to_string()),
    );
    assert_eq!(problems(&named, d), vec![]);

    // An issuer that is not in the CA bundle.
    let extra = format!(
        "[[clients]]\nname = \"zj\"\nrole = \"platform\"\njurisdiction = \"zhejiang\"\nsubject = \"O=zhejiang, CN=zj\"\nissuer = {:?}\n",
        zj.display().to_string()
    );
    let text = config_text(&TlsPaths::standard(), &d.join("audit"), &extra);
    let m = problem_at(&text, d, "clients[8].issuer");
    assert!(
        m.contains("not one of the certificates of tls.client_ca"),
        "{m}"
    );

    // An issuer that is no CA, or more than one certificate.
    for (file, expected) in [
        (client("ops").join("cert.pem"), "holds 2 certificates"),
        (pki().join("ca-bundle.pem"), "holds 2 certificates"),
        (
            pki().join("impostors/hcgw-jiangsu/key.pem"),
            "no valid PEM certificate",
        ),
    ] {
        let extra = format!(
            "[[clients]]\nname = \"x\"\nrole = \"platform\"\njurisdiction = \"shanghai\"\nsubject = \"CN=x\"\nissuer = {:?}\n",
            file.display().to_string()
        );
        let text = config_text(&TlsPaths::standard(), &d.join("audit"), &extra);
        let m = problem_at(&text, d, "clients[8].issuer");
        assert!(m.contains(expected), "{file:?}: {m}");
    }
    let leaf = d.join("leaf.pem");
    let chain = std::fs::read_to_string(client("ops").join("cert.pem")).unwrap();
    let end = chain.find("-----END CERTIFICATE-----").unwrap() + 25;
    std::fs::write(&leaf, &chain[..end]).unwrap();
    let extra = format!(
        "[[clients]]\nname = \"x\"\nrole = \"platform\"\njurisdiction = \"shanghai\"\nsubject = \"CN=x\"\nissuer = {:?}\n",
        leaf.display().to_string()
    );
    let text = config_text(&TlsPaths::standard(), &d.join("audit"), &extra);
    let m = problem_at(&text, d, "clients[8].issuer");
    assert!(m.contains("not a CA certificate"), "{m}");
}

#[test]
fn a_client_entry_takes_exactly_one_matcher_and_exact_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fp = "ab".repeat(32);
    for (body, path, expected) in [
        (
            format!("spki_sha256 = \"{fp}\"\nsubject = \"CN=x\""),
            "clients[8]",
            "not `spki_sha256` and `subject`",
        ),
        (
            format!("spki_sha256 = \"{fp}\"\nfingerprint_sha256 = \"{fp}\""),
            "clients[8]",
            "not `fingerprint_sha256` and `spki_sha256`",
        ),
        (
            "spki_sha256 = \"abc\"".to_owned(),
            "clients[8].spki_sha256",
            "64 hexadecimal",
        ),
        (
            "subject = \"CN=a\\\\x\"".to_owned(),
            "clients[8].subject",
            "special character or two hex digits",
        ),
        (
            "subject = \"CN=a;OU=b\"".to_owned(),
            "clients[8].subject",
            "must be escaped",
        ),
        (
            "subject = \"XYZ=a\"".to_owned(),
            "clients[8].subject",
            "unknown attribute",
        ),
        (
            // the same subject as clients[0], written differently
            "subject = \"cn=platform-shanghai,ou=platform,o=shanghai\"".to_owned(),
            "clients[8].subject",
            "same subject and issuer as clients[0]",
        ),
    ] {
        let extra = format!(
            "[[clients]]\nname = \"x\"\nrole = \"platform\"\njurisdiction = \"shanghai\"\n{body}\n"
        );
        let text = config_text(&TlsPaths::standard(), &d.join("audit"), &extra);
        let m = problem_at(&text, d, path);
        assert!(m.contains(expected), "{body}: {m}");
    }
}

#[test]
fn a_subject_entry_implicitly_bound_to_a_root_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut tls = TlsPaths::standard();
    tls.client_ca = pki().join("root/ca.pem");
    tls.crls = vec![pki().join("crl/root.crl.pem")];
    let text = config_text(&tls, &dir.path().join("audit"), "");
    let config = hcgw::config::load_str(&text, &dir.path().join("ok.toml")).unwrap();
    let warnings = hcgw::config::warnings(&config);
    let w = warnings
        .iter()
        .find(|w| w.path == "clients[0].issuer")
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(w.message.contains("CN=hcgw dev root CA"), "{w}");
}

/// Runs `hcgw check-config [--print] FILE` with extra environment variables; (success,
/// stdout, stderr).
fn check_config_with_env(
    path: &std::path::Path,
    print: bool,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcgw"));
    cmd.arg("check-config");
    if print {
        cmd.arg("--print");
    }
    cmd.arg(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn environment_overrides_replace_file_values_and_print_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hcgw.toml");
    std::fs::write(&path, base(dir.path())).unwrap();
    let audit = dir.path().join("audit-of-replica-0");
    // Redis needs its entry key too (a secret reference: a deeper table, `__FILE`).
    let entry_key = dir.path().join("redis_entry_key");
    std::fs::write(&entry_key, "0123456789abcdef0123456789abcdef").unwrap();
    let (ok, stdout, stderr) = check_config_with_env(
        &path,
        true,
        &[
            ("HCGW_GATEWAY__NAME", "hcgw-0"),
            ("HCGW_AUDIT__DIR", audit.to_str().unwrap()),
            ("HCGW_REDIS__ENABLED", "true"),
            ("HCGW_REDIS__URL", "redis://hcgw:pa55-w0rd-xyz@redis:6379/0"),
            ("HCGW_REDIS__ENTRY_KEY__FILE", entry_key.to_str().unwrap()),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("# gateway.name from $HCGW_GATEWAY__NAME"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# redis.url from $HCGW_REDIS__URL"),
        "{stdout}"
    );
    assert!(stdout.contains("name = \"hcgw-0\""), "{stdout}");
    assert!(stdout.contains("audit-of-replica-0"), "{stdout}");
    assert!(stdout.contains("enabled = true"), "{stdout}");
    assert!(
        stdout.contains("redis://hcgw:<redacted>@redis:6379/0"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("pa55-w0rd-xyz") && !stderr.contains("pa55"),
        "{stdout}{stderr}"
    );
    // The printed configuration is itself TOML (the summary is a comment).
    assert!(stdout.trim_end().ends_with("agreements)"), "{stdout}");
    let printed: toml::Table = stdout.parse().unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    assert_eq!(printed["gateway"]["name"].as_str(), Some("hcgw-0"));
    assert_eq!(printed["audit"]["dir"].as_str(), audit.to_str());
    // Without --print only the summary line.
    let (ok, stdout, _) = check_config_with_env(&path, false, &[("HCGW_GATEWAY__NAME", "hcgw-0")]);
    assert!(ok && !stdout.contains("[gateway]"), "{stdout}");
}

#[test]
fn invalid_environment_overrides_are_reported_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hcgw.toml");
    std::fs::write(&path, base(dir.path())).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("HCGW_LISTENER__ADDR", "not-an-address", "listener.addr"),
        ("HCGW_REDIS__LOCAL_SHARE", "2.5", "redis.local_share"),
        ("HCGW_AUDIT__STRICT", "maybe", "audit.strict"),
        ("HCGW_GATEWAY__NAMEE", "x", "gateway.namee"),
        ("HCGW_NOPE__X", "x", "nope"),
        ("HCGW_CLIENTS__NAME", "x", "clients"),
        ("HCGW_GATEWAY__", "x", "$HCGW_GATEWAY__"),
    ];
    for (var, value, at) in cases {
        let (ok, _, stderr) = check_config_with_env(&path, false, &[(var, value)]);
        assert!(!ok, "{var}={value} was accepted");
        assert!(
            stderr
                .split("\n  - ")
                .any(|p| p.starts_with(&format!("{at}:")) && p.contains(var)),
            "{var}={value}: no problem at {at} naming the variable:\n{stderr}"
        );
    }
    // A secret given inline through the environment is refused, without echoing it.
    let (ok, _, stderr) = check_config_with_env(
        &path,
        false,
        &[("HCGW_CACHE__SUBJECT_KEY", "inline-secret-7f6e5d")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("cache.subject_key") && stderr.contains("HCGW_CACHE__SUBJECT_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains("7f6e5d"), "secret leaked: {stderr}");
    // A reference through the environment is fine.
    let key = pki().join("secrets/subject_hash_key");
    let (ok, _, stderr) = check_config_with_env(
        &path,
        false,
        &[(
            "HCGW_CACHE__SUBJECT_KEY",
            &format!("{{ file = {:?} }}", key.display().to_string()),
        )],
    );
    assert!(ok, "{stderr}");
}

#[tokio::test]
async fn a_served_gateway_takes_its_name_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hcgw.toml");
    let text = base(dir.path()).replace(
        "log_level = \"warn\"",
        "log_level = \"info\"\nlog_format = \"json\"",
    );
    std::fs::write(&path, text).unwrap();
    let audit = dir.path().join("replica-audit");
    let child = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("HCGW_GATEWAY__NAME", "hcgw-from-env-7")
        .env("HCGW_AUDIT__DIR", &audit)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut started = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if audit.is_dir() {
            started = true;
            break;
        }
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        started,
        "the audit directory from HCGW_AUDIT__DIR was made: {logs}"
    );
    assert!(
        logs.contains("hcgw-from-env-7"),
        "the name from HCGW_GATEWAY__NAME is used: {logs}"
    );
}

/// `[shutdown] drain_s` (0..=3600), `grace_s` (1..=3600) and `[access_log]
/// sample_cache_hits` (1..=1000000): each value out of range is a problem naming its field
/// and range, the bounds themselves are accepted, and `hcgw check-config` fails on one
/// naming the field; a wrong type or an unknown key in either section is refused too.
#[test]
fn shutdown_and_access_log_values_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with = |section: &str, body: &str| format!("{}\n[{section}]\n{body}\n", base(d));
    let out_of_range = [
        (
            "shutdown",
            "drain_s = 3601",
            "shutdown.drain_s",
            "between 0 and 3600",
        ),
        (
            "shutdown",
            "grace_s = 0",
            "shutdown.grace_s",
            "between 1 and 3600",
        ),
        (
            "shutdown",
            "grace_s = 3601",
            "shutdown.grace_s",
            "between 1 and 3600",
        ),
        (
            "access_log",
            "sample_cache_hits = 0",
            "access_log.sample_cache_hits",
            "between 1 (log every cached hit) and 1000000",
        ),
        (
            "access_log",
            "sample_cache_hits = 1000001",
            "access_log.sample_cache_hits",
            "between 1 (log every cached hit) and 1000000",
        ),
    ];
    for (section, body, path, range) in out_of_range {
        let found = problems(&with(section, body), d);
        assert!(
            found
                .iter()
                .any(|p| p.path == path && p.message.contains(range)),
            "{body}: expected `{path}: … {range}`, got {found:?}"
        );
        assert_eq!(found.len(), 1, "{body}: only that problem: {found:?}");
    }
    for (section, body) in [
        ("shutdown", "drain_s = 0\ngrace_s = 1"),
        ("shutdown", "drain_s = 3600\ngrace_s = 3600"),
        ("access_log", "sample_cache_hits = 1"),
        ("access_log", "sample_cache_hits = 1000000\nenabled = false"),
    ] {
        let found = problems(&with(section, body), d);
        assert!(found.is_empty(), "{body}: {found:?}");
    }
    for (section, body, path) in [
        ("shutdown", "drain_s = -1", "shutdown"),
        ("shutdown", "grace_s = \"25s\"", "shutdown"),
        ("shutdown", "drian_s = 5", "shutdown"),
        ("access_log", "enabled = \"yes\"", "access_log"),
        ("access_log", "sampling = 10", "access_log"),
    ] {
        let found = problems(&with(section, body), d);
        assert!(
            found.iter().any(|p| p.path.starts_with(path)),
            "{body}: expected a problem at `{path}`, got {found:?}"
        );
    }
    // The command line: exit 1, the field and its range on stderr.
    let file = d.join("bad-grace.toml");
    std::fs::write(&file, with("shutdown", "drain_s = 10\ngrace_s = 0")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("shutdown.grace_s") && err.contains("between 1 and 3600"),
        "{err}"
    );
}
