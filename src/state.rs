//! [`AppState`]: what the API handlers, the admin port and the status page share. Built
//! and wired by [`crate::app`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use hcgw_core::config::Config;
use hcgw_core::lookup::LookupService;
use hcgw_core::protect::quota::Quotas;
use hcgw_core::protect::redis_tier::RedisTier;
use hcgw_core::signing::AnswerKeys;

use crate::tls::TlsReloader;

/// State shared by all handlers.
pub struct AppState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The listener's TLS settings.
    pub tls: Arc<TlsReloader>,
    /// The lookup pipeline: validate, fetch, decide, audit.
    pub lookups: Arc<LookupService>,
    /// Per-caller quotas.
    pub quotas: Arc<Quotas>,
    /// The Redis tier, when configured.
    pub shared: Option<Arc<RedisTier>>,
    /// Whether the API listener accepts connections.
    pub listener_up: AtomicBool,
    /// The answer-signing keys (`[signing]`), when configured.
    pub signing: Option<Arc<AnswerKeys>>,
    /// Set when the drain began (`/readyz` answers 503 `draining`; both listeners serve on).
    pub draining: AtomicBool,
}
