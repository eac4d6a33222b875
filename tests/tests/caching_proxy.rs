//! The caching proxy in front of a small origin, over real sockets: freshness, 304 from the
//! cache, Vary, invalidation by POST, Range from the cache, headers passed through unchanged,
//! hop-by-hop fields removed, and an unreachable or silent upstream.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, Method, Uri},
    routing::get,
};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use tower_edge_caching_proxy::{ProxyConfig, proxy};
use tower_edge_tests::TestServer;

/// How many requests the origin received, by method and path (`"GET /fresh"`).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    fn record(&self, method: &Method, uri: &Uri) -> usize {
        let mut calls = self.0.lock().unwrap();
        let n = calls.entry(format!("{method} {}", uri.path())).or_default();
        *n += 1;
        *n
    }

    fn get(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

const LONG: &str = "public, max-age=3600";

/// Responses a shared cache must never hand to another user, in several letter cases, with and
/// without `s-maxage` (RFC 9111 §5.2: directive names are case-insensitive).
const NOT_FOR_SHARING: &[&str] = &[
    "max-age=100, Private",
    "max-age=100, PRIVATE",
    "private, max-age=100",
    "Private, s-maxage=100",
    "s-maxage=100, pRiVaTe",
    "public, Private, max-age=100",
    "Private=\"x-user\", max-age=100",
    "No-Store, max-age=100",
    "NO-STORE, s-maxage=100",
    "no-store, public, max-age=100",
    "S-MaxAge=0, max-age=100",
    "s-maxage=0",
    "No-Cache, max-age=100",
    "NO-CACHE, S-MAXAGE=100",
];
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz";

fn origin(calls: Calls) -> Router {
    Router::new()
        .route(
            "/fresh",
            get(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                calls.record(&method, &uri);
                (
                    [
                        (header::CACHE_CONTROL, LONG),
                        (header::ETAG, "\"v1\""),
                        (header::CONTENT_TYPE, "application/x-origin; charset=utf-8"),
                        (header::HeaderName::from_static("x-origin-header"), "kept as is"),
                    ],
                    "fresh body",
                )
            }),
        )
        .route(
            "/lang",
            get(|State(calls): State<Calls>, method: Method, uri: Uri, headers: HeaderMap| async move {
                calls.record(&method, &uri);
                let lang = headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                (
                    [(header::CACHE_CONTROL, LONG), (header::VARY, "Accept-Language")],
                    format!("hello in {lang}"),
                )
            }),
        )
        .route(
            "/item",
            get(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                let n = calls.record(&method, &uri);
                ([(header::CACHE_CONTROL, LONG)], format!("item version {n}"))
            })
            .post(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                calls.record(&method, &uri);
                (StatusCode::OK, "updated")
            }),
        )
        .route(
            "/alphabet",
            get(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                calls.record(&method, &uri);
                ([(header::CACHE_CONTROL, LONG), (header::CONTENT_TYPE, "text/plain")], ALPHABET)
            }),
        )
        .route(
            "/hop",
            get(|State(calls): State<Calls>, method: Method, uri: Uri, headers: HeaderMap| async move {
                calls.record(&method, &uri);
                // Echo what reached the origin, so the test can check the forwarded request.
                let mut seen: Vec<String> = headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
                    .collect();
                seen.sort();
                (
                    [
                        (header::CACHE_CONTROL, "no-store"),
                        (header::CONNECTION, "x-origin-hop"),
                        (header::HeaderName::from_static("x-origin-hop"), "per-connection"),
                        (header::HeaderName::from_static("keep-alive"), "timeout=5"),
                        (header::HeaderName::from_static("x-end-to-end"), "kept"),
                    ],
                    seen.join("\n"),
                )
            }),
        )
        .route(
            "/text",
            get(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                calls.record(&method, &uri);
                ([(header::CACHE_CONTROL, LONG), (header::CONTENT_TYPE, "text/plain")], long_text())
            }),
        )
        .route("/hang", get(std::future::pending::<&'static str>))
        .route(
            "/cdn",
            get(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                let n = calls.record(&method, &uri);
                (
                    [
                        (header::CACHE_CONTROL, "no-store"),
                        (header::HeaderName::from_static("cdn-cache-control"), "max-age=60"),
                    ],
                    format!("for the CDN #{n}"),
                )
            }),
        )
        .route(
            "/welcome",
            get(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                let n = calls.record(&method, &uri);
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::SET_COOKIE, "seen=1; Path=/"),
                    ],
                    format!("welcome #{n}"),
                )
            }),
        )
        .route(
            "/brief",
            get(|State(calls): State<Calls>, method: Method, uri: Uri| async move {
                let n = calls.record(&method, &uri);
                ([(header::CACHE_CONTROL, "max-age=0")], format!("brief #{n}"))
            }),
        )
        .route(
            "/secret/{case}",
            get(|State(calls): State<Calls>, method: Method, uri: Uri, headers: HeaderMap| async move {
                let n = calls.record(&method, &uri);
                let case: usize = uri.path().rsplit('/').next().unwrap().parse().unwrap();
                let user = headers.get("x-user").map_or("nobody", |v| v.to_str().unwrap()).to_owned();
                ([(header::CACHE_CONTROL, NOT_FOR_SHARING[case])], format!("secret for {user} #{n}"))
            }),
        )
        .with_state(calls)
}

