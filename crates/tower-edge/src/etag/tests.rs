use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use tower::{ServiceExt, service_fn};

use super::{Algorithm, ETagLayer};
use crate::http::date::format_http_date;

const BODY: &str = "{\"id\":1,\"name\":\"anvil\",\"price\":1999}";

fn expected_tag(body: &[u8]) -> String {
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(Sha256::digest(body)))
}

fn request(method: Method, headers: &[(header::HeaderName, &str)]) -> Request<()> {
    let mut req = Request::builder().method(method).uri("/");
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.body(()).unwrap()
}

/// Calls an ETagLayer around a handler that returns `make()`.
async fn call<B, F>(layer: ETagLayer, req: Request<()>, make: F) -> Response<super::ETagBody<B>>
where
    B: Body + Send + 'static,
    B::Data: bytes::Buf,
    F: Fn() -> Response<B> + Clone + Send + 'static,
{
    let svc = tower::Layer::layer(
        &layer,
        service_fn(move |_req: Request<()>| {
            let make = make.clone();
            async move { Ok::<_, Infallible>(make()) }
        }),
    );
    svc.oneshot(req).await.unwrap()
}

fn ok_json() -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "max-age=60")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap()
}

async fn body_bytes<B>(res: Response<B>) -> Bytes
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    res.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn computes_strong_sha256_etag_for_get() {
    let res = call(ETagLayer::new(), request(Method::GET, &[]), ok_json).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ETAG], expected_tag(BODY.as_bytes()));
    assert_eq!(body_bytes(res).await, BODY);
}

#[tokio::test]
async fn computes_xxh3_etag_when_asked_and_revalidates_with_it() {
    let layer = ETagLayer::new().algorithm(Algorithm::Xxh3_128);
    let res = call(layer.clone(), request(Method::GET, &[]), ok_json).await;
    let hash = xxhash_rust::xxh3::xxh3_128(BODY.as_bytes()).to_be_bytes();
    let expected = format!("\"{}\"", URL_SAFE_NO_PAD.encode(hash));
    assert_eq!(res.headers()[header::ETAG], expected.as_str());
    let req = request(Method::GET, &[(header::IF_NONE_MATCH, &expected)]);
    let res = call(layer.clone(), req, ok_json).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // The SHA-256 tag of the same body is a different validator.
    let req = request(
        Method::GET,
        &[(header::IF_NONE_MATCH, &expected_tag(BODY.as_bytes()))],
    );
    let res = call(layer, req, ok_json).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn computes_weak_etag_when_asked() {
    let res = call(
        ETagLayer::new().weak(true),
        request(Method::GET, &[]),
        ok_json,
    )
    .await;
    let expected = format!("W/{}", expected_tag(BODY.as_bytes()));
    assert_eq!(res.headers()[header::ETAG], expected.as_str());
}

#[tokio::test]
async fn weak_etag_never_satisfies_if_match() {
    let tag = format!("W/{}", expected_tag(BODY.as_bytes()));
    let req = request(Method::GET, &[(header::IF_MATCH, &tag)]);
    let res = call(ETagLayer::new().weak(true), req, ok_json).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn empty_body_gets_the_empty_hash() {
    let res = call(ETagLayer::new(), request(Method::GET, &[]), || {
        Response::new(Full::new(Bytes::new()))
    })
    .await;
    assert_eq!(res.headers()[header::ETAG], expected_tag(b""));
}

#[tokio::test]
async fn keeps_handler_etag_strong_or_weak() {
    for tag in ["\"mine\"", "W/\"mine\""] {
        let res = call(ETagLayer::new(), request(Method::GET, &[]), move || {
            let mut res = ok_json();
            res.headers_mut()
                .insert(header::ETAG, HeaderValue::from_static(tag));
            res
        })
        .await;
        assert_eq!(res.headers()[header::ETAG], tag);
    }
}

#[tokio::test]
async fn returns_304_when_if_none_match_matches() {
    let tag = expected_tag(BODY.as_bytes());
    let weak = format!("W/{tag}");
    for sent in [tag.as_str(), weak.as_str(), "\"other\", W/\"x\", *"] {
        let req = request(Method::GET, &[(header::IF_NONE_MATCH, sent)]);
        let res = call(ETagLayer::new(), req, ok_json).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{sent}");
        assert_eq!(res.headers()[header::ETAG], tag.as_str());
        assert_eq!(res.headers()[header::CACHE_CONTROL], "max-age=60");
        assert!(res.headers().get(header::CONTENT_TYPE).is_none());
        assert!(body_bytes(res).await.is_empty());
    }
}

#[tokio::test]
async fn handler_etag_answers_304_without_hashing() {
    let req = request(Method::GET, &[(header::IF_NONE_MATCH, "\"v3\"")]);
    let res = call(ETagLayer::new(), req, || {
        let mut res = Response::new(Full::new(Bytes::from_static(b"x")));
        res.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("W/\"v3\""));
        res
    })
    .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn returns_200_when_if_none_match_differs() {
    let req = request(Method::GET, &[(header::IF_NONE_MATCH, "\"stale\"")]);
    let res = call(ETagLayer::new(), req, ok_json).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, BODY);
}

#[tokio::test]
async fn returns_412_when_if_match_is_stale() {
    let req = request(Method::GET, &[(header::IF_MATCH, "\"stale\"")]);
    let res = call(ETagLayer::new(), req, ok_json).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        res.headers()[header::ETAG],
        expected_tag(BODY.as_bytes()).as_str()
    );
    let body = body_bytes(res).await;
    assert!(body.starts_with(b"precondition failed"));
}

