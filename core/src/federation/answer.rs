//! A peer's answer, parsed strictly: only a complete, consistent status for the region
//! asked is accepted.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use hcgw_adapters::{Action, Color, HealthStatus, Holder, Level, Reason, RegionId, Source};
use serde::Deserialize;

use super::protocol::{PeerHints, bears_on_decision};
use crate::config::Role;
use crate::error_code::ErrorCode;
use crate::pipeline::Fetched;

/// A problem body from a peer (only what is needed; the detail is not relayed).
#[derive(Deserialize)]
pub(crate) struct PeerProblem {
    pub(crate) code: ErrorCode,
    #[serde(default)]
    pub(crate) retry_after_s: Option<u64>,
}

/// The parts of a peer's lookup answer this gateway uses. `status`, `cache` and
/// `federation` are required; other top-level members (`request_id`, `recognition`,
/// `served_by`, members a newer peer adds) are not used, but are still checked for
/// duplicate keys.
#[derive(Deserialize)]
struct PeerAnswer {
    status: PeerStatus,
    cache: PeerCache,
    federation: PeerHints,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerCache {
    #[allow(dead_code)]
    hit: bool,
    age_ms: u64,
}

/// A status as a peer shows it: the platform view (every field) or the checkpoint view
/// (`region`, `color`, `level`, `as_of`, `holder`). Nothing else is accepted; `null` is
/// never taken for an absent field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerStatus {
    region: RegionId,
    color: Color,
    level: Level,
    #[serde(default, deserialize_with = "present")]
    source: Option<PeerSource>,
    #[serde(default, deserialize_with = "present")]
    reasons: Option<Vec<Reason>>,
    #[serde(default, deserialize_with = "present")]
    proxy_applied: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    as_of: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "present")]
    observed_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "present")]
    quarantine_until: Option<NaiveDate>,
    #[serde(default, deserialize_with = "present")]
    holder: Option<PeerHolder>,
    #[serde(default, deserialize_with = "present")]
    actions: Option<Vec<Action>>,
}

/// `source` as a peer shows it (no other fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSource {
    code: String,
    #[serde(default, deserialize_with = "present")]
    label: Option<String>,
}

/// `holder` as a peer shows it (masked values, no other fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerHolder {
    #[serde(default, deserialize_with = "present")]
    name_masked: Option<String>,
    #[serde(default, deserialize_with = "present")]
    id_type: Option<hcgw_adapters::IdType>,
    #[serde(default, deserialize_with = "present")]
    id_masked: Option<String>,
}

/// An optional field that, when present, must hold a value: `null` is refused, not read
/// as absent (absence is the field's `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `source.code` of a status whose source the peer did not show (checkpoint view).
pub const WITHHELD: &str = "withheld-by-peer";

/// Parses a peer's 200 answer into a status. Anything that is not a complete, consistent
/// status for the region asked is refused (never a green the region did not send): a
/// duplicate key anywhere, an unknown or `null` field, no `federation` hints, no `cache`,
/// no `as_of`, a view that is neither the platform nor the checkpoint view (the platform
/// view without `actions`), colour and level that disagree, another region, or hints that
/// contradict the status's own actions.
pub fn parse_answer(bytes: &[u8], region: RegionId, peer: &str) -> Result<Fetched, String> {
    // One strict pass (hcgw_adapters::strict_json, as for the regions' answers): a duplicate
    // key anywhere, in members read or not, and an array where a struct belongs (serde
    // would read it positionally) are refused.
    let answer: PeerAnswer = hcgw_adapters::strict_json::from_slice(bytes)
        .map_err(|e| format!("an invalid answer ({})", e.classify_name()))?;
    let s = answer.status;
    let hints = answer.federation;
    if s.region != region {
        return Err(format!("a status of {} for {region}", s.region));
    }
    if s.color != s.level.color() {
        return Err("a status whose colour and level disagree".into());
    }
    let Some(as_of) = s.as_of else {
        return Err("a status without as_of".into());
    };
    if !hints.decision_actions.iter().all(|a| bears_on_decision(*a)) {
        return Err("hints naming an action that does not bear on the decision".into());
    }
    let full_view = s.source.is_some();
    let mut status = match s.source {
        // The platform view: everything the decision needs is in it.
        Some(source) => {
            let (Some(reasons), Some(actions), Some(observed_at)) =
                (s.reasons, s.actions, s.observed_at)
            else {
                return Err("a platform view without reasons, actions or observed_at".into());
            };
            let hinted = &hints.decision_actions;
            let shown = || actions.iter().filter(|a| bears_on_decision(**a));
            if !shown().all(|a| hinted.contains(a)) || !hinted.iter().all(|a| actions.contains(a)) {
                return Err("hints that contradict the status's actions".into());
            }
            let mut status = HealthStatus::new(
                region,
                s.level,
                Source {
                    code: source.code,
                    label: source.label,
                },
            );
            status.reasons = reasons;
            status.proxy_applied = s.proxy_applied;
            status.observed_at = observed_at;
            status.quarantine_until = s.quarantine_until;
            status.actions = actions;
            status
        }
        // The checkpoint view: exactly its five fields; the decision's actions come from
        // the hints.
        None => {
            if s.reasons.is_some()
                || s.actions.is_some()
                || s.observed_at.is_some()
                || s.proxy_applied.is_some()
                || s.quarantine_until.is_some()
            {
                return Err("a status that is neither the platform nor the checkpoint view".into());
            }
            HealthStatus::new(
                region,
                s.level,
                Source {
                    code: WITHHELD.into(),
                    label: None,
                },
            )
        }
    };
    status.as_of = Some(as_of);
    if let Some(h) = s.holder {
        status.holder = Holder {
            name_masked: h.name_masked,
            id_type: h.id_type,
            id_masked: h.id_masked,
        };
    }
    for a in hints.decision_actions {
        status.push_action(a);
    }
    status.provisional = hints.provisional;
    Ok(Fetched {
        status: status.into(),
        cache_hit: false,
        age: Duration::from_millis(answer.cache.age_ms),
        upstream_latency: None,
        via_peer: Some(peer.to_owned()),
        peer_view: Some(if full_view {
            Role::Platform
        } else {
            Role::Checkpoint
        }),
        peer_proof: None,
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected fields or values",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}
