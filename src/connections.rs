//! The API listener's open connections: how many there are (counted from accept, TLS
//! handshakes included), how many each client certificate holds (counted from the
//! handshake, by the SHA-256 fingerprint of the verified leaf — CA-valid certificates no
//! entry names included), and the chain each one presented. With it the listener refuses
//! connections beyond the configured caps, and after every TLS reload
//! ([`Connections::watch_reloads`]) each open connection's chain is verified again with the
//! new CA bundles and CRLs: connections whose certificate no longer verifies (revoked,
//! expired, CA removed) are closed at once.
//!
//! Metrics: `hcgw_connections_open`, `hcgw_connections_refused_total{reason}` and
//! `hcgw_connections_closed_total{reason}`, with the reasons of [`Refusal`] and
//! [`CloseReason`] (fixed sets).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, Error as TlsError};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::ListenerSection;
use crate::tls::TlsReloader;

/// The caps of [`Connections`] (from `[listener]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at most, handshakes included.
    pub max_total: usize,
    /// Connections one configured client certificate may hold.
    pub max_per_client: usize,
    /// Connections one CA-valid certificate no `[[clients]]` entry names may hold.
    pub max_per_unknown_client: usize,
}

impl From<&ListenerSection> for ConnectionLimits {
    fn from(l: &ListenerSection) -> Self {
        ConnectionLimits {
            max_total: l.max_connections,
            max_per_client: l.max_connections_per_client,
            max_per_unknown_client: l.max_connections_per_unknown_client,
        }
    }
}

/// Why a connection was refused: the `reason` of `hcgw_connections_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds `max_connections` already (refused before the handshake).
    MaxConnections,
    /// The certificate holds its per-client cap already (refused after the handshake).
    MaxConnectionsPerClient,
}

impl Refusal {
    /// Every refusal reason.
    pub const ALL: [Refusal; 2] = [Refusal::MaxConnections, Refusal::MaxConnectionsPerClient];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerClient => "max_connections_per_client",
        }
    }

    /// Counts one refusal.
    pub fn count(self) {
        metrics::counter!("hcgw_connections_refused_total", "reason" => self.as_str()).increment(1);
    }
}

/// Why an established connection ended: the `reason` of `hcgw_connections_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it.
    Client,
    /// An I/O or protocol error (HTTP/2 reset floods and stream-limit abuse included).
    Error,
    /// HTTP/1: no complete request head within `header_read_timeout_ms`.
    HeaderTimeout,
    /// No request in flight for `idle_timeout_ms`.
    Idle,
    /// Older than `max_connection_age_s`.
    MaxAge,
    /// The gateway is stopping.
    Shutdown,
    /// A TLS reload's CRLs revoke its client certificate.
    Revoked,
    /// Its client certificate expired (found at a TLS reload).
    Expired,
    /// Its client certificate no longer verifies with the reloaded settings for another
    /// reason (its CA removed from the bundle, its CRL lapsed).
    Untrusted,
}

impl CloseReason {
    /// Every close reason.
    pub const ALL: [CloseReason; 9] = [
        CloseReason::Client,
        CloseReason::Error,
        CloseReason::HeaderTimeout,
        CloseReason::Idle,
        CloseReason::MaxAge,
        CloseReason::Shutdown,
        CloseReason::Revoked,
        CloseReason::Expired,
        CloseReason::Untrusted,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Error => "error",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::Idle => "idle",
            CloseReason::MaxAge => "max_age",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Revoked => "revoked",
            CloseReason::Expired => "expired",
            CloseReason::Untrusted => "untrusted",
        }
    }

    /// Counts one close.
    pub fn count(self) {
        metrics::counter!("hcgw_connections_closed_total", "reason" => self.as_str()).increment(1);
    }

    /// The reason a verification error closes a connection for.
    fn of_verification(e: &TlsError) -> Self {
        match e {
            TlsError::InvalidCertificate(CertificateError::Revoked) => CloseReason::Revoked,
            TlsError::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => CloseReason::Expired,
            _ => CloseReason::Untrusted,
        }
    }
}

/// Registers the connection series at zero, so alerts on their increase work from the start.
pub fn init_series() {
    metrics::gauge!("hcgw_connections_open").increment(0.0);
    for r in Refusal::ALL {
        metrics::counter!("hcgw_connections_refused_total", "reason" => r.as_str()).increment(0);
    }
    for r in CloseReason::ALL {
        metrics::counter!("hcgw_connections_closed_total", "reason" => r.as_str()).increment(0);
    }
}

