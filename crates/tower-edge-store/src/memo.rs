//! Function-level caching: [`Memo::get_or_compute`] and the low-level `get` / `set` / `add` /
//! `delete` on typed values, over any [`CacheStore`].
//!
//! ```
//! use std::time::Duration;
//!
//! use tower_edge_store::{MokaStore, memo::Memo};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let memo = Memo::new(MokaStore::default(), "reports");
//! let total: u64 = memo
//!     .get_or_compute("total:2026", Duration::from_secs(60), || async {
//!         Ok::<_, std::io::Error>(42) // the expensive query
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(total, 42);
//! // Within the TTL the value comes from the store; the closure does not run.
//! let again: u64 = memo
//!     .get_or_compute("total:2026", Duration::from_secs(60), || async {
//!         Err::<u64, _>(std::io::Error::other("not called"))
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(again, 42);
//! # }
//! ```
//!
//! Values are encoded with postcard (serde). Concurrent calls for one key make one computation,
//! in this process and across processes sharing a store, by the protocol of
//! [`single_flight`](crate::single_flight): the others wait for it and read its value from the
//! store. The caller that wins the store's lock reads the store once more before computing, so a
//! value another process stored just before is not computed again. A computation still running
//! after [`Memo::wait`] lets one more caller compute; one that fails lets each waiter compute
//! for itself; one whose caller goes away passes to one waiter. With a grace period, a value past its
//! TTL is still returned when the computation fails (the "stale-if-error" of function caching).
//! A store that fails is a miss: the value is computed.
//!
//! TTLs: [`Memo::FOREVER`] never runs out. A zero TTL keeps nothing (beyond the grace period
//! and the refresh window, if set): `set` with it removes what was stored, and
//! `get_or_compute` with it computes on every call.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    CacheKey, CacheStore, Entry, Holder, Invalidation, StoreError,
    clock::{Clock, SystemClock},
    fence::{self, Fence, Filled, Ticket},
    single_flight::{Finish, Flights, Joined, Locked, lock_or_wait},
};

/// Typed, single-flight function caching over a [`CacheStore`].
pub struct Memo<St> {
    store: St,
    namespace: String,
    grace: Duration,
    refresh_window: Duration,
    wait: Duration,
    tags: Arc<[String]>,
    clock: Arc<dyn Clock>,
    flights: Arc<Flights>,
    store_warnings: Arc<Throttle>,
}

/// At most one warning a second about a failing store: when the store is down, every call
/// would otherwise log one or two. The warnings left out are counted in the next one.
#[derive(Debug, Default)]
struct Throttle {
    last: std::sync::Mutex<Option<std::time::Instant>>,
    suppressed: std::sync::atomic::AtomicU64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(1);

    /// `Some(how many were left out since the last one)` when a warning may be logged now.
    fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Self::EVERY) {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Relaxed))
    }
}

impl<St: Clone> Clone for Memo<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            namespace: self.namespace.clone(),
            grace: self.grace,
            refresh_window: self.refresh_window,
            wait: self.wait,
            tags: Arc::clone(&self.tags),
            clock: Arc::clone(&self.clock),
            flights: Arc::clone(&self.flights),
            store_warnings: Arc::clone(&self.store_warnings),
        }
    }
}

impl<St> fmt::Debug for Memo<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("namespace", &self.namespace)
            .field("grace", &self.grace)
            .field("refresh_window", &self.refresh_window)
            .field("wait", &self.wait)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

impl<St> Memo<St> {
    /// A TTL that does not run out: 2^31 seconds (about 68 years), the largest lifetime RFC
    /// 9111 §1.2.2 has a cache represent, and what a longer one is treated as.
    pub const FOREVER: Duration = Duration::from_secs(1 << 31);
}

impl<St: CacheStore + Clone> Memo<St> {
    /// Memoization under `namespace` (keys are stored as `memo:{namespace}:{key}`).
    pub fn new(store: St, namespace: &str) -> Self {
        Self {
            store,
            namespace: namespace.to_owned(),
            grace: Duration::ZERO,
            refresh_window: Duration::ZERO,
            wait: Duration::from_secs(5),
            tags: Arc::new([]),
            clock: Arc::new(SystemClock),
            flights: Arc::default(),
            store_warnings: Arc::default(),
        }
    }

    /// How long past its TTL a value is kept, to be returned if recomputing it fails.
    ///
    /// Defaults to zero.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long past its TTL [`Memo::get_or_refresh`] still returns a value at once, while one
    /// caller (in this process, or in any other sharing the store) recomputes it in the
    /// background: stale-while-revalidate, for functions. A value is kept in the store this
    /// much longer (or its grace, if longer).
    ///
    /// Defaults to zero.
    #[must_use]
    pub fn refresh_window(mut self, window: Duration) -> Self {
        self.refresh_window = window;
        self
    }