#[tokio::test]
async fn proceeds_when_if_match_matches() {
    let tag = expected_tag(BODY.as_bytes());
    let req = request(Method::GET, &[(header::IF_MATCH, &tag)]);
    let res = call(ETagLayer::new(), req, ok_json).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn garbage_conditionals_never_give_500() {
    for (name, value) in [
        (header::IF_NONE_MATCH, "no quotes"),
        (header::IF_NONE_MATCH, "\"unterminated"),
        (header::IF_MODIFIED_SINCE, "yesterday"),
        (header::IF_UNMODIFIED_SINCE, "0"),
    ] {
        let req = request(Method::GET, &[(name.clone(), value)]);
        let res = call(ETagLayer::new(), req, ok_json).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}: {value}");
    }
    let req = request(Method::GET, &[(header::IF_MATCH, "garbage")]);
    let res = call(ETagLayer::new(), req, ok_json).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn head_gets_the_same_etag_as_get() {
    let get = call(ETagLayer::new(), request(Method::GET, &[]), ok_json).await;
    let head = call(ETagLayer::new(), request(Method::HEAD, &[]), ok_json).await;
    assert_eq!(get.headers()[header::ETAG], head.headers()[header::ETAG]);
}

#[tokio::test]
async fn head_without_body_but_with_length_gets_no_etag() {
    let res = call(ETagLayer::new(), request(Method::HEAD, &[]), || {
        Response::builder()
            .header(header::CONTENT_LENGTH, "1234")
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    assert!(res.headers().get(header::ETAG).is_none());
}

#[tokio::test]
async fn leaves_other_methods_alone() {
    let tag = expected_tag(BODY.as_bytes());
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let req = request(method.clone(), &[(header::IF_NONE_MATCH, &tag)]);
        let res = call(ETagLayer::new(), req, ok_json).await;
        assert_eq!(res.status(), StatusCode::OK, "{method}");
        assert!(res.headers().get(header::ETAG).is_none(), "{method}");
    }
}

#[tokio::test]
async fn ignores_preconditions_on_non_2xx() {
    let req = request(Method::GET, &[(header::IF_NONE_MATCH, "*")]);
    let res = call(ETagLayer::new(), req, || {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"nope")))
            .unwrap()
    })
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.headers().get(header::ETAG).is_none());
}

#[tokio::test]
async fn does_not_hash_partial_content() {
    let res = call(ETagLayer::new(), request(Method::GET, &[]), || {
        Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, "bytes 0-0/10")
            .body(Full::new(Bytes::from_static(b"a")))
            .unwrap()
    })
    .await;
    assert!(res.headers().get(header::ETAG).is_none());
}

#[tokio::test]
async fn streams_bodies_of_unknown_length_untouched() {
    let res = call(ETagLayer::new(), request(Method::GET, &[]), || {
        Response::new(Chunks { left: 4 })
    })
    .await;
    assert!(res.headers().get(header::ETAG).is_none());
    assert_eq!(body_bytes(res).await.len(), 4 * CHUNK);
}

#[tokio::test]
async fn bodies_over_the_bound_stream_through_without_etag() {
    let big = Bytes::from(vec![b'x'; 2048]);
    let res = call(
        ETagLayer::new().max_body_size(1024),
        request(Method::GET, &[]),
        move || Response::new(Full::new(big.clone())),
    )
    .await;
    assert!(res.headers().get(header::ETAG).is_none());
    assert_eq!(body_bytes(res).await.len(), 2048);
}

#[tokio::test]
async fn bodies_at_the_bound_are_hashed() {
    let body = Bytes::from(vec![b'x'; 1024]);
    let expected = expected_tag(&body);
    let res = call(
        ETagLayer::new().max_body_size(1024),
        request(Method::GET, &[]),
        move || Response::new(Full::new(body.clone())),
    )
    .await;
    assert_eq!(res.headers()[header::ETAG], expected.as_str());
}

