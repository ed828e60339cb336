//! The status cache: per-region, per-colour TTLs; `subject_not_found` cached for
//! `not_found_s`; every other error never cached; concurrent identical misses coalesced
//! into one upstream call; bounded by size with a per-entry memory estimate.
//!
//! Keys are [`crate::subject::SubjectHasher::cache_key`] values (keyed hashes), never raw
//! personal data. An entry is never served past its TTL, counted from the moment the region
//! answered (a peer's cache age and an L2 entry's age count too): moka expires it with a
//! per-entry [`Expiry`], and every read also checks its age against the injected [`Clock`].
//! Below it, the optional shared tier ([`super::shared`]) keeps every field of an entry
//! (`provisional`, the peer and its view) and can only shorten what is left of its TTL.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hcgw_adapters::{Color, HealthStatus, RegionId};
use moka::Expiry;

use super::{Clock, SystemClock};
use crate::config::{Config, TtlSection};
use crate::error_code::ErrorCode;
use crate::pipeline::Fetched;
use crate::pipeline::LookupError;

/// What a cache entry holds: a status, or "the region has no code for this subject".
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A status.
    Status(Arc<HealthStatus>),
    /// `subject_not_found`.
    NotFound,
}

#[derive(Clone, Debug)]
struct Entry {
    outcome: Outcome,
    /// When this cache took it (local clock).
    inserted: Instant,
    /// How old the answer already was then (a peer's cache age, an L2 entry's age).
    age_at_insert: Duration,
    /// Its TTL counted from the region's answer.
    ttl: Duration,
    /// The peer that answered, for peer-served regions.
    via_peer: Option<String>,
    /// The view the peer answered with.
    peer_view: Option<crate::config::Role>,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.left_at_insert())
    }
}

impl Entry {
    /// Its age at `now`, counted from the region's answer.
    fn age(&self, now: Instant) -> Duration {
        self.age_at_insert + now.saturating_duration_since(self.inserted)
    }

    /// What was left of its TTL when this cache took it (zero: not to be kept).
    fn left_at_insert(&self) -> Duration {
        self.ttl.saturating_sub(self.age_at_insert)
    }
}

/// Rough memory use of an entry, in KiB units (at least 1): `[cache] max_entries` counts
/// entries of up to 1 KiB, larger ones count as several. Estimated from the status's own
/// allocations (no serialisation on the insert path).
fn weight(key: &str, entry: &Entry) -> u32 {
    let body = match &entry.outcome {
        Outcome::Status(s) => status_bytes(s),
        Outcome::NotFound => 0,
    };
    let bytes = 160 + key.len() + body;
    bytes.div_ceil(1024).max(1) as u32
}

/// The heap and inline size of a status.
fn status_bytes(s: &HealthStatus) -> usize {
    let text = |o: &Option<String>| o.as_ref().map_or(0, String::len);
    std::mem::size_of::<HealthStatus>()
        + s.source.code.len()
        + text(&s.source.label)
        + text(&s.holder.name_masked)
        + text(&s.holder.id_masked)
        + s.reasons.len() * std::mem::size_of::<hcgw_adapters::Reason>()
        + s.actions.len() * std::mem::size_of::<hcgw_adapters::Action>()
}

/// The cache.
pub struct StatusCache {
    inner: moka::future::Cache<String, Entry>,
    ttls: BTreeMap<RegionId, TtlSection>,
    clock: Arc<dyn Clock>,
    l2: Option<Arc<super::redis_tier::RedisTier>>,
}