    /// How long a computation may run before one more caller of the same key computes too
    /// (the others keep waiting for whichever ends first); also how long the store's lock
    /// against other processes lasts.
    ///
    /// Defaults to 5 seconds.
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// A copy of this `Memo` whose writes (`set`, `add`, and what `get_or_compute` and
    /// `get_or_refresh` store) carry `tags`, so that [`Memo::delete_tag`] removes them all at
    /// once, whatever their keys. The copy shares everything else, single-flight included.
    ///
    /// Tags belong to the store, not to the namespace: a tag names entries of every `Memo` on
    /// the store and the responses the response cache stored with that `Cache-Tag`, so one
    /// `delete_tag("product:7")` can drop a product's page and the values computed from it.
    /// Removing a tag touches its index, not the whole store, on every backend.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use tower_edge_store::{MokaStore, memo::Memo};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_edge_store::StoreError> {
    /// let memo = Memo::new(MokaStore::default(), "reports");
    /// let ttl = Duration::from_secs(600);
    /// memo.tagged(["customer:7"]).set("orders:7", &3_u32, ttl).await?;
    /// memo.tagged(["customer:7"]).set("invoices:7", &2_u32, ttl).await?;
    /// memo.set("orders:8", &5_u32, ttl).await?;
    ///
    /// assert_eq!(memo.delete_tag("customer:7").await?, 2);
    /// assert!(!memo.has("orders:7").await?);
    /// assert!(memo.has("orders:8").await?);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn tagged<I>(&self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut copy = self.clone();
        copy.tags = tags.into_iter().map(Into::into).collect();
        copy
    }

    /// The clock for TTLs and grace: a [`ManualClock`](crate::clock::ManualClock) in tests,
    /// the same one the response cache and [`Tiered`](crate::tiered::Tiered) read, or any
    /// `Fn() -> SystemTime`.
    ///
    /// Defaults to the system clock.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Counts one `event` of this memo (`tower_edge_memo_total`, feature `metrics`).
    fn note(&self, event: &'static str) {
        crate::observe::memo(&self.namespace, event);
    }

    fn key(&self, key: &str) -> CacheKey {
        CacheKey::new(&format!("memo:{}:{key}", self.namespace))
    }

    /// The stored entry and whether it is fresh; `None` when absent, undecodable or failed.
    async fn load<T: DeserializeOwned>(&self, key: &CacheKey) -> Option<(T, bool)> {
        self.load_aged(key)
            .await
            .map(|(value, stale_by)| (value, stale_by.is_none()))
    }

    /// The stored value and how long past its TTL it is (`None`: fresh); `None` when absent,
    /// past every window it may be used in, undecodable or failed.
    async fn load_aged<T: DeserializeOwned>(
        &self,
        key: &CacheKey,
    ) -> Option<(T, Option<Duration>)> {
        let entry = match self.store.get(key).await {
            Ok(entry) => entry?,
            Err(error) => {
                if let Some(suppressed) = self.store_warnings.allow() {
                    tracing::warn!(%error, %key, suppressed, "memo store get failed; computing");
                }
                return None;
            }
        };
        let age = entry.age(self.clock.now());
        let fresh = age < entry.fresh_for();
        let stale_by = (!fresh).then(|| age - entry.fresh_for());
        let usable_for = entry.stale_if_error().max(entry.stale_while_revalidate());
        if stale_by.is_some_and(|by| by >= usable_for) {
            return None;
        }
        if !type_matches::<T>(&entry) {
            tracing::warn!(%key, "memo value stored as another type; recomputing");
            return None;
        }
        match postcard::from_bytes(entry.body()) {
            Ok(value) => Some((value, stale_by)),
            Err(error) => {
                // A value of another type or shape: useless, so remove it.
                tracing::warn!(%error, %key, "memo value does not decode; dropping it");
                let _ = self.store.delete(key).await;
                None
            }
        }
    }

    /// The fresh value stored under `key`, if any.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let key = self.key(key);
        Ok(self
            .store
            .get(&key)
            .await?
            .and_then(|entry| self.fresh(&entry)))
    }

    /// The value `entry` holds, if it is fresh and of type `T`.
    fn fresh<T: DeserializeOwned>(&self, entry: &Entry) -> Option<T> {
        if entry.age(self.clock.now()) >= entry.fresh_for() || !type_matches::<T>(entry) {
            return None;
        }
        postcard::from_bytes(entry.body()).ok()
    }

    /// Stores `value` under `key` for `ttl` (plus the grace period).
    ///
    /// This is a write: a computation of `key` that began before it does not store its result
    /// over this value (see [`Memo::get_or_compute`]).
    pub async fn set<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let entry = self.entry_of(value, ttl)?;
        let store_key = self.overtake(key).await;
        self.store
            .put(&store_key, entry, ttl.saturating_add(self.grace))
            .await
    }

    /// Before a write of `key`: keeps the computations of it under way from storing over the
    /// write, and returns its store key.
    async fn overtake(&self, key: &str) -> CacheKey {
        let store_key = self.key(key);
        let what = Invalidation::Key(store_key.clone());
        if let Some(fence) = self.store.fence() {
            fence.record(&what);
        }
        // A computation overtaken by this write could otherwise undo its put after ours, and
        // take our value with it.
        self.settle(&what).await;
        store_key
    }

    /// Waits (bounded) for the computations of what was just written or deleted that were
    /// storing their result, so that once a write returns none of them can be read.
    async fn settle(&self, what: &Invalidation) {
        if let Some(fence) = self.store.fence()
            && !fence.settle(what, Duration::from_secs(1)).await
        {
            tracing::debug!(
                ?what,
                "memo computations still storing after a write; not waiting longer"
            );
        }
    }

    /// The entry that stores `value` for `ttl`, with the grace period as its stale-if-error.
    fn entry_of<T: Serialize>(&self, value: &T, ttl: Duration) -> Result<Entry, StoreError> {
        let bytes = postcard::to_stdvec(value).map_err(StoreError::backend)?;
        let mut headers = HeaderMap::new();
        if let Ok(name) = HeaderValue::from_str(std::any::type_name::<T>()) {
            headers.insert(TYPE_HEADER, name);
        }
        Ok(Entry::new(StatusCode::OK, headers, Bytes::from(bytes))
            .with_stored_at(self.clock.now())
            .with_fresh_for(ttl)
            .with_stale_if_error(self.grace)
            .with_stale_while_revalidate(self.refresh_window)
            .with_tags(self.tags.to_vec()))
    }

    /// Stores `value` only if no fresh value is stored; returns whether it stored. Atomic
    /// across callers that share the store, through its lock.
    pub async fn add<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // Named after the value's own key, so that it shares its slot on a Redis Cluster.
        let lock_key = self.key(key).with_variant("lock", "add");
        let Some(token) = self
            .store
            .try_lock(&lock_key, Duration::from_secs(5))
            .await?
        else {
            return Ok(false);
        };
        let result = async {
            let present = self
                .store
                .get(&self.key(key))
                .await?
                .is_some_and(|e| e.age(self.clock.now()) < e.fresh_for());
            if present {
                return Ok(false);
            }
            self.set(key, value, ttl).await.map(|()| true)
        }
        .await;
        let _ = self.store.unlock(&lock_key, &token).await;
        result
    }

    /// Removes the value and the counter under `key`; returns how many of the two there were.
    pub async fn delete(&self, key: &str) -> Result<u64, StoreError> {
        let what = Invalidation::Resource(format!("memo:{}:{key}", self.namespace));
        let result = self.store.invalidate(&what).await;
        self.settle(&what).await;
        result
    }

    /// Adds `delta` to the counter `key` and returns its new value, atomically across every
    /// caller of the store ([`CacheStore::incr`]: `INCRBY` on Redis). An absent or expired
    /// counter starts at 0 and lives for `ttl` from its first addition; later additions keep
    /// that expiry, so a counter counts within a fixed window. `incr(key, 0, ttl)` reads it.
    ///
    /// Counters are kept apart from the values of [`Memo::set`]: `get` does not read them,
    /// [`Memo::delete`], `delete_prefix` and `delete_many` remove them. A store without
    /// counters answers [`StoreError::is_unsupported`]; every store of this crate has them.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use tower_edge_store::{MokaStore, memo::Memo};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_edge_store::StoreError> {
    /// let memo = Memo::new(MokaStore::default(), "limits");
    /// let minute = Duration::from_secs(60);
    /// assert_eq!(memo.incr("login:alice", 1, minute).await?, 1);
    /// assert_eq!(memo.incr("login:alice", 1, minute).await?, 2);
    /// assert_eq!(memo.decr("login:alice", 2, minute).await?, 0);
    /// memo.delete("login:alice").await?;
    /// assert_eq!(memo.incr("login:alice", 0, minute).await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let counter = self.key(key).with_variant("memo", "counter");
        self.store.incr(&counter, delta, ttl).await
    }

    /// Subtracts `delta` from the counter `key`: [`Memo::incr`] with `-delta`.
    pub async fn decr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let negated = delta
            .checked_neg()
            .ok_or_else(|| StoreError::backend("counter overflow"))?;
        self.incr(key, negated, ttl).await
    }

    /// Whether a fresh value of any type is stored under `key`.
    pub async fn has(&self, key: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        Ok(self
            .store
            .get(&self.key(key))
            .await?
            .is_some_and(|entry| entry.age(now) < entry.fresh_for()))
    }

    /// [`Memo::get`] for each of `keys`, in order, in one read of the store
    /// ([`CacheStore::get_many`]: one round trip on Redis).
    pub async fn get_many<T: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<T>>, StoreError> {
        let keys: Vec<CacheKey> = keys.into_iter().map(|k| self.key(k.as_ref())).collect();
        let entries = self.store.get_many(&keys).await?;
        Ok(entries
            .into_iter()
            .map(|entry| entry.and_then(|entry| self.fresh(&entry)))
            .collect())
    }

    /// [`Memo::set`] for each pair, all for `ttl`, in one write to the store
    /// ([`CacheStore::put_many`]: one round trip on a single Redis). A value that does not
    /// serialize fails the call before anything is stored.
    pub async fn set_many<T: Serialize, K: AsRef<str>>(
        &self,
        items: impl IntoIterator<Item = (K, T)>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut entries = Vec::new();
        for (key, value) in items {
            entries.push((key, self.entry_of(&value, ttl)?));
        }
        let mut writes = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            writes.push((self.overtake(key.as_ref()).await, entry));
        }
        self.store
            .put_many(writes, ttl.saturating_add(self.grace))
            .await
    }

    /// [`Memo::delete`] for each of `keys`; returns how many values went.
    pub async fn delete_many<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for key in keys {
            removed += self.delete(key.as_ref()).await?;
        }
        Ok(removed)
    }

    /// Removes every value whose key starts with `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let what = Invalidation::Prefix(format!("memo:{}:{prefix}", self.namespace));
        let result = self.store.invalidate(&what).await;
        self.settle(&what).await;
        result
    }

    /// Removes every value stored with `tag` (see [`Memo::tagged`]), in every namespace, and
    /// every response stored with it; returns how many entries went.
    pub async fn delete_tag(&self, tag: &str) -> Result<u64, StoreError> {
        let what = Invalidation::Tag(tag.to_owned());
        let result = self.store.invalidate(&what).await;
        self.settle(&what).await;
        result
    }

    /// The value under `key`, computing and storing it with `compute` when there is no fresh
    /// one. One computation per key at a time (see the module docs). When `compute` fails and a
    /// value within its grace period exists, that value is returned instead of the error.
    ///
    /// A computation that a [`Memo::delete`], [`Memo::delete_prefix`] or [`Memo::set`] of its
    /// key overtakes (the source changed while it ran) returns its value but does not store it:
    /// it may have read the source before the change. This holds for the writes this process
    /// makes through a store that keeps a [`Fence`], which every store of
    /// this crate does.
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let store_key = self.key(key);
        let stale = match self.load::<T>(&store_key).await {
            Some((value, true)) => {
                self.note("hit");
                return Ok(value);
            }
            Some((value, false)) => Some(value),
            None => None,
        };

        // In this process: one computation per key.
        let mut lead = match self.flights.join(key, self.wait).await {
            Joined::Lead(lead) => lead,
            Joined::Done(Finish::Stored) => {
                if let Some((value, true)) = self.load::<T>(&store_key).await {
                    self.note("hit");
                    return Ok(value);
                }
                // Written again, or not kept: compute, leading nobody.
                return self
                    .compute_and_store(key, ttl, compute, stale, None)
                    .await
                    .0;
            }
            Joined::Done(Finish::NotStored) => {
                return self
                    .compute_and_store(key, ttl, compute, stale, None)
                    .await
                    .0;
            }
        };
        // A flight may have ended between the load above and the join.
        if let Some((value, true)) = self.load::<T>(&store_key).await {
            lead.finish(Finish::Stored);
            self.note("hit");
            return Ok(value);
        }

        // Across processes: the store's lock, and a look at the store once it is taken.
        let lock_key = store_key.clone().with_variant("lock", "compute");
        let fresh = || async {
            match self.load::<T>(&store_key).await {
                Some((value, true)) => Some(value),
                _ => None,
            }
        };
        match lock_or_wait(&self.store, &lock_key, self.wait, fresh).await {
            Locked::Found(value) => {
                lead.finish(Finish::Stored);
                self.note("hit");
                Ok(value)
            }
            Locked::Held(holder) => {
                // Let go also when the computation is dropped half-way.
                lead.hold(&self.store, holder);
                let (result, finish) = self
                    .compute_and_store(key, ttl, compute, stale, lead.holder())
                    .await;
                lead.finish(finish);
                result
            }
            Locked::Without => {
                let (result, finish) = self.compute_and_store(key, ttl, compute, stale, None).await;
                lead.finish(finish);
                result
            }
        }
    }

    /// [`Memo::get_or_compute`], with stale-while-revalidate: a value past its TTL but within
    /// the [`refresh_window`](Memo::refresh_window) is returned at once, and one caller
    /// recomputes it in the background (one in this process, and, through the store's lock,
    /// one among every process sharing the store); the others keep getting the stale value
    /// until the new one is stored. Absent, or past the window, it is computed as
    /// `get_or_compute` computes it.
    ///
    /// A background computation that fails leaves the stale value in place until the window
    /// ends. Without a Tokio runtime to run it on, none starts.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// use tower_edge_store::{MokaStore, clock::ManualClock, memo::Memo};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    /// let memo = Memo::new(MokaStore::default(), "reports")
    ///     .refresh_window(Duration::from_secs(300))
    ///     .clock(clock.clone());
    /// let ttl = Duration::from_secs(60);
    /// let v1: u32 = memo.get_or_refresh("daily", ttl, || async { Ok::<_, std::io::Error>(1) }).await.unwrap();
    /// clock.advance(Duration::from_secs(90));
    /// // Stale, within the window: the old value at once; 2 is computed in the background.
    /// let v: u32 = memo.get_or_refresh("daily", ttl, || async { Ok::<_, std::io::Error>(2) }).await.unwrap();
    /// assert_eq!((v1, v), (1, 1));
    /// # }
    /// ```
    pub async fn get_or_refresh<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<T, E>
    where
        St: Send + Sync + 'static,
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let store_key = self.key(key);
        if !self.refresh_window.is_zero()
            && let Some((value, stale_by)) = self.load_aged::<T>(&store_key).await
        {
            match stale_by {
                None => {
                    self.note("hit");
                    return Ok(value);
                }
                Some(by) if by < self.refresh_window => {
                    self.refresh_in_background(key, ttl, compute).await;
                    self.note("stale");
                    return Ok(value);
                }
                Some(_) => {}
            }
        }
        self.get_or_compute(key, ttl, compute).await
    }

    /// Starts one background computation of `key`, unless one runs here or (holding the
    /// store's lock) elsewhere.
    async fn refresh_in_background<T, E, F, Fut>(&self, key: &str, ttl: Duration, compute: F)
    where
        St: Send + Sync + 'static,
        T: Serialize + Send + Sync + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(mut lead) = self.flights.try_lead(key) else {
            return;
        };
        let lock_key = self.key(key).with_variant("lock", "compute");
        // Another process refreshes it, or the store cannot say: leave it to the next call.
        let Ok(Some(token)) = self.store.try_lock(&lock_key, self.wait).await else {
            return;
        };
        lead.hold(&self.store, Holder::new(lock_key, token));
        self.note("refresh");
        let memo = self.clone();
        let key = key.to_owned();
        runtime.spawn(async move {
            let ticket = memo.store.fence().map(Fence::ticket);
            let finish = match compute().await {
                Ok(value) => Finish::of(memo.fill(&key, &value, ttl, ticket, lead.holder()).await),
                Err(_) => {
                    tracing::debug!(key, "memo background refresh failed; the stale value stays");
                    Finish::NotStored
                }
            };
            lead.finish(finish);
        });
    }

    async fn compute_and_store<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
        stale: Option<T>,
        holder: Option<&Holder>,
    ) -> (Result<T, E>, Finish)
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Taken before the computation reads anything, so a write that follows the read shows.
        let ticket = self.store.fence().map(Fence::ticket);
        self.note("miss");
        match compute().await {
            Ok(value) => {
                let stored = self.fill(key, &value, ttl, ticket, holder).await;
                (Ok(value), Finish::of(stored))
            }
            // Those waiting compute themselves: a failure is not shared.
            Err(error) => match stale {
                Some(value) => {
                    self.note("stale");
                    (Ok(value), Finish::NotStored)
                }
                None => (Err(error), Finish::NotStored),
            },
        }
    }

    /// Stores a computed value, unless a write to its key overtook the computation (see the
    /// [`fence`](crate::fence) protocol; checked before the put, and again after it) or, for a
    /// computation that held the store's lock, the lock passed to another meanwhile. Returns
    /// whether it stored.
    async fn fill<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        ticket: Option<Ticket>,
        holder: Option<&Holder>,
    ) -> bool {
        let store_key = self.key(key);
        let put = async {
            let entry = self.entry_of(value, ttl).map_err(Some)?;
            let ttl = ttl.saturating_add(self.grace.max(self.refresh_window));
            match holder {
                Some(holder) => match self.store.put_held(&store_key, entry, ttl, holder).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(None),
                    Err(error) => Err(Some(error)),
                },
                None => self.store.put(&store_key, entry, ttl).await.map_err(Some),
            }
        };
        let undo = async {
            let _ = self.store.delete(&store_key).await;
        };
        // The tags too: a `delete_tag` while computing must keep the value from being stored.
        match fence::fill(
            self.store.fence(),
            ticket,
            &store_key,
            &self.tags,
            put,
            undo,
        )
        .await
        {
            Filled::Stored => true,
            Filled::Fenced => {
                tracing::debug!(key, "memo key written while computing; not stored");
                false
            }
            Filled::Failed(None) => {
                tracing::debug!(key, "memo lock passed to another computation; not stored");
                false
            }
            Filled::Failed(Some(error)) => {
                if let Some(suppressed) = self.store_warnings.allow() {
                    tracing::warn!(%error, key, suppressed, "memo store put failed; value not stored");
                }
                false
            }
        }
    }
}

