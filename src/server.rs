//! The mTLS listener: accepts TCP connections, runs the TLS handshake with the settings
//! currently in force (client certificate required), identifies the caller from the
//! verified certificate and serves the API over that connection with the identity attached
//! to every request.
//!
//! Connections are bounded after the handshake too (`[listener]`, see
//! [`crate::connections`]): a cap overall (refused before the handshake) and per client
//! certificate (refused right after it); HTTP/1 request heads must arrive within the
//! header-read timeout; a connection with no request in flight for the idle timeout, or
//! older than the maximum age, is closed gracefully (HTTP/2 GOAWAY, HTTP/1 `Connection:
//! close`) and cut when requests still run after the close grace; HTTP/2 streams, header
//! lists and reset floods are limited. A TLS reload does not drop connections, except those
//! whose certificate the new settings no longer accept, which are cut at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::ListenerSection;
use crate::connections::{Admission, CloseReason, Connections, verify_chain};
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

/// The listener's time bounds on one connection (from `[listener]`).
#[derive(Clone, Copy, Debug)]
struct Bounds {
    handshake: Duration,
    idle: Duration,
    max_age: Duration,
    close_grace: Duration,
    drain: Duration,
}

/// What every connection task shares.
struct Shared {
    tls: Arc<TlsReloader>,
    clients: Arc<ClientDirectory>,
    connections: Arc<Connections>,
    app: Router,
    /// HTTP/1 only (ALPN `http/1.1`), HTTP/2 only (ALPN `h2`), and by detection (no ALPN).
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    detect: auto::Builder<TokioExecutor>,
    bounds: Bounds,
    /// Cancelled when the gateway stops: every connection closes gracefully.
    stopping: CancellationToken,
}

/// The HTTP settings of the listener: hyper's timer (without it the HTTP/1 header-read
/// timeout is off), and the HTTP/2 limits.
fn http_builder(l: &ListenerSection) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(l.header_read_timeout_ms));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(l.http2_max_concurrent_streams)
        .max_header_list_size(l.http2_max_header_list_bytes)
        .max_pending_accept_reset_streams(l.http2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(l.http2_max_local_error_reset_streams);
    b
}

/// Serves `app` on `listener` over mTLS, within the bounds of `settings`, until `shutdown`
/// resolves; then stops accepting and lets open connections finish (up to `drain`).
#[allow(clippy::too_many_arguments)]
pub async fn serve_mtls(
    listener: TcpListener,
    tls: Arc<TlsReloader>,
    clients: Arc<ClientDirectory>,
    connections: Arc<Connections>,
    app: Router,
    settings: &ListenerSection,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let builder = http_builder(settings);
    let shared = Arc::new(Shared {
        tls,
        clients,
        connections,
        app,
        http1: builder.clone().http1_only(),
        http2: builder.clone().http2_only(),
        detect: builder,
        bounds: Bounds {
            handshake: Duration::from_millis(settings.handshake_timeout_ms),
            idle: Duration::from_millis(settings.idle_timeout_ms),
            max_age: Duration::from_secs(settings.max_connection_age_s),
            close_grace: Duration::from_millis(settings.close_grace_ms),
            drain,
        },
        stopping: CancellationToken::new(),
    });
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
        let admission = match shared.connections.admit() {
            Ok(a) => a,
            Err(refusal) => {
                refusal.count();
                tracing::debug!(%remote, "connection refused: the listener holds max_connections");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(shared.clone(), tcp, remote, admission));
    }
    drop(listener);
    shared.stopping.cancel();
    // Each connection cuts itself `drain` after the stop; the margin lets them report it.
    let wait = drain + Duration::from_secs(1);
    if tokio::time::timeout(wait, shared.connections.drained())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period");
    }
}

