use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::key::jwk_thumbprint as thumbprint_for_tests;
use super::*;

/// A key and a self-signed certificate made with the openssl CLI.
fn make_key(dir: &Path, name: &str, algorithm: &[&str]) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.pem"));
    let ok = Command::new("openssl")
        .arg("genpkey")
        .args(algorithm)
        .arg("-out")
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl genpkey");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=answers",
            "-key",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl req");
    (key, cert)
}

fn p256(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    make_key(
        dir,
        name,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

#[test]
fn p256_and_ed25519_keys_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (name, alg, want) in [
        (
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            SigAlgorithm::EcdsaP256Sha256,
        ),
        ("ed", &["-algorithm", "ED25519"][..], SigAlgorithm::Ed25519),
    ] {
        let (k, c) = make_key(dir.path(), name, alg);
        let key = SigningKey::from_files(&k, &c).unwrap();
        assert_eq!(key.algorithm(), want);
        let sig = key.sign(b"message");
        assert_eq!(sig.len(), 64, "{name}: RFC 9421 fixed-size signature");
        let public = VerifyingKey::from_pem_file(&c).unwrap();
        assert_eq!(public.key_id(), key.key_id());
        assert_eq!(public.key_id().len(), 43, "base64url SHA-256");
        public.verify(b"message", &sig).unwrap();
        assert!(matches!(
            public.verify(b"messagE", &sig),
            Err(SignatureError::Invalid)
        ));
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(public.verify(b"message", &bad).is_err());
        // The published PEM round-trips to the same key.
        let again = VerifyingKey::from_pem(&public.certificate_pem()).unwrap();
        assert_eq!(again, public);
    }
}

#[test]
fn a_certificate_of_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, _) = p256(dir.path(), "one");
    let (_, c2) = p256(dir.path(), "two");
    let err = SigningKey::from_files(&k1, &c2).unwrap_err();
    assert!(matches!(err, SignatureError::Mismatch { .. }), "{err}");
}

#[test]
fn rsa_and_other_curves_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (k, c) = make_key(
        dir.path(),
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let err = SigningKey::from_files(&k, &c).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a PKCS#8 ECDSA P-256 or Ed25519"),
        "{err}"
    );
    assert!(VerifyingKey::from_pem_file(&c).is_err());
    let (k, c) = make_key(
        dir.path(),
        "p384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    assert!(SigningKey::from_files(&k, &c).is_err());
    assert!(VerifyingKey::from_pem_file(&c).is_err());
    let missing = SigningKey::from_files(&dir.path().join("none.key"), &c).unwrap_err();
    assert!(missing.to_string().contains("none.key"), "{missing}");
}

#[test]
fn key_id_is_the_rfc_7638_thumbprint() {
    // RFC 8037 appendix A.3: the Ed25519 key's thumbprint.
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    assert_eq!(
        thumbprint_for_tests(SigAlgorithm::Ed25519, &x),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn algorithm_names_round_trip() {
    for a in [SigAlgorithm::EcdsaP256Sha256, SigAlgorithm::Ed25519] {
        assert_eq!(SigAlgorithm::from_name(a.as_str()), Some(a));
    }
    assert_eq!(SigAlgorithm::from_name("hmac-sha256"), None);
}

#[test]
fn dev_pki_signing_certificates_are_issued_to_their_gateway() {
    let pki = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs/dev");
    if !pki.join("signing/hcgw-jiangsu/cert.pem").exists() {
        return;
    }
    let anchors = crate::pki::pem::load_certs(&pki.join("root/ca.pem")).unwrap();
    let key = VerifyingKey::from_pem_file(&pki.join("signing/hcgw-jiangsu/cert.pem")).unwrap();
    key.check_issued_to(&anchors, "hcgw-jiangsu").unwrap();
    assert!(key.check_issued_to(&anchors, "hcgw-zhejiang").is_err());
    // The gateway's TLS certificate is not a signing certificate.
    let tls = VerifyingKey::from_pem_file(&pki.join("gateways/hcgw-jiangsu/cert.pem")).unwrap();
    let err = tls.check_issued_to(&anchors, "hcgw-jiangsu").unwrap_err();
    assert!(err.to_string().contains("document signing"), "{err}");
    // Nor is a certificate of another CA.
    let other = crate::pki::pem::load_certs(&pki.join("untrusted/ca.pem")).unwrap();
    assert!(key.check_issued_to(&other, "hcgw-jiangsu").is_err());
}

#[test]
fn the_inner_list_is_the_covered_components() {
    let joined: Vec<String> = message::COVERED
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    assert_eq!(message::COVERED_LIST, format!("({})", joined.join(" ")));
}

#[test]
fn the_signature_base_is_rfc_9421_section_2_5() {
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.append("x-request-id", " abc ".parse().unwrap());
    headers.append("x-request-id", "def".parse().unwrap());
    headers.insert(
        "content-digest",
        message::content_digest(b"{}").parse().unwrap(),
    );
    let params = message::signature_params(1_764_640_000, "kid", SigAlgorithm::Ed25519);
    let base = message::signature_base(201, &headers, &params).unwrap();
    assert_eq!(
        base,
        "\"@status\": 201\n\
         \"content-digest\": sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:\n\
         \"content-type\": application/json\n\
         \"x-request-id\": abc, def\n\
         \"@signature-params\": (\"@status\" \"content-digest\" \"content-type\" \"x-request-id\");created=1764640000;keyid=\"kid\";alg=\"ed25519\""
    );
    headers.remove("content-type");
    assert_eq!(
        message::signature_base(201, &headers, &params),
        Err(message::AnswerSignatureError::Missing("content-type"))
    );
}
