//! The regions this gateway serves: credentials from configuration, the adapters built
//! from them, and their state as `GET /v1/regions` reports it.

pub mod auth;

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use hcgw_adapters::regions::{
    guangdong, guangzhou, hangzhou, huzhou, suishen, sukang, suzhou, xuzhou,
};
use hcgw_adapters::upstream::{UpstreamConfig, UpstreamTls};
use hcgw_adapters::{RegionAdapter, RegionId};
use serde::Serialize;

use crate::config::{Config, RegionEntry};
use auth::RegionAuth;

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
        let mut adapters: BTreeMap<RegionId, Arc<dyn RegionAdapter>> = BTreeMap::new();
        let mut notes = BTreeMap::new();
        // Sukang first: Xuzhou may fall back to it.
        let mut order = RegionId::ALL.to_vec();
        order.sort_by_key(|r| *r != RegionId::Sukang);
        for region in order {
            let peers: Vec<String> = config
                .peers
                .iter()
                .filter(|p| p.regions.contains(&region))
                .map(|p| p.name.clone())
                .collect();
            let s = if let Some(entry) = config.region(region) {
                let sukang = adapters.get(&RegionId::Sukang).cloned();
                match build_adapter(region, entry, config, sukang) {
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

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))
}

fn mtls(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<UpstreamTls, String> {
    let key = String::from_utf8(read(key)?).map_err(|_| format!("{} is not PEM", key.display()))?;
    Ok(UpstreamTls {
        ca_pem: Some(read(ca)?),
        client_cert_pem: Some(read(cert)?),
        client_key_pem: Some(hcgw_adapters::Secret::new(key)),
    })
}

/// Builds the adapter of one configured region. Errors are short and free of secrets.
fn build_adapter(
    region: RegionId,
    entry: &RegionEntry,
    config: &Config,
    sukang: Option<Arc<dyn RegionAdapter>>,
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
    let mut upstream = upstream_config(region, entry);
    let secret = |s: &crate::config::SecretRef| s.load().map_err(|e| e.to_string());
    let built: Arc<dyn RegionAdapter> = match auth {
        RegionAuth::Suzhou(a) => Arc::new(
            suzhou::SuzhouAdapter::new(suzhou::SuzhouConfig {
                upstream,
                app_id: a.app_id,
                app_secret: secret(&a.app_secret)?,
            })
            .map_err(|e| e.to_string())?,
        ),
        RegionAuth::Huzhou(a) => Arc::new(
            huzhou::HuzhouAdapter::new(huzhou::HuzhouConfig {
                upstream,
                token: secret(&a.token)?,
            })
            .map_err(|e| e.to_string())?,
        ),
        RegionAuth::Xuzhou(a) => {
            let fallback = if a.fallback_to_sukang { sukang } else { None };
            Arc::new(
                xuzhou::XuzhouAdapter::new(
                    xuzhou::XuzhouConfig {
                        upstream,
                        api_key: secret(&a.api_key)?,
                        fallback_to_sukang: a.fallback_to_sukang,
                    },
                    fallback,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        RegionAuth::Sukang(a) => {
            upstream.tls = mtls(&a.ca, &a.client_cert, &a.client_key)?;
            Arc::new(
                sukang::SukangAdapter::new(sukang::SukangConfig { upstream })
                    .map_err(|e| e.to_string())?,
            )
        }
        RegionAuth::Guangdong(a) => {
            upstream.tls = mtls(&a.ca, &a.client_cert, &a.client_key)?;
            Arc::new(
                guangdong::GuangdongAdapter::new(guangdong::GuangdongConfig {
                    upstream,
                    paas_id: secret(&a.paas_id)?,
                })
                .map_err(|e| e.to_string())?,
            )
        }
        RegionAuth::Hangzhou(a) => Arc::new(
            hangzhou::HangzhouAdapter::new(hangzhou::HangzhouConfig {
                upstream,
                appcode: secret(&a.appcode)?,
            })
            .map_err(|e| e.to_string())?,
        ),
        RegionAuth::Suishen(a) => {
            let signing_keys = a
                .signing_keys
                .iter()
                .map(|k| Ok((k.key_id.clone(), read(&k.public_key)?)))
                .collect::<Result<Vec<_>, String>>()?;
            Arc::new(
                suishen::SuishenAdapter::new(suishen::SuishenConfig {
                    upstream,
                    client_id: a.client_id,
                    client_secret: secret(&a.client_secret)?,
                    signing_keys,
                })
                .map_err(|e| e.to_string())?,
            )
        }
        RegionAuth::Guangzhou(a) => Arc::new(
            guangzhou::GuangzhouAdapter::new(guangzhou::GuangzhouConfig {
                upstream,
                appid: a.appid,
                secret: secret(&a.secret)?,
            })
            .map_err(|e| e.to_string())?,
        ),
    };
    Ok(built)
}
