//! Resident memory per cached status (`scripts/bench.sh`, measurement (e)): fills hcgw's own
//! status cache (`hcgw::protect::cache::StatusCache`, the one the gateway uses) with N
//! realistic entries — a 64-hex-character keyed-hash key and a normalised Xuzhou status with
//! masked holder data — and reports the growth of the process's resident set per entry.
//!
//! `bench-memory N` → one JSON line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hcgw::config::TtlSection;
use hcgw::lookup::Fetched;
use hcgw::protect::SystemClock;
use hcgw::protect::cache::StatusCache;
use hcgw_adapters::{Action, HealthStatus, Holder, IdType, Level, RegionId, Source};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn status(i: usize) -> HealthStatus {
    let mut s = HealthStatus::new(
        RegionId::Xuzhou,
        if i.is_multiple_of(10) {
            Level::Monitoring
        } else {
            Level::Clear
        },
        Source {
            code: "GREEN".into(),
            label: None,
        },
    );
    s.as_of = Some(chrono::Utc::now().fixed_offset());
    s.holder = Holder {
        name_masked: Some("郭*".into()),
        id_type: Some(IdType::ResidentId),
        id_masked: Some(format!("3203**********{:04}", i % 10_000)),
    };
    if i.is_multiple_of(7) {
        s.push_action(Action::RegisterOnArrival);
    }
    s
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: bench-memory N");
    let ttls = BTreeMap::from([(
        RegionId::Xuzhou,
        TtlSection {
            green_s: 3600,
            yellow_s: 3600,
            red_s: 3600,
            unknown_s: 3600,
            not_found_s: 3600,
        },
    )]);
    let cache = StatusCache::new(u64::MAX / 4, ttls, Arc::new(SystemClock));
    // Warm the allocator and the runtime before the first reading.
    for i in 0..1000 {
        let key = format!("warm{i:060x}");
        let _ = cache
            .get_or_fetch(RegionId::Xuzhou, &key, || async move {
                Ok(Fetched {
                    status: status(i).into(),
                    cache_hit: false,
                    age: Duration::ZERO,
                    upstream_latency: None,
                    via_peer: None,
                    peer_view: None,
                    peer_proof: None,
                })
            })
            .await;
    }
    let before = rss_bytes();
    for i in 0..n {
        let key = format!("{:064x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let _ = cache
            .get_or_fetch(RegionId::Xuzhou, &key, || async move {
                Ok(Fetched {
                    status: status(i).into(),
                    cache_hit: false,
                    age: Duration::ZERO,
                    upstream_latency: None,
                    via_peer: None,
                    peer_view: None,
                    peer_proof: None,
                })
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes();
    let held = cache.entry_count();
    println!(
        "{}",
        serde_json::json!({
            "entries": n,
            "held": held,
            "rss_before": before,
            "rss_after": after,
            "bytes_per_entry": (after.saturating_sub(before)) as f64 / n as f64,
        })
    );
}
