//! The answer-signing key and the public half verifiers use.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::{SigAlgorithm, Signer};
use crate::pki::pem;

/// Why a key or certificate cannot be used, or a signature does not verify. Names files,
/// never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A file cannot be read or holds nothing usable.
    #[error(transparent)]
    Pem(#[from] pem::PemError),
    /// The private key is not a PKCS#8 P-256 or Ed25519 key.
    #[error("{path}: not a PKCS#8 ECDSA P-256 or Ed25519 private key")]
    UnsupportedKey {
        /// The key file.
        path: String,
    },
    /// The certificate's public key is not P-256 or Ed25519, or cannot be parsed.
    #[error("certificate: {0}")]
    UnsupportedCertificate(String),
    /// The certificate does not belong to the private key.
    #[error("{cert} does not hold the public key of {key}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// The signature does not verify (wrong key, altered message or signature).
    #[error("signature does not verify")]
    Invalid,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// The private answer-signing key with its certificate.
pub struct SigningKey {
    pair: Pair,
    rng: SystemRandom,
    public: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.public.algorithm)
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key and the PEM certificate of its public key (the first
    /// certificate of the file); fails unless the two belong together.
    pub fn from_files(key_path: &Path, cert_path: &Path) -> Result<SigningKey, SignatureError> {
        let key = pem::load_key(key_path)?;
        let mut certs = pem::load_certs(cert_path)?;
        let cert = certs.remove(0);
        let unsupported = || SignatureError::UnsupportedKey {
            path: key_path.display().to_string(),
        };
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(unsupported());
        };
        let rng = SystemRandom::new();
        let pair = if let Ok(p) = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.secret_pkcs8_der(),
        ) {
            Pair::Ecdsa(p)
        } else if let Ok(p) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.secret_pkcs8_der()) {
            Pair::Ed25519(p)
        } else {
            return Err(unsupported());
        };
        let mut public = VerifyingKey::from_der(cert)?;
        public.chain = certs;
        let own = match &pair {
            Pair::Ecdsa(p) => p.public_key().as_ref().to_vec(),
            Pair::Ed25519(p) => p.public_key().as_ref().to_vec(),
        };
        if own != public.public_key {
            return Err(SignatureError::Mismatch {
                cert: cert_path.display().to_string(),
                key: key_path.display().to_string(),
            });
        }
        Ok(SigningKey { pair, rng, public })
    }

    /// The public half (its certificate, key id and algorithm).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

impl Signer for SigningKey {
    fn key_id(&self) -> &str {
        &self.public.key_id
    }

    fn algorithm(&self) -> SigAlgorithm {
        self.public.algorithm
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            // aws-lc-rs fails only when its system RNG does: no signature can be made at all.
            Pair::Ecdsa(p) => p
                .sign(&self.rng, message)
                .expect("the system random number generator failed")
                .as_ref()
                .to_vec(),
            Pair::Ed25519(p) => p.sign(message).as_ref().to_vec(),
        }
    }
}

/// A public answer-signing key, from its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    algorithm: SigAlgorithm,
    key_id: String,
    /// The raw public key: the uncompressed P-256 point (65 bytes) or Ed25519's 32 bytes.
    public_key: Vec<u8>,
    cert: CertificateDer<'static>,
    /// The certificates after it in its file (its issuers), published with it.
    chain: Vec<CertificateDer<'static>>,
}

/// The DER content of RFC 9336's id-kp-documentSigning, 1.3.6.1.5.5.7.3.36: the extended
/// key usage a peer's answer-signing certificate must carry.
const EKU_DOCUMENT_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24];

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