impl StatusCache {
    /// A cache sized and timed by the configuration, on the system clock.
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            config.cache.max_entries,
            config.regions.iter().map(|(id, e)| (*id, e.ttl)).collect(),
            Arc::new(SystemClock),
        )
    }

    /// A cache of at most `max_entries` (1-KiB units) with these TTLs and clock.
    pub fn new(
        max_entries: u64,
        ttls: BTreeMap<RegionId, TtlSection>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(max_entries)
            .weigher(|k: &String, v: &Entry| weight(k, v))
            .expire_after(PerEntryTtl)
            .eviction_listener(|_, _, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    metrics::counter!("hcgw_cache_evictions_total").increment(1);
                }
            })
            .build();
        StatusCache {
            inner,
            ttls,
            clock,
            l2: None,
        }
    }

    /// Adds the shared Redis tier under this cache.
    pub fn set_l2(&mut self, l2: Option<Arc<super::redis_tier::RedisTier>>) {
        self.l2 = l2;
    }

    /// The TTL of an outcome of `region` (zero: not cached).
    pub fn ttl(&self, region: RegionId, outcome: &Outcome) -> Duration {
        let t = self.ttls.get(&region).copied().unwrap_or_default();
        let secs = match outcome {
            Outcome::NotFound => t.not_found_s,
            Outcome::Status(s) => {
                let by_colour = match s.color {
                    Color::Green => t.green_s,
                    Color::Yellow => t.yellow_s,
                    Color::Red => t.red_s,
                    Color::Unknown => t.unknown_s,
                };
                if s.provisional {
                    let shortest = [t.green_s, t.yellow_s, t.red_s, t.unknown_s]
                        .into_iter()
                        .min()
                        .unwrap_or(0);
                    by_colour.min(shortest)
                } else {
                    by_colour
                }
            }
        };
        Duration::from_secs(secs)
    }

    /// Entries held (approximate).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// A fresh entry, when there is one (an expired one is removed).
    pub async fn get(&self, region: RegionId, key: &str) -> Option<Result<Fetched, LookupError>> {
        let entry = self.inner.get(key).await?;
        let age = entry.age(self.clock.now());
        if age >= entry.ttl {
            self.inner.invalidate(key).await;
            return None;
        }
        Some(served(region, &entry, age))
    }

    /// The cached answer for `key`, or `fetch`'s (cached when cacheable). Concurrent
    /// callers with the same key share one `fetch`.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        region: RegionId,
        key: &str,
        fetch: F,
    ) -> Result<Fetched, LookupError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Fetched, LookupError>>,
    {
        let label = region.as_str();
        // Twice at most: a stale entry found by the coalescing call is dropped and asked
        // again; a third time the region is asked directly.
        for _ in 0..2 {
            if let Some(hit) = self.get(region, key).await {
                metrics::counter!("hcgw_cache_hits_total", "region" => label).increment(1);
                return hit;
            }
            let mine = AtomicBool::new(false);
            let from_l2 = AtomicBool::new(false);
            let fresh: std::sync::Mutex<Option<Fetched>> = std::sync::Mutex::new(None);
            let result = self
                .inner
                .try_get_with_by_ref(key, async {
                    mine.store(true, Ordering::Relaxed);
                    if let Some(l2) = &self.l2
                        && let Some(hit) = l2.get(key, region).await
                    {
                        let outcome = match hit.status {
                            Some(s) => Outcome::Status(Arc::new(s)),
                            None => Outcome::NotFound,
                        };
                        // Never longer than this gateway's own TTL for it, nor than the
                        // entry's own (already in `remaining`).
                        let ttl = hit.age
                            + hit
                                .remaining
                                .min(self.ttl(region, &outcome).saturating_sub(hit.age));
                        if ttl > hit.age {
                            from_l2.store(true, Ordering::Relaxed);
                            return Ok(Entry {
                                outcome,
                                inserted: self.clock.now(),
                                age_at_insert: hit.age,
                                ttl,
                                via_peer: hit.via_peer,
                                peer_view: hit.peer_view,
                            });
                        }
                    }
                    metrics::counter!("hcgw_cache_misses_total", "region" => label).increment(1);
                    // A peer's answer may itself come from the peer's cache: its age counts
                    // against our TTL, so nothing is served past its TTL from the region's
                    // answer, however many gateways it crossed.
                    let mut upstream_age = Duration::ZERO;
                    let via_peer;
                    let mut peer_view = None;
                    let outcome = match fetch().await {
                        Ok(f) => {
                            upstream_age = f.age;
                            via_peer = f.via_peer.clone();
                            peer_view = f.peer_view;
                            let o = Outcome::Status(f.status.clone());
                            *fresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
                            o
                        }
                        Err(e) if e.code == ErrorCode::SubjectNotFound => {
                            via_peer = e.via_peer.clone();
                            Outcome::NotFound
                        }
                        Err(e) => return Err(e),
                    };
                    let ttl = self.ttl(region, &outcome);
                    if let Some(l2) = &self.l2 {
                        let status = match &outcome {
                            Outcome::Status(s) => Some(s.as_ref()),
                            Outcome::NotFound => None,
                        };
                        l2.put(super::redis_tier::L2Put {
                            key,
                            region,
                            status,
                            via_peer: via_peer.as_deref(),
                            peer_view,
                            age: upstream_age,
                            ttl,
                        })
                        .await;
                    }
                    Ok(Entry {
                        outcome,
                        inserted: self.clock.now(),
                        age_at_insert: upstream_age,
                        ttl,
                        via_peer,
                        peer_view,
                    })
                })
                .await;
            metrics::gauge!("hcgw_cache_entries").set(self.inner.entry_count() as f64);
            let entry = match result {
                Ok(e) => e,
                Err(e) => return Err(LookupError::clone(&e)),
            };
            if entry.left_at_insert().is_zero() {
                self.inner.invalidate(key).await;
            }
            if mine.load(Ordering::Relaxed) && !from_l2.load(Ordering::Relaxed) {
                return match (
                    entry.outcome,
                    fresh.into_inner().unwrap_or_else(|e| e.into_inner()),
                ) {
                    (Outcome::Status(_), Some(f)) => Ok(f),
                    _ => Err(not_found(region, entry.via_peer.clone())),
                };
            }
            // Another caller's fetch (coalesced): served if still fresh by our clock.
            let now = self.clock.now();
            let age = entry.age(now);
            if age < entry.ttl || entry.ttl.is_zero() && now == entry.inserted {
                metrics::counter!("hcgw_cache_hits_total", "region" => label).increment(1);
                return served(region, &entry, age);
            }
            self.inner.invalidate(key).await;
        }
        fetch().await
    }
}

