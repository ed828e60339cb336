//! The test kit of the simulators' own tests (one module, compiled for tests only): the
//! dev PKI made once per test process, the client-side TLS of the mTLS regions, and the
//! comparison of an adapter's answers with a simulator's intended outcomes.
//!
//! The gateway's end-to-end tests have their own fixtures (`tests/e2e/support.rs`) and
//! call [`crate::dev_pki`] for the PKI.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hcgw_adapters::adapter::Identity;
use hcgw_adapters::{Action, AdapterError, HealthStatus, IdType, Reason, RegionAdapter, Subject};

use crate::{Fate, Intended, RegionSim, RunningSim, SimEnv, SimOptions, SimSubject, spawn};

/// The dev PKI in `target/test-pki` of the workspace, made once per test process by
/// `certs/dev-pki.sh` (the gateway's end-to-end tests share it; the script locks).
pub fn test_pki_dir() -> PathBuf {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the sim crate lives in the workspace root")
            .to_owned();
        let out = root.join("target/test-pki");
        crate::dev_pki::run_quiet(&root, &out).expect("certs/dev-pki.sh");
        out
    })
    .clone()
}

/// The client-side TLS of an mTLS region: its CA, and the client certificate the PKI
/// issued for `client_region` (another region's, or none, to test refusals).
pub fn upstream_tls(
    env: &SimEnv,
    region: &str,
    client_region: Option<&str>,
) -> hcgw_adapters::upstream::UpstreamTls {
    let read = |rel: &str| std::fs::read(env.path(rel)).unwrap();
    hcgw_adapters::upstream::UpstreamTls {
        ca_pem: Some(read(&format!("upstream/{region}/ca.pem"))),
        client_cert_pem: client_region.map(|r| read(&format!("upstream/{r}/client/cert.pem"))),
        client_key_pem: client_region.map(|r| {
            hcgw_adapters::Secret::new(
                String::from_utf8(read(&format!("upstream/{r}/client/key.pem"))).unwrap(),
            )
        }),
    }
}

/// The shared test PKI, as the simulators' environment.
pub fn test_pki() -> SimEnv {
    SimEnv {
        pki_dir: test_pki_dir(),
    }
}

/// Asserts that `got` is what `intended` says (colour, level, reasons and actions as
/// sets, proxy_applied, or the error code).
pub fn assert_matches(what: &str, intended: &Intended, got: &Result<HealthStatus, AdapterError>) {
    match (&intended.error, got) {
        (Some(code), Err(e)) => assert_eq!(e.code(), *code, "{what}: {}", intended.label),
        (Some(code), Ok(s)) => panic!("{what}: {} expected {code}, got {s:?}", intended.label),
        (None, Err(e)) => panic!("{what}: {} expected a status, got {e:?}", intended.label),
        (None, Ok(s)) => {
            let l = &intended.label;
            assert_eq!(
                (s.color, s.level),
                (intended.color, intended.level),
                "{what}: {l}"
            );
            let set = |v: &[_]| v.iter().copied().collect::<HashSet<_>>();
            assert_eq!(set(&s.reasons), set(&intended.reasons), "{what}: {l}");
            assert_eq!(
                s.actions.iter().copied().collect::<HashSet<_>>(),
                intended.actions.iter().copied().collect::<HashSet<_>>(),
                "{what}: {l}"
            );
            assert_eq!(s.proxy_applied, intended.proxy_applied, "{what}: {l}");
            assert!(s.as_of.is_some(), "{what}: {l}: as_of");
        }
    }
}

/// Looks every subject up by QR and by identity and checks the intended outcome.
/// Returns how many lookups ended in each error code (and "status").
pub async fn drive_all(
    sim: &dyn RegionSim,
    adapter: &dyn RegionAdapter,
    subjects: &[SimSubject],
) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for s in subjects {
        for via_qr in [true, false] {
            let subject = if via_qr {
                Subject::QrToken(s.token.clone())
            } else {
                Subject::Identity(Identity {
                    id_type: s.id_type,
                    id_number: s.id_number.clone(),
                    name: s.name.clone(),
                })
            };
            let intended = sim.intended_for(s, via_qr);
            let got = adapter.status(&subject).await;
            let what = format!(
                "subject {} via {}",
                s.index,
                if via_qr { "QR" } else { "id" }
            );
            assert_matches(&what, &intended, &got);
            let key = match &got {
                Ok(_) => "status".to_owned(),
                Err(e) => e.code().as_str().to_owned(),
            };
            *seen.entry(key).or_default() += 1;
        }
    }
    seen
}

