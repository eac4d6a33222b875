//! Cache-key explosion on a real socket: 100,000 distinct query strings and 20,000 values of a
//! header named in `Vary`, through the full preset on a store bounded to 4 MiB. The store stays
//! within its bound, its indexes shrink with it, the process does not grow with the number of
//! keys, and a hot entry requested all along stays a hit. (Its own test binary, so the memory
//! reading is not shared with other tests.)

use std::time::Instant;

use axum::{Router, http::header, routing::get};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tower_edge::{cache::MokaStore, stack::EdgeStack};
use tower_edge_tests::TestServer;

const BOUND: u64 = 4 * 1024 * 1024;
const QUERIES: usize = 100_000;
const VARIANTS: usize = 20_000;
const WORKERS: usize = 8;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Sends `count` requests from `make(i)` on one keep-alive connection; returns how many of the
/// hot requests (every 50th) were cache hits.
async fn worker(
    addr: std::net::SocketAddr,
    range: std::ops::Range<usize>,
    make: fn(usize) -> Request<Full<Bytes>>,
) -> (usize, usize) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (mut hot, mut hot_hits) = (0, 0);
    for i in range {
        let is_hot = i % 50 == 0;
        let req = if is_hot {
            Request::get("/hot")
                .header(header::HOST, "bench.test")
                .body(Full::new(Bytes::new()))
                .unwrap()
        } else {
            make(i)
        };
        sender.ready().await.unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        let status = res
            .headers()
            .get("cache-status")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        if is_hot {
            hot += 1;
            assert_eq!(&body[..], b"hot entry");
            if status.starts_with("tower-edge; hit") {
                hot_hits += 1;
            }
        } else {
            assert!(body.starts_with(b"cold "), "{body:?}");
        }
    }
    (hot, hot_hits)
}

async fn run(
    addr: std::net::SocketAddr,
    total: usize,
    make: fn(usize) -> Request<Full<Bytes>>,
) -> (usize, usize) {
    let per = total / WORKERS;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(addr, w * per..(w + 1) * per, make)))
        .collect();
    let (mut hot, mut hits) = (0, 0);
    for task in tasks {
        let (h, x) = task.await.unwrap();
        hot += h;
        hits += x;
    }
    (hot, hits)
}

fn by_query(i: usize) -> Request<Full<Bytes>> {
    Request::get(format!("/cold?id={i}&pad={}", "p".repeat(i % 64)))
        .header(header::HOST, "bench.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn by_header(i: usize) -> Request<Full<Bytes>> {
    Request::get("/per-client")
        .header(header::HOST, "bench.test")
        .header("x-client-id", format!("client-{i}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_keys_stay_within_the_bound_and_hot_entries_survive() {
    let store = MokaStore::builder().max_bytes(BOUND).build();
    let app = Router::new()
        .route(
            "/hot",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=600")], "hot entry") }),
        )
        .route(
            "/cold",
            get(|uri: http::Uri| async move {
                (
                    [(header::CACHE_CONTROL, "max-age=600")],
                    format!("cold {}", uri.query().unwrap_or_default()),
                )
            }),
        )
        .route(
            "/per-client",
            get(|headers: http::HeaderMap| async move {
                let id = headers["x-client-id"].to_str().unwrap().to_owned();
                (
                    [
                        (header::CACHE_CONTROL, "max-age=600"),
                        (header::VARY, "X-Client-Id"),
                    ],
                    format!("cold {id}"),
                )
            }),
        )
        .layer(EdgeStack::new(store.clone()));
    let server = TestServer::start(app).await;
    let addr = server.addr();

    // Warm up: the server, the allocator, the hot entry.
    run(addr, 2_000, by_query).await;
    let rss_before = rss_bytes();
    let started = Instant::now();

    let (hot, hits) = run(addr, QUERIES, by_query).await;
    assert!(
        hits * 100 >= hot * 95,
        "the hot entry was a hit {hits} times in {hot}"
    );
    assert!(
        store.weighted_size() <= BOUND,
        "{} > {BOUND}",
        store.weighted_size()
    );
    let after_queries = store.entry_count();

    let queries_took = started.elapsed();
    let (hot, hits) = run(addr, VARIANTS, by_header).await;
    assert!(
        hits * 100 >= hot * 95,
        "hot hits {hits} of {hot} during the Vary run"
    );
    assert!(
        store.weighted_size() <= BOUND,
        "{} > {BOUND}",
        store.weighted_size()
    );

    // The hot entry is still there at the end.
    let res = server
        .send(
            Request::get("/hot")
                .header(header::HOST, "bench.test")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    let status = res.headers()["cache-status"].to_str().unwrap();
    assert!(status.starts_with("tower-edge; hit"), "{status}");

    // Entries are far fewer than the keys asked for, and the tag/prefix index never holds more
    // keys than the store.
    let entries = store.entry_count();
    let (indexed, _) = store.index_len();
    assert!(
        after_queries < QUERIES as u64 / 2,
        "{after_queries} entries kept"
    );
    assert!(
        indexed as u64 <= entries + 64,
        "index {indexed} for {entries} entries"
    );

    // Unbounded, 120,000 entries of several hundred bytes each would add well over 64 MiB.
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(
        grown < 48 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown / (1024 * 1024)
    );
    eprintln!(
        "{QUERIES} queries in {queries_took:?}, {} requests in all in {:?}; store {} KiB in {entries} entries; rss +{} MiB",
        QUERIES + VARIANTS,
        started.elapsed(),
        store.weighted_size() / 1024,
        grown / (1024 * 1024)
    );
    server.stop().await;
}
