//! Getting a status from a region: routing (local adapter or peer), the region's
//! identity-type support checked before any call, and the deadline. The cache, rate limits
//! and circuit breakers wrap [`LookupService::fetch`].

mod answer;

pub use crate::pipeline::{Ask, Layer, Next, Route};
pub use crate::pipeline::{DEFAULT_RETRY_AFTER, Fetched, LookupError};
pub use answer::{BATCH_CONCURRENCY, Decided, Endpoint, Query, Validated};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hcgw_adapters::{AdapterError, RegionId, Subject};

use crate::audit::audited::Auditor;
use crate::config::Config;
use crate::error_code::ErrorCode;
use crate::federation::{ForwardContext, Peers};
use crate::protect::cache::StatusCache;
use crate::protect::region::RegionGuard;
use crate::protect::{Clock, SystemClock};
use crate::recognition::{Agreement, Policy};
use crate::registry::{RegionState, RegionView, Registry, Served};
use crate::subject::SubjectHasher;

/// Region settings the lookups need.
#[derive(Clone, Copy, Debug)]
struct RegionSettings {
    deadline: Duration,
    max_status_age: Duration,
}

/// Looks subjects up in the regions served here.
pub struct LookupService {
    registry: Registry,
    settings: BTreeMap<RegionId, RegionSettings>,
    peers: Peers,
    hasher: SubjectHasher,
    cache: StatusCache,
    guards: BTreeMap<RegionId, RegionGuard>,
    stats: crate::stats::Stats,
    policy: Policy,
    auditor: Auditor,
}

impl LookupService {
    /// Builds the adapters of the configured regions, with their cache and protection and
    /// the recognition agreements; `hasher` makes the cache keys and audit hashes, every
    /// answer is recorded by `auditor`.
    pub fn from_config(config: &Config, hasher: SubjectHasher, auditor: Auditor) -> Self {
        Self::with_clock(config, hasher, auditor, std::sync::Arc::new(SystemClock))
    }

