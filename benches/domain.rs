//! Criterion micro-benchmarks of the domain hot path, free of network and TLS: QR
//! detection, subject validation with its keyed hash, the normalisation of a Suzhou (JSON)
//! and a Sukang (XML, shuffled elements) answer, the recognition decision, and signing and
//! verifying an answer (RFC 9421, P-256 and Ed25519). The end-to-end
//! figures come from `scripts/bench.sh`; these show regressions of the pure code in isolation.
//!
//! `cargo bench --bench domain`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hcgw::recognition::{Agreement, Policy};
use hcgw::subject::{SubjectHasher, SubjectIn};
use hcgw_adapters::regions::{sukang, suzhou};
use hcgw_adapters::{IdType, RegionId, Secret};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/adapters/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn headers(content_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h
}

fn domain(c: &mut Criterion) {
    c.bench_function("qr_detect", |b| {
        b.iter(|| hcgw_adapters::qr::detect(black_box("SUIKANG/a1B2c3D4e5F6g7H8i9J0k1L2m3N4")))
    });

    let hasher = SubjectHasher::new(Secret::new("bench-subject-key-0123456789"));
    let identity = SubjectIn {
        qr: None,
        id_type: Some(IdType::ResidentId),
        id_number: Some("11010519491231002X".into()),
        name: Some("张三".into()),
    };
    c.bench_function("subject_validate_and_cache_key", |b| {
        b.iter(|| {
            let s = black_box(&identity)
                .validate(RegionId::Suzhou)
                .expect("valid");
            hasher.cache_key(RegionId::Suzhou, &s)
        })
    });

    let suzhou_green = fixture("suzhou/green_pending.json");
    let json = headers("application/json; charset=utf-8");
    c.bench_function("normalise_suzhou_json", |b| {
        b.iter(|| {
            let answer = suzhou::parse_answer(StatusCode::OK, &json, black_box(&suzhou_green))
                .expect("parses");
            suzhou::normalise(&answer, None).expect("normalises")
        })
    });

    let sukang_yellow = fixture("sukang/yellow.xml");
    let xml = headers("application/xml; charset=utf-8");
    c.bench_function("normalise_sukang_xml", |b| {
        b.iter(|| {
            sukang::interpret(None, StatusCode::OK, &xml, black_box(&sukang_yellow))
                .expect("interprets")
        })
    });

    let policy = Policy::new(vec![Agreement {
        id: "yrd-mutual-recognition".into(),
        members: vec![
            "shanghai".into(),
            "jiangsu".into(),
            "zhejiang".into(),
            "anhui".into(),
        ],
        code_systems: None,
        exclude_code_systems: vec![RegionId::Xuzhou],
        source: None,
    }]);
    let answer = suzhou::parse_answer(StatusCode::OK, &json, &suzhou_green).expect("parses");
    let mut status = suzhou::normalise(&answer, None).expect("normalises");
    status.as_of = Some(chrono::Utc::now().fixed_offset());
    c.bench_function("recognition_decide", |b| {
        b.iter(|| {
            policy.decide(
                black_box("shanghai"),
                black_box(&status),
                chrono::Duration::hours(24),
                chrono::Utc::now(),
            )
        })
    });
}

/// The cost of signing one answer (issue 15): what every lookup answer pays.
fn signing(c: &mut Criterion) {
    use hcgw::signing::{SigningKey, VerifyingKey, sign_answer, verify_answer};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pki = root.join("target/bench-pki");
    let ok = std::process::Command::new("bash")
        .arg(root.join("certs/dev-pki.sh"))
        .arg(&pki)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("certs/dev-pki.sh")
        .success();
    assert!(ok, "certs/dev-pki.sh");
    let dir = tempfile::tempdir().unwrap();
    let ed_key = dir.path().join("ed.key");
    let ed_cert = dir.path().join("ed.pem");
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "ED25519",
            "-out",
            ed_key.to_str().unwrap(),
        ],
        vec![
            "req",
            "-new",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=bench",
            "-key",
            ed_key.to_str().unwrap(),
            "-out",
            ed_cert.to_str().unwrap(),
        ],
    ] {
        assert!(
            std::process::Command::new("openssl")
                .args(&args)
                .status()
                .unwrap()
                .success()
        );
    }
    let body = fixture("suzhou/green.json");
    for (name, key, cert) in [
        (
            "p256",
            pki.join("signing/hcgw-dev/key.pem"),
            pki.join("signing/hcgw-dev/cert.pem"),
        ),
        ("ed25519", ed_key.clone(), ed_cert.clone()),
    ] {
        let key = SigningKey::from_files(&key, &cert).expect("signing key");
        let public = VerifyingKey::from_pem_file(&cert).unwrap();
        let mut base = headers("application/json");
        base.insert(
            "x-request-id",
            HeaderValue::from_static("01JDEMO0000000000000000000"),
        );
        c.bench_function(&format!("sign_answer_{name}"), |b| {
            b.iter(|| {
                let mut h = base.clone();
                sign_answer(&key, 200, &mut h, black_box(&body), 1_764_640_000).unwrap();
                h
            })
        });
        let mut signed = base.clone();
        sign_answer(&key, 200, &mut signed, &body, 1_764_640_000).unwrap();
        c.bench_function(&format!("verify_answer_{name}"), |b| {
            b.iter(|| {
                verify_answer(
                    200,
                    black_box(&signed),
                    &body,
                    |_| Some(&public),
                    1_764_640_000,
                    300,
                )
                .unwrap()
            })
        });
    }
}

criterion_group!(benches, domain, signing);
criterion_main!(benches);
