//! Reading certificates, keys and CRLs from files (PEM; CRLs also DER).

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// Why TLS material cannot be used. Names the file, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error kind.
        reason: String,
    },
    /// The file holds no usable item of the expected kind.
    #[error("{path} holds no valid {what}")]
    Empty {
        /// The file.
        path: String,
        /// What was expected.
        what: &'static str,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|e| PemError::Read {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })
}

/// All certificates of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: path.display().to_string(),
            what: "PEM certificate",
        });
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| PemError::Empty {
        path: path.display().to_string(),
        what: "PEM private key",
    })
}

/// The CRLs of a file: PEM (one or more) or a single DER CRL.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    let bytes = read(path)?;
    let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if !crls.is_empty() {
        return Ok(crls);
    }
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err(PemError::Empty {
        path: path.display().to_string(),
        what: "CRL (PEM or DER)",
    })
}
