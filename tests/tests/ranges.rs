//! Byte ranges (RFC 9110 §14) through RangeLayer and ServeDir on a real socket.

use axum::{Router, routing::get};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use tower_edge::{ETagLayer, RangeLayer, fs::ServeDir};
use tower_edge_tests::TestServer;

fn content() -> Bytes {
    (0..5000u32).map(|i| (i * 31 % 256) as u8).collect()
}

/// The parts of a multipart/byteranges body, read with only the RFC 2046 framing rules.
fn parts(headers: &HeaderMap, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let ct = headers[header::CONTENT_TYPE].to_str().unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let delimiter = format!("\r\n--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        assert!(rest.starts_with(delimiter.as_bytes()), "a delimiter");
        rest = &rest[delimiter.len()..];
        if rest == b"--\r\n" {
            return out;
        }
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[2..end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_owned();
        rest = &rest[end + 4..];
        let next = rest
            .windows(delimiter.len())
            .position(|w| w == delimiter.as_bytes())
            .unwrap();
        out.push((range, rest[..next].to_vec()));
        rest = &rest[next..];
    }
}

fn app() -> Router {
    Router::new()
        .route("/blob", get(|| async { content() }))
        .layer(ETagLayer::new())
        .layer(RangeLayer::new())
}

#[tokio::test]
async fn range_layer_serves_single_multiple_and_unsatisfiable_ranges() {
    let server = TestServer::start(app()).await;
    let source = content();

    let res = server.get("/blob", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ACCEPT_RANGES], "bytes");

    let res = server.get("/blob", &[("range", "bytes=100-199")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 100-199/5000");
    assert_eq!(res.body().as_ref(), &source[100..200]);

    let res = server
        .get("/blob", &[("range", "bytes=4990-,0-9,5-19,1000-1000")])
        .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let got = parts(res.headers(), res.body());
    // Overlapping ranges merged, the parts in the order the request named them (RFC 9110
    // §15.3.7.2).
    let want = [(4990, 4999), (0, 19), (1000, 1000)];
    assert_eq!(got.len(), want.len());
    for ((range, bytes), (first, last)) in got.iter().zip(want) {
        assert_eq!(range, &format!("bytes {first}-{last}/5000"));
        assert_eq!(bytes.as_slice(), &source[first..=last]);
    }

    let res = server.get("/blob", &[("range", "bytes=5000-")]).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes */5000");

    let res = server.get("/blob", &[("range", "lines=1-2")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body().len(), 5000);
    server.stop().await;
}

#[tokio::test]
async fn range_layer_checks_if_range_against_the_computed_etag() {
    let server = TestServer::start(app()).await;
    let etag = server.get("/blob", &[]).await.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    let res = server
        .get("/blob", &[("range", "bytes=0-9"), ("if-range", &etag)])
        .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let res = server
        .get("/blob", &[("range", "bytes=0-9"), ("if-range", "\"old\"")])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body().len(), 5000);
    // Preconditions come before the range (RFC 9110 §13.2.2).
    let res = server
        .get("/blob", &[("range", "bytes=0-9"), ("if-none-match", &etag)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    server.stop().await;
}

#[tokio::test]
async fn serve_dir_ranges_on_a_socket_match_range_layer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blob.bin"), content()).unwrap();
    let files = TestServer::start(Router::new().fallback_service(ServeDir::new(dir.path()))).await;
    let layer = TestServer::start(app()).await;
    for spec in [
        "bytes=0-0",
        "bytes=-1",
        "bytes=4000-",
        "bytes=0-4999",
        "bytes=10-20,30-40",
        "bytes=0-,0-",
        "bytes=9000-",
        "bytes=x",
    ] {
        let a = files.get("/blob.bin", &[("range", spec)]).await;
        let b = layer.get("/blob", &[("range", spec)]).await;
        assert_eq!(a.status(), b.status(), "{spec}");
        if a.headers().contains_key(header::CONTENT_RANGE) {
            assert_eq!(
                a.headers()[header::CONTENT_RANGE],
                b.headers()[header::CONTENT_RANGE],
                "{spec}"
            );
        }
        if a.status() == StatusCode::PARTIAL_CONTENT
            && !a.headers().contains_key(header::CONTENT_RANGE)
        {
            let pa = parts(a.headers(), a.body());
            let pb = parts(b.headers(), b.body());
            assert_eq!(pa, pb, "{spec}");
        } else if a.status() != StatusCode::RANGE_NOT_SATISFIABLE {
            assert_eq!(a.body(), b.body(), "{spec}");
        }
    }
    files.stop().await;
    layer.stop().await;
}
