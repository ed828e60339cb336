//! The optional Redis tier shared by several instances: an L2 status cache (key
//! `hcgw:c:<cache key>`, value = an authenticated [`StoredEntry`], TTL set in Redis with PX),
//! global per-caller quotas (`hcgw:q:<client>`) and global per-region outbound rates
//! (`hcgw:r:<region>`), both an atomic GCRA Lua script on Redis server time, so N instances
//! together respect one quota.
//!
//! Redis is a cache, never a source of truth (security.md, "The shared tier"): every L2 value
//! is `hcgw-l2/1.<HMAC-SHA256 hex>.<JSON>`, the MAC taken with `redis.entry_key` over the
//! format tag, the cache key and the JSON ([`EntrySealer`]). A value whose tag, MAC, key
//! binding, region, shape or times do not check out is a miss, counted in
//! `hcgw_shared_cache_rejected_total{reason}` ([`Rejection`]) and logged without the key.
//!
//! When Redis is down the gateway keeps serving with its local cache and local limits
//! (each instance taking `[redis] local_share` of a quota), logs the degradation, sets
//! `hcgw_redis_degraded` to 1, shows it in `/readyz` and `/v1/regions` (readiness does not
//! fail). A background task PINGs Redis once a second (with the operation timeout), so the
//! degradation shows, and clears again, within seconds even on an idle instance. While
//! degraded, requests do not touch Redis at all: only that probe finds it back, so no
//! request waits out a dead Redis's timeout (`scripts/faults.sh` measured the other regions'
//! p99 rising from ~40 ms to ~280 ms when requests did the probing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hcgw_adapters::{HealthStatus, RegionId, Secret};
use hmac::{Hmac, Mac};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::{RedisSection, Role, SecretError};

/// Time allowed to one Redis operation before the tier counts as degraded.
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// How often the tier is probed in the background.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The GCRA on Redis server time. A call whose slot is due within `max_wait` takes it at
/// once — the TAT advances and the wait is returned — so callers queue in FIFO order with
/// one round trip each (no retry herd after a stall) and the rate is never exceeded; a call
/// that would wait longer takes nothing and gets its wait.
const GCRA: &str = r#"
-- KEYS[1]: the quota key; ARGV: emission interval (us), tolerance (us), cost, max wait (us).
-- Returns {1, wait}: taken, due in wait us; {0, wait}: refused, would be due in wait us.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local wait = new_tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > max_wait then
  return {0, wait}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, wait}
"#;

/// The format and version tag that starts every L2 value (and is covered by its MAC).
pub const ENTRY_TAG: &str = "hcgw-l2/1";
/// The longest TTL an L2 entry may claim (the configuration's TTL limit).
pub const MAX_ENTRY_TTL: Duration = Duration::from_secs(3600);
/// How far in the future an entry's insertion time may lie (clock skew between instances).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Why a value read back from Redis was not used: the bounded `reason` label of
/// `hcgw_shared_cache_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not `hcgw-l2/1.<mac>.<json>` (another format, another version, no MAC).
    Format,
    /// The MAC does not verify (edited, or written without `redis.entry_key`).
    Mac,
    /// Authentic, but written for another cache key (copied over this one).
    Key,
    /// Authentic, but the status of another region than the one asked.
    Region,
    /// Authentic, but not a valid entry (fields missing or inconsistent).
    Shape,
    /// Times that cannot be: inserted in the future, or kept by Redis without expiry.
    Time,
}

impl Rejection {
    /// Every reason (the label's values).
    pub const ALL: [Rejection; 6] = [
        Rejection::Format,
        Rejection::Mac,
        Rejection::Key,
        Rejection::Region,
        Rejection::Shape,
        Rejection::Time,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Format => "format",
            Rejection::Mac => "mac",
            Rejection::Key => "key",
            Rejection::Region => "region",
            Rejection::Shape => "shape",
            Rejection::Time => "time",
        }
    }
}

