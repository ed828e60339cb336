//! Serving helpers shared by the simulators and test fixtures: HTTPS (mTLS) serving of an
//! axum router, and the simulators' own rustls server settings (built here, not by the
//! gateway: this crate does not depend on it).

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves `app` over TLS with the given server settings (mTLS when the settings require
/// client certificates). Handshake failures end only that connection.
pub fn spawn_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
) -> tokio::task::JoinHandle<()> {
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = TowerToHyperService::new(app);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Server settings requiring a client certificate that chains to `client_ca_pem` (the
/// simulators of the mTLS regions, and test fixtures): the aws-lc-rs provider as the gateway
/// uses it, TLS 1.3 and 1.2, rustls' `WebPkiClientVerifier` over the CA's certificates, no
/// CRLs, ALPN h2 and http/1.1. Files are PEM.
pub fn mtls_server_config(
    cert_pem: &Path,
    key_pem: &Path,
    client_ca_pem: &Path,
) -> Result<rustls::ServerConfig, String> {
    let chain = load_certs(cert_pem)?;
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|e| format!("{}: no usable PEM private key ({e})", key_pem.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(client_ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a trust anchor ({e})", client_ca_pem.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Every certificate of a PEM file (at least one).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}
