//! [`MokaStore`]: entries in process memory, bounded by bytes.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{notification::RemovalCause, sync::Cache};

use crate::{
    CacheKey, CacheLock, CacheStore, Entry, Holder, Invalidation, LockToken, StoreError,
    fence::Fence,
};

/// An in-memory [`CacheStore`] on [moka](https://docs.rs/moka).
///
/// - **Bounded by bytes**: each entry weighs its key plus [`Entry::weight`]; when the total passes
///   [`MokaStoreBuilder::max_bytes`], moka evicts (TinyLFU admission, LRU eviction). Eviction runs
///   in moka's housekeeping, so the total can pass the bound briefly between writes.
/// - **Per-entry TTL** through moka's expiry policy: an entry is gone `ttl` after its `put`.
/// - **Tag and prefix indexes** hold only keys, and are cleaned by moka's eviction listener
///   whenever an entry leaves for any reason (expiry, size, replacement, deletion), so they never
///   outgrow the cache. Each stored value carries an id, and the listener removes an index record
///   only if it still names the departing value, so a replaced entry's late notification cannot
///   unindex its successor.
///
/// A hit is a hash lookup and an `Arc` clone: no copy of the body.
///
/// **Clones share one store**: entries, indexes, generation and locks. Give a clone to each
/// layer (or `Memo`) that should see the same entries; build another store for a separate
/// cache.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use http::{HeaderMap, StatusCode};
/// use tower_edge_store::{CacheKey, CacheStore, Entry, MokaStore};
///
/// let store = MokaStore::default();
/// let shared = store.clone();
/// let key = CacheKey::new("GET http://a/x");
/// let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"x"));
/// store.put(&key, entry, Duration::from_secs(60)).await.unwrap();
/// assert!(shared.get(&key).await.unwrap().is_some());
/// assert!(MokaStore::default().get(&key).await.unwrap().is_none());
/// # }
/// ```
#[derive(Clone)]
pub struct MokaStore {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache<String, Stored>,
    index: Arc<Mutex<Index>>,
    generation: AtomicU64,
    next_id: AtomicU64,
    locks: Mutex<HashMap<String, (LockToken, Instant)>>,
    /// Held across a counter's read and write: [`CacheStore::incr`] is atomic.
    counters: Mutex<()>,
    max_bytes: u64,
    fence: Fence,
}

#[derive(Clone)]
struct Stored {
    id: u64,
    ttl: Duration,
    /// When `ttl` runs out: what a counter's later additions keep.
    expires: Instant,
    entry: Arc<Entry>,
}

/// Keys by full storage key (sorted, for prefix scans) and by tag, each with the id of the value
/// they were recorded for.
#[derive(Default)]
struct Index {
    keys: BTreeMap<String, u64>,
    tags: HashMap<String, HashMap<String, u64>>,
}

