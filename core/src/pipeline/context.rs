//! [`ForwardContext`]: what a question carries down the pipeline and, for a peer-served
//! region, to the peer — on whose behalf, how far it has travelled, how long it may wait.

use crate::config::Role;

/// Where a request stands in the federation: on whose behalf it acts, and the hops and
/// gateways it has already passed. Built from the acting identity of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardContext {
    /// The acting role (the original caller's, capped by every peer on the way).
    pub role: Role,
    /// The acting jurisdiction (the original verifier).
    pub jurisdiction: String,
    /// Hops already taken (0 for a direct caller).
    pub hops: u32,
    /// Gateways passed before this one.
    pub via: Vec<String>,
    /// How long this request may wait for a region's rate limit: `None` for the region's
    /// short `queue_ms` (single lookups, gates), longer for batch items, which are paced at
    /// the region's rate rather than refused.
    pub patience: Option<std::time::Duration>,
    /// The purpose the original caller declared: forwarded, so that the peer's audit record
    /// carries it too.
    pub purpose: Option<String>,
}

impl ForwardContext {
    /// A request from a direct (non-peer) caller.
    pub fn direct(role: Role, jurisdiction: impl Into<String>) -> Self {
        ForwardContext {
            role,
            jurisdiction: jurisdiction.into(),
            hops: 0,
            via: Vec::new(),
            patience: None,
            purpose: None,
        }
    }
}
