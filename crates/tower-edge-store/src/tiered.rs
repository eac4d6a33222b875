//! [`Tiered`]: a fast store (memory) in front of a shared one (Redis).

use std::{sync::Arc, time::Duration};

use crate::{CacheKey, CacheStore, Entry, LockToken, StoreError, bus::Bus};

/// Reads L1 then L2, promoting L2 hits into L1 for what remains of their life; writes both;
/// invalidates both, and (with the invalidation bus) every other instance's L1 too.
///
/// Locks are L2's, so single-flight spans every instance sharing L2. A failing L1 is skipped;
/// a failing L2 is reported (and so treated as a miss by the cache), L1 still answering what it
/// holds.
///
/// ```no_run
/// use tower_edge_store::{MokaStore, RedisStore, tiered::Tiered};
///
/// # #[tokio::main] async fn main() {
/// let l2 = RedisStore::builder("redis://127.0.0.1:6379/0").prefix("myapp:").build().unwrap();
/// let store = Tiered::new(MokaStore::default(), l2).with_invalidation_bus();
/// # let _ = store; }
/// ```
pub struct Tiered<L1, L2> {
    l1: L1,
    l2: L2,
    max_l1_ttl: Duration,
    bus: Option<Arc<Bus>>,
}

impl<L1: Clone, L2: Clone> Clone for Tiered<L1, L2> {
    fn clone(&self) -> Self {
        Self {
            l1: self.l1.clone(),
            l2: self.l2.clone(),
            max_l1_ttl: self.max_l1_ttl,
            bus: self.bus.clone(),
        }
    }
}

impl<L1, L2> std::fmt::Debug for Tiered<L1, L2> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("max_l1_ttl", &self.max_l1_ttl)
            .field("bus", &self.bus.is_some())
            .finish_non_exhaustive()
    }
}

impl<L1: CacheStore, L2: CacheStore> Tiered<L1, L2> {
    /// `l1` in front of `l2`, without a bus: invalidations reach this instance's L1 and L2 only.
    pub fn new(l1: L1, l2: L2) -> Self {
        Self {
            l1,
            l2,
            max_l1_ttl: Duration::from_secs(3600),
            bus: None,
        }
    }

    /// The longest an entry stays in L1, whatever its own TTL: bounds how long an instance
    /// that missed an invalidation (with the bus down) can serve what was invalidated.
    ///
    /// Defaults to 1 hour.
    #[must_use]
    pub fn max_l1_ttl(mut self, ttl: Duration) -> Self {
        self.max_l1_ttl = ttl;
        self
    }

    /// The memory tier.
    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    /// The shared tier.
    pub fn l2(&self) -> &L2 {
        &self.l2
    }

    /// Whether the invalidation bus is subscribed right now (always `false` without one).
    pub fn bus_connected(&self) -> bool {
        self.bus.as_ref().is_some_and(|b| b.connected())
    }

    async fn broadcast(&self, message: crate::bus::Message) {
        if let Some(bus) = &self.bus {
            bus.publish(&message).await;
        }
    }
}

impl<L1: CacheStore + Clone> Tiered<L1, crate::RedisStore> {
    /// Subscribes this instance's L1 to the invalidation bus on L2's Redis, and publishes every
    /// invalidation made through this store to the other instances. Must be called within a
    /// Tokio runtime; the subscriber task ends when the last clone of this store is dropped.
    #[must_use]
    pub fn with_invalidation_bus(mut self) -> Self {
        self.bus = Some(Arc::new(Bus::spawn(self.l2.clone(), self.l1.clone())));
        self
    }
}

/// What remains of an entry's life in the store: its freshness plus its stale windows, less
/// its age now.
fn remaining(entry: &Entry) -> Duration {
    let life = entry.fresh_for() + entry.stale_while_revalidate().max(entry.stale_if_error());
    life.saturating_sub(entry.age(std::time::SystemTime::now()))
}

impl<L1: CacheStore, L2: CacheStore> CacheStore for Tiered<L1, L2> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, StoreError> {
        if let Ok(Some(entry)) = self.l1.get(key).await {
            return Ok(Some(entry));
        }
        let Some(entry) = self.l2.get(key).await? else {
            return Ok(None);
        };
        let ttl = remaining(&entry).min(self.max_l1_ttl);
        if !ttl.is_zero() {
            let _ = self.l1.put(key, Entry::clone(&entry), ttl).await;
        }
        Ok(Some(entry))
    }

    async fn put(&self, key: &CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        let _ = self
            .l1
            .put(key, entry.clone(), ttl.min(self.max_l1_ttl))
            .await;
        self.l2.put(key, entry, ttl).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<u64, StoreError> {
        let n = self.l2.delete(key).await;
        let _ = self.l1.delete(key).await;
        self.broadcast(crate::bus::Message::Key(key.clone())).await;
        n
    }

    async fn delete_resource(&self, resource: &str) -> Result<u64, StoreError> {
        let n = self.l2.delete_resource(resource).await;
        let _ = self.l1.delete_resource(resource).await;
        self.broadcast(crate::bus::Message::Resource(resource.to_owned()))
            .await;
        n
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let n = self.l2.delete_prefix(prefix).await;
        let _ = self.l1.delete_prefix(prefix).await;
        self.broadcast(crate::bus::Message::Prefix(prefix.to_owned()))
            .await;
        n
    }

    async fn delete_tag(&self, tag: &str) -> Result<u64, StoreError> {
        let n = self.l2.delete_tag(tag).await;
        let _ = self.l1.delete_tag(tag).await;
        self.broadcast(crate::bus::Message::Tag(tag.to_owned()))
            .await;
        n
    }

    async fn bump_generation(&self) -> Result<u64, StoreError> {
        let n = self.l2.bump_generation().await;
        let _ = self.l1.bump_generation().await;
        self.broadcast(crate::bus::Message::Generation).await;
        n
    }

    async fn purge(&self) -> Result<(), StoreError> {
        let r = self.l2.purge().await;
        let _ = self.l1.purge().await;
        self.broadcast(crate::bus::Message::Purge).await;
        r
    }

    async fn try_lock(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        self.l2.try_lock(key, ttl).await
    }

    async fn unlock(&self, key: &CacheKey, token: &LockToken) -> Result<bool, StoreError> {
        self.l2.unlock(key, token).await
    }
}
