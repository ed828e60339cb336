//! Who is calling: the identity comes from the client certificate the gateway itself
//! verified in the TLS handshake, matched against the `[[clients]]` of the configuration by
//! SHA-256 fingerprint or by subject. Never from headers.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{ClientEntry, Role};

/// A known, authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Caller {
    /// The configured client name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its jurisdiction (the verifier in recognition decisions).
    pub jurisdiction: String,
    /// Lowercase hex SHA-256 of its certificate.
    pub fingerprint: String,
    /// For peers: the highest role they may act on behalf of.
    #[serde(skip)]
    pub max_on_behalf_of: Option<Role>,
}

/// The identity of a TLS connection: a configured client, or a certificate the CA bundle
/// accepts but no `[[clients]]` entry names (answered with 403 `forbidden`).
#[derive(Clone, Debug)]
pub enum ConnIdentity {
    /// A configured client (shared by every request of the connection).
    Known(std::sync::Arc<Caller>),
    /// A CA-valid certificate nobody configured.
    Unknown {
        /// Its fingerprint (for the log, to help operators add it).
        fingerprint: String,
    },
}

/// A distinguished name as a set of `(attribute, value)` pairs: attribute order does not
/// matter (`O=a, OU=b, CN=c` equals `CN=c,OU=b,O=a`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName(Vec<(String, String)>);

impl DistinguishedName {
    /// Parses `O=shanghai, OU=platform, CN=x` (RFC 4514 style; `\,` escapes a comma).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.push(chars.next().ok_or("a trailing backslash")?),
                ',' | '+' => parts.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        parts.push(current);
        let mut pairs = Vec::new();
        for part in parts {
            let (k, v) = part.split_once('=').ok_or_else(|| "must be attribute=value pairs separated by commas, e.g. `O=shanghai, OU=platform, CN=name`".to_owned())?;
            let (k, v) = (k.trim().to_ascii_uppercase(), v.trim().to_owned());
            if k.is_empty() || v.is_empty() {
                return Err("empty attribute or value".into());
            }
            pairs.push((canonical_attr(&k), v));
        }
        pairs.sort();
        Ok(DistinguishedName(pairs))
    }

    /// The subject of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut pairs = Vec::new();
        for rdn in cert.subject().iter() {
            for attr in rdn.iter() {
                let oid = attr.attr_type().to_id_string();
                let name = match oid.as_str() {
                    "2.5.4.3" => "CN",
                    "2.5.4.10" => "O",
                    "2.5.4.11" => "OU",
                    "2.5.4.6" => "C",
                    "2.5.4.8" => "ST",
                    "2.5.4.7" => "L",
                    "1.2.840.113549.1.9.1" => "EMAILADDRESS",
                    other => other,
                }
                .to_owned();
                let value = attr.as_str().ok()?.to_owned();
                pairs.push((name, value));
            }
        }
        pairs.sort();
        Some(DistinguishedName(pairs))
    }

    /// A canonical text form (sorted pairs), for comparisons and maps.
    pub fn canonical(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(',', "\\,")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn canonical_attr(k: &str) -> String {
    match k {
        "COMMONNAME" => "CN",
        "ORGANIZATIONNAME" => "O",
        "ORGANIZATIONALUNITNAME" => "OU",
        "E" | "EMAIL" => "EMAILADDRESS",
        other => other,
    }
    .to_owned()
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

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

/// The configured clients, indexed for the handshake.
#[derive(Clone, Debug, Default)]
pub struct ClientDirectory {
    by_fingerprint: HashMap<String, Caller>,
    by_subject: HashMap<String, Caller>,
}

impl ClientDirectory {
    /// Indexes validated `[[clients]]` entries.
    pub fn new(entries: &[ClientEntry]) -> Self {
        let mut dir = ClientDirectory::default();
        for e in entries {
            let caller = Caller {
                name: e.name.clone(),
                role: e.role,
                jurisdiction: e.jurisdiction.clone(),
                fingerprint: String::new(),
                max_on_behalf_of: e.max_on_behalf_of,
            };
            if let Some(fp) = e
                .fingerprint_sha256
                .as_deref()
                .and_then(normalise_fingerprint)
            {
                dir.by_fingerprint.insert(fp, caller);
            } else if let Some(dn) = e
                .subject
                .as_deref()
                .and_then(|s| DistinguishedName::parse(s).ok())
            {
                dir.by_subject.insert(dn.canonical(), caller);
            }
        }
        dir
    }

    /// The identity of a verified leaf certificate: fingerprint match first, then subject.
    pub fn identify(&self, leaf_der: &[u8]) -> ConnIdentity {
        let fp = fingerprint(leaf_der);
        let found = self.by_fingerprint.get(&fp).or_else(|| {
            DistinguishedName::of_certificate(leaf_der)
                .and_then(|dn| self.by_subject.get(&dn.canonical()))
        });
        match found {
            Some(c) => ConnIdentity::Known(std::sync::Arc::new(Caller {
                fingerprint: fp,
                ..c.clone()
            })),
            None => ConnIdentity::Unknown { fingerprint: fp },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_compare_regardless_of_order_spacing_and_case_of_attributes() {
        let a = DistinguishedName::parse("O=shanghai, OU=platform, CN=platform-shanghai").unwrap();
        let b = DistinguishedName::parse("cn=platform-shanghai,ou=platform,o=shanghai").unwrap();
        assert_eq!(a, b);
        let c = DistinguishedName::parse("O=guangdong/guangzhou,OU=checkpoint,CN=x").unwrap();
        assert_eq!(c.canonical(), "CN=x,O=guangdong/guangzhou,OU=checkpoint");
        assert_ne!(
            a,
            DistinguishedName::parse("O=shanghai, OU=checkpoint, CN=platform-shanghai").unwrap()
        );
    }

    #[test]
    fn bad_subjects_are_refused() {
        assert!(DistinguishedName::parse("platform-shanghai").is_err());
        assert!(DistinguishedName::parse("CN=").is_err());
        assert!(DistinguishedName::parse("CN=a,").is_err());
    }

    #[test]
    fn fingerprints_normalise() {
        let fp = "F0:E7:9A:DA:A0:F9:F1:49:A4:EC:FC:D3:A3:D0:BE:D9:2D:33:44:EA:DA:CB:AF:46:6F:01:B5:75:B5:FA:62:1A";
        assert_eq!(normalise_fingerprint(fp).unwrap().len(), 64);
        assert!(normalise_fingerprint("abc").is_none());
        assert!(normalise_fingerprint(&"g".repeat(64)).is_none());
    }
}
