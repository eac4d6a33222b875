//! ETagLayer against the bare handler on bodies of 1 KiB to 1 MiB.
//!
//! ```text
//! cargo bench -p tower-edge-benches --bench etag
//! ```
//!
//! Each iteration sends one GET through the service and reads the whole response body, so the
//! figures include routing, the layer's buffering and hashing, and body collection.

use std::hint::black_box;

use axum::{Router, body::Body, http::header, routing::get};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_edge::{ETagLayer, etag::Algorithm};
use tower_edge_benches::json_body;

const SIZES: [(usize, &str); 4] = [
    (1024, "1KiB"),
    (10 * 1024, "10KiB"),
    (100 * 1024, "100KiB"),
    (1024 * 1024, "1MiB"),
];

fn router(len: usize) -> Router {
    let body = json_body(len);
    Router::new().route(
        "/data",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    )
}

async fn roundtrip(app: Router, if_none_match: Option<&str>) -> usize {
    let mut req = Request::get("/data");
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let res = app
        .oneshot(req.body(Body::empty()).expect("valid request"))
        .await
        .expect("infallible router");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn etag(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("etag");
    for (len, label) in SIZES {
        group.throughput(Throughput::Bytes(len as u64));
        // Each state set once, as `axum::serve` sets it.
        let bare = router(len).with_state(());
        // json_body(len) is at most len bytes, so even the 1 MiB body is within the default bound.
        let layered = router(len).layer(ETagLayer::new()).with_state(());
        let xxh3 = router(len)
            .layer(ETagLayer::new().algorithm(Algorithm::Xxh3_128))
            .with_state(());
        let tag = rt.block_on(async {
            let req = Request::get("/data")
                .body(Body::empty())
                .expect("valid request");
            let res = layered
                .clone()
                .oneshot(req)
                .await
                .expect("infallible router");
            res.headers()[header::ETAG]
                .to_str()
                .expect("ASCII")
                .to_owned()
        });
        group.bench_with_input(BenchmarkId::new("bare", label), &len, |b, _| {
            b.to_async(&rt)
                .iter(|| async { black_box(roundtrip(bare.clone(), None).await) });
        });
        group.bench_with_input(BenchmarkId::new("etag-200", label), &len, |b, _| {
            b.to_async(&rt)
                .iter(|| async { black_box(roundtrip(layered.clone(), None).await) });
        });
        group.bench_with_input(BenchmarkId::new("etag-xxh3-200", label), &len, |b, _| {
            b.to_async(&rt)
                .iter(|| async { black_box(roundtrip(xxh3.clone(), None).await) });
        });
        group.bench_with_input(BenchmarkId::new("etag-304", label), &len, |b, _| {
            b.to_async(&rt)
                .iter(|| async { black_box(roundtrip(layered.clone(), Some(&tag)).await) });
        });
    }
    group.finish();
}

criterion_group!(benches, etag);
criterion_main!(benches);
