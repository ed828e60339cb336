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
    /// For answers fresh from a peer: its verified signature and its audit receipt.
    pub peer_proof: Option<std::sync::Arc<PeerProof>>,
}

/// What proves what a peer gateway answered (issue 15, docs/proofs.md): the RFC 9421
/// signature it put on its answer, verified here before the answer was used, and the
/// receipt of the peer's own audit record. Kept in this gateway's audit record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerProof {
    /// The peer's signing key id.
    pub key_id: String,
    /// The signature's `created`.
    pub created: i64,
    /// The answer's `Signature-Input` header.
    pub signature_input: String,
    /// The answer's `Signature` header.
    pub signature: String,
    /// The answer's `Content-Digest` header (the hash of the body the signature covers).
    pub content_digest: String,
    /// The peer's audit receipt, when its answer carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::receipt::Receipt>,
}
