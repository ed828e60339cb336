//! The mTLS listener's TLS settings: server certificate, client CA bundle and CRLs, TLS 1.3
//! and 1.2 (AEAD suites only: rustls offers no others), client certificates required.
//! [`TlsReloader`] watches the files and swaps in new settings for *new* handshakes, so
//! open connections are never dropped by a reload; [`TlsReloader::current_verifier`] lets
//! the listener re-check an open connection's certificate against the settings in force.

pub use hcgw_core::pki::{crl, pem, provider};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{Revocation, TlsSection};
pub use crl::CrlInfo;

/// Why TLS settings cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be used.
    #[error(transparent)]
    Pem(#[from] pem::PemError),
    /// A CA certificate is not a usable trust anchor.
    #[error("CA bundle {0}: a certificate is not a usable trust anchor")]
    TrustAnchor(String),
    /// rustls refused the combination (key does not match certificate, bad CRL…).
    #[error("TLS settings refused: {0}")]
    Rustls(String),
    /// A CRL cannot be described (no nextUpdate, bad issuer name).
    #[error(transparent)]
    Crl(#[from] crl::CrlError),
    /// Revocation is enforced but no CRL is configured.
    #[error(
        "no CRLs configured while revocation is enforced: list the CAs' CRLs in tls.crls, or set tls.revocation = \"disabled\""
    )]
    NoCrls,
}

/// The files the TLS settings are made of.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Server chain.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Client CA bundles.
    pub client_ca: Vec<PathBuf>,
    /// CRLs.
    pub crls: Vec<PathBuf>,
    /// Whether the CRLs are enforced (with `Disabled`, `crls` is ignored).
    pub revocation: Revocation,
}

impl From<&TlsSection> for TlsFiles {
    fn from(s: &TlsSection) -> Self {
        TlsFiles {
            cert: s.cert.clone(),
            key: s.key.clone(),
            client_ca: s.client_ca.clone(),
            crls: s.crls.clone(),
            revocation: s.revocation,
        }
    }
}

impl TlsFiles {
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert, &self.key]
            .into_iter()
            .chain(&self.client_ca)
            .chain(&self.crls)
    }

    /// A digest of every file's contents (missing files count as empty): changes when any
    /// file is replaced, whatever its timestamps.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in self.all() {
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(std::fs::read(p).unwrap_or_default());
        }
        h.finalize().into()
    }
}

/// Builds the listener's server settings from the files.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    server_settings(files).map(|s| Arc::unwrap_or_clone(s.config))
}

/// Builds the listener's server settings, the client-certificate verifier inside them and
/// the description of the CRLs they enforce.
fn server_settings(files: &TlsFiles) -> Result<InForce, TlsError> {
    let chain = pem::load_certs(&files.cert)?;
    let key = pem::load_key(&files.key)?;
    let mut roots = rustls::RootCertStore::empty();
    for bundle in &files.client_ca {
        for cert in pem::load_certs(bundle)? {
            roots
                .add(cert)
                .map_err(|_| TlsError::TrustAnchor(bundle.display().to_string()))?;
        }
    }
    let mut crls = Vec::new();
    let mut described = Vec::new();
    if files.revocation == Revocation::Enforced {
        if files.crls.is_empty() {
            return Err(TlsError::NoCrls);
        }
        for f in &files.crls {
            crls.extend(pem::load_crls(f)?);
            described.extend(crl::inspect(f)?);
        }
    }
    let provider = provider();
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !crls.is_empty() {
        // Every certificate of the chain (leaf and intermediates) must be covered by a CRL
        // of its issuer (unknown status refuses), and a CRL past its nextUpdate refuses.
        verifier = verifier.with_crls(crls).enforce_revocation_expiration();
    }
    let verifier = verifier
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(InForce {
        config: Arc::new(config),
        verifier,
        crls: described,
    })
}

/// Days until the first certificate of a PEM file expires (negative when expired).
pub fn days_to_expiry(path: &std::path::Path) -> Option<i64> {
    let certs = pem::load_certs(path).ok()?;
    let (_, cert) = X509Certificate::from_der(certs.first()?).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    Some((not_after - chrono::Utc::now().timestamp()).div_euclid(86_400))
}

/// The settings of one load of the files: what the next handshake uses.
struct InForce {
    config: Arc<rustls::ServerConfig>,
    verifier: Arc<dyn ClientCertVerifier>,
    crls: Vec<CrlInfo>,
}

