use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tower::{ServiceExt, service_fn};

use super::{RangeBody, RangeLayer};
use crate::{clock::ManualClock, http::date::format_http_date};

const T0: u64 = 1_700_000_000;

/// Deterministic, position-dependent bytes, so a misplaced slice can never compare equal.
fn content(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0 + 3600))
}

fn last_modified() -> String {
    format_http_date(UNIX_EPOCH + Duration::from_secs(T0))
}

fn ok(body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::ETAG, "\"v1\"")
        .header(header::LAST_MODIFIED, last_modified())
        .header(header::CONTENT_LENGTH, body.len())
        .body(Full::new(body))
        .unwrap()
}

async fn call<B, F>(layer: RangeLayer, req: Request<()>, make: F) -> Response<RangeBody<B>>
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

fn request(method: Method, headers: &[(header::HeaderName, &str)]) -> Request<()> {
    let mut req = Request::builder().method(method).uri("/file");
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.body(()).unwrap()
}

async fn body_bytes<B>(res: Response<B>) -> (http::response::Parts, Bytes)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = res.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

/// A small multipart/byteranges reader written for these tests from RFC 9110 §14.6 and RFC 2046
/// §5.1, independent of the crate's writer: returns each part's headers and bytes.
fn parse_multipart(content_type: &HeaderValue, body: &[u8]) -> Vec<(HeaderMap, Vec<u8>)> {
    let ct = content_type.to_str().unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {ct}"));
    let delimiter = format!("\r\n--{boundary}");
    let d = delimiter.as_bytes();
    let find = |from: usize| {
        body[from..]
            .windows(d.len())
            .position(|w| w == d)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = find(0).expect("a first delimiter");
    // Nothing but an empty preamble is expected before it.
    assert_eq!(at, 0, "unexpected preamble");
    loop {
        at += d.len();
        if body[at..].starts_with(b"--") {
            assert_eq!(
                &body[at..],
                b"--\r\n",
                "the closing delimiter ends the body"
            );
            return parts;
        }
        assert!(
            body[at..].starts_with(b"\r\n"),
            "a line break follows the delimiter"
        );
        at += 2;
        let header_end = body[at..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block")
            + at;
        let mut headers = HeaderMap::new();
        for line in body[at..header_end].split(|&b| b == b'\n') {
            let line = std::str::from_utf8(line).unwrap().trim_end_matches('\r');
            let (name, value) = line.split_once(':').expect("a header line");
            headers.append(
                header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
        let data_start = header_end + 4;
        let next = find(data_start).expect("a delimiter after each part");
        parts.push((headers, body[data_start..next].to_vec()));
        at = next;
    }
}

#[derive(Clone, Copy, Debug)]
enum Want {
    Full,
    Ranges(&'static [(u64, u64)]),
    Unsatisfiable,
}

struct Case {
    name: &'static str,
    len: usize,
    method: Method,
    range: Option<&'static str>,
    if_range: Option<&'static str>,
    want: Want,
}

fn case(name: &'static str, len: usize, range: &'static str, want: Want) -> Case {
    Case {
        name,
        len,
        method: Method::GET,
        range: Some(range),
        if_range: None,
        want,
    }
}

fn cases() -> Vec<Case> {
    use Want::{Full, Ranges, Unsatisfiable};
    let lm: &'static str = Box::leak(last_modified().into_boxed_str());
    let lm_later: &'static str =
        Box::leak(format_http_date(UNIX_EPOCH + Duration::from_secs(T0 + 1)).into_boxed_str());
    let many: &'static str = Box::leak(
        format!(
            "bytes={}",
            (0..17)
                .map(|i| format!("{}-{}", i * 10, i * 10))
                .collect::<Vec<_>>()
                .join(",")
        )
        .into_boxed_str(),
    );
    let sixteen: &'static str = Box::leak(
        format!(
            "bytes={}",
            (0..16)
                .map(|i| format!("{}-{}", i * 10, i * 10))
                .collect::<Vec<_>>()
                .join(",")
        )
        .into_boxed_str(),
    );
    let sixteen_ranges: &'static [(u64, u64)] = Box::leak(
        (0..16)
            .map(|i| (i * 10, i * 10))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let mut v = vec![
        // Single ranges.
        case("first byte", 1000, "bytes=0-0", Ranges(&[(0, 0)])),
        case("first 500", 1000, "bytes=0-499", Ranges(&[(0, 499)])),
        case("middle", 1000, "bytes=200-299", Ranges(&[(200, 299)])),
        case(
            "last byte by position",
            1000,
            "bytes=999-999",
            Ranges(&[(999, 999)]),
        ),
        case(
            "whole by positions",
            1000,
            "bytes=0-999",
            Ranges(&[(0, 999)]),
        ),
        case(
            "single-byte representation",
            1,
            "bytes=0-0",
            Ranges(&[(0, 0)]),
        ),
        // Open-ended.
        case(
            "open-ended from middle",
            1000,
            "bytes=500-",
            Ranges(&[(500, 999)]),
        ),
        case(
            "open-ended from zero",
            1000,
            "bytes=0-",
            Ranges(&[(0, 999)]),
        ),
        case(
            "open-ended last byte",
            1000,
            "bytes=999-",
            Ranges(&[(999, 999)]),
        ),
        // Suffix.
        case("suffix 1", 1000, "bytes=-1", Ranges(&[(999, 999)])),
        case("suffix 100", 1000, "bytes=-100", Ranges(&[(900, 999)])),
        case("suffix whole", 1000, "bytes=-1000", Ranges(&[(0, 999)])),
        case(
            "suffix longer than body",
            1000,
            "bytes=-5000",
            Ranges(&[(0, 999)]),
        ),
        // Out of bounds.
        case(
            "last-pos clamped",
            1000,
            "bytes=900-5000",
            Ranges(&[(900, 999)]),
        ),
        case("first-pos at end", 1000, "bytes=1000-", Unsatisfiable),
        case("first-pos past end", 1000, "bytes=1500-1600", Unsatisfiable),
        case("zero suffix", 1000, "bytes=-0", Unsatisfiable),
        case(
            "all ranges past end",
            1000,
            "bytes=1000-1001,2000-",
            Unsatisfiable,
        ),
        case(
            "huge first-pos",
            1000,
            "bytes=18446744073709551616-",
            Unsatisfiable,
        ),
        case(
            "one past end, one inside",
            1000,
            "bytes=2000-2100,10-19",
            Ranges(&[(10, 19)]),
        ),
        // Multiple.
        case(
            "two ranges",
            1000,
            "bytes=0-9,20-29",
            Ranges(&[(0, 9), (20, 29)]),
        ),
        case(
            "three ranges",
            1000,
            "bytes=0-0,500-509,-5",
            Ranges(&[(0, 0), (500, 509), (995, 999)]),
        ),
        case(
            "in the request's order (RFC 9110 §15.3.7.2)",
            1000,
            "bytes=500-509,0-9",
            Ranges(&[(500, 509), (0, 9)]),
        ),
        case(
            "with whitespace",
            1000,
            "bytes= 0-9 ,\t20-29",
            Ranges(&[(0, 9), (20, 29)]),
        ),
        case(
            "suffix and prefix",
            1000,
            "bytes=0-99,-100",
            Ranges(&[(0, 99), (900, 999)]),
        ),
        case("sixteen ranges", 1000, sixteen, Ranges(sixteen_ranges)),
        // Overlapping and adjacent: coalesced.
        case(
            "overlapping pair",
            1000,
            "bytes=0-99,50-149",
            Ranges(&[(0, 149)]),
        ),
        case(
            "adjacent pair",
            1000,
            "bytes=0-99,100-199",
            Ranges(&[(0, 199)]),
        ),
        case(
            "contained",
            1000,
            "bytes=10-20,0-5,12-14",
            Ranges(&[(10, 20), (0, 5)]),
        ),
        case(
            "coalesce to two",
            1000,
            "bytes=0-9,5-14,100-109,110-119",
            Ranges(&[(0, 14), (100, 119)]),
        ),
        // Abuse limits: answered with the whole representation.
        case("seventeen ranges", 1000, many, Full),
        case("same bytes twice", 1000, "bytes=0-,0-", Full),
        case(
            "overlap exceeding length",
            1000,
            "bytes=0-599,400-999",
            Full,
        ),
        // Zero-length representation.
        case("empty body, open range", 0, "bytes=0-", Full),
        case("empty body, suffix", 0, "bytes=-10", Full),
        // Garbage: ignored.
        case("unknown unit", 1000, "items=0-9", Full),
        case("no equals", 1000, "bytes 0-9", Full),
        case("empty set", 1000, "bytes=", Full),
        case("reversed", 1000, "bytes=9-0", Full),
        case("letters", 1000, "bytes=a-z", Full),
        case("negative", 1000, "bytes=--5", Full),
        case("garbage in list", 1000, "bytes=0-9,junk", Full),
        case("double dash spec", 1000, "bytes=1-2-3", Full),
        case("non-ascii", 1000, "bytes=0-9\u{e9}", Full),
    ];
    // If-Range.
    let mut if_range = |name, value: &'static str, want| {
        v.push(Case {
            name,
            len: 1000,
            method: Method::GET,
            range: Some("bytes=0-9"),
            if_range: Some(value),
            want,
        });
    };
    if_range("if-range strong etag matches", "\"v1\"", Ranges(&[(0, 9)]));
    if_range("if-range etag differs", "\"v2\"", Full);
    if_range("if-range weak etag", "W/\"v1\"", Full);
    if_range("if-range exact date", lm, Ranges(&[(0, 9)]));
    if_range("if-range later date", lm_later, Full);
    if_range("if-range garbage", "yesterday", Full);
    // HEAD and other methods never get a range.
    for (name, method) in [
        ("head ignores range", Method::HEAD),
        ("post ignores range", Method::POST),
    ] {
        v.push(Case {
            name,
            len: 1000,
            method,
            range: Some("bytes=0-9"),
            if_range: None,
            want: Full,
        });
    }
    v.push(Case {
        name: "no range header",
        len: 1000,
        method: Method::GET,
        range: None,
        if_range: None,
        want: Full,
    });
    v
}

#[tokio::test]
async fn table_of_range_requests() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for c in cases {
        let source = content(c.len);
        let mut headers = Vec::new();
        if let Some(range) = c.range {
            headers.push((header::RANGE, range));
        }
        if let Some(if_range) = c.if_range {
            headers.push((header::IF_RANGE, if_range));
        }
        let layer = RangeLayer::new().clock(clock());
        let body = source.clone();
        let res = call(layer, request(c.method.clone(), &headers), move || {
            ok(body.clone())
        })
        .await;
        let (parts, body) = body_bytes(res).await;
        let name = c.name;
        if c.method == Method::GET || c.method == Method::HEAD {
            assert_eq!(parts.headers[header::ACCEPT_RANGES], "bytes", "{name}");
        }
        let declared: u64 = parts.headers[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(declared, body.len() as u64, "{name}: Content-Length");
        match c.want {
            Want::Full => {
                assert_eq!(parts.status, StatusCode::OK, "{name}");
                assert!(!parts.headers.contains_key(header::CONTENT_RANGE), "{name}");
                assert_eq!(body, source, "{name}");
            }
            Want::Unsatisfiable => {
                assert_eq!(parts.status, StatusCode::RANGE_NOT_SATISFIABLE, "{name}");
                assert_eq!(
                    parts.headers[header::CONTENT_RANGE],
                    format!("bytes */{}", c.len).as_str(),
                    "{name}"
                );
                assert_eq!(parts.headers[header::ETAG], "\"v1\"", "{name}");
            }
            Want::Ranges([(first, last)]) => {
                assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT, "{name}");
                assert_eq!(
                    parts.headers[header::CONTENT_RANGE],
                    format!("bytes {first}-{last}/{}", c.len).as_str(),
                    "{name}"
                );
                assert_eq!(parts.headers[header::CONTENT_TYPE], "text/plain", "{name}");
                assert_eq!(parts.headers[header::ETAG], "\"v1\"", "{name}");
                assert_eq!(body, source[*first as usize..=*last as usize], "{name}");
            }
            Want::Ranges(ranges) => {
                assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT, "{name}");
                assert!(!parts.headers.contains_key(header::CONTENT_RANGE), "{name}");
                let got = parse_multipart(&parts.headers[header::CONTENT_TYPE], &body);
                assert_eq!(got.len(), ranges.len(), "{name}: number of parts");
                for ((headers, bytes), (first, last)) in got.iter().zip(ranges) {
                    assert_eq!(headers[header::CONTENT_TYPE], "text/plain", "{name}");
                    assert_eq!(
                        headers[header::CONTENT_RANGE],
                        format!("bytes {first}-{last}/{}", c.len).as_str(),
                        "{name}"
                    );
                    let expected = &source[*first as usize..=*last as usize];
                    assert_eq!(bytes.len(), expected.len(), "{name}: part length");
                    for (i, (a, b)) in bytes.iter().zip(expected).enumerate() {
                        assert_eq!(a, b, "{name}: byte {i} of part {first}-{last}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn multipart_boundaries_differ_between_responses() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let req = request(Method::GET, &[(header::RANGE, "bytes=0-1,5-6")]);
        let res = call(RangeLayer::new(), req, || ok(content(10))).await;
        seen.push(res.headers()[header::CONTENT_TYPE].clone());
    }
    assert_ne!(seen[0], seen[1]);
}

#[tokio::test]
async fn leaves_non_200_responses_alone() {
    for status in [
        StatusCode::NOT_FOUND,
        StatusCode::PARTIAL_CONTENT,
        StatusCode::CREATED,
    ] {
        let req = request(Method::GET, &[(header::RANGE, "bytes=0-1")]);
        let res = call(RangeLayer::new(), req, move || {
            let mut res = ok(content(10));
            *res.status_mut() = status;
            res
        })
        .await;
        assert_eq!(res.status(), status);
        assert!(!res.headers().contains_key(header::ACCEPT_RANGES));
        assert_eq!(body_bytes(res).await.1.len(), 10);
    }
}

#[tokio::test]
async fn respects_accept_ranges_none() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=0-1")]);
    let res = call(RangeLayer::new(), req, || {
        let mut res = ok(content(10));
        res.headers_mut()
            .insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
        res
    })
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ACCEPT_RANGES], "none");
}

fn encoded(etag: &'static str) -> impl Fn() -> Response<Full<Bytes>> + Clone {
    move || {
        let mut res = ok(content(100));
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        res.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static(etag));
        res
    }
}

#[tokio::test]
async fn leaves_encoded_responses_with_weak_etags_alone() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=0-1")]);
    let res = call(RangeLayer::new(), req, encoded("W/\"v1\"")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key(header::ACCEPT_RANGES));
}

