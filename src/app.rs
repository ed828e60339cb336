//! Starting and stopping a gateway: the mTLS API listener, the admin listener and the TLS
//! file watcher, from one loaded [`Config`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::audit::audited::Auditor;
use crate::audit::{AuditError, AuditLog};
use crate::config::Config;
use crate::connections::{ConnectionLimits, Connections};
use crate::identity::ClientDirectory;
use crate::lookup::LookupService;
use crate::protect::quota::Quotas;
use crate::state::AppState;
use crate::subject::SubjectHasher;
use crate::tls::{TlsError, TlsFiles, TlsReloader};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS settings unusable.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// A client entry's issuer cannot be used.
    #[error("clients: {0}")]
    Identity(#[from] crate::identity::IdentityError),
    /// The audit trail cannot be opened.
    #[error("audit trail: {0}")]
    Audit(#[from] AuditError),
    /// A secret could not be read.
    #[error("{0}")]
    Secret(String),
    /// The answer-signing key cannot be used.
    #[error("signing: {0}")]
    Signing(#[from] hcgw_core::signing::SignatureError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Gateway {
    /// Where the mTLS API listens.
    pub api_addr: SocketAddr,
    /// Where the admin port listens.
    pub admin_addr: SocketAddr,
    /// RedisTier state.
    pub state: Arc<AppState>,
    /// The API listener's open connections.
    pub connections: Arc<Connections>,
    stop: watch::Sender<bool>,
    api_task: tokio::task::JoinHandle<()>,
    admin_task: tokio::task::JoinHandle<()>,
    _watch_task: tokio::task::JoinHandle<()>,
    _cert_task: tokio::task::JoinHandle<()>,
    _reverify_task: tokio::task::JoinHandle<()>,
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Starts a gateway from a validated configuration.
pub async fn start(config: Config) -> Result<Gateway, StartError> {
    hcgw_adapters::upstream::install_crypto_provider();
    // One recorder per process, shared by every gateway it starts.
    crate::metrics::install();
    crate::metrics::init_series(&config);
    crate::connections::init_series();
    let config = Arc::new(config);
    let tls = TlsReloader::new(TlsFiles::from(&config.tls))?;
    let clients = Arc::new(ClientDirectory::from_config(&config)?);
    let key = config
        .cache
        .subject_key
        .load()
        .map_err(|e| StartError::Secret(format!("cache.subject_key: {e}")))?;
    let hasher = SubjectHasher::new(key);
    let shared = if config.redis.enabled {
        Some(
            crate::protect::redis_tier::RedisTier::start(&config.redis)
                .map_err(|e| StartError::Secret(e.to_string()))?,
        )
    } else {
        None
    };
    let signing = match &config.signing {
        Some(s) => Some(Arc::new(hcgw_core::signing::AnswerKeys::from_files(
            &s.key,
            &s.cert,
            &s.previous,
        )?)),
        None => None,
    };
    // With a [signing] key the audit log also keeps its Merkle tree and signs tree heads.
    let signer: Option<Arc<dyn hcgw_core::signing::Signer>> = signing
        .as_ref()
        .map(|k| k.current().clone() as Arc<dyn hcgw_core::signing::Signer>);
    let auditor = Auditor::new(
        AuditLog::open_signed(&config.audit, signer)?,
        config.audit.strict,
    );
    let mut lookups = LookupService::from_config(&config, hasher, auditor);
    lookups.set_shared(shared.clone());
    let state = Arc::new(AppState {
        config: config.clone(),
        tls: tls.clone(),
        lookups: Arc::new(lookups),
        quotas: Arc::new(Quotas::from_config(&config, shared.clone())),
        shared,
        signing,
        listener_up: AtomicBool::new(false),
        draining: AtomicBool::new(false),
    });

    let api_listener = bind(config.listener.addr).await?;
    let admin_listener = bind(config.admin.addr).await?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.listener.addr,
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.admin.addr,
            source,
        })?;
    let (stop, stopped) = watch::channel(false);

    let watch_task = tls.spawn_watch(Duration::from_millis(config.tls.reload_interval_ms));
    let connections = Connections::new(ConnectionLimits::from(&config.listener));
    let reverify_task = connections.watch_reloads(&tls);
    let app = crate::api::router(state.clone());
    let mut rx = stopped.clone();
    let listener_settings = config.listener.clone();
    let grace = Duration::from_secs(config.shutdown.grace_s);
    let api_connections = connections.clone();
    let api_task = tokio::spawn(async move {
        crate::server::serve_mtls(
            api_listener,
            tls,
            clients,
            api_connections,
            app,
            &listener_settings,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
            // In-flight requests get `grace_s` once the listener stopped accepting.
            grace,
        )
        .await
    });
    let cert_task = spawn_certificate_expiry(config.clone(), stopped.clone());
    let mut rx = stopped;
    let admin = crate::admin::router(state.clone());
    let admin_task = tokio::spawn(async move {
        let _ = axum::serve(admin_listener, admin)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    state.listener_up.store(true, Ordering::Relaxed);
    tracing::info!(%api_addr, %admin_addr, name = %config.gateway.name, "gateway listening (mTLS API, plain-HTTP admin)");
    Ok(Gateway {
        api_addr,
        admin_addr,
        state,
        connections,
        stop,
        api_task,
        admin_task,
        _watch_task: watch_task,
        _cert_task: cert_task,
        _reverify_task: reverify_task,
    })
}

/// Refreshes `hcgw_certificate_expiry_timestamp_seconds` now and every [`crate::metrics::CERT_REFRESH`]
/// until the gateway stops.
fn spawn_certificate_expiry(
    config: Arc<Config>,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::metrics::CERT_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let config = config.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::metrics::refresh_certificate_expiry(&config)
                    })
                    .await;
                }
                changed = stopped.changed() => {
                    if changed.is_err() || *stopped.borrow() {
                        return;
                    }
                }
            }
        }
    })
}

impl Gateway {
    /// Begins the drain: `/readyz` answers 503 `draining` from now on, while both listeners
    /// keep serving (so load balancers stop sending before the port closes). The caller
    /// waits `shutdown.drain_s`, then calls [`Gateway::shutdown`].
    pub fn begin_drain(&self) {
        self.state.draining.store(true, Ordering::Relaxed);
        tracing::info!(
            drain_s = self.state.config.shutdown.drain_s,
            grace_s = self.state.config.shutdown.grace_s,
            "draining: /readyz answers 503 while the listeners keep serving"
        );
    }

    /// Stops accepting, lets open connections finish their requests (up to
    /// `shutdown.grace_s`), flushes the audit trail, and returns when all that is done.
    pub async fn shutdown(self) {
        self.state.listener_up.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let _ = self.api_task.await;
        let _ = self.admin_task.await;
        self.state.lookups.auditor().log().clone().shutdown().await;
    }
}
