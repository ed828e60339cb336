//! A shared, single-flight cache of a region's access token (OAuth2 client credentials,
//! WeChat-style `access_token`, …).
//!
//! - The token is cached with its lifetime and refreshed *before* it expires: after
//!   `lifetime − min(margin, lifetime × max_fraction)` (by default 5 minutes, or 10 % of
//!   short lifetimes).
//! - When many requests find the token missing, due for refresh or invalidated, exactly
//!   **one** fetch runs and every request waiting at that moment shares its result, success
//!   or failure. A failure is never cached: the next request starts a new fetch.
//! - Every token carries a *generation*. A request whose token the region rejected (HTTP 401,
//!   errcode 40001/42001, …) invalidates only that generation, so a late rejection of an old
//!   token never throws away the fresh one another request has just fetched.
//! - While a refresh is due but the current token has not expired yet, a failed refresh
//!   falls back to the still-valid token (the failure is not cached, so the next request
//!   tries again).
//! - If the request running the fetch is cancelled (its caller went away), one of the
//!   waiting requests takes the fetch over.
//!
//! [`TokenCache::call`] wraps the whole dance for an adapter: get a token, make the call,
//! and if the region rejects the token, invalidate it, get a new one (single-flight) and
//! retry once; a second rejection is `region_unavailable`.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::error::AdapterError;
use crate::secret::Secret;

/// When a cached token is refreshed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefreshPolicy {
    /// Refresh this long before the token expires…
    pub margin: Duration,
    /// …but never earlier than this fraction of its lifetime before expiry (0.0–1.0), so
    /// that a short-lived token is still used for most of its life.
    pub max_fraction: f64,
}

impl Default for RefreshPolicy {
    /// 5 minutes before expiry, or 10 % of the lifetime when that is shorter.
    fn default() -> Self {
        RefreshPolicy {
            margin: Duration::from_secs(300),
            max_fraction: 0.1,
        }
    }
}

impl RefreshPolicy {
    /// How long after it was fetched a token of this lifetime is refreshed.
    pub fn refresh_after(&self, lifetime: Duration) -> Duration {
        let fraction = self.max_fraction.clamp(0.0, 1.0);
        let margin = self.margin.min(lifetime.mul_f64(fraction));
        lifetime.saturating_sub(margin)
    }
}

/// The longest lifetime a token is trusted for, whatever `expires_in` says (one day; the
/// contracts give 7200 s). A longer lifetime is capped, so a region's absurd number can
/// neither overflow a clock nor keep a revoked token in use for years.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// The lifetime of a token from the token endpoint's `expires_in` (whole seconds, already
/// read as a non-negative integer: a negative, fractional, string or out-of-range
/// `expires_in` is refused by the typed parse). `0` is `upstream_invalid_response` (a token
/// that is already expired cannot be used); anything over [`MAX_TOKEN_LIFETIME`] is capped.
pub fn lifetime_from_expires_in(expires_in: u64) -> Result<Duration, AdapterError> {
    if expires_in == 0 {
        return Err(AdapterError::invalid_response(
            "token answer with expires_in 0",
        ));
    }
    Ok(Duration::from_secs(expires_in).min(MAX_TOKEN_LIFETIME))
}

/// A token as the region's token endpoint returned it.
#[derive(Clone, Debug)]
pub struct FetchedToken {
    /// The opaque token.
    pub value: Secret,
    /// How long the region says it is valid (`expires_in`).
    pub lifetime: Duration,
}

/// A cached token handed to a request: its value and the generation it belongs to.
/// Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    value: Secret,
    generation: u64,
}

impl Token {
    /// The token value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        self.value.expose()
    }

    /// The generation (1 for the first token fetched, then 2, …).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(generation {}, [redacted])", self.generation)
    }
}

/// What a call made with a token came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// The region answered (with a status or an error that is not about the token).
    Done(Result<T, AdapterError>),
    /// The region rejected the token (expired, revoked, invalid).
    TokenRejected,
}

/// The clock the cache reads (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// One fetch that every request waiting at the same time shares.
type Flight = OnceCell<Result<Token, AdapterError>>;

struct Entry {
    token: Token,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct State {
    current: Option<Entry>,
    flight: Option<Arc<Flight>>,
    generation: u64,
    fetches: u64,
}

/// A single-flight token cache for one region (one per adapter; cheap to share by `&`).
pub struct TokenCache {
    state: Mutex<State>,
    policy: RefreshPolicy,
    clock: Clock,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("TokenCache")
            .field("generation", &st.generation)
            .field("cached", &st.current.is_some())
            .field("fetches", &st.fetches)
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(RefreshPolicy::default())
    }
}

