use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_edge_store::{
    CacheKey, CacheLock, CacheStore, Entry, Holder, Invalidation, LockToken, MokaStore, StoreError,
    testing::Scripted,
};

use super::{CacheHandle, CacheTags, CacheTtl, DefaultTtl, ResponseCacheLayer};
use crate::clock::ManualClock;

const T0: u64 = 1_750_000_000;

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0))
}

#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A handler returning `cache-control` and a body that counts calls, so a cached answer shows.
fn counted(calls: Calls, cache_control: &'static str) -> Router {
    Router::new().route(
        "/r",
        get(move || {
            let n = calls.bump();
            async move {
                let mut res = format!("call {n}").into_response();
                if !cache_control.is_empty() {
                    res.headers_mut()
                        .insert(header::CACHE_CONTROL, cache_control.parse().unwrap());
                }
                res
            }
        }),
    )
}

fn layer(clock: &ManualClock) -> ResponseCacheLayer<MokaStore> {
    ResponseCacheLayer::new(MokaStore::default()).clock(clock.clone())
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .map_or("", |v| v.to_str().unwrap())
    }
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    settle().await;
    Answer {
        status,
        headers,
        body,
    }
}

/// Lets the store writes spawned at a body's end run.
async fn settle() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

fn get_req(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::get(path).header(header::HOST, "example.com");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.body(Body::empty()).unwrap()
}

async fn get_path(app: &Router, path: &str) -> Answer {
    send(app, get_req(path, &[])).await
}

#[tokio::test]
async fn stores_a_fresh_response_and_serves_it_with_age_and_cache_status() {
    let (calls, clock) = (Calls::default(), clock());
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock));
    let first = get_path(&app, "/r").await;
    assert_eq!(first.text(), "call 1");
    assert_eq!(first.cache_status(), "tower-edge; fwd=miss; stored");
    clock.advance(Duration::from_secs(20));
    let second = get_path(&app, "/r").await;
    assert_eq!(second.text(), "call 1");
    assert_eq!(second.headers[header::AGE], "20");
    assert_eq!(second.cache_status(), "tower-edge; hit; ttl=40");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn repeated_hits_follow_the_clock_and_the_entry_each_second() {
    // A hit's head is kept for the second it stays the same (`cache::heads`): every hit must
    // still say its own age and ttl, and a new entry its own fields.
    let (calls, clock) = (Calls::default(), clock());
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock));
    get_path(&app, "/r").await;
    for (advance_ms, age, ttl) in [(0, 0, 60), (400, 0, 59), (400, 0, 59), (300, 1, 58)] {
        clock.advance(Duration::from_millis(advance_ms));
        let hit = get_path(&app, "/r").await;
        assert_eq!(hit.text(), "call 1");
        assert_eq!(hit.headers[header::AGE], age.to_string().as_str());
        assert_eq!(
            hit.cache_status(),
            format!("tower-edge; hit; ttl={ttl}"),
            "{advance_ms} ms on"
        );
        assert_eq!(hit.headers.get_all("cache-status").iter().count(), 1);
        assert_eq!(hit.headers[header::CONTENT_LENGTH], "6");
    }
    // Stale, refetched and stored again: the new entry's own head, not the old one's.
    clock.advance(Duration::from_secs(60));
    assert_eq!(get_path(&app, "/r").await.text(), "call 2");
    let hit = get_path(&app, "/r").await;
    assert_eq!(hit.text(), "call 2");
    assert_eq!(hit.headers[header::AGE], "0");
    assert_eq!(hit.cache_status(), "tower-edge; hit; ttl=60");
    // A range or a HEAD of the same entry in the same second is answered as such.
    let range = send(&app, get_req("/r", &[("range", "bytes=0-3")])).await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.text(), "call");
    let head = send(
        &app,
        Request::head("/r")
            .header(header::HOST, "example.com")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.headers[header::CONTENT_LENGTH], "6");
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn goes_to_the_handler_again_once_stale() {
    let (calls, clock) = (Calls::default(), clock());
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock));
    get_path(&app, "/r").await;
    clock.advance(Duration::from_secs(60));
    let again = get_path(&app, "/r").await;
    assert_eq!(again.text(), "call 2");
    assert_eq!(again.cache_status(), "tower-edge; fwd=stale; stored");
    assert_eq!(get_path(&app, "/r").await.text(), "call 2");
}

#[tokio::test]
async fn s_maxage_wins_over_max_age_and_age_counts() {
    let (calls, clock) = (Calls::default(), clock());
    let app = Router::new()
        .route(
            "/r",
            get({
                let calls = calls.clone();
                move || {
                    calls.bump();
                    async {
                        (
                            [
                                (header::CACHE_CONTROL, "max-age=1000, s-maxage=100"),
                                (header::AGE, "30"),
                            ],
                            "x",
                        )
                    }
                }
            }),
        )
        .layer(layer(&clock));
    get_path(&app, "/r").await;
    clock.advance(Duration::from_secs(60));
    let hit = get_path(&app, "/r").await;
    assert_eq!(hit.headers[header::AGE], "90");
    assert_eq!(hit.cache_status(), "tower-edge; hit; ttl=10");
    clock.advance(Duration::from_secs(10));
    get_path(&app, "/r").await;
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn never_stores_no_store_private_set_cookie_or_vary_star() {
    for (cc, extra, detail) in [
        ("no-store", None, "no-store"),
        ("private, max-age=60", None, "private"),
        (
            "max-age=60",
            Some((header::SET_COOKIE, "sid=1")),
            "set-cookie",
        ),
        ("max-age=60", Some((header::VARY, "*")), "vary-star"),
    ] {
        let calls = Calls::default();
        let c2 = calls.clone();
        let extra_for_handler = extra.clone();
        let app = Router::new()
            .route(
                "/r",
                get(move || {
                    let extra = extra_for_handler.clone();
                    let n = c2.bump();
                    async move {
                        let mut res = format!("call {n}").into_response();
                        res.headers_mut()
                            .insert(header::CACHE_CONTROL, cc.parse().unwrap());
                        if let Some((name, value)) = extra {
                            res.headers_mut().insert(name, value.parse().unwrap());
                        }
                        res
                    }
                }),
            )
            .layer(layer(&clock()));
        let first = get_path(&app, "/r").await;
        assert_eq!(
            first.cache_status(),
            format!("tower-edge; fwd=miss; detail={detail}")
        );
        assert_eq!(
            get_path(&app, "/r").await.text(),
            "call 2",
            "{cc} {extra:?}"
        );
    }
}

/// A handler answering `status` with `fields` and a body that counts calls.
fn answering(
    calls: Calls,
    status: StatusCode,
    fields: &'static [(&'static str, &'static str)],
) -> Router {
    Router::new().route(
        "/r",
        get(move || {
            let n = calls.bump();
            async move {
                let mut res = (status, format!("call {n}")).into_response();
                for (name, value) in fields {
                    res.headers_mut().append(
                        header::HeaderName::from_static(name),
                        header::HeaderValue::from_static(value),
                    );
                }
                res
            }
        }),
    )
}

#[tokio::test]
async fn directives_that_forbid_sharing_count_in_any_letter_case() {
    // RFC 9111 §5.2: directive names are case-insensitive. The second user must never get the
    // first one's answer.
    for cc in [
        "max-age=100, Private",
        "max-age=100, PRIVATE",
        "Private=\"x-user\", max-age=100",
        "Max-Age=100, No-Store",
        "public, max-age=100, NO-STORE",
        "S-MaxAge=0",
        "No-Cache, max-age=100",
    ] {
        let calls = Calls::default();
        let app = counted(calls.clone(), cc).layer(layer(&clock()));
        assert_eq!(get_path(&app, "/r").await.text(), "call 1");
        let second = get_path(&app, "/r").await;
        assert_eq!(
            second.text(),
            "call 2",
            "{cc}: the second client got the first one's response ({})",
            second.cache_status()
        );
    }
}

#[tokio::test]
async fn invalid_freshness_information_makes_a_response_stale() {
    // RFC 9111 §4.2.1, §5.1, §5.3.
    for fields in [
        &[("cache-control", "max-age=100"), ("age", "abc")][..],
        &[("cache-control", "max-age=3600"), ("age", "7200, 0")],
        &[("cache-control", "max-age=abc")],
        &[("cache-control", "max-age=60, max-age=3600")],
        &[("expires", "0")],
        &[("expires", "not a date")],
    ] {
        let calls = Calls::default();
        let app = answering(calls.clone(), StatusCode::OK, fields).layer(layer(&clock()));
        get_path(&app, "/r").await;
        let second = get_path(&app, "/r").await;
        assert_eq!(
            second.text(),
            "call 2",
            "{fields:?}: {}",
            second.cache_status()
        );
    }
}

#[tokio::test]
async fn any_final_status_with_explicit_freshness_is_stored() {
    // RFC 9111 §3: not only the statuses RFC 7234 listed.
    for status in [
        StatusCode::CREATED,
        StatusCode::FOUND,
        StatusCode::FORBIDDEN,
        StatusCode::INTERNAL_SERVER_ERROR,
    ] {
        let calls = Calls::default();
        let app = answering(calls.clone(), status, &[("cache-control", "max-age=60")])
            .layer(layer(&clock()));
        get_path(&app, "/r").await;
        let second = get_path(&app, "/r").await;
        assert_eq!(
            (second.status, second.text()),
            (status, "call 1"),
            "{}",
            second.cache_status()
        );
        // Without explicit freshness, only heuristically cacheable statuses get a default TTL.
        let calls = Calls::default();
        let app = answering(calls.clone(), status, &[])
            .layer(layer(&clock()).default_ttl(Duration::from_secs(60)));
        get_path(&app, "/r").await;
        assert_eq!(get_path(&app, "/r").await.text(), "call 2", "{status}");
    }
}

#[tokio::test]
async fn must_understand_stores_a_known_status_despite_no_store() {
    // RFC 9111 §5.2.2.3.
    let calls = Calls::default();
    let app =
        counted(calls.clone(), "must-understand, no-store, max-age=60").layer(layer(&clock()));
    get_path(&app, "/r").await;
    assert_eq!(get_path(&app, "/r").await.text(), "call 1");
}

#[tokio::test]
async fn empty_bodies_are_stored_and_said_to_be() {
    // Nothing polls an empty body to its end, where a streamed body is stored.
    for status in [StatusCode::NO_CONTENT, StatusCode::OK] {
        let calls = Calls::default();
        let c2 = calls.clone();
        let app = Router::new()
            .route(
                "/empty",
                get(move || {
                    c2.bump();
                    async move { (status, [(header::CACHE_CONTROL, "max-age=60")]) }
                }),
            )
            .layer(layer(&clock()));
        let res = app.clone().oneshot(get_req("/empty", &[])).await.unwrap();
        assert_eq!(
            res.headers()["cache-status"],
            "tower-edge; fwd=miss; stored",
            "{status}"
        );
        drop(res); // never polled
        let again = get_path(&app, "/empty").await;
        assert!(
            again.cache_status().contains("hit"),
            "{status}: {}",
            again.cache_status()
        );
        assert_eq!((again.status, calls.get()), (status, 1));
    }
}

#[tokio::test]
async fn concurrent_misses_on_an_empty_body_make_one_inner_call() {
    let calls = Calls::default();
    // Open once, it stays open: a second call would be counted, not hang.
    let (gate, closed) = tokio::sync::watch::channel(false);
    let c2 = calls.clone();
    let app = Router::new()
        .route(
            "/empty",
            get(move || {
                let (c, mut g) = (c2.clone(), closed.clone());
                async move {
                    c.bump();
                    g.wait_for(|open| *open).await.unwrap();
                    (
                        StatusCode::NO_CONTENT,
                        [(header::CACHE_CONTROL, "max-age=60")],
                    )
                }
            }),
        )
        .layer(layer(&clock()));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.oneshot(get_req("/empty", &[])).await.unwrap().status() })
        })
        .collect();
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    settle().await;
    gate.send_replace(true);
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::NO_CONTENT);
    }
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_hit_sends_the_stored_date_with_its_age() {
    // RFC 9110 §6.6.1 and RFC 9111 §4.2.3: Date and Age describe the stored response.
    let (calls, clock) = (Calls::default(), clock());
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock));
    get_path(&app, "/r").await;
    clock.advance(Duration::from_secs(9));
    let hit = get_path(&app, "/r").await;
    assert!(hit.cache_status().contains("hit"));
    assert_eq!(hit.headers[header::AGE], "9");
    assert_eq!(
        hit.headers[header::DATE],
        crate::http::date::format_http_date(UNIX_EPOCH + Duration::from_secs(T0)).as_str()
    );
}

