use std::{convert::Infallible, io::Read};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use tower::{ServiceExt, service_fn};

use super::{Coding, CompressionLayer, MimeAllowList};

type Head = (StatusCode, HeaderMap);

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(data).unwrap(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

/// Sends a GET with `accept` through `layer` around a handler answering `make()`.
async fn call<F>(layer: CompressionLayer, method: Method, accept: &str, make: F) -> (Head, Bytes)
where
    F: Fn() -> Response<Full<Bytes>> + Clone + Send + 'static,
{
    let svc = tower::Layer::layer(
        &layer,
        service_fn(move |_req: Request<()>| {
            let make = make.clone();
            async move { Ok::<_, Infallible>(make()) }
        }),
    );
    let mut req = Request::builder().method(method).uri("/");
    if !accept.is_empty() {
        req = req.header(header::ACCEPT_ENCODING, accept);
    }
    let res = svc.oneshot(req.body(()).unwrap()).await.unwrap();
    let head = (res.status(), res.headers().clone());
    (head, res.into_body().collect().await.unwrap().to_bytes())
}

fn typed(
    content_type: &'static str,
    body: Bytes,
) -> impl Fn() -> Response<Full<Bytes>> + Clone + Send + 'static {
    move || {
        Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body.clone()))
            .unwrap()
    }
}

fn text(len: usize) -> Bytes {
    let words = b"the quick brown fox jumps over the lazy dog; ";
    Bytes::from(
        (0..len)
            .map(|i| words[i % words.len()])
            .collect::<Vec<u8>>(),
    )
}

fn json(len: usize) -> Bytes {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() + 40 < len {
        s.push_str(&format!("{{\"id\":{i},\"name\":\"item {i}\"}},"));
        i += 1;
    }
    s.push_str("{}]");
    Bytes::from(s)
}

const CODINGS: [&str; 4] = ["gzip", "deflate", "br", "zstd"];

#[tokio::test]
async fn every_codec_round_trips_through_an_independent_decoder() {
    let min = 1024;
    let bodies: Vec<(&str, &'static str, Bytes)> = vec![
        ("text", "text/plain; charset=utf-8", text(20_000)),
        ("json", "application/json", json(10_240)),
        ("empty", "text/plain", Bytes::new()),
        ("one byte", "text/plain", Bytes::from_static(b"x")),
        ("exactly min", "text/html", text(min)),
        ("8 MiB", "text/plain", text(8 * 1024 * 1024)),
    ];
    for coding in CODINGS {
        for (name, content_type, body) in &bodies {
            // Small bodies only compress with no minimum.
            let layer = if body.len() < min {
                CompressionLayer::new().min_size(0)
            } else {
                CompressionLayer::new()
            };
            let ((status, headers), compressed) = call(
                layer,
                Method::GET,
                coding,
                typed(content_type, body.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers[header::CONTENT_ENCODING], coding, "{coding} {name}");
            assert!(
                !headers.contains_key(header::CONTENT_LENGTH),
                "{coding} {name}"
            );
            assert_eq!(
                decode(coding, &compressed),
                body.as_ref(),
                "{coding} {name}"
            );
            if body.len() > 4096 {
                assert!(
                    compressed.len() < body.len() / 3,
                    "{coding} {name}: {} bytes",
                    compressed.len()
                );
            }
        }
    }
}

#[tokio::test]
async fn a_stream_of_unknown_length_round_trips_and_is_flushed_per_frame() {
    for coding in CODINGS {
        let chunks: Vec<Bytes> = (0..128).map(|i| text(64 * 1024 + i)).collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let svc = tower::Layer::layer(
            &CompressionLayer::new(),
            service_fn(move |_req: Request<()>| {
                let frames = chunks
                    .clone()
                    .into_iter()
                    .map(|c| Ok::<_, Infallible>(http_body::Frame::data(c)));
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header(header::CONTENT_TYPE, "text/plain")
                            .body(StreamBody::new(stream::iter(frames)))
                            .unwrap(),
                    )
                }
            }),
        );
        let req = Request::get("/")
            .header(header::ACCEPT_ENCODING, coding)
            .body(())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()[header::CONTENT_ENCODING], coding);
        let mut body = res.into_body();
        let mut compressed = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            frames += 1;
            // Each frame is a flushed, decodable prefix of the stream.
            compressed.extend_from_slice(&data);
        }
        assert!(
            frames >= 64,
            "{coding}: {frames} frames for 128 input frames"
        );
        assert_eq!(decode(coding, &compressed), expected, "{coding}");
    }
}

