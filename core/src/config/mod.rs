//! The gateway's configuration: one TOML file (secrets by file or environment variable).
//! `hcgw check-config FILE` loads it with [`load`] and prints every [`Problem`], each with
//! its path in the file (`clients[2].role`, `regions.suzhou.deadline_ms`).
//!
//! Relative paths in the file are relative to the file's own directory.
//!
//! `HCGW_<SECTION>__<KEY>` environment variables override the file ([`overrides`]).

pub mod credentials;
mod load;
pub mod overrides;
pub mod secret;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hcgw_adapters::RegionId;
use serde::Deserialize;

pub use load::{LoadError, Problem, load, load_effective, load_str, load_str_with_env};
pub use secret::{SecretError, SecretRef};
pub(crate) use validate::valid_jurisdiction;
pub use validate::warnings;

/// A gateway name as it travels in `X-Hcgw-Via`: 1 to 64 letters, digits, `.`, `_`, `-`.
pub fn valid_gateway_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (for reloads and messages).
    pub source: PathBuf,
    /// Name and logging.
    pub gateway: GatewaySection,
    /// The mTLS API listener.
    pub listener: ListenerSection,
    /// The plain-HTTP admin listener.
    pub admin: AdminSection,
    /// Server certificate, client CA bundle, CRLs.
    pub tls: TlsSection,
    /// Known callers.
    pub clients: Vec<ClientEntry>,
    /// Regions served locally, by id.
    pub regions: BTreeMap<RegionId, RegionEntry>,
    /// Mutual-recognition agreements.
    pub recognition: RecognitionSection,
    /// Peer gateways.
    pub peers: Vec<PeerEntry>,
    /// Forwarding limits between gateways.
    pub federation: FederationSection,
    /// Local cache and the keyed hash of subjects.
    pub cache: CacheSection,
    /// The optional shared tier.
    pub redis: RedisSection,
    /// The audit trail.
    pub audit: AuditSection,
    /// Per-caller request quotas.
    pub limits: LimitsSection,
    /// Default circuit-breaker thresholds (regions may override them).
    pub breaker: BreakerSection,
    /// The access log (one line per API request).
    pub access_log: AccessLogSection,
    /// The drain on SIGTERM.
    pub shutdown: ShutdownSection,
    /// The answer-signing key (`[signing]`); answers and audit checkpoints are unsigned
    /// without it.
    pub signing: Option<SigningSection>,
}

/// `[signing]`: the key that signs every answer (RFC 9421) and every audit checkpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    /// The PKCS#8 PEM private key (ECDSA P-256 or Ed25519).
    pub key: PathBuf,
    /// The PEM certificate of its public key, published at `GET /v1/signing-keys`.
    pub cert: PathBuf,
    /// Certificates of retired signing keys, still published so that answers they signed
    /// keep verifying after a rotation.
    #[serde(default)]
    pub previous: Vec<PathBuf>,
}

