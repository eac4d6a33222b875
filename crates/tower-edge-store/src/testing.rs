//! [`Scripted`]: a store wrapper for testing code built on a [`CacheStore`] under the failures
//! and races a shared store brings: a store that is down, a put overtaken by an invalidation, a
//! put or get that stalls mid-way. Feature `test-util`; not for production use.
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{HeaderMap, StatusCode};
//! use tower_edge_store::{CacheKey, CacheStore, Entry, MokaStore, testing::Scripted};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Scripted::new(MokaStore::default());
//! let key = CacheKey::new("GET http://example.com/");
//! store.set_down(true);
//! let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::new());
//! assert!(store.put(&key, entry, Duration::from_secs(60)).await.is_err());
//! # }
//! ```

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};

use crate::{
    CacheKey, CacheLock, CacheStore, Entry, Holder, Invalidation, LockToken, StoreError,
    fence::Fence,
};

/// Forwards to the store it wraps, except where a test scripted otherwise. Clones share the
/// script.
#[derive(Clone, Debug)]
pub struct Scripted<S> {
    inner: S,
    script: Arc<Script>,
}

#[derive(Debug, Default)]
struct Script {
    down: AtomicBool,
    invalidate_in_put: AtomicBool,
    fail_after_put: AtomicBool,
    hold_put: AtomicBool,
    hold_get: AtomicBool,
    hold_lock: AtomicBool,
    locks_free: AtomicBool,
    held: Notify,
    release: Notify,
    deletes: AtomicUsize,
    unlocks: watch::Sender<usize>,
}

impl<S: CacheStore> Scripted<S> {
    /// `inner`, with nothing scripted yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            script: Arc::default(),
        }
    }

    /// The wrapped store, to look at or change behind the script's back.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// While `down`, every operation fails as an unreachable backend's would.
    pub fn set_down(&self, down: bool) {
        self.script.down.store(down, SeqCst);
    }

    /// The next put first deletes its key through the wrapped store (a whole invalidation,
    /// recorded in its fence), then lands: an invalidation that slipped in after the filler's
    /// check before the put.
    pub fn invalidate_inside_next_put(&self) {
        self.script.invalidate_in_put.store(true, SeqCst);
    }

    /// The next put lands, then reports a timeout, as a write the backend ran after its caller
    /// gave up on it.
    pub fn fail_next_put_after_landing(&self) {
        self.script.fail_after_put.store(true, SeqCst);
    }

    /// The next put waits for [`Scripted::release`] before doing anything.
    pub fn hold_next_put(&self) {
        self.script.hold_put.store(true, SeqCst);
    }

    /// The next get reads, then waits for [`Scripted::release`] before answering.
    pub fn hold_next_get(&self) {
        self.script.hold_get.store(true, SeqCst);
    }

    /// The next lock attempt waits for [`Scripted::release`] before reaching the store: a
    /// process that is about to take a lock while others finish.
    pub fn hold_next_lock(&self) {
        self.script.hold_lock.store(true, SeqCst);
    }

    /// While `free`, every lock attempt is granted at once and reaches nothing, as with a store
    /// that has no cross-process locks (the process's own single-flight is all there is).
    pub fn set_locks_free(&self, free: bool) {
        self.script.locks_free.store(free, SeqCst);
    }

    /// Resolves once `n` unlocks (of any outcome) have reached the wrapped store.
    pub async fn unlocked(&self, n: usize) {
        let mut unlocks = self.script.unlocks.subscribe();
        let _ = unlocks.wait_for(|&count| count >= n).await;
    }

    /// Resolves once a held put, get or lock attempt is waiting.
    pub async fn held(&self) {
        self.script.held.notified().await;
    }

    /// Lets the held put, get or lock attempt go on.
    pub fn release(&self) {
        self.script.release.notify_one();
    }

    /// How many deletions of any kind reached the wrapped store.
    pub fn deletes(&self) -> usize {
        self.script.deletes.load(SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.script.down.load(SeqCst) {
            Err(StoreError::unavailable("scripted store is down"))
        } else {
            Ok(())
        }
    }

    fn deleting(&self) -> Result<(), StoreError> {
        self.check()?;
        self.script.deletes.fetch_add(1, SeqCst);
        Ok(())
    }

    /// A put through the script: held, failing, invalidated inside, or failing after landing,
    /// as armed.
    async fn putting<T>(
        &self,
        key: &CacheKey,
        put: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.hold(&self.script.hold_put).await;
        self.check()?;
        if self.script.invalidate_in_put.swap(false, SeqCst) {
            self.inner.delete(key).await?;
        }
        let stored = put.await?;
        if self.script.fail_after_put.swap(false, SeqCst) {
            return Err(StoreError::timeout());
        }
        Ok(stored)
    }

    async fn hold(&self, flag: &AtomicBool) {
        if flag.swap(false, SeqCst) {
            self.script.held.notify_one();
            self.script.release.notified().await;
        }
    }
}

impl<S: CacheStore> CacheStore for Scripted<S> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, StoreError> {
        self.check()?;
        let found = self.inner.get(key).await;
        self.hold(&self.script.hold_get).await;
        found
    }

    async fn put(&self, key: &CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        self.putting(key, self.inner.put(key, entry, ttl)).await
    }

    /// As `put`; with free locks (no lock is really taken), an unconditional put.
    async fn put_held(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
        holder: &Holder,
    ) -> Result<bool, StoreError> {
        if self.script.locks_free.load(SeqCst) {
            return self
                .putting(key, self.inner.put(key, entry, ttl))
                .await
                .map(|()| true);
        }
        self.putting(key, self.inner.put_held(key, entry, ttl, holder))
            .await
    }

    async fn incr(&self, key: &CacheKey, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        self.check()?;
        self.inner.incr(key, delta, ttl).await
    }

    async fn invalidate(&self, what: &Invalidation) -> Result<u64, StoreError> {
        match what {
            Invalidation::Generation | Invalidation::Purge => self.check()?,
            _ => self.deleting()?,
        }
        self.inner.invalidate(what).await
    }

    fn fence(&self) -> Option<&Fence> {
        self.inner.fence()
    }
}

impl<S: CacheStore> CacheLock for Scripted<S> {
    async fn try_lock(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        self.hold(&self.script.hold_lock).await;
        self.check()?;
        if self.script.locks_free.load(SeqCst) {
            return Ok(Some(LockToken::random()));
        }
        self.inner.try_lock(key, ttl).await
    }

    async fn unlock(&self, key: &CacheKey, token: &LockToken) -> Result<bool, StoreError> {
        self.check()?;
        let unlocked = if self.script.locks_free.load(SeqCst) {
            Ok(true)
        } else {
            self.inner.unlock(key, token).await
        };
        self.script.unlocks.send_modify(|count| *count += 1);
        unlocked
    }
}