/// An origin for `/v` answering `304` with `not_modified` fields to `If-None-Match: "v1"`,
/// and `200` "payload" with `full` fields otherwise; it counts its calls.
fn revalidating(
    calls: Calls,
    full: &'static [(&'static str, &'static str)],
    not_modified: &'static [(&'static str, &'static str)],
) -> Router {
    let fields = |status: StatusCode, body: &'static str, list: &[(&str, &str)]| {
        let mut res = (status, body).into_response();
        for (name, value) in list {
            res.headers_mut().append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                header::HeaderValue::from_str(value).unwrap(),
            );
        }
        res
    };
    Router::new().route(
        "/v",
        get(move |headers: HeaderMap| {
            calls.bump();
            async move {
                if headers
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|v| v == "\"v1\"")
                {
                    fields(StatusCode::NOT_MODIFIED, "", not_modified)
                } else {
                    fields(StatusCode::OK, "payload", full)
                }
            }
        }),
    )
}

#[tokio::test]
async fn a_304_without_a_name_of_the_stored_vary_keeps_it() {
    // RFC 9110 §15.4.5: the 304 should carry the 200's Vary. A compression layer below the
    // cache adds `accept-encoding` to the 200 only; the stored response must keep it.
    let (calls, clock) = (Calls::default(), clock());
    let app = revalidating(
        calls.clone(),
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("vary", "Accept-Language, Accept-Encoding"),
        ],
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("vary", "Accept-Language"),
        ],
    )
    .layer(layer(&clock));
    let lang: &[(&str, &str)] = &[("accept-language", "fr"), ("accept-encoding", "gzip")];
    send(&app, get_req("/v", lang)).await;
    clock.advance(Duration::from_secs(61));
    let revalidated = send(&app, get_req("/v", lang)).await;
    assert!(revalidated.cache_status().contains("fwd-status=304"));
    let hit = send(&app, get_req("/v", lang)).await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
    let vary: Vec<String> = hit
        .headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap()
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(vary.contains(&"accept-encoding".to_owned()), "{vary:?}");
    assert!(vary.contains(&"accept-language".to_owned()), "{vary:?}");
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn if_modified_since_uses_the_stored_date_without_last_modified() {
    // RFC 9111 §4.3.2.
    let (calls, clock) = (Calls::default(), clock());
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock));
    get_path(&app, "/r").await; // stored, dated T0 by the cache
    clock.advance(Duration::from_secs(5));
    let at = |t: u64| crate::http::date::format_http_date(UNIX_EPOCH + Duration::from_secs(t));
    let since_then = send(&app, get_req("/r", &[("if-modified-since", &at(T0))])).await;
    assert_eq!(since_then.status, StatusCode::NOT_MODIFIED);
    let before = send(&app, get_req("/r", &[("if-modified-since", &at(T0 - 60))])).await;
    assert_eq!((before.status, before.text()), (StatusCode::OK, "call 1"));
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn authorized_requests_are_never_answered_from_shared_entries() {
    let (calls, clock) = (Calls::default(), clock());
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock));
    get_path(&app, "/r").await;
    let authed = send(&app, get_req("/r", &[("authorization", "Bearer alice")])).await;
    assert_eq!(authed.text(), "call 2");
    assert_eq!(
        authed.cache_status(),
        "tower-edge; fwd=request; detail=authorization"
    );
    // Not stored either: the next anonymous request still gets the first call's entry.
    assert_eq!(get_path(&app, "/r").await.text(), "call 1");
}

#[tokio::test]
async fn answers_to_authorized_requests_are_stored_exactly_when_rfc_9111_3_5_allows() {
    let auth: &[(&str, &str)] = &[("authorization", "Bearer alice")];
    for (cc, stored) in [
        ("max-age=60", false),
        ("no-cache, max-age=60", false),
        ("Public, max-age=60", true),
        ("S-MaxAge=60", true),
        ("Must-Revalidate, max-age=60", true),
    ] {
        let calls = Calls::default();
        let app = counted(calls.clone(), cc).layer(layer(&clock()));
        let first = send(&app, get_req("/r", auth)).await;
        assert_eq!(first.text(), "call 1");
        let anonymous = get_path(&app, "/r").await;
        let expected = if stored { "call 1" } else { "call 2" };
        assert_eq!(anonymous.text(), expected, "{cc}: {}", first.cache_status());
    }
}

#[tokio::test]
async fn per_user_keys_keep_private_responses_apart() {
    let clock = clock();
    let app = Router::new()
        .route(
            "/me",
            get(|headers: HeaderMap| async move {
                let user = headers[header::AUTHORIZATION].to_str().unwrap().to_owned();
                (
                    [(header::CACHE_CONTROL, "private, max-age=60")],
                    format!("hello {user}"),
                )
            }),
        )
        .layer(layer(&clock).per_user(|parts| {
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }));
    let a = send(&app, get_req("/me", &[("authorization", "alice")])).await;
    let b = send(&app, get_req("/me", &[("authorization", "bob")])).await;
    assert_eq!((a.text(), b.text()), ("hello alice", "hello bob"));
    let a2 = send(&app, get_req("/me", &[("authorization", "alice")])).await;
    assert_eq!(a2.text(), "hello alice");
    assert!(a2.cache_status().contains("hit"), "{}", a2.cache_status());
    let b2 = send(&app, get_req("/me", &[("authorization", "bob")])).await;
    assert_eq!(b2.text(), "hello bob");
}

fn by_language(calls: Calls) -> Router {
    Router::new().route(
        "/l",
        get(move |headers: HeaderMap| {
            let n = calls.bump();
            async move {
                let lang = headers
                    .get(header::ACCEPT_LANGUAGE)
                    .map_or("none", |v| v.to_str().unwrap())
                    .to_owned();
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::VARY, "Accept-Language"),
                    ],
                    format!("{lang} {n}"),
                )
            }
        }),
    )
}

#[tokio::test]
async fn vary_keeps_one_entry_per_header_value() {
    let calls = Calls::default();
    let app = by_language(calls.clone()).layer(layer(&clock()));
    let fr = || get_req("/l", &[("accept-language", "fr")]);
    let en = || get_req("/l", &[("accept-language", "en")]);
    assert_eq!(send(&app, fr()).await.text(), "fr 1");
    assert_eq!(send(&app, en()).await.text(), "en 2");
    assert_eq!(send(&app, fr()).await.text(), "fr 1");
    assert_eq!(send(&app, en()).await.text(), "en 2");
    assert_eq!(get_path(&app, "/l").await.text(), "none 3");
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn accept_encoding_variants_are_kept_apart_without_a_negotiator() {
    let app = Router::new()
        .route(
            "/e",
            get(|headers: HeaderMap| async move {
                let gz = headers
                    .get(header::ACCEPT_ENCODING)
                    .is_some_and(|v| v.to_str().unwrap().contains("gzip"));
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::VARY, "accept-encoding"),
                    ],
                    if gz { "pretend-gzip" } else { "identity" },
                )
            }),
        )
        .layer(layer(&clock()));
    assert_eq!(
        send(&app, get_req("/e", &[("accept-encoding", "gzip")]))
            .await
            .text(),
        "pretend-gzip"
    );
    assert_eq!(get_path(&app, "/e").await.text(), "identity");
    assert_eq!(
        send(&app, get_req("/e", &[("accept-encoding", "gzip")]))
            .await
            .text(),
        "pretend-gzip"
    );
}

