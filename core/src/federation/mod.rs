//! Federation: forwarding lookups for regions hosted by peer gateways (security.md,
//! docs/federation.md).
//!
//! A lookup for a region served by peers goes to them in the configured order as
//! `POST /v1/lookup` over mTLS, with `X-Hcgw-Hops`, `X-Hcgw-On-Behalf-Of` (the original
//! caller's role and jurisdiction, never widened) and `X-Hcgw-Via` (the gateways passed).
//! The peer's answer is parsed strictly into a [`hcgw_adapters::HealthStatus`]; the recognition decision
//! is then made here, by the gateway the caller talks to. The peer's own decision is
//! ignored.
//!
//! [`protocol`]: the headers and their checks; [`client`]: the HTTP call to one peer;
//! [`answer`]: the strict parse of its answer; `signatures`: the check of its answers'
//! signatures against its published keys; [`tls`]: its mTLS client settings; this
//! module: the peers, their limits and breakers, and fail-over.

pub mod answer;
mod client;
pub mod protocol;
mod signatures;
pub mod tls;

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use hcgw_adapters::{RegionId, Subject};

use crate::config::{Config, PeerEntry, Role};
use crate::error_code::ErrorCode;
use crate::pipeline::{Fetched, LookupError};
use crate::protect::SystemClock;
use crate::protect::breaker::{BreakerPolicy, CircuitBreaker, CircuitState};
use crate::protect::limiter::RateLimiter;
use std::sync::Arc;

pub use answer::{WITHHELD, parse_answer};
pub use protocol::{
    ForwardContext, HOPS, MAX_PEER_BODY, MAX_VIA, ON_BEHALF_OF, PeerHints, VIA, check_entry,
    covers, parse_hops, parse_via, valid_gateway_name,
};

/// One peer gateway and its mTLS client.
struct Peer {
    name: String,
    lookup_url: String,
    client: reqwest::Client,
    deadline: Duration,
    breaker: CircuitBreaker,
    limiter: RateLimiter,
    /// Calls in flight to this peer at most (`max_concurrency`).
    in_flight: tokio::sync::Semaphore,
    /// Its answer-signing keys.
    keys: signatures::PeerKeys,
}

/// The peer gateways of this gateway.
pub struct Peers {
    own_name: String,
    max_hops: u32,
    peers: BTreeMap<String, Peer>,
    broken: BTreeMap<String, String>,
    /// The jurisdictions each peer caller (`[[clients]]` with role `peer`) may act for.
    acts_for: BTreeMap<String, Vec<String>>,
}

/// A call not made because a limit towards peer `name` is reached: counted in
/// `hcgw_rate_limited_total{scope}`, and the error to answer if no other peer can.
fn limited(scope: &'static str, name: &str, region: RegionId, detail: String) -> LookupError {
    metrics::counter!("hcgw_rate_limited_total", "scope" => scope, "name" => name.to_owned())
        .increment(1);
    LookupError::new(
        ErrorCode::UpstreamRateLimited,
        format!("{region}: {detail}"),
    )
    .with_region(region)
    .with_retry_after(Duration::from_secs(1))
}

impl Peers {
    /// Builds a client per configured peer. A peer whose TLS settings cannot be built is
    /// logged and treated as unavailable (its regions answer `region_unavailable`).
    pub fn from_config(config: &Config) -> Self {
        hcgw_adapters::upstream::install_crypto_provider();
        let mut peers = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for entry in &config.peers {
            match Self::build(entry, config) {
                Ok(p) => {
                    peers.insert(entry.name.clone(), p);
                }
                Err(e) => {
                    tracing::error!(peer = %entry.name, error = %e, "peer client unavailable");
                    broken.insert(entry.name.clone(), e);
                }
            }
        }
        Peers {
            own_name: config.gateway.name.clone(),
            max_hops: config.federation.max_hops,
            peers,
            broken,
            acts_for: config
                .clients
                .iter()
                .filter(|c| c.role == Role::Peer)
                .map(|c| (c.name.clone(), c.acts_for()))
                .collect(),
        }
    }

