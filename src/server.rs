//! The mTLS listener: accepts TCP connections, runs the TLS handshake with the settings
//! currently in force (client certificate required), identifies the caller from the
//! verified certificate and serves the API over that connection with the identity attached
//! to every request. Reloading TLS settings affects only new handshakes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::identity::{ClientDirectory, ConnIdentity};
use crate::tls::TlsReloader;

/// What a connection knows about its peer, attached to each of its requests.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The TLS-verified identity.
    pub identity: ConnIdentity,
    /// The remote address.
    pub remote: SocketAddr,
}

/// Serves `app` on `listener` over mTLS until `shutdown` resolves; then stops accepting and
/// lets open connections finish (up to `drain`).
pub async fn serve_mtls(
    listener: TcpListener,
    tls: Arc<TlsReloader>,
    clients: Arc<ClientDirectory>,
    app: Router,
    handshake_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.current());
        let clients = clients.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics::counter!("hcgw_tls_handshake_failures_total").increment(1);
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics::counter!("hcgw_tls_handshake_failures_total").increment(1);
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let identity = {
                let (_, conn) = stream.get_ref();
                match conn.peer_certificates().and_then(|c| c.first()) {
                    Some(leaf) => clients.identify(leaf.as_ref()),
                    // Unreachable: the verifier requires a certificate.
                    None => return,
                }
            };
            if let ConnIdentity::Unknown { fingerprint } = &identity {
                tracing::warn!(%remote, %fingerprint, "CA-valid client certificate matches no configured client");
            }
            let info = ConnInfo { identity, remote };
            let service = tower::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(info.clone());
                app.clone().oneshot(req)
            });
            let conn = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing");
    }
}
