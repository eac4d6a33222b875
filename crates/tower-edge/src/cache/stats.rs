//! Counters of what the cache did, shared by the layer and every [`CacheHandle`](super::CacheHandle).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from a fresh entry.
    pub hits: u64,
    /// Requests that found no usable entry and went to the inner service.
    pub misses: u64,
    /// Requests answered from a stale entry (stale-while-revalidate or stale-if-error).
    pub stale: u64,
    /// Stale entries the inner service confirmed with `304 Not Modified`.
    pub revalidated: u64,
    /// Requests that waited for another request's inner call instead of making their own.
    pub coalesced: u64,
    /// Requests the cache did not look up or store for (bypass predicate, unsafe or unhandled
    /// methods, a host it cannot key).
    pub bypassed: u64,
    /// Responses stored.
    pub stored: u64,
    /// Responses not stored (or removed right after storing) because their URL or a tag of
    /// theirs was invalidated while they were being fetched: the origin may have read the data
    /// from before that write.
    pub fenced: u64,
    /// Store operations that failed (each one treated as a miss, or skipped).
    pub store_errors: u64,
    /// Body bytes stored in total.
    pub bytes_stored: u64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    /// `tower_edge_cache_total{event}`, counted through kept handles.
    pub(crate) events: crate::observe::CounterFamily<7>,
    /// The cache's own 304s, 412s, 206s and 416s, counted as the layers count theirs.
    pub(crate) answers: crate::observe::Counts,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) revalidated: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) bypassed: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) bytes_stored: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            events: crate::observe::CounterFamily::new(
                "tower_edge_cache_total",
                "event",
                [
                    "hit",
                    "stale",
                    "revalidate",
                    "collapsed",
                    "miss",
                    "forward",
                    "bypass",
                ],
            ),
            answers: crate::observe::Counts::new(),
            hits: AtomicU64::default(),
            misses: AtomicU64::default(),
            stale: AtomicU64::default(),
            revalidated: AtomicU64::default(),
            coalesced: AtomicU64::default(),
            bypassed: AtomicU64::default(),
            stored: AtomicU64::default(),
            fenced: AtomicU64::default(),
            store_errors: AtomicU64::default(),
            bytes_stored: AtomicU64::default(),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            stale: get(&self.stale),
            revalidated: get(&self.revalidated),
            coalesced: get(&self.coalesced),
            bypassed: get(&self.bypassed),
            stored: get(&self.stored),
            fenced: get(&self.fenced),
            store_errors: get(&self.store_errors),
            bytes_stored: get(&self.bytes_stored),
        }
    }
}