/// Verifies a client certificate chain (leaf first, then the intermediates the client
/// sent) with `verifier` now: what a new handshake would decide about it.
pub fn verify_chain(
    verifier: &dyn ClientCertVerifier,
    chain: &[CertificateDer<'static>],
) -> Result<(), CloseReason> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(CloseReason::Untrusted);
    };
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(drop)
        .map_err(|e| CloseReason::of_verification(&e))
}

/// Tells one connection to close now (hard: a revoked certificate gets no further answer).
#[derive(Debug, Default)]
pub struct CloseSignal {
    token: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl CloseSignal {
    /// Asks the connection to close for `reason` (the first reason given wins).
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Resolves with the reason once [`Self::close`] was called.
    pub async fn closed(&self) -> CloseReason {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or(CloseReason::Untrusted)
    }
}

struct Entry {
    chain: Arc<[CertificateDer<'static>]>,
    signal: Arc<CloseSignal>,
}

#[derive(Default)]
struct Registry {
    entries: HashMap<u64, Entry>,
    per_client: HashMap<Arc<str>, usize>,
}

/// The open connections of one API listener.
pub struct Connections {
    limits: ConnectionLimits,
    open: AtomicUsize,
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    drained: tokio::sync::Notify,
}

impl Connections {
    /// An empty registry with these caps.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Connections {
            limits,
            open: AtomicUsize::new(0),
            registry: Mutex::new(Registry::default()),
            next_id: AtomicU64::new(1),
            drained: tokio::sync::Notify::new(),
        })
    }

    /// The caps in force.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a just-accepted TCP connection, or refuses it when the listener
    /// holds `max_connections` already. The place is given back when the [`Admission`] is
    /// dropped.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, Refusal> {
        let max = self.limits.max_total;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| Refusal::MaxConnections)?;
        metrics::gauge!("hcgw_connections_open").increment(1.0);
        Ok(Admission {
            connections: self.clone(),
        })
    }

    /// Registers an established connection of the certificate `chain` (leaf first) with
    /// fingerprint `fingerprint`, or refuses it when that certificate holds its cap already
    /// (`known`: whether a `[[clients]]` entry names it). Unregistered on drop.
    pub fn register(
        self: &Arc<Self>,
        fingerprint: &str,
        known: bool,
        chain: Vec<CertificateDer<'static>>,
    ) -> Result<Registration, Refusal> {
        let cap = if known {
            self.limits.max_per_client
        } else {
            self.limits.max_per_unknown_client
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let signal = Arc::new(CloseSignal::default());
        let chain: Arc<[CertificateDer<'static>]> = chain.into();
        let mut registry = self.registry();
        let (key, held) = match registry.per_client.get_key_value(fingerprint) {
            Some((key, held)) => (key.clone(), *held),
            None => (Arc::from(fingerprint), 0),
        };
        if held >= cap {
            return Err(Refusal::MaxConnectionsPerClient);
        }
        *registry.per_client.entry(key.clone()).or_insert(0) += 1;
        registry.entries.insert(
            id,
            Entry {
                chain: chain.clone(),
                signal: signal.clone(),
            },
        );
        Ok(Registration {
            connections: Arc::downgrade(self),
            id,
            fingerprint: key,
            chain,
            signal,
        })
    }

    /// TCP connections held (handshakes included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Established connections of the certificate with this fingerprint.
    pub fn held_by(&self, fingerprint: &str) -> usize {
        self.registry()
            .per_client
            .get(fingerprint)
            .copied()
            .unwrap_or(0)
    }

    /// Verifies every registered connection's chain with `verifier` and closes those that
    /// fail. Returns how many were told to close. Blocking (signature checks): run it off
    /// the async workers.
    pub fn reverify(&self, verifier: &dyn ClientCertVerifier) -> usize {
        let open: Vec<(Arc<[CertificateDer<'static>]>, Arc<CloseSignal>)> = self
            .registry()
            .entries
            .values()
            .map(|e| (e.chain.clone(), e.signal.clone()))
            .collect();
        // Many connections share a certificate: verify each distinct chain once.
        let mut verdicts: HashMap<[u8; 32], Result<(), CloseReason>> = HashMap::new();
        let mut closed = 0;
        for (chain, signal) in open {
            let verdict = *verdicts
                .entry(chain_digest(&chain))
                .or_insert_with(|| verify_chain(verifier, &chain));
            if let Err(reason) = verdict {
                signal.close(reason);
                closed += 1;
            }
        }
        closed
    }

    /// Resolves once no connection is held.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// After every successful TLS reload of `tls`, re-verifies every open connection with
    /// the new verifier ([`Self::reverify`]). Ends when either side is dropped.
    pub fn watch_reloads(self: &Arc<Self>, tls: &Arc<TlsReloader>) -> tokio::task::JoinHandle<()> {
        let mut reloads = tls.subscribe_reloads();
        let me = Arc::downgrade(self);
        let tls = Arc::downgrade(tls);
        tokio::spawn(async move {
            while reloads.changed().await.is_ok() {
                let (Some(me), Some(tls)) = (me.upgrade(), tls.upgrade()) else {
                    return;
                };
                let verifier = tls.current_verifier();
                let closed = tokio::task::spawn_blocking(move || me.reverify(&*verifier))
                    .await
                    .unwrap_or(0);
                if closed > 0 {
                    tracing::warn!(
                        closed,
                        "TLS settings reloaded: closed the open connections whose client certificate no longer verifies"
                    );
                }
            }
        })
    }
}

fn chain_digest(chain: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in chain {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c.as_ref());
    }
    h.finalize().into()
}

/// A TCP connection's place in the listener's overall count; given back on drop.
pub struct Admission {
    connections: Arc<Connections>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        metrics::gauge!("hcgw_connections_open").decrement(1.0);
        if self.connections.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.connections.drained.notify_waiters();
        }
    }
}

