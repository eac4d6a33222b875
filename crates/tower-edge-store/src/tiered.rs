//! [`Tiered`]: a fast store (memory) in front of a shared one (Redis).

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::Duration,
};

use crate::{
    CacheKey, CacheLock, CacheStore, Entry, Holder, Invalidation, LockToken, StoreError,
    bus::Bus,
    clock::{Clock, SystemClock},
    fence::{self, Fence},
};

/// How many invalidations that missed L2 are kept for replay; past that, the replay is one new
/// L2 generation, which makes every L2 entry unreachable.
const MAX_PENDING: usize = 1024;
/// How often a replay of invalidations that missed L2 is tried.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// How many invalidations one read replays at most before it gives up reading L2 this time.
const REPLAY_BATCH: usize = 64;
/// How long the first pending invalidation may keep failing before a new L2 generation
/// replaces the queue.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// Reads L1 then L2, promoting L2 hits into L1 for what remains of their life; writes both;
/// invalidates both, and (with the invalidation bus) every other instance's L1 too.
///
/// Locks are L2's, so single-flight spans every instance sharing L2. A failing L1 is skipped;
/// a failing L2 is reported (and so treated as a miss by the cache), L1 still answering what it
/// holds.
///
/// An invalidation that fails to reach L2 (Redis down, or too slow to answer in time) is kept
/// and replayed before L2 is read again (retried at most every 100 ms, 64 per read): until it
/// lands, this instance reads L1 only, so it never brings back from L2 what it was asked to
/// remove. It is published on the bus again once it lands. Past 1024 pending invalidations, or
/// when the first one has kept failing for 10 s, they are replaced by one new L2 generation,
/// which hides every L2 entry from every instance. Another instance may still read such an
/// entry from L2 until the replay lands.
///
/// Promotions into L1 follow the [`fence`] protocol: an L2 read that an
/// invalidation overtakes, here or (through the bus) on another instance, is not promoted.
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
    clock: Arc<dyn Clock>,
    bus: Option<Arc<Bus>>,
    pending: Arc<Pending>,
}

/// Invalidations that did not reach L2, to replay before L2 is read again.
#[derive(Default)]
struct Pending {
    /// Whether the queue holds anything: read on every L1 miss, without taking the lock.
    any: AtomicBool,
    /// Whether a replay is running; one at a time.
    replaying: AtomicBool,
    /// How many invalidations were replayed, since the store was made.
    replayed: std::sync::atomic::AtomicU64,
    state: std::sync::Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    queue: VecDeque<Invalidation>,
    /// No replay before this, after one failed.
    retry_at: Option<tokio::time::Instant>,
    /// Since when the head of the queue has failed to replay.
    failing_since: Option<tokio::time::Instant>,
}

