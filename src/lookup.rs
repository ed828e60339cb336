//! Getting a status from a region: routing (local adapter or peer), the region's
//! identity-type support checked before any call, and the deadline. The cache, rate limits
//! and circuit breakers wrap [`LookupService::fetch`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hcgw_adapters::{AdapterError, ErrorCode, HealthStatus, RegionId, Subject};

use crate::api::ApiError;
use crate::config::Config;
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

    /// Asks the region (never invents a status: every failure is an error).
    pub async fn fetch(&self, region: RegionId, subject: &Subject) -> Result<Fetched, ApiError> {
        let result = self.fetch_region(region, subject).await;
        let outcome = crate::stats::Outcome::from_parts(
            result.as_ref().is_ok_and(|f| f.cache_hit),
            result.as_ref().err().map(|e| e.code),
        );
        self.stats.answer(region, outcome);
        result
    }

    async fn fetch_region(&self, region: RegionId, subject: &Subject) -> Result<Fetched, ApiError> {
        match self.registry.served(region) {
            Served::None => {
                return Err(ApiError::new(
                    ErrorCode::UnknownRegion,
                    format!("{region} is not served by this gateway nor by its peers"),
                )
                .with_region(region));
            }
            Served::Peer { .. } => {
                return Err(ApiError::new(
                    ErrorCode::RegionUnavailable,
                    format!("{region} is served by a peer gateway, and forwarding is not enabled"),
                )
                .with_region(region)
                .with_retry_after(Duration::from_secs(30)));
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
