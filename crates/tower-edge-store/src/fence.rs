//! [`Fence`]: keeps a fill that raced an invalidation from putting old data back.
//!
//! A cache miss reads its source, then stores what it read. When the source changes and the
//! entry is invalidated between the read and the store, the store puts the old value back after
//! the invalidation, and readers get it until it expires. Nothing in the entry shows it is old:
//! the fill simply finished last.
//!
//! A fence records invalidations so a fill can tell. The protocol, which `MokaStore`,
//! `RedisStore` and `Tiered` follow on their side and the response cache and
//! `Memo` on theirs:
//!
//! 1. The filler takes a [`Ticket`] *before* it reads its source.
//! 2. An invalidation records itself in the fence *before* it deletes from the store.
//! 3. The filler counts itself as under way ([`Fence::enter`]), stores only if
//!    [`Fence::is_current`] holds, and checks again *after* the put, deleting what it put if an
//!    invalidation came in between.
//! 4. An invalidation that must be final when it returns (a write, then a read of what it
//!    wrote) waits until no fill of what it addressed is under way ([`Fence::settle`]).
//!
//! Whatever the interleaving, an invalidation that follows the filler's read either makes the
//! filler skip or undo its put, or deletes that put itself; with step 4, the undoing is done
//! before the invalidation returns, so no reader sees the old value even for that moment.
//!
//! Resources and tags are hashed into a fixed table, so a fence takes constant memory. A
//! collision can only make a fill skip its store, never keep old data. A fence sees the
//! invalidations of this process only, and those a store learns of from others (the
//! `Tiered` invalidation bus records what it receives).
//!
//! ```
//! use tower_edge_store::{CacheKey, Invalidation, fence::Fence};
//!
//! let fence = Fence::new();
//! let key = CacheKey::new("GET https://example.com/items/1").with_variant("enc", "br");
//! let ticket = fence.ticket(); // before reading the source
//! // A write, meanwhile:
//! fence.record(&Invalidation::Resource("GET https://example.com/items/1".into()));
//! assert!(!fence.is_current(ticket, &key, &[])); // so the old read is not stored
//! assert!(fence.is_current(fence.ticket(), &key, &[]));
//! ```
//!

use std::{
    fmt,
    future::Future,
    sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst},
};

use crate::{CacheKey, Invalidation};

/// How many slots resources and tags hash into.
const SLOTS: usize = 4096;

const RESOURCE: u8 = b'r';
const TAG: u8 = b't';

/// A record of recent invalidations, for fills to check against (see the module docs).
pub struct Fence {
    /// Advances on every invalidation.
    sequence: AtomicU64,
    /// The sequence number of the latest invalidation of everything.
    all: AtomicU64,
    /// Per hashed resource or tag, the sequence number of its latest invalidation.
    slots: Box<[AtomicU64]>,
    /// Per hashed resource or tag, the fills between their first check and their last.
    filling: Box<[AtomicU32]>,
    /// All fills between their first check and their last.
    filling_total: AtomicU32,
}

/// A fill between its check before the put and its check after (see [`Fence::enter`]).
#[must_use = "the fill counts as under way only while this lives"]
pub struct Filling<'a> {
    fence: &'a Fence,
    slots: Vec<usize>,
}

impl Drop for Filling<'_> {
    fn drop(&mut self) {
        for &slot in &self.slots {
            self.fence.filling[slot].fetch_sub(1, SeqCst);
        }
        self.fence.filling_total.fetch_sub(1, SeqCst);
    }
}

impl fmt::Debug for Filling<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filling").finish_non_exhaustive()
    }
}