/// `[gateway]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// This instance's name (`served_by` in responses).
    pub name: String,
    /// `pretty` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// A tracing filter (`info`, `hcgw=debug,info`).
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_log_level() -> String {
    "info".into()
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[listener]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// Address of the mTLS API (`0.0.0.0:8443`).
    pub addr: SocketAddr,
    /// Largest request body accepted (bytes).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Longest a TLS handshake may take before the connection is dropped (ms).
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_ms: u64,
    /// HTTP/1: longest a connection may take to deliver a request head, counted from when
    /// the gateway starts waiting for it (the connection's start or the end of the previous
    /// response), so it also bounds an idle HTTP/1 keep-alive connection (ms).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY) (ms).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// A connection older than this is closed gracefully (HTTP/2 GOAWAY, HTTP/1
    /// `Connection: close` on its next response), so every client reconnects now and then
    /// (seconds).
    #[serde(default = "default_max_connection_age")]
    pub max_connection_age_s: u64,
    /// After an idle, age or shutdown close has begun, how long requests in flight may take
    /// to finish before the connection is cut (ms).
    #[serde(default = "default_close_grace")]
    pub close_grace_ms: u64,
    /// Connections held at most (handshakes included); beyond it new connections are closed
    /// at once, before the handshake.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client certificate (by SHA-256 fingerprint) may hold at most; the
    /// excess is closed right after the handshake.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// The same for a CA-valid certificate no `[[clients]]` entry names (it only gets
    /// `403 forbidden`); 0 closes such connections right after the handshake.
    #[serde(default = "default_max_connections_per_unknown_client")]
    pub max_connections_per_unknown_client: usize,
    /// HTTP/2: streams (requests) one connection may have open at once.
    #[serde(default = "default_h2_streams")]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: largest header list of a request (bytes, as RFC 9113 counts them).
    #[serde(default = "default_h2_header_list")]
    pub http2_max_header_list_bytes: u32,
    /// HTTP/2: streams the client opened and reset before the gateway took them up, at most
    /// at any time; beyond it the connection is closed (`ENHANCE_YOUR_CALM`, "rapid reset").
    #[serde(default = "default_h2_pending_resets")]
    pub http2_max_pending_accept_reset_streams: usize,
    /// HTTP/2: streams the gateway had to reset because of the client's protocol errors
    /// (refused streams included) over a connection's life; beyond it the connection is
    /// closed (`ENHANCE_YOUR_CALM`).
    #[serde(default = "default_h2_local_resets")]
    pub http2_max_local_error_reset_streams: usize,
}

fn default_max_body() -> usize {
    1024 * 1024
}
fn default_handshake_timeout() -> u64 {
    10_000
}
fn default_header_read_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_max_connection_age() -> u64 {
    3600
}
fn default_close_grace() -> u64 {
    30_000
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_client() -> usize {
    1024
}
fn default_max_connections_per_unknown_client() -> usize {
    4
}
fn default_h2_streams() -> u32 {
    100
}
fn default_h2_header_list() -> u32 {
    16 * 1024
}
fn default_h2_pending_resets() -> usize {
    20
}
fn default_h2_local_resets() -> usize {
    256
}

impl ListenerSection {
    /// A section with every default, listening on `addr`.
    pub fn with_defaults(addr: SocketAddr) -> Self {
        ListenerSection {
            addr,
            max_body_bytes: default_max_body(),
            handshake_timeout_ms: default_handshake_timeout(),
            header_read_timeout_ms: default_header_read_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_connection_age_s: default_max_connection_age(),
            close_grace_ms: default_close_grace(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            max_connections_per_unknown_client: default_max_connections_per_unknown_client(),
            http2_max_concurrent_streams: default_h2_streams(),
            http2_max_header_list_bytes: default_h2_header_list(),
            http2_max_pending_accept_reset_streams: default_h2_pending_resets(),
            http2_max_local_error_reset_streams: default_h2_local_resets(),
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the plain-HTTP admin port (loopback by default).
    #[serde(default = "default_admin_addr")]
    pub addr: SocketAddr,
}

fn default_admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            addr: default_admin_addr(),
        }
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Server certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA bundles client certificates must chain to (PEM).
    pub client_ca: Vec<PathBuf>,
    /// CRLs (PEM or DER) checked for every client certificate: one per CA of the bundles
    /// (and per intermediate clients present), unless `revocation = "disabled"`.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// `enforced` (default: every certificate of a client's chain is checked against its
    /// CA's CRL, a CRL past its nextUpdate refuses the handshake) or `disabled` (no
    /// revocation checking at all; warned loudly).
    #[serde(default)]
    pub revocation: Revocation,
    /// How often the files are checked for changes (ms).
    #[serde(default = "default_reload_interval")]
    pub reload_interval_ms: u64,
}

/// `tls.revocation`: whether client certificates are checked against CRLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// Every CA has a CRL; unknown status or a lapsed CRL refuses the handshake.
    #[default]
    Enforced,
    /// No revocation checking (only for deployments whose CAs publish no CRL).
    Disabled,
}

fn default_reload_interval() -> u64 {
    2000
}

/// A caller role (security.md).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A provincial or city health-code platform.
    Platform,
    /// A transport hub gate, hospital entrance or handheld.
    Checkpoint,
    /// Another hcgw gateway.
    Peer,
    /// Dashboards and operators.
    Ops,
}

