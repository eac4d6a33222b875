//! Two caching proxy instances sharing one cache through a real Redis, and the operator's
//! admin listener, over real sockets: one origin fetch serves both instances, an invalidation
//! through one reaches the other's memory, and purges by URL, prefix, tag and everything reach
//! both, for a holder of the token only.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{Method, StatusCode, header},
    routing::get,
};
use bytes::Bytes;
use http_body_util::Full;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_edge_caching_proxy::{Admin, Built, Proxy, ProxyConfig};
use tower_edge_store::RedisStore;
use tower_edge_tests::{TestServer, redis_server::RedisServer, send};

/// Origin requests by method and path (`"GET /a"`).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    fn get(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// Every path is cacheable for ten minutes; `/tagged/*` carries `Surrogate-Key`, `/a` a
/// `Cache-Tag`. Any POST succeeds.
fn origin(calls: Calls) -> Router {
    async fn any(
        State(calls): State<Calls>,
        method: Method,
        req: Request,
    ) -> axum::response::Response {
        let path = req.uri().path().to_owned();
        *calls
            .0
            .lock()
            .unwrap()
            .entry(format!("{method} {path}"))
            .or_default() += 1;
        let mut res = axum::response::IntoResponse::into_response((
            [(header::CACHE_CONTROL, "public, max-age=600")],
            format!("{path}\n"),
        ));
        if path.starts_with("/tagged/") {
            res.headers_mut()
                .insert("surrogate-key", "catalogue  product-7".parse().unwrap());
        }
        if path == "/a" {
            res.headers_mut()
                .insert("cache-tag", "front".parse().unwrap());
        }
        res
    }
    Router::new()
        .fallback(any)
        .route("/health", get(|| async { "ok" }))
        .with_state(calls)
}

const TOKEN: &str = "an-admin-token-of-32-characters!";
const HOST: &str = "shop.example";

struct Instance {
    built_purge: tower_edge_caching_proxy::Purge,
    server: TestServer,
}

async fn instance(redis: &RedisServer, prefix: &str, upstream: &str) -> Instance {
    let l2 = RedisStore::builder(&redis.url())
        .prefix(prefix)
        .build()
        .expect("a Redis store");
    let Built { router, purge, .. } = Proxy::new()
        .upstream(ProxyConfig::new(upstream).unwrap())
        .shared(l2)
        .build();
    Instance {
        built_purge: purge,
        server: TestServer::start(router).await,
    }
}