/// A body whose size hint claims less than it yields.
struct Liar {
    left: usize,
}

impl Body for Liar {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'l'; 100])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(10)
    }
}

#[tokio::test]
async fn understated_length_is_sent_whole_without_etag() {
    let res = call(
        ETagLayer::new().max_body_size(250),
        request(Method::GET, &[]),
        || Response::new(Liar { left: 10 }),
    )
    .await;
    assert!(res.headers().get(header::ETAG).is_none());
    assert_eq!(body_bytes(res).await.len(), 1000);
}

#[tokio::test]
async fn keeps_trailers_of_hashed_bodies() {
    let res = call(ETagLayer::new(), request(Method::GET, &[]), || {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        let body = Full::new(Bytes::from_static(b"data"))
            .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
        Response::new(body)
    })
    .await;
    assert_eq!(res.headers()[header::ETAG], expected_tag(b"data").as_str());
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "data");
}

/// A body that yields one chunk, then fails.
struct Failing {
    sent: bool,
}

impl Body for Failing {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        if self.sent {
            return Poll::Ready(Some(Err("disk on fire")));
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(100)
    }
}

#[tokio::test]
async fn body_error_while_hashing_reaches_the_client_body() {
    let res = call(ETagLayer::new(), request(Method::GET, &[]), || {
        Response::new(Failing { sent: false })
    })
    .await;
    assert!(res.headers().get(header::ETAG).is_none());
    let err = res.into_body().collect().await.unwrap_err();
    assert_eq!(err, "disk on fire");
}

#[tokio::test]
async fn evaluates_if_modified_since_against_handler_last_modified() {
    let lm = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let make = move || {
        let mut res = ok_json();
        res.headers_mut().insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&format_http_date(lm)).unwrap(),
        );
        res
    };
    let req = request(
        Method::GET,
        &[(header::IF_MODIFIED_SINCE, &format_http_date(lm))],
    );
    let res = call(ETagLayer::new(), req, make).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert!(res.headers().contains_key(header::LAST_MODIFIED));
    // If-None-Match present and not matching: If-Modified-Since is ignored.
    let req = request(
        Method::GET,
        &[
            (header::IF_MODIFIED_SINCE, &format_http_date(lm)),
            (header::IF_NONE_MATCH, "\"old\""),
        ],
    );
    let res = call(ETagLayer::new(), req, make).await;
    assert_eq!(res.status(), StatusCode::OK);
}

const CHUNK: usize = 1000;

/// A body of fixed chunks and unknown length, as a stream would have.
struct Chunks {
    left: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b's'; CHUNK])))))
    }
}

#[tokio::test]
async fn a_handlers_unquoted_or_repeated_etag_is_replaced_by_the_layers_own() {
    let with = |tags: &'static [&'static str]| {
        move || {
            let mut res = ok_json();
            for tag in tags {
                res.headers_mut()
                    .append(header::ETAG, HeaderValue::from_static(tag));
            }
            res
        }
    };
    for tags in [&["v42"][..], &["\"a\"", "\"b\""][..]] {
        let res = call(ETagLayer::new(), request(Method::GET, &[]), with(tags)).await;
        let sent: Vec<_> = res.headers().get_all(header::ETAG).iter().collect();
        assert_eq!(sent, [expected_tag(BODY.as_bytes()).as_str()], "{tags:?}");
        // And it validates like any tag of the layer's.
        let etag = expected_tag(BODY.as_bytes());
        let req = request(Method::GET, &[(header::IF_NONE_MATCH, etag.as_str())]);
        let res = call(ETagLayer::new(), req, with(tags)).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{tags:?}");
    }
    // A valid tag of the handler's own is kept.
    let res = call(
        ETagLayer::new(),
        request(Method::GET, &[]),
        with(&["W/\"v42\""]),
    )
    .await;
    assert_eq!(res.headers()[header::ETAG], "W/\"v42\"");
}

/// Whether `layer` remembers a digest for exactly this memory.
fn remembers(layer: &ETagLayer, body: &Bytes, algorithm: Algorithm) -> bool {
    layer
        .config
        .digests
        .as_ref()
        .is_some_and(|digests| digests.get(body, algorithm).is_some())
}

fn ok_with(body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .unwrap()
}