impl Role {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Platform => "platform",
            Role::Checkpoint => "checkpoint",
            Role::Peer => "peer",
            Role::Ops => "ops",
        }
    }
}

/// `[[clients]]`: a known caller, matched by certificate fingerprint or subject.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// A name for logs and audit.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its jurisdiction (`shanghai`, `guangdong/guangzhou`).
    pub jurisdiction: String,
    /// Lowercase hex SHA-256 of the certificate's DER (colons allowed).
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
    /// Lowercase hex SHA-256 of the certificate's SubjectPublicKeyInfo (a key pin that
    /// survives re-issuing with the same key; colons allowed).
    #[serde(default)]
    pub spki_sha256: Option<String>,
    /// The certificate subject, e.g. `O=shanghai, OU=platform, CN=platform-shanghai`
    /// (RFC 4514; RDN order does not matter).
    #[serde(default)]
    pub subject: Option<String>,
    /// The CA certificate (PEM, one of the `tls.client_ca` certificates) that must have
    /// issued the client's certificate: required with `subject` unless the bundles hold a
    /// single CA certificate; optional extra check with a pin.
    #[serde(default)]
    pub issuer: Option<PathBuf>,
    /// For peers: the highest role they may act on behalf of.
    #[serde(default)]
    pub max_on_behalf_of: Option<Role>,
    /// For peers: the jurisdictions they may act for (`X-Hcgw-On-Behalf-Of`), each with its
    /// sub-jurisdictions. Default: the peer's own `jurisdiction` (and its sub-jurisdictions).
    /// A list replaces the default, so name the peer's own jurisdiction in it too.
    #[serde(default)]
    pub acts_for: Option<Vec<String>>,
    /// Requests per second this client may make (overrides the role default).
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
}

/// `[regions.<id>]`: a region served by this gateway.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEntry {
    /// Turn the region off without deleting its section.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The region's base URL.
    pub base_url: String,
    /// Deadline of one call (ms); default: the federation-agreed deadline.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// Outbound requests per second; default: the published limit. Never above it.
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    /// Outbound requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Statuses older than this are stale (`manual_check`), seconds.
    #[serde(default = "default_status_age")]
    pub max_status_age_s: u64,
    /// Largest response body accepted (bytes).
    #[serde(default = "default_upstream_body")]
    pub max_body_bytes: usize,
    /// Cache TTLs.
    #[serde(default)]
    pub ttl: TtlSection,
    /// Longest a call may wait for the region's rate or concurrency limit before it is
    /// refused with `upstream_rate_limited` (ms).
    #[serde(default = "default_queue_ms")]
    pub queue_ms: u64,
    /// Circuit-breaker thresholds of this region (default: `[breaker]`).
    #[serde(default)]
    pub breaker: Option<BreakerSection>,
    /// Region-specific credentials (see `config/production.example.toml`).
    #[serde(default)]
    pub auth: toml::Table,
}

fn yes() -> bool {
    true
}
fn default_queue_ms() -> u64 {
    250
}
fn default_concurrency() -> usize {
    64
}
fn default_status_age() -> u64 {
    24 * 3600
}
fn default_upstream_body() -> usize {
    256 * 1024
}

/// Cache TTLs per colour (seconds). Errors are never cached.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlSection {
    /// Green statuses.
    #[serde(default = "ttl_green")]
    pub green_s: u64,
    /// Yellow statuses.
    #[serde(default = "ttl_short")]
    pub yellow_s: u64,
    /// Red statuses.
    #[serde(default = "ttl_short")]
    pub red_s: u64,
    /// Unknown-colour statuses.
    #[serde(default = "ttl_not_found")]
    pub unknown_s: u64,
    /// "Subject not found" answers.
    #[serde(default = "ttl_not_found")]
    pub not_found_s: u64,
}

