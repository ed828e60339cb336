//! Getting a status from a region: routing (local adapter or peer), the region's
//! identity-type support checked before any call, and the deadline. The cache, rate limits
//! and circuit breakers wrap [`LookupService::fetch`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hcgw_adapters::{AdapterError, ErrorCode, HealthStatus, RegionId, Subject};

use crate::api::ApiError;
use crate::config::Config;
use crate::federation::{ForwardContext, Peers};
use crate::regions::{Registry, Served};

/// A status and where it came from.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The normalised status.
    pub status: HealthStatus,
    /// Whether it came from the cache.
    pub cache_hit: bool,
    /// How old the cached answer is (zero when fresh from the region).
    pub age: Duration,
    /// How long the region took, when it was asked.
    pub upstream_latency: Option<Duration>,
    /// The peer gateway that answered, when the region is served by a peer.
    pub via_peer: Option<String>,
    /// For answers of a peer: the view the peer returned (`checkpoint` when it withheld
    /// reasons and source). A checkpoint view must not be served to a platform caller.
    pub peer_view: Option<crate::config::Role>,
}

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
    stats: crate::stats::Stats,
}

impl LookupService {
    /// Builds the adapters of the configured regions.
    pub fn from_config(config: &Config) -> Self {
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
        LookupService {
            registry: Registry::from_config(config),
            settings,
            peers: Peers::from_config(config),
            stats: crate::stats::Stats::new(),
        }
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

    /// Asks the region, or the peers serving it (never invents a status: every failure is
    /// an error). `ctx` says on whose behalf and how far the request has travelled.
    pub async fn fetch(
        &self,
        region: RegionId,
        subject: &Subject,
        ctx: &ForwardContext,
    ) -> Result<Fetched, ApiError> {
        let result = self.fetch_region(region, subject, ctx).await;
        let outcome = crate::stats::Outcome::from_parts(
            result.as_ref().is_ok_and(|f| f.cache_hit),
            result.as_ref().err().map(|e| e.code),
        );
        self.stats.answer(region, outcome);
        result
    }

    async fn fetch_region(
        &self,
        region: RegionId,
        subject: &Subject,
        ctx: &ForwardContext,
    ) -> Result<Fetched, ApiError> {
        match self.registry.served(region) {
            Served::None => {
                return Err(ApiError::new(
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
            return Err(ApiError::new(
                ErrorCode::RegionUnavailable,
                format!("{region} has no working adapter here"),
            )
            .with_region(region)
            .with_retry_after(Duration::from_secs(30)));
        };
        if let Some(id_type) = subject.id_type()
            && !adapter.supports_id_type(id_type)
        {
            return Err(ApiError::from_adapter(
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
        // The adapter's client enforces the deadline; this outer bound also covers retries
        // and token refreshes inside the adapter.
        let result = match tokio::time::timeout(
            deadline + Duration::from_millis(200),
            adapter.lookup(subject),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(AdapterError::Timeout(deadline)),
        };
        let latency = started.elapsed();
        crate::metrics::upstream_call(region, latency, result.as_ref().err());
        self.stats.upstream_call(region, latency);
        match result {
            Ok(status) => Ok(Fetched {
                status,
                cache_hit: false,
                age: Duration::ZERO,
                upstream_latency: Some(latency),
                via_peer: None,
                peer_view: None,
            }),
            Err(e) => {
                if e.is_upstream_failure() {
                    tracing::warn!(region = region.as_str(), code = %e.code(), error = %e, "region call failed");
                }
                Err(ApiError::from_adapter(region, &e))
            }
        }
    }
}
