//! The hot-file cache: small files held in memory with their metadata and precompressed
//! siblings, so the common request costs no system call.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::HeaderValue;

use super::{meta::Version, negotiate::Encoding};
use crate::http::etag::EntityTag;

/// One representation of a file: the identity file or a precompressed sibling.
#[derive(Clone, Debug)]
pub(super) struct Rep {
    pub(super) version: Version,
    pub(super) etag: EntityTag,
    pub(super) modified: Option<SystemTime>,
    /// `modified` as an HTTP-date, formatted once per version rather than per response.
    pub(super) modified_value: Option<HeaderValue>,
    pub(super) encoding: Option<Encoding>,
}

impl Rep {
    pub(super) fn new(
        version: Version,
        etag: EntityTag,
        modified: Option<SystemTime>,
        encoding: Option<Encoding>,
    ) -> Self {
        Self {
            version,
            etag,
            modified,
            modified_value: modified.map(crate::http::date::http_date_value),
            encoding,
        }
    }
}

#[derive(Debug)]
pub(super) struct CachedRep {
    pub(super) rep: Rep,
    pub(super) bytes: Bytes,
    pub(super) path: PathBuf,
    pub(super) heads: super::respond::KeptHeads,
}

/// A cached file: every representation found when it was loaded, identity first.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) content_type: HeaderValue,
    pub(super) reps: Vec<CachedRep>,
    // When the files were last seen unchanged, in milliseconds since the epoch (by the
    // service's clock).
    checked_ms: AtomicU64,
}

impl Entry {
    pub(super) fn new(
        name: String,
        content_type: HeaderValue,
        reps: Vec<CachedRep>,
        now: SystemTime,
    ) -> Self {
        Self {
            name,
            content_type,
            reps,
            checked_ms: AtomicU64::new(millis(now)),
        }
    }

    pub(super) fn size(&self) -> u64 {
        self.reps.iter().map(|r| r.bytes.len() as u64).sum()
    }

    /// Whether the entry was checked against the disk less than `interval` ago.
    pub(super) fn is_fresh(&self, now: SystemTime, interval: Duration) -> bool {
        let checked = self.checked_ms.load(Ordering::Relaxed);
        millis(now).saturating_sub(checked) < interval.as_millis() as u64
    }

    pub(super) fn mark_checked(&self, now: SystemTime) {
        self.checked_ms.store(millis(now), Ordering::Relaxed);
    }

    /// The representation for `encoding`, if the entry has it.
    pub(super) fn rep(&self, encoding: Option<Encoding>) -> Option<&CachedRep> {
        self.reps.iter().find(|r| r.rep.encoding == encoding)
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Entries by request key, bounded by the bytes they hold.
#[derive(Debug, Default)]
pub(super) struct HotCache {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Box<str>, Arc<Entry>>,
    bytes: u64,
}

impl HotCache {
    pub(super) fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.entries.get(key).cloned()
    }

    /// Inserts an entry, evicting others until the total fits in `capacity`. An entry larger
    /// than the capacity is not kept.
    pub(super) fn insert(&self, key: &str, entry: Arc<Entry>, capacity: u64) {
        let size = entry.size();
        if size > capacity {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.entries.remove(key) {
            inner.bytes -= old.size();
        }
        // Eviction in the map's own (arbitrary) order: cheap, and a file evicted by mistake
        // costs one reload.
        while inner.bytes + size > capacity {
            let Some(victim) = inner.entries.keys().next().cloned() else {
                break;
            };
            if let Some(old) = inner.entries.remove(&victim) {
                inner.bytes -= old.size();
            }
        }
        inner.bytes += size;
        inner.entries.insert(key.into(), entry);
    }

    pub(super) fn remove(&self, key: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.entries.remove(key) {
            inner.bytes -= old.size();
        }
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> u64 {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

/// Content hashes by file version, so a file is hashed once per version.
#[derive(Debug, Default)]
pub(super) struct HashCache {
    tags: Mutex<HashMap<Version, EntityTag>>,
}

/// The most versions remembered; past it the map starts over (each file is then hashed once
/// more).
const MAX_HASHES: usize = 4096;

impl HashCache {
    pub(super) fn get(&self, version: &Version) -> Option<EntityTag> {
        let tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        tags.get(version).cloned()
    }

    pub(super) fn insert(&self, version: Version, tag: EntityTag) {
        let mut tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        if tags.len() >= MAX_HASHES {
            tags.clear();
        }
        tags.insert(version, tag);
    }
}
