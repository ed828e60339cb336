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

mod dn;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

pub use dn::{DistinguishedName, DnError};

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

/// Why the configured identities cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// An issuer file cannot be used.
    #[error("issuer {path}: {reason}")]
    Issuer {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
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

/// A CA certificate a client entry is bound to.
#[derive(Clone, Debug)]
pub struct Issuer {
    der: CertificateDer<'static>,
    subject: DistinguishedName,
    key_id: Option<Vec<u8>>,
    self_issued: bool,
}

impl Issuer {
    /// Reads an issuer certificate file (PEM, exactly one certificate, a CA) and checks
    /// that it is one of the certificates of the CA bundles `client_ca`.
    pub fn load(path: &Path, client_ca: &[PathBuf]) -> Result<Self, IdentityError> {
        let err = |reason: String| IdentityError::Issuer {
            path: path.display().to_string(),
            reason,
        };
        let certs = crate::tls::pem::load_certs(path).map_err(|e| err(e.to_string()))?;
        let [der] = <[_; 1]>::try_from(certs).map_err(|certs: Vec<_>| {
            err(format!(
                "holds {} certificates; it must hold exactly the one CA that issues the client's certificate",
                certs.len()
            ))
        })?;
        let issuer = Self::from_der(der).map_err(err)?;
        let in_bundle = client_ca.iter().any(|bundle| {
            crate::tls::pem::load_certs(bundle).is_ok_and(|certs| certs.contains(&issuer.der))
        });
        if !in_bundle {
            return Err(err(
                "is not one of the certificates of tls.client_ca: add it to a CA bundle (the gateway only binds clients to CAs it trusts)".into(),
            ));
        }
        Ok(issuer)
    }

    /// A CA certificate from DER.
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, String> {
        let (subject, key_id, self_issued) = {
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|_| "is not a parsable X.509 certificate".to_owned())?;
            if !cert.is_ca() {
                return Err("is not a CA certificate (basicConstraints CA:TRUE)".into());
            }
            let subject = DistinguishedName::of_name(cert.subject()).map_err(|e| e.to_string())?;
            let key_id = cert
                .iter_extensions()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                });
            let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
            (subject, key_id, self_issued)
        };
        Ok(Issuer {
            der,
            subject,
            key_id,
            self_issued,
        })
    }

    /// The issuer certificate (DER).
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// Whether the issuer is a root (its own issuer).
    pub fn is_root(&self) -> bool {
        self.self_issued
    }

    /// The issuer's subject.
    pub fn subject(&self) -> &DistinguishedName {
        &self.subject
    }

    /// Whether this CA issued `leaf`: issuer DN, authority key identifier (when both carry
    /// one) and signature all agree. Anything that does not parse is "no".
    pub fn issued(&self, leaf: &[u8]) -> bool {
        let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
            return false;
        };
        if DistinguishedName::of_name(cert.issuer()).ok().as_ref() != Some(&self.subject) {
            return false;
        }
        let aki = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    Some(a.key_identifier.as_ref().map(|k| k.0))
                }
                _ => None,
            });
        if let (Some(Some(aki)), Some(ski)) = (aki, &self.key_id)
            && aki != ski.as_slice()
        {
            return false;
        }
        let Ok(anchor) = webpki::anchor_from_trusted_cert(&self.der) else {
            return false;
        };
        let leaf = CertificateDer::from(leaf);
        let Ok(ee) = webpki::EndEntityCert::try_from(&leaf) else {
            return false;
        };
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .is_ok()
    }
}

/// The issuer a subject-matched entry is bound to: its own `issuer`; else, when the CA
/// bundles hold exactly one intermediate (a CA certificate not issued by itself), that
/// intermediate; else, when they hold exactly one CA certificate, that one. `None` when
/// that is ambiguous (several intermediates, or several roots and no intermediate).
pub fn issuer_of(
    entry: &ClientEntry,
    client_ca: &[PathBuf],
) -> Option<Result<Issuer, IdentityError>> {
    if let Some(path) = &entry.issuer {
        return Some(Issuer::load(path, client_ca));
    }
    let mut all: Vec<CertificateDer<'static>> = Vec::new();
    for bundle in client_ca {
        match crate::tls::pem::load_certs(bundle) {
            Ok(certs) => all.extend(
                certs
                    .into_iter()
                    .filter(|c| !all.contains(c))
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                return Some(Err(IdentityError::Issuer {
                    path: bundle.display().to_string(),
                    reason: e.to_string(),
                }));
            }
        }
    }
    let intermediates: Vec<_> = all
        .iter()
        .filter(|der| {
            X509Certificate::from_der(der)
                .is_ok_and(|(_, c)| c.is_ca() && c.subject().as_raw() != c.issuer().as_raw())
        })
        .cloned()
        .collect();
    let only = match (<[_; 1]>::try_from(intermediates), <[_; 1]>::try_from(all)) {
        (Ok([one]), _) | (Err(_), Ok([one])) => one,
        _ => return None,
    };
    let path = client_ca
        .first()
        .map_or_else(String::new, |p| p.display().to_string());
    Some(Issuer::from_der(only).map_err(|reason| IdentityError::Issuer { path, reason }))
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
                    None => issuer_of(e, client_ca)
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
