//! Criterion micro-benchmarks of the domain hot path, free of network and TLS: QR
//! detection, subject validation with its keyed hash, the normalisation of a Suzhou (JSON)
//! and a Sukang (XML, shuffled elements) answer, and the recognition decision. The end-to-end
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

criterion_group!(benches, domain);
criterion_main!(benches);
