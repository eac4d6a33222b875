//! The example server on a real socket: every route the home page documents answers as it says,
//! the way `curl` would see it.

use std::time::{Duration, UNIX_EPOCH};

use http::{StatusCode, header};
use tower_edge::clock::ManualClock;

mod common;
use common::get;
use tower_edge_example_server::{AppState, ROUTES, app_with_state};

#[tokio::test]
async fn every_documented_route_answers_on_a_real_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app_with_state(AppState::new().with_purge_token("t"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The home page links every route, and each answers 200.
    let (status, _, home) = get(addr, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let home = String::from_utf8(home.to_vec()).unwrap();
    for (path, _) in ROUTES {
        assert!(
            home.contains(&format!("href=\"{path}\"")),
            "{path} is not on the home page"
        );
        let (status, headers, body) = get(addr, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path}");
        assert!(
            headers.contains_key("cache-status"),
            "{path}: every answer says what the cache did"
        );
    }

    // What the page promises of the catalogue: compressed, cached, revalidated.
    let (_, headers, _) = get(addr, "/api/products", &[("accept-encoding", "br")]).await;
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, _) = get(
        addr,
        "/api/products",
        &[("accept-encoding", "br"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // The download resumes.
    let (status, headers, body) =
        get(addr, "/download/sample.bin", &[("range", "bytes=0-99")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body.len(), 100);
    assert!(
        headers[header::CONTENT_RANGE]
            .to_str()
            .unwrap()
            .starts_with("bytes 0-99/")
    );
    server.abort();
}

/// Serves `app` on a free loopback port until the returned task is aborted.
async fn serve(app: axum::Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, server)
}

/// `computed_at` of a `/api/low-stock` body.
fn computed_at(body: &[u8]) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    value["computed_at"].as_u64().unwrap()
}

fn cache_status(headers: &http::HeaderMap) -> &str {
    headers["cache-status"].to_str().unwrap()
}

/// RFC 5861 §3 on `/api/low-stock` (`max-age=10, stale-while-revalidate=60`): fresh, it is a
/// hit; stale within the window, the stale copy comes at once while one background request
/// recomputes it, and the next request gets the new one; past the window, the request waits.
#[tokio::test]
async fn low_stock_is_served_stale_while_one_request_revalidates_it() {
    let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = ManualClock::new(start);
    let (addr, server) = serve(app_with_state(AppState::new().with_clock(clock.clone()))).await;
    let t0 = 1_800_000_000;

    let (status, headers, body) = get(addr, "/api/low-stock", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=10, stale-while-revalidate=60"
    );
    assert_eq!(cache_status(&headers), "tower-edge; fwd=miss; stored");
    assert_eq!(computed_at(&body), t0);
    let first_etag = headers[header::ETAG].clone();

    clock.advance(Duration::from_secs(5));
    let (_, headers, body) = get(addr, "/api/low-stock", &[]).await;
    assert_eq!(cache_status(&headers), "tower-edge; hit; ttl=5");
    assert_eq!(computed_at(&body), t0);

    // 15 s old: stale by 5 s, within the 60 s window. The stale copy, at once.
    clock.advance(Duration::from_secs(10));
    let (status, headers, body) = get(addr, "/api/low-stock", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cache_status(&headers),
        "tower-edge; hit; ttl=-5; detail=stale-while-revalidate"
    );
    assert_eq!(computed_at(&body), t0);
    assert_eq!(headers[header::AGE], "15");
    assert_eq!(headers[header::ETAG], first_etag);

    // Meanwhile one background request recomputed it: the cache stores it (it counts one more
    // stored response), and then serves the new copy as a fresh hit.
    let mut stored = 0;
    for _ in 0..1000 {
        let (_, _, stats) = get(addr, "/cache/stats", &[]).await;
        let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
        stored = stats["stored"].as_u64().unwrap();
        if stored == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        stored, 2,
        "the background refresh never stored its response"
    );
    let (_, headers, body) = get(addr, "/api/low-stock", &[]).await;
    assert_eq!(cache_status(&headers), "tower-edge; hit; ttl=10");
    assert_eq!(computed_at(&body), t0 + 15);
    assert_ne!(headers[header::ETAG], first_etag);

    // Past max-age + stale-while-revalidate (10 + 60 s): the stale copy may no longer be
    // served; this request goes to the handler and waits for it.
    clock.advance(Duration::from_secs(71));
    let (status, headers, body) = get(addr, "/api/low-stock", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let forwarded = cache_status(&headers);
    assert!(forwarded.contains("fwd="), "{forwarded}");
    assert!(!forwarded.contains("stale-while-revalidate"), "{forwarded}");
    assert_eq!(computed_at(&body), t0 + 15 + 71);
    server.abort();
}

/// Behind nginx: `/download/…` answers with `X-Accel-Redirect` and no bytes, after checking the
/// path; nginx sends the file (and does its ranges and validators), so nothing of the edge
/// stack touches this answer.
#[tokio::test]
async fn downloads_are_offloaded_with_x_accel_redirect() {
    let state = AppState::new().with_x_accel_redirect("/internal/downloads/");
    let (addr, server) = serve(app_with_state(state)).await;

    let (status, headers, body) =
        get(addr, "/download/sample.bin", &[("range", "bytes=0-99")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-accel-redirect"],
        "/internal/downloads/sample.bin"
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    assert!(body.is_empty());
    // Outside the stack: no ETag of the empty body, no cache entry, no compression.
    assert!(!headers.contains_key(header::ETAG), "{headers:?}");
    assert!(!headers.contains_key("cache-status"), "{headers:?}");
    assert!(!headers.contains_key(header::CONTENT_RANGE), "{headers:?}");

    // The path is checked as when serving: nothing outside the directory, nothing missing.
    let (status, headers, _) = get(addr, "/download/../Cargo.toml", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!headers.contains_key("x-accel-redirect"));
    let (status, _, _) = get(addr, "/download/missing.bin", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The rest of the application is still behind the stack.
    let (_, headers, _) = get(addr, "/api/products", &[]).await;
    assert!(headers.contains_key("cache-status"));
    server.abort();
}