impl VerifyingKey {
    /// The key of a DER certificate.
    pub fn from_der(cert: CertificateDer<'static>) -> Result<VerifyingKey, SignatureError> {
        let bad = |m: &str| SignatureError::UnsupportedCertificate(m.to_string());
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|_| bad("not an X.509 certificate"))?;
        let spki = parsed.public_key();
        let alg_oid = spki.algorithm.algorithm.to_id_string();
        let public_key = spki.subject_public_key.data.to_vec();
        let algorithm = if alg_oid == OID_ED25519 && public_key.len() == 32 {
            SigAlgorithm::Ed25519
        } else if alg_oid == OID_EC_PUBLIC_KEY
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .as_deref()
                == Some(OID_P256)
            && public_key.len() == 65
            && public_key[0] == 0x04
        {
            SigAlgorithm::EcdsaP256Sha256
        } else {
            return Err(bad("its public key is neither ECDSA P-256 nor Ed25519"));
        };
        let key_id = jwk_thumbprint(algorithm, &public_key);
        drop(parsed);
        Ok(VerifyingKey {
            algorithm,
            key_id,
            public_key,
            cert,
            chain: Vec::new(),
        })
    }

    fn with_chain(mut certs: Vec<CertificateDer<'static>>) -> Result<VerifyingKey, SignatureError> {
        if certs.is_empty() {
            return Err(SignatureError::UnsupportedCertificate(
                "no PEM certificate".into(),
            ));
        }
        let leaf = certs.remove(0);
        let mut key = VerifyingKey::from_der(leaf)?;
        key.chain = certs;
        Ok(key)
    }

    /// The key of the first certificate of a PEM file (the others are its chain).
    pub fn from_pem_file(path: &Path) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::with_chain(pem::load_certs(path)?)
    }

    /// The key of the first certificate of PEM text (the others are its chain).
    pub fn from_pem(text: &str) -> Result<VerifyingKey, SignatureError> {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| SignatureError::UnsupportedCertificate("unreadable PEM".into()))?;
        VerifyingKey::with_chain(certs)
    }

    /// Checks that the certificate was issued, through its chain, by one of `anchors` for
    /// document signing (RFC 9336), is valid now, and names `gateway` as its common name:
    /// what a gateway asks of a peer's answer-signing key before it trusts its answers.
    pub fn check_issued_to(
        &self,
        anchors: &[CertificateDer<'static>],
        gateway: &str,
    ) -> Result<(), SignatureError> {
        let bad = |m: String| SignatureError::UnsupportedCertificate(m);
        let anchors: Vec<_> = anchors
            .iter()
            .filter_map(|a| webpki::anchor_from_trusted_cert(a).ok())
            .collect();
        let ee = webpki::EndEntityCert::try_from(&self.cert)
            .map_err(|e| bad(format!("unusable certificate: {e}")))?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &self.chain,
            rustls_pki_types::UnixTime::now(),
            // Checked on every certificate of the path (an issuer without the extension
            // is fine); that the leaf itself carries it is checked below.
            webpki::KeyUsage::required_if_present(EKU_DOCUMENT_SIGNING),
            None,
            None,
        )
        .map_err(|e| {
            bad(format!(
                "not issued by the peer's CA for document signing: {e}"
            ))
        })?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&self.cert)
            .map_err(|_| bad("not an X.509 certificate".into()))?;
        let document_signing = parsed.extended_key_usage().ok().flatten().is_some_and(|e| {
            e.value
                .other
                .iter()
                .any(|o| o.as_bytes() == EKU_DOCUMENT_SIGNING)
        });
        if !document_signing {
            return Err(bad("it is not issued for document signing".into()));
        }
        let mut names = parsed.subject().iter_common_name();
        let cn = names.next().and_then(|c| c.as_str().ok());
        if cn != Some(gateway) || names.next().is_some() {
            return Err(bad(format!("its common name is not {gateway}")));
        }
        Ok(())
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SigAlgorithm {
        self.algorithm
    }

    /// The key id (RFC 7638 JWK thumbprint).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate and its chain as PEM text.
    pub fn certificate_pem(&self) -> String {
        let mut out = String::new();
        for cert in std::iter::once(&self.cert).chain(&self.chain) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                out.push_str(std::str::from_utf8(line).unwrap_or_default());
                out.push('\n');
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
            SigAlgorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_FIXED,
            SigAlgorithm::Ed25519 => &signature::ED25519,
        };
        UnparsedPublicKey::new(alg, &self.public_key)
            .verify(message, signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// RFC 7638: SHA-256 over the JWK's required members in lexicographic order, base64url.
pub(super) fn jwk_thumbprint(alg: SigAlgorithm, public_key: &[u8]) -> String {
    let json = match alg {
        SigAlgorithm::EcdsaP256Sha256 => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(&public_key[1..33]),
            URL_SAFE_NO_PAD.encode(&public_key[33..65]),
        ),
        SigAlgorithm::Ed25519 => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(public_key)
        ),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes()))
}
