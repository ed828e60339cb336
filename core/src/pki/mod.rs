//! Reading the PKI files the gateway is given: PEM certificates and keys ([`pem`]),
//! certificate revocation lists ([`crl`]), distinguished names ([`dn`]), the issuer a client
//! is bound to ([`issuer`]) and certificate fingerprints.

pub mod crl;
pub mod dn;
pub mod issuer;
pub mod pem;

pub use dn::{DistinguishedName, DnError};
pub use issuer::{Issuer, IssuerError, issuer_of};

use std::sync::Arc;

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Lowercase hex without colons, if `text` is a SHA-256 fingerprint.
pub fn normalise_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Lowercase hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    crate::hexfmt::lower(&Sha256::digest(der))
}

/// Lowercase hex SHA-256 of a DER certificate's SubjectPublicKeyInfo (an SPKI pin, stable
/// across re-issues with the same key).
pub fn spki_fingerprint(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(crate::hexfmt::lower(&Sha256::digest(cert.public_key().raw)))
}

/// The aws-lc-rs provider with the cipher suites rustls offers (all AEAD): the one crypto
/// provider of every TLS client and server of the gateway.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