    fn build(entry: &PeerEntry, config: &Config) -> Result<Peer, String> {
        let tls = tls::client_config(entry)?;
        let deadline = Duration::from_millis(entry.deadline_ms);
        let client = reqwest::Client::builder()
            .timeout(deadline)
            .connect_timeout(deadline)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let anchors = crate::pki::pem::load_certs(&entry.ca).map_err(|e| e.to_string())?;
        Ok(Peer {
            keys: signatures::PeerKeys::new(&entry.name, &entry.url, anchors),
            name: entry.name.clone(),
            lookup_url: format!("{}/v1/lookup", entry.url.trim_end_matches('/')),
            client,
            deadline,
            // Bursts up to one second's worth.
            limiter: RateLimiter::per_second(entry.rate_limit_per_s, entry.rate_limit_per_s),
            in_flight: tokio::sync::Semaphore::new(entry.max_concurrency as usize),
            breaker: CircuitBreaker::new(
                format!("peer:{}", entry.name),
                BreakerPolicy::consecutive_only(
                    config.federation.circuit_failures,
                    Duration::from_millis(config.federation.circuit_open_ms),
                ),
                Arc::new(SystemClock),
            ),
        })
    }

    /// This gateway's name (what it adds to `X-Hcgw-Via`).
    pub fn own_name(&self) -> &str {
        &self.own_name
    }

    /// The hop limit.
    pub fn max_hops(&self) -> u32 {
        self.max_hops
    }

    /// Whether the peer caller `peer` (a `[[clients]]` name) may act for `jurisdiction`:
    /// it is one of the peer's `acts_for` jurisdictions or below one. Unknown peers may not.
    pub fn may_act_for(&self, peer: &str, jurisdiction: &str) -> bool {
        self.acts_for
            .get(peer)
            .is_some_and(|grants| covers(grants, jurisdiction))
    }

    /// Why a configured peer has no client, if it has none.
    pub fn broken(&self, name: &str) -> Option<&str> {
        self.broken.get(name).map(String::as_str)
    }