#[tokio::test]
async fn negotiates_by_q_value_and_server_preference() {
    let body = typed("application/json", json(4096));
    let pick = |accept: &'static str| {
        let body = body.clone();
        async move {
            let ((_, h), _) = call(CompressionLayer::new(), Method::GET, accept, body).await;
            h.get(header::CONTENT_ENCODING)
                .map(|v| v.to_str().unwrap().to_owned())
        }
    };
    assert_eq!(pick("gzip, deflate, br, zstd").await.as_deref(), Some("br"));
    assert_eq!(pick("gzip;q=1, br;q=0.5").await.as_deref(), Some("gzip"));
    assert_eq!(pick("identity").await, None);
    assert_eq!(pick("").await, None);
    let ((_, h), _) = call(
        CompressionLayer::new().prefer(&[Coding::Gzip, Coding::Br]),
        Method::GET,
        "br, gzip",
        body.clone(),
    )
    .await;
    assert_eq!(h[header::CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn answers_406_only_when_asked_to() {
    let body = typed("application/json", json(4096));
    let ((status, h), raw) = call(
        CompressionLayer::new(),
        Method::GET,
        "identity;q=0, compress",
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!h.contains_key(header::CONTENT_ENCODING));
    assert_eq!(raw.len(), json(4096).len());
    let ((status, h), reason) = call(
        CompressionLayer::new().reject_unacceptable(true),
        Method::GET,
        "identity;q=0, compress",
        body,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(h[header::VARY], "accept-encoding");
    assert!(
        std::str::from_utf8(&reason)
            .unwrap()
            .contains("offered: br, zstd, gzip, deflate")
    );
}

fn with_headers(
    status: StatusCode,
    content_type: &'static str,
    extra: &'static [(&'static str, &'static str)],
    body: Bytes,
) -> impl Fn() -> Response<Full<Bytes>> + Clone + Send + 'static {
    move || {
        let mut res = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type);
        for (n, v) in extra {
            res = res.header(*n, *v);
        }
        res.body(Full::new(body.clone())).unwrap()
    }
}

type Case = (
    &'static str,
    Method,
    StatusCode,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[tokio::test]
async fn leaves_alone_what_it_must_not_touch() {
    let big = json(8192);
    let cases: Vec<Case> = vec![
        (
            "HEAD",
            Method::HEAD,
            StatusCode::OK,
            "application/json",
            &[],
        ),
        (
            "204",
            Method::GET,
            StatusCode::NO_CONTENT,
            "application/json",
            &[],
        ),
        (
            "206",
            Method::GET,
            StatusCode::PARTIAL_CONTENT,
            "application/json",
            &[("content-range", "bytes 0-8191/20000")],
        ),
        (
            "Content-Range on a 200",
            Method::GET,
            StatusCode::OK,
            "application/json",
            &[("content-range", "bytes 0-1/2")],
        ),
        (
            "already encoded",
            Method::GET,
            StatusCode::OK,
            "application/json",
            &[("content-encoding", "gzip")],
        ),
        (
            "no-transform",
            Method::GET,
            StatusCode::OK,
            "application/json",
            &[("cache-control", "public, no-transform")],
        ),
        ("image", Method::GET, StatusCode::OK, "image/png", &[]),
        ("video", Method::GET, StatusCode::OK, "video/mp4", &[]),
        (
            "archive",
            Method::GET,
            StatusCode::OK,
            "application/zip",
            &[],
        ),
        ("woff2", Method::GET, StatusCode::OK, "font/woff2", &[]),
        (
            "upgrade",
            Method::GET,
            StatusCode::SWITCHING_PROTOCOLS,
            "text/plain",
            &[("upgrade", "websocket")],
        ),
        (
            "CONNECT",
            Method::CONNECT,
            StatusCode::OK,
            "text/plain",
            &[],
        ),
        ("no content type", Method::GET, StatusCode::OK, "", &[]),
    ];
    for (name, method, status, content_type, extra) in cases {
        let make = move || {
            let mut res = Response::builder().status(status);
            if !content_type.is_empty() {
                res = res.header(header::CONTENT_TYPE, content_type);
            }
            for (n, v) in extra {
                res = res.header(*n, *v);
            }
            res.body(Full::new(json(8192))).unwrap()
        };
        let ((got, h), body) = call(CompressionLayer::new(), method, "gzip, br", make).await;
        assert_eq!(got, status, "{name}");
        let encoding = h.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap());
        assert!(
            encoding.is_none() || encoding == Some("gzip") && name == "already encoded",
            "{name}: {encoding:?}"
        );
        assert!(!h.contains_key(header::VARY), "{name}");
        assert_eq!(body.len(), big.len(), "{name}");
    }
    // Under the minimum size: sent as it is, no Vary (the choice did not depend on the request).
    let ((_, h), body) = call(
        CompressionLayer::new(),
        Method::GET,
        "gzip",
        typed("text/plain", text(1023)),
    )
    .await;
    assert!(!h.contains_key(header::CONTENT_ENCODING));
    assert!(!h.contains_key(header::VARY));
    assert_eq!(body.len(), 1023);
}

#[tokio::test]
async fn weakens_strong_etags_and_keeps_weak_ones() {
    let strong = with_headers(
        StatusCode::OK,
        "application/json",
        &[("etag", "\"v1\"")],
        json(4096),
    );
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "gzip", strong.clone()).await;
    assert_eq!(h[header::ETAG], "W/\"v1\"");
    // Uncompressed (the client asked for none): the tag stays strong.
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "identity", strong).await;
    assert_eq!(h[header::ETAG], "\"v1\"");
    let weak = with_headers(
        StatusCode::OK,
        "application/json",
        &[("etag", "W/\"v2\"")],
        json(4096),
    );
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "br", weak).await;
    assert_eq!(h[header::ETAG], "W/\"v2\"");
}

