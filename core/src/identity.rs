//! Who is calling: the identity comes from the client certificate the gateway itself
//! verified in the TLS handshake, matched against the `[[clients]]` of the configuration by
//! SHA-256 fingerprint, by SHA-256 of the public key (SPKI pin) or by subject *and issuer*.
//! Never from headers.
//!
//! A subject-matched entry is bound to the CA that must have issued the certificate (its
//! `issuer`, or the only CA certificate of the bundles): the handshake proves the chain
//! reaches a trusted root, and [`Issuer::issued`] proves the leaf was signed by the
//! configured issuer's key — its issuer DN equals the issuer's subject, its authority key
//! identifier equals the issuer's subject key identifier, and its signature verifies with
//! the issuer's public key. The same subject from another operator's intermediate under the
//! same root is an unknown client.

pub mod acting;

use std::collections::HashMap;
use std::path::PathBuf;

pub use crate::pki::{
    DistinguishedName, DnError, Issuer, IssuerError, fingerprint, issuer_of, normalise_fingerprint,
    spki_fingerprint,
};

use crate::config::{ClientEntry, Config, Role};

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

/// Why the configured identities cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// An issuer file cannot be used.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A subject-matched entry without an issuer while several CA certificates are trusted.
    #[error(
        "clients entry `{0}` is matched by subject but names no `issuer`, and the CA bundles hold several CA certificates: name the intermediate that issues its certificate"
    )]
    AmbiguousIssuer(String),
    /// A pin or subject that does not parse (check-config reports it first).
    #[error("clients entry `{name}`: {reason}")]
    Entry {
        /// The entry.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// How an entry is matched, and the issuer it is bound to (always for subjects, when
/// configured for pins).
#[derive(Clone, Debug)]
struct Matcher {
    issuer: Option<Issuer>,
    caller: Caller,
}

impl Matcher {
    fn accepts(&self, leaf: &[u8]) -> bool {
        self.issuer.as_ref().is_none_or(|i| i.issued(leaf))
    }
}

/// The configured clients, indexed for the handshake.
#[derive(Clone, Debug, Default)]
pub struct ClientDirectory {
    by_fingerprint: HashMap<String, Matcher>,
    by_spki: HashMap<String, Matcher>,
    by_subject: HashMap<DistinguishedName, Vec<Matcher>>,
}

impl ClientDirectory {
    /// Indexes the validated `[[clients]]` entries of a configuration, loading the issuer
    /// each one is bound to.
    pub fn from_config(config: &Config) -> Result<Self, IdentityError> {
        Self::new(&config.clients, &config.tls.client_ca)
    }

    /// Indexes `[[clients]]` entries against the CA bundles `client_ca`.
    pub fn new(entries: &[ClientEntry], client_ca: &[PathBuf]) -> Result<Self, IdentityError> {
        let mut dir = ClientDirectory::default();
        for e in entries {
            let bad = |reason: &str| IdentityError::Entry {
                name: e.name.clone(),
                reason: reason.to_owned(),
            };
            let caller = Caller {
                name: e.name.clone(),
                role: e.role,
                jurisdiction: e.jurisdiction.clone(),
                fingerprint: String::new(),
                max_on_behalf_of: e.max_on_behalf_of,
            };
            let explicit = e
                .issuer
                .as_deref()
                .map(|p| Issuer::load(p, client_ca))
                .transpose()?;
            if let Some(fp) = &e.fingerprint_sha256 {
                let fp = normalise_fingerprint(fp).ok_or_else(|| bad("bad fingerprint_sha256"))?;
                dir.by_fingerprint.insert(
                    fp,
                    Matcher {
                        issuer: explicit,
                        caller,
                    },
                );
            } else if let Some(pin) = &e.spki_sha256 {
                let pin = normalise_fingerprint(pin).ok_or_else(|| bad("bad spki_sha256"))?;
                dir.by_spki.insert(
                    pin,
                    Matcher {
                        issuer: explicit,
                        caller,
                    },
                );
            } else if let Some(subject) = &e.subject {
                let dn = DistinguishedName::parse(subject).map_err(|e| bad(&e.to_string()))?;
                let issuer = match explicit {
                    Some(i) => i,
                    None => issuer_of(e.issuer.as_deref(), client_ca)
                        .ok_or_else(|| IdentityError::AmbiguousIssuer(e.name.clone()))??,
                };
                dir.by_subject.entry(dn).or_default().push(Matcher {
                    issuer: Some(issuer),
                    caller,
                });
            } else {
                return Err(bad("needs fingerprint_sha256, spki_sha256 or subject"));
            }
        }
        Ok(dir)
    }

    /// The identity of a verified leaf certificate: certificate fingerprint first, then
    /// SPKI pin, then subject with its issuer. A match whose issuer did not issue the
    /// certificate is no match.
    pub fn identify(&self, leaf_der: &[u8]) -> ConnIdentity {
        let fp = fingerprint(leaf_der);
        let found = self
            .by_fingerprint
            .get(&fp)
            .filter(|m| m.accepts(leaf_der))
            .or_else(|| {
                spki_fingerprint(leaf_der)
                    .and_then(|pin| self.by_spki.get(&pin))
                    .filter(|m| m.accepts(leaf_der))
            })
            .or_else(|| {
                let dn = DistinguishedName::of_certificate(leaf_der).ok()?;
                self.by_subject
                    .get(&dn)?
                    .iter()
                    .find(|m| m.accepts(leaf_der))
            })
            .map(|m| &m.caller);
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
    fn fingerprints_normalise() {
        let fp = "F0:E7:9A:DA:A0:F9:F1:49:A4:EC:FC:D3:A3:D0:BE:D9:2D:33:44:EA:DA:CB:AF:46:6F:01:B5:75:B5:FA:62:1A";
        assert_eq!(normalise_fingerprint(fp).unwrap().len(), 64);
        assert!(normalise_fingerprint("abc").is_none());
        assert!(normalise_fingerprint(&"g".repeat(64)).is_none());
    }
}