impl Pending {
    fn state(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Clears the replay flag however the replay ends, cancellation included.
struct Replaying<'a>(&'a AtomicBool);

impl Drop for Replaying<'_> {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}

impl<L1: Clone, L2: Clone> Clone for Tiered<L1, L2> {
    fn clone(&self) -> Self {
        Self {
            l1: self.l1.clone(),
            l2: self.l2.clone(),
            max_l1_ttl: self.max_l1_ttl,
            clock: Arc::clone(&self.clock),
            bus: self.bus.clone(),
            pending: Arc::clone(&self.pending),
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
            clock: Arc::new(SystemClock),
            bus: None,
            pending: Arc::default(),
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

    /// The clock an entry's age is read from, to promote an L2 hit into L1 for what remains
    /// of its life: the response cache's, in tests that move time.
    ///
    /// Defaults to the system clock.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
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

    async fn broadcast(&self, message: &Invalidation) {
        if let Some(bus) = &self.bus {
            bus.publish(message).await;
        }
    }

    /// How many invalidations are waiting to reach L2.
    pub fn pending_invalidations(&self) -> usize {
        self.pending.state().queue.len()
    }

    /// Keeps an invalidation that failed on L2, for `l2_readable` to replay. Never waits, so a
    /// caller that goes away cannot lose it.
    fn defer(&self, message: &Invalidation, error: &StoreError) {
        tracing::warn!(
            %error,
            ?message,
            "invalidation did not reach the shared tier; replaying it before reading from there"
        );
        let mut state = self.pending.state();
        if state.queue.len() >= MAX_PENDING {
            state.queue.clear();
            state.queue.push_back(Invalidation::Generation);
        } else {
            state.queue.push_back(message.clone());
        }
        self.pending.any.store(true, SeqCst);
    }

    /// Whether L2 may be read: no invalidation is waiting to reach it. Replays those waiting
    /// (at most `REPLAY_BATCH` per call, one replay at a time) unless a retry is not due yet.
    /// Copies what was read from L2 into L1 for what is left of its life (at most the L1
    /// bound), unless an invalidation since `ticket` may have removed it from L2 after the read:
    /// promoting it then would bring it back.
    async fn promote(&self, key: &CacheKey, entry: &Arc<Entry>, ticket: Option<fence::Ticket>) {
        let ttl = remaining(entry, self.clock.now()).min(self.max_l1_ttl);
        if ttl.is_zero() {
            return;
        }
        let put = self.l1.put(key, Entry::clone(entry), ttl);
        let undo = async {
            let _ = self.l1.delete(key).await;
        };
        fence::fill(self.l1.fence(), ticket, key, entry.tags(), put, undo).await;
    }

    async fn l2_readable(&self) -> bool {
        if !self.pending.any.load(SeqCst) {
            return true;
        }
        if self.pending.replaying.swap(true, SeqCst) {
            return false;
        }
        let _replaying = Replaying(&self.pending.replaying);
        let now = tokio::time::Instant::now();
        if self.pending.state().retry_at.is_some_and(|at| now < at) {
            return false;
        }
        for _ in 0..REPLAY_BATCH {
            let head = {
                let state = self.pending.state();
                match state.queue.front() {
                    Some(head) => head.clone(),
                    None => {
                        // Cleared under the lock `defer` pushes under: nothing slips between.
                        self.pending.any.store(false, SeqCst);
                        tracing::info!(
                            "invalidations replayed on the shared tier; reading it again"
                        );
                        return true;
                    }
                }
            };
            if let Err(error) = self.l2.invalidate(&head).await {
                self.replay_failed(&head, &error);
                return false;
            }
            // Other instances may have missed it as well. Published before it leaves the
            // queue: a replay cut short here repeats it, which is harmless.
            self.broadcast(&head).await;
            self.pending.replayed.fetch_add(1, SeqCst);
            let mut state = self.pending.state();
            if state.queue.front() == Some(&head) {
                state.queue.pop_front();
            }
            state.retry_at = None;
            state.failing_since = None;
        }
        false
    }

    fn replay_failed(&self, head: &Invalidation, error: &StoreError) {
        let now = tokio::time::Instant::now();
        let mut state = self.pending.state();
        state.retry_at = Some(now + RETRY_EVERY);
        let since = *state.failing_since.get_or_insert(now);
        if now.duration_since(since) >= GIVE_UP_AFTER && *head != Invalidation::Generation {
            // One invalidation that never lands (a scan too slow for its timeout, say) must not
            // keep this instance off L2 for good: a new generation replaces them all.
            tracing::warn!(
                %error,
                ?head,
                pending = state.queue.len(),
                "invalidations still fail on the shared tier; replacing them with a new generation"
            );
            state.queue.clear();
            state.queue.push_back(Invalidation::Generation);
            state.failing_since = None;
        } else {
            tracing::debug!(%error, ?head, "invalidation replay failed; retrying later");
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
/// its age `now`.
fn remaining(entry: &Entry, now: std::time::SystemTime) -> Duration {
    let life = entry.fresh_for() + entry.stale_while_revalidate().max(entry.stale_if_error());
    life.saturating_sub(entry.age(now))
}

impl<L1: CacheStore, L2: CacheStore> CacheStore for Tiered<L1, L2> {
    /// An L1 hit; L2 is never asked without waiting.
    fn get_now(&self, key: &CacheKey) -> Option<Option<Arc<Entry>>> {
        match self.l1.get_now(key) {
            Some(Some(entry)) => Some(Some(entry)),
            _ => None,
        }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, StoreError> {
        if let Ok(Some(entry)) = self.l1.get(key).await {
            return Ok(Some(entry));
        }
        // Taken before the pending check: an invalidation that fails on L2 after that check
        // still shows in the fence by the time the promotion is decided.
        let fence = self.l1.fence();
        let ticket = fence.map(Fence::ticket);
        // Boxed: the replay's futures are large, and would otherwise grow every read's future,
        // hits included, though a replay is rare.
        if self.pending.any.load(SeqCst) && !Box::pin(self.l2_readable()).await {
            return Ok(None);
        }
        let Some(entry) = self.l2.get(key).await? else {
            return Ok(None);
        };
        self.promote(key, &entry, ticket).await;
        Ok(Some(entry))
    }

    /// L1's hits, then the rest from L2 in one call ([`CacheStore::get_many`] of L2: one
    /// round trip on Redis), promoted as `get` promotes.
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Arc<Entry>>>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (at, key) in keys.iter().enumerate() {
            let hit = self.l1.get(key).await.ok().flatten();
            if hit.is_none() {
                missing.push(at);
            }
            found.push(hit);
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let ticket = self.l1.fence().map(Fence::ticket);
        if self.pending.any.load(SeqCst) && !Box::pin(self.l2_readable()).await {
            return Ok(found);
        }
        let asked: Vec<CacheKey> = missing.iter().map(|&at| keys[at].clone()).collect();
        let answers = self.l2.get_many(&asked).await?;
        for (&at, entry) in missing.iter().zip(answers) {
            if let Some(entry) = &entry {
                self.promote(&keys[at], entry, ticket).await;
            }
            found[at] = entry;
        }
        Ok(found)
    }

    /// L1 each, then L2 in one call ([`CacheStore::put_many`] of L2).
    async fn put_many(
        &self,
        items: Vec<(CacheKey, Entry)>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        for (key, entry) in &items {
            let _ = self
                .l1
                .put(key, entry.clone(), ttl.min(self.max_l1_ttl))
                .await;
        }
        self.l2.put_many(items, ttl).await
    }

    /// Both tiers', then the bus's state and the replay queue's.
    #[allow(clippy::cast_precision_loss)] // a queue far shorter than 2^52
    fn record_metrics(&self) {
        self.l1.record_metrics();
        self.l2.record_metrics();
        if let Some(bus) = &self.bus {
            crate::observe::gauge(
                "tower_edge_bus_connected",
                "redis",
                f64::from(u8::from(bus.connected())),
            );
        }
        let pending = self.pending.state().queue.len();
        crate::observe::gauge("tower_edge_invalidations_pending", "redis", pending as f64);
        crate::observe::total(
            "tower_edge_invalidations_replayed_total",
            self.pending.replayed.load(SeqCst),
        );
    }

    async fn put(&self, key: &CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        let _ = self
            .l1
            .put(key, entry.clone(), ttl.min(self.max_l1_ttl))
            .await;
        self.l2.put(key, entry, ttl).await
    }

    /// Writes L2 only while `holder` holds its lock there (locks are L2's), then L1.
    async fn put_held(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
        holder: &Holder,
    ) -> Result<bool, StoreError> {
        let stored = self.l2.put_held(key, entry.clone(), ttl, holder).await?;
        if stored {
            let _ = self.l1.put(key, entry, ttl.min(self.max_l1_ttl)).await;
        }
        Ok(stored)
    }

    /// On L2 only: a counter is shared state, which a copy in one instance's memory would
    /// split. Invalidations waiting for replay go to L2 first, so a counter they address does
    /// not count on.
    async fn incr(&self, key: &CacheKey, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        if self.pending.any.load(SeqCst) && !Box::pin(self.l2_readable()).await {
            return Err(StoreError::unavailable(
                "invalidations still waiting for the shared tier",
            ));
        }
        self.l2.incr(key, delta, ttl).await
    }

    /// Recorded in L1's fence before L2 is touched (a fill that lands in between must see
    /// it), then carried out on L2 (kept for replay if that fails) and L1, then published.
    async fn invalidate(&self, what: &Invalidation) -> Result<u64, StoreError> {
        if let Some(fence) = self.l1.fence() {
            fence.record(what);
        }
        let n = self.l2.invalidate(what).await;
        if let Err(error) = &n {
            self.defer(what, error);
        }
        let _ = self.l1.invalidate(what).await;
        self.broadcast(what).await;
        n
    }

    /// L1's fence, which this store's own invalidations and those the bus brings in record
    /// themselves in.
    fn fence(&self) -> Option<&Fence> {
        self.l1.fence()
    }
}

/// Locks are L2's, so single-flight spans every instance sharing it.
impl<L1: CacheStore, L2: CacheStore> CacheLock for Tiered<L1, L2> {
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::{MokaStore, testing::Scripted};

    fn entry(body: &'static str) -> Entry {
        Entry::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(body.as_bytes()),
        )
        .with_stored_at(std::time::SystemTime::now())
        .with_fresh_for(Duration::from_secs(60))
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn an_invalidation_that_missed_l2_is_replayed_before_l2_is_read() {
        let remote = Scripted::new(MokaStore::default());
        let store = Tiered::new(MokaStore::default(), remote.clone());
        let key = CacheKey::new("GET http://a/1").with_variant("enc", "gzip");
        store.put(&key, entry("old"), TTL).await.unwrap();

        // Too slow or down for the invalidation, then back for the read.
        remote.set_down(true);
        assert!(store.delete_resource("GET http://a/1").await.is_err());
        remote.set_down(false);
        assert!(store.l1().get(&key).await.unwrap().is_none());
        assert!(
            remote.inner().get(&key).await.unwrap().is_some(),
            "L2 kept it"
        );
        assert_eq!(store.pending_invalidations(), 1);

        // The first read replays the invalidation, then reads L2: nothing there any more.
        assert!(store.get(&key).await.unwrap().is_none());
        assert_eq!(store.pending_invalidations(), 0);
        assert!(remote.inner().get(&key).await.unwrap().is_none());

        // A fresh value is stored and read as usual again.
        store.put(&key, entry("new"), TTL).await.unwrap();
        store.l1().purge().await.unwrap();
        let got = store.get(&key).await.unwrap().unwrap();
        assert_eq!(got.body().as_ref(), b"new");
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_replay_fails_l2_is_not_read_and_retries_are_spaced() {
        let remote = Scripted::new(MokaStore::default());
        let store = Tiered::new(MokaStore::default(), remote.clone());
        let key = CacheKey::new("GET http://a/1");
        let tagged = CacheKey::new("GET http://a/2");
        store.put(&key, entry("old"), TTL).await.unwrap();
        store
            .put(&tagged, entry("old").with_tags(vec!["t".into()]), TTL)
            .await
            .unwrap();

        remote.set_down(true);
        assert!(store.delete(&key).await.is_err());
        assert!(store.delete_tag("t").await.is_err());
        assert_eq!(store.pending_invalidations(), 2);
        // Still down: reads are misses, not errors, and not L2's old entries.
        assert!(store.get(&key).await.unwrap().is_none());
        remote.set_down(false);
        // Within the retry interval L2 stays unread, so its old entry is not served.
        assert!(store.get(&tagged).await.unwrap().is_none());
        assert_eq!(remote.deletes(), 0);
        tokio::time::advance(RETRY_EVERY).await;
        assert!(store.get(&tagged).await.unwrap().is_none());
        assert_eq!(remote.deletes(), 2, "both replayed");
        assert!(remote.inner().get(&key).await.unwrap().is_none());
        assert!(remote.inner().get(&tagged).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn too_many_missed_invalidations_become_a_new_generation() {
        let remote = Scripted::new(MokaStore::default());
        let store = Tiered::new(MokaStore::default(), remote.clone());
        let key = CacheKey::new("GET http://a/kept");
        store.put(&key, entry("old"), TTL).await.unwrap();
        remote.set_down(true);
        for i in 0..=MAX_PENDING {
            let _ = store.delete_resource(&format!("GET http://a/{i}")).await;
        }
        assert_eq!(store.pending_invalidations(), 1);
        remote.set_down(false);
        store.l1().purge().await.unwrap();
        // The new generation hides every L2 entry, the one never invalidated included.
        assert!(store.get(&key).await.unwrap().is_none());
        assert!(remote.inner().get(&key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_l2_read_overtaken_by_an_invalidation_is_not_promoted() {
        let remote = Scripted::new(MokaStore::default());
        let store = Tiered::new(MokaStore::default(), remote.clone());
        let key = CacheKey::new("GET http://a/1");
        remote.inner().put(&key, entry("old"), TTL).await.unwrap();
        // The read is held after L2 answered; meanwhile an invalidation from another instance
        // removes the entry from L2 and (through the bus) from this L1.
        remote.hold_next_get();
        let read = tokio::spawn({
            let store = store.clone();
            let key = key.clone();
            async move { store.get(&key).await }
        });
        remote.held().await;
        remote.inner().delete(&key).await.unwrap();
        store.l1().delete(&key).await.unwrap();
        remote.release();
        // The read itself began before the invalidation: it may answer with what it read.
        assert!(read.await.unwrap().unwrap().is_some());
        // But L1 must not keep it.
        assert!(store.l1().get(&key).await.unwrap().is_none());
        assert!(store.get(&key).await.unwrap().is_none());

        // Without an invalidation, L2 hits are promoted as before.
        remote.inner().put(&key, entry("new"), TTL).await.unwrap();
        assert!(store.get(&key).await.unwrap().is_some());
        assert!(store.l1().get(&key).await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn replays_go_in_batches_and_a_head_that_never_lands_becomes_a_generation() {
        let remote = Scripted::new(MokaStore::default());
        let store = Tiered::new(MokaStore::default(), remote.clone());
        remote.set_down(true);
        for i in 0..100 {
            let _ = store.delete_resource(&format!("GET http://a/{i}")).await;
        }
        remote.set_down(false);
        let key = CacheKey::new("GET http://a/kept");
        // One read replays one batch; the rest waits for the next read.
        assert!(store.get(&key).await.unwrap().is_none());
        assert_eq!(store.pending_invalidations(), 100 - REPLAY_BATCH);
        assert!(store.get(&key).await.unwrap().is_none());
        assert_eq!(store.pending_invalidations(), 0);
        assert_eq!(remote.deletes(), 100);

        // Down for good: after ten seconds of failed replays the queue becomes one generation.
        remote.set_down(true);
        let _ = store.delete_resource("GET http://a/x").await;
        let _ = store.delete_resource("GET http://a/y").await;
        for _ in 0..(GIVE_UP_AFTER.as_millis() / RETRY_EVERY.as_millis() + 2) {
            assert!(store.get(&key).await.unwrap().is_none());
            tokio::time::advance(RETRY_EVERY).await;
        }
        assert_eq!(store.pending_invalidations(), 1);
        remote.inner().put(&key, entry("old"), TTL).await.unwrap();
        remote.set_down(false);
        tokio::time::advance(RETRY_EVERY).await;
        assert!(
            store.get(&key).await.unwrap().is_none(),
            "the new generation hides it"
        );
        assert_eq!(store.pending_invalidations(), 0);
    }

    #[tokio::test]
    async fn an_l2_hit_lives_in_l1_for_what_remains_of_its_life_by_the_clock_given() {
        use crate::clock::ManualClock;

        let stored_at = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let key = CacheKey::new("GET http://a/1");
        let in_l2 = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"x"))
            .with_stored_at(stored_at)
            .with_fresh_for(Duration::from_secs(60));
        // Ten seconds into its minute by the clock given: promoted.
        let clock = ManualClock::new(stored_at + Duration::from_secs(10));
        let store = Tiered::new(MokaStore::default(), MokaStore::default()).clock(clock.clone());
        store.l2().put(&key, in_l2.clone(), TTL).await.unwrap();
        assert!(store.get(&key).await.unwrap().is_some());
        assert!(store.l1().get(&key).await.unwrap().is_some(), "promoted");
        // Past its life by the clock given: served from L2, not promoted.
        clock.advance(Duration::from_secs(60));
        store.l1().purge().await.unwrap();
        assert!(store.get(&key).await.unwrap().is_some());
        assert!(
            store.l1().get(&key).await.unwrap().is_none(),
            "not promoted"
        );
    }

    #[tokio::test]
    async fn a_promotion_an_invalidation_slipped_under_is_undone() {
        let l1 = Scripted::new(MokaStore::default());
        let remote = Scripted::new(MokaStore::default());
        let store = Tiered::new(l1.clone(), remote.clone());
        let key = CacheKey::new("GET http://a/1");
        remote.inner().put(&key, entry("old"), TTL).await.unwrap();
        l1.invalidate_inside_next_put();
        assert!(store.get(&key).await.unwrap().is_some());
        assert!(l1.inner().get(&key).await.unwrap().is_none());
        // Unarmed, the promotion stays.
        assert!(store.get(&key).await.unwrap().is_some());
        assert!(l1.inner().get(&key).await.unwrap().is_some());
    }
}