#[tokio::test]
async fn answers_if_none_match_with_304_on_hits_and_misses() {
    let app = Router::new()
        .route(
            "/v",
            get(|| async {
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::ETAG, "\"v1\""),
                    ],
                    "body",
                )
            }),
        )
        .layer(layer(&clock()));
    let miss = send(&app, get_req("/v", &[("if-none-match", "\"v1\"")])).await;
    assert_eq!(miss.status, StatusCode::NOT_MODIFIED);
    assert!(miss.body.is_empty());
    assert_eq!(miss.cache_status(), "tower-edge; fwd=miss; stored");
    // The miss above still stored the full response.
    let hit = send(&app, get_req("/v", &[("if-none-match", "W/\"v1\"")])).await;
    assert_eq!(hit.status, StatusCode::NOT_MODIFIED);
    assert!(hit.body.is_empty());
    assert_eq!(hit.headers[header::ETAG], "\"v1\"");
    assert!(hit.cache_status().starts_with("tower-edge; hit"));
    // RFC 9110 §15.4.5: the fields a 200 would have carried among those a 304 keeps, with the
    // cache's own `Age` and `Cache-Status`, and nothing that describes a body.
    let mut names: Vec<&str> = hit.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["age", "cache-control", "cache-status", "date", "etag"],
        "{:?}",
        hit.headers
    );
    let full = get_path(&app, "/v").await;
    assert_eq!(full.text(), "body");
    let failed = send(&app, get_req("/v", &[("if-match", "\"v0\"")])).await;
    assert_eq!(failed.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry() {
    let calls = Calls::default();
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock()));
    get_path(&app, "/r").await;
    let head = send(
        &app,
        Request::head("/r")
            .header(header::HOST, "example.com")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.headers[header::CONTENT_LENGTH], "6");
    assert!(head.cache_status().contains("hit"));
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn revalidates_stale_entries_and_refreshes_them_on_304() {
    let (calls, clock) = (Calls::default(), clock());
    let app = revalidating(
        calls.clone(),
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        &[("cache-control", "max-age=120"), ("etag", "\"v1\"")],
    )
    .layer(layer(&clock));
    get_path(&app, "/v").await;
    clock.advance(Duration::from_secs(61));
    let revalidated = get_path(&app, "/v").await;
    assert_eq!(revalidated.status, StatusCode::OK);
    assert_eq!(revalidated.text(), "payload");
    assert_eq!(
        revalidated.cache_status(),
        "tower-edge; fwd=stale; fwd-status=304; stored"
    );
    assert_eq!(revalidated.headers[header::CACHE_CONTROL], "max-age=120");
    // Fresh for the 304's 120 s from now.
    clock.advance(Duration::from_secs(100));
    assert!(get_path(&app, "/v").await.cache_status().contains("hit"));
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn serves_stale_while_one_background_refresh_runs() {
    let (calls, clock) = (Calls::default(), clock());
    let app = counted(calls.clone(), "max-age=10, stale-while-revalidate=60").layer(layer(&clock));
    get_path(&app, "/r").await;
    clock.advance(Duration::from_secs(15));
    let stale = get_path(&app, "/r").await;
    assert_eq!(stale.text(), "call 1");
    assert_eq!(
        stale.cache_status(),
        "tower-edge; hit; ttl=-5; detail=stale-while-revalidate"
    );
    settle().await;
    assert_eq!(calls.get(), 2, "one background refresh");
    assert_eq!(get_path(&app, "/r").await.text(), "call 2");
}

#[tokio::test]
async fn serves_stale_if_error_when_the_handler_fails() {
    let clock = clock();
    let fail = Arc::new(AtomicU64::new(0));
    let f2 = fail.clone();
    let app = Router::new()
        .route(
            "/r",
            get(move || {
                let failing = f2.load(Ordering::SeqCst) == 1;
                async move {
                    if failing {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    (
                        [(header::CACHE_CONTROL, "max-age=10, stale-if-error=300")],
                        "good",
                    )
                        .into_response()
                }
            }),
        )
        .layer(layer(&clock));
    get_path(&app, "/r").await;
    fail.store(1, Ordering::SeqCst);
    clock.advance(Duration::from_secs(20));
    let res = get_path(&app, "/r").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "good");
    assert!(
        res.cache_status().contains("detail=stale-if-error"),
        "{}",
        res.cache_status()
    );
    // Past the window the error goes through.
    clock.advance(Duration::from_secs(400));
    assert_eq!(
        get_path(&app, "/r").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn must_revalidate_forbids_serving_stale() {
    let clock = clock();
    let calls = Calls::default();
    let app = counted(
        calls,
        "max-age=10, must-revalidate, stale-while-revalidate=60",
    )
    .layer(layer(&clock));
    get_path(&app, "/r").await;
    clock.advance(Duration::from_secs(20));
    let res = get_path(&app, "/r").await;
    assert_eq!(res.text(), "call 2");
}

#[tokio::test]
async fn concurrent_misses_make_one_inner_call() {
    let calls = Calls::default();
    let gate = Arc::new(tokio::sync::Notify::new());
    let (c2, g2) = (calls.clone(), gate.clone());
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (c, g) = (c2.clone(), g2.clone());
                async move {
                    c.bump();
                    g.notified().await;
                    ([(header::CACHE_CONTROL, "max-age=60")], "once")
                }
            }),
        )
        .layer(layer(&clock()));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_req("/slow", &[])).await })
        })
        .collect();
    // Let every task reach the handler or the flight.
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    settle().await;
    gate.notify_one();
    for task in tasks {
        let res = task.await.unwrap();
        assert_eq!(res.text(), "once");
    }
    assert_eq!(calls.get(), 1);
}

/// A handler whose first `hang` calls never answer and whose later calls answer at once.
fn hanging_first(calls: Calls, hang: usize) -> Router {
    Router::new().route(
        "/slow",
        get(move || {
            let n = calls.bump();
            async move {
                if n <= hang {
                    std::future::pending::<()>().await;
                }
                ([(header::CACHE_CONTROL, "max-age=60")], format!("call {n}"))
            }
        }),
    )
}

#[tokio::test(start_paused = true)]
async fn a_slow_inner_call_lets_one_more_miss_through_per_coalesce_timeout_not_all() {
    let calls = Calls::default();
    let timeout = Duration::from_secs(10);
    // A store whose locks cost nothing: this is about the flight in this process (the store's
    // own lock would hold the next leader back until its TTL, in real time).
    let store = Scripted::new(MokaStore::default());
    store.set_locks_free(true);
    let app = hanging_first(calls.clone(), usize::MAX).layer(
        ResponseCacheLayer::new(store)
            .clock(clock())
            .coalesce_timeout(timeout),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_req("/slow", &[])).await })
        })
        .collect();
    // The runtime's clock is paused: these sleeps move virtual time, and it moves only once
    // every task waits, so no task is ever caught half-way. Each check sits between two
    // take-overs.
    tokio::time::sleep(timeout / 2).await;
    assert_eq!(calls.get(), 1);
    tokio::time::sleep(timeout).await;
    assert_eq!(calls.get(), 2, "one waiter, not all 49, after the timeout");
    tokio::time::sleep(timeout).await;
    assert_eq!(calls.get(), 3);
    for task in tasks {
        task.abort();
    }
}

/// Two instances on one store. The first leader's store lock expires while its origin call
/// hangs; the second instance then takes the lock, fetches a newer answer and stores it. When
/// the first call finally answers, its put must be refused: it no longer holds the lock, and
/// what it carries is older than what is stored.
#[tokio::test]
async fn a_leader_whose_lock_passed_to_another_does_not_overwrite_its_entry() {
    let store = MokaStore::default();
    let calls = Calls::default();
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let (calls, entered, release) = (calls.clone(), entered.clone(), release.clone());
        move || {
            let (calls, entered, release) = (calls.clone(), entered.clone(), release.clone());
            async move {
                let n = calls.bump();
                if n == 1 {
                    entered.notify_one();
                    release.notified().await;
                }
                (
                    [(header::CACHE_CONTROL, "max-age=600")],
                    if n == 1 { "old" } else { "new" },
                )
            }
        }
    };
    let instance = |coalesce: Duration| {
        Router::new().route("/doc", get(handler.clone())).layer(
            ResponseCacheLayer::new(store.clone())
                .clock(clock())
                .coalesce_timeout(coalesce),
        )
    };
    // The first leader's lock lives 100 ms; the second instance waits up to a minute for it.
    let (a, b) = (
        instance(Duration::from_millis(100)),
        instance(Duration::from_secs(60)),
    );
    let first = tokio::spawn({
        let a = a.clone();
        async move { send(&a, get_req("/doc", &[])).await }
    });
    entered.notified().await;
    let second = send(&b, get_req("/doc", &[])).await;
    assert_eq!(second.text(), "new");
    assert_eq!(
        calls.get(),
        2,
        "the second instance led once the first lock expired"
    );
    release.notify_one();
    assert_eq!(first.await.unwrap().text(), "old");
    for app in [&a, &b] {
        let res = send(app, get_req("/doc", &[])).await;
        assert_eq!(
            res.text(),
            "new",
            "the entry of the lock's present holder stays"
        );
    }
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn a_leader_whose_client_goes_away_hands_the_flight_to_one_waiter() {
    let calls = Calls::default();
    let app = hanging_first(calls.clone(), 1).layer(layer(&clock()));
    let leader = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get_req("/slow", &[])).await }
    });
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_req("/slow", &[])).await })
        })
        .collect();
    settle().await; // every waiter has joined the flight
    leader.abort();
    for waiter in waiters {
        let res = waiter.await.unwrap();
        assert_eq!(res.text(), "call 2");
    }
    assert_eq!(calls.get(), 2, "the waiters went to the handler together");
}

#[tokio::test]
async fn waiters_on_a_response_that_cannot_be_stored_go_to_the_handler_at_once() {
    // Not one after the other: each would wait for the previous one's whole call.
    let calls = Calls::default();
    let gate = Arc::new(tokio::sync::Notify::new());
    let (c2, g2) = (calls.clone(), gate.clone());
    let app = Router::new()
        .route(
            "/private",
            get(move || {
                let (c, g) = (c2.clone(), g2.clone());
                async move {
                    let n = c.bump();
                    if n == 1 {
                        g.notified().await;
                    }
                    ([(header::CACHE_CONTROL, "private")], format!("call {n}"))
                }
            }),
        )
        .layer(layer(&clock()));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_req("/private", &[])).await })
        })
        .collect();
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    settle().await;
    assert_eq!(calls.get(), 1);
    gate.notify_one();
    for task in tasks {
        assert!(task.await.unwrap().text().starts_with("call "));
    }
    assert_eq!(calls.get(), 10);
}

#[tokio::test]
async fn bodies_over_the_bound_stream_through_unstored() {
    let calls = Calls::default();
    let c2 = calls.clone();
    let app = Router::new()
        .route(
            "/big",
            get(move || {
                c2.bump();
                async { ([(header::CACHE_CONTROL, "max-age=60")], vec![b'x'; 5000]) }
            }),
        )
        .layer(layer(&clock()).max_body_size(4096));
    let first = get_path(&app, "/big").await;
    assert_eq!(first.body.len(), 5000);
    assert_eq!(
        first.cache_status(),
        "tower-edge; fwd=miss; detail=too-large"
    );
    get_path(&app, "/big").await;
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn query_is_normalized_and_filtered() {
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/q",
            get({
                let calls = calls.clone();
                move || {
                    let n = calls.bump();
                    async move { ([(header::CACHE_CONTROL, "max-age=60")], format!("{n}")) }
                }
            }),
        )
        .layer(layer(&clock()).query_deny(["utm_source"]));
    assert_eq!(get_path(&app, "/q?b=2&a=1").await.text(), "1");
    assert_eq!(get_path(&app, "/q?a=1&b=2&utm_source=x").await.text(), "1");
    assert_eq!(get_path(&app, "/q?a=1&b=3").await.text(), "2");
}

async fn tagged() -> Response {
    let mut res = (
        [
            (header::CACHE_CONTROL, "max-age=60"),
            (
                header::HeaderName::from_static("cache-tag"),
                "product:1, catalogue",
            ),
        ],
        "p1",
    )
        .into_response();
    res.extensions_mut().insert(CacheTags(vec!["extra".into()]));
    res
}

