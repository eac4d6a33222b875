//! Storage for the `tower-edge` response cache: the [`CacheStore`] trait, [`CacheKey`],
//! [`Entry`] with its versioned codec, and [`MokaStore`], the in-memory backend.
//!
//! This crate is the stable extension point of `tower-edge`. It is separate so that users who
//! only want validators or compression compile neither moka nor a Redis client, and so that a new
//! backend needs nothing but this crate.
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{HeaderMap, StatusCode};
//! use tower_edge_store::{CacheKey, CacheStore, Entry, MokaStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_edge_store::StoreError> {
//! let store = MokaStore::builder().max_bytes(64 * 1024 * 1024).build();
//! let key = CacheKey::new("GET https://example.com/api/items").with_variant("enc", "br");
//! let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"[]"))
//!     .with_tags(vec!["items".into()]);
//! store.put(&key, entry, Duration::from_secs(60)).await?;
//! assert!(store.get(&key).await?.is_some());
//!
//! // Invalidation by tag removes every variant that carries it.
//! assert_eq!(store.delete_tag("items").await?, 1);
//! assert!(store.get(&key).await?.is_none());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `moka` (default) | [`MokaStore`]: in memory, bounded by bytes, per-entry TTL |
//! | `memo` (default) | [`memo::Memo`]: typed function caching with single-flight and grace |
//! | `macros` | [`memo::memoize`]: `#[memoize(memo = .., ttl = "60s")]` on an async function, keyed by its arguments |
//! | `single-flight` (with `memo`) | [`single_flight`]: one call to the source per key, in a process and across processes sharing a store |
//! | `redis` | [`RedisStore`] on deadpool-redis, failing open; [`tiered::Tiered`] memory-in-front-of-Redis with the cross-instance invalidation bus |
//! | `metrics` | Redis operation durations, `Memo` events, and the gauges of [`CacheStore::record_metrics`], through the `metrics` facade |
//! | `test-util` | [`testing::Scripted`]: a store wrapper that fails, stalls or races on cue, for tests of code built on a store |

#![cfg_attr(docsrs, feature(doc_cfg))]

use std::{future::Future, sync::Arc, time::Duration};

#[cfg(feature = "redis")]
mod bus;
/// The clock the stores and [`memo::Memo`] read the time from: `tower-edge-clock`'s, the same
/// as `tower_edge::clock`, so one [`ManualClock`](clock::ManualClock) drives them all.
pub use tower_edge_clock as clock;
mod entry;
mod error;
pub mod fence;
mod key;
#[cfg(feature = "memo")]
#[cfg_attr(docsrs, doc(cfg(feature = "memo")))]
pub mod memo;
#[cfg(feature = "moka")]
#[cfg_attr(docsrs, doc(cfg(feature = "moka")))]
pub mod moka;
mod observe;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(feature = "single-flight")]
#[cfg_attr(docsrs, doc(cfg(feature = "single-flight")))]
pub mod single_flight;
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod tiered;

#[cfg(feature = "moka")]
pub use self::moka::MokaStore;
#[cfg(feature = "redis")]
pub use self::redis::{RedisStats, RedisStore, RedisStoreBuilder};
pub use self::{entry::Entry, error::StoreError, key::CacheKey};

/// Proof of holding a store lock, needed to release it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockToken(String);

impl LockToken {
    /// A token unlikely to be held by anyone else: 128 bits from the standard library's
    /// randomly seeded hasher, mixed with a process-wide counter and the time.
    pub fn random() -> Self {
        use std::{
            collections::hash_map::RandomState,
            hash::{BuildHasher, Hasher},
            sync::atomic::{AtomicU64, Ordering},
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut words = [0u64; 2];
        for word in &mut words {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(n);
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            *word = h.finish();
        }
        Self(format!("{:016x}{:016x}", words[0], words[1]))
    }

    /// The token as text, as a backend stores it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A token read back from a backend.
    pub fn from_string(token: String) -> Self {
        Self(token)
    }
}

/// A store lock held for a fill: the lock's key and the token that proves holding it, for
/// [`CacheStore::put_held`] to check that the holder still holds it when it stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    key: CacheKey,
    token: LockToken,
}