    /// As [`LookupService::from_config`], with the clock of the cache and breakers.
    pub fn with_clock(
        config: &Config,
        hasher: SubjectHasher,
        auditor: Auditor,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Self {
        let settings = config
            .regions
            .iter()
            .map(|(id, e)| {
                let deadline = e
                    .deadline_ms
                    .map(Duration::from_millis)
                    .unwrap_or_else(|| id.agreed_deadline());
                (
                    *id,
                    RegionSettings {
                        deadline,
                        max_status_age: Duration::from_secs(e.max_status_age_s),
                    },
                )
            })
            .collect();
        let guards = config
            .regions
            .iter()
            .filter(|(_, e)| e.enabled)
            .map(|(id, e)| (*id, RegionGuard::new(*id, e, config.breaker, clock.clone())))
            .collect();
        LookupService {
            registry: Registry::from_config(config),
            settings,
            peers: Peers::from_config(config),
            hasher,
            cache: StatusCache::new(
                config.cache.max_entries,
                config.regions.iter().map(|(id, e)| (*id, e.ttl)).collect(),
                clock,
            ),
            guards,
            stats: crate::stats::Stats::new(),
            policy: Policy::new(
                config
                    .recognition
                    .agreements
                    .iter()
                    .map(Agreement::from)
                    .collect(),
            ),
            auditor,
        }
    }

    /// Every region's view, with circuit state and recent figures of local regions and the
    /// state of the peers serving the others. The state follows the breaker (open: down,
    /// half-open: degraded); recent errors below the breaker's thresholds show in the figures
    /// only.
    pub fn views(&self) -> Vec<RegionView> {
        let mut views = self.registry.views();
        for v in &mut views {
            let Some(g) = self.guards.get(&v.id) else {
                continue;
            };
            let p = g.view();
            if v.state == RegionState::Up {
                use crate::protect::region::CircuitState;
                v.state = match p.circuit {
                    CircuitState::Open => RegionState::Down,
                    CircuitState::HalfOpen => RegionState::Degraded,
                    CircuitState::Closed => RegionState::Up,
                };
                if v.state != RegionState::Up && v.note.is_none() {
                    v.note = Some(match p.circuit {
                        CircuitState::Open => "circuit open after upstream failures".into(),
                        CircuitState::HalfOpen | CircuitState::Closed => {
                            "probing after an outage".into()
                        }
                    });
                }
            }
            v.protection = Some(p);
        }
        self.peers.annotate(&mut views);
        views
    }

    /// Puts the shared Redis tier under the cache.
    pub fn set_shared(
        &mut self,
        shared: Option<std::sync::Arc<crate::protect::redis_tier::RedisTier>>,
    ) {
        for g in self.guards.values_mut() {
            g.set_shared(shared.clone());
        }
        self.cache.set_l2(shared);
    }

    /// Entries in the status cache (approximate).
    pub fn cache_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// The recognition policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The audit trail and its policy.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    /// The keyed hashes of subjects.
    pub fn hasher(&self) -> &SubjectHasher {
        &self.hasher
    }

    /// The regions and their adapters.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Recent per-region figures (for the status page).
    pub fn stats(&self) -> &crate::stats::Stats {
        &self.stats
    }

    /// The age beyond which a status of `region` is stale (default 24 h).
    pub fn max_status_age(&self, region: RegionId) -> Duration {
        self.settings
            .get(&region)
            .map(|s| s.max_status_age)
            .unwrap_or(Duration::from_secs(24 * 3600))
    }

    /// Whether `region` is served here or by a peer.
    pub fn knows(&self, region: RegionId) -> bool {
        self.registry.served(region) != Served::None
    }

    /// The peer gateways.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The answer for `subject` in `region`: from the cache when fresh, else asked (once
    /// for all concurrent identical lookups) and cached when cacheable. Never invents a
    /// status: every failure is an error. `ctx` says on whose behalf and how far the request
    /// has travelled; for regions served by peers the acting role is part of the cache key,
    /// because a peer answers with that role's view.
    pub async fn fetch(
        &self,
        region: RegionId,
        subject: &Subject,
        ctx: &ForwardContext,
    ) -> Result<Fetched, LookupError> {
        let mut key = self.hasher.cache_key(region, subject);
        if matches!(self.registry.served(region), Served::Peer { .. }) {
            key.push(':');
            key.push_str(ctx.role.as_str());
        }
        let ask = Ask {
            region,
            subject,
            ctx,
            key: &key,
        };
        Next::new(&self.layers(), self).run(&ask).await
    }

    /// The layers every fetch passes, outermost first, in front of the routing to the
    /// region's adapter or its peers — the one place they are stacked.
    fn layers(&self) -> [&dyn Layer; 2] {
        [&self.stats, &self.cache]
    }

    /// Asks the region (or its peer), without any layer.
    async fn fetch_uncached(
        &self,
        region: RegionId,
        subject: &Subject,
        ctx: &ForwardContext,
    ) -> Result<Fetched, LookupError> {
        match self.registry.served(region) {
            Served::None => {
                return Err(LookupError::new(
                    ErrorCode::UnknownRegion,
                    format!("{region} is not served by this gateway nor by its peers"),
                )
                .with_region(region));
            }
            Served::Peer { peers } => {
                return self.peers.forward(region, subject, ctx, &peers).await;
            }
            Served::Local => {}
        }
        let Some(adapter) = self.registry.adapter(region) else {
            return Err(LookupError::new(
                ErrorCode::RegionUnavailable,
                format!("{region} has no working adapter here"),
            )
            .with_region(region)
            .with_retry_after(Duration::from_secs(30)));
        };
        if let Some(id_type) = subject.id_type()
            && !adapter.supports_id_type(id_type)
        {
            return Err(LookupError::from_adapter(
                region,
                &AdapterError::UnsupportedIdType(id_type),
            ));
        }
        let deadline = self
            .settings
            .get(&region)
            .map(|s| s.deadline)
            .unwrap_or_else(|| region.agreed_deadline());
        let started = Instant::now();
        // The adapter's client enforces the deadline; this outer bound (from the first call:
        // the wait for the region's limits is bounded by its queue_ms) also covers the
        // retry and token refreshes inside the adapter.
        let budget = deadline + Duration::from_millis(200);
        let guard = self.guards.get(&region);
        let mut retried = false;
        let mut first_call: Option<Instant> = None;
        let result = loop {
            let permit = match guard {
                Some(g) => Some(g.admit_within(ctx.patience).await?),
                None => None,
            };
            let attempt = Instant::now();
            // The deadline runs from the first call, not from the (bounded) queueing.
            let first = *first_call.get_or_insert(attempt);
            let left = budget.saturating_sub(first.elapsed());
            let r = match tokio::time::timeout(left, adapter.status(subject)).await {
                Ok(r) => r,
                Err(_) => Err(AdapterError::Timeout(deadline)),
            };
            let took = attempt.elapsed();
            crate::telemetry::upstream_call(
                region,
                took,
                r.as_ref().err().map(|e| ErrorCode::from(e.code())),
            );
            if let Some(p) = permit {
                p.finish(took, r.as_ref().map(|_| ()));
            }
            // One retry, only where the contract allows it, jittered, inside the deadline.
            if let Err(e) = &r
                && e.is_retryable()
                && !retried
            {
                let backoff = Duration::from_millis(rand::random_range(50..=150));
                if first_call.map_or(Duration::ZERO, |f| f.elapsed())
                    + backoff
                    + Duration::from_millis(100)
                    < deadline
                {
                    retried = true;
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
            break r;
        };
        let latency = started.elapsed();
        self.stats.upstream_call(region, latency);
        match result {
            Ok(status) => Ok(Fetched {
                status: status.into(),
                cache_hit: false,
                age: Duration::ZERO,
                upstream_latency: Some(latency),
                via_peer: None,
                peer_view: None,
                peer_proof: None,
            }),
            Err(e) => {
                if e.is_upstream_failure() {
                    tracing::warn!(region = region.as_str(), code = %e.code(), error = %e, "region call failed");
                }
                Err(LookupError::from_adapter(region, &e))
            }
        }
    }
}

/// The end of the layer stack: routing to the local adapter or the peers.
#[async_trait::async_trait]
impl Route for LookupService {
    async fn route(&self, ask: &Ask<'_>) -> crate::pipeline::FetchResult {
        self.fetch_uncached(ask.region, ask.subject, ask.ctx).await
    }
}