/// Spawns `sim` on 127.0.0.1:0 with a small population.
pub async fn spawn_sim(sim: Arc<dyn RegionSim>) -> RunningSim {
    let options = SimOptions {
        population: 240,
        ..SimOptions::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    spawn(sim, &options, test_pki(), addr)
        .await
        .expect("simulator starts")
}

/// Asserts an adapter result equals the intended outcome (colour, level, reasons and
/// actions as sets, proxy_applied, or the error code).
pub fn assert_intended(
    what: &str,
    got: &Result<HealthStatus, hcgw_adapters::AdapterError>,
    want: &Intended,
) {
    match (got, want.error) {
        (Err(e), Some(code)) => assert_eq!(e.code(), code, "{what}: {}", want.label),
        (Ok(s), None) => {
            let set = |v: &[Reason]| v.iter().copied().collect::<HashSet<_>>();
            let aset = |v: &[Action]| v.iter().copied().collect::<HashSet<_>>();
            assert_eq!(
                (s.color, s.level),
                (want.color, want.level),
                "{what}: {}",
                want.label
            );
            assert_eq!(
                set(&s.reasons),
                set(&want.reasons),
                "{what}: {}",
                want.label
            );
            assert_eq!(
                aset(&s.actions),
                aset(&want.actions),
                "{what}: {}",
                want.label
            );
            assert_eq!(
                s.proxy_applied, want.proxy_applied,
                "{what}: {}",
                want.label
            );
        }
        (got, _) => panic!("{what}: {}: got {got:?}, want {want:?}", want.label),
    }
}

/// The identity subject of a simulated person.
pub fn identity(s: &SimSubject) -> Subject {
    Subject::Identity(Identity {
        id_type: s.id_type,
        id_number: s.id_number.clone(),
        name: s.name.clone(),
    })
}

/// Drives `adapter` against a running simulator for every case (by QR and by identity)
/// and for the not-found and expired fates.
pub async fn drive_all_cases(
    sim: &Arc<dyn RegionSim>,
    running: &RunningSim,
    adapter: &dyn RegionAdapter,
) {
    let subjects = running.context.population.subjects();
    let n = sim.cases().len();
    for case in 0..n {
        let s = subjects
            .iter()
            .find(|s| s.case == case && s.fate == Fate::Active)
            .expect("every case present");
        let got = adapter.status(&Subject::QrToken(s.token.clone())).await;
        assert_intended(
            &format!("case {case} by QR"),
            &got,
            &sim.intended_for(s, true),
        );
        let got = adapter.status(&identity(s)).await;
        assert_intended(
            &format!("case {case} by identity"),
            &got,
            &sim.intended_for(s, false),
        );
    }
    // Passports (every 20th subject), not found and expired fates.
    for fate in [Fate::NotFound, Fate::TokenExpired] {
        let s = subjects
            .iter()
            .find(|s| s.fate == fate)
            .expect("fate present");
        for via_qr in [true, false] {
            let subject = if via_qr {
                Subject::QrToken(s.token.clone())
            } else {
                identity(s)
            };
            let got = adapter.status(&subject).await;
            assert_intended(
                &format!("{fate:?} via_qr={via_qr}"),
                &got,
                &sim.intended_for(s, via_qr),
            );
        }
    }
    let passport = subjects
        .iter()
        .find(|s| s.id_type == IdType::Passport && s.fate == Fate::Active)
        .expect("a passport holder");
    let got = adapter.status(&identity(passport)).await;
    assert_intended("passport", &got, &sim.intended_for(passport, false));
    // An unknown token: the region has no code for it.
    let got = adapter
        .status(&Subject::QrToken("0".repeat(passport.token.len())))
        .await;
    assert_eq!(
        got.unwrap_err().code(),
        hcgw_adapters::AdapterCode::SubjectNotFound
    );
}
