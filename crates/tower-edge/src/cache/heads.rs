//! The heads of recent hits, kept for as long as they stay the same.
//!
//! A fresh hit's head is the stored fields plus `Age` and `Cache-Status`, which change only
//! when the entry's age or remaining freshness passes a whole second. Building it field by
//! field (each name hashed into a new map, two values formatted and allocated) is the largest
//! part of a hit in memory; cloning a finished map copies its table as it is. So the cache
//! keeps the last head it built for each of a few recent entries, and a hit on the same entry
//! within the same second clones it.
//!
//! An entry is recognised by its address while a [`Weak`] to it is held: the allocation cannot
//! be freed or reused while the `Weak` lives, and entries never change. The head is the only
//! copy the cache makes; the `Weak` keeps nothing of the entry's body alive. At most
//! [`SLOTS`] heads are kept per layer (direct-mapped: a new one takes its slot's place).

use std::sync::{Arc, Mutex, Weak};

use http::HeaderMap;
use tower_edge_store::Entry;

/// How many heads one layer keeps.
const SLOTS: usize = 64;

struct Head {
    entry: Weak<Entry>,
    /// The whole seconds of `Age` and of `Cache-Status`'s `ttl` the head says.
    age: u64,
    ttl: u64,
    headers: HeaderMap,
}

/// The kept heads of one cache layer.
pub(crate) struct Heads {
    // One lock per slot: two hits contend only on the same slot.
    slots: Box<[Mutex<Option<Head>>]>,
}

impl Default for Heads {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl Heads {
    /// A copy of the head kept for `entry` at this age and ttl, if there is one.
    pub(crate) fn get(&self, entry: &Arc<Entry>, age: u64, ttl: u64) -> Option<HeaderMap> {
        let slot = self.slot(entry).lock().ok()?;
        let head = slot.as_ref()?;
        (std::ptr::eq(head.entry.as_ptr(), Arc::as_ptr(entry))
            && head.age == age
            && head.ttl == ttl)
            .then(|| head.headers.clone())
    }

    /// Keeps a copy of `headers` as `entry`'s head at this age and ttl.
    pub(crate) fn keep(&self, entry: &Arc<Entry>, age: u64, ttl: u64, headers: &HeaderMap) {
        let head = Head {
            entry: Arc::downgrade(entry),
            age,
            ttl,
            headers: headers.clone(),
        };
        let replaced = match self.slot(entry).lock() {
            Ok(mut slot) => slot.replace(head),
            Err(_) => return,
        };
        drop(replaced);
    }

    fn slot(&self, entry: &Arc<Entry>) -> &Mutex<Option<Head>> {
        let address = Arc::as_ptr(entry) as usize;
        &self.slots[((address >> 4) ^ (address >> 12)) % SLOTS]
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderValue, StatusCode, header};

    use super::*;

    fn entry() -> Arc<Entry> {
        Arc::new(Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::new()))
    }

    fn head(age: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AGE, HeaderValue::from_static(age));
        headers
    }

    #[test]
    fn a_head_is_found_for_its_entry_age_and_ttl_only() {
        let heads = Heads::default();
        let (a, b) = (entry(), entry());
        heads.keep(&a, 5, 100, &head("5"));
        assert_eq!(heads.get(&a, 5, 100).unwrap()[header::AGE], "5");
        assert!(heads.get(&a, 6, 100).is_none());
        assert!(heads.get(&a, 5, 99).is_none());
        assert!(heads.get(&b, 5, 100).is_none());
    }

    #[test]
    fn an_entry_dropped_and_its_address_reused_is_not_taken_for_the_kept_one() {
        // The Weak keeps the first entry's allocation, so no later entry can be put there.
        let heads = Heads::default();
        let first = entry();
        let address = Arc::as_ptr(&first);
        heads.keep(&first, 0, 10, &head("0"));
        drop(first);
        for _ in 0..100 {
            let other = entry();
            assert_ne!(Arc::as_ptr(&other), address);
            assert!(heads.get(&other, 0, 10).is_none());
        }
    }
}