/// Caches an async function's result in a [`Memo`], keyed by the function's path and its
/// arguments: Flask-Caching's `@cache.memoize`, with its `delete_memoized`.
///
/// ```
/// use std::sync::LazyLock;
///
/// use tower_edge_store::{MokaStore, memo::{Memo, memoize}};
///
/// static MEMO: LazyLock<Memo<MokaStore>> = LazyLock::new(|| Memo::new(MokaStore::default(), "shop"));
///
/// #[memoize(memo = MEMO, ttl = "10m")]
/// async fn price(sku: u32, region: String) -> Result<u64, std::io::Error> {
///     Ok(u64::from(sku) * 100 + region.len() as u64) // the expensive query
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(price(7, "eu".into()).await?, 702); // computed and stored
/// assert_eq!(price(7, "eu".into()).await?, 702); // from the store
/// assert!(MEMO.has(&price::key(&7, &"eu".to_owned()).unwrap()).await?);
///
/// price::forget(&MEMO, &7, &"eu".to_owned()).await?; // delete_memoized(price, 7, "eu")
/// price::forget_all(&MEMO).await?; // delete_memoized(price)
/// # Ok(())
/// # }
/// ```
///
/// Options:
///
/// | option | meaning |
/// |--------|---------|
/// | `memo = <expr>` | the [`Memo`] to cache in, evaluated on each call: a static (`LazyLock`), or an argument of the function (then also `skip` it) |
/// | `ttl = "90s"` | how long a value is fresh: numbers with units `d`, `h`, `m`, `s`, `ms` (`"1h30m"`), an integer of seconds, `"forever"` ([`Memo::FOREVER`]), or any `Duration` expression |
/// | `name = "reports::price"` | the name keys start with, instead of the function's module path: keeps the stored values when the function moves or is renamed |
/// | `skip(db, ..)` | arguments left out of the key, such as a connection pool or the `Memo` |
/// | `refresh` | [`Memo::get_or_refresh`] instead of [`Memo::get_or_compute`]: stale values are returned at once while one caller refreshes (set [`Memo::refresh_window`]; the arguments must then be owned and `Send`) |
///
/// What the attribute makes:
///
/// - The function keeps its signature; its body runs on a miss, once per key at a time across
///   every caller sharing the store (the single-flight of [`Memo::get_or_compute`]). A function
///   returning `Result` stores only its `Ok` values; one returning anything else stores every
///   value.
/// - The key is `{name}:{arguments}`, the arguments (those not skipped) serialized with postcard
///   and written in hex, under the memo's namespace. Arguments must be `Serialize`; one whose
///   encoding depends on iteration order (a `HashMap`) gives a new key for equal values, so
///   prefer a `BTreeMap`. Arguments that fail to serialize are computed on every call, not cached.
/// - A module with the function's name holds `NAME`, `key(&args..)`, `forget(&memo, &args..)`
///   and `forget_all(&memo)`. Every value the function stores carries a tag of its own, so
///   `forget_all` goes through the store's tag index rather than a scan of the keyspace.
///
/// The attribute applies to free `async fn`s at module level (not methods), with a plain name for
/// each argument; mistakes are compile errors that say what to write.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use tower_edge_macros::memoize;

