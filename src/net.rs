//! Small serving helpers shared by the simulators and test fixtures.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
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

/// Server settings requiring a client certificate that chains to `client_ca_pem` (used by
/// the simulators of the mTLS regions): the gateway's own listener settings
/// ([`crate::tls::server_config`]) without CRLs. Files are PEM.
pub fn mtls_server_config(
    cert_pem: &std::path::Path,
    key_pem: &std::path::Path,
    client_ca_pem: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    let files = crate::tls::TlsFiles {
        cert: cert_pem.to_owned(),
        key: key_pem.to_owned(),
        client_ca: vec![client_ca_pem.to_owned()],
        crls: vec![],
        revocation: crate::config::Revocation::Disabled,
    };
    crate::tls::server_config(&files).map_err(|e| e.to_string())
}
