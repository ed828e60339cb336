//! The regions this gateway serves: credentials from configuration, the adapters built
//! from them, and their state as `GET /v1/regions` reports it.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use hcgw_adapters::spec::BuiltAdapters;
use hcgw_adapters::upstream::UpstreamConfig;
use hcgw_adapters::{RegionAdapter, RegionId};
use serde::Serialize;

use crate::config::credentials::RegionAuth;
use crate::config::{Config, RegionEntry};

/// How a region is served by this gateway.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Served {
    /// By a local adapter.
    Local,
    /// Forwarded to peers, in fail-over order.
    Peer {
        /// Peer names.
        peers: Vec<String>,
    },
    /// Not served here nor by any peer.
    None,
}

/// A region's state.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionState {
    /// Answering.
    Up,
    /// Answering with errors or slowly.
    Degraded,
    /// Not answering, or no adapter available.
    Down,
}

/// One region as `GET /v1/regions` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RegionView {
    /// Region id.
    pub id: RegionId,
    /// Code system name.
    pub name: &'static str,
    /// Issuing jurisdiction.
    pub jurisdiction: &'static str,
    /// How it is served.
    pub served: Served,
    /// Its state.
    pub state: RegionState,
    /// Why, when not up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Circuit state, limits and recent latency and error figures (local regions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<crate::protect::region::ProtectionView>,
    /// Peer-served regions: the circuit towards the best of their peers (`closed` when one
    /// is closed, `half_open` when one is probing, else `open`); absent when no peer has a
    /// client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<crate::protect::breaker::CircuitState>,
}

/// The adapters of the locally served regions.
pub struct Registry {
    served: BTreeMap<RegionId, Served>,
    adapters: BTreeMap<RegionId, Arc<dyn RegionAdapter>>,
    notes: BTreeMap<RegionId, String>,
}

impl Registry {
    /// Builds the registry from configuration. Regions whose adapter cannot be built are
    /// reported `down` with the reason (never served with made-up statuses).
    pub fn from_config(config: &Config) -> Self {
        let mut served = BTreeMap::new();
        let mut adapters: BuiltAdapters = BTreeMap::new();
        let mut notes = BTreeMap::new();
        for region in build_order() {
            let peers: Vec<String> = config
                .peers
                .iter()
                .filter(|p| p.regions.contains(&region))
                .map(|p| p.name.clone())
                .collect();
            let s = if let Some(entry) = config.region(region) {
                match build_adapter(region, entry, config, &adapters) {
                    Ok(a) => {
                        adapters.insert(region, a);
                    }
                    Err(e) => {
                        tracing::error!(region = region.as_str(), error = %e, "region adapter unavailable");
                        notes.insert(region, e);
                    }
                }
                Served::Local
            } else if !peers.is_empty() {
                Served::Peer { peers }
            } else {
                Served::None
            };
            served.insert(region, s);
        }
        Registry {
            served,
            adapters,
            notes,
        }
    }

    /// How a region is served.
    pub fn served(&self, region: RegionId) -> Served {
        self.served.get(&region).cloned().unwrap_or(Served::None)
    }

    /// The adapter of a locally served region.
    pub fn adapter(&self, region: RegionId) -> Option<&Arc<dyn RegionAdapter>> {
        self.adapters.get(&region)
    }

    /// Every region's view.
    pub fn views(&self) -> Vec<RegionView> {
        RegionId::ALL
            .into_iter()
            .map(|id| {
                let served = self.served.get(&id).cloned().unwrap_or(Served::None);
                let state = if self.adapters.contains_key(&id) {
                    RegionState::Up
                } else {
                    RegionState::Down
                };
                RegionView {
                    id,
                    name: id.display_name(),
                    jurisdiction: id.jurisdiction(),
                    served,
                    state,
                    note: self.notes.get(&id).cloned(),
                    protection: None,
                    circuit: None,
                }
            })
            .collect()
    }
}

/// The upstream settings of a region entry.
pub fn upstream_config(region: RegionId, entry: &RegionEntry) -> UpstreamConfig {
    let deadline = entry
        .deadline_ms
        .map(Duration::from_millis)
        .unwrap_or_else(|| region.agreed_deadline());
    let mut up = UpstreamConfig::new(entry.base_url.clone(), deadline);
    up.max_body_bytes = entry.max_body_bytes;
    up.max_idle_connections = entry.max_concurrency;
    up
}

/// Every region, each after the regions its adapter depends on (`RegionSpec::depends_on`),
/// otherwise in the order of `RegionId::ALL`.
fn build_order() -> Vec<RegionId> {
    fn depth(region: RegionId, seen: usize) -> usize {
        // A dependency cycle cannot be built; the spec tests refuse self-dependencies and
        // the depth is bounded so that a longer cycle cannot recurse forever.
        if seen > RegionId::ALL.len() {
            return seen;
        }
        region
            .spec()
            .depends_on
            .iter()
            .map(|d| 1 + depth(*d, seen + 1))
            .max()
            .unwrap_or(0)
    }
    let mut order = RegionId::ALL.to_vec();
    order.sort_by_key(|r| depth(*r, 0));
    order
}

/// Builds the adapter of one configured region. Errors are short and free of secrets.
fn build_adapter(
    region: RegionId,
    entry: &RegionEntry,
    config: &Config,
    built: &BuiltAdapters,
) -> Result<Arc<dyn RegionAdapter>, String> {
    let mut problems = Vec::new();
    let auth = RegionAuth::parse(region, &entry.auth, config.base_dir(), &mut problems)
        .ok_or_else(|| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    (region.spec().build)(auth.credentials(), upstream_config(region, entry), built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_built_first() {
        let order = build_order();
        assert_eq!(order.len(), RegionId::ALL.len());
        for (i, r) in order.iter().enumerate() {
            for d in r.spec().depends_on {
                let j = order.iter().position(|x| x == d).unwrap();
                assert!(j < i, "{d} must be built before {r}");
            }
        }
    }
}