#[tokio::test]
async fn a_body_the_application_keeps_is_hashed_once_and_tagged_the_same_after() {
    let layer = ETagLayer::new();
    let kept = Bytes::from(BODY.repeat(50));
    let tag = expected_tag(&kept);
    for _ in 0..3 {
        let body = kept.clone();
        let res = call(layer.clone(), request(Method::GET, &[]), move || {
            ok_with(body.clone())
        })
        .await;
        assert_eq!(res.headers()[header::ETAG], tag.as_str());
        assert_eq!(body_bytes(res).await, kept);
        assert!(remembers(&layer, &kept, Algorithm::Sha256));
    }
    // A revalidation of the remembered body is answered 304 from the remembered tag.
    let body = kept.clone();
    let res = call(
        layer.clone(),
        request(Method::GET, &[(header::IF_NONE_MATCH, tag.as_str())]),
        move || ok_with(body.clone()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()[header::ETAG], tag.as_str());
}

#[tokio::test]
async fn a_body_rendered_for_one_response_is_never_remembered() {
    let layer = ETagLayer::new();
    let res = call(layer.clone(), request(Method::GET, &[]), || {
        ok_with(Bytes::from(BODY.as_bytes().to_vec()))
    })
    .await;
    assert_eq!(
        res.headers()[header::ETAG],
        expected_tag(BODY.as_bytes()).as_str()
    );
    let digests = layer.config.digests.as_ref().unwrap();
    assert_eq!(digests.remembered(), 0);
}

#[tokio::test]
async fn a_kept_body_replaced_by_a_new_version_gets_the_new_versions_tag() {
    // An application swapping the document it keeps: each version is its own memory, so each
    // gets its own hash, and the old version's digest answers nothing about the new one.
    let layer = ETagLayer::new();
    let current = std::sync::Arc::new(std::sync::Mutex::new(Bytes::from_static(b"version one")));
    for version in [&b"version one"[..], b"version two", b"version one"] {
        *current.lock().unwrap() = Bytes::copy_from_slice(version);
        let kept = current.lock().unwrap().clone();
        let shared = std::sync::Arc::clone(&current);
        let res = call(layer.clone(), request(Method::GET, &[]), move || {
            ok_with(shared.lock().unwrap().clone())
        })
        .await;
        assert_eq!(res.headers()[header::ETAG], expected_tag(version).as_str());
        assert!(remembers(&layer, &kept, Algorithm::Sha256));
    }
}

#[tokio::test]
async fn layers_sharing_remembered_digests_keep_their_algorithms_apart() {
    let sha = ETagLayer::new();
    let xxh3 = sha.clone().algorithm(Algorithm::Xxh3_128);
    let body = Bytes::from_static(BODY.as_bytes());
    let xxh3_tag = format!(
        "\"{}\"",
        URL_SAFE_NO_PAD.encode(xxhash_rust::xxh3::xxh3_128(BODY.as_bytes()).to_be_bytes())
    );
    for _ in 0..2 {
        for (layer, tag) in [
            (&sha, expected_tag(BODY.as_bytes())),
            (&xxh3, xxh3_tag.clone()),
        ] {
            let body = body.clone();
            let res = call(layer.clone(), request(Method::GET, &[]), move || {
                ok_with(body.clone())
            })
            .await;
            assert_eq!(res.headers()[header::ETAG], tag.as_str());
        }
    }
    // One memory has one slot: the last algorithm to hash it is the one remembered, and the
    // other hashes again, rather than take the wrong digest.
    assert!(remembers(&xxh3, &body, Algorithm::Xxh3_128));
    assert!(!remembers(&sha, &body, Algorithm::Sha256));
}

#[tokio::test]
async fn remembering_can_be_turned_off() {
    let layer = ETagLayer::new().remember_shared_bodies(false);
    let body = Bytes::from_static(BODY.as_bytes());
    let res = call(layer.clone(), request(Method::GET, &[]), move || {
        ok_with(body.clone())
    })
    .await;
    assert_eq!(
        res.headers()[header::ETAG],
        expected_tag(BODY.as_bytes()).as_str()
    );
    assert!(layer.config.digests.is_none());
}

/// A body of two shared chunks, its length known.
struct TwoChunks(Vec<Bytes>);

impl Body for TwoChunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready((!self.0.is_empty()).then(|| Ok(Frame::data(self.0.remove(0)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

#[tokio::test]
async fn a_body_in_several_chunks_is_hashed_every_time_and_not_remembered() {
    let layer = ETagLayer::new();
    let chunks = vec![
        Bytes::from_static(b"{\"half\":"),
        Bytes::from_static(b"\"one\"}"),
    ];
    let whole = chunks.concat();
    for _ in 0..2 {
        let chunks = chunks.clone();
        let res = call(layer.clone(), request(Method::GET, &[]), move || {
            Response::new(TwoChunks(chunks.clone()))
        })
        .await;
        assert_eq!(res.headers()[header::ETAG], expected_tag(&whole).as_str());
        assert_eq!(body_bytes(res).await, whole);
    }
    assert_eq!(layer.config.digests.as_ref().unwrap().remembered(), 0);
}
