//! What the configured CRLs say about themselves: who issued them and until when they are
//! current (`nextUpdate`). Revocation itself is checked by rustls in the handshake; this is
//! for `check-config`, `/readyz` and `hcgw_crl_next_update_timestamp_seconds`.

use std::path::{Path, PathBuf};

use x509_parser::prelude::{CertificateRevocationList, FromDer};

use super::dn::DistinguishedName;
use super::pem;

/// One CRL of a configured file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlInfo {
    /// The file it was read from.
    pub file: PathBuf,
    /// The file's name (the metric label).
    pub label: String,
    /// Its issuer (the CA whose certificates it covers).
    pub issuer: DistinguishedName,
    /// Its nextUpdate, Unix seconds (`None`: the CRL has none, which hcgw refuses).
    pub next_update: Option<i64>,
}

impl CrlInfo {
    /// Whether the CRL is past its nextUpdate at `now` (Unix seconds); a CRL without one
    /// counts as lapsed.
    pub fn lapsed(&self, now: i64) -> bool {
        self.next_update.is_none_or(|t| t <= now)
    }
}

/// Why a CRL file cannot be described.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// The file cannot be read or holds no CRL.
    #[error(transparent)]
    Pem(#[from] pem::PemError),
    /// A CRL does not parse, or its issuer name does not decode.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The label of a CRL file: its file name.
pub fn label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Describes every CRL of a file.
pub fn inspect(path: &Path) -> Result<Vec<CrlInfo>, CrlError> {
    let parse_err = |reason: String| CrlError::Parse {
        path: path.display().to_string(),
        reason,
    };
    let mut out = Vec::new();
    for der in pem::load_crls(path)? {
        let (_, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| parse_err(format!("not a valid CRL: {e}")))?;
        let issuer = DistinguishedName::of_name(crl.issuer())
            .map_err(|e| parse_err(format!("issuer: {e}")))?;
        out.push(CrlInfo {
            file: path.to_owned(),
            label: label(path),
            issuer,
            next_update: crl.next_update().map(|t| t.timestamp()),
        });
    }
    Ok(out)
}

/// Formats Unix seconds as RFC 3339 UTC (for messages).
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