impl Holder {
    /// The holder of the lock named `key`, proven by `token` (from [`CacheLock::try_lock`]).
    pub fn new(key: CacheKey, token: LockToken) -> Self {
        Self { key, token }
    }

    /// The lock's key.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// The token that proves holding it.
    pub fn token(&self) -> &LockToken {
        &self.token
    }
}

/// What an invalidation removes: the one value that backends, the `Tiered` replay queue and
/// the cross-instance bus all handle, each with one `match`.
///
/// ```
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use http::{HeaderMap, StatusCode};
/// use tower_edge_store::{CacheKey, CacheStore, Entry, Invalidation, MokaStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_edge_store::StoreError> {
/// let store = MokaStore::default();
/// let br = CacheKey::new("GET https://example.com/items/1").with_variant("enc", "br");
/// let other = CacheKey::new("GET https://example.com/items/10");
/// for key in [&br, &other] {
///     let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"{}"));
///     store.put(key, entry, Duration::from_secs(60)).await?;
/// }
/// let what = Invalidation::Resource("GET https://example.com/items/1".into());
/// assert_eq!(store.invalidate(&what).await?, 1);
/// assert!(store.get(&br).await?.is_none());
/// assert!(store.get(&other).await?.is_some(), "a longer path is another resource");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Invalidation {
    /// The entry stored under exactly this key (one variant).
    Key(CacheKey),
    /// Every variant of a resource: every key made with `CacheKey::new(resource)`.
    Resource(String),
    /// Every variant of every resource that starts with this text. Backends without an index
    /// for it (Redis) scan for it: an operator's operation, not one for the request path.
    Prefix(String),
    /// Every entry stored with this tag.
    Tag(String),
    /// Every entry at once, by moving to a new generation: O(1), the old entries age out.
    Generation,
    /// Every entry, removed (under the store's namespace, for shared backends).
    Purge,
}