#[tokio::test]
async fn serves_ranges_of_encoded_responses_with_strong_etags() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=0-1")]);
    let res = call(RangeLayer::new(), req, encoded("\"v1-gzip\"")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(body_bytes(res).await.1, content(100).slice(0..2));
}

#[tokio::test]
async fn leaves_bodies_over_the_bound_alone() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=0-1")]);
    let res = call(RangeLayer::new().max_body_size(99), req, || {
        ok(content(100))
    })
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key(header::ACCEPT_RANGES));
    assert_eq!(body_bytes(res).await.1, content(100));
}

/// A body sent in chunks, with whatever size hint a test wants it to claim.
struct Chunks {
    chunks: std::collections::VecDeque<Bytes>,
    hint: SizeHint,
}

impl Chunks {
    fn new(chunks: &[&'static [u8]], hint: SizeHint) -> Self {
        Self {
            chunks: chunks.iter().map(|c| Bytes::from_static(c)).collect(),
            hint,
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[tokio::test]
async fn leaves_bodies_of_unknown_length_alone() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=0-1")]);
    let res = call(RangeLayer::new(), req, || {
        Response::new(Chunks::new(&[b"abc", b"def"], SizeHint::new()))
    })
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key(header::ACCEPT_RANGES));
    assert_eq!(body_bytes(res).await.1, "abcdef");
}

#[tokio::test]
async fn cuts_ranges_across_chunk_boundaries() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=2-4")]);
    let res = call(RangeLayer::new(), req, || {
        Response::new(Chunks::new(&[b"abc", b"def"], SizeHint::with_exact(6)))
    })
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 2-4/6");
    assert_eq!(body_bytes(res).await.1, "cde");
}

#[tokio::test]
async fn resolves_against_the_bytes_read_when_the_hint_was_short() {
    // The hint says 4 bytes; 6 arrive. The range is resolved against the 6 actually read.
    let req = request(Method::GET, &[(header::RANGE, "bytes=-2")]);
    let res = call(RangeLayer::new(), req, || {
        Response::new(Chunks::new(&[b"abc", b"def"], SizeHint::with_exact(4)))
    })
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 4-5/6");
    assert_eq!(body_bytes(res).await.1, "ef");
}

#[tokio::test]
async fn streams_a_body_that_outgrows_the_bound_untouched() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=0-0")]);
    let layer = RangeLayer::new().max_body_size(4);
    let res = call(layer, req, || {
        Response::new(Chunks::new(
            &[b"abc", b"def", b"ghi"],
            SizeHint::with_exact(3),
        ))
    })
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key(header::ACCEPT_RANGES));
    assert_eq!(body_bytes(res).await.1, "abcdefghi");
}

#[tokio::test]
async fn head_gets_accept_ranges_and_no_range() {
    let req = request(Method::HEAD, &[(header::RANGE, "bytes=0-1")]);
    let res = call(RangeLayer::new(), req, || ok(content(10))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ACCEPT_RANGES], "bytes");
    assert!(!res.headers().contains_key(header::CONTENT_RANGE));
}

#[tokio::test]
async fn unsatisfiable_answer_explains_itself() {
    let req = request(Method::GET, &[(header::RANGE, "bytes=50-")]);
    let res = call(RangeLayer::new(), req, || ok(content(10))).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    let body = body_bytes(res).await.1;
    assert!(body.starts_with(b"range not satisfiable"), "{body:?}");
}

#[tokio::test]
async fn if_range_date_within_the_last_second_is_weak() {
    // Last-Modified equals "now": a weak validator, so If-Range with it cannot hold (§8.8.2.2).
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0));
    let req = request(
        Method::GET,
        &[
            (header::RANGE, "bytes=0-1"),
            (header::IF_RANGE, &last_modified()),
        ],
    );
    let res = call(RangeLayer::new().clock(clock), req, || ok(content(10))).await;
    assert_eq!(res.status(), StatusCode::OK);
}
