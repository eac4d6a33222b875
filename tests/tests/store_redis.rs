//! RedisStore against a real redis-server: the shared store suite, fail-open behaviour, and
//! corrupt values.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tower_edge_store::{CacheKey, CacheStore, Entry, RedisStore};
use tower_edge_tests::{
    redis_server::{RedisCluster, RedisServer},
    store_suite,
};

fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::builder(&server.url())
        .prefix(prefix)
        .build()
        .expect("valid URL")
}

#[tokio::test]
async fn passes_the_store_suite() {
    let server = RedisServer::start();
    store_suite::run_all(&store(&server, "suite:")).await;
}

/// The same suite on memory in front of Redis.
#[tokio::test]
async fn passes_the_store_suite_as_memory_in_front_of_redis() {
    use tower_edge_store::{MokaStore, tiered::Tiered};

    let server = RedisServer::start();
    store_suite::run_all(&Tiered::new(
        MokaStore::default(),
        store(&server, "tiered:"),
    ))
    .await;
}

/// The same suite on a real Redis Cluster of three masters.
#[tokio::test]
async fn passes_the_store_suite_on_a_cluster() {
    let cluster = RedisCluster::start();
    let store = RedisStore::cluster_builder(cluster.urls())
        .prefix("suite:")
        .op_timeout(Duration::from_secs(2))
        .admin_timeout(Duration::from_secs(10))
        .build()
        .expect("valid URLs");
    assert!(store.is_cluster());
    store_suite::run_all(&store).await;
}

#[tokio::test]
async fn keys_are_readable_and_purge_keeps_to_its_prefix() {
    let server = RedisServer::start();
    let a = store(&server, "app-a:");
    let b = store(&server, "app-b:");
    let key = CacheKey::new("GET http://example.com/items").with_variant("enc", "br");
    let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"[]"))
        .with_tags(vec!["items".into()]);
    a.put(&key, entry.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    b.put(&key, entry, Duration::from_secs(60)).await.unwrap();
    let keys = server.command(&["KEYS", "app-a:*"]).unwrap();
    assert!(
        keys.contains("app-a:0:GET http://example.com/items|enc=br"),
        "{keys}"
    );
    assert!(keys.contains("app-a:tag:items"), "{keys}");
    a.purge().await.unwrap();
    assert!(a.get(&key).await.unwrap().is_none());
    assert!(
        b.get(&key).await.unwrap().is_some(),
        "another prefix is left alone"
    );
}

#[tokio::test]
async fn garbage_in_a_key_is_a_counted_miss_and_is_deleted() {
    let server = RedisServer::start();
    let store = store(&server, "g:");
    let key = CacheKey::new("GET http://example.com/g");
    store
        .put_raw(&key, b"\x07not an entry", Duration::from_secs(60))
        .await
        .unwrap();
    let error = store.get(&key).await.unwrap_err();
    assert!(error.is_corrupt());
    assert_eq!(store.stats().corrupt, 1);
    assert!(
        store.get(&key).await.unwrap().is_none(),
        "deleted after the first read"
    );
    let raw = server
        .command(&["EXISTS", "g:0:GET http://example.com/g|"])
        .unwrap();
    assert_eq!(raw, ":0\r\n");

    // In a batch, the garbage reads as absent (and goes), the rest as stored.
    let good = CacheKey::new("GET http://example.com/good");
    let entry = Entry::new(
        StatusCode::OK,
        HeaderMap::new(),
        Bytes::from_static(b"fine"),
    );
    store
        .put(&good, entry, Duration::from_secs(60))
        .await
        .unwrap();
    store
        .put_raw(&key, b"\x07not an entry", Duration::from_secs(60))
        .await
        .unwrap();
    let found = store.get_many(&[key.clone(), good]).await.unwrap();
    assert!(found[0].is_none());
    assert_eq!(found[1].as_ref().unwrap().body().as_ref(), b"fine");
    assert_eq!(store.stats().corrupt, 2);
    assert!(
        store.get(&key).await.unwrap().is_none(),
        "deleted by the batch read"
    );
}

/// `get_many` reads a batch with one `MGET`, not a `GET` per key.
#[tokio::test]
async fn a_batch_is_read_in_one_command() {
    let server = RedisServer::start();
    let store = store(&server, "b:");
    let keys: Vec<CacheKey> = (0..20)
        .map(|i| CacheKey::new(&format!("GET http://example.com/{i}")))
        .collect();
    let items = keys
        .iter()
        .map(|k| {
            let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"x"));
            (k.clone(), entry)
        })
        .collect();
    store
        .put_many(items, Duration::from_secs(60))
        .await
        .unwrap();
    let calls = |stats: &str, command: &str| -> u64 {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    };
    let before = server.command(&["INFO", "commandstats"]).unwrap();
    let found = store.get_many(&keys).await.unwrap();
    let after = server.command(&["INFO", "commandstats"]).unwrap();
    assert!(found.iter().all(Option::is_some));
    assert_eq!(calls(&after, "mget") - calls(&before, "mget"), 1);
    assert_eq!(calls(&after, "get"), calls(&before, "get"));
}