#[tokio::test]
async fn invalidates_by_tag_prefix_url_generation_and_purge() {
    let calls = Calls::default();
    let clock = clock();
    let cache = layer(&clock);
    let handle = cache.handle("http://example.com");
    let c2 = calls.clone();
    let app = Router::new()
        .route(
            "/p/1",
            get(move || {
                c2.bump();
                tagged()
            }),
        )
        .route(
            "/other",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "o") }),
        )
        .layer(cache);
    let first = get_path(&app, "/p/1").await;
    assert!(
        !first.headers.contains_key("cache-tag"),
        "tags are stripped"
    );
    let fill = |app: Router| async move {
        get_path(&app, "/p/1").await;
        get_path(&app, "/other").await;
    };
    let cached =
        |app: Router| async move { get_path(&app, "/p/1").await.cache_status().contains("hit") };

    assert!(cached(app.clone()).await);
    assert_eq!(handle.invalidate_tag("catalogue").await.unwrap(), 1);
    assert!(!cached(app.clone()).await);
    assert_eq!(handle.invalidate_tag("extra").await.unwrap(), 1);
    fill(app.clone()).await;
    assert_eq!(handle.invalidate_prefix("/p/").await.unwrap(), 1);
    assert!(!cached(app.clone()).await);
    assert_eq!(handle.invalidate("/p/1").await.unwrap(), 1);
    fill(app.clone()).await;
    handle.bump_generation().await.unwrap();
    assert!(!cached(app.clone()).await);
    fill(app.clone()).await;
    handle.purge().await.unwrap();
    assert!(
        !get_path(&app, "/other")
            .await
            .cache_status()
            .contains("hit")
    );
    let stats = handle.stats();
    assert!(
        stats.hits >= 1 && stats.misses >= 5 && stats.stored >= 5,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_url_and_location() {
    let app = Router::new()
        .route(
            "/items",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "list") }),
        )
        .route(
            "/items/9",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "nine") }),
        )
        .route(
            "/items",
            post(|| async { (StatusCode::CREATED, [(header::LOCATION, "/items/9")], "") }),
        )
        .layer(layer(&clock()));
    get_path(&app, "/items").await;
    get_path(&app, "/items/9").await;
    assert!(
        get_path(&app, "/items")
            .await
            .cache_status()
            .contains("hit")
    );
    let post_req = Request::post("/items")
        .header(header::HOST, "example.com")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, post_req).await.status, StatusCode::CREATED);
    assert!(
        !get_path(&app, "/items")
            .await
            .cache_status()
            .contains("hit")
    );
    assert!(
        !get_path(&app, "/items/9")
            .await
            .cache_status()
            .contains("hit")
    );
}

#[tokio::test]
async fn handlers_invalidate_through_the_extractor() {
    let app = Router::new()
        .route(
            "/items",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "list") }),
        )
        .route(
            "/admin/flush",
            get(|cache: CacheHandle| async move {
                cache.invalidate("/items").await.unwrap().to_string()
            }),
        )
        .layer(layer(&clock()));
    get_path(&app, "/items").await;
    assert_eq!(get_path(&app, "/admin/flush").await.text(), "1");
    assert!(
        !get_path(&app, "/items")
            .await
            .cache_status()
            .contains("hit")
    );
}

#[tokio::test]
async fn ttl_override_and_defaults_apply_and_are_stripped() {
    let clock = clock();
    let app = Router::new()
        .route(
            "/override",
            get(|| async {
                let mut res = (
                    [
                        (header::CACHE_CONTROL, "max-age=5"),
                        (header::HeaderName::from_static("tower-edge-ttl"), "100"),
                    ],
                    "o",
                )
                    .into_response();
                res.extensions_mut()
                    .insert(CacheTtl(Duration::from_secs(300)));
                res
            }),
        )
        .route(
            "/header",
            get(|| async {
                (
                    [(header::HeaderName::from_static("tower-edge-ttl"), "100")],
                    "h",
                )
            }),
        )
        .route(
            "/route-default",
            get(|| async {
                let mut res = "d".into_response();
                res.extensions_mut()
                    .insert(DefaultTtl(Duration::from_secs(30)));
                res
            }),
        )
        .route("/layer-default", get(|| async { "l" }))
        .layer(layer(&clock).default_ttl(Duration::from_secs(10)));
    for path in ["/override", "/header", "/route-default", "/layer-default"] {
        let first = get_path(&app, path).await;
        assert!(!first.headers.contains_key("tower-edge-ttl"), "{path}");
    }
    let ttl = |a: Answer| a.cache_status().to_owned();
    assert_eq!(
        ttl(get_path(&app, "/override").await),
        "tower-edge; hit; ttl=300"
    );
    assert_eq!(
        ttl(get_path(&app, "/header").await),
        "tower-edge; hit; ttl=100"
    );
    assert_eq!(
        ttl(get_path(&app, "/route-default").await),
        "tower-edge; hit; ttl=30"
    );
    assert_eq!(
        ttl(get_path(&app, "/layer-default").await),
        "tower-edge; hit; ttl=10"
    );
}

#[tokio::test]
async fn cdn_cache_control_wins_when_enabled() {
    let handler = || async {
        (
            [
                (header::CACHE_CONTROL, "no-store"),
                (
                    header::HeaderName::from_static("cdn-cache-control"),
                    "max-age=90",
                ),
            ],
            "c",
        )
    };
    let on = Router::new()
        .route("/c", get(handler))
        .layer(layer(&clock()).cdn_cache_control(true));
    get_path(&on, "/c").await;
    let hit = get_path(&on, "/c").await;
    assert_eq!(hit.cache_status(), "tower-edge; hit; ttl=90");
    assert_eq!(
        hit.headers[header::CACHE_CONTROL],
        "no-store",
        "the client sees its own field"
    );
    let off = Router::new()
        .route("/c", get(handler))
        .layer(layer(&clock()));
    get_path(&off, "/c").await;
    assert!(!get_path(&off, "/c").await.cache_status().contains("hit"));
}

#[tokio::test]
async fn client_no_cache_and_only_if_cached() {
    let calls = Calls::default();
    let app = counted(calls.clone(), "max-age=60").layer(layer(&clock()));
    let cold = send(&app, get_req("/r", &[("cache-control", "only-if-cached")])).await;
    assert_eq!(cold.status, StatusCode::GATEWAY_TIMEOUT);
    get_path(&app, "/r").await;
    let fresh = send(&app, get_req("/r", &[("cache-control", "no-cache")])).await;
    assert_eq!(fresh.text(), "call 2");
    assert_eq!(fresh.cache_status(), "tower-edge; fwd=request; stored");
    assert_eq!(get_path(&app, "/r").await.text(), "call 2");
}

#[tokio::test]
async fn bypass_predicate_skips_the_cache() {
    let calls = Calls::default();
    let app = counted(calls.clone(), "max-age=60")
        .layer(layer(&clock()).bypass(|parts| parts.headers.contains_key("x-debug")));
    get_path(&app, "/r").await;
    let res = send(&app, get_req("/r", &[("x-debug", "1")])).await;
    assert_eq!(res.text(), "call 2");
    assert_eq!(res.cache_status(), "tower-edge; fwd=bypass");
}

#[tokio::test]
async fn a_failing_store_is_a_miss_not_an_error() {
    let calls = Calls::default();
    // A store whose every operation fails.
    let store = Scripted::new(MokaStore::default());
    store.set_down(true);
    let cache = ResponseCacheLayer::new(store);
    let handle = cache.handle("http://example.com");
    let app = counted(calls.clone(), "max-age=60")
        .route("/w", post(|| async { "written" }))
        .layer(cache);
    for n in 1..=3 {
        let res = get_path(&app, "/r").await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.text(), format!("call {n}"));
    }
    let post_req = Request::post("/w")
        .header(header::HOST, "example.com")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, post_req).await.text(), "written");
    assert!(handle.stats().store_errors >= 6, "{:?}", handle.stats());
}

/// RFC 9211 `stored` is said only of what the store kept: never when the put failed, and not
/// for a body that streams to the client before its copy is complete (that one is kept all
/// the same).
#[tokio::test]
async fn cache_status_says_stored_only_of_what_the_store_kept() {
    let calls = Calls::default();
    let store = Scripted::new(MokaStore::default());
    store.set_down(true);
    let app = counted(calls.clone(), "max-age=60").layer(ResponseCacheLayer::new(store.clone()));
    assert_eq!(
        get_path(&app, "/r").await.cache_status(),
        "tower-edge; fwd=miss"
    );
    store.set_down(false);
    assert_eq!(
        get_path(&app, "/r").await.cache_status(),
        "tower-edge; fwd=miss; stored"
    );

    let app = Router::new()
        .route(
            "/s",
            get(|| async {
                let chunks = ["a", "b", "c"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
                (
                    [(header::CACHE_CONTROL, "max-age=60")],
                    Body::from_stream(futures_util::stream::iter(chunks)),
                )
            }),
        )
        .layer(ResponseCacheLayer::new(MokaStore::default()));
    let first = get_path(&app, "/s").await;
    assert_eq!(first.text(), "abc");
    assert_eq!(first.cache_status(), "tower-edge; fwd=miss");
    let mut second = get_path(&app, "/s").await;
    for _ in 0..100 {
        if second.cache_status().contains("hit") {
            break;
        }
        // The copy is stored by a task spawned at the body's end.
        tokio::task::yield_now().await;
        second = get_path(&app, "/s").await;
    }
    assert_eq!(second.text(), "abc");
    assert!(
        second.cache_status().contains("hit"),
        "{}",
        second.cache_status()
    );
}

#[tokio::test]
async fn responses_to_other_origins_are_kept_apart() {
    let app = Router::new()
        .route(
            "/h",
            get(|headers: HeaderMap| async move {
                (
                    [(header::CACHE_CONTROL, "max-age=60")],
                    headers[header::HOST].to_str().unwrap().to_owned(),
                )
            }),
        )
        .layer(layer(&clock()));
    let a = send(
        &app,
        Request::get("/h")
            .header(header::HOST, "a.test")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let b = send(
        &app,
        Request::get("/h")
            .header(header::HOST, "b.test")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((a.text(), b.text()), ("a.test", "b.test"));
    let a2 = send(
        &app,
        Request::get("/h")
            .header(header::HOST, "a.test")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a2.text(), "a.test");
    assert!(a2.cache_status().contains("hit"));
}

#[tokio::test]
async fn stored_entries_keep_the_time_they_were_stored() {
    let clock = clock();
    let store = MokaStore::default();
    let app = Router::new()
        .route(
            "/r",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "x") }),
        )
        .layer(ResponseCacheLayer::new(store.clone()).clock(clock.clone()));
    get_path(&app, "/r").await;
    let key = super::key::base_key("GET http://example.com/r".to_owned(), "any", None);
    let entry = store
        .get(&key)
        .await
        .unwrap()
        .expect("stored under its readable key");
    assert_eq!(
        entry.stored_at(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0)
    );
    assert_eq!(entry.fresh_for(), Duration::from_secs(60));
}