fn not_found(region: RegionId, via_peer: Option<String>) -> LookupError {
    let mut e = LookupError::from_adapter(region, &hcgw_adapters::AdapterError::SubjectNotFound);
    e.via_peer = via_peer;
    e
}

fn served(region: RegionId, entry: &Entry, age: Duration) -> Result<Fetched, LookupError> {
    match &entry.outcome {
        Outcome::Status(s) => Ok(Fetched {
            status: s.clone(),
            cache_hit: true,
            age,
            upstream_latency: None,
            via_peer: entry.via_peer.clone(),
            peer_view: entry.peer_view,
            peer_proof: None,
        }),
        Outcome::NotFound => Err(not_found(region, entry.via_peer.clone())),
    }
}

/// As a layer of the lookup pipeline: a fresh entry answers, else the rest of the stack is
/// asked (once for all concurrent identical questions) and its answer cached when cacheable.
#[async_trait::async_trait]
impl crate::pipeline::Layer for StatusCache {
    async fn call(
        &self,
        ask: &crate::pipeline::Ask<'_>,
        next: crate::pipeline::Next<'_>,
    ) -> crate::pipeline::FetchResult {
        self.get_or_fetch(ask.region, ask.key, || next.run(ask))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use hcgw_adapters::{AdapterError, Level, Source};

    use super::*;
    use crate::protect::ManualClock;

    fn status(level: Level, provisional: bool) -> Fetched {
        let mut s = HealthStatus::new(
            RegionId::Huzhou,
            level,
            Source {
                code: "x".into(),
                label: None,
            },
        );
        s.provisional = provisional;
        Fetched {
            status: s.into(),
            cache_hit: false,
            age: Duration::ZERO,
            upstream_latency: Some(Duration::from_millis(3)),
            via_peer: None,
            peer_view: None,
            peer_proof: None,
        }
    }

    fn cache(clock: Arc<ManualClock>) -> StatusCache {
        let ttl = TtlSection {
            green_s: 60,
            yellow_s: 30,
            red_s: 20,
            unknown_s: 15,
            not_found_s: 10,
        };
        StatusCache::new(1000, [(RegionId::Huzhou, ttl)].into_iter().collect(), clock)
    }

    /// Asks for `key` with a fetch answering `answer`; returns the result and whether the
    /// region was asked.
    async fn ask(
        c: &StatusCache,
        key: &str,
        answer: impl Fn() -> Result<Fetched, LookupError>,
    ) -> (Result<Fetched, LookupError>, u32) {
        let calls = AtomicU32::new(0);
        let r = c
            .get_or_fetch(RegionId::Huzhou, key, || {
                calls.fetch_add(1, Ordering::SeqCst);
                let a = answer();
                async move { a }
            })
            .await;
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn ttl_per_colour_and_never_a_hit_after_it() {
        for (level, provisional, ttl) in [
            (Level::Clear, false, 60),
            (Level::Monitoring, false, 30),
            (Level::Quarantine, false, 20),
            (Level::Unknown, false, 15),
            // Provisional (Huzhou locationOff): at most the shortest TTL of the region.
            (Level::Clear, true, 15),
        ] {
            let clock = Arc::new(ManualClock::default());
            let c = cache(clock.clone());
            let key = "k";
            let (r, calls) = ask(&c, key, || Ok(status(level, provisional))).await;
            assert!(!r.unwrap().cache_hit);
            assert_eq!(calls, 1);
            clock.advance(Duration::from_secs(ttl) - Duration::from_millis(1));
            let (r, calls) = ask(&c, key, || Ok(status(level, provisional))).await;
            let hit = r.unwrap();
            assert!(hit.cache_hit, "{level:?} hit before its TTL");
            assert_eq!(calls, 0);
            assert_eq!(hit.age, Duration::from_secs(ttl) - Duration::from_millis(1));
            assert_eq!(hit.upstream_latency, None);
            clock.advance(Duration::from_millis(1));
            let (r, calls) = ask(&c, key, || Ok(status(level, provisional))).await;
            assert!(
                !r.unwrap().cache_hit,
                "{level:?}: never a hit at or after {ttl} s"
            );
            assert_eq!(calls, 1);
        }
    }

    #[tokio::test]
    async fn not_found_is_cached_for_its_ttl() {
        let clock = Arc::new(ManualClock::default());
        let c = cache(clock.clone());
        let nf = || {
            Err(LookupError::from_adapter(
                RegionId::Huzhou,
                &AdapterError::SubjectNotFound,
            ))
        };
        let (r, calls) = ask(&c, "n", nf).await;
        assert_eq!(r.unwrap_err().code, ErrorCode::SubjectNotFound);
        assert_eq!(calls, 1);
        clock.advance(Duration::from_secs(9));
        let (r, calls) = ask(&c, "n", nf).await;
        assert_eq!(r.unwrap_err().code, ErrorCode::SubjectNotFound);
        assert_eq!(calls, 0, "not-found cached");
        clock.advance(Duration::from_secs(1));
        let (_, calls) = ask(&c, "n", nf).await;
        assert_eq!(calls, 1, "not after 10 s");
    }

    #[tokio::test]
    async fn errors_are_never_cached() {
        let clock = Arc::new(ManualClock::default());
        let c = cache(clock);
        for e in [
            AdapterError::unavailable("down"),
            AdapterError::Timeout(Duration::from_secs(2)),
            AdapterError::RateLimited { retry_after: None },
            AdapterError::invalid_response("sig"),
            AdapterError::TokenExpired,
            AdapterError::InvalidRequest("x".into()),
        ] {
            for _ in 0..2 {
                let e2 = e.clone();
                let (r, calls) = ask(&c, "e", move || {
                    Err(LookupError::from_adapter(RegionId::Huzhou, &e2))
                })
                .await;
                assert!(r.is_err());
                assert_eq!(calls, 1, "{e:?} is not cached");
            }
        }
        assert_eq!(c.entry_count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_identical_misses_make_one_call() {
        let c = Arc::new(cache(Arc::new(ManualClock::default())));
        let calls = Arc::new(AtomicU32::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..500 {
            let (c, calls, gate) = (c.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                c.get_or_fetch(RegionId::Huzhou, "same", || {
                    let (calls, gate) = (calls.clone(), gate.clone());
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Hold the call until everyone is waiting.
                        tokio::time::timeout(Duration::from_millis(300), gate.notified())
                            .await
                            .ok();
                        Ok(status(Level::Clear, false))
                    }
                })
                .await
            }));
        }
        let mut hits = 0;
        for t in tasks {
            if t.await.unwrap().unwrap().cache_hit {
                hits += 1;
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(hits, 499);
    }

    #[tokio::test]
    async fn a_peer_answers_age_counts_against_the_ttl_however_large() {
        let clock = Arc::new(ManualClock::default());
        let c = cache(clock.clone());
        let aged = |age: Duration| {
            move || {
                let mut f = status(Level::Clear, false);
                f.age = age;
                f.via_peer = Some("hcgw-zhejiang".into());
                f.peer_view = Some(crate::config::Role::Checkpoint);
                Ok(f)
            }
        };
        // 50 s old at the peer: 10 s left of the 60 s green TTL here.
        let (r, calls) = ask(&c, "a", aged(Duration::from_secs(50))).await;
        assert!(!r.unwrap().cache_hit);
        assert_eq!(calls, 1);
        clock.advance(Duration::from_millis(9999));
        let (r, calls) = ask(&c, "a", aged(Duration::ZERO)).await;
        let hit = r.unwrap();
        assert!(hit.cache_hit && calls == 0);
        assert_eq!(
            hit.age,
            Duration::from_millis(59_999),
            "age since the region"
        );
        assert_eq!(hit.via_peer.as_deref(), Some("hcgw-zhejiang"));
        assert_eq!(hit.peer_view, Some(crate::config::Role::Checkpoint));
        clock.advance(Duration::from_millis(1));
        let (_, calls) = ask(&c, "a", aged(Duration::ZERO)).await;
        assert_eq!(calls, 1, "not at 60 s since the region answered");
        // Older than the TTL already, or absurdly old: served once, never cached.
        for age in [Duration::from_secs(60), Duration::from_millis(u64::MAX)] {
            let key = format!("old-{}", age.as_secs());
            let (r, calls) = ask(&c, &key, aged(age)).await;
            assert!(!r.unwrap().cache_hit);
            assert_eq!(calls, 1);
            let (_, calls) = ask(&c, &key, aged(age)).await;
            assert_eq!(calls, 1, "{age:?}: not cached");
        }
    }

    #[tokio::test]
    async fn ttl_zero_is_not_cached() {
        let clock = Arc::new(ManualClock::default());
        let ttl = TtlSection {
            green_s: 0,
            ..TtlSection::default()
        };
        let c = StatusCache::new(100, [(RegionId::Huzhou, ttl)].into_iter().collect(), clock);
        let (_, calls) = ask(&c, "z", || Ok(status(Level::Clear, false))).await;
        assert_eq!(calls, 1);
        let (_, calls) = ask(&c, "z", || Ok(status(Level::Clear, false))).await;
        assert_eq!(calls, 1);
    }
}
