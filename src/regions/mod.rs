//! The regions this gateway serves: credentials from configuration, the adapters built
//! from them, and their state as `GET /v1/regions` reports it.

pub mod auth;

use std::collections::BTreeMap;
use std::sync::Arc;

use hcgw_adapters::{RegionAdapter, RegionId};
use serde::Serialize;

use crate::config::Config;

/// How a region is served by this gateway.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
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
#[derive(Clone, Debug, Serialize)]
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
        let adapters = BTreeMap::new();
        let mut notes = BTreeMap::new();
        for region in RegionId::ALL {
            let peers: Vec<String> = config
                .peers
                .iter()
                .filter(|p| p.regions.contains(&region))
                .map(|p| p.name.clone())
                .collect();
            let s = if config.region(region).is_some() {
                notes.insert(
                    region,
                    "no adapter for this region in this build".to_owned(),
                );
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
                }
            })
            .collect()
    }
}
