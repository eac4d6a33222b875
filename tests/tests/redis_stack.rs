//! Two application stacks sharing one real Redis through `Tiered<MokaStore, RedisStore>` and the
//! invalidation bus: cross-instance invalidation, cross-instance single-flight, and Redis dying
//! and coming back under load.

use std::{
    net::SocketAddr,
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
use tokio::sync::watch;
use tower::ServiceExt;
use tower_edge::cache::{CacheHandle, ResponseCacheLayer};
use tower_edge_store::{
    CacheStore, MokaStore, RedisStore, RedisStoreBuilder, memo::Memo, testing::Scripted,
    tiered::Tiered,
};
use tower_edge_tests::{
    TestServer,
    redis_server::{RedisCluster, RedisServer},
    send,
};

/// One instance's store. `Scripted` lets a test hold this instance at a chosen step (its next
/// lock attempt) while another instance runs, and wait for that instance's unlocks.
type Store = Scripted<Tiered<MokaStore, RedisStore>>;

/// Store calls bounded by 50 ms: for tests of a Redis that dies or stalls.
const FAILING: Duration = Duration::from_millis(50);
/// Bounded by five seconds: for tests of coordination, which a busy machine must not turn
/// into store failures.
const PATIENT: Duration = Duration::from_secs(5);

/// Where the instances' Redis is: one server, or a cluster of three masters.
#[derive(Clone, Copy)]
enum Redis<'a> {
    One(&'a RedisServer),
    Cluster(&'a RedisCluster),
}

impl<'a> From<&'a RedisServer> for Redis<'a> {
    fn from(server: &'a RedisServer) -> Self {
        Self::One(server)
    }
}

impl<'a> From<&'a RedisCluster> for Redis<'a> {
    fn from(cluster: &'a RedisCluster) -> Self {
        Self::Cluster(cluster)
    }
}

impl Redis<'_> {
    fn builder(self) -> RedisStoreBuilder {
        match self {
            Self::One(server) => RedisStore::builder(&server.url()),
            Self::Cluster(cluster) => RedisStore::cluster_builder(cluster.urls()),
        }
    }
}

fn tiered<'a>(redis: impl Into<Redis<'a>>, op_timeout: Duration) -> Store {
    let l2 = redis
        .into()
        .builder()
        .prefix("stack:")
        .op_timeout(op_timeout)
        // A patient store also waits for a pooled connection and for a new one as long: 200
        // requests at once on a busy machine must not turn into pool timeouts, then an open
        // breaker, then store failures that send every waiter to the origin.
        .wait_timeout(op_timeout)
        .connect_timeout(op_timeout.max(Duration::from_millis(250)))
        .breaker_backoff(Duration::from_millis(250))
        .build()
        .expect("valid URL");
    Scripted::new(Tiered::new(MokaStore::default(), l2).with_invalidation_bus())
}

struct Stack {
    app: Router,
    store: Store,
    handle: CacheHandle,
}