#[tokio::test]
async fn weakens_the_etag_of_a_304_to_a_compressing_request() {
    let not_modified = with_headers(
        StatusCode::NOT_MODIFIED,
        "application/json",
        &[("etag", "\"v1\"")],
        Bytes::new(),
    );
    let ((status, h), _) = call(
        CompressionLayer::new(),
        Method::GET,
        "gzip",
        not_modified.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(h[header::ETAG], "W/\"v1\"");
    assert_eq!(h[header::VARY], "accept-encoding");
    // An identity request keeps the strong tag, but its 304 still says Vary, as the identity
    // 200 of a compressible type does (RFC 9110 §15.4.5): a downstream cache must not take
    // it for the representation of every encoding.
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "", not_modified).await;
    assert_eq!(h[header::ETAG], "\"v1\"");
    assert_eq!(h[header::VARY], "accept-encoding");
    // Without a tag, the 304 still varies as its 200 did.
    let untagged = with_headers(
        StatusCode::NOT_MODIFIED,
        "application/json",
        &[],
        Bytes::new(),
    );
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "br", untagged).await;
    assert_eq!(h[header::VARY], "accept-encoding");
}

#[tokio::test]
async fn merges_vary_and_adds_it_when_the_request_decided() {
    let varying = with_headers(
        StatusCode::OK,
        "text/html",
        &[("vary", "Accept-Language")],
        text(4096),
    );
    let ((_, h), _) = call(
        CompressionLayer::new(),
        Method::GET,
        "gzip",
        varying.clone(),
    )
    .await;
    let vary: Vec<_> = h
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(vary, ["Accept-Language", "accept-encoding"]);
    let already = with_headers(
        StatusCode::OK,
        "text/html",
        &[("vary", "accept-language, Accept-Encoding")],
        text(4096),
    );
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "gzip", already).await;
    assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    // Not compressed because this client accepts no coding: still varies on the header.
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "identity", varying).await;
    assert!(!h.contains_key(header::CONTENT_ENCODING));
    let vary: Vec<_> = h
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(vary, ["Accept-Language", "accept-encoding"]);
    // Compressed responses lose Accept-Ranges and Content-Length.
    let ranged = with_headers(
        StatusCode::OK,
        "text/plain",
        &[("accept-ranges", "bytes")],
        text(4096),
    );
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "zstd", ranged).await;
    assert!(!h.contains_key(header::ACCEPT_RANGES));
    assert!(!h.contains_key(header::CONTENT_LENGTH));
}

#[tokio::test]
async fn the_predicate_can_be_extended_or_replaced() {
    let yaml = typed("application/x-yaml", text(4096));
    let ((_, h), _) = call(CompressionLayer::new(), Method::GET, "gzip", yaml.clone()).await;
    assert!(!h.contains_key(header::CONTENT_ENCODING));
    let extended =
        CompressionLayer::new().compress_when(MimeAllowList::new().with("application/x-yaml"));
    let svc_layer = extended.clone();
    let svc = tower::Layer::layer(
        &svc_layer,
        service_fn(move |_r: Request<()>| {
            let y = yaml.clone();
            async move { Ok::<_, Infallible>(y()) }
        }),
    );
    let res = svc
        .oneshot(
            Request::get("/")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
    use super::Predicate;
    let only_big_json = MimeAllowList::empty()
        .with("application/json")
        .and(|parts: &http::response::Parts| parts.status == StatusCode::OK);
    let layer = CompressionLayer::new().compress_when(only_big_json);
    let svc = tower::Layer::layer(
        &layer,
        service_fn(|_r: Request<()>| async {
            Ok::<_, Infallible>(typed("text/html", text(4096))())
        }),
    );
    let res = svc
        .oneshot(
            Request::get("/")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(!res.headers().contains_key(header::CONTENT_ENCODING));
}

#[tokio::test]
async fn an_unknown_length_body_under_the_minimum_is_sent_whole_with_its_length() {
    let svc = tower::Layer::layer(
        &CompressionLayer::new(),
        service_fn(|_r: Request<()>| async {
            let frames = vec![
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"small "))),
                Ok(http_body::Frame::data(Bytes::from_static(b"reply"))),
            ];
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(StreamBody::new(stream::iter(frames)))
                    .unwrap(),
            )
        }),
    );
    let res = svc
        .oneshot(
            Request::get("/")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(!res.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "11");
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "small reply"
    );
}