impl TokenCache {
    /// An empty cache with the given refresh policy.
    pub fn new(policy: RefreshPolicy) -> Self {
        TokenCache::with_clock(policy, Arc::new(Instant::now))
    }

    /// An empty cache reading time from `clock` (tests move time forward with it).
    pub fn with_clock(policy: RefreshPolicy, clock: Clock) -> Self {
        TokenCache {
            state: Mutex::new(State::default()),
            policy,
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is always consistent between statements, so a panic elsewhere while
        // holding the lock cannot leave it half-updated: recover from poisoning.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many fetches have been started (for metrics and tests).
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    /// A valid token: the cached one while it is fresh, else the result of the one fetch
    /// in flight (started with `fetch` if none is). A fetch failure is returned to every
    /// request that waited on it and is not cached.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Token, AdapterError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, AdapterError>>,
    {
        let (flight, fallback) = {
            let mut st = self.lock();
            let now = (self.clock)();
            let fallback = match &st.current {
                Some(e) if now < e.refresh_at => return Ok(e.token.clone()),
                Some(e) if now < e.expires_at => Some(e.token.clone()),
                _ => None,
            };
            let flight = st
                .flight
                .get_or_insert_with(|| Arc::new(OnceCell::new()))
                .clone();
            (flight, fallback)
        };
        let result = flight
            .get_or_init(|| async {
                self.lock().fetches += 1;
                let fetched = fetch().await;
                let mut st = self.lock();
                // This flight is over: the next request that needs a token starts a new one
                // (so a failure is shared by this flight's waiters only, never cached).
                if st.flight.as_ref().is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                    st.flight = None;
                }
                let fetched = fetched?;
                st.generation += 1;
                let token = Token {
                    value: fetched.value,
                    generation: st.generation,
                };
                let now = (self.clock)();
                // Capped and checked: no lifetime can overflow the clock (a panic here
                // would kill the request with no answer and no audit record).
                let lifetime = fetched.lifetime.min(MAX_TOKEN_LIFETIME);
                let after = |d: Duration| now.checked_add(d).unwrap_or(now);
                st.current = Some(Entry {
                    token: token.clone(),
                    refresh_at: after(self.policy.refresh_after(lifetime)),
                    expires_at: after(lifetime),
                });
                Ok(token)
            })
            .await
            .clone();
        match (result, fallback) {
            (Ok(token), _) => Ok(token),
            (Err(_), Some(still_valid)) if !self.is_invalidated(&still_valid) => Ok(still_valid),
            (Err(e), _) => Err(e),
        }
    }

    fn is_invalidated(&self, token: &Token) -> bool {
        let st = self.lock();
        let now = (self.clock)();
        !st.current
            .as_ref()
            .is_some_and(|e| e.token.generation == token.generation && now < e.expires_at)
    }

    /// Forgets `token` because the region rejected it, if it is still the cached one. A
    /// rejection of an older generation is ignored: a newer token is already cached.
    pub fn invalidate(&self, token: &Token) {
        let mut st = self.lock();
        if st
            .current
            .as_ref()
            .is_some_and(|e| e.token.generation == token.generation)
        {
            st.current = None;
        }
    }

    /// Makes `call` with a valid token; if the region rejects the token, invalidates it,
    /// gets a new one (one fetch for all requests in the same situation) and retries once.
    /// A second rejection is `region_unavailable` (our credentials or the region's token
    /// service are broken).
    pub async fn call<T, F, FFut, C, CFut>(&self, fetch: F, call: C) -> Result<T, AdapterError>
    where
        F: Fn() -> FFut,
        FFut: Future<Output = Result<FetchedToken, AdapterError>>,
        C: Fn(Token) -> CFut,
        CFut: Future<Output = Attempt<T>>,
    {
        for _ in 0..2 {
            let token = self.get(&fetch).await?;
            match call(token.clone()).await {
                Attempt::Done(result) => return result,
                Attempt::TokenRejected => self.invalidate(&token),
            }
        }
        Err(AdapterError::credentials_refused(
            "the region rejected a freshly fetched access token",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AdapterCode;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// A clock tests move by hand.
    #[derive(Clone)]
    struct ManualClock {
        start: Instant,
        offset_ms: Arc<AtomicU64>,
    }

    impl ManualClock {
        fn new() -> Self {
            ManualClock {
                start: Instant::now(),
                offset_ms: Arc::new(AtomicU64::new(0)),
            }
        }
        fn advance(&self, d: Duration) {
            self.offset_ms
                .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
        fn clock(&self) -> Clock {
            let me = self.clone();
            Arc::new(move || me.start + Duration::from_millis(me.offset_ms.load(Ordering::SeqCst)))
        }
    }

    fn token(n: usize, lifetime_s: u64) -> FetchedToken {
        FetchedToken {
            value: Secret::new(format!("tok-{n}")),
            lifetime: Duration::from_secs(lifetime_s),
        }
    }

    /// A fetcher counting its calls, answering `tok-<n>` after a short delay.
    fn counting(
        count: &Arc<AtomicUsize>,
        lifetime_s: u64,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<FetchedToken, AdapterError>> + Send>>
    {
        let count = count.clone();
        move || {
            let count = count.clone();
            Box::pin(async move {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(token(n, lifetime_s))
            })
        }
    }

    #[test]
    fn refresh_margin_is_the_smaller_of_margin_and_fraction() {
        let p = RefreshPolicy::default();
        assert_eq!(
            p.refresh_after(Duration::from_secs(7200)),
            Duration::from_secs(6900)
        );
        assert_eq!(
            p.refresh_after(Duration::from_secs(10)),
            Duration::from_secs(9)
        );
        assert_eq!(p.refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_callers_cause_exactly_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let count = Arc::new(AtomicUsize::new(0));
        // All 50 start together (the fetch takes 50 ms, so they overlap).
        let start = Arc::new(tokio::sync::Barrier::new(50));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, count, start) = (cache.clone(), count.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                cache.get(counting(&count, 7200)).await
            }));
        }
        for t in tasks {
            let tok = t.await.unwrap().unwrap();
            assert_eq!((tok.expose(), tok.generation()), ("tok-1", 1));
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(cache.fetches(), 1);
        // And the token stays cached.
        let tok = cache.get(counting(&count, 7200)).await.unwrap();
        assert_eq!(tok.generation(), 1);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refreshes_before_expiry_not_after() {
        let clock = ManualClock::new();
        let cache = TokenCache::with_clock(RefreshPolicy::default(), clock.clock());
        let count = Arc::new(AtomicUsize::new(0));
        let fetch = counting(&count, 7200);
        assert_eq!(cache.get(&fetch).await.unwrap().generation(), 1);
        // 7200 s lifetime, 5 min margin: still fresh at 6899 s.
        clock.advance(Duration::from_secs(6899));
        assert_eq!(cache.get(&fetch).await.unwrap().generation(), 1);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // Due at 6900 s, well before the 7200 s expiry.
        clock.advance(Duration::from_secs(2));
        let t = cache.get(&fetch).await.unwrap();
        assert_eq!((t.expose(), t.generation()), ("tok-2", 2));
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // A short-lived token is refreshed after 90 % of its life.
        let cache = TokenCache::with_clock(RefreshPolicy::default(), clock.clock());
        let count = Arc::new(AtomicUsize::new(0));
        let fetch = counting(&count, 10);
        cache.get(&fetch).await.unwrap();
        clock.advance(Duration::from_millis(8_900));
        assert_eq!(cache.get(&fetch).await.unwrap().generation(), 1);
        clock.advance(Duration::from_millis(200));
        assert_eq!(cache.get(&fetch).await.unwrap().generation(), 2);
    }

    #[tokio::test]
    async fn expired_token_is_never_served() {
        let clock = ManualClock::new();
        let cache = TokenCache::with_clock(RefreshPolicy::default(), clock.clock());
        cache.get(|| async { Ok(token(1, 100)) }).await.unwrap();
        clock.advance(Duration::from_secs(100));
        // Refresh fails and the token has expired: the failure propagates.
        let err = cache
            .get(|| async { Err(AdapterError::unavailable("down")) })
            .await
            .unwrap_err();
        assert_eq!(err.code(), AdapterCode::RegionUnavailable);
    }

    #[tokio::test]
    async fn failed_early_refresh_falls_back_to_the_still_valid_token() {
        let clock = ManualClock::new();
        let cache = TokenCache::with_clock(RefreshPolicy::default(), clock.clock());
        cache.get(|| async { Ok(token(1, 100)) }).await.unwrap();
        clock.advance(Duration::from_secs(95));
        let t = cache
            .get(|| async { Err(AdapterError::unavailable("down")) })
            .await
            .unwrap();
        assert_eq!(t.generation(), 1);
        // Not cached: the next request tries again.
        let t = cache.get(|| async { Ok(token(2, 100)) }).await.unwrap();
        assert_eq!(t.generation(), 2);
        assert_eq!(cache.fetches(), 3);
    }

    #[tokio::test]
    async fn invalidation_is_by_generation() {
        let cache = TokenCache::default();
        let count = Arc::new(AtomicUsize::new(0));
        let fetch = counting(&count, 7200);
        let old = cache.get(&fetch).await.unwrap();
        cache.invalidate(&old);
        let new = cache.get(&fetch).await.unwrap();
        assert_eq!((new.expose(), new.generation()), ("tok-2", 2));
        // A late rejection of the old token must not throw the fresh one away.
        cache.invalidate(&old);
        let again = cache.get(&fetch).await.unwrap();
        assert_eq!(again, new);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_rejections_of_the_same_token_cause_one_refetch() {
        let cache = Arc::new(TokenCache::default());
        let count = Arc::new(AtomicUsize::new(0));
        let old = cache.get(counting(&count, 7200)).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, count, old) = (cache.clone(), count.clone(), old.clone());
            tasks.push(tokio::spawn(async move {
                cache.invalidate(&old);
                cache.get(counting(&count, 7200)).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().generation(), 2);
        }
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fetch_failure_is_shared_by_waiters_and_not_cached() {
        let cache = Arc::new(TokenCache::default());
        let count = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, count) = (cache.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err(AdapterError::credentials_refused("40013"))
                    })
                    .await
            }));
        }
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert_eq!(e, AdapterError::credentials_refused("40013"));
        }
        assert_eq!(count.load(Ordering::SeqCst), 1, "one fetch for all waiters");
        // The failure is not cached: the next request fetches again and succeeds.
        let t = cache.get(|| async { Ok(token(7, 7200)) }).await.unwrap();
        assert_eq!((t.expose(), t.generation()), ("tok-7", 1));
        assert_eq!(cache.fetches(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_fetch_is_taken_over_by_a_waiter() {
        let cache = Arc::new(TokenCache::default());
        let leader = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get(|| async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(token(0, 7200))
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let follower = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(|| async { Ok(token(1, 7200)) }).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        let t = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("the waiter takes over")
            .unwrap()
            .unwrap();
        assert_eq!(t.expose(), "tok-1");
    }

    #[tokio::test]
    async fn call_retries_once_with_a_fresh_token() {
        let cache = TokenCache::default();
        let count = Arc::new(AtomicUsize::new(0));
        let fetch = counting(&count, 7200);
        // The first token is rejected, the second accepted.
        let out = cache
            .call(&fetch, |t: Token| async move {
                if t.generation() == 1 {
                    Attempt::TokenRejected
                } else {
                    Attempt::Done(Ok(t.expose().to_owned()))
                }
            })
            .await
            .unwrap();
        assert_eq!(out, "tok-2");
        // Always rejected: one retry, then region_unavailable.
        let calls = AtomicUsize::new(0);
        let err = cache
            .call(&fetch, |_t: Token| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Attempt::<()>::TokenRejected }
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), AdapterCode::RegionUnavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Errors that are not about the token are returned as they are, without retry.
        let err = cache
            .call(&fetch, |_t: Token| async {
                Attempt::<()>::Done(Err(AdapterError::SubjectNotFound))
            })
            .await
            .unwrap_err();
        assert_eq!(err, AdapterError::SubjectNotFound);
    }

    #[test]
    fn expires_in_is_refused_at_zero_and_capped() {
        assert!(matches!(
            lifetime_from_expires_in(0),
            Err(AdapterError::InvalidResponse(_))
        ));
        assert_eq!(
            lifetime_from_expires_in(7200).unwrap(),
            Duration::from_secs(7200)
        );
        for huge in [86_401, 1 << 63, u64::MAX] {
            assert_eq!(lifetime_from_expires_in(huge).unwrap(), MAX_TOKEN_LIFETIME);
        }
    }

    #[tokio::test]
    async fn an_absurd_lifetime_neither_panics_nor_outlives_the_cap() {
        let clock = ManualClock::new();
        let cache = TokenCache::with_clock(RefreshPolicy::default(), clock.clock());
        let fetch = || async {
            Ok(FetchedToken {
                value: Secret::new("tok-max"),
                lifetime: Duration::MAX,
            })
        };
        assert_eq!(cache.get(fetch).await.unwrap().generation(), 1);
        // Refreshed within the cap, not in 584 billion years.
        clock.advance(MAX_TOKEN_LIFETIME);
        let count = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            cache
                .get(counting(&count, 7200))
                .await
                .unwrap()
                .generation(),
            2
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = Token {
            value: Secret::new("s3cr3t"),
            generation: 3,
        };
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }
}