/// The current TLS settings, replaced when the files change.
pub struct TlsReloader {
    files: TlsFiles,
    current: ArcSwap<InForce>,
    digest: std::sync::Mutex<[u8; 32]>,
    reloads: std::sync::atomic::AtomicU64,
    /// Tells subscribers (the listener's connection registry) the count of successful
    /// reloads each time new settings come into force.
    reloaded: tokio::sync::watch::Sender<u64>,
}

impl TlsReloader {
    /// Loads the settings once (failing start-up when they are unusable).
    pub fn new(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let digest = files.digest();
        let settings = server_settings(&files)?;
        if files.revocation == Revocation::Disabled {
            tracing::warn!(
                "REVOCATION CHECKING IS DISABLED (tls.revocation = \"disabled\"): a revoked client certificate is accepted until it expires"
            );
        }
        publish_crl_metrics(&settings.crls);
        Ok(Arc::new(TlsReloader {
            files,
            current: ArcSwap::from_pointee(settings),
            digest: std::sync::Mutex::new(digest),
            reloads: Default::default(),
            reloaded: tokio::sync::watch::Sender::new(0),
        }))
    }

    /// The settings for the next handshake.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.load().config.clone()
    }

    /// The client-certificate verifier in force (the one inside [`Self::current`]): CA
    /// bundles and CRLs of the latest successful load. After a reload, an open connection's
    /// stored chain can be re-checked with it (`verify_client_cert(leaf, intermediates,
    /// now)`); an error means the connection's certificate is no longer acceptable
    /// (revoked, CRL lapsed, CA removed) and the connection should be closed.
    pub fn current_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.load().verifier.clone()
    }

    /// The CRLs in force (empty when revocation is disabled).
    pub fn crls(&self) -> Vec<CrlInfo> {
        self.current.load().crls.clone()
    }

    /// Why the CRLs in force make the gateway not ready: one line per CRL past its
    /// nextUpdate at `now` (Unix seconds). Empty when all are current.
    pub fn lapsed_crls(&self, now: i64) -> Vec<String> {
        self.current
            .load()
            .crls
            .iter()
            .filter(|c| c.lapsed(now))
            .map(|c| match c.next_update {
                Some(t) => format!(
                    "CRL {} (issuer {}) passed its nextUpdate at {}: handshakes of certificates under that CA are refused until a fresh CRL is published",
                    c.label,
                    c.issuer,
                    crl::rfc3339(t)
                ),
                None => format!("CRL {} (issuer {}) has no nextUpdate", c.label, c.issuer),
            })
            .collect()
    }

    /// Successful reloads so far.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes (to the count of successful reloads) each time new settings come into force,
    /// after [`Self::current_verifier`] returns the new verifier.
    pub fn subscribe_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloaded.subscribe()
    }

    /// The files behind the settings.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reloads if any file changed. A change that does not make usable settings (say, a
    /// certificate written before its key) keeps the previous settings and is retried at
    /// the next check. Returns whether new settings are in force.
    pub fn check(&self) -> bool {
        let digest = self.files.digest();
        let mut last = self.digest.lock().unwrap_or_else(|e| e.into_inner());
        if *last == digest {
            return false;
        }
        match server_settings(&self.files) {
            Ok(settings) => {
                publish_crl_metrics(&settings.crls);
                self.current.store(Arc::new(settings));
                *last = digest;
                let reloads = 1 + self
                    .reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.reloaded.send_replace(reloads);
                tracing::info!(
                    "TLS certificate, CA bundle or CRL changed: new handshakes use the new files"
                );
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS files changed but cannot be used; keeping the previous settings");
                false
            }
        }
    }

    /// Checks the files every `interval` (and re-publishes the CRL metric) until the task
    /// is dropped.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || {
                    me.check();
                    publish_crl_metrics(&me.current.load().crls);
                })
                .await;
            }
        })
    }
}

/// Sets `hcgw_crl_next_update_timestamp_seconds{crl}` for the CRLs in force (the earliest
/// nextUpdate of each file; 0 for a CRL without one).
fn publish_crl_metrics(crls: &[CrlInfo]) {
    let mut by_file: std::collections::BTreeMap<&str, i64> = Default::default();
    for c in crls {
        let t = c.next_update.unwrap_or(0);
        by_file
            .entry(&c.label)
            .and_modify(|e| *e = (*e).min(t))
            .or_insert(t);
    }
    for (label, t) in by_file {
        metrics::gauge!("hcgw_crl_next_update_timestamp_seconds", "crl" => label.to_owned())
            .set(t as f64);
    }
}
