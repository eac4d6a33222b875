//! MokaStore: the shared store suite, the byte bound, and indexes that do not leak.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tower_edge_store::{CacheKey, CacheStore, Entry, MokaStore};
use tower_edge_tests::store_suite;

#[tokio::test]
async fn passes_the_store_suite() {
    store_suite::run_all(&MokaStore::default()).await;
}

#[tokio::test]
async fn stays_within_its_byte_bound_after_100_000_entries() {
    let bound = 8 * 1024 * 1024;
    let store = MokaStore::builder().max_bytes(bound).build();
    let body = Bytes::from(vec![b'x'; 1000]);
    for i in 0..100_000u32 {
        let key = CacheKey::new(&format!("GET http://bench/item/{i}")).with_variant("enc", "br");
        let entry = Entry::new(StatusCode::OK, HeaderMap::new(), body.clone());
        store
            .put(&key, entry, Duration::from_secs(3600))
            .await
            .unwrap();
    }
    let size = store.weighted_size();
    // The bound is a ceiling, and eviction keeps the cache close to it (within 5%).
    assert!(size <= bound, "{size} > {bound}");
    assert!(size >= bound * 95 / 100, "{size} well under {bound}");
    // Every evicted entry left the indexes too.
    let entries = store.entry_count() as usize;
    let (keys, _) = store.index_len();
    assert_eq!(keys, entries);
}

#[tokio::test]
async fn indexes_forget_entries_that_expire() {
    let store = MokaStore::default();
    for i in 0..1000u32 {
        let key = CacheKey::new(&format!("GET http://a/{i}"));
        let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"v"))
            .with_tags(vec![format!("t{}", i % 10), "all".into()]);
        // A TTL of one nanosecond has passed by the time housekeeping runs.
        store
            .put(&key, entry, Duration::from_nanos(1))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.entry_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "entries never expired"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(store.index_len(), (0, 0));
    assert_eq!(store.delete_tag("all").await.unwrap(), 0);
}

#[tokio::test]
async fn a_hit_shares_the_stored_body_without_copying_it() {
    let store = MokaStore::default();
    let key = CacheKey::new("GET http://a/big");
    let body = Bytes::from(vec![7u8; 1 << 20]);
    let entry = Entry::new(StatusCode::OK, HeaderMap::new(), body.clone());
    store
        .put(&key, entry, Duration::from_secs(60))
        .await
        .unwrap();
    let first = store.get(&key).await.unwrap().unwrap();
    let second = store.get(&key).await.unwrap().unwrap();
    assert_eq!(first.body().as_ptr(), body.as_ptr());
    assert_eq!(second.body().as_ptr(), body.as_ptr());
}

#[tokio::test]
async fn concurrent_writers_and_invalidations_leave_a_consistent_index() {
    let store = MokaStore::default();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500u32 {
                let key = CacheKey::new(&format!("GET http://a/{}", i % 50));
                let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"v"))
                    .with_tags(vec![format!("t{t}")]);
                store
                    .put(&key, entry, Duration::from_secs(60))
                    .await
                    .unwrap();
                if i % 7 == 0 {
                    store
                        .delete_tag(&format!("t{}", (t + 1) % 8))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let entries = store.entry_count() as usize;
    let (keys, tagged) = store.index_len();
    assert_eq!(keys, entries);
    assert!(
        tagged <= entries,
        "{tagged} tag records for {entries} entries"
    );
    for t in 0..8 {
        store.delete_tag(&format!("t{t}")).await.unwrap();
    }
    assert_eq!(store.entry_count(), 0);
}