#[tokio::test]
async fn trailers_pass_through_after_the_compressed_stream() {
    let svc = tower::Layer::layer(
        &CompressionLayer::new(),
        service_fn(|_r: Request<()>| async {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-checksum", "abc".parse().unwrap());
            let frames = vec![
                Ok::<_, Infallible>(http_body::Frame::data(text(4096))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(StreamBody::new(stream::iter(frames)))
                    .unwrap(),
            )
        }),
    );
    let res = svc
        .oneshot(
            Request::get("/")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "abc");
    assert_eq!(decode("gzip", &collected.to_bytes()), text(4096));
}

#[tokio::test]
async fn a_body_error_reaches_the_client() {
    let svc = tower::Layer::layer(
        &CompressionLayer::new(),
        service_fn(|_r: Request<()>| async {
            let frames = vec![
                Ok(http_body::Frame::data(text(4096))),
                Err(std::io::Error::other("disk gone")),
            ];
            Ok::<_, Infallible>(
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain")
                    .header(header::CONTENT_LENGTH, "8192")
                    .body(StreamBody::new(stream::iter(frames)))
                    .unwrap(),
            )
        }),
    );
    let req = Request::get("/")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let error = res.into_body().collect().await.unwrap_err();
    assert_eq!(error.to_string(), "disk gone");
}

#[tokio::test]
async fn informational_responses_pass_untouched() {
    let early_hints = with_headers(
        StatusCode::from_u16(103).unwrap(),
        "text/html",
        &[("link", "</a.css>; rel=preload")],
        text(2048),
    );
    let ((status, h), body) = call(CompressionLayer::new(), Method::GET, "gzip", early_hints).await;
    assert_eq!(status.as_u16(), 103);
    assert!(!h.contains_key(header::CONTENT_ENCODING) && !h.contains_key(header::VARY));
    assert_eq!(body.len(), 2048);
}

#[tokio::test]
async fn a_page_sent_in_small_pieces_goes_out_compressed_as_each_piece_comes() {
    use tokio::sync::mpsc;

    type Frames = mpsc::Receiver<Result<http_body::Frame<Bytes>, Infallible>>;
    let (tx, rx) = mpsc::channel(4);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let svc = tower::Layer::layer(
        &CompressionLayer::new(),
        service_fn(move |_req: Request<()>| {
            let rx: Frames = rx.lock().unwrap().take().expect("one request");
            async move {
                let frames = stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|frame| (frame, rx))
                });
                Ok::<_, Infallible>(
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/html")
                        .body(StreamBody::new(frames))
                        .unwrap(),
                )
            }
        }),
    );
    let piece = |i: usize| Bytes::from(format!("<p>{i:0>52}</p>\n"));
    tx.send(Ok(http_body::Frame::data(piece(0)))).await.unwrap();
    let req = Request::get("/")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(())
        .unwrap();
    // 60 bytes, far under the minimum, and the handler has sent nothing more: the head must
    // not wait for more (a bound, not a pause: the answer is due at once).
    let bound = std::time::Duration::from_secs(10);
    let res = tokio::time::timeout(bound, svc.oneshot(req))
        .await
        .expect("the head goes out while the handler is still producing")
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
    let mut body = Box::pin(res.into_body());
    let mut compressed = Vec::new();
    // Each piece is flushed: what has come out so far decodes to what was sent so far.
    for i in 0..3 {
        let frame = tokio::time::timeout(bound, body.frame())
            .await
            .expect("the piece sent is flushed to the client")
            .unwrap()
            .unwrap();
        compressed.extend_from_slice(&frame.into_data().unwrap());
        let mut out = Vec::new();
        let mut decoder = flate2::write::GzDecoder::new(&mut out);
        std::io::Write::write_all(&mut decoder, &compressed).unwrap();
        std::io::Write::flush(&mut decoder).unwrap();
        drop(decoder);
        let sent: Vec<u8> = (0..=i).flat_map(|j| piece(j).to_vec()).collect();
        assert_eq!(out, sent, "after piece {i}");
        if i < 2 {
            tx.send(Ok(http_body::Frame::data(piece(i + 1))))
                .await
                .unwrap();
        }
    }
    drop(tx);
    while let Some(frame) = body.frame().await {
        compressed.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    let whole: Vec<u8> = (0..3).flat_map(|j| piece(j).to_vec()).collect();
    assert_eq!(decode("gzip", &compressed), whole);
}