/// A body long and repetitive enough for any compressor to take.
fn long_text() -> String {
    "the quick brown fox jumps over the lazy dog\n".repeat(200)
}

/// An origin that counts its calls and the proxy in front of it.
async fn start() -> (TestServer, TestServer, Calls) {
    start_with(|config| config).await
}

/// [`start`], with the proxy's configuration changed by `configure`.
async fn start_with(
    configure: impl FnOnce(ProxyConfig) -> ProxyConfig,
) -> (TestServer, TestServer, Calls) {
    let calls = Calls::default();
    let origin = TestServer::start(origin(calls.clone())).await;
    let config = ProxyConfig::new(&format!("http://{}", origin.addr())).unwrap();
    let proxy = TestServer::start(proxy(configure(config))).await;
    (origin, proxy, calls)
}

fn cache_status(res: &http::Response<Bytes>) -> &str {
    res.headers()["cache-status"].to_str().unwrap()
}

#[tokio::test]
async fn a_fresh_response_is_served_from_the_cache() {
    let (_origin, proxy, calls) = start().await;

    let first = proxy.get("/fresh", &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.body(), "fresh body");
    assert_eq!(cache_status(&first), "tower-edge-proxy; fwd=miss; stored");

    let second = proxy.get("/fresh", &[]).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.body(), "fresh body");
    assert!(
        cache_status(&second).starts_with("tower-edge-proxy; hit"),
        "{second:?}"
    );
    assert!(second.headers().contains_key(header::AGE));
    assert_eq!(
        calls.get("GET /fresh"),
        1,
        "the hit never reached the origin"
    );
}