/// An L2 entry as stored: everything the local cache entry holds, so nothing is lost on
/// the way through Redis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEntry {
    /// The cache key it was written for (already a keyed hash, never personal data).
    pub key: String,
    /// The region asked.
    pub region: RegionId,
    /// When the region (not this gateway, nor a peer's cache) gave the answer (unix ms).
    pub inserted_ms: u64,
    /// The entry's own TTL from `inserted_ms` (ms); Redis's PX only shortens it.
    pub ttl_ms: u64,
    /// The status; `None`: the region has no code for the subject.
    pub status: Option<HealthStatus>,
    /// The status is provisional (Huzhou's `locationOff`): cached for the shortest TTL.
    /// Kept here because [`HealthStatus`] never serialises it on the API.
    pub provisional: bool,
    /// The peer gateway that answered, for peer-served regions.
    pub via_peer: Option<String>,
    /// The view that peer answered with (a checkpoint view is never shown to a platform).
    pub peer_view: Option<Role>,
}

/// [`StoredEntry`] by reference, for writing without copying the status.
#[derive(Serialize)]
struct EntryRef<'a> {
    key: &'a str,
    region: RegionId,
    inserted_ms: u64,
    ttl_ms: u64,
    status: Option<&'a HealthStatus>,
    provisional: bool,
    via_peer: Option<&'a str>,
    peer_view: Option<Role>,
}

/// What the cache writes to the shared tier.
pub struct L2Put<'a> {
    /// The cache key.
    pub key: &'a str,
    /// The region asked.
    pub region: RegionId,
    /// The status, or `None` for "subject not found".
    pub status: Option<&'a HealthStatus>,
    /// The peer that answered.
    pub via_peer: Option<&'a str>,
    /// The view it answered with.
    pub peer_view: Option<Role>,
    /// How old the answer already is (a peer's cache age).
    pub age: Duration,
    /// Its TTL from the moment the region answered.
    pub ttl: Duration,
}

type HmacSha256 = Hmac<Sha256>;

/// Seals L2 entries with `redis.entry_key` and opens them again: HMAC-SHA256 over the format
/// tag, the cache key and the JSON, so an entry is bound to the key it was written for.
#[derive(Clone)]
pub struct EntrySealer {
    keyed: HmacSha256,
}

impl EntrySealer {
    /// A sealer with the configured key.
    pub fn new(key: &Secret) -> Self {
        EntrySealer {
            keyed: HmacSha256::new_from_slice(key.expose().as_bytes())
                .expect("HMAC takes any key length"),
        }
    }

    fn mac(&self, key: &str, payload: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(ENTRY_TAG.as_bytes());
        mac.update(&[0]);
        mac.update(&(key.len() as u64).to_be_bytes());
        mac.update(key.as_bytes());
        mac.update(payload.as_bytes());
        mac
    }

    /// The value stored for `payload` (the JSON of a [`StoredEntry`]) under `key`.
    pub fn seal(&self, key: &str, payload: &str) -> String {
        let tag = crate::hexfmt::lower(&self.mac(key, payload).finalize().into_bytes());
        format!("{ENTRY_TAG}.{tag}.{payload}")
    }

    /// The value stored for `entry` (under `entry.key`).
    pub fn seal_entry(&self, entry: &StoredEntry) -> String {
        let payload = serde_json::to_string(entry).expect("an entry always serialises");
        self.seal(&entry.key, &payload)
    }