fn ttl_green() -> u64 {
    60
}
fn ttl_short() -> u64 {
    30
}
fn ttl_not_found() -> u64 {
    10
}

impl Default for TtlSection {
    fn default() -> Self {
        TtlSection {
            green_s: 60,
            yellow_s: 30,
            red_s: 30,
            unknown_s: 10,
            not_found_s: 10,
        }
    }
}

/// `[recognition]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognitionSection {
    /// Extra jurisdictions beyond the built-in ones, with their parents
    /// (`{ name = "anhui/hefei" }`: the parent is the part before the last `/`).
    #[serde(default)]
    pub jurisdictions: Vec<String>,
    /// The agreements in force.
    #[serde(default)]
    pub agreements: Vec<AgreementEntry>,
}

/// `[[recognition.agreements]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementEntry {
    /// Its id (`yrd-mutual-recognition`), reported as `basis`.
    pub id: String,
    /// Verifying jurisdictions (sub-jurisdictions included).
    pub members: Vec<String>,
    /// Code systems covered; default: those issued inside the members.
    #[serde(default)]
    pub code_systems: Option<Vec<RegionId>>,
    /// Code systems excluded even if issued inside the members.
    #[serde(default)]
    pub exclude_code_systems: Vec<RegionId>,
    /// Where the agreement comes from (a notice, a briefing).
    #[serde(default)]
    pub source: Option<String>,
}

/// `[[peers]]`: another gateway serving regions this one does not host.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// Its name.
    pub name: String,
    /// Its base URL (`https://hcgw.jiangsu.example:8443`).
    pub url: String,
    /// The regions it serves for us (in fail-over order across peers).
    pub regions: Vec<RegionId>,
    /// The CA bundle its server certificate must chain to.
    pub ca: PathBuf,
    /// The name its certificate must carry (default: the URL's host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Pinned SHA-256 fingerprint of its server certificate (optional).
    #[serde(default)]
    pub pinned_sha256: Option<String>,
    /// Our client certificate for calling it.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// Deadline of one forwarded call (ms).
    #[serde(default = "default_peer_deadline")]
    pub deadline_ms: u64,
    /// Forwarded calls per second to this peer at most (bursts up to one second's worth);
    /// beyond it the next peer is tried, else `upstream_rate_limited`. Default 200.
    #[serde(default = "default_peer_rate")]
    pub rate_limit_per_s: u32,
    /// Forwarded calls in flight to this peer at most; beyond it the next peer is tried,
    /// else `upstream_rate_limited`. Default 64.
    #[serde(default = "default_peer_concurrency")]
    pub max_concurrency: u32,
}

fn default_peer_rate() -> u32 {
    200
}

fn default_peer_concurrency() -> u32 {
    64
}

fn default_peer_deadline() -> u64 {
    3000
}

/// `[federation]`: limits of forwarding between gateways (security.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    /// Most gateway-to-gateway hops a request may take (default 2): a request arriving
    /// with more, or that would leave with more, is refused with `federation_loop`.
    #[serde(default = "default_max_hops")]
    pub max_hops: u32,
    /// Consecutive failures after which a peer's circuit opens (default 5).
    #[serde(default = "default_peer_failures")]
    pub circuit_failures: u32,
    /// How long an open peer circuit stays open before one trial call (ms, default 10000).
    #[serde(default = "default_peer_open_ms")]
    pub circuit_open_ms: u64,
}

fn default_max_hops() -> u32 {
    2
}
fn default_peer_failures() -> u32 {
    5
}
fn default_peer_open_ms() -> u64 {
    10_000
}