    /// Sets the state of peer-served regions in `GET /v1/regions`: `up` while one of
    /// their peers has a client and a closed circuit, else `down` with the reason.
    pub fn annotate(&self, views: &mut [crate::registry::RegionView]) {
        for v in views.iter_mut() {
            let crate::registry::Served::Peer { peers } = &v.served else {
                continue;
            };
            let usable = peers.iter().any(|p| {
                self.peers
                    .get(p)
                    .is_some_and(|p| p.breaker.circuit() != CircuitState::Open)
            });
            // The best circuit among the peers with a client.
            let rank = |c: &CircuitState| match c {
                CircuitState::Closed => 0,
                CircuitState::HalfOpen => 1,
                CircuitState::Open => 2,
            };
            v.circuit = peers
                .iter()
                .filter_map(|p| self.peers.get(p).map(|p| p.breaker.circuit()))
                .min_by_key(rank);
            if usable {
                v.state = crate::registry::RegionState::Up;
                v.note = None;
            } else {
                v.state = crate::registry::RegionState::Down;
                v.note = Some(
                    peers
                        .iter()
                        .map(|p| match self.broken(p) {
                            Some(why) => format!("peer {p}: {why}"),
                            None => format!("peer {p}: circuit open"),
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
        }
    }

    /// Asks the peers serving `region`, in order, failing over to the next on transport
    /// failure, a 5xx answer or an open circuit. Definitive answers (404, 410, 422…) end
    /// the search.
    pub async fn forward(
        &self,
        region: RegionId,
        subject: &Subject,
        ctx: &ForwardContext,
        order: &[String],
    ) -> Result<Fetched, LookupError> {
        if ctx.hops + 1 > self.max_hops {
            return Err(LookupError::new(
                ErrorCode::FederationLoop,
                format!(
                    "forwarding would exceed {} hops between gateways",
                    self.max_hops
                ),
            )
            .with_region(region));
        }
        let mut last = LookupError::new(
            ErrorCode::RegionUnavailable,
            format!("{region}: no peer serving it is available"),
        )
        .with_region(region)
        .with_retry_after(Duration::from_secs(30));
        for name in order {
            let Some(peer) = self.peers.get(name) else {
                last = LookupError::new(
                    ErrorCode::RegionUnavailable,
                    format!("{region}: peer {name} has no usable client"),
                )
                .with_region(region)
                .with_retry_after(Duration::from_secs(30))
                .via(name);
                continue;
            };
            // The concurrency limit first: refused there, no rate token is spent.
            let Ok(_in_flight) = peer.in_flight.try_acquire() else {
                last = limited(
                    "peer_concurrency",
                    name,
                    region,
                    format!("{name} already has its maximum of forwarded calls in flight"),
                )
                .via(name);
                continue;
            };
            if peer.limiter.try_take(1).is_err() {
                last = limited(
                    "peer",
                    name,
                    region,
                    format!("the rate limit towards peer {name} is reached"),
                )
                .via(name);
                continue;
            }
            let Ok(admission) = peer.breaker.admit() else {
                tracing::debug!(peer = %name, region = region.as_str(), "peer circuit open; trying the next");
                last = LookupError::new(
                    ErrorCode::RegionUnavailable,
                    format!("{region}: the circuit towards peer {name} is open"),
                )
                .with_region(region)
                .with_retry_after(Duration::from_secs(30))
                .via(name);
                continue;
            };
            let started = Instant::now();
            let result = self.call(peer, region, subject, ctx).await;
            crate::telemetry::peer_call(
                name,
                region,
                started.elapsed(),
                result.as_ref().err().map(|f| f.error.code),
            );
            admission.finish(result.as_ref().is_err_and(|f| f.peer_fault));
            match result {
                Ok(mut fetched) => {
                    fetched.upstream_latency = Some(started.elapsed());
                    return Ok(fetched);
                }
                Err(mut f) => {
                    f.error.via_peer = Some(name.clone());
                    tracing::warn!(peer = %name, region = region.as_str(), code = %f.error.code, error = %f.error.detail, "forwarded lookup failed");
                    if !f.fail_over {
                        return Err(f.error);
                    }
                    last = f.error;
                }
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcgw_adapters::Action;

    #[test]
    fn hops_and_via_headers() {
        assert_eq!(parse_hops(None).unwrap(), 1);
        assert_eq!(parse_hops(Some("2")).unwrap(), 2);
        assert!(parse_hops(Some("0")).is_err());
        assert!(parse_hops(Some("x")).is_err());
        assert_eq!(
            parse_via(Some("hcgw-a, hcgw-b")).unwrap(),
            vec!["hcgw-a".to_owned(), "hcgw-b".to_owned()]
        );
        assert!(parse_via(Some("a b")).is_err());
        assert!(check_entry("hcgw-a", 2, 1, &["hcgw-a".into()]).is_err());
        assert!(check_entry("hcgw-a", 2, 3, &[]).is_err());
        assert!(check_entry("hcgw-a", 2, 2, &["hcgw-b".into()]).is_ok());
    }

    const HINTS_NONE: &str = r#"{"decision_actions": [], "provisional": false}"#;

    fn answer(status: serde_json::Value, hints: Option<serde_json::Value>) -> Vec<u8> {
        let mut v = serde_json::json!({
            "request_id": "r", "status": status, "cache": {"hit": false, "age_ms": 1500},
            "recognition": {}, "served_by": "hcgw-jiangsu"
        });
        if let Some(h) = hints {
            v["federation"] = h;
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn hints_none() -> Option<serde_json::Value> {
        Some(serde_json::from_str(HINTS_NONE).unwrap())
    }

    fn checkpoint_view() -> serde_json::Value {
        serde_json::json!({"region": "suzhou", "color": "green", "level": "clear",
            "as_of": "2022-04-01T10:00:00+08:00"})
    }

    fn platform_view() -> serde_json::Value {
        serde_json::json!({"region": "suzhou", "color": "green", "level": "clear",
            "source": {"code": "G", "label": "绿码"}, "reasons": [], "as_of": "2022-04-01T10:00:00+08:00",
            "observed_at": "2022-04-01T02:00:01Z", "holder": {"name_masked": "张*"}, "actions": []})
    }

    #[test]
    fn checkpoint_views_keep_the_decision_actions() {
        let body = answer(
            checkpoint_view(),
            Some(
                serde_json::json!({"decision_actions": ["register_on_arrival"], "provisional": true}),
            ),
        );
        let f = parse_answer(&body, RegionId::Suzhou, "p").unwrap();
        assert_eq!(f.status.actions, vec![Action::RegisterOnArrival]);
        assert!(f.status.provisional);
        assert_eq!(f.status.source.code, WITHHELD);
        assert_eq!(f.peer_view, Some(Role::Checkpoint));
        assert_eq!(f.age, Duration::from_millis(1500));
        assert_eq!(f.via_peer.as_deref(), Some("p"));
    }

    #[test]
    fn complete_platform_views_are_taken_as_shown() {
        let mut v = platform_view();
        v["actions"] = serde_json::json!(["appeal_pending", "update_identity"]);
        let f = parse_answer(
            &answer(
                v,
                Some(serde_json::json!({"decision_actions": ["update_identity"], "provisional": false})),
            ),
            RegionId::Suzhou,
            "p",
        )
        .unwrap();
        assert_eq!(f.peer_view, Some(Role::Platform));
        assert_eq!(
            f.status.actions,
            vec![Action::AppealPending, Action::UpdateIdentity]
        );
        assert_eq!(f.status.source.code, "G");
        assert_eq!(f.status.holder.name_masked.as_deref(), Some("张*"));
        assert!(!f.status.provisional);
        assert!(
            parse_answer(
                &answer(checkpoint_view(), hints_none()),
                RegionId::Suzhou,
                "p"
            )
            .is_ok()
        );
    }

    #[test]
    fn invalid_statuses_are_refused() {
        for bad in [
            serde_json::json!({"region": "suzhou", "color": "green", "level": "quarantine", "as_of": "2022-04-01T10:00:00+08:00"}),
            serde_json::json!({"region": "sukang", "color": "green", "level": "clear", "as_of": "2022-04-01T10:00:00+08:00"}),
            serde_json::json!({"region": "suzhou", "color": "blue", "level": "clear", "as_of": "2022-04-01T10:00:00+08:00"}),
            serde_json::json!({"region": "suzhou", "color": "green", "level": "clear", "as_of": "2022-04-01T10:00:00+08:00", "extra": 1}),
            serde_json::json!({"region": "suzhou", "level": "clear"}),
            serde_json::json!("green"),
        ] {
            assert!(
                parse_answer(&answer(bad.clone(), hints_none()), RegionId::Suzhou, "p").is_err(),
                "{bad}"
            );
        }
        assert!(parse_answer(b"<html>", RegionId::Suzhou, "p").is_err());
    }

    /// Every way a peer's answer can lack what the decision needs: refused, so a lookup
    /// answers `upstream_invalid_response` and a gate gets `manual_check`.
    #[test]
    fn answers_missing_anything_the_decision_needs_are_refused() {
        let refused = |body: Vec<u8>, why: &str| {
            assert!(
                parse_answer(&body, RegionId::Suzhou, "p").is_err(),
                "{why}: {}",
                String::from_utf8_lossy(&body)
            );
        };
        // No hints, hints in part, hints that are null or of the wrong type.
        refused(answer(checkpoint_view(), None), "no federation hints");
        refused(
            answer(platform_view(), None),
            "no federation hints (platform view)",
        );
        for hints in [
            serde_json::json!({"decision_actions": []}),
            serde_json::json!({"provisional": false}),
            serde_json::json!(null),
            serde_json::json!({"decision_actions": null, "provisional": false}),
            serde_json::json!({"decision_actions": [], "provisional": "false"}),
            serde_json::json!({"decision_actions": [], "provisional": false, "more": 1}),
            serde_json::json!({"decision_actions": ["appeal_pending"], "provisional": false}),
            serde_json::json!({"decision_actions": ["fly"], "provisional": false}),
        ] {
            refused(
                answer(checkpoint_view(), Some(hints.clone())),
                &hints.to_string(),
            );
        }
        // A platform view without actions (or reasons, or observed_at), or with null ones.
        for field in ["actions", "reasons", "observed_at"] {
            let mut v = platform_view();
            v.as_object_mut().unwrap().remove(field);
            refused(
                answer(v, hints_none()),
                &format!("platform view without {field}"),
            );
            let mut v = platform_view();
            v[field] = serde_json::Value::Null;
            refused(
                answer(v, hints_none()),
                &format!("platform view with {field} null"),
            );
        }
        // Hints that contradict the status's own actions.
        let mut v = platform_view();
        v["actions"] = serde_json::json!(["register_on_arrival"]);
        refused(answer(v.clone(), hints_none()), "actions the hints omit");
        refused(
            answer(
                platform_view(),
                Some(
                    serde_json::json!({"decision_actions": ["update_identity"], "provisional": false}),
                ),
            ),
            "hints the actions omit",
        );
        // No as_of, or a null one, in either view.
        for mut v in [checkpoint_view(), platform_view()] {
            v.as_object_mut().unwrap().remove("as_of");
            refused(answer(v.clone(), hints_none()), "no as_of");
            v["as_of"] = serde_json::Value::Null;
            refused(answer(v, hints_none()), "null as_of");
        }
        // A mixed view: checkpoint fields plus some of the platform's.
        for (field, value) in [
            ("actions", serde_json::json!([])),
            ("reasons", serde_json::json!([])),
            ("observed_at", serde_json::json!("2022-04-01T02:00:01Z")),
            ("proxy_applied", serde_json::json!(false)),
            ("quarantine_until", serde_json::json!("2022-04-10")),
        ] {
            let mut v = checkpoint_view();
            v[field] = value;
            refused(
                answer(v, hints_none()),
                &format!("checkpoint view with {field}"),
            );
        }
        // Null where a field is optional, unknown fields inside source and holder.
        for (field, value) in [
            ("source", serde_json::Value::Null),
            ("holder", serde_json::Value::Null),
            (
                "source",
                serde_json::json!({"code": "G", "colour": "green"}),
            ),
            (
                "holder",
                serde_json::json!({"name_masked": "张*", "name": "张三"}),
            ),
            ("holder", serde_json::json!({"name_masked": null})),
        ] {
            let mut v = platform_view();
            v[field] = value.clone();
            refused(answer(v, hints_none()), &format!("{field}: {value}"));
        }
        // No cache block, or a broken one.
        let mut v: serde_json::Value =
            serde_json::from_slice(&answer(checkpoint_view(), hints_none())).unwrap();
        v.as_object_mut().unwrap().remove("cache");
        refused(serde_json::to_vec(&v).unwrap(), "no cache");
        v["cache"] = serde_json::json!({"hit": false});
        refused(serde_json::to_vec(&v).unwrap(), "no cache age");
        v["cache"] = serde_json::json!({"hit": false, "age_ms": -1});
        refused(serde_json::to_vec(&v).unwrap(), "negative cache age");
    }

    #[test]
    fn an_array_where_an_object_belongs_is_refused() {
        // Serde's derived structs read an array positionally; a peer's answer is read by
        // member name only, at every level that is a struct.
        let good: serde_json::Value =
            serde_json::from_slice(&answer(platform_view(), hints_none())).unwrap();
        assert!(parse_answer(&serde_json::to_vec(&good).unwrap(), RegionId::Suzhou, "p").is_ok());
        let as_array = |v: &serde_json::Value| {
            serde_json::Value::Array(v.as_object().unwrap().values().cloned().collect())
        };
        let whole = serde_json::json!([good["status"], good["cache"], good["federation"]]);
        let mut cases = vec![("the answer", whole)];
        for path in [
            &["status"][..],
            &["cache"],
            &["federation"],
            &["status", "source"],
            &["status", "holder"],
        ] {
            let mut v = good.clone();
            let mut at = &mut v;
            for key in path {
                at = &mut at[*key];
            }
            *at = as_array(at);
            cases.push((path.last().unwrap(), v));
        }
        for (what, v) in cases {
            let err = parse_answer(&serde_json::to_vec(&v).unwrap(), RegionId::Suzhou, "p")
                .expect_err(what);
            assert!(
                err.contains("array") || err.contains("invalid"),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn duplicate_keys_anywhere_are_refused() {
        let good = String::from_utf8(answer(checkpoint_view(), hints_none())).unwrap();
        assert!(parse_answer(good.as_bytes(), RegionId::Suzhou, "p").is_ok());
        for (find, replace) in [
            // The colour twice: red first, green last (serde_json's Value keeps the last).
            (r#""color":"green""#, r#""color":"red","color":"green""#),
            (
                r#""level":"clear""#,
                r#""level":"quarantine","level":"clear""#,
            ),
            (
                r#""provisional":false"#,
                r#""provisional":true,"provisional":false"#,
            ),
            (
                r#""decision_actions":[]"#,
                r#""decision_actions":["update_identity"],"decision_actions":[]"#,
            ),
            (
                r#""served_by":"hcgw-jiangsu""#,
                r#""served_by":"a","served_by":"b""#,
            ),
            (
                r#""recognition":{}"#,
                r#""recognition":{"decision":"deny","decision":"pass"}"#,
            ),
            (
                r#""request_id":"r""#,
                r#""request_id":"r","request_id":"r""#,
            ),
        ] {
            assert!(good.contains(find), "{find} in {good}");
            let bad = good.replacen(find, replace, 1);
            assert!(
                parse_answer(bad.as_bytes(), RegionId::Suzhou, "p").is_err(),
                "{bad}"
            );
        }
        // Escaped spellings of the same key are the same key.
        let bad = good.replacen(
            r#""color":"green""#,
            r#""color":"red","\u0063olor":"green""#,
            1,
        );
        assert!(
            parse_answer(bad.as_bytes(), RegionId::Suzhou, "p").is_err(),
            "{bad}"
        );
    }
}
