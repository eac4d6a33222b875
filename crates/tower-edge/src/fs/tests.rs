use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use tempfile::TempDir;
use tower::{ServiceExt, service_fn};

use super::{ETagSource, FileBody, Offload, ServeDir, ServeFile};
use crate::{clock::ManualClock, http::date::format_http_date};

const NOW: u64 = 1_800_000_000;

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(NOW))
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 251) as u8).collect()
}

/// A temp dir with a few files:
/// `hello.txt`, `big.bin` (100 KiB, over the default cache bound), `app.3f2a9c1b.css`,
/// `docs/index.html`, `empty/` (no index), `.env`, `data.json` + `.br` + `.gz` siblings.
fn site() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("hello.txt"), "hello, world").unwrap();
    std::fs::write(p.join("big.bin"), content(100 * 1024)).unwrap();
    std::fs::write(p.join("app.3f2a9c1b.css"), "body{}").unwrap();
    std::fs::create_dir(p.join("docs")).unwrap();
    std::fs::write(p.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::create_dir(p.join("empty")).unwrap();
    std::fs::write(p.join(".env"), "SECRET=1").unwrap();
    std::fs::write(p.join("data.json"), "{\"identity\":true}").unwrap();
    std::fs::write(p.join("data.json.br"), "BROTLI-BYTES").unwrap();
    std::fs::write(p.join("data.json.gz"), "GZIP-BYTES").unwrap();
    dir
}

fn req(method: Method, uri: &str, headers: &[(header::HeaderName, &str)]) -> Request<()> {
    let mut r = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        r = r.header(name, *value);
    }
    r.body(()).unwrap()
}

async fn get<S>(
    svc: &S,
    uri: &str,
    headers: &[(header::HeaderName, &str)],
) -> (http::response::Parts, Bytes)
where
    S: tower::Service<Request<()>, Response = Response<FileBody>, Error = std::convert::Infallible>
        + Clone,
{
    call(svc, req(Method::GET, uri, headers)).await
}

async fn call<S>(svc: &S, r: Request<()>) -> (http::response::Parts, Bytes)
where
    S: tower::Service<Request<()>, Response = Response<FileBody>, Error = std::convert::Infallible>
        + Clone,
{
    let head = r.method() == Method::HEAD;
    let res = svc.clone().oneshot(r).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH)
        && parts.status != StatusCode::NOT_MODIFIED
        && !head
    {
        assert_eq!(
            len.to_str().unwrap(),
            bytes.len().to_string(),
            "Content-Length"
        );
    }
    (parts, bytes)
}

/// Both the hot-cache path and the streaming path, so every behaviour is checked on each.
fn both(dir: &Path) -> [ServeDir; 2] {
    [
        ServeDir::new(dir).clock(clock()),
        ServeDir::new(dir).clock(clock()).cache_capacity(0),
    ]
}