/// The moment a fill began, to check it against later invalidations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl Fence {
    /// An empty fence.
    pub fn new() -> Self {
        Self {
            sequence: AtomicU64::new(0),
            all: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            filling: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            filling_total: AtomicU32::new(0),
        }
    }

    /// Marks the start of a fill: take it before reading the source.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.sequence.load(SeqCst))
    }

    fn advance(&self) -> u64 {
        self.sequence.fetch_add(1, SeqCst) + 1
    }

    fn index(kind: u8, name: &str) -> usize {
        // FNV-1a: fast on short strings, stable, and good enough to spread names over slots.
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for byte in std::iter::once(kind).chain(name.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % SLOTS as u64) as usize
    }

    fn slot(&self, kind: u8, name: &str) -> &AtomicU64 {
        &self.slots[Self::index(kind, name)]
    }

    /// Counts a fill as under way, from just before its check before the put until the guard
    /// drops, after its check after the put (and the undoing of the put, if any). Invalidations
    /// of what it addresses can wait for it with [`Fence::is_settled`].
    pub fn enter(&self, key: &CacheKey, tags: &[String]) -> Filling<'_> {
        let mut slots = Vec::with_capacity(1 + tags.len());
        slots.push(Self::index(RESOURCE, key.resource()));
        slots.extend(tags.iter().map(|tag| Self::index(TAG, tag)));
        self.filling_total.fetch_add(1, SeqCst);
        for &slot in &slots {
            self.filling[slot].fetch_add(1, SeqCst);
        }
        Filling { fence: self, slots }
    }

    /// Whether no fill that addresses `what` is under way (see [`Fence::enter`]).
    ///
    /// An invalidation that records itself, deletes, and then sees this hold once, is final:
    /// every fill under way before has finished its check after the put (undoing the put if
    /// needed), and every fill that comes after sees the invalidation in its check before the
    /// put. Then no reader can find what was invalidated, not even for the moment between an
    /// overtaken fill's put and its undoing.
    pub fn is_settled(&self, what: &Invalidation) -> bool {
        let slot = match what {
            Invalidation::Resource(resource) => {
                Self::index(RESOURCE, CacheKey::new(resource).resource())
            }
            Invalidation::Key(key) => Self::index(RESOURCE, key.resource()),
            Invalidation::Tag(tag) => Self::index(TAG, tag),
            Invalidation::Prefix(_) | Invalidation::Generation | Invalidation::Purge => {
                return self.filling_total.load(SeqCst) == 0;
            }
        };
        self.filling[slot].load(SeqCst) == 0
    }

    /// Waits, at most `limit`, until [`Fence::is_settled`] holds for `what`; returns whether it
    /// did. Fills are bounded by their store's timeouts, so this is short unless fills of the
    /// same slot follow each other without a gap.
    #[cfg(any(feature = "memo", feature = "redis"))]
    pub async fn settle(&self, what: &Invalidation, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut spins = 0u32;
        loop {
            if self.is_settled(what) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            if spins < 8 {
                spins += 1;
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }

    /// Records `what`. Call it before deleting from the store.
    ///
    /// A key counts as its whole resource (the fence does not tell variants apart), and a
    /// prefix, a new generation and a purge as everything.
    pub fn record(&self, what: &Invalidation) {
        let n = self.advance();
        let slot = match what {
            Invalidation::Key(key) => self.slot(RESOURCE, key.resource()),
            Invalidation::Resource(resource) => {
                self.slot(RESOURCE, CacheKey::new(resource).resource())
            }
            Invalidation::Tag(tag) => self.slot(TAG, tag),
            Invalidation::Prefix(_) | Invalidation::Generation | Invalidation::Purge => &self.all,
        };
        slot.fetch_max(n, SeqCst);
    }

    /// Whether nothing that addresses an entry under `key`, tagged `tags`, was invalidated
    /// since `ticket` was taken.
    pub fn is_current(&self, ticket: Ticket, key: &CacheKey, tags: &[String]) -> bool {
        self.all.load(SeqCst) <= ticket.0
            && self.slot(RESOURCE, key.resource()).load(SeqCst) <= ticket.0
            && tags
                .iter()
                .all(|tag| self.slot(TAG, tag).load(SeqCst) <= ticket.0)
    }
}

/// How a [`fill`] ended.
#[derive(Debug)]
pub enum Filled<E> {
    /// The value is stored.
    Stored,
    /// An invalidation overtook the fill: nothing was stored, or what was is removed again.
    Fenced,
    /// The put failed, and no invalidation overtook it.
    Failed(E),
}

/// Runs the filler's side of the protocol (see the module docs) for a value stored under `key`
/// with `tags`, read since `ticket`: counts the fill as under way, skips `put` if an
/// invalidation already overtook it, and checks again after `put`, whatever it returned (a
/// failed put may have landed in part), running `undo` if one came in between. Without a fence
/// or a ticket it is a plain put.
pub async fn fill<E>(
    fence: Option<&Fence>,
    ticket: Option<Ticket>,
    key: &CacheKey,
    tags: &[String],
    put: impl Future<Output = Result<(), E>>,
    undo: impl Future<Output = ()>,
) -> Filled<E> {
    let (Some(fence), Some(ticket)) = (fence, ticket) else {
        return match put.await {
            Ok(()) => Filled::Stored,
            Err(error) => Filled::Failed(error),
        };
    };
    let _filling = fence.enter(key, tags);
    if !fence.is_current(ticket, key, tags) {
        return Filled::Fenced;
    }
    let stored = put.await;
    if !fence.is_current(ticket, key, tags) {
        undo.await;
        return Filled::Fenced;
    }
    match stored {
        Ok(()) => Filled::Stored,
        Err(error) => Filled::Failed(error),
    }
}

impl Default for Fence {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("invalidations", &self.sequence.load(SeqCst))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key(resource: &str) -> CacheKey {
        CacheKey::new(resource).with_variant("enc", "gzip")
    }

    #[test]
    fn an_invalidation_after_the_ticket_fences_only_what_it_addresses() {
        let fence = Fence::new();
        let ticket = fence.ticket();
        fence.record(&Invalidation::Resource("GET http://a/1".into()));
        assert!(!fence.is_current(ticket, &key("GET http://a/1"), &[]));
        assert!(fence.is_current(ticket, &key("GET http://a/2"), &[]));
        // Escaped resources hash as their keys do.
        fence.record(&Invalidation::Resource("GET http://a/x|y".into()));
        assert!(!fence.is_current(ticket, &key("GET http://a/x|y"), &[]));

        fence.record(&Invalidation::Tag("catalogue".into()));
        let tags = vec!["other".to_owned(), "catalogue".to_owned()];
        assert!(!fence.is_current(ticket, &key("GET http://a/2"), &tags));
        assert!(fence.is_current(ticket, &key("GET http://a/2"), &tags[..1]));
        // A tag and a resource of the same name are different things.
        assert!(fence.is_current(ticket, &key("catalogue"), &[]));
    }

    #[test]
    fn invalidations_before_the_ticket_do_not_count() {
        let fence = Fence::new();
        fence.record(&Invalidation::Resource("GET http://a/1".into()));
        fence.record(&Invalidation::Tag("t".into()));
        fence.record(&Invalidation::Purge);
        let ticket = fence.ticket();
        assert!(fence.is_current(ticket, &key("GET http://a/1"), &["t".to_owned()]));
    }

    #[test]
    fn fills_under_way_hold_back_settling_of_what_they_address_only() {
        let fence = Fence::new();
        let key = key("GET http://a/1");
        let tags = vec!["list".to_owned()];
        let filling = fence.enter(&key, &tags);
        assert!(!fence.is_settled(&Invalidation::Key(key.clone())));
        assert!(!fence.is_settled(&Invalidation::Resource("GET http://a/1".into())));
        assert!(!fence.is_settled(&Invalidation::Tag("list".into())));
        assert!(!fence.is_settled(&Invalidation::Purge));
        assert!(fence.is_settled(&Invalidation::Resource("GET http://a/2".into())));
        assert!(fence.is_settled(&Invalidation::Tag("other".into())));
        let second = fence.enter(&key, &[]);
        drop(filling);
        assert!(!fence.is_settled(&Invalidation::Key(key.clone())));
        assert!(fence.is_settled(&Invalidation::Tag("list".into())));
        drop(second);
        assert!(fence.is_settled(&Invalidation::Key(key.clone())));
        assert!(fence.is_settled(&Invalidation::Purge));
    }

    #[tokio::test(start_paused = true)]
    async fn settle_waits_for_the_fill_and_gives_up_at_its_limit() {
        let fence = Arc::new(Fence::new());
        let key = key("GET http://a/1");
        let filling = fence.enter(&key, &[]);
        let limit = std::time::Duration::from_millis(100);
        assert!(!fence.settle(&Invalidation::Key(key.clone()), limit).await);
        let f2 = Arc::clone(&fence);
        let k2 = key.clone();
        let waiter = tokio::spawn(async move {
            f2.settle(&Invalidation::Key(k2), std::time::Duration::from_secs(5))
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        drop(filling);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn invalidating_everything_fences_every_key() {
        let fence = Fence::new();
        let ticket = fence.ticket();
        fence.record(&Invalidation::Purge);
        assert!(!fence.is_current(ticket, &key("GET http://a/anything"), &[]));
    }

    #[test]
    fn concurrent_invalidations_are_never_lost() {
        // Each thread invalidates its own resource after taking a ticket; every one of those
        // tickets must see its invalidation, however the threads interleave.
        let fence = Arc::new(Fence::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let fence = Arc::clone(&fence);
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let resource = format!("GET http://a/{t}/{i}");
                        let ticket = fence.ticket();
                        fence.record(&Invalidation::Resource(resource.clone()));
                        assert!(!fence.is_current(ticket, &key(&resource), &[]));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