    /// The entry stored under `key` for `region`, when the value is authentic and sound.
    /// Expiry is not checked here (see [`RedisTier::get`]), but impossible times are.
    pub fn open(
        &self,
        key: &str,
        region: RegionId,
        value: &str,
        now_ms: u64,
    ) -> Result<StoredEntry, Rejection> {
        let rest = value
            .strip_prefix(ENTRY_TAG)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or(Rejection::Format)?;
        let (tag, payload) = rest.split_once('.').ok_or(Rejection::Format)?;
        let mut tag_bytes = [0u8; 32];
        hex::decode_to_slice(tag, &mut tag_bytes).map_err(|_| Rejection::Format)?;
        if self.mac(key, payload).verify_slice(&tag_bytes).is_err() {
            // Authentic for the key it names? Then it was copied here from that key.
            let copied = serde_json::from_str::<StoredEntry>(payload).is_ok_and(|e| {
                e.key != key && self.mac(&e.key, payload).verify_slice(&tag_bytes).is_ok()
            });
            return Err(if copied {
                Rejection::Key
            } else {
                Rejection::Mac
            });
        }
        let entry: StoredEntry = serde_json::from_str(payload).map_err(|_| Rejection::Shape)?;
        if entry.key != key {
            return Err(Rejection::Key);
        }
        if entry.region != region || entry.status.as_ref().is_some_and(|s| s.region != region) {
            return Err(Rejection::Region);
        }
        let sound_status = match &entry.status {
            Some(s) => s.color == s.level.color(),
            None => !entry.provisional,
        };
        let sound_peer = match (&entry.via_peer, entry.peer_view) {
            (None, None) => true,
            (Some(p), view) => {
                crate::config::valid_gateway_name(p)
                    && matches!(view, None | Some(Role::Platform | Role::Checkpoint))
            }
            (None, Some(_)) => false,
        };
        if !sound_status
            || !sound_peer
            || entry.ttl_ms == 0
            || entry.ttl_ms > MAX_ENTRY_TTL.as_millis() as u64
        {
            return Err(Rejection::Shape);
        }
        if entry.inserted_ms > now_ms.saturating_add(MAX_CLOCK_SKEW.as_millis() as u64) {
            return Err(Rejection::Time);
        }
        Ok(entry)
    }
}

/// A cached answer read from Redis, authenticated and fresh.
#[derive(Debug)]
pub struct L2Hit {
    /// The status (its `provisional` flag restored), or `None` for "subject not found".
    pub status: Option<HealthStatus>,
    /// How old it is.
    pub age: Duration,
    /// How long it may still be served: the entry's own TTL left, at most what Redis
    /// still keeps it.
    pub remaining: Duration,
    /// The peer that answered.
    pub via_peer: Option<String>,
    /// The view it answered with.
    pub peer_view: Option<Role>,
}

/// Why the shared tier cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// `redis.entry_key` is not configured.
    #[error(
        "redis.entry_key: required when redis.enabled (the key that authenticates cache entries)"
    )]
    NoEntryKey,
    /// `redis.entry_key` cannot be read.
    #[error("redis.entry_key: {0}")]
    EntryKey(#[from] SecretError),
}