/// What the code of [`memoize`] calls; not a public API.
#[doc(hidden)]
pub mod __private {
    use std::{fmt::Write as _, time::Duration};

    use serde::Serialize;

    use super::Memo;
    use crate::{CacheStore, StoreError};

    /// [`Memo::FOREVER`], for `ttl = "forever"`.
    pub const FOREVER: Duration = Memo::<()>::FOREVER;

    /// `{name}:{arguments in hex}`; `None` when the arguments do not serialize.
    pub fn key<A: Serialize + ?Sized>(name: &str, args: &A) -> Option<String> {
        let bytes = match postcard::to_stdvec(args) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, name, "memoized function's arguments do not serialize; not cached");
                return None;
            }
        };
        let mut key = String::with_capacity(name.len() + 1 + 2 * bytes.len());
        key.push_str(name);
        key.push(':');
        for byte in bytes {
            let _ = write!(key, "{byte:02x}");
        }
        Some(key)
    }

    /// The tag every value of the function `name` carries in `memo`'s namespace.
    fn function_tag<St>(memo: &Memo<St>, name: &str) -> String {
        format!("memo:{}:fn:{name}", memo.namespace)
    }

    /// `memo`, its writes tagged with the function's tag as well as its own tags.
    pub fn for_function<St: CacheStore + Clone>(memo: &Memo<St>, name: &str) -> Memo<St> {
        let tags = memo.tags.iter().cloned().chain([function_tag(memo, name)]);
        memo.tagged(tags.collect::<Vec<_>>())
    }

    /// Removes every value of the function `name`.
    pub async fn forget_function<St: CacheStore + Clone>(
        memo: &Memo<St>,
        name: &str,
    ) -> Result<u64, StoreError> {
        memo.delete_tag(&function_tag(memo, name)).await
    }
}