async fn until_connected(instances: &[&Instance]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !instances
        .iter()
        .all(|i| i.built_purge.bus_connected() == Some(true))
    {
        assert!(
            Instant::now() < deadline,
            "the invalidation bus never connected"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn fetch(instance: &Instance, path: &str) -> (StatusCode, String) {
    let req = http::Request::get(path)
        .header(header::HOST, HOST)
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = instance.server.send(req).await;
    let status = res
        .headers()
        .get("cache-status")
        .map_or("", |v| v.to_str().unwrap())
        .to_owned();
    assert!(!res.headers().contains_key("surrogate-key"));
    assert!(!res.headers().contains_key("cache-tag"));
    (res.status(), status)
}

fn hit(status: &str) -> bool {
    status.starts_with("tower-edge-proxy; hit")
}

/// Fetches `path` through `instance` until it is not a hit any more: an invalidation made
/// elsewhere reaches this instance's memory through the bus. Bounded.
async fn until_not_hit(instance: &Instance, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hit(&fetch(instance, path).await.1) {
        assert!(
            Instant::now() < deadline,
            "{path} was still a hit 10 s after its invalidation"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn two_instances_share_one_fetch_and_an_invalidation_through_one_reaches_the_other() {
    let redis = RedisServer::start();
    let calls = Calls::default();
    let origin = TestServer::start(origin(calls.clone())).await;
    let upstream = format!("http://{}", origin.addr());
    let a = instance(&redis, "proxy-share:", &upstream).await;
    let b = instance(&redis, "proxy-share:", &upstream).await;
    until_connected(&[&a, &b]).await;

    let (status, first) = fetch(&a, "/a").await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("stored"), "{first}");
    // B has never seen it: it comes from Redis, not from the origin.
    let (_, second) = fetch(&b, "/a").await;
    assert!(hit(&second), "{second}");
    assert_eq!(calls.get("GET /a"), 1);
    // A hit of its own memory now, for both.
    assert!(hit(&fetch(&a, "/a").await.1));

    // A POST through B invalidates /a (RFC 9111 §4.4) in Redis and, by the bus, in A.
    let post = http::Request::post("/a")
        .header(header::HOST, HOST)
        .body(Full::from("x"))
        .unwrap();
    assert_eq!(b.server.send(post).await.status(), StatusCode::OK);
    assert_eq!(calls.get("POST /a"), 1);
    until_not_hit(&a, "/a").await;
    assert_eq!(calls.get("GET /a"), 2);
}

fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("the only recorder of this test binary")
        })
        .clone()
}

async fn admin_request(
    admin: &TestServer,
    method: Method,
    target: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut req = http::Request::builder().method(method).uri(target);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = send(admin.addr(), req.body(Full::default()).unwrap()).await;
    (
        res.status(),
        String::from_utf8_lossy(res.body()).into_owned(),
    )
}

#[tokio::test]
async fn the_admin_listener_purges_both_instances_for_a_holder_of_the_token_only() {
    let redis = RedisServer::start();
    let calls = Calls::default();
    let origin = TestServer::start(origin(calls.clone())).await;
    let upstream = format!("http://{}", origin.addr());
    let a = instance(&redis, "proxy-admin:", &upstream).await;
    let b = instance(&redis, "proxy-admin:", &upstream).await;
    until_connected(&[&a, &b]).await;
    let admin = Admin::new(a.built_purge.clone(), TOKEN)
        .unwrap()
        .metrics(recorder());
    let admin = TestServer::start(admin.router()).await;

    let paths = ["/a", "/dir/x", "/dir/y", "/tagged/1", "/tagged/2", "/other"];
    for path in paths {
        fetch(&a, path).await;
        assert!(hit(&fetch(&b, path).await.1), "{path}");
    }

    // No token, a wrong one, the right one under another scheme: 401, and nothing is removed.
    for authorization in [
        None,
        Some("Bearer an-admin-token-of-32-characters?".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
    ] {
        for (method, target) in [(Method::POST, "/purge?all=true"), (Method::GET, "/metrics")] {
            let mut req = http::Request::builder().method(method).uri(target);
            if let Some(value) = &authorization {
                req = req.header(header::AUTHORIZATION, value);
            }
            let res = send(admin.addr(), req.body(Full::default()).unwrap()).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }
    for path in paths {
        assert!(
            hit(&fetch(&b, path).await.1),
            "{path} survived a refused purge"
        );
    }

    // Requests that name nothing, several things, or a bad URL: 400 with the reason.
    for target in [
        "/purge",
        "/purge?tag=a&all=true",
        "/purge?url=/a",
        "/purge?url=ftp://shop.example/a",
        "/purge?all=maybe",
    ] {
        let (status, body) = admin_request(&admin, Method::POST, target, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body}");
        assert!(!body.is_empty());
    }

    // By URL: /a only, on both instances. The host as an operator may type it.
    let (status, body) = admin_request(
        &admin,
        Method::POST,
        "/purge?url=http%3A%2F%2FShop.Example%2Fa",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"purged\":\"url\",\"removed\":1"), "{body}");
    until_not_hit(&b, "/a").await;
    assert!(hit(&fetch(&b, "/other").await.1));

    // By prefix.
    let (status, body) = admin_request(
        &admin,
        Method::POST,
        "/purge?prefix=http://shop.example/dir/",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"removed\":2"), "{body}");
    until_not_hit(&b, "/dir/x").await;
    until_not_hit(&b, "/dir/y").await;
    assert!(hit(&fetch(&b, "/other").await.1));

    // By a tag the origin sent in Surrogate-Key.
    let (status, body) =
        admin_request(&admin, Method::POST, "/purge?tag=product-7", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"removed\":2"), "{body}");
    until_not_hit(&b, "/tagged/1").await;
    until_not_hit(&b, "/tagged/2").await;
    assert!(hit(&fetch(&b, "/other").await.1));

    // Everything. Each instance holds in memory what the other fetched; each is checked on
    // that, before the other fetches it again (which would store it again in Redis).
    fetch(&a, "/all-a").await;
    assert!(hit(&fetch(&b, "/all-a").await.1));
    fetch(&b, "/all-b").await;
    assert!(hit(&fetch(&a, "/all-b").await.1));
    let (status, body) = admin_request(&admin, Method::POST, "/purge?all=true", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    until_not_hit(&b, "/all-a").await;
    until_not_hit(&a, "/all-b").await;

    let (status, metrics) = admin_request(&admin, Method::GET, "/metrics", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("tower_edge_cache"), "{metrics}");
    assert!(
        metrics.contains("tower_edge_purge_total{what=\"prefix\",outcome=\"done\"} 1"),
        "{metrics}"
    );
    let (status, _) = admin_request(&admin, Method::GET, "/nothing", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn an_admin_token_must_be_long_enough() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let purge = Proxy::new().build().purge;
    assert!(Admin::new(purge.clone(), "short").is_err());
    assert!(Admin::new(purge.clone(), "fifteen-chars-x").is_err());
    assert!(Admin::new(purge.clone(), "with a space in it").is_err());
    assert!(Admin::new(purge.clone(), "sixteen-chars-xx").is_ok());
    assert!(Admin::new(purge, TOKEN).is_ok());
}

/// Redis stops: the proxy goes on answering from each instance's memory and from the origin,
/// and an operator's purge says it could not reach the shared cache.
#[tokio::test]
async fn with_redis_down_the_proxy_answers_from_memory_and_the_origin() {
    let mut redis = RedisServer::start();
    let calls = Calls::default();
    let origin = TestServer::start(origin(calls.clone())).await;
    let upstream = format!("http://{}", origin.addr());
    let a = instance(&redis, "proxy-down:", &upstream).await;
    until_connected(&[&a]).await;
    let admin = Admin::new(a.built_purge.clone(), TOKEN).unwrap();
    let admin = TestServer::start(admin.router()).await;
    fetch(&a, "/kept").await;

    redis.stop();
    let (status, kept) = fetch(&a, "/kept").await;
    assert_eq!(status, StatusCode::OK);
    assert!(hit(&kept), "{kept}");
    let (status, fresh) = fetch(&a, "/new").await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(calls.get("GET /new"), 1);

    let (status, body) = admin_request(&admin, Method::POST, "/purge?tag=front", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("store failed"), "{body}");
}