/// The connection to the shared tier and its health.
pub struct RedisTier {
    conn: Mutex<Option<ConnectionManager>>,
    degraded: AtomicBool,
    local_share: f64,
    script: redis::Script,
    sealer: EntrySealer,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RedisTier {
    /// Connects in the background (the gateway starts degraded until Redis answers).
    /// Fails only when `redis.entry_key` cannot be had.
    pub fn start(config: &RedisSection) -> Result<Arc<Self>, SharedError> {
        let key = config
            .entry_key
            .as_ref()
            .ok_or(SharedError::NoEntryKey)?
            .load()?;
        for r in Rejection::ALL {
            metrics::counter!("hcgw_shared_cache_rejected_total", "reason" => r.as_str())
                .increment(0);
        }
        let shared = Arc::new(RedisTier {
            conn: Mutex::new(None),
            degraded: AtomicBool::new(true),
            local_share: config.local_share,
            script: redis::Script::new(GCRA),
            sealer: EntrySealer::new(&key),
        });
        metrics::gauge!("hcgw_redis_degraded").set(1.0);
        let url = config.url.clone().unwrap_or_default();
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let client = match redis::Client::open(url.as_str()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "redis.url unusable: running on local cache and limits");
                    return;
                }
            };
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(OP_TIMEOUT)
                .set_response_timeout(OP_TIMEOUT)
                .set_number_of_retries(1);
            loop {
                match ConnectionManager::new_with_config(client.clone(), cfg.clone()).await {
                    Ok(m) => {
                        let Some(s) = weak.upgrade() else { return };
                        *s.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
                        s.mark(true);
                        break;
                    }
                    Err(e) => {
                        if weak.strong_count() == 0 {
                            return;
                        }
                        tracing::debug!(error = %e, "redis not reachable yet");
                        tokio::time::sleep(PROBE_EVERY).await;
                    }
                }
            }
            // Connected: probe once a second whether or not requests use the tier.
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(s) = weak.upgrade() else { return };
                s.probe().await;
            }
        });
        Ok(shared)
    }

    /// Whether Redis failed recently (the gateway runs on local cache and limits).
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// The share of a quota an instance takes while Redis is down.
    pub fn local_share(&self) -> f64 {
        self.local_share
    }

    fn mark(&self, ok: bool) {
        let was = self.degraded.swap(!ok, Ordering::Relaxed);
        if was == ok {
            if ok {
                tracing::info!("redis answers: shared cache and global limits resumed");
            } else {
                tracing::warn!("redis unavailable: serving with local cache and local limits");
            }
        }
        metrics::gauge!("hcgw_redis_degraded").set(if ok { 0.0 } else { 1.0 });
    }

    /// One background probe: a PING within [`OP_TIMEOUT`] marks the tier healthy, anything
    /// else degraded.
    async fn probe(&self) {
        let Some(mut conn) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        let ok = match tokio::time::timeout(OP_TIMEOUT, ping).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis probe failed");
                false
            }
            Err(_) => false,
        };
        self.mark(ok);
    }

    /// A connection when Redis may be used now: only while the tier is healthy (a degraded
    /// tier is found back by the background probe alone).
    fn conn(&self) -> Option<ConnectionManager> {
        if self.degraded() {
            return None;
        }
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut conn = self.conn()?;
        match tokio::time::timeout(OP_TIMEOUT, f(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis operation failed");
                self.mark(false);
                None
            }
            Err(_) => {
                self.mark(false);
                None
            }
        }
    }

    /// A cached answer of another instance (or this one) for `key` in `region`, when
    /// authentic and fresh. A value that does not check out is a miss, counted and logged.
    pub async fn get(&self, key: &str, region: RegionId) -> Option<L2Hit> {
        let k = format!("hcgw:c:{key}");
        let (value, pttl): (Option<String>, i64) = self
            .run(async |c| redis::pipe().get(&k).pttl(&k).query_async(c).await)
            .await?;
        let value = value?;
        let now_ms = unix_ms();
        let opened = if pttl == -1 {
            // Every entry is written with PX: one kept forever was not written by a gateway.
            Err(Rejection::Time)
        } else {
            self.sealer.open(key, region, &value, now_ms)
        };
        let entry = match opened {
            Ok(e) => e,
            Err(reason) => {
                metrics::counter!("hcgw_shared_cache_rejected_total", "reason" => reason.as_str())
                    .increment(1);
                tracing::warn!(
                    reason = reason.as_str(),
                    region = region.as_str(),
                    "shared cache entry rejected: treated as a miss"
                );
                return None;
            }
        };
        let age = now_ms.saturating_sub(entry.inserted_ms);
        let remaining = entry
            .ttl_ms
            .saturating_sub(age)
            .min(u64::try_from(pttl).unwrap_or(0));
        if remaining == 0 {
            return None;
        }
        let status = entry.status.map(|mut s| {
            s.provisional = entry.provisional;
            s
        });
        Some(L2Hit {
            status,
            age: Duration::from_millis(age),
            remaining: Duration::from_millis(remaining),
            via_peer: entry.via_peer,
            peer_view: entry.peer_view,
        })
    }

    /// Stores an answer for what is left of its TTL (best effort). Nothing is stored when
    /// the answer is already as old as its TTL.
    pub async fn put(&self, entry: L2Put<'_>) {
        let Some(left) = entry.ttl.checked_sub(entry.age).filter(|d| !d.is_zero()) else {
            return;
        };
        let payload = EntryRef {
            key: entry.key,
            region: entry.region,
            inserted_ms: unix_ms().saturating_sub(entry.age.as_millis() as u64),
            ttl_ms: entry.ttl.as_millis() as u64,
            status: entry.status,
            provisional: entry.status.is_some_and(|s| s.provisional),
            via_peer: entry.via_peer,
            peer_view: entry.peer_view,
        };
        let Ok(payload) = serde_json::to_string(&payload) else {
            return;
        };
        let value = self.sealer.seal(entry.key, &payload);
        let k = format!("hcgw:c:{}", entry.key);
        let ms = left.as_millis().max(1) as u64;
        let _: Option<()> = self
            .run(async |c| {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(&value)
                    .arg("PX")
                    .arg(ms)
                    .query_async(c)
                    .await
            })
            .await;
    }

    /// Takes `cost` from the global quota `key` (`hcgw:q:<client>`, `hcgw:r:<region>`) of
    /// `per_s` with `burst`, reserving it when it is due within `max_wait`:
    /// `Some(Ok(wait))` taken (the caller proceeds after `wait`, zero when it is there now),
    /// `Some(Err(wait))` refused (nothing taken; it would be due in `wait`), `None` Redis
    /// unavailable (use the local limit).
    pub async fn take(
        &self,
        key: &str,
        per_s: u32,
        burst: u32,
        cost: u32,
        max_wait: Duration,
    ) -> Option<Result<Duration, Duration>> {
        let interval = 1_000_000 / u64::from(per_s.max(1));
        let tolerance = interval * u64::from(burst.max(1));
        let max_wait_us = u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX);
        let (taken, wait_us): (i64, i64) = self
            .run(async |c| {
                self.script
                    .key(key)
                    .arg(interval)
                    .arg(tolerance)
                    .arg(cost.clamp(1, burst.max(1)))
                    .arg(max_wait_us)
                    .invoke_async(c)
                    .await
            })
            .await?;
        let wait = Duration::from_micros(wait_us.max(0) as u64);
        Some(if taken == 1 { Ok(wait) } else { Err(wait) })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
    use hcgw_adapters::{Action, Holder, IdType, Level, Reason, Source};

    use super::*;

    const KEY: &str = "3f2a9c0e8d7a41b3a6c2e9f0d1b4a7c8:checkpoint";
    const NOW: u64 = 1_800_000_000_000;

    fn sealer() -> EntrySealer {
        EntrySealer::new(&Secret::new("entry-key-for-unit-tests"))
    }

    /// A status with every field set to something other than its default.
    fn full_status() -> HealthStatus {
        let mut s = HealthStatus::new(
            RegionId::Huzhou,
            Level::Clear,
            Source {
                code: "1".into(),
                label: Some("绿码".into()),
            },
        );
        s.reasons = vec![Reason::Whitelisted, Reason::OtherConcern];
        s.proxy_applied = Some(false);
        s.as_of = Some(
            FixedOffset::east_opt(8 * 3600)
                .unwrap()
                .with_ymd_and_hms(2026, 11, 30, 9, 0, 0)
                .unwrap(),
        );
        s.observed_at = Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 1).unwrap();
        s.quarantine_until = NaiveDate::from_ymd_opt(2026, 12, 14);
        s.holder = Holder {
            name_masked: Some("孙*".into()),
            id_type: Some(IdType::ResidentId),
            id_masked: Some("3305**********4321".into()),
        };
        s.actions = vec![Action::RegisterOnArrival, Action::AppealPending];
        s.provisional = true;
        s
    }

    fn entry(status: Option<HealthStatus>) -> StoredEntry {
        StoredEntry {
            key: KEY.into(),
            region: RegionId::Huzhou,
            inserted_ms: NOW - 1500,
            ttl_ms: 10_000,
            provisional: status.as_ref().is_some_and(|s| s.provisional),
            status,
            via_peer: Some("hcgw-zhejiang".into()),
            peer_view: Some(Role::Checkpoint),
        }
    }

    /// The value `put` writes, opened again: the status with `provisional` restored the way
    /// `get` restores it.
    fn round_trip(e: &StoredEntry) -> StoredEntry {
        let written = serde_json::to_string(&EntryRef {
            key: &e.key,
            region: e.region,
            inserted_ms: e.inserted_ms,
            ttl_ms: e.ttl_ms,
            status: e.status.as_ref(),
            provisional: e.provisional,
            via_peer: e.via_peer.as_deref(),
            peer_view: e.peer_view,
        })
        .unwrap();
        let value = sealer().seal(&e.key, &written);
        let mut back = sealer().open(&e.key, e.region, &value, NOW).unwrap();
        if let Some(s) = &mut back.status {
            s.provisional = back.provisional;
        }
        back
    }

    #[test]
    fn every_field_of_an_entry_round_trips() {
        let e = entry(Some(full_status()));
        let back = round_trip(&e);
        assert_eq!(back, e, "the whole entry");
        let (s, b) = (e.status.as_ref().unwrap(), back.status.as_ref().unwrap());
        // One assertion per field, so a field that stops round-tripping is named.
        assert_eq!(b.region, s.region);
        assert_eq!(b.color, s.color);
        assert_eq!(b.level, s.level);
        assert_eq!(b.source, s.source);
        assert_eq!(b.reasons, s.reasons);
        assert_eq!(b.proxy_applied, s.proxy_applied);
        assert_eq!(b.as_of, s.as_of);
        assert_eq!(b.observed_at, s.observed_at);
        assert_eq!(b.quarantine_until, s.quarantine_until);
        assert_eq!(b.holder, s.holder);
        assert_eq!(b.actions, s.actions);
        assert!(
            b.provisional,
            "provisional survives although the API never shows it"
        );
        assert_eq!(back.via_peer.as_deref(), Some("hcgw-zhejiang"));
        assert_eq!(back.peer_view, Some(Role::Checkpoint));
        assert_eq!(back.inserted_ms, e.inserted_ms);
        assert_eq!(back.ttl_ms, e.ttl_ms);
        // The other values of the flags, and "subject not found".
        let mut plain = full_status();
        plain.provisional = false;
        let e = StoredEntry {
            via_peer: None,
            peer_view: None,
            ..entry(Some(plain))
        };
        assert_eq!(round_trip(&e), e);
        let e = StoredEntry {
            peer_view: Some(Role::Platform),
            ..entry(Some(full_status()))
        };
        assert_eq!(round_trip(&e).peer_view, Some(Role::Platform));
        let e = entry(None);
        assert_eq!(round_trip(&e), e);
    }

    #[test]
    fn the_mac_binds_the_value_to_its_key_and_to_the_entry_key() {
        let s = sealer();
        let e = entry(Some(full_status()));
        let value = s.seal_entry(&e);
        assert!(value.starts_with("hcgw-l2/1."), "{value}");
        assert!(s.open(KEY, RegionId::Huzhou, &value, NOW).is_ok());
        // Copied over another key.
        assert_eq!(
            s.open("another-key", RegionId::Huzhou, &value, NOW),
            Err(Rejection::Key)
        );
        // Written with another entry key.
        let other = EntrySealer::new(&Secret::new("another-entry-key-0000"));
        assert_eq!(
            s.open(KEY, RegionId::Huzhou, &other.seal_entry(&e), NOW),
            Err(Rejection::Mac)
        );
        // Every single changed character of the payload breaks the MAC.
        let payload_at = value.rfind(".{").unwrap() + 1;
        for i in (payload_at..value.len()).step_by(7) {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            assert!(
                matches!(
                    s.open(KEY, RegionId::Huzhou, &tampered, NOW),
                    Err(Rejection::Mac | Rejection::Key)
                ),
                "byte {i}"
            );
        }
        // A red made green, without the key.
        let red = entry(Some(HealthStatus::new(
            RegionId::Huzhou,
            Level::Quarantine,
            Source {
                code: "3".into(),
                label: None,
            },
        )));
        let green = s.seal_entry(&red).replace(
            r#""color":"red","level":"quarantine""#,
            r#""color":"green","level":"clear""#,
        );
        assert_eq!(
            s.open(KEY, RegionId::Huzhou, &green, NOW),
            Err(Rejection::Mac)
        );
        // The tag: wrong version, missing MAC, plain JSON as the old format wrote it.
        let payload = serde_json::to_string(&e).unwrap();
        for bad in [
            value.replacen("hcgw-l2/1", "hcgw-l2/2", 1),
            format!("hcgw-l2/1.{payload}"),
            format!("hcgw-l2/1.zz{}.{payload}", &value[12..74]),
            payload.clone(),
            String::new(),
        ] {
            assert_eq!(
                s.open(KEY, RegionId::Huzhou, &bad, NOW),
                Err(Rejection::Format),
                "{bad}"
            );
        }
    }

    #[test]
    fn authentic_entries_of_another_region_or_shape_or_time_are_refused() {
        let s = sealer();
        let open = |e: &StoredEntry| s.open(KEY, RegionId::Huzhou, &s.seal_entry(e), NOW);
        // Another region, in the envelope or in the status.
        let e = StoredEntry {
            region: RegionId::Hangzhou,
            ..entry(Some(full_status()))
        };
        assert_eq!(open(&e), Err(Rejection::Region));
        let mut other = full_status();
        other.region = RegionId::Suzhou;
        assert_eq!(open(&entry(Some(other))), Err(Rejection::Region));
        // Shapes that cannot be.
        let mut disagree = full_status();
        disagree.level = Level::Quarantine;
        for bad in [
            entry(Some(disagree)),
            StoredEntry {
                provisional: true,
                ..entry(None)
            },
            StoredEntry {
                ttl_ms: 0,
                ..entry(None)
            },
            StoredEntry {
                ttl_ms: 3_600_001,
                ..entry(None)
            },
            StoredEntry {
                via_peer: None,
                ..entry(None)
            },
            StoredEntry {
                peer_view: Some(Role::Ops),
                ..entry(None)
            },
            StoredEntry {
                via_peer: Some("not a name".into()),
                ..entry(None)
            },
        ] {
            assert_eq!(open(&bad), Err(Rejection::Shape), "{bad:?}");
        }
        let value = s.seal(KEY, r#"{"key":"k"}"#);
        assert_eq!(
            s.open(KEY, RegionId::Huzhou, &value, NOW),
            Err(Rejection::Shape)
        );
        let mut json = serde_json::to_value(entry(None)).unwrap();
        json["extra"] = true.into();
        let value = s.seal(KEY, &json.to_string());
        assert_eq!(
            s.open(KEY, RegionId::Huzhou, &value, NOW),
            Err(Rejection::Shape)
        );
        // Inserted in the future beyond the clock skew allowed.
        let future = StoredEntry {
            inserted_ms: NOW + 5001,
            ..entry(None)
        };
        assert_eq!(open(&future), Err(Rejection::Time));
        let skewed = StoredEntry {
            inserted_ms: NOW + 4000,
            ..entry(None)
        };
        assert!(open(&skewed).is_ok());
    }
}