/// Handshake, identification, admission per client, then HTTP until the connection ends.
async fn serve_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    remote: SocketAddr,
    _admission: Admission,
) {
    let reloads_at_accept = shared.tls.reloads();
    let acceptor = TlsAcceptor::from(shared.tls.current());
    let handshake = tokio::time::timeout(shared.bounds.handshake, acceptor.accept(tcp));
    let stream = tokio::select! {
        r = handshake => match r {
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
        },
        () = shared.stopping.cancelled() => return,
    };
    let (chain, alpn) = {
        let (_, conn) = stream.get_ref();
        let chain: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        (chain, conn.alpn_protocol().map(<[u8]>::to_vec))
    };
    // Unreachable without a certificate: the verifier requires one.
    let Some(leaf) = chain.first() else { return };
    let identity = shared.clients.identify(leaf.as_ref());
    let fingerprint = crate::identity::fingerprint(leaf.as_ref());
    let known = matches!(identity, ConnIdentity::Known(_));
    if !known {
        tracing::warn!(%remote, %fingerprint, "CA-valid client certificate matches no configured client");
    }
    let registration = match shared.connections.register(&fingerprint, known, chain) {
        Ok(r) => r,
        Err(refusal) => {
            refusal.count();
            tracing::debug!(%remote, %fingerprint, "connection refused: the certificate holds its connection cap");
            return;
        }
    };
    // Settings reloaded since this handshake began, maybe after the reload's re-check of
    // the open connections: check this one against the settings now in force.
    if shared.tls.reloads() != reloads_at_accept
        && let Err(reason) = verify_chain(&*shared.tls.current_verifier(), registration.chain())
    {
        reason.count();
        return;
    }

    let activity = Arc::new(Activity::new());
    let info = ConnInfo { identity, remote };
    let app = shared.app.clone();
    let requests = activity.clone();
    let service = tower::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let in_flight = requests.begin();
        let answer = app.clone().oneshot(req);
        async move {
            let response = answer.await;
            drop(in_flight);
            response
        }
    });
    let builder = match alpn.as_deref() {
        Some(b"h2") => &shared.http2,
        Some(b"http/1.1") => &shared.http1,
        _ => &shared.detect,
    };
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);

    let bounds = shared.bounds;
    let age_limit = Instant::now() + bounds.max_age;
    // Once a graceful close has begun: why, and when the connection is cut regardless.
    let mut closing: Option<(CloseReason, Instant)> = None;
    let reason = loop {
        let idle_check = activity.idle_check(bounds.idle);
        let cut_at = closing.map_or(age_limit, |(_, at)| at);
        tokio::select! {
            biased;
            reason = registration.signal().closed() => break reason,
            ended = conn.as_mut() => {
                break match (closing, ended) {
                    (Some((reason, _)), _) => reason,
                    (None, Ok(())) => CloseReason::Client,
                    (None, Err(e)) if is_header_timeout(&*e) => CloseReason::HeaderTimeout,
                    (None, Err(e)) => {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                        CloseReason::Error
                    }
                };
            }
            () = tokio::time::sleep_until(cut_at), if closing.is_some() => {
                break closing.map_or(CloseReason::Error, |(reason, _)| reason);
            }
            () = shared.stopping.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some((CloseReason::Shutdown, Instant::now() + bounds.drain));
            }
            () = tokio::time::sleep_until(age_limit), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some((CloseReason::MaxAge, Instant::now() + bounds.close_grace));
            }
            () = tokio::time::sleep_until(idle_check), if closing.is_none() => {
                if activity.idle_for(bounds.idle) {
                    conn.as_mut().graceful_shutdown();
                    closing = Some((CloseReason::Idle, Instant::now() + bounds.close_grace));
                }
            }
        }
    };
    reason.count();
    tracing::debug!(%remote, reason = reason.as_str(), "connection closed");
}

/// Whether hyper ended an HTTP/1 connection for its header-read timeout.
fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
}

/// A connection's requests in flight and when the last one ended (for the idle timeout).
struct Activity {
    in_flight: AtomicUsize,
    since: Instant,
    /// Milliseconds from `since` to the end of the last request (or the connection's start).
    last_ms: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            since: Instant::now(),
            last_ms: Default::default(),
        }
    }

    fn stamp(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard is dropped (cancellation included).
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn last(&self) -> Instant {
        self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// When to look again whether the connection has been idle for `idle`.
    fn idle_check(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            Instant::now() + idle
        } else {
            self.last() + idle
        }
    }

    /// Whether no request has been in flight for `idle`.
    fn idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.last().elapsed() >= idle
    }
}

/// One request in flight on a connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stamp();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
