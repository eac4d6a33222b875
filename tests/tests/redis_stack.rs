//! Two application stacks sharing one real Redis through `Tiered<MokaStore, RedisStore>` and the
//! invalidation bus: cross-instance invalidation, cross-instance single-flight, and Redis dying
//! and coming back under load.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::Path,
    http::{Request, StatusCode, header},
    routing::get,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_edge::cache::{CacheHandle, ResponseCacheLayer};
use tower_edge_store::{CacheStore, MokaStore, RedisStore, tiered::Tiered};
use tower_edge_tests::{TestServer, redis_server::RedisServer, send};

type Store = Tiered<MokaStore, RedisStore>;

fn tiered(server: &RedisServer) -> Store {
    let l2 = RedisStore::builder(&server.url())
        .prefix("stack:")
        .op_timeout(Duration::from_millis(50))
        .breaker_backoff(Duration::from_millis(250))
        .build()
        .expect("valid URL");
    Tiered::new(MokaStore::default(), l2).with_invalidation_bus()
}

struct Stack {
    app: Router,
    store: Store,
    handle: CacheHandle,
}

fn stack(
    server: &RedisServer,
    calls: Arc<AtomicUsize>,
    gate: Option<Arc<tokio::sync::Notify>>,
) -> Stack {
    let store = tiered(server);
    let cache = ResponseCacheLayer::new(store.clone()).coalesce_timeout(Duration::from_secs(5));
    let handle = cache.handle("http://shop.test");
    let app = Router::new()
        .route(
            "/item/{id}",
            get(move |Path(id): Path<u32>| {
                let (calls, gate) = (calls.clone(), gate.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if let Some(gate) = gate {
                        gate.notified().await;
                    }
                    (
                        [
                            (header::CACHE_CONTROL, "max-age=300"),
                            (header::HeaderName::from_static("cache-tag"), "items"),
                        ],
                        format!("item {id}"),
                    )
                }
            }),
        )
        .layer(cache);
    Stack { app, store, handle }
}

async fn until_connected(stacks: &[&Stack]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stacks.iter().all(|s| s.store.bus_connected()) {
        assert!(
            Instant::now() < deadline,
            "the invalidation bus never connected"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn fetch(app: &Router, path: &str) -> (StatusCode, String, String) {
    let req = Request::get(path)
        .header(header::HOST, "shop.test")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let cache = res
        .headers()
        .get("cache-status")
        .map_or("", |v| v.to_str().unwrap())
        .to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    // The store write happens in a task spawned at the body's end.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    (status, cache, String::from_utf8(body.to_vec()).unwrap())
}

async fn until_hit(app: &Router, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fetch(app, path).await.1.contains("hit") {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never became a hit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_invalidation_on_one_instance_reaches_the_others_l1_within_100_ms() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, b) = (
        stack(&redis, calls.clone(), None),
        stack(&redis, calls.clone(), None),
    );
    until_connected(&[&a, &b]).await;

    fetch(&a.app, "/item/1").await;
    // B fills its L1 from Redis.
    until_hit(&b.app, "/item/1").await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(b.store.l1().entry_count() > 0);

    let started = Instant::now();
    assert!(a.handle.invalidate_tag("items").await.unwrap() >= 1);
    // B's L1 must forget the entry, through the bus alone (Redis no longer has it either).
    loop {
        let (_, status, _) = fetch(&b.app, "/item/1").await;
        if !status.contains("hit") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "B still served the invalidated entry after {:?}",
            started.elapsed()
        );
        tokio::task::yield_now().await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_hundred_cold_requests_across_two_instances_reach_the_handler_once() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let (a, b) = (
        stack(&redis, calls.clone(), Some(gate.clone())),
        stack(&redis, calls.clone(), Some(gate.clone())),
    );
    until_connected(&[&a, &b]).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let app = if i % 2 == 0 {
                a.app.clone()
            } else {
                b.app.clone()
            };
            tokio::spawn(async move { fetch(&app, "/item/7").await })
        })
        .collect();
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Let the other instance's leader find the lock taken and start waiting.
    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.notify_waiters();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "item 7");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redis_dying_under_load_costs_no_errors_and_caching_resumes_after_restart() {
    let mut redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let a = stack(&redis, calls.clone(), None);
    until_connected(&[&a]).await;
    let server = TestServer::start(a.app.clone()).await;
    let addr = server.addr();
    let request = |i: u32| {
        Request::get(format!("/item/{i}"))
            .header(header::HOST, "shop.test")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // 200 requests on distinct keys (so every one consults Redis), 20 at a time; Redis is
    // killed after the first batch.
    let mut latencies = Vec::new();
    for batch in 0..10u32 {
        if batch == 1 {
            redis.stop();
        }
        let started = Instant::now();
        let tasks: Vec<_> = (0..20u32)
            .map(|i| tokio::spawn(send(addr, request(batch * 20 + i))))
            .collect();
        for task in tasks {
            let res = task.await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
            latencies.push(started.elapsed());
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    // Each request makes a handful of store calls, each bounded by the 50 ms operation timeout
    // (or refused at once by the open breaker); the handler itself is instant.
    assert!(p99 < Duration::from_millis(1500), "p99 {p99:?}");

    // Redis back: within a few seconds entries are stored again and the bus reconnects.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 10_000;
    loop {
        i += 1;
        let path = format!("/item/{i}");
        fetch(&a.app, &path).await;
        a.store.l1().purge().await.unwrap(); // so a hit can only come from Redis
        if fetch(&a.app, &path).await.1.contains("hit") && a.store.bus_connected() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "caching did not resume after Redis restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn after_a_bus_outage_an_instance_forgets_its_memory_tier() {
    let mut redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let b = stack(&redis, calls, None);
    until_connected(&[&b]).await;
    fetch(&b.app, "/item/3").await;
    assert!(b.store.l1().entry_count() > 0);
    // While the bus is down, another instance's invalidations would be lost; on reconnecting,
    // this instance must not trust what it held.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(b.store.bus_connected() && b.store.l1().entry_count() == 0) {
        assert!(
            Instant::now() < deadline,
            "the memory tier was not emptied after the bus came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_stalled_redis_slows_requests_by_the_timeout_at_most() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let a = stack(&redis, calls, None);
    until_connected(&[&a]).await;
    let stall = redis.stall(1.0);
    let started = Instant::now();
    for i in 0..5 {
        let (status, _, body) = fetch(&a.app, &format!("/item/{}", 500 + i)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("item {}", 500 + i));
    }
    // Five cold requests, each a few store calls bounded by 50 ms (or refused at once by the
    // breaker): well under the one-second stall.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    drop(stall);
}