impl Index {
    fn forget(&mut self, key: &str, id: u64, tags: &[String]) {
        if self.keys.get(key) == Some(&id) {
            self.keys.remove(key);
        }
        for tag in tags {
            if let Some(keys) = self.tags.get_mut(tag) {
                if keys.get(key) == Some(&id) {
                    keys.remove(key);
                }
                if keys.is_empty() {
                    self.tags.remove(tag);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The index holds no invariant a panicking thread could break halfway in a harmful way: at
    // worst a record outlives its entry, which costs a spurious (and harmless) invalidation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct PerEntryTtl;

impl moka::Expiry<String, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, value: &Stored, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Builds a [`MokaStore`].
#[derive(Debug, Clone)]
pub struct MokaStoreBuilder {
    max_bytes: u64,
}

impl MokaStoreBuilder {
    /// The most memory the entries may hold, in bytes (keys, headers and bodies).
    ///
    /// Defaults to 128 MiB.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Builds the store.
    pub fn build(self) -> MokaStore {
        let index = Arc::new(Mutex::new(Index::default()));
        let listener_index = Arc::clone(&index);
        let cache = Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(|key: &String, value: &Stored| {
                u32::try_from(key.len() + value.entry.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(
                move |key: Arc<String>, value: Stored, _cause: RemovalCause| {
                    lock(&listener_index).forget(&key, value.id, value.entry.tags());
                },
            )
            .build();
        MokaStore {
            inner: Arc::new(Inner {
                cache,
                index,
                generation: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
                locks: Mutex::new(HashMap::new()),
                counters: Mutex::new(()),
                max_bytes: self.max_bytes,
                fence: Fence::new(),
            }),
        }
    }
}

impl Default for MokaStore {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl MokaStore {
    /// A builder with the defaults.
    pub fn builder() -> MokaStoreBuilder {
        MokaStoreBuilder {
            max_bytes: 128 * 1024 * 1024,
        }
    }

    /// The configured bound, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// The weight of what is stored now, in bytes (after pending housekeeping).
    pub fn weighted_size(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.weighted_size()
    }

    /// How many entries are stored now (after pending housekeeping).
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.entry_count()
    }

    /// How many keys the tag and prefix indexes hold (after pending housekeeping): never more
    /// than the entries they index, which tests use to show the indexes do not leak.
    pub fn index_len(&self) -> (usize, usize) {
        self.inner.cache.run_pending_tasks();
        let index = lock(&self.inner.index);
        let tagged = index.tags.values().map(HashMap::len).sum();
        (index.keys.len(), tagged)
    }

    fn generation_prefix(&self) -> String {
        format!("{}:", self.inner.generation.load(Ordering::Acquire))
    }

    fn read(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        // A lookup needs its storage key only for the moment of the lookup: it is written into
        // a buffer this thread reuses, so that a hit allocates no key.
        thread_local! {
            static LOOKUP_KEY: std::cell::RefCell<String> = const {
                std::cell::RefCell::new(String::new())
            };
        }
        let reused = LOOKUP_KEY.try_with(|buffer| {
            // Busy only if a lookup ran inside a lookup on this thread (from moka's eviction
            // listener, say): that one allocates its key.
            let mut buffer = buffer.try_borrow_mut().ok()?;
            buffer.clear();
            self.write_storage_key(key, &mut buffer);
            let found = self.inner.cache.get(buffer.as_str());
            // Do not keep a rare long key's capacity for the thread's lifetime.
            if buffer.capacity() > 4096 {
                *buffer = String::new();
            }
            Some(found)
        });
        match reused {
            Ok(Some(found)) => found,
            // Busy, or the thread's locals are being torn down.
            _ => self.inner.cache.get(&self.storage_key(key)),
        }
        .map(|stored| stored.entry)
    }

    fn storage_key(&self, key: &CacheKey) -> String {
        let mut out = String::with_capacity(24 + key.as_str().len());
        self.write_storage_key(key, &mut out);
        out
    }

    fn write_storage_key(&self, key: &CacheKey, out: &mut String) {
        let generation = self.inner.generation.load(Ordering::Acquire);
        out.reserve(24 + key.as_str().len());
        // The generation's decimal digits, without the formatting machinery: this runs on
        // every lookup.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = generation;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend(digits[at..].iter().map(|&d| char::from(d)));
        out.push(':');
        out.push_str(key.as_str());
    }

    fn put_now(&self, key: &CacheKey, entry: Entry, ttl: Duration) {
        let storage_key = self.storage_key(key);
        if ttl.is_zero() {
            self.inner.cache.invalidate(&storage_key);
            return;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // Unindex the value being replaced now rather than when the listener hears of it, so a
        // tag it had and the new one lacks stops addressing this key at once.
        if let Some(old) = self.inner.cache.get(&storage_key) {
            lock(&self.inner.index).forget(&storage_key, old.id, old.entry.tags());
        }
        {
            let mut index = lock(&self.inner.index);
            index.keys.insert(storage_key.clone(), id);
            for tag in entry.tags() {
                index
                    .tags
                    .entry(tag.clone())
                    .or_default()
                    .insert(storage_key.clone(), id);
            }
        }
        let stored = Stored {
            id,
            ttl,
            // A TTL past what `Instant` can hold (`Duration::MAX`) ends in about 136 years.
            expires: Instant::now()
                .checked_add(ttl)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(u32::MAX.into())),
            entry: Arc::new(entry),
        };
        self.inner.cache.insert(storage_key, stored);
    }

    /// Invalidates every key under `prefix` (a full storage-key prefix) in the current index.
    fn delete_storage_prefix(&self, prefix: &str) -> u64 {
        let keys: Vec<String> = {
            let index = lock(&self.inner.index);
            index
                .keys
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect()
        };
        // The index lock is released: moka may call the eviction listener from these calls.
        keys.iter()
            .filter(|k| self.inner.cache.remove(k.as_str()).is_some())
            .count() as u64
    }
}

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStore")
            .field("max_bytes", &self.inner.max_bytes)
            .field("generation", &self.inner.generation.load(Ordering::Relaxed))
            .field("entries", &self.inner.cache.entry_count())
            .finish()
    }
}

impl CacheStore for MokaStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, StoreError> {
        Ok(self.read(key))
    }

    fn get_now(&self, key: &CacheKey) -> Option<Option<Arc<Entry>>> {
        Some(self.read(key))
    }

    #[allow(clippy::cast_precision_loss)] // a gauge is a float; sizes far below 2^52
    fn record_metrics(&self) {
        crate::observe::gauge(
            "tower_edge_store_entries",
            "memory",
            self.entry_count() as f64,
        );
        crate::observe::gauge(
            "tower_edge_store_bytes",
            "memory",
            self.weighted_size() as f64,
        );
    }

    async fn put(&self, key: &CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        self.put_now(key, entry, ttl);
        Ok(())
    }

    async fn put_held(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
        holder: &Holder,
    ) -> Result<bool, StoreError> {
        // Checked and put under the lock table's mutex: a lock cannot pass to another between.
        let locks = lock(&self.inner.locks);
        if !holds(&locks, holder, Instant::now()) {
            return Ok(false);
        }
        self.put_now(key, entry, ttl);
        Ok(true)
    }

    /// A counter is an entry whose body is the count (8 bytes, little-endian), read and
    /// written under one mutex; so it goes with its key's invalidations like any entry.
    async fn incr(&self, key: &CacheKey, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let _counting = lock(&self.inner.counters);
        let now = Instant::now();
        let current = self
            .inner
            .cache
            .get(&self.storage_key(key))
            .filter(|stored| stored.expires > now)
            .and_then(|stored| {
                let count = <[u8; 8]>::try_from(&stored.entry.body()[..]).ok()?;
                Some((i64::from_le_bytes(count), stored.expires - now))
            });
        let (count, ttl) = current.unwrap_or((0, ttl));
        let count = count
            .checked_add(delta)
            .ok_or_else(|| StoreError::backend("counter overflow"))?;
        let entry = Entry::new(
            http::StatusCode::OK,
            http::HeaderMap::new(),
            bytes::Bytes::copy_from_slice(&count.to_le_bytes()),
        );
        self.put_now(key, entry, ttl);
        Ok(count)
    }

    async fn invalidate(&self, what: &Invalidation) -> Result<u64, StoreError> {
        self.inner.fence.record(what);
        let under = |prefix: String| format!("{}{prefix}", self.generation_prefix());
        Ok(match what {
            Invalidation::Key(key) => {
                u64::from(self.inner.cache.remove(&self.storage_key(key)).is_some())
            }
            Invalidation::Resource(resource) => {
                self.delete_storage_prefix(&under(CacheKey::resource_prefix(resource)))
            }
            Invalidation::Prefix(prefix) => {
                self.delete_storage_prefix(&under(CacheKey::escape_prefix(prefix)))
            }
            Invalidation::Tag(tag) => {
                let keys: Vec<String> = lock(&self.inner.index)
                    .tags
                    .remove(tag)
                    .map(|keys| keys.into_keys().collect())
                    .unwrap_or_default();
                keys.iter()
                    .filter(|k| self.inner.cache.remove(k.as_str()).is_some())
                    .count() as u64
            }
            Invalidation::Generation => self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1,
            Invalidation::Purge => {
                let entries = self.inner.cache.entry_count();
                self.inner.cache.invalidate_all();
                *lock(&self.inner.index) = Index::default();
                entries
            }
        })
    }

    fn fence(&self) -> Option<&Fence> {
        Some(&self.inner.fence)
    }
}

/// Whether `holder` holds its lock in `locks` at `now`.
fn holds(locks: &HashMap<String, (LockToken, Instant)>, holder: &Holder, now: Instant) -> bool {
    matches!(
        locks.get(&holder.key().to_string()),
        Some((token, until)) if token == holder.token() && *until > now
    )
}

impl CacheLock for MokaStore {
    async fn try_lock(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        let now = Instant::now();
        let mut locks = lock(&self.inner.locks);
        // Drop expired locks so the table stays as small as the set of locks in use.
        locks.retain(|_, (_, until)| *until > now);
        let name = key.to_string();
        if locks.contains_key(&name) {
            return Ok(None);
        }
        let token = LockToken::random();
        // A TTL past what an Instant holds (say `Duration::MAX`) is a lock held for a century.
        let until = now
            .checked_add(ttl)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
            .unwrap_or(now);
        locks.insert(name, (token.clone(), until));
        Ok(Some(token))
    }

    async fn unlock(&self, key: &CacheKey, token: &LockToken) -> Result<bool, StoreError> {
        let mut locks = lock(&self.inner.locks);
        let holder = Holder::new(key.clone(), token.clone());
        if holds(&locks, &holder, Instant::now()) {
            locks.remove(&key.to_string());
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_with_an_endless_ttl_holds_without_overflowing() {
        let store = MokaStore::default();
        let key = CacheKey::new("GET http://a/");
        let token = store.try_lock(&key, Duration::MAX).await.unwrap().unwrap();
        assert!(store.try_lock(&key, Duration::MAX).await.unwrap().is_none());
        assert!(store.unlock(&key, &token).await.unwrap());
        assert!(
            store
                .try_lock(&key, Duration::ZERO)
                .await
                .unwrap()
                .is_some()
        );
    }
}