fn stack<'a>(
    server: impl Into<Redis<'a>>,
    calls: Arc<AtomicUsize>,
    gate: Option<watch::Receiver<bool>>,
    op_timeout: Duration,
) -> Stack {
    let store = tiered(server, op_timeout);
    // Long enough that no waiter takes a slow leader's place on a loaded machine: these tests
    // count origin calls, and a take-over is a second call by design (it has its own tests).
    let cache = ResponseCacheLayer::new(store.clone()).coalesce_timeout(Duration::from_secs(60));
    let handle = cache.handle("http://shop.test");
    let app = Router::new()
        .route(
            "/item/{id}",
            get(move |Path(id): Path<u32>| {
                let (calls, gate) = (calls.clone(), gate.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if let Some(mut gate) = gate {
                        gate.wait_for(|open| *open).await.unwrap();
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

/// Two instances on one Redis, with their invalidation buses connected.
async fn two_stacks<'a>(redis: impl Into<Redis<'a>>, calls: &Arc<AtomicUsize>) -> (Stack, Stack) {
    let redis = redis.into();
    let (a, b) = (
        stack(redis, calls.clone(), None, PATIENT),
        stack(redis, calls.clone(), None, PATIENT),
    );
    until_connected(&[&a, &b]).await;
    (a, b)
}

async fn until_connected(stacks: &[&Stack]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stacks.iter().all(|s| s.store.inner().bus_connected()) {
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
async fn an_invalidation_on_one_instance_reaches_the_others_l1() {
    let redis = RedisServer::start();
    an_invalidation_reaches_the_other_instance((&redis).into()).await;
}

/// On a cluster, the bus of each instance subscribes through one node, and a message published
/// through any node reaches it.
#[tokio::test]
async fn on_a_cluster_an_invalidation_on_one_instance_reaches_the_others_l1() {
    let cluster = RedisCluster::start();
    an_invalidation_reaches_the_other_instance((&cluster).into()).await;
}

async fn an_invalidation_reaches_the_other_instance(redis: Redis<'_>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, b) = two_stacks(redis, &calls).await;

    fetch(&a.app, "/item/1").await;
    // B fills its L1 from Redis.
    until_hit(&b.app, "/item/1").await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(b.store.inner().l1().entry_count() > 0);

    // B must forget the entry through the bus alone (Redis no longer has it either). How fast
    // the bus is belongs in a benchmark; here it only has to arrive.
    assert!(a.handle.invalidate_tag("items").await.unwrap() >= 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&b.app, "/item/1").await.1.contains("hit") {
        assert!(
            Instant::now() < deadline,
            "B still served the invalidated entry after 10 s"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The interleaving behind a second origin call per cold key: instance B misses, and before it
/// takes the store's lock, instance A fetches, stores and lets the lock go. B then wins the
/// lock, and must serve A's entry rather than fetch again.
#[tokio::test]
async fn a_leader_that_locks_after_another_instance_stored_serves_that_entry() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, b) = two_stacks(&redis, &calls).await;

    b.store.hold_next_lock();
    let b_request = tokio::spawn({
        let app = b.app.clone();
        async move { fetch(&app, "/item/9").await }
    });
    b.store.held().await; // B missed, and is about to take the lock.

    let (status, cache, body) = fetch(&a.app, "/item/9").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "item 9"));
    assert!(cache.contains("fwd=miss"), "{cache}");
    a.store.unlocked(1).await; // A stored the entry, then let the lock go.

    b.store.release();
    let (status, cache, body) = b_request.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "item 9"));
    assert!(cache.contains("collapsed"), "{cache}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "B fetched a second time");
}

#[tokio::test]
async fn two_hundred_cold_requests_across_two_instances_reach_the_handler_once() {
    let redis = RedisServer::start();
    two_hundred_cold_requests_reach_the_handler_once((&redis).into()).await;
}

#[tokio::test]
async fn two_hundred_cold_requests_across_two_instances_on_a_cluster_reach_the_handler_once() {
    let cluster = RedisCluster::start();
    two_hundred_cold_requests_reach_the_handler_once((&cluster).into()).await;
}

async fn two_hundred_cold_requests_reach_the_handler_once(redis: Redis<'_>) {
    let calls = Arc::new(AtomicUsize::new(0));
    // Open once, it stays open: a second call would pass and be counted, not hang.
    let (gate, closed) = watch::channel(false);
    let (a, b) = (
        stack(redis, calls.clone(), Some(closed.clone()), PATIENT),
        stack(redis, calls.clone(), Some(closed), PATIENT),
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
    // The first leader is in the handler. Wherever the other instance's leader is (before,
    // inside or after its lock attempt), opening the gate must still leave one call.
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    gate.send_replace(true);
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "item 7");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "store failures send waiters to the origin: {:?}",
        a.handle.stats()
    );
}

/// `GET /item/{i}` on the test shop.
fn item_request(i: u32) -> Request<Full<Bytes>> {
    Request::get(format!("/item/{i}"))
        .header(header::HOST, "shop.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// 200 requests on distinct keys to the server at `addr`, ten batches of 20 at once, with
/// `kill` run before the second batch. Every request must be answered 200; returns each one's
/// latency from the start of its batch.
async fn under_load_with_a_kill(addr: SocketAddr, kill: impl FnOnce()) -> Vec<Duration> {
    let mut kill = Some(kill);
    let mut latencies = Vec::new();
    for batch in 0..10u32 {
        if batch == 1
            && let Some(kill) = kill.take()
        {
            kill();
        }
        let started = Instant::now();
        let tasks: Vec<_> = (0..20u32)
            .map(|i| tokio::spawn(send(addr, item_request(batch * 20 + i))))
            .collect();
        for task in tasks {
            let res = task.await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
            latencies.push(started.elapsed());
        }
    }
    latencies
}

#[tokio::test]
async fn redis_dying_under_load_costs_no_errors_and_caching_resumes_after_restart() {
    let mut redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let a = stack(&redis, calls.clone(), None, FAILING);
    until_connected(&[&a]).await;
    let server = TestServer::start(a.app.clone()).await;
    let addr = server.addr();
    // 200 requests on distinct keys (so every one consults Redis); Redis is killed after the
    // first batch.
    let mut latencies = under_load_with_a_kill(addr, || redis.stop()).await;
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
        a.store.inner().l1().purge().await.unwrap(); // so a hit can only come from Redis
        if fetch(&a.app, &path).await.1.contains("hit") && a.store.inner().bus_connected() {
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
    let b = stack(&redis, calls, None, FAILING);
    until_connected(&[&b]).await;
    fetch(&b.app, "/item/3").await;
    assert!(b.store.inner().l1().entry_count() > 0);
    // While the bus is down, another instance's invalidations would be lost; on reconnecting,
    // this instance must not trust what it held.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(b.store.inner().bus_connected() && b.store.inner().l1().entry_count() == 0) {
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
    let a = stack(&redis, calls, None, FAILING);
    until_connected(&[&a]).await;
    let stall = redis.stall(5.0);
    let started = Instant::now();
    for i in 0..5 {
        let (status, _, body) = fetch(&a.app, &format!("/item/{}", 500 + i)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("item {}", 500 + i));
    }
    // Five cold requests, each a few store calls bounded by 50 ms (or refused at once by the
    // breaker): well under the five-second stall, even on a busy machine.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    drop(stall);
}

/// The same interleaving for `Memo` on two instances: B's caller misses and is about to take
/// the lock when A computes, stores and lets it go. B must return A's value, not compute again.
#[tokio::test]
async fn memo_on_a_second_instance_reads_the_value_stored_before_it_took_the_lock() {
    let redis = RedisServer::start();
    let (store_a, store_b) = (tiered(&redis, PATIENT), tiered(&redis, PATIENT));
    let (a, b) = (
        Memo::new(store_a.clone(), "reports"),
        Memo::new(store_b.clone(), "reports"),
    );
    let computed = Arc::new(AtomicUsize::new(0));
    let compute = |who: &'static str| {
        let computed = computed.clone();
        move || async move {
            computed.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(format!("computed by {who}"))
        }
    };
    let ttl = Duration::from_secs(60);

    store_b.hold_next_lock();
    let b_call = tokio::spawn({
        let compute = compute("b");
        async move { b.get_or_compute("total", ttl, compute).await.unwrap() }
    });
    store_b.held().await; // B missed, and is about to take the lock.
    let from_a: String = a.get_or_compute("total", ttl, compute("a")).await.unwrap();
    assert_eq!(from_a, "computed by a");
    store_a.unlocked(1).await; // A stored its value, then let the lock go.

    store_b.release();
    assert_eq!(b_call.await.unwrap(), "computed by a");
    assert_eq!(
        computed.load(Ordering::SeqCst),
        1,
        "B computed a second time"
    );
}

#[tokio::test]
async fn two_hundred_memo_callers_across_two_instances_compute_once() {
    let redis = RedisServer::start();
    two_hundred_memo_callers_compute_once((&redis).into()).await;
}

#[tokio::test]
async fn two_hundred_memo_callers_across_two_instances_on_a_cluster_compute_once() {
    let cluster = RedisCluster::start();
    two_hundred_memo_callers_compute_once((&cluster).into()).await;
}

async fn two_hundred_memo_callers_compute_once(redis: Redis<'_>) {
    let memos = [
        Memo::new(tiered(redis, PATIENT), "reports"),
        Memo::new(tiered(redis, PATIENT), "reports"),
    ];
    let computed = Arc::new(AtomicUsize::new(0));
    let (gate, closed) = watch::channel(false);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let memo = memos[i % 2].clone();
            let (computed, mut gate) = (computed.clone(), closed.clone());
            tokio::spawn(async move {
                memo.get_or_compute("total", Duration::from_secs(60), || async move {
                    computed.fetch_add(1, Ordering::SeqCst);
                    gate.wait_for(|open| *open).await.unwrap();
                    Ok::<_, std::io::Error>(42u64)
                })
                .await
                .unwrap()
            })
        })
        .collect();
    while computed.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    gate.send_replace(true);
    for task in tasks {
        assert_eq!(task.await.unwrap(), 42);
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);
}

/// `Memo` on a Redis that is down computes at once: a store that fails is a miss, not a wait
/// for a lock nobody holds. Each call costs at most the failed operations' timeouts plus the
/// computation, far below the 10 s lock wait configured here.
#[tokio::test]
async fn memo_on_a_dead_redis_computes_without_waiting_for_the_lock() {
    let mut redis = RedisServer::start();
    let store = RedisStore::builder(&redis.url())
        .prefix("dead:")
        .op_timeout(FAILING)
        .build()
        .expect("valid URL");
    redis.stop();
    let memo = Memo::new(store, "reports").wait(Duration::from_secs(10));
    let computed = Arc::new(AtomicUsize::new(0));
    for round in 1..=3 {
        let started = std::time::Instant::now();
        let computed = computed.clone();
        let value = memo
            .get_or_compute("total", Duration::from_secs(60), || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(42u64)
            })
            .await
            .unwrap();
        assert_eq!(value, 42);
        // The lock wait is 10 s; a miss that waited for it would take that long.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "round {round} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(computed.load(Ordering::SeqCst), 3, "every call computed");
}

/// A master of the cluster dies under load: the requests whose keys it served go through as
/// misses, the others keep being cached, and no request fails. When it comes back (empty, with
/// its slots), entries are stored on it and read from it again.
#[tokio::test]
async fn a_cluster_master_dying_under_load_costs_no_errors_and_serves_again_once_back() {
    let mut cluster = RedisCluster::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let a = stack(&cluster, calls.clone(), None, FAILING);
    until_connected(&[&a]).await;
    let server = TestServer::start(a.app.clone()).await;
    let addr = server.addr();
    // 200 requests on distinct keys, spread over the three masters' slots; the first master is
    // killed after the first batch.
    under_load_with_a_kill(addr, || cluster.stop(0)).await;

    // Back, with its slots and no data. New entries whose slots it serves land on it, and a
    // hit on one of them (with the memory tier emptied) can only have been read from it.
    cluster.restart(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 10_000;
    let on_node_0 = loop {
        i += 1;
        let res = send(addr, item_request(i)).await;
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
        let keys = cluster.node(0).command(&["KEYS", "*stack:*item/*"]);
        if let Some(path) = keys.as_deref().and_then(|keys| {
            let at = keys.find("/item/")?;
            let digits: String = keys[at + 6..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some(format!("/item/{digits}"))
        }) {
            break path;
        }
        assert!(
            Instant::now() < deadline,
            "no entry was stored on the restarted master"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    a.store.inner().l1().purge().await.unwrap();
    let before = calls.load(Ordering::SeqCst);
    let (status, cache_status, _) = fetch(&a.app, &on_node_0).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cache_status.contains("hit"), "{on_node_0}: {cache_status}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "answered from the restarted master"
    );
    server.stop().await;
}

/// The example server as `REDIS_CLUSTER_NODES` runs it: two instances on one cluster share
/// what either fetched (invalidation across instances on a cluster is
/// `on_a_cluster_an_invalidation_on_one_instance_reaches_the_others_l1`).
#[tokio::test]
async fn two_example_servers_share_a_cluster() {
    let cluster = RedisCluster::start();
    let nodes = cluster.urls().join(",");
    let instance = || {
        let l2 = tower_edge_example_server::shared_store(None, Some(&nodes))
            .expect("a cluster store")
            .expect("configured");
        assert!(l2.is_cluster());
        tower_edge_example_server::app_on_redis(tower_edge_example_server::AppState::new(), l2)
    };
    let (a, b) = (instance(), instance());
    let get = |app: &Router| {
        let app = app.clone();
        async move {
            let req = Request::get("/api/products/1")
                .header(header::HOST, "shop.test")
                .body(Body::empty())
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
            res.into_body().collect().await.unwrap();
            status
        }
    };
    assert!(get(&a).await.contains("fwd=miss"));
    // B's memory is empty: its hit comes from the cluster.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&b).await.contains("hit") {
        assert!(
            Instant::now() < deadline,
            "B never read A's entry from the cluster"
        );
        tokio::task::yield_now().await;
    }
}
