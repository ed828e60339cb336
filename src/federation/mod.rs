//! Federation: forwarding lookups for regions hosted by peer gateways (security.md,
//! docs/federation.md).
//!
//! A lookup for a region served by peers goes to them in the configured order as
//! `POST /v1/lookup` over mTLS, with `X-Hcgw-Hops`, `X-Hcgw-On-Behalf-Of` (the original
//! caller's role and jurisdiction, never widened) and `X-Hcgw-Via` (the gateways passed).
//! The peer's answer is parsed strictly into a [`HealthStatus`]; the recognition decision
//! is then made here, by the gateway the caller talks to. The peer's own decision is
//! ignored.

pub mod tls;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use hcgw_adapters::{
    Action, Color, ErrorCode, HealthStatus, Holder, Level, Reason, RegionId, Source, Subject,
};
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::config::{Config, PeerEntry, Role};
use crate::lookup::Fetched;

/// Hops the request has taken between gateways.
pub const HOPS: &str = "x-hcgw-hops";
/// The gateways the request has passed, comma-separated, oldest first.
pub const VIA: &str = "x-hcgw-via";
/// The original caller's `<role>:<jurisdiction>`.
pub const ON_BEHALF_OF: &str = crate::api::acting::ON_BEHALF_OF;
/// Most names in `X-Hcgw-Via`.
pub const MAX_VIA: usize = 16;
/// Largest answer accepted from a peer (bytes).
pub const MAX_PEER_BODY: usize = 256 * 1024;

/// A gateway name as it travels in `X-Hcgw-Via`: 1 to 64 letters, digits, `.`, `_`, `-`.
pub fn valid_gateway_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

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

/// Parses `X-Hcgw-Hops` (a peer that sends none has made one hop).
pub fn parse_hops(value: Option<&str>) -> Result<u32, ApiError> {
    match value {
        None => Ok(1),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| ApiError::invalid("X-Hcgw-Hops must be a number from 1 to 64")),
    }
}