#[tokio::test]
async fn answers_ranges_from_the_stored_body() {
    let app = Router::new()
        .route(
            "/bytes",
            get(|| async {
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::ETAG, "\"b1\""),
                        (header::CONTENT_TYPE, "text/plain"),
                    ],
                    "0123456789abcdefghij",
                )
            }),
        )
        // An origin that serves ranges itself.
        .layer(crate::range::RangeLayer::new())
        .layer(layer(&clock()));
    // A range on a miss goes to the origin as it is, and its 206 is kept as a part...
    let miss = send(&app, get_req("/bytes", &[("range", "bytes=0-3")])).await;
    assert_eq!(miss.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(miss.text(), "0123");
    assert_eq!(miss.cache_status(), "tower-edge; fwd=miss; stored");
    // ...and a whole GET fills the cache.
    assert_eq!(get_path(&app, "/bytes").await.status, StatusCode::OK);

    let one = send(&app, get_req("/bytes", &[("range", "bytes=2-5")])).await;
    assert_eq!(one.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(one.text(), "2345");
    assert_eq!(one.headers[header::CONTENT_RANGE], "bytes 2-5/20");
    assert!(one.cache_status().contains("hit"));

    let suffix = send(&app, get_req("/bytes", &[("range", "bytes=-3")])).await;
    assert_eq!(suffix.text(), "hij");

    let two = send(&app, get_req("/bytes", &[("range", "bytes=0-1, 18-")])).await;
    assert_eq!(two.status, StatusCode::PARTIAL_CONTENT);
    let content_type = two.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("multipart/byteranges; boundary="),
        "{content_type}"
    );
    let text = two.text();
    assert!(
        text.contains("Content-Range: bytes 0-1/20\r\n\r\n01\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 18-19/20\r\n\r\nij\r\n"),
        "{text}"
    );

    let none = send(&app, get_req("/bytes", &[("range", "bytes=50-")])).await;
    assert_eq!(none.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(none.headers[header::CONTENT_RANGE], "bytes */20");

    // If-Range with another validator: the whole representation.
    let changed = send(
        &app,
        get_req("/bytes", &[("range", "bytes=0-1"), ("if-range", "\"b0\"")]),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body.len(), 20);
    let same = send(
        &app,
        get_req("/bytes", &[("range", "bytes=0-1"), ("if-range", "\"b1\"")]),
    )
    .await;
    assert_eq!(same.status, StatusCode::PARTIAL_CONTENT);
}

/// An origin of 20 bytes that serves ranges itself, counting its calls, with `fields`.
fn ranged(calls: Calls, fields: &'static [(&'static str, &'static str)]) -> Router {
    Router::new()
        .route(
            "/v",
            get(move || {
                calls.bump();
                async move {
                    let mut res = "0123456789abcdefghij".into_response();
                    for (name, value) in fields {
                        res.headers_mut().insert(*name, value.parse().unwrap());
                    }
                    res
                }
            }),
        )
        .route("/v", post(|| async { "written" }))
        .layer(crate::range::RangeLayer::new())
}

fn range(path: &str, value: &str) -> Request<Body> {
    get_req(path, &[("range", value)])
}

const PUBLIC_TAGGED: &[(&str, &str)] = &[
    ("cache-control", "max-age=60"),
    ("etag", "\"v1\""),
    ("content-type", "text/plain"),
];

/// RFC 9111 §3.3: a stored part answers ranges wholly within it, and only those.
#[tokio::test]
async fn a_stored_part_answers_ranges_within_it() {
    let calls = Calls::default();
    let app = ranged(calls.clone(), PUBLIC_TAGGED).layer(layer(&clock()));
    assert_eq!(
        send(&app, range("/v", "bytes=0-9")).await.text(),
        "0123456789"
    );
    for (value, text) in [
        ("bytes=0-9", "0123456789"),
        ("bytes=3-5", "345"),
        ("bytes=9-9", "9"),
    ] {
        let hit = send(&app, range("/v", value)).await;
        assert_eq!(hit.status, StatusCode::PARTIAL_CONTENT, "{value}");
        assert_eq!(hit.text(), text, "{value}");
        assert!(
            hit.cache_status().contains("hit"),
            "{value}: {}",
            hit.cache_status()
        );
        assert!(!hit.headers.contains_key(super::parts::PARTS_HEADER));
        assert_eq!(hit.headers[header::ETAG], "\"v1\"");
    }
    let hit = send(&app, range("/v", "bytes=3-5")).await;
    assert_eq!(hit.headers[header::CONTENT_RANGE], "bytes 3-5/20");
    assert_eq!(hit.headers[header::CONTENT_LENGTH], "3");
    assert_eq!(calls.get(), 1);
    // Past the part, or the whole: the origin.
    let beyond = send(&app, range("/v", "bytes=8-12")).await;
    assert_eq!(beyond.text(), "89abc");
    assert!(beyond.cache_status().contains("fwd=miss"));
    assert_eq!(calls.get(), 2);
    // Two ranges within what is now held: multipart, from the cache.
    let two = send(&app, range("/v", "bytes=11-12,0-1")).await;
    assert_eq!(two.status, StatusCode::PARTIAL_CONTENT);
    let text = two.text();
    let (late, early) = (
        text.find("bytes 11-12/20").unwrap(),
        text.find("bytes 0-1/20").unwrap(),
    );
    assert!(late < early, "request order: {text}");
    // Nothing satisfiable: 416 with the length the parts know.
    let none = send(&app, range("/v", "bytes=40-")).await;
    assert_eq!(none.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(none.headers[header::CONTENT_RANGE], "bytes */20");
    assert_eq!(calls.get(), 2);
    let whole = get_path(&app, "/v").await;
    assert_eq!(whole.status, StatusCode::OK);
    assert!(
        whole.cache_status().contains("fwd=miss"),
        "{}",
        whole.cache_status()
    );
    assert_eq!(calls.get(), 3);
}

/// An origin that sends no freshness at all (an object store): `default_ttl` makes its parts
/// fresh as it would the whole, so a range within a stored part is a hit; without it, the part
/// is fetched again.
#[tokio::test]
async fn default_ttl_makes_parts_of_an_object_without_freshness_fresh() {
    const NO_FRESHNESS: &[(&str, &str)] = &[("etag", "\"v1\""), ("content-type", "video/mp4")];
    for (ttl, calls_after) in [(Some(Duration::from_secs(60)), 1), (None, 2)] {
        let calls = Calls::default();
        let mut cache = layer(&clock());
        if let Some(ttl) = ttl {
            cache = cache.default_ttl(ttl);
        }
        let app = ranged(calls.clone(), NO_FRESHNESS).layer(cache);
        assert_eq!(
            send(&app, range("/v", "bytes=0-9")).await.text(),
            "0123456789"
        );
        let again = send(&app, range("/v", "bytes=2-4")).await;
        assert_eq!(again.text(), "234");
        assert_eq!(
            calls.get(),
            calls_after,
            "{ttl:?}: {}",
            again.cache_status()
        );
    }
}

/// A range on a miss goes to the origin without waiting for another range of the same
/// resource: a download's readers never queue behind each other's parts.
#[tokio::test]
async fn ranges_on_a_miss_do_not_wait_for_each_other() {
    let (gate, closed) = tokio::sync::watch::channel(false);
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/v",
            get({
                let calls = calls.clone();
                move || {
                    let n = calls.bump();
                    let mut closed = closed.clone();
                    async move {
                        if n == 1 {
                            closed.wait_for(|open| *open).await.unwrap();
                        }
                        (
                            [
                                (header::CACHE_CONTROL, "max-age=60"),
                                (header::ETAG, "\"v1\""),
                            ],
                            "0123456789abcdefghij",
                        )
                    }
                }
            }),
        )
        .layer(crate::range::RangeLayer::new())
        .layer(layer(&clock()));
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, range("/v", "bytes=0-3")).await }
    });
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    // The first is held in the handler; the second is answered meanwhile.
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        send(&app, range("/v", "bytes=10-13")),
    )
    .await
    .expect("the second range waited for the first");
    assert_eq!(second.text(), "abcd");
    gate.send_replace(true);
    assert_eq!(first.await.unwrap().text(), "0123");
    assert_eq!(calls.get(), 2);
}

/// One part of a representation is stored at a time: a part that arrives while another is
/// being stored is answered at once, unstored, instead of waiting for the other.
#[tokio::test]
async fn a_part_arriving_while_another_is_stored_is_answered_unstored() {
    let calls = Calls::default();
    let store = Scripted::new(MokaStore::default());
    store.hold_next_put();
    let app = ranged(calls.clone(), PUBLIC_TAGGED).layer(ResponseCacheLayer::new(store.clone()));
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, range("/v", "bytes=0-3")).await }
    });
    store.held().await;
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        send(&app, range("/v", "bytes=5-7")),
    )
    .await
    .expect("the second part waited for the first to be stored");
    assert_eq!(second.text(), "567");
    assert_eq!(second.cache_status(), "tower-edge; fwd=miss");
    store.release();
    let first = first.await.unwrap();
    assert_eq!(first.text(), "0123");
    assert_eq!(first.cache_status(), "tower-edge; fwd=miss; stored");
}

/// RFC 9111 §3.4: parts with the same strong validator are combined; once they cover the
/// representation, it is stored whole and answers plain GETs.
#[tokio::test]
async fn parts_that_cover_the_representation_become_a_complete_response() {
    let calls = Calls::default();
    let app = ranged(calls.clone(), PUBLIC_TAGGED).layer(layer(&clock()));
    for value in ["bytes=12-", "bytes=0-5", "bytes=4-13"] {
        let part = send(&app, range("/v", value)).await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{value}");
        assert!(part.cache_status().contains("stored"), "{value}");
    }
    assert_eq!(calls.get(), 3);
    let whole = get_path(&app, "/v").await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.text(), "0123456789abcdefghij");
    assert!(
        whole.cache_status().contains("hit"),
        "{}",
        whole.cache_status()
    );
    assert_eq!(whole.headers[header::CONTENT_LENGTH], "20");
    assert!(!whole.headers.contains_key(header::CONTENT_RANGE));
    assert_eq!(whole.headers[header::CONTENT_TYPE], "text/plain");
    assert_eq!(calls.get(), 3);
    // And a HEAD, from the same entry.
    let head = send(
        &app,
        Request::head("/v")
            .header(header::HOST, "example.com")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.headers[header::CONTENT_LENGTH], "20");
    assert_eq!(calls.get(), 3);
}

/// Without a strong validator on both, parts are not combined: the new one replaces the old.
#[tokio::test]
async fn parts_without_a_strong_etag_are_never_combined() {
    const WEAK: &[(&str, &str)] = &[("cache-control", "max-age=60"), ("etag", "W/\"v1\"")];
    let calls = Calls::default();
    let app = ranged(calls.clone(), WEAK).layer(layer(&clock()));
    send(&app, range("/v", "bytes=0-9")).await;
    send(&app, range("/v", "bytes=10-19")).await;
    assert!(
        send(&app, range("/v", "bytes=12-13"))
            .await
            .cache_status()
            .contains("hit")
    );
    // The first part was replaced, not combined with the second.
    let first = send(&app, range("/v", "bytes=0-1")).await;
    assert_eq!(first.text(), "01");
    assert!(first.cache_status().contains("fwd=miss"));
    assert_eq!(get_path(&app, "/v").await.text(), "0123456789abcdefghij");
    assert_eq!(calls.get(), 4);
}

