//! The metrics the lookup pipeline emits, through the `metrics` facade (the Prometheus
//! exporter, the HTTP request metrics and `/metrics` itself live in `hcgw`). Labels are
//! bounded: region ids, peer names from the configuration, error codes.

use std::time::Duration;

use hcgw_adapters::RegionId;

use crate::error_code::ErrorCode;

/// Records one call for a region's status (to its service, each attempt; or to a peer): its
/// duration, and its error when it was an upstream fault.
pub fn upstream_call(region: RegionId, latency: Duration, error: Option<ErrorCode>) {
    metrics::histogram!("hcgw_upstream_duration_seconds", "region" => region.as_str())
        .record(latency.as_secs_f64());
    if let Some(code) = error.filter(|c| c.is_upstream_fault()) {
        metrics::counter!("hcgw_upstream_errors_total", "region" => region.as_str(), "code" => code.as_str())
            .increment(1);
    }
}

/// Records one lookup forwarded to peer gateway `peer` for `region`: by peer and outcome
/// code, and — as a call for the region's status, like a call to the region itself — in the
/// region's upstream duration and, when it was an upstream fault, its upstream errors.
pub fn peer_call(peer: &str, region: RegionId, latency: Duration, error: Option<ErrorCode>) {
    let code = error.map_or("ok", ErrorCode::as_str);
    metrics::counter!("hcgw_peer_requests_total", "peer" => peer.to_owned(), "code" => code)
        .increment(1);
    upstream_call(region, latency, error);
}
