//! The federation header protocol: the headers a forwarded lookup carries
//! (`X-Hcgw-Hops`, `X-Hcgw-Via`, `X-Hcgw-On-Behalf-Of`), their parsing and the entry
//! checks of a forwarded request, the hints a gateway adds to its answer for a peer, and
//! the jurisdiction grants of `acts_for`.

use hcgw_adapters::{Action, HealthStatus};
use serde::{Deserialize, Serialize};

pub use crate::config::valid_gateway_name;
use crate::error_code::ErrorCode;
pub use crate::pipeline::ForwardContext;
use crate::pipeline::LookupError;

/// Hops the request has taken between gateways.
pub const HOPS: &str = "x-hcgw-hops";
/// The gateways the request has passed, comma-separated, oldest first.
pub const VIA: &str = "x-hcgw-via";
/// The original caller's `<role>:<jurisdiction>`.
pub const ON_BEHALF_OF: &str = "x-hcgw-on-behalf-of";
/// Most names in `X-Hcgw-Via`.
pub const MAX_VIA: usize = 16;
/// Largest answer accepted from a peer (bytes).
pub const MAX_PEER_BODY: usize = 256 * 1024;

/// Parses `X-Hcgw-Hops` (a peer that sends none has made one hop).
pub fn parse_hops(value: Option<&str>) -> Result<u32, LookupError> {
    match value {
        None => Ok(1),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| LookupError::invalid("X-Hcgw-Hops must be a number from 1 to 64")),
    }
}

/// Parses `X-Hcgw-Via`.
pub fn parse_via(value: Option<&str>) -> Result<Vec<String>, LookupError> {
    let Some(v) = value else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if names.len() > MAX_VIA || !names.iter().all(|n| valid_gateway_name(n)) {
        return Err(LookupError::invalid(
            "X-Hcgw-Via must list at most 16 gateway names separated by commas",
        ));
    }
    Ok(names)
}

/// The entry check of a forwarded request: too many hops, or this gateway already passed.
pub fn check_entry(
    own_name: &str,
    max_hops: u32,
    hops: u32,
    via: &[String],
) -> Result<(), LookupError> {
    if via.iter().any(|v| v == own_name) {
        return Err(LookupError::new(
            ErrorCode::FederationLoop,
            "the request came back to a gateway it already passed",
        ));
    }
    if hops > max_hops {
        return Err(LookupError::new(
            ErrorCode::FederationLoop,
            format!("the request took more than {max_hops} hops between gateways"),
        ));
    }
    Ok(())
}

/// What a gateway adds to its answer for a peer caller, so the forwarding gateway can make
/// a correct recognition decision from a view that omits fields (docs/federation.md).
/// Both fields are required in a peer's answer: an answer without them is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerHints {
    /// The status's actions that bear on the decision (`register_on_arrival`,
    /// `update_identity`): a green with one of these is a manual check.
    pub decision_actions: Vec<Action>,
    /// The region marked the status provisional (cache it only briefly).
    pub provisional: bool,
}

/// Whether an action bears on the recognition decision (a green with it is a manual check).
pub(crate) fn bears_on_decision(a: Action) -> bool {
    matches!(a, Action::RegisterOnArrival | Action::UpdateIdentity)
}

impl PeerHints {
    /// The hints of a status.
    pub fn of(status: &HealthStatus) -> Self {
        PeerHints {
            decision_actions: status
                .actions
                .iter()
                .copied()
                .filter(|a| bears_on_decision(*a))
                .collect(),
            provisional: status.provisional,
        }
    }
}

/// Whether `jurisdiction` is one of `grants` or a sub-jurisdiction of one
/// (`shanghai` covers `shanghai` and `shanghai/pudong`, not `shanghai2`).
pub fn covers(grants: &[String], jurisdiction: &str) -> bool {
    grants.iter().any(|g| {
        jurisdiction
            .strip_prefix(g.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}
