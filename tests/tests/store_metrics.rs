//! The stores' metrics: Redis operation durations by operation and result, the gauges and
//! totals of `record_metrics` (breaker, Redis counters, memory size, bus, replay queue), and
//! the `Memo` events.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower_edge_store::{
    CacheKey, CacheStore, Entry, MokaStore, RedisStore, memo::Memo, tiered::Tiered,
};
use tower_edge_tests::redis_server::RedisServer;

/// Runs `test` on a single-threaded runtime with a recorder of its own.
fn with_recorder(test: impl AsyncFnOnce()) -> Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test()));
    snapshotter
}

/// Each metric's value by `name{k=v,..}` (labels sorted): counters and gauges as numbers,
/// histograms as their sample count.
fn values(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let mut labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        #[allow(clippy::cast_precision_loss)]
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(samples) => samples.len() as f64,
        };
        out.insert(name, value);
    }
    out
}

fn entry() -> Entry {
    Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"v"))
        .with_fresh_for(Duration::from_secs(60))
}

#[test]
fn redis_operations_are_timed_and_its_counters_and_breaker_exported() {
    let mut server = RedisServer::start();
    let store = RedisStore::builder(&server.url())
        .op_timeout(Duration::from_secs(2))
        .breaker_threshold(2)
        .breaker_backoff(Duration::from_secs(3600))
        .build()
        .unwrap();
    let snapshotter = with_recorder(async || {
        let key = CacheKey::new("GET http://example.com/m");
        store
            .put(&key, entry(), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.get(&key).await.unwrap().is_some());
        assert!(store.get(&key).await.unwrap().is_some());
        store.delete_tag("t").await.unwrap();
        store.record_metrics();
    });
    let before = values(&snapshotter);
    let get = "tower_edge_store_operation_duration_seconds{backend=redis,op=get,result=ok}";
    assert_eq!(before.get(get), Some(&2.0), "{before:?}");
    assert_eq!(
        before.get("tower_edge_store_operation_duration_seconds{backend=redis,op=put,result=ok}"),
        Some(&1.0)
    );
    assert!(before.contains_key(
        "tower_edge_store_operation_duration_seconds{backend=redis,op=delete_tag,result=ok}"
    ));
    assert_eq!(
        before.get("tower_edge_redis_breaker_open{backend=redis}"),
        Some(&0.0)
    );
    assert_eq!(before.get("tower_edge_redis_errors_total{}"), Some(&0.0));

    server.stop();
    let snapshotter = with_recorder(async || {
        let key = CacheKey::new("GET http://example.com/m");
        for _ in 0..3 {
            assert!(store.get(&key).await.is_err());
        }
        store.record_metrics();
    });
    let after = values(&snapshotter);
    assert_eq!(
        after.get("tower_edge_store_operation_duration_seconds{backend=redis,op=get,result=error}"),
        Some(&3.0),
        "{after:?}"
    );
    assert_eq!(
        after.get("tower_edge_redis_breaker_open{backend=redis}"),
        Some(&1.0)
    );
    assert_eq!(after.get("tower_edge_redis_errors_total{}"), Some(&2.0));
    assert_eq!(
        after.get("tower_edge_redis_short_circuited_total{}"),
        Some(&1.0)
    );
}

#[test]
fn memory_size_bus_state_and_the_replay_queue_are_exported() {
    let server = RedisServer::start();
    let snapshotter = with_recorder(async || {
        let memory = MokaStore::default();
        let redis = RedisStore::builder(&server.url()).build().unwrap();
        let store = Tiered::new(memory, redis).with_invalidation_bus();
        for i in 0..3 {
            let key = CacheKey::new(&format!("GET http://example.com/{i}"));
            store
                .put(&key, entry(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        // The bus connects in a task of its own: wait for it, bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !store.bus_connected() {
            assert!(
                std::time::Instant::now() < deadline,
                "the bus never connected"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        store.record_metrics();
    });
    let values = values(&snapshotter);
    assert_eq!(
        values.get("tower_edge_store_entries{backend=memory}"),
        Some(&3.0),
        "{values:?}"
    );
    assert!(values["tower_edge_store_bytes{backend=memory}"] > 0.0);
    assert_eq!(
        values.get("tower_edge_bus_connected{backend=redis}"),
        Some(&1.0)
    );
    assert_eq!(
        values.get("tower_edge_invalidations_pending{backend=redis}"),
        Some(&0.0)
    );
    assert_eq!(
        values.get("tower_edge_invalidations_replayed_total{}"),
        Some(&0.0)
    );
    assert_eq!(
        values.get("tower_edge_redis_breaker_open{backend=redis}"),
        Some(&0.0)
    );
}

#[test]
fn memo_events_are_counted_by_namespace() {
    let snapshotter = with_recorder(async || {
        let memo = Memo::new(MokaStore::default(), "reports").grace(Duration::from_secs(600));
        let ttl = Duration::ZERO; // every value is stale at once, and within its grace
        let ok = |n: u32| async move { Ok::<_, String>(n) };
        assert_eq!(
            memo.get_or_compute("a", Duration::from_secs(60), || ok(1))
                .await,
            Ok(1)
        );
        assert_eq!(
            memo.get_or_compute("a", Duration::from_secs(60), || ok(2))
                .await,
            Ok(1)
        );
        assert_eq!(memo.get_or_compute("b", ttl, || ok(3)).await, Ok(3));
        let failed = memo.get_or_compute("b", ttl, || async { Err::<u32, _>("down".to_owned()) });
        assert_eq!(failed.await, Ok(3), "the stale value within its grace");
    });
    let values = values(&snapshotter);
    let of = |event: &str| {
        values
            .get(&format!(
                "tower_edge_memo_total{{event={event},namespace=reports}}"
            ))
            .copied()
    };
    assert_eq!(
        (of("hit"), of("miss"), of("stale")),
        (Some(1.0), Some(3.0), Some(1.0)),
        "{values:?}"
    );
}

#[test]
fn the_redis_database_size_is_read_in_the_background() {
    let server = RedisServer::start();
    let store = RedisStore::builder(&server.url()).build().unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            for i in 0..5 {
                let key = CacheKey::new(&format!("GET http://example.com/{i}"));
                store
                    .put(&key, entry(), Duration::from_secs(60))
                    .await
                    .unwrap();
            }
            store.record_metrics();
            // The reading runs in a task of its own: wait for it, bounded.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let now = values(&snapshotter);
                if now.contains_key("tower_edge_redis_keys{backend=redis}") {
                    break now;
                }
                assert!(std::time::Instant::now() < deadline, "no reading: {now:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    });
    // Five entries and their resource indexes, at least.
    assert!(
        read["tower_edge_redis_keys{backend=redis}"] >= 5.0,
        "{read:?}"
    );
    assert!(read["tower_edge_redis_used_memory_bytes{backend=redis}"] > 0.0);
}
