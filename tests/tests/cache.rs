//! ResponseCacheLayer on a real socket: what hyper does with a body (it may stop polling once
//! Content-Length bytes are out) decides whether a miss gets stored, so these run end to end.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, body::Body, http::header, routing::get};
use bytes::Bytes;
use futures_util::stream;
use http::StatusCode;
use tower_edge::cache::{CacheHandle, MokaStore, ResponseCacheLayer};
use tower_edge_tests::TestServer;

fn counted(calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/sized",
            get({
                let calls = calls.clone();
                move || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { ([(header::CACHE_CONTROL, "max-age=60")], vec![b'a'; 20_000]) }
                }
            }),
        )
        .route(
            "/streamed",
            get(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    let chunks =
                        (0..5).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("chunk {i};"))));
                    (
                        [(header::CACHE_CONTROL, "max-age=60")],
                        Body::from_stream(stream::iter(chunks)),
                    )
                }
            }),
        )
}

async fn until_hit(server: &TestServer, path: &str) -> http::Response<Bytes> {
    // The store write runs when the body has gone out; poll (bounded) until it has landed.
    for _ in 0..200 {
        let res = server.get(path, &[]).await;
        let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
        if status.contains("hit") {
            return res;
        }
        tokio::task::yield_now().await;
    }
    panic!("{path} was never served from the cache");
}

#[tokio::test]
async fn a_miss_with_content_length_is_stored_and_then_hit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(
        counted(calls.clone()).layer(ResponseCacheLayer::new(MokaStore::default())),
    )
    .await;
    let first = server.get("/sized", &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.body().len(), 20_000);
    let hit = until_hit(&server, "/sized").await;
    assert_eq!(hit.body().len(), 20_000);
    assert_eq!(hit.headers()[header::CONTENT_LENGTH], "20000");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_chunked_miss_is_stored_and_then_hit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(
        counted(calls.clone()).layer(ResponseCacheLayer::new(MokaStore::default())),
    )
    .await;
    let first = server.get("/streamed", &[]).await;
    assert_eq!(first.body(), "chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;");
    let hit = until_hit(&server, "/streamed").await;
    assert_eq!(hit.body(), "chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn revalidation_304_and_invalidation_over_the_wire() {
    let cache = ResponseCacheLayer::new(MokaStore::default());
    let app =
        Router::new()
            .route(
                "/v",
                get(|| async {
                    (
                        [
                            (header::CACHE_CONTROL, "max-age=60"),
                            (header::ETAG, "\"v1\""),
                        ],
                        "versioned",
                    )
                }),
            )
            .route(
                "/flush",
                get(|cache: CacheHandle| async move {
                    cache.invalidate("/v").await.unwrap().to_string()
                }),
            )
            .layer(cache);
    let server = TestServer::start(app).await;
    server.get("/v", &[]).await;
    until_hit(&server, "/v").await;
    let not_modified = server.get("/v", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert!(not_modified.body().is_empty());
    assert_eq!(server.get("/flush", &[]).await.body(), "1");
    let after = server.get("/v", &[]).await;
    assert!(
        after.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("fwd=miss")
    );
    server.stop().await;
}
