//! The CA certificate a client entry is bound to ([`Issuer`]): read from its own file, or
//! the one intermediate (or the one CA) of the trusted bundles ([`issuer_of`]).

use std::path::{Path, PathBuf};

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use super::dn::DistinguishedName;

/// An issuer file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("issuer {path}: {reason}")]
pub struct IssuerError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
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
    pub fn load(path: &Path, client_ca: &[PathBuf]) -> Result<Self, IssuerError> {
        let err = |reason: String| IssuerError {
            path: path.display().to_string(),
            reason,
        };
        let certs = crate::pki::pem::load_certs(path).map_err(|e| err(e.to_string()))?;
        let [der] = <[_; 1]>::try_from(certs).map_err(|certs: Vec<_>| {
            err(format!(
                "holds {} certificates; it must hold exactly the one CA that issues the client's certificate",
                certs.len()
            ))
        })?;
        let issuer = Self::from_der(der).map_err(err)?;
        let in_bundle = client_ca.iter().any(|bundle| {
            crate::pki::pem::load_certs(bundle).is_ok_and(|certs| certs.contains(&issuer.der))
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

/// The issuer a subject-matched client entry is bound to: its own `issuer`; else, when the CA
/// bundles hold exactly one intermediate (a CA certificate not issued by itself), that
/// intermediate; else, when they hold exactly one CA certificate, that one. `None` when
/// that is ambiguous (several intermediates, or several roots and no intermediate).
pub fn issuer_of(
    issuer: Option<&Path>,
    client_ca: &[PathBuf],
) -> Option<Result<Issuer, IssuerError>> {
    if let Some(path) = issuer {
        return Some(Issuer::load(path, client_ca));
    }
    let mut all: Vec<CertificateDer<'static>> = Vec::new();
    for bundle in client_ca {
        match crate::pki::pem::load_certs(bundle) {
            Ok(certs) => all.extend(
                certs
                    .into_iter()
                    .filter(|c| !all.contains(c))
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                return Some(Err(IssuerError {
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
    Some(Issuer::from_der(only).map_err(|reason| IssuerError { path, reason }))
}