#[tokio::test]
async fn if_none_match_is_answered_304_from_the_cache() {
    let (_origin, proxy, calls) = start().await;
    proxy.get("/fresh", &[]).await;

    let res = proxy.get("/fresh", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert!(res.body().is_empty());
    assert_eq!(res.headers()[header::ETAG], "\"v1\"");
    assert!(
        cache_status(&res).starts_with("tower-edge-proxy; hit"),
        "{res:?}"
    );

    let other = proxy.get("/fresh", &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(other.body(), "fresh body");
    assert_eq!(
        calls.get("GET /fresh"),
        1,
        "both answered from the stored response"
    );
}

#[tokio::test]
async fn variants_of_accept_language_are_stored_apart() {
    let (_origin, proxy, calls) = start().await;
    for lang in ["en", "fr"] {
        let res = proxy.get("/lang", &[("accept-language", lang)]).await;
        assert_eq!(res.body(), format!("hello in {lang}").as_str());
        assert_eq!(cache_status(&res), "tower-edge-proxy; fwd=miss; stored");
    }
    assert_eq!(calls.get("GET /lang"), 2);

    for lang in ["fr", "en"] {
        let res = proxy.get("/lang", &[("accept-language", lang)]).await;
        assert_eq!(res.body(), format!("hello in {lang}").as_str());
        assert!(
            cache_status(&res).starts_with("tower-edge-proxy; hit"),
            "{res:?}"
        );
        assert_eq!(res.headers()[header::VARY], "Accept-Language");
    }
    assert_eq!(
        calls.get("GET /lang"),
        2,
        "each language came from its own entry"
    );
}

#[tokio::test]
async fn a_post_to_the_url_invalidates_it() {
    let (_origin, proxy, calls) = start().await;
    assert_eq!(proxy.get("/item", &[]).await.body(), "item version 1");
    assert_eq!(proxy.get("/item", &[]).await.body(), "item version 1");
    assert_eq!(calls.get("GET /item"), 1);

    let post = Request::post("/item")
        .header(header::HOST, proxy.addr().to_string())
        .body(Full::new(Bytes::from_static(b"new")))
        .unwrap();
    let res = proxy.send(post).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "updated");
    assert_eq!(calls.get("POST /item"), 1, "the POST was forwarded");

    let after = proxy.get("/item", &[]).await;
    assert_eq!(after.body(), "item version 2");
    assert_eq!(
        calls.get("GET /item"),
        2,
        "the GET after the POST reached the origin"
    );
}

#[tokio::test]
async fn a_range_is_answered_206_from_the_cache() {
    let (_origin, proxy, calls) = start().await;
    assert_eq!(proxy.get("/alphabet", &[]).await.body(), ALPHABET);

    let res = proxy.get("/alphabet", &[("range", "bytes=2-5")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.body(), "cdef");
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 2-5/26");
    assert!(
        cache_status(&res).starts_with("tower-edge-proxy; hit"),
        "{res:?}"
    );
    assert_eq!(calls.get("GET /alphabet"), 1);
}

#[tokio::test]
async fn origin_headers_reach_the_client_unchanged() {
    let (origin, proxy, _calls) = start().await;
    let direct = origin.get("/fresh", &[]).await;
    let gzip = [("accept-encoding", "gzip")];
    for res in [
        proxy.get("/fresh", &gzip).await,
        proxy.get("/fresh", &gzip).await,
    ] {
        for name in [
            "x-origin-header",
            "content-type",
            "etag",
            "cache-control",
            "content-length",
        ] {
            assert_eq!(
                res.headers().get(name),
                direct.headers().get(name),
                "{name}"
            );
        }
        assert_eq!(res.headers()["x-origin-header"], "kept as is");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/x-origin; charset=utf-8"
        );
        assert!(
            !res.headers().contains_key(header::VIA),
            "no Via unless asked"
        );
        assert!(
            !res.headers().contains_key(header::CONTENT_ENCODING),
            "no transformation"
        );
    }
}

#[tokio::test]
async fn hop_by_hop_fields_are_removed_both_ways() {
    let (origin, proxy, _calls) = start().await;
    // The origin does send them: without the proxy they reach the client.
    let direct = origin.get("/hop", &[]).await;
    assert_eq!(direct.headers()["x-origin-hop"], "per-connection");
    assert_eq!(direct.headers()["keep-alive"], "timeout=5");

    let res = proxy
        .get(
            "/hop",
            &[
                ("connection", "x-client-hop"),
                ("x-client-hop", "per-connection"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("te", "trailers"),
                ("x-end-to-end", "kept"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("x-origin-hop"), "{res:?}");
    assert!(!res.headers().contains_key("keep-alive"), "{res:?}");
    let connection = res.headers().get(header::CONNECTION);
    assert!(connection.is_none_or(|v| !v.to_str().unwrap().contains("x-origin-hop")));
    assert_eq!(res.headers()["x-end-to-end"], "kept");

    let seen = std::str::from_utf8(res.body()).unwrap();
    let seen: Vec<&str> = seen.lines().collect();
    assert!(seen.contains(&"x-end-to-end: kept"), "{seen:?}");
    assert!(
        seen.contains(&format!("host: {}", proxy.addr()).as_str()),
        "the origin sees the Host the client sent: {seen:?}"
    );
    for hop in [
        "connection",
        "x-client-hop",
        "keep-alive",
        "proxy-connection",
        "te",
    ] {
        assert!(
            !seen.iter().any(|line| line.starts_with(&format!("{hop}:"))),
            "{hop} reached the origin: {seen:?}"
        );
    }
}

#[tokio::test]
async fn via_is_added_when_asked() {
    let calls = Calls::default();
    let origin = TestServer::start(origin(calls)).await;
    let config = ProxyConfig::new(&format!("http://{}", origin.addr()))
        .unwrap()
        .via(true);
    let proxy = TestServer::start(proxy(config)).await;

    let res = proxy.get("/hop", &[]).await;
    assert_eq!(res.headers()[header::VIA], "1.1 tower-edge");
    let seen = std::str::from_utf8(res.body()).unwrap();
    assert!(
        seen.lines().any(|line| line == "via: 1.1 tower-edge"),
        "{seen}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_gives_502() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there now
    let proxy =
        TestServer::start(proxy(ProxyConfig::new(&format!("http://{addr}")).unwrap())).await;

    for _ in 0..2 {
        let res = proxy.get("/anything", &[]).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.body(), "upstream unreachable\n");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}

#[tokio::test]
async fn a_silent_upstream_gives_504_after_the_read_timeout() {
    let calls = Calls::default();
    let origin = TestServer::start(origin(calls)).await;
    let config = ProxyConfig::new(&format!("http://{}", origin.addr()))
        .unwrap()
        .read_timeout(Duration::from_millis(200));
    let proxy = TestServer::start(proxy(config)).await;

    let res = proxy.get("/hang", &[]).await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.body(), "upstream timed out\n");
}

#[tokio::test]
async fn compression_is_opt_in_and_keyed_by_the_negotiated_encoding() {
    let calls = Calls::default();
    let origin = TestServer::start(origin(calls.clone())).await;
    let plain_proxy = TestServer::start(proxy(
        ProxyConfig::new(&format!("http://{}", origin.addr())).unwrap(),
    ))
    .await;
    let untouched = plain_proxy
        .get("/text", &[("accept-encoding", "gzip")])
        .await;
    assert!(!untouched.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(
        untouched.body(),
        long_text().as_str(),
        "no transformation by default"
    );

    let config = ProxyConfig::new(&format!("http://{}", origin.addr()))
        .unwrap()
        .compress(true);
    let proxy = TestServer::start(proxy(config)).await;
    let gzip = proxy.get("/text", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gzip.body()[..]),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, long_text());

    // Another spelling that negotiates gzip is the same variant: a hit.
    let again = proxy
        .get("/text", &[("accept-encoding", "gzip, br;q=0")])
        .await;
    assert_eq!(again.headers()[header::CONTENT_ENCODING], "gzip");
    assert!(
        cache_status(&again).starts_with("tower-edge-proxy; hit"),
        "{again:?}"
    );
    assert_eq!(again.body(), gzip.body());

    let identity = proxy.get("/text", &[]).await;
    assert!(!identity.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(identity.body(), long_text().as_str());
    assert_eq!(
        calls.get("GET /text"),
        3,
        "one call without --compress, then gzip and identity"
    );
}

#[tokio::test]
async fn a_default_ttl_caches_responses_without_freshness_information() {
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/plain",
            get(
                |State(calls): State<Calls>, method: Method, uri: Uri| async move {
                    format!("call {}", calls.record(&method, &uri))
                },
            ),
        )
        .with_state(calls.clone());
    let origin = TestServer::start(app).await;
    let upstream = format!("http://{}", origin.addr());
    // Without a default TTL, a response that says nothing about freshness is not stored...
    let strict = TestServer::start(proxy(ProxyConfig::new(&upstream).unwrap())).await;
    assert_eq!(strict.get("/plain", &[]).await.body(), "call 1");
    assert_eq!(strict.get("/plain", &[]).await.body(), "call 2");
    // ...with one, it is, as a CDN would.
    let config = ProxyConfig::new(&upstream)
        .unwrap()
        .default_ttl(std::time::Duration::from_secs(60));
    let lenient = TestServer::start(proxy(config)).await;
    assert_eq!(lenient.get("/plain", &[]).await.body(), "call 3");
    let again = lenient.get("/plain", &[]).await;
    assert_eq!(again.body(), "call 3");
    assert!(
        cache_status(&again).starts_with("tower-edge-proxy; hit"),
        "{}",
        cache_status(&again)
    );
}

#[tokio::test]
async fn a_response_not_for_sharing_never_reaches_another_user() {
    let (_origin, proxy, calls) = start().await;
    for (case, cc) in NOT_FOR_SHARING.iter().enumerate() {
        let path = format!("/secret/{case}");
        let alice = proxy.get(&path, &[("x-user", "alice")]).await;
        assert_eq!(alice.body(), "secret for alice #1", "{cc}");
        let bob = proxy.get(&path, &[("x-user", "bob")]).await;
        assert_eq!(
            bob.body(),
            "secret for bob #2",
            "{cc}: bob was answered with alice's response ({})",
            cache_status(&bob)
        );
        assert!(!cache_status(&bob).contains("hit"), "{cc}");
        assert_eq!(calls.get(&format!("GET {path}")), 2);
    }
}

#[tokio::test]
async fn cdn_cache_control_is_read_by_default_and_passed_on() {
    // RFC 9213: the field is for caches like this one; browsers still see Cache-Control.
    let (_origin, cache, calls) = start().await;
    cache.get("/cdn", &[]).await;
    let second = cache.get("/cdn", &[]).await;
    assert_eq!(second.body(), "for the CDN #1");
    assert!(cache_status(&second).contains("hit"), "{second:?}");
    assert_eq!(second.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(second.headers()["cdn-cache-control"], "max-age=60");
    assert_eq!(calls.get("GET /cdn"), 1);

    // Turned off, Cache-Control: no-store rules.
    let (_origin, without, _) = start_with(|config| config.cdn_cache_control(false)).await;
    without.get("/cdn", &[]).await;
    assert_eq!(without.get("/cdn", &[]).await.body(), "for the CDN #2");
}

#[tokio::test]
async fn a_stored_response_is_served_stale_while_the_upstream_is_down() {
    for window in [Some(Duration::from_secs(600)), None] {
        let (origin, cache, _) = start_with(|config| match window {
            Some(window) => config.stale_if_error(window),
            None => config,
        })
        .await;
        assert_eq!(cache.get("/brief", &[]).await.body(), "brief #1");
        origin.stop().await;

        let res = cache.get("/brief", &[]).await;
        if window.is_some() {
            // RFC 9111 §4.2.4 with RFC 5861: stale, and said to be.
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.body(), "brief #1");
            assert!(cache_status(&res).contains("stale-if-error"), "{res:?}");
        } else {
            assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{res:?}");
        }
    }
}

#[tokio::test]
async fn set_cookie_is_stored_only_when_allowed_as_rfc_9111_7_3_writes_it() {
    for (allowed, second_body) in [(false, "welcome #2"), (true, "welcome #1")] {
        let (_origin, cache, _) = start_with(|config| config.store_set_cookie(allowed)).await;
        let first = cache.get("/welcome", &[]).await;
        assert_eq!(first.body(), "welcome #1");
        let second = cache.get("/welcome", &[]).await;
        assert_eq!(second.body(), second_body, "allowed: {allowed}");
        // Stored or not, the cookie reaches the client that the answer is for.
        assert_eq!(second.headers()[header::SET_COOKIE], "seen=1; Path=/");
    }
}
