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

/// Chunks whose memory is counted while alive: `live` is what exists anywhere (in the layer,
/// in flight, in the test) at a given moment.
struct Counted {
    len: usize,
    live: Arc<std::sync::atomic::AtomicI64>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        // A static zero page of the right length: the bytes' content does not matter here.
        &ZEROS[..self.len]
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(self.len as i64, Ordering::SeqCst);
    }
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

#[tokio::test]
async fn a_64_mib_stream_passes_through_uncached_with_bounded_memory() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const TOTAL: usize = 64 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    const BOUND: u64 = 1024 * 1024;
    let live = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let producer_live = live.clone();
    let app = Router::new()
        .route(
            "/huge",
            get(move || {
                let live = producer_live.clone();
                async move {
                    let chunks = (0..TOTAL / CHUNK).map(move |_| {
                        live.fetch_add(CHUNK as i64, Ordering::SeqCst);
                        Ok::<_, std::io::Error>(Bytes::from_owner(Counted {
                            len: CHUNK,
                            live: live.clone(),
                        }))
                    });
                    (
                        [(header::CACHE_CONTROL, "max-age=60")],
                        Body::from_stream(stream::iter(chunks)),
                    )
                }
            }),
        )
        .layer(ResponseCacheLayer::new(MokaStore::default()).max_body_size(BOUND));
    let req = http::Request::get("/huge")
        .header(header::HOST, "t")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    // Unknown length: the cache does not claim `stored` before it knows the body fits.
    assert_eq!(res.headers()["cache-status"], "tower-edge; fwd=miss");
    let mut body = res.into_body();
    let (mut received, mut peak) = (0usize, 0i64);
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        received += data.len();
        peak = peak.max(live.load(Ordering::SeqCst));
        drop(data);
    }
    assert_eq!(received, TOTAL);
    // Copies stop at the bound: never more than the bound plus a chunk or two alive at once.
    assert!(
        peak <= (BOUND as i64) + 2 * CHUNK as i64,
        "peak {peak} bytes alive"
    );
    assert_eq!(live.load(Ordering::SeqCst), 0, "every chunk was freed");
    // And nothing was stored: the next request is a miss again.
    let req = http::Request::get("/huge")
        .header(header::HOST, "t")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert!(
        res.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("fwd=miss")
    );
}