/// A caller that finds every pooled connection busy gets a miss, as with any store error, but
/// its wait is this process's own queue, not Redis failing: the breaker stays closed, and the
/// next call works. Before, a burst of concurrent misses on a busy machine (the pool's wait
/// running out) opened the breaker with Redis healthy, and every request then went to the
/// origin for the breaker's backoff.
#[tokio::test]
async fn a_busy_pool_is_a_miss_that_does_not_open_the_breaker() {
    let server = RedisServer::start();
    let store = RedisStore::builder(&server.url())
        .pool_size(1)
        // No wait at all: the second of two concurrent calls finds the only connection taken.
        .wait_timeout(Duration::ZERO)
        .op_timeout(Duration::from_secs(5))
        .breaker_threshold(1)
        .breaker_backoff(Duration::from_secs(3600))
        .build()
        .unwrap();
    let key = CacheKey::new("GET http://example.com/busy");
    let entry = || {
        Entry::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(b"kept"),
        )
        .with_fresh_for(Duration::from_secs(60))
    };
    store
        .put(&key, entry(), Duration::from_secs(60))
        .await
        .unwrap();
    // Polled in order: the first takes the connection, the second and third find it taken.
    let (first, second, third) = tokio::join!(store.get(&key), store.get(&key), store.get(&key));
    assert!(first.unwrap().is_some());
    assert!(third.is_err());
    let error = second.expect_err("the only connection was in use");
    assert!(error.is_unavailable(), "{error}");
    let reason = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("no pooled Redis connection")),
        "{reason:?}"
    );
    let stats = store.stats();
    // A breaker opened by the second's wait (threshold 1) would have refused the third at once.
    assert_eq!(stats.pool_waits, 2, "{stats:?}");
    assert_eq!(stats.short_circuited, 0, "{stats:?}");
    assert_eq!(stats.errors + stats.timeouts, 0, "{stats:?}");
    let again = store.get(&key).await.expect("the breaker is still closed");
    assert_eq!(again.unwrap().body().as_ref(), b"kept");
    assert_eq!(store.stats().short_circuited, 0);
}

#[tokio::test]
async fn a_dead_server_is_an_error_within_the_timeout_and_the_breaker_opens() {
    let mut server = RedisServer::start();
    let store = RedisStore::builder(&server.url())
        .op_timeout(Duration::from_millis(50))
        .breaker_threshold(3)
        .breaker_backoff(Duration::from_millis(200))
        .build()
        .unwrap();
    let key = CacheKey::new("GET http://example.com/x");
    store
        .put(
            &key,
            Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::new()),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    server.stop();
    for _ in 0..10 {
        let started = Instant::now();
        assert!(store.get(&key).await.is_err());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(store.stats().short_circuited >= 1, "{:?}", store.stats());
    // Back up: after the back-off a probe goes through and the store works again.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if store
            .put(
                &key,
                Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::new()),
                Duration::from_secs(60),
            )
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the store never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.get(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn a_slow_server_is_a_timeout_not_a_hang() {
    let server = RedisServer::start();
    let store = RedisStore::builder(&server.url())
        .op_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let key = CacheKey::new("GET http://example.com/slow");
    store
        .put(
            &key,
            Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::new()),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    // Confirmed paused before the store's GET is sent: it waits for two seconds there.
    let stall = server.stall(2.0);
    let started = Instant::now();
    let result = store.get(&key).await;
    assert!(result.unwrap_err().is_timeout());
    // Bounded by the 50 ms timeout, not the stall (a wide margin: the machine may be busy).
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(stall);
}

/// An invalidation that times out on a stalled Redis leaves the entry there; the tiered store
/// must not read it back once Redis answers again, and replays the invalidation first.
#[tokio::test]
async fn an_invalidation_lost_to_a_stall_is_replayed_before_redis_is_read() {
    use tower_edge_store::{MokaStore, tiered::Tiered};
    let server = RedisServer::start();
    let l2 = RedisStore::builder(&server.url())
        .op_timeout(Duration::from_millis(50))
        .admin_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let store = Tiered::new(MokaStore::default(), l2);
    let key = CacheKey::new("GET http://example.com/p/1").with_variant("enc", "br");
    let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"old"))
        .with_stored_at(std::time::SystemTime::now())
        .with_fresh_for(Duration::from_secs(60));
    store
        .put(&key, entry, Duration::from_secs(60))
        .await
        .unwrap();

    let stall = server.stall(0.5);
    let err = store
        .delete_resource("GET http://example.com/p/1")
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(store.pending_invalidations(), 1);
    drop(stall);
    // Redis answers again, still holding the entry the invalidation meant to remove.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server
        .command(&["PING"])
        .is_none_or(|r| !r.contains("PONG"))
    {
        assert!(
            Instant::now() < deadline,
            "redis-server did not come back from the stall"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past the replay's retry spacing (100 ms), so the next read replays: a wait for time to
    // pass, not for another task.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(store.l2().get(&key).await.unwrap().is_some());

    // The read replays the invalidation first, so the old entry is neither served nor kept.
    assert!(store.get(&key).await.unwrap().is_none());
    assert_eq!(store.pending_invalidations(), 0);
    assert!(store.l2().get(&key).await.unwrap().is_none());
}

/// A Redis restarted without its data starts its counters again; a generation handed out
/// before must not be handed out again, or entries written under it would come back.
#[tokio::test]
async fn generations_are_not_reused_after_redis_loses_its_data() {
    let mut server = RedisServer::start();
    let store = RedisStore::builder(&server.url())
        .generation_refresh(Duration::from_secs(3600))
        .build()
        .unwrap();
    let first = store.bump_generation().await.unwrap();
    server.restart();
    // Still on its cached generation, this instance writes an entry under it.
    let key = CacheKey::new("GET http://example.com/old");
    let deadline = Instant::now() + Duration::from_secs(5);
    let entry = || {
        Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"old"))
            .with_fresh_for(Duration::from_secs(60))
    };
    while store
        .put(&key, entry(), Duration::from_secs(60))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "redis-server did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It learns of the restart: the counter reads 0, and the entry is out of view.
    store.refresh_generation();
    assert!(store.get(&key).await.unwrap().is_none());
    // The next bump must not land on the old number again.
    let next = store.bump_generation().await.unwrap();
    assert!(next > first, "{next} after {first}");
    assert!(store.get(&key).await.unwrap().is_none());
}

