//! CompressionLayer against tower-http's and against calling each encoder directly, on a
//! 10 KiB JSON body and 1 MiB of text, at the same levels (gzip 5, br 4, zstd 3).
//!
//! ```text
//! cargo bench -p tower-edge-benches --bench compression
//! ```
//!
//! `direct` is the codec crate alone (flate2, brotli, zstd) compressing the same bytes into a
//! `Vec`: the floor any layer pays. The layers' figures also include routing and collecting the
//! body, which `bare` (no compression) shows.

use std::{hint::black_box, io::Write};

use axum::{Router, body::Body, http::header};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_edge_benches::{
    body_10k,
    compression::{
        BR_LEVEL, GZIP_LEVEL, ZSTD_LEVEL, edge_br, edge_gzip, edge_zstd, http_br, http_gzip,
        http_zstd, text_1m,
    },
};

fn direct(coding: &str, data: &[u8]) -> usize {
    match coding {
        "gzip" => {
            let mut e =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
            e.write_all(data).expect("in memory");
            e.finish().expect("in memory").len()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, BR_LEVEL, 22);
                e.write_all(data).expect("in memory");
            }
            out.len()
        }
        "zstd" => zstd::bulk::compress(data, ZSTD_LEVEL as i32)
            .expect("in memory")
            .len(),
        other => panic!("{other}"),
    }
}

async fn roundtrip(app: Router, path: &str, coding: &str) -> usize {
    let req = Request::get(path)
        .header(header::ACCEPT_ENCODING, coding)
        .body(Body::empty())
        .expect("valid request");
    let res = app.oneshot(req).await.expect("infallible router");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn compression(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    type Apps = (&'static str, fn() -> Router, fn() -> Router);
    let codecs: [Apps; 3] = [
        ("gzip", edge_gzip, http_gzip),
        ("br", edge_br, http_br),
        ("zstd", edge_zstd, http_zstd),
    ];
    for (label, path, body) in [
        ("10KiB-json", "/json", body_10k()),
        ("1MiB-text", "/text", text_1m()),
    ] {
        let mut group = c.benchmark_group(format!("compression-{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        for (coding, edge, http) in codecs {
            // Each state set once, as `axum::serve` sets it.
            let (edge, http) = (edge().with_state(()), http().with_state(()));
            group.bench_function(BenchmarkId::new("direct", coding), |b| {
                b.iter(|| black_box(direct(coding, &body)));
            });
            group.bench_function(BenchmarkId::new("tower-edge", coding), |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(roundtrip(edge.clone(), path, coding).await) });
            });
            group.bench_function(BenchmarkId::new("tower-http", coding), |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(roundtrip(http.clone(), path, coding).await) });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, compression);
criterion_main!(benches);