/// A part is stored only as any response is: never `private` or `no-store` ones, and an
/// invalidation of the resource removes its parts.
#[tokio::test]
async fn parts_follow_the_storage_rules_and_invalidation() {
    const PRIVATE: &[(&str, &str)] = &[("cache-control", "private, max-age=60")];
    let calls = Calls::default();
    let app = ranged(calls.clone(), PRIVATE).layer(layer(&clock()));
    let first = send(&app, range("/v", "bytes=0-3")).await;
    assert_eq!(first.cache_status(), "tower-edge; fwd=miss; detail=private");
    send(&app, range("/v", "bytes=0-3")).await;
    assert_eq!(calls.get(), 2);

    let calls = Calls::default();
    let app = ranged(calls.clone(), PUBLIC_TAGGED).layer(layer(&clock()));
    send(&app, range("/v", "bytes=0-3")).await;
    let written = Request::post("/v")
        .header(header::HOST, "example.com")
        .body(Body::empty());
    assert_eq!(send(&app, written.unwrap()).await.text(), "written");
    let after = send(&app, range("/v", "bytes=0-3")).await;
    assert!(
        after.cache_status().contains("fwd=miss"),
        "{}",
        after.cache_status()
    );
    assert_eq!(calls.get(), 2);
}

/// The stored parts never answer a request with preconditions or one that is not GET.
#[tokio::test]
async fn parts_do_not_answer_conditional_requests() {
    let calls = Calls::default();
    let app = ranged(calls.clone(), PUBLIC_TAGGED).layer(layer(&clock()));
    send(&app, range("/v", "bytes=0-3")).await;
    let conditional = send(
        &app,
        get_req("/v", &[("range", "bytes=0-3"), ("if-none-match", "\"v1\"")]),
    )
    .await;
    assert_eq!(conditional.status, StatusCode::NOT_MODIFIED);
    assert_eq!(calls.get(), 2);
    // If-Range with the held validator: from the parts; with another: the origin's whole.
    let same = send(
        &app,
        get_req("/v", &[("range", "bytes=0-3"), ("if-range", "\"v1\"")]),
    )
    .await;
    assert!(
        same.cache_status().contains("hit"),
        "{}",
        same.cache_status()
    );
    let other = send(
        &app,
        get_req("/v", &[("range", "bytes=0-3"), ("if-range", "\"v0\"")]),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.text(), "0123456789abcdefghij");
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn huge_ttls_ages_and_stale_windows_are_clamped_not_overflowed() {
    // Found by the `cache_policy` fuzz target: a TTL of u64::MAX seconds plus an `Age`
    // overflowed the sum of durations and panicked.
    let clock = clock();
    let app = Router::new()
        .route(
            "/r",
            get(|| async {
                (
                    [
                        ("tower-edge-ttl", "18446744073709551615"),
                        ("age", "18446744073709551615"),
                        (
                            "cache-control",
                            "max-age=99999999999999999999, stale-while-revalidate=18446744073709551615, stale-if-error=18446744073709551615",
                        ),
                    ],
                    "body",
                )
            }),
        )
        .layer(layer(&clock));
    let first = get_path(&app, "/r").await;
    assert_eq!((first.status, first.text()), (StatusCode::OK, "body"));
    settle().await;
    clock.advance(Duration::from_secs(3600));
    let second = get_path(&app, "/r").await;
    assert_eq!((second.status, second.text()), (StatusCode::OK, "body"));
    assert!(
        second.cache_status().contains("hit"),
        "{}",
        second.cache_status()
    );
    let age: u64 = second.headers[header::AGE]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        age <= (1 << 31) + 3600,
        "age {age} is clamped to 2^31 s plus time stored"
    );
}

#[tokio::test]
async fn a_host_that_cannot_be_keyed_bypasses_the_cache() {
    // `Host: example.com/private` on `/x` must not be stored as `http://example.com/private/x`.
    let app = Router::new()
        .route(
            "/x",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "public x") }),
        )
        .route(
            "/private/x",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "private x") }),
        )
        .layer(layer(&clock()));
    let with_host = |path: &str, host: &str| {
        Request::get(path)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    let poison = send(&app, with_host("/x", "example.com/private")).await;
    assert_eq!(poison.text(), "public x");
    assert!(
        poison.cache_status().contains("fwd=bypass"),
        "{}",
        poison.cache_status()
    );
    let victim = send(&app, get_req("/private/x", &[("host", "example.com")])).await;
    assert_eq!(victim.text(), "private x");
    // Two Host lines are as ambiguous as one bad one.
    let two = send(&app, get_req("/x", &[("host", "other.test")])).await;
    assert!(two.cache_status().contains("fwd=bypass"));
    for bad in ["a.test?x=1", "user@a.test", "a.test#frag"] {
        let res = send(&app, with_host("/x", bad)).await;
        assert!(res.cache_status().contains("fwd=bypass"), "{bad}");
    }
}

/// A store whose unlock lands late, as a remote store's (or a spawned task's) does.
#[derive(Clone, Default)]
struct LateUnlock(MokaStore);

impl CacheStore for LateUnlock {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, StoreError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        self.0.put(key, entry, ttl).await
    }
    async fn put_held(
        &self,
        key: &CacheKey,
        entry: Entry,
        ttl: Duration,
        holder: &Holder,
    ) -> Result<bool, StoreError> {
        self.0.put_held(key, entry, ttl, holder).await
    }
    async fn invalidate(&self, what: &Invalidation) -> Result<u64, StoreError> {
        self.0.invalidate(what).await
    }
}

impl CacheLock for LateUnlock {
    async fn try_lock(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        self.0.try_lock(key, ttl).await
    }
    async fn unlock(&self, key: &CacheKey, token: &LockToken) -> Result<bool, StoreError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.unlock(key, token).await
    }
}

#[tokio::test]
async fn a_miss_on_a_new_variant_does_not_wait_for_another_variants_lock() {
    // Found by the key-explosion test: misses took the store lock on the base key, so with a
    // `Vary` on a high-cardinality header a request for a new variant found the lock of the
    // previous variant's flight (its release still on the way) and waited for its own entry
    // to appear there until the coalescing timeout ran out.
    let app = Router::new()
        .route(
            "/v",
            get(|headers: HeaderMap| async move {
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::VARY, "x-client"),
                    ],
                    headers["x-client"].to_str().unwrap().to_owned(),
                )
            }),
        )
        .route(
            "/no-store",
            get(|| async { ([(header::CACHE_CONTROL, "no-store")], "fresh") }),
        )
        .layer(
            ResponseCacheLayer::new(LateUnlock::default())
                .coalesce_timeout(Duration::from_secs(3600)),
        );
    let all = async {
        for i in 0..20 {
            let id = format!("client-{i}");
            let res = send(&app, get_req("/v", &[("x-client", &id)])).await;
            assert_eq!(res.text(), id);
            // Same key, nothing stored: the lock is taken again once released.
            assert_eq!(send(&app, get_req("/no-store", &[])).await.text(), "fresh");
        }
    };
    // With the coalescing timeout at an hour, waiting it out is a hang.
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("variant misses do not wait out the coalescing timeout");
}

#[tokio::test]
async fn responses_to_cookie_requests_are_stored_only_when_shareable() {
    let calls = Calls::default();
    let app = |cc: &'static str| counted(calls.clone(), cc).layer(layer(&clock()));
    let cookie: &[(&str, &str)] = &[("cookie", "session=abc")];
    // Not marked shareable: never stored.
    let private_ish = app("max-age=60");
    let first = send(&private_ish, get_req("/r", cookie)).await;
    assert!(
        first.cache_status().contains("detail=cookie"),
        "{}",
        first.cache_status()
    );
    let again = send(&private_ish, get_req("/r", &[])).await;
    assert_ne!(
        again.text(),
        first.text(),
        "the cookie holder's answer was stored"
    );
    // `public` and `s-maxage` say it may be shared.
    for cc in ["public, max-age=60", "s-maxage=60"] {
        let shared = app(cc);
        let first = send(&shared, get_req("/r", cookie)).await;
        let again = send(&shared, get_req("/r", &[])).await;
        assert_eq!(again.text(), first.text(), "{cc}");
        assert!(again.cache_status().contains("hit"), "{cc}");
    }
    // Opting out of the rule.
    let opted =
        counted(calls.clone(), "max-age=60").layer(layer(&clock()).store_cookie_requests(true));
    let first = send(&opted, get_req("/r", cookie)).await;
    assert_eq!(send(&opted, get_req("/r", &[])).await.text(), first.text());
}

/// A read that starts before a write and finishes after the write's invalidation: the old
/// representation it carries reaches its own client only, never the store.
#[tokio::test]
async fn a_response_fetched_across_a_write_is_not_stored() {
    use tokio::sync::Notify;
    let clock = clock();
    let cache = layer(&clock);
    let handle = cache.handle("http://example.com");
    let version = Arc::new(AtomicU64::new(1));
    let read = Arc::new(Notify::new());
    let written = Arc::new(Notify::new());
    let (v, r, w) = (
        Arc::clone(&version),
        Arc::clone(&read),
        Arc::clone(&written),
    );
    let v2 = Arc::clone(&version);
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let (v, r, w) = (Arc::clone(&v), Arc::clone(&r), Arc::clone(&w));
                async move {
                    let seen = v.load(Ordering::SeqCst);
                    if seen == 1 {
                        // The slow read: the write happens while this response is on its way.
                        r.notify_one();
                        w.notified().await;
                    }
                    ([(header::CACHE_CONTROL, "max-age=60")], format!("v{seen}"))
                }
            })
            .put(move || {
                v2.fetch_add(1, Ordering::SeqCst);
                async { "written" }
            }),
        )
        .layer(cache);

    let slow = tokio::spawn({
        let app = app.clone();
        async move { get_path(&app, "/item").await }
    });
    read.notified().await;
    let put = Request::put("/item")
        .header(header::HOST, "example.com")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, put).await.status, StatusCode::OK);
    written.notify_one();
    let old = slow.await.unwrap();
    assert_eq!(old.text(), "v1");
    settle().await;

    let after = get_path(&app, "/item").await;
    assert_eq!(after.text(), "v2", "{}", after.cache_status());
    assert!(after.cache_status().contains("fwd=miss"));
    let again = get_path(&app, "/item").await;
    assert_eq!(again.text(), "v2");
    assert!(again.cache_status().contains("hit"));
    let stats = handle.stats();
    assert_eq!(stats.fenced, 1, "{stats:?}");
}