impl Default for FederationSection {
    fn default() -> Self {
        FederationSection {
            max_hops: default_max_hops(),
            circuit_failures: default_peer_failures(),
            circuit_open_ms: default_peer_open_ms(),
        }
    }
}

/// `[cache]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Most entries held.
    #[serde(default = "default_cache_entries")]
    pub max_entries: u64,
    /// Key of the HMAC that turns subjects into cache keys and audit subject hashes.
    pub subject_key: SecretRef,
}

fn default_cache_entries() -> u64 {
    100_000
}

/// `[limits]`: requests per second per caller, by role (a client's own
/// `rate_limit_per_s` overrides its role's). A batch costs its item count; one larger than
/// the burst is paced (see `protect::quota`).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Platforms (requests per second).
    #[serde(default = "limit_platform")]
    pub platform_per_s: u32,
    /// Checkpoints.
    #[serde(default = "limit_checkpoint")]
    pub checkpoint_per_s: u32,
    /// Peer gateways.
    #[serde(default = "limit_peer")]
    pub peer_per_s: u32,
    /// Operators and dashboards.
    #[serde(default = "limit_ops")]
    pub ops_per_s: u32,
    /// Burst allowed on top of the steady rate, in seconds of quota (1 = one second's worth).
    #[serde(default = "limit_burst")]
    pub burst_s: u32,
}

fn limit_platform() -> u32 {
    500
}
fn limit_checkpoint() -> u32 {
    50
}
fn limit_peer() -> u32 {
    2000
}
fn limit_ops() -> u32 {
    50
}
fn limit_burst() -> u32 {
    2
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            platform_per_s: limit_platform(),
            checkpoint_per_s: limit_checkpoint(),
            peer_per_s: limit_peer(),
            ops_per_s: limit_ops(),
            burst_s: limit_burst(),
        }
    }
}

/// `[breaker]` and `[regions.<id>.breaker]`: when a region's circuit opens. Only upstream
/// failures count (unavailable, timeout, invalid answer, throttling), never answers about
/// the subject.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSection {
    /// Open after this many upstream failures in a row.
    #[serde(default = "breaker_consecutive")]
    pub consecutive_failures: u32,
    /// Or when this share of the recent calls failed (0..1) …
    #[serde(default = "breaker_ratio")]
    pub failure_ratio: f64,
    /// … over the last `window_calls` calls, once at least `min_calls` were made.
    #[serde(default = "breaker_window")]
    pub window_calls: u32,
    /// Calls needed before the ratio counts.
    #[serde(default = "breaker_min_calls")]
    pub min_calls: u32,
    /// How long the circuit stays open before probing (seconds).
    #[serde(default = "breaker_open")]
    pub open_s: u64,
    /// Probe calls let through when half-open; all must succeed to close.
    #[serde(default = "breaker_probes")]
    pub half_open_probes: u32,
}

fn breaker_consecutive() -> u32 {
    5
}
fn breaker_ratio() -> f64 {
    0.5
}
fn breaker_window() -> u32 {
    20
}
fn breaker_min_calls() -> u32 {
    10
}
fn breaker_open() -> u64 {
    10
}
fn breaker_probes() -> u32 {
    1
}

impl Default for BreakerSection {
    fn default() -> Self {
        BreakerSection {
            consecutive_failures: breaker_consecutive(),
            failure_ratio: breaker_ratio(),
            window_calls: breaker_window(),
            min_calls: breaker_min_calls(),
            open_s: breaker_open(),
            half_open_probes: breaker_probes(),
        }
    }
}

/// `[redis]`: the shared tier for several instances (off by default).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// Use Redis.
    #[serde(default)]
    pub enabled: bool,
    /// `redis://host:port/db`.
    #[serde(default)]
    pub url: Option<String>,
    /// While Redis is down, the share of each caller quota this instance applies locally
    /// (0..1; e.g. 0.5 with two instances).
    #[serde(default = "default_local_share")]
    pub local_share: f64,
    /// Key of the HMAC that authenticates every cache entry in Redis (≥ 16 characters,
    /// distinct from `cache.subject_key`); required when enabled. Every instance sharing the
    /// Redis needs the same key.
    #[serde(default)]
    pub entry_key: Option<SecretRef>,
}