/// An established connection in the registry: counted against its certificate's cap and
/// re-verified at TLS reloads. Removed on drop.
pub struct Registration {
    connections: Weak<Connections>,
    id: u64,
    fingerprint: Arc<str>,
    chain: Arc<[CertificateDer<'static>]>,
    signal: Arc<CloseSignal>,
}

impl Registration {
    /// The chain the client presented (leaf first).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// This connection's close signal.
    pub fn signal(&self) -> &CloseSignal {
        &self.signal
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(connections) = self.connections.upgrade() else {
            return;
        };
        let mut registry = connections.registry();
        registry.entries.remove(&self.id);
        if let Some(held) = registry.per_client.get_mut(&self.fingerprint) {
            *held -= 1;
            if *held == 0 {
                registry.per_client.remove(&self.fingerprint);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize, unknown: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_total: total,
            max_per_client: per_client,
            max_per_unknown_client: unknown,
        }
    }

    #[test]
    fn the_overall_cap_counts_admissions_and_gives_places_back() {
        let c = Connections::new(limits(2, 2, 2));
        let a = c.admit().unwrap();
        let b = c.admit().unwrap();
        assert_eq!(c.admit().err(), Some(Refusal::MaxConnections));
        assert_eq!(c.open(), 2);
        drop(a);
        let _c3 = c.admit().unwrap();
        drop(b);
        assert_eq!(c.open(), 1);
    }

    #[test]
    fn the_per_client_cap_is_per_fingerprint_and_lower_for_unknown_certificates() {
        let c = Connections::new(limits(100, 2, 1));
        let a1 = c.register("a", true, vec![]).unwrap();
        let _a2 = c.register("a", true, vec![]).unwrap();
        assert_eq!(
            c.register("a", true, vec![]).err(),
            Some(Refusal::MaxConnectionsPerClient)
        );
        let _b = c.register("b", true, vec![]).unwrap();
        let _u = c.register("u", false, vec![]).unwrap();
        assert_eq!(
            c.register("u", false, vec![]).err(),
            Some(Refusal::MaxConnectionsPerClient)
        );
        assert_eq!(c.held_by("a"), 2);
        drop(a1);
        assert_eq!(c.held_by("a"), 1);
        let _a3 = c.register("a", true, vec![]).unwrap();
        assert_eq!(c.held_by("a"), 2);
    }

    #[test]
    fn a_zero_cap_refuses_unknown_certificates_outright() {
        let c = Connections::new(limits(100, 2, 0));
        assert_eq!(
            c.register("u", false, vec![]).err(),
            Some(Refusal::MaxConnectionsPerClient)
        );
        assert_eq!(c.held_by("u"), 0);
    }

    #[test]
    fn verification_errors_map_to_bounded_reasons() {
        use CertificateError as C;
        let of = |e| CloseReason::of_verification(&TlsError::InvalidCertificate(e));
        assert_eq!(of(C::Revoked), CloseReason::Revoked);
        assert_eq!(of(C::Expired), CloseReason::Expired);
        assert_eq!(of(C::UnknownIssuer), CloseReason::Untrusted);
        assert_eq!(
            of(C::ExpiredRevocationList),
            CloseReason::Untrusted,
            "a lapsed CRL is not a revocation, but the certificate is no longer trusted"
        );
    }
}