/// postcard is not self-describing: a value written as one type may decode as another. The
/// writer's type name goes with the value, and a reader of another type treats it as absent.
const TYPE_HEADER: HeaderName = HeaderName::from_static("memo-type");

fn type_matches<T>(entry: &Entry) -> bool {
    entry
        .headers()
        .get(TYPE_HEADER)
        .is_some_and(|v| v.as_bytes() == std::any::type_name::<T>().as_bytes())
}

#[cfg(all(test, feature = "moka"))]
mod tests {
    use std::{
        sync::atomic::{AtomicU64, AtomicUsize, Ordering},
        time::SystemTime,
    };

    use super::*;
    use crate::{MokaStore, testing::Scripted};

    /// A computation that counts its runs and waits for `gate` before answering `value`.
    fn gated(
        runs: &Arc<AtomicUsize>,
        gate: &Arc<tokio::sync::Notify>,
        value: u32,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send>>
    + Send
    + 'static {
        let (runs, gate) = (Arc::clone(runs), Arc::clone(gate));
        move || {
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                Ok(value)
            })
        }
    }

    #[tokio::test]
    async fn get_or_refresh_serves_stale_at_once_while_one_caller_of_all_instances_refreshes() {
        let (secs, now) = manual();
        let store = MokaStore::default();
        // Two instances: each its own flights, one store (and so one lock) between them.
        let a = Memo::new(store.clone(), "m")
            .refresh_window(Duration::from_secs(300))
            .clock(now);
        let (_, now_b) = (0, {
            let secs = Arc::clone(&secs);
            move || SystemTime::UNIX_EPOCH + Duration::from_secs(secs.load(Ordering::SeqCst))
        });
        let b = Memo::new(store, "m")
            .refresh_window(Duration::from_secs(300))
            .clock(now_b);
        let ttl = Duration::from_secs(60);
        let first: Result<u32, String> = a.get_or_refresh("k", ttl, || async { Ok(1) }).await;
        assert_eq!(first, Ok(1));
        // Let the first computation's lock go (its release is spawned).
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }

        secs.fetch_add(90, Ordering::SeqCst);
        let (runs, gate) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(tokio::sync::Notify::new()),
        );
        // Every caller, in both instances, gets the stale value at once; one computation runs.
        for memo in [&a, &b, &a, &b] {
            let got = memo.get_or_refresh("k", ttl, gated(&runs, &gate, 2)).await;
            assert_eq!(got, Ok(1));
        }
        // Let the background computation start (bounded: it must have been spawned), then
        // finish.
        for _ in 0..100 {
            if runs.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        gate.notify_one();
        // Once stored, the new value is fresh for everyone.
        let mut got: Result<u32, String> = Ok(1);
        for _ in 0..100 {
            tokio::task::yield_now().await;
            got = b
                .get_or_refresh("k", ttl, || async { Err("not called".to_owned()) })
                .await;
            if got == Ok(2) {
                break;
            }
        }
        assert_eq!(got, Ok(2));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // Past the window, the caller computes, as get_or_compute does.
        secs.fetch_add(60 + 300, Ordering::SeqCst);
        let late: Result<u32, String> = a.get_or_refresh("k", ttl, || async { Ok(3) }).await;
        assert_eq!(late, Ok(3));
    }

    #[tokio::test]
    async fn a_failed_background_refresh_leaves_the_stale_value_and_lets_the_next_caller_try() {
        let (secs, now) = manual();
        let memo = Memo::new(MokaStore::default(), "m")
            .refresh_window(Duration::from_secs(300))
            .clock(now);
        let ttl = Duration::from_secs(60);
        let _: Result<u32, String> = memo.get_or_refresh("k", ttl, || async { Ok(1) }).await;
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        secs.fetch_add(90, Ordering::SeqCst);
        let failed = memo
            .get_or_refresh("k", ttl, || async { Err::<u32, _>("down".to_owned()) })
            .await;
        assert_eq!(failed, Ok(1));
        // The failed refresh is over once its flight is gone; the next caller starts another.
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if memo.flights.is_empty() {
                break;
            }
        }
        let counted = Arc::clone(&runs);
        let again: Result<u32, String> = memo
            .get_or_refresh("k", ttl, move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(2)
            })
            .await;
        assert_eq!(again, Ok(1));
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if runs.load(Ordering::SeqCst) == 1 {
                break;
            }
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn many_keys_at_once_and_ttls_mean_what_the_docs_say() {
        let (secs, now) = manual();
        let memo = Memo::new(MokaStore::default(), "m").clock(now);
        memo.set_many([("a", 1u32), ("b", 2)], Duration::from_secs(60))
            .await
            .unwrap();
        assert!(memo.has("a").await.unwrap());
        assert!(!memo.has("c").await.unwrap());
        let got: Vec<Option<u32>> = memo.get_many(["a", "c", "b"]).await.unwrap();
        assert_eq!(got, [Some(1), None, Some(2)]);
        assert_eq!(memo.delete_many(["a", "b", "c"]).await.unwrap(), 2);
        assert!(!memo.has("a").await.unwrap());

        // Stale is not "has".
        memo.set("s", &1u32, Duration::from_secs(60)).await.unwrap();
        secs.fetch_add(61, Ordering::SeqCst);
        assert!(!memo.has("s").await.unwrap());

        memo.set("f", &7u32, Memo::<MokaStore>::FOREVER)
            .await
            .unwrap();
        secs.fetch_add(10 * 365 * 24 * 3600, Ordering::SeqCst);
        assert_eq!(memo.get::<u32>("f").await.unwrap(), Some(7));

        // A zero TTL removes what was stored, and keeps nothing computed.
        memo.set("f", &8u32, Duration::ZERO).await.unwrap();
        assert!(!memo.has("f").await.unwrap());
        assert_eq!(memo.get::<u32>("f").await.unwrap(), None);
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let runs = Arc::clone(&runs);
            let value: Result<u32, String> = memo
                .get_or_compute("z", Duration::ZERO, move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(1)
                })
                .await;
            assert_eq!(value, Ok(1));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    fn manual() -> (
        Arc<AtomicU64>,
        impl Fn() -> SystemTime + Send + Sync + 'static,
    ) {
        let secs = Arc::new(AtomicU64::new(1_750_000_000));
        let s2 = Arc::clone(&secs);
        (secs, move || {
            SystemTime::UNIX_EPOCH + Duration::from_secs(s2.load(Ordering::SeqCst))
        })
    }

    #[tokio::test]
    async fn computes_once_until_the_ttl_passes() {
        let (secs, now) = manual();
        let memo = Memo::new(MokaStore::default(), "t").clock(now);
        let calls = AtomicUsize::new(0);
        let compute = || async { Ok::<_, ()>(calls.fetch_add(1, Ordering::SeqCst) as u32) };
        assert_eq!(
            memo.get_or_compute("k", Duration::from_secs(10), compute)
                .await,
            Ok(0)
        );
        assert_eq!(
            memo.get_or_compute("k", Duration::from_secs(10), compute)
                .await,
            Ok(0)
        );
        secs.fetch_add(10, Ordering::SeqCst);
        assert_eq!(
            memo.get_or_compute("k", Duration::from_secs(10), compute)
                .await,
            Ok(1)
        );
    }

    /// Two instances on one store: the first computation's lock expires while it runs, the
    /// second instance takes the lock and stores a newer value. The first, finishing late, must
    /// not overwrite it.
    #[tokio::test]
    async fn a_computation_whose_lock_passed_to_another_does_not_overwrite_its_value() {
        let store = MokaStore::default();
        let a = Memo::new(store.clone(), "t").wait(Duration::from_millis(100));
        let b = Memo::new(store.clone(), "t").wait(Duration::from_secs(60));
        let ttl = Duration::from_secs(600);
        let entered = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let first = tokio::spawn({
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                a.get_or_compute("k", ttl, || async move {
                    entered.notify_one();
                    release.notified().await;
                    Ok::<_, ()>("old".to_owned())
                })
                .await
            }
        });
        entered.notified().await;
        // Waits for the first lock's 100 ms to pass, then computes under its own.
        let second = b
            .get_or_compute("k", ttl, || async { Ok::<_, ()>("new".to_owned()) })
            .await;
        assert_eq!(second, Ok("new".to_owned()));
        release.notify_one();
        assert_eq!(first.await.unwrap(), Ok("old".to_owned()));
        assert_eq!(b.get::<String>("k").await.unwrap().as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn grace_returns_the_old_value_when_computing_fails() {
        let (secs, now) = manual();
        let memo = Memo::new(MokaStore::default(), "t")
            .clock(now)
            .grace(Duration::from_secs(60));
        memo.get_or_compute("k", Duration::from_secs(10), || async {
            Ok::<_, &str>("v1".to_owned())
        })
        .await
        .unwrap();
        secs.fetch_add(30, Ordering::SeqCst);
        let v = memo
            .get_or_compute("k", Duration::from_secs(10), || async {
                Err::<String, _>("db down")
            })
            .await;
        assert_eq!(v, Ok("v1".to_owned()));
        secs.fetch_add(60, Ordering::SeqCst);
        let v = memo
            .get_or_compute("k", Duration::from_secs(10), || async {
                Err::<String, _>("db down")
            })
            .await;
        assert_eq!(v, Err("db down"));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let memo = Memo::new(MokaStore::default(), "t");
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (memo, calls, gate) = (memo.clone(), calls.clone(), gate.clone());
                tokio::spawn(async move {
                    memo.get_or_compute("k", Duration::from_secs(60), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok::<_, ()>(7u8)
                    })
                    .await
                })
            })
            .collect();
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn low_level_set_get_add_delete() {
        let memo = Memo::new(MokaStore::default(), "t");
        assert_eq!(memo.get::<u32>("a").await.unwrap(), None);
        memo.set("a", &1u32, Duration::from_secs(60)).await.unwrap();
        assert_eq!(memo.get::<u32>("a").await.unwrap(), Some(1));
        assert!(!memo.add("a", &2u32, Duration::from_secs(60)).await.unwrap());
        assert!(memo.add("b", &3u32, Duration::from_secs(60)).await.unwrap());
        assert_eq!(memo.get::<u32>("b").await.unwrap(), Some(3));
        memo.set("user:1:name", &"ann".to_owned(), Duration::from_secs(60))
            .await
            .unwrap();
        memo.set("user:1:age", &40u8, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(memo.delete_prefix("user:1:").await.unwrap(), 2);
        assert_eq!(memo.delete("a").await.unwrap(), 1);
        assert_eq!(memo.get::<u32>("a").await.unwrap(), None);
    }

    #[test]
    fn store_warnings_are_throttled_and_counted() {
        let throttle = Throttle::default();
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        // A second later, the next warning says how many were left out.
        *throttle.last.lock().unwrap() =
            Some(std::time::Instant::now() - Throttle::EVERY - Duration::from_millis(1));
        assert_eq!(throttle.allow(), Some(2));
        assert_eq!(throttle.allow(), None);
    }

    /// A TTL of `Duration::MAX` plus a grace period saturates instead of overflowing.
    #[tokio::test]
    async fn a_ttl_without_end_plus_grace_does_not_overflow() {
        let memo = Memo::new(MokaStore::default(), "t").grace(Duration::from_secs(60));
        memo.set("forever", &1u32, Duration::MAX).await.unwrap();
        assert_eq!(memo.get::<u32>("forever").await.unwrap(), Some(1));
    }

    #[tokio::test]
    async fn a_value_of_another_type_is_recomputed() {
        let memo = Memo::new(MokaStore::default(), "t");
        memo.set("k", &"text".to_owned(), Duration::from_secs(60))
            .await
            .unwrap();
        let v: Result<Vec<u64>, ()> = memo
            .get_or_compute("k", Duration::from_secs(60), || async { Ok(vec![1, 2]) })
            .await;
        assert_eq!(v, Ok(vec![1, 2]));
    }

    #[tokio::test]
    async fn a_write_during_the_computation_keeps_its_result_out() {
        let memo = Memo::new(MokaStore::default(), "t");
        let source = Arc::new(AtomicU64::new(1));
        let ttl = Duration::from_secs(60);
        // Read the source, then a writer changes it and forgets the key before the result is
        // stored: the old value goes back to this caller only.
        let got = memo
            .get_or_compute("k", ttl, || async {
                let read = source.load(Ordering::SeqCst);
                source.store(2, Ordering::SeqCst);
                memo.delete("k").await.unwrap();
                Ok::<_, ()>(read)
            })
            .await;
        assert_eq!(got, Ok(1));
        assert_eq!(memo.get::<u64>("k").await.unwrap(), None);
        let read = || async { Ok::<_, ()>(source.load(Ordering::SeqCst)) };
        assert_eq!(memo.get_or_compute("k", ttl, read).await, Ok(2));
        assert_eq!(memo.get::<u64>("k").await.unwrap(), Some(2));

        // A write-through `set` is not overwritten by a computation that began before it.
        let got = memo
            .get_or_compute("j", ttl, || async {
                memo.set("j", &20u64, ttl).await.unwrap();
                Ok::<_, ()>(10u64)
            })
            .await;
        assert_eq!(got, Ok(10));
        assert_eq!(memo.get::<u64>("j").await.unwrap(), Some(20));

        // Nor does one overtaken by a prefix deletion store.
        let got = memo
            .get_or_compute("user:1:a", ttl, || async {
                memo.delete_prefix("user:1:").await.unwrap();
                Ok::<_, ()>(1u64)
            })
            .await;
        assert_eq!(got, Ok(1));
        assert_eq!(memo.get::<u64>("user:1:a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn counters_count_apart_from_values_and_go_with_their_key() {
        let memo = Memo::new(MokaStore::default(), "c");
        let ttl = Duration::from_secs(60);
        memo.set("visits", &"a value".to_owned(), ttl)
            .await
            .unwrap();
        assert_eq!(memo.incr("visits", 2, ttl).await.unwrap(), 2);
        assert_eq!(memo.decr("visits", 5, ttl).await.unwrap(), -3);
        assert_eq!(
            memo.get::<String>("visits").await.unwrap().as_deref(),
            Some("a value"),
            "the value and the counter of one key are apart"
        );
        assert!(memo.decr("visits", i64::MIN, ttl).await.is_err());
        assert_eq!(memo.delete("visits").await.unwrap(), 2, "both go");
        assert_eq!(memo.incr("visits", 0, ttl).await.unwrap(), 0);
        memo.incr("user:1:logins", 1, ttl).await.unwrap();
        memo.delete_prefix("user:1:").await.unwrap();
        assert_eq!(memo.incr("user:1:logins", 0, ttl).await.unwrap(), 0);

        // A store without counters says so.
        struct NoCounters(MokaStore);
        impl crate::CacheLock for NoCounters {
            async fn try_lock(
                &self,
                key: &CacheKey,
                ttl: Duration,
            ) -> Result<Option<crate::LockToken>, StoreError> {
                self.0.try_lock(key, ttl).await
            }
            async fn unlock(
                &self,
                key: &CacheKey,
                token: &crate::LockToken,
            ) -> Result<bool, StoreError> {
                self.0.unlock(key, token).await
            }
        }
        impl CacheStore for NoCounters {
            async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, StoreError> {
                self.0.get(key).await
            }
            async fn put(
                &self,
                key: &CacheKey,
                entry: Entry,
                ttl: Duration,
            ) -> Result<(), StoreError> {
                self.0.put(key, entry, ttl).await
            }
            async fn put_held(
                &self,
                key: &CacheKey,
                entry: Entry,
                ttl: Duration,
                holder: &Holder,
            ) -> Result<bool, StoreError> {
                self.0.put_held(key, entry, ttl, holder).await
            }
            async fn invalidate(&self, what: &Invalidation) -> Result<u64, StoreError> {
                self.0.invalidate(what).await
            }
        }
        impl Clone for NoCounters {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }
        let memo = Memo::new(NoCounters(MokaStore::default()), "c");
        assert!(memo.incr("k", 1, ttl).await.unwrap_err().is_unsupported());
    }

    #[tokio::test]
    async fn tagged_values_go_with_their_tag_and_a_tag_deletion_fences_a_computation() {
        let store = MokaStore::default();
        let memo = Memo::new(store.clone(), "t");
        let other_namespace = Memo::new(store, "u");
        let ttl = Duration::from_secs(60);
        let seven = memo.tagged(["customer:7"]);
        seven.set("orders:7", &1u32, ttl).await.unwrap();
        assert_eq!(
            seven
                .get_or_compute("total:7", ttl, || async { Ok::<_, ()>(2u32) })
                .await,
            Ok(2)
        );
        assert!(seven.add("first:7", &3u32, ttl).await.unwrap());
        other_namespace
            .tagged(["customer:7", "x"])
            .set("k", &4u32, ttl)
            .await
            .unwrap();
        memo.set("orders:8", &5u32, ttl).await.unwrap();

        assert_eq!(memo.delete_tag("customer:7").await.unwrap(), 4);
        for key in ["orders:7", "total:7", "first:7"] {
            assert!(!memo.has(key).await.unwrap(), "{key} outlived its tag");
        }
        assert!(
            !other_namespace.has("k").await.unwrap(),
            "tags are the store's, not the namespace's"
        );
        assert_eq!(
            memo.get::<u32>("orders:8").await.unwrap(),
            Some(5),
            "untagged stays"
        );

        // The tag removed while a tagged value computes: what it read is not stored.
        let got = seven
            .get_or_compute("total:7", ttl, || async {
                memo.delete_tag("customer:7").await.unwrap();
                Ok::<_, ()>(6u32)
            })
            .await;
        assert_eq!(got, Ok(6));
        assert!(!memo.has("total:7").await.unwrap());
        // An untagged computation of another key is not held back by it.
        let got = memo
            .get_or_compute("total:8", ttl, || async {
                memo.delete_tag("customer:7").await.unwrap();
                Ok::<_, ()>(7u32)
            })
            .await;
        assert_eq!(got, Ok(7));
        assert!(memo.has("total:8").await.unwrap());
    }

    #[tokio::test]
    async fn an_invalidation_inside_the_put_is_undone_after_it() {
        for then_fail in [false, true] {
            invalidation_inside_the_put(then_fail).await;
        }
    }

    async fn invalidation_inside_the_put(then_fail: bool) {
        // An invalidation lands inside the put, after the check before it: only the check
        // after the put can catch it, whether the put reports success or failure.
        let store = Scripted::new(MokaStore::default());
        store.invalidate_inside_next_put();
        if then_fail {
            store.fail_next_put_after_landing();
        }
        let memo = Memo::new(store, "t");
        let ttl = Duration::from_secs(60);
        let got = memo
            .get_or_compute("k", ttl, || async { Ok::<_, ()>(1u64) })
            .await;
        assert_eq!(got, Ok(1));
        assert_eq!(memo.get::<u64>("k").await.unwrap(), None);
        // Unarmed, the next computation stores as usual.
        let got = memo
            .get_or_compute("k", ttl, || async { Ok::<_, ()>(2u64) })
            .await;
        assert_eq!(got, Ok(2));
        assert_eq!(memo.get::<u64>("k").await.unwrap(), Some(2));
    }

    #[tokio::test]
    async fn a_delete_waits_for_a_computation_still_storing() {
        let store = Scripted::new(MokaStore::default());
        store.hold_next_put();
        let memo = Memo::new(store.clone(), "t");
        let ttl = Duration::from_secs(60);
        let source = Arc::new(AtomicU64::new(1));
        let computing = tokio::spawn({
            let (memo, source) = (memo.clone(), Arc::clone(&source));
            async move {
                memo.get_or_compute("k", ttl, || async move {
                    Ok::<_, ()>(source.load(Ordering::SeqCst))
                })
                .await
            }
        });
        // Read 1, now held inside its put; the source changes and the key is forgotten.
        store.held().await;
        source.store(2, Ordering::SeqCst);
        let delete = tokio::spawn({
            let memo = memo.clone();
            async move { memo.delete("k").await }
        });
        tokio::pin!(delete);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut delete)
                .await
                .is_err(),
            "the delete must wait for the computation storing"
        );
        store.release();
        delete.await.unwrap().unwrap();
        assert_eq!(computing.await.unwrap(), Ok(1));
        assert_eq!(memo.get::<u64>("k").await.unwrap(), None);
    }
}
