//! The optional Redis tier shared by several instances: an L2 status cache (key
//! `hcgw:c:<cache key>`, value = the serialised status and its insertion time, TTL set in
//! Redis with PX, nothing else stored), global per-caller quotas (`hcgw:q:<client>`) and
//! global per-region outbound rates (`hcgw:r:<region>`), both an atomic GCRA Lua script on
//! Redis server time, so N instances together respect one quota.
//!
//! When Redis is down the gateway keeps serving with its local cache and local limits
//! (each instance taking `[redis] local_share` of a quota), logs the degradation, sets
//! `hcgw_redis_degraded` to 1, shows it in `/readyz` and `/v1/regions` (readiness does not
//! fail), and probes Redis at most once a second until it answers again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hcgw_adapters::HealthStatus;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::config::RedisSection;

/// Time allowed to one Redis operation before the tier counts as degraded.
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a degraded tier is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);

const GCRA: &str = r#"
-- KEYS[1]: the quota key; ARGV: emission interval (us), tolerance (us), cost.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, 0}
"#;

/// An L2 entry: the status (`null`: the region has no code for the subject) and when it
/// was obtained (unix ms).
#[derive(Serialize, Deserialize)]
struct Stored {
    status: Option<HealthStatus>,
    inserted_ms: u64,
}

/// A cached answer read from Redis.
pub struct L2Hit {
    /// The status, or `None` for "subject not found".
    pub status: Option<HealthStatus>,
    /// How old it is.
    pub age: Duration,
    /// How long Redis keeps it still.
    pub remaining: Duration,
}

/// The connection to the shared tier and its health.
pub struct Shared {
    conn: Mutex<Option<ConnectionManager>>,
    degraded: AtomicBool,
    last_probe_ms: AtomicU64,
    started: Instant,
    local_share: f64,
    script: redis::Script,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    /// Connects in the background (the gateway starts degraded until Redis answers).
    pub fn start(config: &RedisSection) -> Arc<Self> {
        let shared = Arc::new(Shared {
            conn: Mutex::new(None),
            degraded: AtomicBool::new(true),
            last_probe_ms: AtomicU64::new(0),
            started: Instant::now(),
            local_share: config.local_share,
            script: redis::Script::new(GCRA),
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
                        return;
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
        });
        shared
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

    /// A connection when Redis may be used now: always when healthy, once a second when
    /// degraded (a probe).
    fn conn(&self) -> Option<ConnectionManager> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        if self.degraded() {
            let now = self.started.elapsed().as_millis() as u64;
            let last = self.last_probe_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) < PROBE_EVERY.as_millis() as u64
                || self
                    .last_probe_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                return None;
            }
        }
        Some(conn)
    }

    async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut conn = self.conn()?;
        match tokio::time::timeout(OP_TIMEOUT, f(&mut conn)).await {
            Ok(Ok(v)) => {
                if self.degraded() {
                    self.mark(true);
                }
                Some(v)
            }
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

    /// A cached answer of another instance (or this one), when fresh.
    pub async fn get(&self, key: &str) -> Option<L2Hit> {
        let k = format!("hcgw:c:{key}");
        let (value, pttl): (Option<String>, i64) = self
            .run(async |c| redis::pipe().get(&k).pttl(&k).query_async(c).await)
            .await?;
        let stored: Stored = serde_json::from_str(&value?).ok()?;
        if pttl <= 0 {
            return None;
        }
        Some(L2Hit {
            status: stored.status,
            age: Duration::from_millis(unix_ms().saturating_sub(stored.inserted_ms)),
            remaining: Duration::from_millis(pttl as u64),
        })
    }

    /// Stores an answer for `ttl` (best effort).
    pub async fn put(&self, key: &str, status: Option<&HealthStatus>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let Ok(value) = serde_json::to_string(&StoredRef {
            status,
            inserted_ms: unix_ms(),
        }) else {
            return;
        };
        let k = format!("hcgw:c:{key}");
        let ms = ttl.as_millis() as u64;
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
    /// `per_s` with `burst`: `Some(Ok(()))` allowed, `Some(Err(wait))` refused, `None` Redis
    /// unavailable (use the local limit).
    pub async fn take(
        &self,
        key: &str,
        per_s: u32,
        burst: u32,
        cost: u32,
    ) -> Option<Result<(), Duration>> {
        let interval = 1_000_000 / u64::from(per_s.max(1));
        let tolerance = interval * u64::from(burst.max(1));
        let (allowed, wait_us): (i64, i64) = self
            .run(async |c| {
                self.script
                    .key(key)
                    .arg(interval)
                    .arg(tolerance)
                    .arg(cost.clamp(1, burst.max(1)))
                    .invoke_async(c)
                    .await
            })
            .await?;
        Some(if allowed == 1 {
            Ok(())
        } else {
            Err(Duration::from_micros(wait_us.max(0) as u64))
        })
    }
}

#[derive(Serialize)]
struct StoredRef<'a> {
    status: Option<&'a HealthStatus>,
    inserted_ms: u64,
}