/// Invalidating a URL reads that resource's own index, whatever else the Redis holds: no `SCAN`
/// on the request path, and nothing of another resource or another application goes with it.
#[tokio::test]
async fn invalidating_a_url_costs_its_variants_not_the_keyspace() {
    let server = RedisServer::start();
    // Another application's 100,000 keys in the same database.
    let filled = server.command(&[
        "EVAL",
        "for i = 1, 100000 do redis.call('SET', 'other:' .. i, 'x') end return 1",
        "0",
    ]);
    assert_eq!(filled.as_deref(), Some(":1\r\n"));
    let store = store(&server, "idx:");
    let entry = || Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"{}"));
    let resource = "GET http://example.com/a";
    for enc in ["br", "gzip", "identity"] {
        let key = CacheKey::new(resource).with_variant("enc", enc);
        store
            .put(&key, entry(), Duration::from_secs(60))
            .await
            .unwrap();
    }
    // Resources that share its text as a prefix are other resources.
    let longer = CacheKey::new("GET http://example.com/ab");
    let other = CacheKey::new("GET http://example.com/b");
    for key in [&longer, &other] {
        store
            .put(key, entry(), Duration::from_secs(60))
            .await
            .unwrap();
    }

    assert_eq!(
        server.command(&["CONFIG", "RESETSTAT"]).as_deref(),
        Some("+OK\r\n")
    );
    assert_eq!(store.delete_resource(resource).await.unwrap(), 3);
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    assert!(stats.contains("cmdstat_eval"), "{stats}");
    assert!(
        !stats.contains("cmdstat_scan"),
        "a scan on the request path: {stats}"
    );

    let gone = CacheKey::new(resource).with_variant("enc", "br");
    assert!(store.get(&gone).await.unwrap().is_none());
    assert!(store.get(&longer).await.unwrap().is_some());
    assert!(store.get(&other).await.unwrap().is_some());
    assert_eq!(
        server.command(&["EXISTS", "other:99999"]).as_deref(),
        Some(":1\r\n")
    );
    // Its index went with it: invalidating again removes nothing.
    assert_eq!(store.delete_resource(resource).await.unwrap(), 0);
}

/// A variant stored after an invalidation is in the resource's index again, so the next
/// invalidation removes it too.
#[tokio::test]
async fn the_index_follows_entries_stored_after_an_invalidation() {
    let server = RedisServer::start();
    let store = store(&server, "again:");
    let entry = || Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"{}"));
    let resource = "GET http://example.com/r";
    let key = CacheKey::new(resource).with_variant("enc", "br");
    store
        .put(&key, entry(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.delete_resource(resource).await.unwrap(), 1);
    store
        .put(&key, entry(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.delete_resource(resource).await.unwrap(), 1);
    assert!(store.get(&key).await.unwrap().is_none());
}