/// The same for a tag invalidated while a tagged response is fetched, and for a whole-cache
/// invalidation; an invalidation of something else does not stop the store.
#[tokio::test]
async fn tag_and_purge_invalidations_during_a_fetch_keep_it_out() {
    let clock = clock();
    let cache = layer(&clock);
    let handle = cache.handle("http://example.com");
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/{what}",
            get(
                move |cache: CacheHandle,
                      axum::extract::Path(what): axum::extract::Path<String>| {
                    let n = c.bump();
                    async move {
                        match what.as_str() {
                            "tag" if n == 1 => {
                                cache.invalidate_tag("list").await.unwrap();
                            }
                            "purge" => {
                                cache.purge().await.unwrap();
                            }
                            _ => {
                                cache.invalidate_tag("unrelated").await.unwrap();
                                cache.invalidate("/elsewhere").await.unwrap();
                            }
                        }
                        let mut res =
                            ([(header::CACHE_CONTROL, "max-age=60")], format!("call {n}"))
                                .into_response();
                        res.extensions_mut().insert(CacheTags(vec!["list".into()]));
                        res
                    }
                },
            ),
        )
        .layer(cache);

    assert_eq!(get_path(&app, "/tag").await.text(), "call 1");
    assert_eq!(get_path(&app, "/tag").await.text(), "call 2");
    assert_eq!(get_path(&app, "/tag").await.text(), "call 2");
    get_path(&app, "/purge").await;
    assert!(
        !get_path(&app, "/purge")
            .await
            .cache_status()
            .contains("hit")
    );
    get_path(&app, "/other").await;
    assert!(
        get_path(&app, "/other")
            .await
            .cache_status()
            .contains("hit")
    );
    assert_eq!(handle.stats().fenced, 3, "{:?}", handle.stats());
}

#[tokio::test]
async fn an_invalidation_inside_the_put_is_undone_even_when_the_put_reports_failure() {
    for then_fail in [false, true] {
        let (calls, clock) = (Calls::default(), clock());
        // An invalidation of the URL lands inside the put, after the layer's check before it.
        let store = Scripted::new(MokaStore::default());
        store.invalidate_inside_next_put();
        if then_fail {
            store.fail_next_put_after_landing();
        }
        let cache = ResponseCacheLayer::new(store.clone()).clock(clock.clone());
        let handle = cache.handle("http://example.com");
        let app = counted(calls.clone(), "max-age=60").layer(cache);
        assert_eq!(get_path(&app, "/r").await.text(), "call 1");
        let stats = handle.stats();
        assert_eq!(
            (stats.fenced, stats.stored),
            (1, 0),
            "{then_fail}: {stats:?}"
        );
        let again = get_path(&app, "/r").await;
        assert_eq!(
            again.text(),
            "call 2",
            "{then_fail}: {}",
            again.cache_status()
        );
        assert!(get_path(&app, "/r").await.cache_status().contains("hit"));
    }
}

/// An invalidation that overtakes a fill still putting returns only once that fill has checked
/// again and undone its put: from then on nobody, not even for a moment, reads the old entry.
#[tokio::test]
async fn an_invalidation_waits_for_the_fill_it_overtook_to_undo_its_put() {
    let (calls, clock) = (Calls::default(), clock());
    let store = Scripted::new(MokaStore::default());
    store.hold_next_put();
    let cache = ResponseCacheLayer::new(store.clone()).clock(clock.clone());
    let handle = cache.handle("http://example.com");
    let app = counted(calls.clone(), "max-age=60").layer(cache);

    // The fill of the first answer is held inside its put; a body this small is stored before
    // it is answered, so that answer waits too.
    let first = tokio::spawn({
        let app = app.clone();
        async move { get_path(&app, "/r").await }
    });
    store.held().await;
    let invalidation = tokio::spawn({
        let handle = handle.clone();
        async move { handle.invalidate("/r").await }
    });
    tokio::pin!(invalidation);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut invalidation)
            .await
            .is_err(),
        "the invalidation must wait for the fill under way"
    );
    store.release();
    invalidation.await.unwrap().unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.text(), "call 1");
    // Its put was undone: it does not say `stored`.
    assert_eq!(first.cache_status(), "tower-edge; fwd=miss");
    // The put landed after the invalidation's delete, and was undone before it returned.
    let after = get_path(&app, "/r").await;
    assert_eq!(after.text(), "call 2", "{}", after.cache_status());
    assert_eq!(handle.stats().fenced, 1);
}

/// An inner service that counts its clones and calls, answering `max-age=60` with `Vary`.
#[derive(Default)]
struct CountingClones {
    clones: Arc<AtomicUsize>,
    calls: Calls,
}

impl Clone for CountingClones {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            clones: Arc::clone(&self.clones),
            calls: self.calls.clone(),
        }
    }
}

impl tower::Service<Request<Body>> for CountingClones {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let n = self.calls.bump();
        let lang = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .map_or("none", |v| v.to_str().unwrap())
            .to_owned();
        let res = (
            [
                (header::CACHE_CONTROL, "max-age=60"),
                (header::VARY, "accept-language"),
            ],
            format!("{lang} {n}"),
        )
            .into_response();
        std::future::ready(Ok(res))
    }
}

#[tokio::test]
async fn a_fresh_hit_in_memory_is_answered_at_once_without_touching_the_inner_service() {
    use futures_util::FutureExt as _;
    use tower::{Layer as _, Service as _};

    let inner = CountingClones::default();
    let (clones, calls) = (Arc::clone(&inner.clones), inner.calls.clone());
    let mut svc = layer(&clock()).layer(inner);
    let fr = || get_req("/v", &[("accept-language", "fr")]);
    let read = |res: Response<super::CacheBody<Body>>| async move {
        let status = res
            .headers()
            .get("cache-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    };
    // A miss goes through the boxed path, which takes a clone of the inner service.
    let miss = svc.ready().await.unwrap().call(fr()).await.unwrap();
    assert_eq!(read(miss).await.1, "fr 1");
    settle().await;
    let clones_after_miss = clones.load(Ordering::SeqCst);

    // A hit on a `Vary` variant: two lookups, both answered by the store at once.
    let hit = svc
        .ready()
        .await
        .unwrap()
        .call(fr())
        .now_or_never()
        .expect("a fresh hit in memory is ready at once")
        .unwrap();
    let (status, body) = read(hit).await;
    assert_eq!(body, "fr 1");
    assert!(status.unwrap().contains("hit"));
    assert_eq!(clones.load(Ordering::SeqCst), clones_after_miss);
    assert_eq!(calls.get(), 1);

    // A reload, or another variant, is not answered from what is stored: it reaches the
    // service.
    let reload = get_req(
        "/v",
        &[("accept-language", "fr"), ("cache-control", "no-cache")],
    );
    let res = svc.ready().await.unwrap().call(reload).await.unwrap();
    assert_eq!(read(res).await.1, "fr 2");
    let en = get_req("/v", &[("accept-language", "en")]);
    let res = svc.ready().await.unwrap().call(en).await.unwrap();
    assert_eq!(read(res).await.1, "en 3");
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn a_handle_taken_before_later_setters_counts_and_invalidates_with_the_latest_rules() {
    let calls = Calls::default();
    let layer = layer(&clock());
    let early = layer.handle("http://example.com");
    let layer = layer.max_body_size(1024 * 1024).query_deny(["utm_source"]);
    let app = counted(calls.clone(), "max-age=60").layer(layer);
    get_path(&app, "/r").await;
    assert!(get_path(&app, "/r").await.cache_status().contains("hit"));
    assert_eq!(early.stats().hits, 1);
    // The query rule set after the handle was taken applies to its invalidations too.
    assert_eq!(early.invalidate("/r?utm_source=mail").await.unwrap(), 1);
    assert_eq!(get_path(&app, "/r").await.text(), "call 2");
}

fn host_req(host: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, host)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn by_default_keys_and_handles_are_per_origin() {
    let calls = Calls::default();
    let layer = layer(&clock());
    let app = counted(calls.clone(), "max-age=60").layer(layer.clone());
    send(&app, host_req("127.0.0.1:3000", "/r")).await;
    // Another name for the same server is another origin: its own entry, which a handle for
    // the first name does not reach.
    assert_eq!(
        send(&app, host_req("localhost:3000", "/r")).await.text(),
        "call 2"
    );
    let handle = layer.handle("http://localhost:3000");
    assert_eq!(handle.invalidate_prefix("/").await.unwrap(), 1);
    assert!(
        send(&app, host_req("127.0.0.1:3000", "/r"))
            .await
            .cache_status()
            .contains("hit")
    );
}

#[tokio::test]
async fn a_fixed_key_origin_shares_entries_across_host_names_and_every_handle_reaches_them() {
    use super::KeyOrigin;

    let calls = Calls::default();
    let layer = layer(&clock()).key_origin(KeyOrigin::fixed("https://shop.example").unwrap());
    let app = counted(calls.clone(), "max-age=60").layer(layer.clone());
    assert_eq!(
        send(&app, host_req("127.0.0.1:3000", "/r")).await.text(),
        "call 1"
    );
    let other = send(&app, host_req("localhost:3000", "/r")).await;
    assert_eq!(other.text(), "call 1");
    assert!(other.cache_status().contains("hit"));
    // Whatever origin a handle was given, or an absolute URL names, it addresses the fixed one.
    let handle = layer.handle("http://localhost:3000");
    assert_eq!(handle.invalidate_prefix("/r").await.unwrap(), 1);
    send(&app, host_req("localhost:3000", "/r")).await;
    assert_eq!(
        handle.invalidate("http://127.0.0.1:3000/r").await.unwrap(),
        1
    );
    assert_eq!(calls.get(), 2);
    // A host that cannot be keyed still bypasses the cache.
    let bad = send(&app, host_req("a.test/private", "/r")).await;
    assert_eq!(bad.cache_status(), "tower-edge; fwd=bypass");
}

#[tokio::test]
async fn with_no_key_origin_keys_start_at_the_path() {
    use super::KeyOrigin;

    let store = MokaStore::default();
    let layer = ResponseCacheLayer::new(store.clone())
        .clock(clock())
        .key_origin(KeyOrigin::None);
    let app = counted(Calls::default(), "max-age=60").layer(layer.clone());
    send(&app, host_req("a.test", "/r")).await;
    let key = CacheKey::new("GET /r").with_variant("enc", "any");
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "stored under {key}"
    );
    assert!(
        send(&app, host_req("b.test", "/r"))
            .await
            .cache_status()
            .contains("hit")
    );
}

#[tokio::test]
async fn an_unsafe_request_invalidates_its_location_under_a_fixed_key_origin() {
    use super::KeyOrigin;

    let calls = Calls::default();
    let app = counted(calls.clone(), "max-age=60")
        .route(
            "/items",
            post(|| async {
                (
                    StatusCode::CREATED,
                    [(header::LOCATION, "http://localhost:3000/r")],
                )
            }),
        )
        .layer(layer(&clock()).key_origin(KeyOrigin::fixed("https://shop.example").unwrap()));
    send(&app, host_req("localhost:3000", "/r")).await;
    let post_req = Request::post("/items")
        .header(header::HOST, "localhost:3000")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, post_req).await.status, StatusCode::CREATED);
    // The Location names the request's own origin: the entry under the fixed one goes.
    assert_eq!(
        send(&app, host_req("localhost:3000", "/r")).await.text(),
        "call 2"
    );
}

