//! The gateway's answer-signing key (issue 15, docs/proofs.md): it signs every answer
//! (RFC 9421 HTTP Message Signatures, in `hcgw`) and every audit checkpoint.
//!
//! A key is ECDSA P-256 (`ecdsa-p256-sha256`, the fixed 64-byte `r‖s` signature RFC 9421
//! §3.3.4 asks for) or Ed25519 (`ed25519`), read from a PKCS#8 PEM file beside its X.509
//! certificate; the certificate is what `GET /v1/signing-keys` publishes and what a
//! verifier checks signatures with. The key id is the RFC 7638 JWK thumbprint (SHA-256,
//! base64url without padding) of the public key.

mod key;

pub use key::{SignatureError, SigningKey, VerifyingKey};

/// An RFC 9421 signature algorithm (the HTTP Signature Algorithms registry's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigAlgorithm {
    /// ECDSA on P-256 with SHA-256, `r‖s` (64 bytes).
    EcdsaP256Sha256,
    /// Ed25519 (64 bytes).
    Ed25519,
}

impl SigAlgorithm {
    /// The registry name: `ecdsa-p256-sha256` or `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            SigAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// The algorithm of a registry name.
    pub fn from_name(name: &str) -> Option<SigAlgorithm> {
        match name {
            "ecdsa-p256-sha256" => Some(SigAlgorithm::EcdsaP256Sha256),
            "ed25519" => Some(SigAlgorithm::Ed25519),
            _ => None,
        }
    }
}

impl std::fmt::Display for SigAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that signs bytes with the answer-signing key: the key itself, or a test double.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The key id (RFC 7638 thumbprint) a verifier looks the certificate up by.
    fn key_id(&self) -> &str;
    /// The algorithm.
    fn algorithm(&self) -> SigAlgorithm;
    /// The signature of `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

#[cfg(test)]
mod tests;
