//! TLS towards a peer gateway: trust only the peer's configured CA, check the expected
//! name (`server_name`, default the URL's host) whatever host the URL names, pin the leaf
//! certificate's SHA-256 when configured, and present this gateway's client certificate.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::config::PeerEntry;
use crate::pki::normalise_fingerprint;
use crate::pki::pem;

/// Verifies a peer's server certificate: webpki chain and name checks against the peer's
/// own CA and expected name, then the optional pin on the leaf.
#[derive(Debug)]
pub struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: ServerName<'static>,
    pin: Option<[u8; 32]>,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name checked is the configured one, not whatever the URL says (peers are
        // often addressed by IP or a load balancer name).
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            &self.expected,
            ocsp_response,
            now,
        )?;
        if let Some(pin) = &self.pin {
            let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
            if &got != pin {
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name a peer's certificate must carry: `server_name`, else the URL's host.
pub fn expected_name(peer: &PeerEntry) -> Result<ServerName<'static>, String> {
    let name = match &peer.server_name {
        Some(n) => n.clone(),
        None => reqwest::Url::parse(&peer.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .ok_or("the URL has no host")?,
    };
    ServerName::try_from(name.trim_matches(['[', ']']).to_owned())
        .map_err(|_| "the expected server name is not a DNS name or IP address".to_owned())
}

/// The verifier of one peer.
pub fn verifier(peer: &PeerEntry) -> Result<PeerVerifier, String> {
    let provider = crate::pki::provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem::load_certs(&peer.ca).map_err(|e| e.to_string())? {
        roots
            .add(cert)
            .map_err(|_| format!("{}: not a usable trust anchor", peer.ca.display()))?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let pin = match &peer.pinned_sha256 {
        None => None,
        Some(text) => {
            let hex = normalise_fingerprint(text).ok_or("pinned_sha256 is not a SHA-256")?;
            let mut pin = [0u8; 32];
            hex::decode_to_slice(hex, &mut pin).map_err(|e| e.to_string())?;
            Some(pin)
        }
    };
    Ok(PeerVerifier {
        inner,
        expected: expected_name(peer)?,
        pin,
    })
}

/// Client TLS settings for calling one peer (TLS 1.3 and 1.2, AEAD suites only).
pub fn client_config(peer: &PeerEntry) -> Result<rustls::ClientConfig, String> {
    let verifier = verifier(peer)?;
    let chain = pem::load_certs(&peer.client_cert).map_err(|e| e.to_string())?;
    let key = pem::load_key(&peer.client_key).map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(crate::pki::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate or key unusable: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