/// `/ok` answers 200, `/missing` a fallback 404, `/stream` a 200 of unknown length; none states
/// freshness. Each counts its calls.
fn without_freshness(calls: Calls) -> Router {
    let (ok, missing, stream) = (calls.clone(), calls.clone(), calls);
    Router::new()
        .route(
            "/ok",
            get(move || {
                ok.bump();
                async { "fine" }
            }),
        )
        .route(
            "/stream",
            get(move || {
                stream.bump();
                async {
                    let chunks = futures_util::stream::iter(["a", "b"].map(|c| {
                        Ok::<_, std::convert::Infallible>(http_body::Frame::data(
                            Bytes::from_static(c.as_bytes()),
                        ))
                    }));
                    Body::new(http_body_util::StreamBody::new(chunks))
                }
            }),
        )
        .fallback(move || {
            missing.bump();
            async { (StatusCode::NOT_FOUND, "no such page") }
        })
}

#[tokio::test]
async fn default_ttl_keeps_successes_of_known_length_but_not_a_404_or_a_stream() {
    let calls = Calls::default();
    let app = without_freshness(calls.clone())
        .layer(layer(&clock()).default_ttl(Duration::from_secs(60)));
    for path in ["/ok", "/missing", "/stream"] {
        send(&app, get_req(path, &[])).await;
    }
    assert!(get_path(&app, "/ok").await.cache_status().contains("hit"));
    let missing = get_path(&app, "/missing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.cache_status().contains("fwd=miss"),
        "{}",
        missing.cache_status()
    );
    let stream = get_path(&app, "/stream").await;
    assert_eq!(stream.text(), "ab");
    assert!(
        stream.cache_status().contains("fwd=miss"),
        "{}",
        stream.cache_status()
    );
    // /ok once, /missing and /stream twice each.
    assert_eq!(calls.get(), 5);
}

#[tokio::test]
async fn store_if_narrows_what_is_stored_even_with_explicit_freshness() {
    let app = Router::new()
        .route(
            "/gone",
            get(|| async {
                (
                    StatusCode::GONE,
                    [(header::CACHE_CONTROL, "max-age=60")],
                    "gone",
                )
            }),
        )
        .route(
            "/ok",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "ok") }),
        )
        .layer(layer(&clock()).store_if(|status, _| status == StatusCode::OK));
    let gone = get_path(&app, "/gone").await;
    assert_eq!(gone.cache_status(), "tower-edge; fwd=miss; detail=filtered");
    assert!(
        get_path(&app, "/gone")
            .await
            .cache_status()
            .contains("fwd=miss")
    );
    get_path(&app, "/ok").await;
    assert!(get_path(&app, "/ok").await.cache_status().contains("hit"));
}

#[tokio::test]
async fn cache_for_caches_one_route_and_keeps_its_limits() {
    use super::cache_for;

    let calls = Calls::default();
    let app = without_freshness(calls.clone())
        .route(
            "/report",
            get(|| async { "expensive" }).layer(cache_for(Duration::from_secs(60))),
        )
        .layer(layer(&clock()));
    get_path(&app, "/report").await;
    let again = get_path(&app, "/report").await;
    assert!(
        again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );
    assert_eq!(again.headers.get(header::CACHE_CONTROL), None);
    // The routes without it are not cached: the layer has no default TTL.
    get_path(&app, "/ok").await;
    assert!(
        get_path(&app, "/ok")
            .await
            .cache_status()
            .contains("fwd=miss")
    );

    // Its limits are default_ttl's: a 404 of the route is not kept.
    let missing = Router::new()
        .route(
            "/item",
            get(|| async { (StatusCode::NOT_FOUND, "no such item") })
                .layer(cache_for(Duration::from_secs(60))),
        )
        .layer(layer(&clock()));
    get_path(&missing, "/item").await;
    assert!(
        get_path(&missing, "/item")
            .await
            .cache_status()
            .contains("fwd=miss")
    );
}

#[tokio::test]
async fn typed_directives_from_a_handler_are_what_the_cache_reads() {
    use crate::http::cache_control::Directives;

    let calls = Calls::default();
    let (public, private) = (calls.clone(), calls.clone());
    let app = Router::new()
        .route(
            "/public",
            get(move || {
                public.bump();
                async {
                    (
                        Directives::public()
                            .max_age(Duration::from_secs(60))
                            .stale_if_error(Duration::from_secs(600)),
                        "shared",
                    )
                }
            }),
        )
        .route(
            "/private",
            get(move || {
                private.bump();
                async {
                    (
                        Directives::private().max_age(Duration::from_secs(60)),
                        "mine",
                    )
                }
            }),
        )
        .layer(layer(&clock()));
    let first = get_path(&app, "/public").await;
    assert_eq!(
        first.headers[header::CACHE_CONTROL],
        "public, max-age=60, stale-if-error=600"
    );
    assert!(
        get_path(&app, "/public")
            .await
            .cache_status()
            .contains("hit")
    );
    get_path(&app, "/private").await;
    let again = get_path(&app, "/private").await;
    assert!(
        again.cache_status().contains("detail=private"),
        "{}",
        again.cache_status()
    );
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn a_second_client_of_a_cacheable_stream_does_not_wait_for_the_first_to_end() {
    use tokio::sync::mpsc;

    type Frames = mpsc::Receiver<Result<http_body::Frame<Bytes>, std::convert::Infallible>>;
    // The first call streams from `first` for as long as the test keeps it open; later calls
    // answer in one piece.
    let (first_tx, first_rx) = mpsc::channel(4);
    let first_rx = Arc::new(std::sync::Mutex::new(Some(first_rx)));
    let calls = Calls::default();
    let clock = clock();
    let app = {
        let calls = calls.clone();
        Router::new()
            .route(
                "/feed",
                get(move || {
                    let n = calls.bump();
                    let rx: Option<Frames> = first_rx.lock().unwrap().take();
                    async move {
                        let body = match rx {
                            Some(rx) => Body::new(http_body_util::StreamBody::new(
                                futures_util::stream::unfold(rx, |mut rx| async move {
                                    rx.recv().await.map(|frame| (frame, rx))
                                }),
                            )),
                            None => Body::from(format!("call {n}")),
                        };
                        ([(header::CACHE_CONTROL, "max-age=60")], body)
                    }
                }),
            )
            .layer(layer(&clock))
    };
    first_tx
        .send(Ok(http_body::Frame::data(Bytes::from_static(b"part 1 "))))
        .await
        .unwrap();
    let bound = Duration::from_secs(10);
    let first = tokio::time::timeout(bound, app.clone().oneshot(get_req("/feed", &[])))
        .await
        .expect("the leader's head")
        .unwrap();
    // The leader's stream is still open. A second client, a second later, must not wait for
    // its end.
    clock.advance(Duration::from_secs(1));
    let second = tokio::time::timeout(bound, send(&app, get_req("/feed", &[])))
        .await
        .expect("a second client is answered while the first stream runs");
    assert_eq!(second.text(), "call 2");
    assert_eq!(calls.get(), 2);
    first_tx
        .send(Ok(http_body::Frame::data(Bytes::from_static(b"part 2"))))
        .await
        .unwrap();
    drop(first_tx);
    let body = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"part 1 part 2");
    settle().await;
    // The second answer was received later: the first stream's copy does not replace it.
    let third = get_path(&app, "/feed").await;
    assert!(
        third.cache_status().contains("hit"),
        "{}",
        third.cache_status()
    );
    assert_eq!(third.text(), "call 2");
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn a_freshness_that_is_not_a_number_is_not_stored_even_with_stale_windows() {
    const CASES: [&[(&str, &str)]; 3] = [
        &[("cache-control", "max-age=abc")],
        &[("cache-control", "public, s-maxage=-5")],
        &[("cache-control", "max-age=\"\"")],
    ];
    for fields in CASES {
        let cc = fields[0].1;
        let calls = Calls::default();
        let app = answering(calls.clone(), StatusCode::OK, fields).layer(
            layer(&clock())
                .stale_while_revalidate(Duration::from_secs(600))
                .stale_if_error(Duration::from_secs(600)),
        );
        let first = get_path(&app, "/r").await;
        assert_eq!(
            first.cache_status(),
            "tower-edge; fwd=miss; detail=invalid-freshness",
            "{cc}"
        );
        assert_eq!(get_path(&app, "/r").await.text(), "call 2", "{cc}");
    }
}

#[tokio::test]
async fn a_key_prefix_keeps_two_applications_on_one_store_apart() {
    let store = MokaStore::default();
    let (calls_a, calls_b) = (Calls::default(), Calls::default());
    let cache_a = ResponseCacheLayer::new(store.clone())
        .clock(clock())
        .key_prefix("a:");
    let cache_b = ResponseCacheLayer::new(store.clone())
        .clock(clock())
        .key_prefix("b:");
    let app_a = counted(calls_a.clone(), "max-age=60").layer(cache_a.clone());
    let app_b = counted(calls_b.clone(), "max-age=60").layer(cache_b.clone());
    assert_eq!(get_path(&app_a, "/r").await.text(), "call 1");
    // Same URL, same store, another prefix: its own entry.
    assert_eq!(get_path(&app_b, "/r").await.text(), "call 1");
    assert!(get_path(&app_a, "/r").await.cache_status().contains("hit"));
    let key = CacheKey::new("GET a:http://example.com/r").with_variant("enc", "any");
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "stored under {key}"
    );
    // Each handle reaches its own application's entries only.
    let handle_a = cache_a.handle("http://example.com");
    assert_eq!(handle_a.invalidate("/r").await.unwrap(), 1);
    assert_eq!(handle_a.invalidate_prefix("/").await.unwrap(), 0);
    assert!(get_path(&app_b, "/r").await.cache_status().contains("hit"));
    assert_eq!(get_path(&app_a, "/r").await.text(), "call 2");
    // An unsafe request invalidates under the prefix too.
    let post_app = counted(calls_a.clone(), "max-age=60")
        .route("/r", post(|| async { StatusCode::NO_CONTENT }))
        .layer(cache_a);
    let post_req = Request::post("/r")
        .header(header::HOST, "example.com")
        .body(Body::empty())
        .unwrap();
    send(&post_app, post_req).await;
    assert_eq!(get_path(&app_a, "/r").await.text(), "call 3");
}