fn default_local_share() -> f64 {
    0.5
}

impl Default for RedisSection {
    fn default() -> Self {
        RedisSection {
            enabled: false,
            url: None,
            local_share: default_local_share(),
            entry_key: None,
        }
    }
}

/// `[audit]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Directory of the audit files.
    pub dir: PathBuf,
    /// Refuse lookups with 503 rather than serve unaudited (default true).
    #[serde(default = "yes")]
    pub strict: bool,
    /// Rotate when a file reaches this size (bytes).
    #[serde(default = "default_rotate")]
    pub rotate_bytes: u64,
    /// `every_batch` (fsync after each batch) or `interval` (at most every second).
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// Records waiting for the writer at most. When it is full a strict `record` waits up
    /// to a second for room, then fails with `QueueFull` (the lookup is refused with 503);
    /// non-strict, the record is dropped and counted at once. Default 10000.
    #[serde(default = "default_audit_queue")]
    pub queue_capacity: usize,
    /// Also start a new file when the UTC day changes (default true).
    #[serde(default = "yes")]
    pub rotate_daily: bool,
    /// Seconds between signed tree heads of the audit log (default 60, 1..=86400); only
    /// with a `[signing]` key (docs/proofs.md).
    #[serde(default = "default_checkpoint_s")]
    pub checkpoint_s: u64,
}

fn default_checkpoint_s() -> u64 {
    60
}

fn default_rotate() -> u64 {
    64 * 1024 * 1024
}

fn default_audit_queue() -> usize {
    10_000
}

/// When the audit writer calls fsync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every batch.
    #[default]
    EveryBatch,
    /// At most once per second.
    Interval,
}

impl Config {
    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }

    /// The configuration of a region served here, when enabled.
    pub fn region(&self, id: RegionId) -> Option<&RegionEntry> {
        self.regions.get(&id).filter(|r| r.enabled)
    }
}

impl ClientEntry {
    /// The jurisdictions a peer may act for: `acts_for`, else its own jurisdiction (each
    /// with its sub-jurisdictions).
    pub fn acts_for(&self) -> Vec<String> {
        self.acts_for
            .clone()
            .unwrap_or_else(|| vec![self.jurisdiction.clone()])
    }
}

/// `[access_log]`: one structured line per API request (see `crate::access_log`).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSection {
    /// Whether requests are logged (default on).
    #[serde(default = "access_log_enabled")]
    pub enabled: bool,
    /// Log one of every N lookups answered from the cache (1: every one; default 1).
    #[serde(default = "access_log_sample")]
    pub sample_cache_hits: u32,
}

fn access_log_enabled() -> bool {
    true
}
fn access_log_sample() -> u32 {
    1
}

impl Default for AccessLogSection {
    fn default() -> Self {
        AccessLogSection {
            enabled: access_log_enabled(),
            sample_cache_hits: access_log_sample(),
        }
    }
}

/// `[shutdown]`: what SIGTERM does. First `/readyz` answers 503 `draining` while both
/// listeners keep serving for `drain_s`; then the API listener stops accepting and open
/// connections finish their requests for up to `grace_s`; then the audit trail is flushed.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSection {
    /// Seconds of serving while unready, so load balancers stop sending (default 5; 0: none).
    #[serde(default = "shutdown_drain")]
    pub drain_s: u64,
    /// Seconds in-flight requests get once the listener stopped accepting (default 25).
    #[serde(default = "shutdown_grace")]
    pub grace_s: u64,
}

fn shutdown_drain() -> u64 {
    5
}
fn shutdown_grace() -> u64 {
    25
}

impl Default for ShutdownSection {
    fn default() -> Self {
        ShutdownSection {
            drain_s: shutdown_drain(),
            grace_s: shutdown_grace(),
        }
    }
}