#[tokio::test]
async fn serves_a_file_with_type_length_and_validators() {
    let dir = site();
    for svc in both(dir.path()) {
        let (parts, body) = get(&svc, "/hello.txt", &[]).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "hello, world");
        assert_eq!(
            parts.headers[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(parts.headers[header::ACCEPT_RANGES], "bytes");
        assert_eq!(parts.headers[header::CACHE_CONTROL], "no-cache");
        let etag = parts.headers[header::ETAG].to_str().unwrap();
        assert!(etag.starts_with("\"c-"), "{etag}");
        let modified = std::fs::metadata(dir.path().join("hello.txt"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            parts.headers[header::LAST_MODIFIED],
            format_http_date(modified).as_str()
        );
    }
}

#[tokio::test]
async fn head_sends_the_headers_of_get_without_a_body() {
    let dir = site();
    for svc in both(dir.path()) {
        let (get_parts, _) = get(&svc, "/big.bin", &[]).await;
        let res = svc
            .clone()
            .oneshot(req(Method::HEAD, "/big.bin", &[]))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "102400");
        assert_eq!(res.headers()[header::ETAG], get_parts.headers[header::ETAG]);
        assert!(
            res.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let dir = site();
    let svc = ServeDir::new(dir.path());
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
    ] {
        let (parts, body) = call(&svc, req(method.clone(), "/hello.txt", &[])).await;
        assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(parts.headers[header::ALLOW], "GET, HEAD");
        assert!(body.starts_with(b"method not allowed"));
    }
}

#[tokio::test]
async fn preconditions_for_get_and_head() {
    let dir = site();
    let modified = std::fs::metadata(dir.path().join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let lm = format_http_date(modified);
    let before = format_http_date(modified - Duration::from_secs(10));
    for svc in both(dir.path()) {
        let (parts, _) = get(&svc, "/hello.txt", &[]).await;
        let etag = parts.headers[header::ETAG].to_str().unwrap().to_owned();
        for method in [Method::GET, Method::HEAD] {
            let cases: [(header::HeaderName, &str, StatusCode); 7] = [
                (header::IF_NONE_MATCH, &etag, StatusCode::NOT_MODIFIED),
                (header::IF_NONE_MATCH, "\"other\"", StatusCode::OK),
                (header::IF_MODIFIED_SINCE, &lm, StatusCode::NOT_MODIFIED),
                (header::IF_MODIFIED_SINCE, &before, StatusCode::OK),
                (header::IF_MATCH, &etag, StatusCode::OK),
                (
                    header::IF_MATCH,
                    "\"other\"",
                    StatusCode::PRECONDITION_FAILED,
                ),
                (
                    header::IF_UNMODIFIED_SINCE,
                    &before,
                    StatusCode::PRECONDITION_FAILED,
                ),
            ];
            for (name, value, want) in cases {
                let (parts, body) = call(
                    &svc,
                    req(method.clone(), "/hello.txt", &[(name.clone(), value)]),
                )
                .await;
                assert_eq!(parts.status, want, "{method} {name}: {value}");
                match want {
                    StatusCode::NOT_MODIFIED => {
                        assert!(body.is_empty());
                        assert_eq!(parts.headers[header::ETAG], etag.as_str());
                        assert!(!parts.headers.contains_key(header::CONTENT_TYPE));
                    }
                    StatusCode::PRECONDITION_FAILED => {
                        assert!(body.starts_with(b"precondition failed"));
                    }
                    _ => assert_eq!(body.is_empty(), method == Method::HEAD),
                }
            }
        }
    }
}

#[tokio::test]
async fn serves_single_and_multiple_ranges() {
    let dir = site();
    let source = content(100 * 1024);
    for svc in both(dir.path()) {
        let (parts, body) = get(&svc, "/big.bin", &[(header::RANGE, "bytes=1000-1999")]).await;
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            parts.headers[header::CONTENT_RANGE],
            "bytes 1000-1999/102400"
        );
        assert_eq!(body, source[1000..2000]);

        let (parts, body) = get(&svc, "/big.bin", &[(header::RANGE, "bytes=0-9,-10")]).await;
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
        let ct = parts.headers[header::CONTENT_TYPE].to_str().unwrap();
        let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
        let text = body.to_vec();
        let first = format!(
            "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-9/102400\r\n\r\n"
        );
        assert!(text.starts_with(first.as_bytes()));
        assert_eq!(&text[first.len()..first.len() + 10], &source[..10]);
        let closing = format!("\r\n--{boundary}--\r\n");
        assert!(text.ends_with(closing.as_bytes()));
        let tail = &text[..text.len() - closing.len()];
        assert_eq!(&tail[tail.len() - 10..], &source[source.len() - 10..]);

        let (parts, body) = get(&svc, "/big.bin", &[(header::RANGE, "bytes=200000-")]).await;
        assert_eq!(parts.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(parts.headers[header::CONTENT_RANGE], "bytes */102400");
        assert!(body.starts_with(b"range not satisfiable"));
    }
}

#[tokio::test]
async fn if_range_decides_between_206_and_200() {
    let dir = site();
    let modified = std::fs::metadata(dir.path().join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    for svc in both(dir.path()) {
        let (parts, _) = get(&svc, "/hello.txt", &[]).await;
        let etag = parts.headers[header::ETAG].to_str().unwrap().to_owned();
        let weak = format!("W/{etag}");
        let lm = format_http_date(modified);
        let cases = [
            (etag.as_str(), StatusCode::PARTIAL_CONTENT),
            ("\"stale\"", StatusCode::OK),
            (weak.as_str(), StatusCode::OK),
            (lm.as_str(), StatusCode::PARTIAL_CONTENT),
            ("not a validator", StatusCode::OK),
        ];
        for (value, want) in cases {
            let (parts, body) = get(
                &svc,
                "/hello.txt",
                &[(header::RANGE, "bytes=0-4"), (header::IF_RANGE, value)],
            )
            .await;
            assert_eq!(parts.status, want, "If-Range: {value}");
            let expected: &[u8] = if want == StatusCode::OK {
                b"hello, world"
            } else {
                b"hello"
            };
            assert_eq!(body, expected);
        }
        // HEAD never gets a range, If-Range or not.
        let (parts, _) = call(
            &svc,
            req(
                Method::HEAD,
                "/hello.txt",
                &[(header::RANGE, "bytes=0-4"), (header::IF_RANGE, &etag)],
            ),
        )
        .await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers[header::CONTENT_LENGTH], "12");
    }
}

#[tokio::test]
async fn chooses_precompressed_siblings_by_accept_encoding() {
    let dir = site();
    for svc in both(dir.path()) {
        let svc = svc.precompressed_br(true).precompressed_gzip(true);
        let cases = [
            ("gzip, br", Some("br"), "BROTLI-BYTES"),
            ("gzip", Some("gzip"), "GZIP-BYTES"),
            ("br;q=0.1, gzip;q=0.9", Some("gzip"), "GZIP-BYTES"),
            ("zstd", None, "{\"identity\":true}"),
            ("", None, "{\"identity\":true}"),
        ];
        for (accept, encoding, want) in cases {
            let (parts, body) = get(&svc, "/data.json", &[(header::ACCEPT_ENCODING, accept)]).await;
            assert_eq!(parts.status, StatusCode::OK, "{accept}");
            assert_eq!(body, want, "{accept}");
            assert_eq!(parts.headers[header::VARY], "accept-encoding");
            assert_eq!(
                parts
                    .headers
                    .get(header::CONTENT_ENCODING)
                    .map(|v| v.to_str().unwrap()),
                encoding,
                "{accept}"
            );
            assert_eq!(
                parts.headers[header::CONTENT_TYPE],
                "application/json; charset=utf-8"
            );
        }
        // Ranges apply to the bytes actually sent, and each variant has its own tag.
        let (br, _) = get(&svc, "/data.json", &[(header::ACCEPT_ENCODING, "br")]).await;
        let (id, _) = get(&svc, "/data.json", &[]).await;
        assert_ne!(br.headers[header::ETAG], id.headers[header::ETAG]);
        let (parts, body) = get(
            &svc,
            "/data.json",
            &[
                (header::ACCEPT_ENCODING, "br"),
                (header::RANGE, "bytes=0-5"),
            ],
        )
        .await;
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(parts.headers[header::CONTENT_RANGE], "bytes 0-5/12");
        assert_eq!(body, "BROTLI");
    }
}

#[tokio::test]
async fn leaves_siblings_alone_when_not_enabled() {
    let dir = site();
    let svc = ServeDir::new(dir.path());
    let (parts, body) = get(&svc, "/data.json", &[(header::ACCEPT_ENCODING, "br, gzip")]).await;
    assert_eq!(body, "{\"identity\":true}");
    assert!(!parts.headers.contains_key(header::CONTENT_ENCODING));
    assert!(!parts.headers.contains_key(header::VARY));
}

#[tokio::test]
async fn hashed_names_are_immutable_and_others_follow_the_policy() {
    let dir = site();
    let svc = ServeDir::new(dir.path());
    let (parts, _) = get(&svc, "/app.3f2a9c1b.css", &[]).await;
    assert_eq!(
        parts.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let svc = ServeDir::new(dir.path())
        .cache_control(Some(HeaderValue::from_static("public, max-age=60")));
    let (parts, _) = get(&svc, "/hello.txt", &[]).await;
    assert_eq!(parts.headers[header::CACHE_CONTROL], "public, max-age=60");
    let svc = ServeDir::new(dir.path())
        .cache_control(None)
        .immutable_hashed_names(false);
    let (parts, _) = get(&svc, "/app.3f2a9c1b.css", &[]).await;
    assert!(!parts.headers.contains_key(header::CACHE_CONTROL));
}

#[tokio::test]
async fn serves_index_files_and_redirects_directories() {
    let dir = site();
    for svc in both(dir.path()) {
        let (parts, body) = get(&svc, "/docs/", &[]).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "<h1>docs</h1>");
        assert_eq!(
            parts.headers[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let (parts, _) = get(&svc, "/docs", &[]).await;
        assert_eq!(parts.status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(parts.headers[header::LOCATION], "docs/");
        let (parts, _) = get(&svc, "/empty/", &[]).await;
        assert_eq!(parts.status, StatusCode::NOT_FOUND);
        let (parts, _) = get(&svc, "/hello.txt/", &[]).await;
        assert_eq!(parts.status, StatusCode::NOT_FOUND);
    }
    let svc = ServeDir::new(dir.path()).redirect_directories(false);
    assert_eq!(
        get(&svc, "/docs", &[]).await.0.status,
        StatusCode::NOT_FOUND
    );
    let svc = ServeDir::new(dir.path()).index_files(["hello.txt"]);
    assert_eq!(get(&svc, "/", &[]).await.1, "hello, world");
}

#[tokio::test]
async fn not_found_service_gets_the_request() {
    let dir = site();
    let svc =
        ServeDir::new(dir.path()).not_found_service(service_fn(|r: Request<()>| async move {
            let body = http_body_util::Full::new(Bytes::from(format!("no {}", r.uri().path())));
            let mut res = Response::new(body);
            *res.status_mut() = StatusCode::NOT_FOUND;
            Ok::<_, std::convert::Infallible>(res)
        }));
    for path in ["/missing.txt", "/../etc/passwd", "/.env"] {
        let (parts, body) = get(&svc, path, &[]).await;
        assert_eq!(parts.status, StatusCode::NOT_FOUND);
        assert_eq!(body, format!("no {path}"));
    }
    // A single-page app: every unknown path gets index.html.
    let spa = ServeDir::new(dir.path())
        .not_found_service(ServeFile::new(dir.path().join("docs/index.html")));
    let (parts, body) = get(&spa, "/some/client/route", &[]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "<h1>docs</h1>");
}

#[tokio::test]
async fn hidden_files_are_refused_unless_allowed() {
    let dir = site();
    let (parts, _) = get(&ServeDir::new(dir.path()), "/.env", &[]).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    let (parts, body) = get(&ServeDir::new(dir.path()).hidden_files(true), "/.env", &[]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "SECRET=1");
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_outside_the_root_are_refused_unless_allowed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
    let dir = site();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("hello.txt"), dir.path().join("inside.txt"))
        .unwrap();
    for svc in both(dir.path()) {
        assert_eq!(
            get(&svc, "/link.txt", &[]).await.0.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&svc, "/linkdir/secret.txt", &[]).await.0.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(get(&svc, "/inside.txt", &[]).await.1, "hello, world");
        let svc = svc.follow_symlinks_outside_root(true);
        assert_eq!(get(&svc, "/link.txt", &[]).await.1, "outside");
    }
}

#[tokio::test]
async fn malformed_paths_are_bad_requests() {
    let dir = site();
    let svc = ServeDir::new(dir.path());
    for path in ["/%zz", "/a%00b", "/%ff"] {
        let (parts, body) = get(&svc, path, &[]).await;
        assert_eq!(parts.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.starts_with(b"bad request"));
    }
}

#[tokio::test]
async fn attachment_sets_content_disposition() {
    let dir = site();
    std::fs::write(dir.path().join("résumé.pdf"), "%PDF").unwrap();
    let svc = ServeDir::new(dir.path()).attachment(true);
    let (parts, _) = get(&svc, "/r%C3%A9sum%C3%A9.pdf", &[]).await;
    assert_eq!(
        parts.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
    );
}

#[tokio::test]
async fn offload_answers_with_a_header_for_the_front_server() {
    let dir = site();
    let svc = ServeDir::new(dir.path()).offload(Some(Offload::XAccelRedirect {
        prefix: "/protected/".to_owned(),
    }));
    let (parts, body) = get(&svc, "/docs/", &[]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(
        parts.headers["x-accel-redirect"],
        "/protected/docs/index.html"
    );
    assert_eq!(
        parts.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(body.is_empty());
    assert_eq!(
        get(&svc, "/missing", &[]).await.0.status,
        StatusCode::NOT_FOUND
    );

    let svc = ServeDir::new(dir.path()).offload(Some(Offload::XSendfile));
    let (parts, _) = get(&svc, "/hello.txt", &[]).await;
    let canonical = std::fs::canonicalize(dir.path().join("hello.txt")).unwrap();
    assert_eq!(parts.headers["x-sendfile"], canonical.to_str().unwrap());
}

#[tokio::test]
async fn hot_cache_serves_without_the_disk_until_the_interval_passes() {
    let dir = site();
    let clock = clock();
    let svc = ServeDir::new(dir.path()).clock(clock.clone());
    assert_eq!(get(&svc, "/hello.txt", &[]).await.1, "hello, world");
    assert!(svc.cache.bytes() > 0);
    // Changed on disk (and its mtime moved): the cached copy is served within the interval…
    std::fs::write(dir.path().join("hello.txt"), "changed!").unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(dir.path().join("hello.txt"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    assert_eq!(get(&svc, "/hello.txt", &[]).await.1, "hello, world");
    // …and the new bytes once it has passed.
    clock.advance(Duration::from_secs(2));
    assert_eq!(get(&svc, "/hello.txt", &[]).await.1, "changed!");
    // A deleted file is noticed at the next revalidation too.
    std::fs::remove_file(dir.path().join("hello.txt")).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        get(&svc, "/hello.txt", &[]).await.0.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn by_default_a_one_mebibyte_file_and_its_ranges_are_served_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let big = content(1024 * 1024);
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let svc = ServeDir::new(dir.path()).clock(clock());
    assert_eq!(get(&svc, "/big.bin", &[]).await.1.len(), big.len());
    assert_eq!(svc.cache.bytes(), big.len() as u64, "kept whole");
    // Gone from the disk: within the revalidation interval, ranges come from memory.
    std::fs::remove_file(dir.path().join("big.bin")).unwrap();
    let (parts, body) = get(&svc, "/big.bin", &[(header::RANGE, "bytes=524288-525311")]).await;
    assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, big[524_288..525_312]);
    // One byte more than the bound streams from disk instead.
    std::fs::write(dir.path().join("bigger.bin"), content(1024 * 1024 + 1)).unwrap();
    assert_eq!(get(&svc, "/bigger.bin", &[]).await.1.len(), 1024 * 1024 + 1);
    assert_eq!(svc.cache.bytes(), big.len() as u64, "not kept");
}

#[tokio::test]
async fn hot_cache_stays_within_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(dir.path().join(format!("{i}.bin")), content(1000)).unwrap();
    }
    let svc = ServeDir::new(dir.path()).cache_capacity(3500);
    for i in 0..10 {
        assert_eq!(get(&svc, &format!("/{i}.bin"), &[]).await.1.len(), 1000);
        assert!(svc.cache.bytes() <= 3500);
    }
    assert_eq!(svc.cache.bytes(), 3000);
}

#[tokio::test]
async fn content_hash_etags_ignore_modification_times() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("x.txt"), "same bytes").unwrap();
    std::fs::write(b.path().join("x.txt"), "same bytes").unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(b.path().join("x.txt"))
        .unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(1)).unwrap();
    drop(f);
    for cache in [0, 1 << 20] {
        let tag = |dir: &Path| {
            ServeDir::new(dir)
                .etag_source(ETagSource::ContentHash)
                .last_modified(false)
                .cache_capacity(cache)
        };
        let (pa, _) = get(&tag(a.path()), "/x.txt", &[]).await;
        let (pb, _) = get(&tag(b.path()), "/x.txt", &[]).await;
        assert_eq!(pa.headers[header::ETAG], pb.headers[header::ETAG]);
        assert!(!pa.headers.contains_key(header::LAST_MODIFIED));
        let (pm, _) = get(&ServeDir::new(a.path()), "/x.txt", &[]).await;
        assert_ne!(pm.headers[header::ETAG], pa.headers[header::ETAG]);
    }
}

#[tokio::test]
async fn streams_in_chunks_of_the_configured_size() {
    let dir = site();
    let svc = ServeDir::new(dir.path()).cache_capacity(0).chunk_size(4096);
    let res = svc
        .oneshot(req(
            Method::GET,
            "/big.bin",
            &[(header::RANGE, "bytes=100-20099")],
        ))
        .await
        .unwrap();
    let mut body = res.into_body();
    let mut got = Vec::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        assert!(data.len() <= 4096);
        got.extend_from_slice(&data);
        frames += 1;
    }
    assert_eq!(got, content(100 * 1024)[100..20100]);
    assert_eq!(frames, 5);
    assert!(body.is_end_stream());
}

#[tokio::test]
async fn serve_file_ignores_the_request_path() {
    let dir = site();
    let svc = ServeFile::new(dir.path().join("hello.txt"));
    for path in ["/", "/anything", "/../x"] {
        let (parts, body) = get(&svc, path, &[]).await;
        assert_eq!(parts.status, StatusCode::OK, "{path}");
        assert_eq!(body, "hello, world");
    }
    let missing = ServeFile::new(dir.path().join("nope.txt"));
    assert_eq!(
        get(&missing, "/", &[]).await.0.status,
        StatusCode::NOT_FOUND
    );
    // A path that names no file (it ends in `..`) is missing too: not a redirect into the
    // directory it resolves to.
    let no_name = ServeFile::new(dir.path().join("docs").join(".."));
    for path in ["/", "/docs"] {
        let (parts, _) = get(&no_name, path, &[]).await;
        assert_eq!(parts.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!parts.headers.contains_key(header::LOCATION), "{path}");
    }
    let attach = ServeFile::new(dir.path().join("hello.txt")).configure(|d| d.attachment(true));
    let (parts, _) = get(&attach, "/", &[]).await;
    assert_eq!(
        parts.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"hello.txt\""
    );
}

#[tokio::test]
async fn empty_files_are_served_and_ranges_on_them_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    for svc in both(dir.path()) {
        let (parts, body) = get(&svc, "/empty.txt", &[(header::RANGE, "bytes=0-")]).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers[header::CONTENT_LENGTH], "0");
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn a_missing_root_answers_not_found() {
    let svc = ServeDir::new("/definitely/not/a/real/root");
    assert_eq!(get(&svc, "/x", &[]).await.0.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn repeated_answers_from_memory_keep_their_fields_and_each_configuration_its_own() {
    // A cached file keeps the heads of its 200 and 304 (`respond::KeptHeads`): the same
    // fields every time, and a clone configured otherwise, which shares the hot-file cache,
    // still answers with its own.
    let dir = site();
    let plain = ServeDir::new(dir.path()).clock(clock());
    let public = plain
        .clone()
        .cache_control(Some(HeaderValue::from_static("public, max-age=60")))
        .attachment(true);
    let (first, body) = get(&plain, "/hello.txt", &[]).await;
    assert_eq!(body, "hello, world");
    let etag = first.headers[header::ETAG].to_str().unwrap().to_owned();
    for _ in 0..3 {
        let (again, body) = get(&plain, "/hello.txt", &[]).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.headers, first.headers);
        assert_eq!(body, "hello, world");
        let (not_modified, body) =
            get(&plain, "/hello.txt", &[(header::IF_NONE_MATCH, &etag)]).await;
        assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(not_modified.headers[header::ETAG], etag.as_str());
        assert_eq!(not_modified.headers[header::CACHE_CONTROL], "no-cache");
        assert!(!not_modified.headers.contains_key(header::CONTENT_LENGTH));
        assert!(!not_modified.headers.contains_key(header::CONTENT_TYPE));
        let (head, body) = call(&plain, req(Method::HEAD, "/hello.txt", &[])).await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers[header::CONTENT_LENGTH], "12");
        assert!(body.is_empty());
    }
    let (other, _) = get(&public, "/hello.txt", &[]).await;
    assert_eq!(other.headers[header::CACHE_CONTROL], "public, max-age=60");
    assert!(other.headers.contains_key(header::CONTENT_DISPOSITION));
    let (other, _) = get(&public, "/hello.txt", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(other.status, StatusCode::NOT_MODIFIED);
    assert_eq!(other.headers[header::CACHE_CONTROL], "public, max-age=60");
    let (back, _) = get(&plain, "/hello.txt", &[]).await;
    assert_eq!(back.headers, first.headers);
    // A range of the same file is answered as a range.
    let (range, body) = get(&plain, "/hello.txt", &[(header::RANGE, "bytes=0-4")]).await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, "hello");
}
