//! The gateway's answer-signing key (issue 15, docs/proofs.md): it signs every answer
//! (RFC 9421 HTTP Message Signatures, in `hcgw`) and every audit checkpoint.
//!
//! A key is ECDSA P-256 (`ecdsa-p256-sha256`, the fixed 64-byte `r‖s` signature RFC 9421
//! §3.3.4 asks for) or Ed25519 (`ed25519`), read from a PKCS#8 PEM file beside its X.509
//! certificate; the certificate is what `GET /v1/signing-keys` publishes and what a
//! verifier checks signatures with. The key id is the RFC 7638 JWK thumbprint (SHA-256,
//! base64url without padding) of the public key.

mod key;
pub mod message;

pub use key::{SignatureError, SigningKey, VerifyingKey};
pub use message::{
    AnswerSignatureError, VerifiedAnswer, content_digest, sign_answer, verify_answer,
};

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

/// The gateway's signing keys: the current one, and the retired ones whose certificates
/// stay published so that what they signed keeps verifying after a rotation.
#[derive(Debug)]
pub struct AnswerKeys {
    current: std::sync::Arc<SigningKey>,
    previous: Vec<VerifyingKey>,
}

impl AnswerKeys {
    /// Loads the current key and certificate, and the retired certificates (`[signing]`).
    pub fn from_files(
        key: &std::path::Path,
        cert: &std::path::Path,
        previous: &[std::path::PathBuf],
    ) -> Result<AnswerKeys, SignatureError> {
        let current = std::sync::Arc::new(SigningKey::from_files(key, cert)?);
        let previous = previous
            .iter()
            .map(|p| VerifyingKey::from_pem_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AnswerKeys { current, previous })
    }

    /// The key that signs now.
    pub fn current(&self) -> &std::sync::Arc<SigningKey> {
        &self.current
    }

    /// Every published key, the current one first.
    pub fn published(&self) -> impl Iterator<Item = (&VerifyingKey, bool)> {
        std::iter::once((self.current.verifying_key(), true))
            .chain(self.previous.iter().map(|k| (k, false)))
    }

    /// The published key with this id.
    pub fn find(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.published()
            .map(|(k, _)| k)
            .find(|k| k.key_id() == key_id)
    }
}