/// Parses `X-Hcgw-Via`.
pub fn parse_via(value: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(v) = value else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if names.len() > MAX_VIA || !names.iter().all(|n| valid_gateway_name(n)) {
        return Err(ApiError::invalid(
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
) -> Result<(), ApiError> {
    if via.iter().any(|v| v == own_name) {
        return Err(ApiError::new(
            ErrorCode::FederationLoop,
            "the request came back to a gateway it already passed",
        ));
    }
    if hops > max_hops {
        return Err(ApiError::new(
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
fn bears_on_decision(a: Action) -> bool {
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

/// A peer's circuit breaker: opens after consecutive transport-level failures, lets one
/// trial call through after the open period.
#[derive(Debug)]
struct Breaker {
    target: String,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    threshold: u32,
    open_for: Duration,
}

impl Breaker {
    fn new(peer: &str, threshold: u32, open_for: Duration) -> Self {
        let target = format!("peer:{peer}");
        metrics::gauge!("hcgw_circuit_state", "target" => target.clone()).set(0.0);
        Breaker {
            target,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            threshold,
            open_for,
        }
    }

    fn allow(&self) -> bool {
        let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        match *open {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                // Half-open: this call is the trial; the others wait another period.
                *open = Some(Instant::now() + self.open_for);
                metrics::gauge!("hcgw_circuit_state", "target" => self.target.clone()).set(1.0);
                true
            }
            None => true,
        }
    }

    fn is_open(&self) -> bool {
        let open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        open.is_some_and(|until| Instant::now() < until)
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        if open.take().is_some() {
            tracing::info!(target_name = %self.target, "peer circuit closed");
        }
        metrics::gauge!("hcgw_circuit_state", "target" => self.target.clone()).set(0.0);
    }

    fn failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold {
            let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
            *open = Some(Instant::now() + self.open_for);
            metrics::gauge!("hcgw_circuit_state", "target" => self.target.clone()).set(2.0);
            tracing::warn!(target_name = %self.target, failures = n, "peer circuit open");
        }
    }
}

/// A token bucket: `rate` calls per second, bursts up to one second's worth.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Bucket {
            rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    fn try_take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, last) = *s;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            true
        } else {
            *s = (tokens, now);
            false
        }
    }
}

/// One peer gateway and its mTLS client.
struct Peer {
    name: String,
    lookup_url: String,
    client: reqwest::Client,
    deadline: Duration,
    breaker: Breaker,
    bucket: Bucket,
    /// Calls in flight to this peer at most (`max_concurrency`).
    in_flight: tokio::sync::Semaphore,
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
fn limited(scope: &'static str, name: &str, region: RegionId, detail: String) -> ApiError {
    metrics::counter!("hcgw_rate_limited_total", "scope" => scope, "name" => name.to_owned())
        .increment(1);
    ApiError::new(
        ErrorCode::UpstreamRateLimited,
        format!("{region}: {detail}"),
    )
    .with_region(region)
    .with_retry_after(Duration::from_secs(1))
}

/// A failed call to one peer: the error to report, and whether to try the next peer.
struct Failure {
    error: ApiError,
    fail_over: bool,
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
        Ok(Peer {
            name: entry.name.clone(),
            lookup_url: format!("{}/v1/lookup", entry.url.trim_end_matches('/')),
            client,
            deadline,
            bucket: Bucket::new(entry.rate_limit_per_s),
            in_flight: tokio::sync::Semaphore::new(entry.max_concurrency as usize),
            breaker: Breaker::new(
                &entry.name,
                config.federation.circuit_failures,
                Duration::from_millis(config.federation.circuit_open_ms),
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
            .is_some_and(|grants| crate::api::acting::covers(grants, jurisdiction))
    }

    /// Why a configured peer has no client, if it has none.
    pub fn broken(&self, name: &str) -> Option<&str> {
        self.broken.get(name).map(String::as_str)
    }

    /// Sets the state of peer-served regions in `GET /v1/regions`: `up` while one of
    /// their peers has a client and a closed circuit, else `down` with the reason.
    pub fn annotate(&self, views: &mut [crate::regions::RegionView]) {
        for v in views.iter_mut() {
            let crate::regions::Served::Peer { peers } = &v.served else {
                continue;
            };
            let usable = peers
                .iter()
                .any(|p| self.peers.get(p).is_some_and(|p| !p.breaker.is_open()));
            if usable {
                v.state = crate::regions::RegionState::Up;
                v.note = None;
            } else {
                v.state = crate::regions::RegionState::Down;
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
    ) -> Result<Fetched, ApiError> {
        if ctx.hops + 1 > self.max_hops {
            return Err(ApiError::new(
                ErrorCode::FederationLoop,
                format!(
                    "forwarding would exceed {} hops between gateways",
                    self.max_hops
                ),
            )
            .with_region(region));
        }
        let mut last = ApiError::new(
            ErrorCode::RegionUnavailable,
            format!("{region}: no peer serving it is available"),
        )
        .with_region(region)
        .with_retry_after(Duration::from_secs(30));
        for name in order {
            let Some(peer) = self.peers.get(name) else {
                continue;
            };
            // The concurrency limit first: refused there, no rate token is spent.
            let Ok(_in_flight) = peer.in_flight.try_acquire() else {
                last = limited(
                    "peer_concurrency",
                    name,
                    region,
                    format!("{name} already has its maximum of forwarded calls in flight"),
                );
                continue;
            };
            if !peer.bucket.try_take() {
                last = limited(
                    "peer",
                    name,
                    region,
                    format!("the rate limit towards peer {name} is reached"),
                );
                continue;
            }
            if !peer.breaker.allow() {
                tracing::debug!(peer = %name, region = region.as_str(), "peer circuit open; trying the next");
                last = ApiError::new(
                    ErrorCode::RegionUnavailable,
                    format!("{region}: the circuit towards peer {name} is open"),
                )
                .with_region(region)
                .with_retry_after(Duration::from_secs(30));
                continue;
            }
            let started = Instant::now();
            let result = self.call(peer, region, subject, ctx).await;
            crate::metrics::peer_call(
                name,
                region,
                started.elapsed(),
                result.as_ref().err().map(|f| f.error.code),
            );
            match result {
                Ok(mut fetched) => {
                    peer.breaker.success();
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

    async fn call(
        &self,
        peer: &Peer,
        region: RegionId,
        subject: &Subject,
        ctx: &ForwardContext,
    ) -> Result<Fetched, Failure> {
        let subject_json = match subject {
            Subject::QrToken(t) => {
                serde_json::json!({ "qr": hcgw_adapters::qr::qr_text(region, t) })
            }
            Subject::Identity(i) => serde_json::json!({
                "id_type": i.id_type,
                "id_number": i.id_number,
                "name": i.name,
            }),
        };
        let mut body = serde_json::json!({ "region": region, "subject": subject_json });
        if let Some(purpose) = &ctx.purpose {
            body["purpose"] = serde_json::Value::from(purpose.as_str());
        }
        let mut via = ctx.via.clone();
        via.push(self.own_name.clone());
        let role = match ctx.role {
            Role::Platform => "platform",
            // Never widened: anything but a platform travels as a checkpoint.
            _ => "checkpoint",
        };
        let mut req = peer
            .client
            .post(&peer.lookup_url)
            .header(HOPS, (ctx.hops + 1).to_string())
            .header(ON_BEHALF_OF, format!("{role}:{}", ctx.jurisdiction))
            .header(VIA, via.join(","))
            .json(&body);
        if let Some(id) = crate::api::request_id::current() {
            req = req.header(crate::api::request_id::HEADER, id);
        }
        let transport = |detail: String| {
            peer.breaker.failure();
            Failure {
                error: ApiError::new(ErrorCode::RegionUnavailable, detail)
                    .with_region(region)
                    .with_retry_after(Duration::from_secs(30)),
                fail_over: true,
            }
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                peer.breaker.failure();
                return Err(Failure {
                    error: ApiError::new(
                        ErrorCode::RegionTimeout,
                        format!(
                            "{region}: peer {} did not answer within {:?}",
                            peer.name, peer.deadline
                        ),
                    )
                    .with_region(region),
                    fail_over: true,
                });
            }
            Err(e) => {
                return Err(transport(format!(
                    "{region}: peer {} unreachable ({})",
                    peer.name,
                    transport_kind(&e)
                )));
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = match read_limited(resp).await {
            Ok(b) => b,
            Err(e) => return Err(transport(format!("{region}: peer {}: {e}", peer.name))),
        };
        let invalid = |why: &str| {
            peer.breaker.failure();
            Failure {
                error: ApiError::new(
                    ErrorCode::UpstreamInvalidResponse,
                    format!("{region}: peer {} answered {why}", peer.name),
                )
                .with_region(region),
                fail_over: true,
            }
        };
        if status == 200 {
            if !content_type.starts_with("application/json") {
                return Err(invalid("a 200 that is not JSON"));
            }
            return match parse_answer(&bytes, region, &peer.name) {
                Ok(f) => Ok(f),
                Err(why) => Err(invalid(&why)),
            };
        }
        if !content_type.starts_with("application/problem+json") {
            return Err(invalid(&format!("HTTP {status} without a problem body")));
        }
        let Ok(problem) = serde_json::from_slice::<PeerProblem>(&bytes) else {
            return Err(invalid(&format!(
                "HTTP {status} with an unreadable problem"
            )));
        };
        if problem.code.http_status() != status {
            return Err(invalid(&format!(
                "HTTP {status} with a problem of another status"
            )));
        }
        // The peer itself answered properly: its circuit stays closed.
        peer.breaker.success();
        let (code, fail_over) = match problem.code {
            // Definitive answers about the subject or the request.
            c @ (ErrorCode::SubjectNotFound
            | ErrorCode::TokenExpired
            | ErrorCode::UnsupportedIdType
            | ErrorCode::UnrecognizedQr
            | ErrorCode::InvalidRequest) => (c, false),
            // The peer refuses *us* (identity, quota, audit, configuration): its regions
            // are unavailable from here; another peer may do.
            ErrorCode::RateLimited => (ErrorCode::UpstreamRateLimited, true),
            ErrorCode::Forbidden
            | ErrorCode::Unauthenticated
            | ErrorCode::UnknownRegion
            | ErrorCode::PayloadTooLarge
            | ErrorCode::AuditUnavailable => (ErrorCode::RegionUnavailable, true),
            c @ (ErrorCode::UpstreamRateLimited
            | ErrorCode::RegionUnavailable
            | ErrorCode::RegionTimeout
            | ErrorCode::UpstreamInvalidResponse
            | ErrorCode::FederationLoop) => (c, true),
        };
        let mut error = ApiError::new(
            code,
            format!("{region}: peer {} answered {}", peer.name, problem.code),
        )
        .with_region(region);
        error.retry_after = problem
            .retry_after_s
            .or(retry_after)
            .map(|s| Duration::from_secs(s.clamp(1, 3600)))
            .or_else(|| (code.http_status() == 503).then(|| Duration::from_secs(30)));
        Err(Failure { error, fail_over })
    }
}

/// A transport error's kind, without URLs or bodies.
fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connection or TLS handshake failed"
    } else if e.is_request() {
        "request failed"
    } else if e.is_body() || e.is_decode() {
        "broken answer"
    } else {
        "transport error"
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_PEER_BODY as u64)
    {
        return Err("answer over the size limit".into());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_kind(&e).to_owned())?
    {
        if out.len() + chunk.len() > MAX_PEER_BODY {
            return Err("answer over the size limit".into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A problem body from a peer (only what is needed; the detail is not relayed).
#[derive(Deserialize)]
struct PeerProblem {
    code: ErrorCode,
    #[serde(default)]
    retry_after_s: Option<u64>,
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

/// Any JSON value, refused when an object anywhere in it names a key twice (serde_json
/// keeps the last of duplicate keys in a `Value`, and skips unknown members unchecked).
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON without duplicate keys")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
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
    serde_json::from_slice::<NoDuplicateKeys>(bytes)
        .map_err(|e| format!("an invalid answer ({})", e.classify_name()))?;
    let answer: PeerAnswer = serde_json::from_slice(bytes)
        .map_err(|e| format!("an invalid status ({})", e.classify_name()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_circuit_opens_after_consecutive_failures_and_lets_one_trial_through() {
        let b = Breaker::new("p", 2, Duration::from_secs(1));
        assert!(b.allow());
        b.failure();
        assert!(b.allow(), "one failure is below the threshold");
        b.failure();
        assert!(b.is_open() && !b.allow(), "open after two");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(b.allow(), "half-open: one trial");
        assert!(!b.allow(), "the others wait");
        b.success();
        assert!(!b.is_open() && b.allow(), "closed again");
    }

    #[test]
    fn peer_rate_limit_allows_a_second_of_burst_then_refills() {
        let b = Bucket::new(1);
        assert!(b.try_take());
        assert!(!b.try_take(), "burst spent");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(b.try_take(), "refilled at 1/s");
    }

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