/// Single-flight across processes: a lock per key that frees itself after a TTL.
///
/// A separate trait from [`CacheStore`] (its supertrait), as storage and locking are separate
/// concerns: a wrapper that changes how entries are stored forwards these two methods
/// unchanged, and [`single_flight::lock_or_wait`](crate::single_flight) needs nothing else.
pub trait CacheLock: Send + Sync + 'static {
    /// Takes the lock named by `key` for at most `ttl`: `None` when someone else holds it. The
    /// lock frees itself after `ttl` if never released.
    fn try_lock(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<LockToken>, StoreError>> + Send;

    /// Releases the lock if `token` still holds it; returns whether it did.
    fn unlock(
        &self,
        key: &CacheKey,
        token: &LockToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Where the response cache keeps entries.
///
/// Three required methods: [`get`](Self::get), [`put`](Self::put) and
/// [`invalidate`](Self::invalidate); the lock comes from [`CacheLock`], and the named
/// deletions (`delete_tag`, `purge`, ...) are provided on top of `invalidate`.
///
/// Every method may fail; the cache treats a failure as a miss and carries on. Invalidations
/// remove every variant they address and return how many entries they removed (backends that
/// cannot count cheaply may return an estimate, and say so).
///
/// Generations implement the "version prefix" pattern: keys are stored under the store's current
/// generation, so [`Invalidation::Generation`] makes every existing entry unreachable in O(1);
/// the old entries age out under the store's bound and TTLs.
pub trait CacheStore: CacheLock {
    /// The entry stored under `key`, if any and not expired.
    fn get(
        &self,
        key: &CacheKey,
    ) -> impl Future<Output = Result<Option<Arc<Entry>>, StoreError>> + Send;

    /// What [`get`](Self::get) would answer, if the store can tell without waiting: `Some`
    /// with the entry or its absence, or `None` when only `get` can tell (a remote store, a
    /// memory tier that missed).
    ///
    /// The response cache asks this first, in its service's `call`, and answers a fresh hit
    /// there with a ready future. Defaults to `None`; an in-memory store overrides it.
    ///
    /// ```
    /// use tower_edge_store::{CacheKey, CacheStore, MokaStore};
    ///
    /// let store = MokaStore::default();
    /// assert!(matches!(store.get_now(&CacheKey::new("GET /a")), Some(None)));
    /// ```
    fn get_now(&self, key: &CacheKey) -> Option<Option<Arc<Entry>>> {
        let _ = key;
        None
    }

    /// Stores `entry` under `key` for `ttl`, replacing what was there. A zero `ttl` stores
    /// nothing and removes what was there.
    fn put(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What [`get`](Self::get) answers for each of `keys`, in order. A shared store answers in
    /// one round trip (`MGET` on Redis, one per slot on a cluster); the default asks `get` for
    /// each in turn. The whole read fails or none of it does; a corrupt value reads as absent.
    fn get_many(
        &self,
        keys: &[CacheKey],
    ) -> impl Future<Output = Result<Vec<Option<Arc<Entry>>>, StoreError>> + Send {
        async move {
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                found.push(match self.get(key).await {
                    Err(error) if error.is_corrupt() => None,
                    other => other?,
                });
            }
            Ok(found)
        }
    }

    /// [`put`](Self::put) for each `(key, entry)`, all for `ttl`. A shared store writes them
    /// in one round trip (one pipeline on a single Redis); the default puts each in turn and
    /// stops at the first failure, as a failed pipeline may also have stored some.
    fn put_many(
        &self,
        items: Vec<(CacheKey, Entry)>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for (key, entry) in items {
                self.put(&key, entry, ttl).await?;
            }
            Ok(())
        }
    }

    /// Stores `entry` as [`put`](Self::put) does, but only while `holder` still holds the lock
    /// it took for this fill: a leader whose lock expired and passed to another must not
    /// overwrite what that one stores (a fenced lock owner). Returns whether it stored.
    ///
    /// The check and the put are one step in stores that keep their locks with their entries
    /// (`MokaStore`, `RedisStore`); `Tiered` asks its shared tier, where its locks live.
    fn put_held(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
        holder: &Holder,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds `delta` (negative to subtract) to the counter under `key` and returns its new
    /// value, atomically among every caller of the store: across processes, for a shared one
    /// (`INCRBY` on Redis). A counter that is absent or expired starts at 0 and lives for `ttl`
    /// from then; later additions keep that expiry, so a counter counts within a fixed window,
    /// as a rate limiter does. Overflowing `i64` is an error and leaves the counter as it was.
    ///
    /// A counter goes with the invalidations of its key, its resource, a prefix, a generation
    /// and a purge, as an entry does; it carries no tags. Keep counters under keys of their own:
    /// what [`get`](Self::get) reads under a counter's key is unspecified.
    ///
    /// Defaults to [`StoreError::unsupported`], for a backend without counters.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use tower_edge_store::{CacheKey, CacheStore, MokaStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_edge_store::StoreError> {
    /// let store = MokaStore::default();
    /// let key = CacheKey::new("hits").with_variant("window", "12:00");
    /// let minute = Duration::from_secs(60);
    /// assert_eq!(store.incr(&key, 1, minute).await?, 1);
    /// assert_eq!(store.incr(&key, 5, minute).await?, 6);
    /// assert_eq!(store.incr(&key, -2, minute).await?, 4);
    /// # Ok(())
    /// # }
    /// ```
    fn incr(
        &self,
        key: &CacheKey,
        delta: i64,
        ttl: Duration,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        let _ = (key, delta, ttl);
        async { Err(StoreError::unsupported("incr")) }
    }

    /// Carries out `what`. Returns how many entries it removed; for
    /// [`Invalidation::Generation`], the new generation; for [`Invalidation::Purge`], what the
    /// backend says (0 where it does not count).
    ///
    /// A store with a [`fence`](Self::fence) records `what` in it before it deletes anything.
    fn invalidate(
        &self,
        what: &Invalidation,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The record of this store's invalidations that fills check against (see [`fence`]).
    /// A store that keeps one records every invalidation in it before deleting.
    ///
    /// Defaults to none: then a fill that raced an invalidation may put old data back, to be
    /// read until it expires.
    fn fence(&self) -> Option<&fence::Fence> {
        None
    }

    /// Removes the entry under exactly `key` (one variant): [`Invalidation::Key`].
    fn delete(&self, key: &CacheKey) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let what = Invalidation::Key(key.clone());
        async move { self.invalidate(&what).await }
    }

    /// Removes every variant of `resource`: [`Invalidation::Resource`].
    fn delete_resource(
        &self,
        resource: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let what = Invalidation::Resource(resource.to_owned());
        async move { self.invalidate(&what).await }
    }

    /// Removes every variant of every resource that starts with `prefix`:
    /// [`Invalidation::Prefix`].
    fn delete_prefix(&self, prefix: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let what = Invalidation::Prefix(prefix.to_owned());
        async move { self.invalidate(&what).await }
    }

    /// Removes every entry stored with `tag`: [`Invalidation::Tag`].
    fn delete_tag(&self, tag: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let what = Invalidation::Tag(tag.to_owned());
        async move { self.invalidate(&what).await }
    }

    /// Makes every current entry unreachable at once, and returns the new generation:
    /// [`Invalidation::Generation`].
    fn bump_generation(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move { self.invalidate(&Invalidation::Generation).await }
    }

    /// Sets the gauges and totals that describe this store now, through the `metrics` facade
    /// (feature `metrics`): call it before each scrape. Defaults to nothing.
    ///
    /// | metric | type | set by |
    /// |---|---|---|
    /// | `tower_edge_store_entries{backend}`, `tower_edge_store_bytes{backend}` | gauge | `MokaStore` (`backend="memory"`) |
    /// | `tower_edge_redis_breaker_open` | gauge, 0 or 1 | `RedisStore` |
    /// | `tower_edge_redis_keys`, `tower_edge_redis_used_memory_bytes` | gauge | `RedisStore` on a single Redis: the whole database's `DBSIZE` and `used_memory`, read in the background at each call (a scrape shows the previous reading) |
    /// | `tower_edge_redis_timeouts_total`, `_errors_total`, `_short_circuited_total`, `_corrupt_total`, `_pool_waits_total` | counter | `RedisStore` ([`RedisStats`]) |
    /// | `tower_edge_bus_connected` | gauge, 0 or 1 | `Tiered` with the invalidation bus |
    /// | `tower_edge_invalidations_pending` | gauge | `Tiered`: invalidations waiting to be replayed on the shared tier |
    /// | `tower_edge_invalidations_replayed_total` | counter | `Tiered` |
    ///
    /// Recorded as they happen rather than here: `tower_edge_store_operation_duration_seconds{backend,
    /// op, result}` (a histogram of every Redis operation), `tower_edge_memo_total{namespace,
    /// event}` (`hit`, `miss`, `stale`, `refresh`), `tower_edge_bus_reconnects_total` and
    /// `tower_edge_bus_received_total`.
    fn record_metrics(&self) {}

    /// Removes everything this store holds (under its namespace, for shared backends):
    /// [`Invalidation::Purge`].
    fn purge(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move { self.invalidate(&Invalidation::Purge).await.map(drop) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_tokens_differ() {
        let tokens: std::collections::HashSet<_> = (0..1000).map(|_| LockToken::random()).collect();
        assert_eq!(tokens.len(), 1000);
        assert_eq!(LockToken::random().as_str().len(), 32);
    }
}
