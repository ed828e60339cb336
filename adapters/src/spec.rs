//! What the gateway needs to know about a region, in one value per region: the
//! [`RegionSpec`] each region module declares (`regions::<id>::SPEC`) and the list of them
//! ([`crate::regions::REGIONS`]). The model, QR detection, configuration and the gateway's
//! registry read from it; nothing else enumerates regions.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::adapter::RegionAdapter;
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::model::{HealthStatus, RegionId};
use crate::secret::{Secret, SecretRef};
use crate::upstream::{UpstreamConfig, UpstreamTls};

/// The characters a region's QR token may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// `0-9a-f`.
    LowerHex,
    /// `A-Za-z0-9_-`.
    Base64Url,
    /// `0-9A-Z`.
    UpperAlnum,
    /// `0-9`.
    Digits,
    /// `A-Za-z0-9`.
    Alnum,
}

impl Alphabet {
    /// Every character of the alphabet, in a fixed order (digits, upper, lower, `-`, `_`).
    pub fn chars(self) -> &'static [u8] {
        match self {
            Alphabet::LowerHex => b"0123456789abcdef",
            Alphabet::Base64Url => {
                b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
            }
            Alphabet::UpperAlnum => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            Alphabet::Digits => b"0123456789",
            Alphabet::Alnum => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        }
    }

    /// Whether `c` belongs to the alphabet.
    pub fn admits(self, c: u8) -> bool {
        match self {
            Alphabet::LowerHex => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            Alphabet::Base64Url => c.is_ascii_alphanumeric() || c == b'_' || c == b'-',
            Alphabet::UpperAlnum => c.is_ascii_digit() || c.is_ascii_uppercase(),
            Alphabet::Digits => c.is_ascii_digit(),
            Alphabet::Alnum => c.is_ascii_alphanumeric(),
        }
    }
}

/// A region's QR format, from its contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QrFormat {
    /// The literal text before the token (`SCM:`).
    pub prefix: &'static str,
    /// The shortest token accepted.
    pub min_len: usize,
    /// The longest token accepted.
    pub max_len: usize,
    /// The characters of the token.
    pub alphabet: Alphabet,
    /// The example QR text of the region's contract (the tests detect it).
    pub example: &'static str,
}

impl QrFormat {
    /// The token of `text` when it has this format.
    pub fn token_of<'a>(&self, text: &'a str) -> Option<&'a str> {
        let token = text.strip_prefix(self.prefix)?;
        ((self.min_len..=self.max_len).contains(&token.len())
            && token.bytes().all(|c| self.alphabet.admits(c)))
        .then_some(token)
    }
}

/// Why a `[regions.<id>.auth]` table was refused: where inside the table (`app_id`, `.` for
/// the table itself) and serde's message (the gateway redacts quoted values before showing
/// it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredError {
    /// The path inside the auth table (`app_secret`, `signing_keys[0].key_id`, `.`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A region's parsed credentials (its `[regions.<id>.auth]` table), relative paths already
/// resolved. The concrete type is the region module's `…Auth` struct.
pub trait Credentials: Any + Send + Sync {
    /// Makes relative paths relative to `base` (the configuration file's directory).
    fn resolve(&mut self, base: &Path);
    /// Every secret reference with its field name, for check-config.
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)>;
    /// Every file the credentials need, with its field path, for check-config.
    fn files(&self) -> Vec<(String, &Path)> {
        Vec::new()
    }
    /// Further problems of the parsed table: (field path, message).
    fn problems(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The adapters built so far, for regions whose adapter uses another region's (Xuzhou's
/// fallback to Sukang); see [`RegionSpec::depends_on`].
pub type BuiltAdapters = BTreeMap<RegionId, Arc<dyn RegionAdapter>>;

/// Parses a region's auth table into its credentials.
pub type ParseCredentials = fn(serde_json::Value, &Path) -> Result<Box<dyn Credentials>, CredError>;

/// Builds a region's adapter from its credentials and upstream settings. Errors are short
/// and free of secrets.
pub type BuildAdapter =
    fn(&dyn Credentials, UpstreamConfig, &BuiltAdapters) -> Result<Arc<dyn RegionAdapter>, String>;

/// Decodes a raw answer of the region into its status (`crate::decode`, for fuzzing).
pub type DecodeAnswer = fn(&RawAnswer, &DecodeContext<'_>) -> Result<HealthStatus, AdapterError>;

/// Everything about one region that is not the adapter's protocol code.
pub struct RegionSpec {
    /// The region.
    pub id: RegionId,
    /// The issuing jurisdiction (`jiangsu/suzhou`).
    pub jurisdiction: &'static str,
    /// The request rate the region publishes for the federation (requests per second).
    pub published_rate_per_s: u32,
    /// The deadline the federation agreed for one call to the region.
    pub agreed_deadline: Duration,
    /// The code system's own name, for people.
    pub display_name: &'static str,
    /// Its QR format.
    pub qr: QrFormat,
    /// Regions whose adapters, when configured, must be built before this one.
    pub depends_on: &'static [RegionId],
    /// Parses `[regions.<id>.auth]` (given as JSON) into the region's credentials type.
    pub parse_credentials: ParseCredentials,
    /// The adapter's constructor.
    pub build: BuildAdapter,
    /// The pure decoding of a raw answer (`crate::decode::decode_answer`).
    pub decode: DecodeAnswer,
}

impl std::fmt::Debug for RegionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionSpec")
            .field("id", &self.id)
            .field("jurisdiction", &self.jurisdiction)
            .field("qr", &self.qr)
            .finish_non_exhaustive()
    }
}

/// The [`ParseCredentials`] of a credentials type: strict deserialisation with the path of
/// the first problem, then relative paths resolved against `base`.
pub fn parse_credentials<T: DeserializeOwned + Credentials>(
    value: serde_json::Value,
    base: &Path,
) -> Result<Box<dyn Credentials>, CredError> {
    let mut creds: T = serde_path_to_error::deserialize(value).map_err(|e| CredError {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })?;
    creds.resolve(base);
    Ok(Box::new(creds))
}

/// The concrete credentials of a region (for its constructor).
pub fn downcast<T: Credentials>(creds: &dyn Credentials) -> Result<&T, String> {
    // `Credentials: Any`, so the trait object upcasts to `dyn Any` (Rust 1.86).
    (creds as &dyn Any)
        .downcast_ref::<T>()
        .ok_or_else(|| "credentials of another region".to_owned())
}

/// Makes a relative path relative to `base`.
pub fn resolve_path(p: &mut PathBuf, base: &Path) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

/// Reads a file the credentials name; the error names the file, not its content.
pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))
}

/// Loads a secret; the error names its origin, never the value.
pub fn load_secret(s: &SecretRef) -> Result<Secret, String> {
    s.load().map_err(|e| e.to_string())
}

/// The TLS settings of an mTLS region from its CA, client certificate and key files.
pub fn mtls(ca: &Path, cert: &Path, key: &Path) -> Result<UpstreamTls, String> {
    let key =
        String::from_utf8(read_file(key)?).map_err(|_| format!("{} is not PEM", key.display()))?;
    Ok(UpstreamTls {
        ca_pem: Some(read_file(ca)?),
        client_cert_pem: Some(read_file(cert)?),
        client_key_pem: Some(Secret::new(key)),
    })
}
