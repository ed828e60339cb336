//! [`Fetched`]: a status and where it came from, as the lookup pipeline passes it between
//! its layers.

use std::time::Duration;

use hcgw_adapters::HealthStatus;

/// A status and where it came from.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The normalised status (shared with the cache entry it came from).
    pub status: std::sync::Arc<HealthStatus>,
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
