//! Hostile input on a real socket, through the full preset (cache, compression, ETag,
//! Last-Modified) and the file service nested in a router: every request gets a correct status,
//! never a 5xx, a hang, a body meant for someone else, or a file from outside the root.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    http::{HeaderMap, header},
    response::IntoResponse,
    routing::get,
};
use tempfile::TempDir;
use tower_edge::{
    cache::MokaStore,
    compression::{CompressionLayer, MimeAllowList, Predicate},
    fs::ServeDir,
    stack::EdgeStack,
};
use tower_edge_tests::{HOSTILE_PATHS, RawResponse, TestServer, raw_get};

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";
const FILE_LEN: usize = 100 * 1024;

/// A response extension: the body mixes a secret with reflected input.
#[derive(Clone, Copy)]
struct MixesSecret;

fn files() -> (TempDir, std::path::PathBuf) {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.txt"), SECRET).unwrap();
    let root = outer.path().join("public");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let big: Vec<u8> = (0..FILE_LEN).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(root.join("big.txt"), big).unwrap();
    std::fs::write(root.join(".hidden"), SECRET).unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), SECRET).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(outer.path(), root.join("linkdir")).unwrap();
    }
    (outer, root)
}

fn items() -> String {
    let rows: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id":{i},"name":"item {i}"}}"#))
        .collect();
    format!("[{}]", rows.join(","))
}

/// Who the request says it is: its `Authorization`, else its `Cookie`, else anonymous.
fn who(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get(header::COOKIE))
        .map_or("anonymous".to_owned(), |v| {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        })
}

fn app(root: &Path) -> Router {
    let sessions = Arc::new(AtomicU64::new(0));
    let api = Router::new()
        .route(
            "/items",
            get(|| async {
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::CONTENT_TYPE, "application/json"),
                    ],
                    items(),
                )
            }),
        )
        // Personalized by credentials or cookie, and (wrongly) marked cacheable without `Vary`:
        // the cache must still keep one user's answer from the others.
        .route(
            "/whoami",
            get(|headers: HeaderMap| async move {
                ([(header::CACHE_CONTROL, "max-age=60")], who(&headers))
            }),
        )
        .route(
            "/session",
            get(move || {
                let n = sessions.fetch_add(1, Ordering::SeqCst);
                async move {
                    (
                        [
                            (header::CACHE_CONTROL, "max-age=60".to_owned()),
                            (header::SET_COOKIE, format!("sid={n}; HttpOnly")),
                        ],
                        format!("session {n}"),
                    )
                }
            }),
        )
        // Reflects a header and says so in `Vary`.
        .route(
            "/forwarded",
            get(|headers: HeaderMap| async move {
                let host = headers
                    .get("x-forwarded-host")
                    .map_or("default".to_owned(), |v| {
                        String::from_utf8_lossy(v.as_bytes()).into_owned()
                    });
                (
                    [
                        (header::CACHE_CONTROL, "max-age=60"),
                        (header::VARY, "X-Forwarded-Host"),
                    ],
                    format!("<script src=\"https://{host}/app.js\"></script>"),
                )
            }),
        )
        .route("/x", get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "public x") }))
        .route(
            "/private/x",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "private x") }),
        )
        // A CSRF token next to an echoed query: the BREACH pattern.
        .route(
            "/account",
            get(|uri: http::Uri| async move {
                let echoed = uri.query().unwrap_or_default().to_owned();
                let body = format!(
                    "<form><input name=csrf value=\"s3cr3t-csrf-token\">{}<p>You searched for {echoed}</p></form>",
                    "<!-- padding -->".repeat(100)
                );
                let mut res = ([(header::CONTENT_TYPE, "text/html")], body).into_response();
                res.extensions_mut().insert(MixesSecret);
                res
            }),
        );
    let no_secrets = MimeAllowList::new()
        .and(|parts: &http::response::Parts| parts.extensions.get::<MixesSecret>().is_none());
    let stack = EdgeStack::new(MokaStore::default())
        .with_compression(CompressionLayer::new().compress_when(no_secrets));
    Router::new()
        .nest("/api", api)
        .nest_service("/static", ServeDir::new(root))
        .nest(
            "/nested",
            Router::new().nest_service("/files", ServeDir::new(root)),
        )
        .layer(stack)
}

async fn server() -> (TempDir, TestServer) {
    let (outer, root) = files();
    (outer, TestServer::start(app(&root)).await)
}

fn assert_sane(res: &RawResponse, what: &str) {
    assert!(
        res.status < 500,
        "{what}: {} {}",
        res.status,
        String::from_utf8_lossy(&res.body)
    );
    assert!(!res.text().contains(SECRET), "{what} leaked the secret");
}

/// The body's length as framed by `Content-Length` (the suite asks for no chunked responses
/// where it reads this).
fn content_length(res: &RawResponse) -> usize {
    res.header("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(res.body.len())
}

#[tokio::test]
async fn hostile_ranges_get_200_206_or_416_and_never_more_than_the_file() {
    let (_dir, server) = server().await;
    let many_singles: Vec<String> = (0..5000).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
    let same: Vec<&str> = std::iter::repeat_n("0-0", 2000).collect();
    let overlapping: Vec<String> = (0..12)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 50))
        .collect();
    let cases: Vec<(String, &[u16])> = vec![
        (format!("bytes={}", many_singles.join(",")), &[200]),
        (format!("bytes={}", same.join(",")), &[200]),
        (format!("bytes={}", overlapping.join(",")), &[206]),
        ("bytes=18446744073709551615-".to_owned(), &[416]),
        (
            "bytes=18446744073709551614-18446744073709551615".to_owned(),
            &[416],
        ),
        ("bytes=0-18446744073709551616".to_owned(), &[200, 206]),
        ("bytes=-18446744073709551616".to_owned(), &[200, 206]),
        ("bytes=99999999999999999999999999-5".to_owned(), &[200]),
        ("bytes=5-1".to_owned(), &[200]),
        ("bytes=--1".to_owned(), &[200]),
        ("bytes=0-0,-0".to_owned(), &[206]),
        ("bytes=-0".to_owned(), &[416]),
        ("bytes=".to_owned(), &[200]),
        ("pages=1-2".to_owned(), &[200]),
        (format!("bytes=0-{}", "9".repeat(5000)), &[200, 206]),
    ];
    for target in ["/static/big.txt", "/api/items"] {
        // The second request to /api/items is a cache hit, which answers ranges itself.
        let full = raw_get(server.addr(), target.as_bytes(), &[]).await;
        assert_eq!(full.status, 200);
        let len = content_length(&full);
        for (range, allowed) in &cases {
            let res = raw_get(
                server.addr(),
                target.as_bytes(),
                &[("range", range.as_bytes())],
            )
            .await;
            let shown = &range[..range.len().min(60)];
            assert_sane(&res, shown);
            assert!(
                allowed.contains(&res.status),
                "{target} {shown}: {} not in {allowed:?}",
                res.status
            );
            match res.status {
                200 => assert_eq!(content_length(&res), len, "{target} {shown}"),
                206 => {
                    // One part, or a multipart body: never much more than the whole file.
                    assert!(content_length(&res) <= len + 2048, "{target} {shown}");
                }
                416 => assert_eq!(
                    res.header("content-range"),
                    Some(&*format!("bytes */{len}"))
                ),
                _ => unreachable!(),
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn enormous_and_malformed_validators_and_negotiation_headers_are_survived() {
    let (_dir, server) = server().await;
    let first = raw_get(server.addr(), b"/api/items", &[]).await;
    let etag = first
        .header("etag")
        .expect("the preset tags responses")
        .to_owned();
    let last_modified = first.header("last-modified").map(str::to_owned);

    // A huge If-None-Match that ends with the current tag still revalidates.
    let mut huge_inm: Vec<u8> = (0..6000)
        .flat_map(|i| format!("\"decoy-{i}\", ").into_bytes())
        .collect();
    huge_inm.extend_from_slice(etag.as_bytes());
    let res = raw_get(
        server.addr(),
        b"/api/items",
        &[("if-none-match", &huge_inm)],
    )
    .await;
    assert_eq!(res.status, 304, "a 90 KB list that contains the tag");
    assert!(res.body.is_empty());

    let junk_lists: Vec<Vec<u8>> = vec![
        b"W/".to_vec(),
        b"\"unterminated".to_vec(),
        b"*, *, *, W/\"\"".to_vec(),
        b"\x80\xff\xfe".to_vec(),
        b",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,".repeat(2000),
        b"W/W/W/\"a\"".to_vec(),
        vec![b'"'; 60_000],
    ];
    for junk in &junk_lists {
        for name in ["if-none-match", "if-match"] {
            let res = raw_get(server.addr(), b"/api/items", &[(name, junk)]).await;
            assert_sane(&res, name);
            assert!(
                [200, 304, 412].contains(&res.status),
                "{name}: {}",
                res.status
            );
        }
    }

    let dates: Vec<Vec<u8>> = vec![
        b"yesterday".to_vec(),
        b"Sun, 06 Nov 99999 08:49:37 GMT".to_vec(),
        b"Sun, 32 Nov 1994 08:49:37 GMT".to_vec(),
        b"Sun, 06 Nov 1994 25:61:61 GMT".to_vec(),
        b"Thu, 01 Jan 1970 00:00:00 GMT".to_vec(),
        b"Sun, 06 Nov 1994 08:49:37 GMT, ".repeat(3000),
        b"\xff\xfe\xfd".to_vec(),
    ];
    for date in &dates {
        for name in ["if-modified-since", "if-unmodified-since", "if-range"] {
            let res = raw_get(
                server.addr(),
                b"/api/items",
                &[(name, date), ("range", b"bytes=0-9")],
            )
            .await;
            assert_sane(&res, name);
            assert!(
                [200, 206, 304, 412].contains(&res.status),
                "{name}: {}",
                res.status
            );
        }
    }
    if let Some(lm) = last_modified {
        let res = raw_get(
            server.addr(),
            b"/api/items",
            &[("if-modified-since", lm.as_bytes())],
        )
        .await;
        assert_eq!(res.status, 304);
    }

    let encodings: Vec<Vec<u8>> = vec![
        b"gzip;q=0.5, ".repeat(5000),
        b";;;;q=====, br;q=NaN, *;q=1e999, zstd;q=-1".to_vec(),
        b"identity;q=0, *;q=0".to_vec(),
        b"gzip;q=1.0000000000000000000001".to_vec(),
        b"\x80br".to_vec(),
        b"br;q=0.001".repeat(3000),
    ];
    for ae in &encodings {
        let res = raw_get(server.addr(), b"/api/items", &[("accept-encoding", ae)]).await;
        assert_sane(&res, "accept-encoding");
        // With identity refused and nothing acceptable, identity is still sent (no 406 unless
        // configured).
        assert_eq!(res.status, 200);
    }

    let controls: Vec<Vec<u8>> = vec![
        b"max-age=99999999999999999999999, max-stale=-1, min-fresh=1e9".to_vec(),
        b"no-cache=\"".to_vec(),
        b"max-age=0, ".repeat(5000),
        b"only-if-cached, max-stale".to_vec(),
        b"\"\"\"\"=,=,=".to_vec(),
    ];
    for cc in &controls {
        let res = raw_get(server.addr(), b"/api/items", &[("cache-control", cc)]).await;
        assert_sane(&res, "cache-control");
        assert!(
            [200, 504].contains(&res.status),
            "cache-control: {}",
            res.status
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn path_traversal_in_every_encoding_through_the_preset_and_nested_routers() {
    let (_dir, server) = server().await;
    for prefix in ["/static", "/nested/files"] {
        let ok = raw_get(server.addr(), format!("{prefix}/ok.txt").as_bytes(), &[]).await;
        assert_eq!((ok.status, &ok.body[..]), (200, &b"fine"[..]), "{prefix}");
        for path in HOSTILE_PATHS {
            let mut target = prefix.as_bytes().to_vec();
            if !path.starts_with(b"/") {
                target.push(b'/');
            }
            target.extend_from_slice(path);
            let res = raw_get(server.addr(), &target, &[]).await;
            let shown = String::from_utf8_lossy(&target).into_owned();
            assert_sane(&res, &shown);
            assert!([400, 404].contains(&res.status), "{shown}: {}", res.status);
            assert!(!res.text().contains("root:"), "{shown} leaked /etc/passwd");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn credentials_cookies_and_unkeyed_headers_never_reach_another_client() {
    let (_dir, server) = server().await;
    let addr = server.addr();

    // Authorization: each user sees only their own answer, and nobody else sees it.
    let alice = raw_get(addr, b"/api/whoami", &[("authorization", b"Bearer alice")]).await;
    assert_eq!(alice.body, b"Bearer alice");
    let anon = raw_get(addr, b"/api/whoami", &[]).await;
    assert_eq!(anon.body, b"anonymous");
    let bob = raw_get(addr, b"/api/whoami", &[("authorization", b"Bearer bob")]).await;
    assert_eq!(bob.body, b"Bearer bob");

    // Cookie on a response that says neither `public` nor `Vary: Cookie`: not stored.
    let carol = raw_get(addr, b"/api/whoami?c=1", &[("cookie", b"session=carol")]).await;
    assert_eq!(carol.body, b"session=carol");
    assert!(
        carol
            .header("cache-status")
            .unwrap()
            .contains("detail=cookie"),
        "{:?}",
        carol.header("cache-status")
    );
    let anon = raw_get(addr, b"/api/whoami?c=1", &[]).await;
    assert_eq!(
        anon.body, b"anonymous",
        "the cookie holder's page was stored"
    );

    // Set-Cookie: never stored, so never replayed.
    let one = raw_get(addr, b"/api/session", &[]).await;
    let two = raw_get(addr, b"/api/session", &[]).await;
    assert_ne!(one.header("set-cookie"), two.header("set-cookie"));
    assert_ne!(one.body, two.body);
    assert!(two.header("cache-status").unwrap().contains("set-cookie"));

    // A reflected header named in Vary is part of the key.
    let evil = raw_get(
        addr,
        b"/api/forwarded",
        &[("x-forwarded-host", b"evil.test")],
    )
    .await;
    assert!(String::from_utf8_lossy(&evil.body).contains("evil.test"));
    for _ in 0..2 {
        let victim = raw_get(addr, b"/api/forwarded", &[]).await;
        assert!(
            !String::from_utf8_lossy(&victim.body).contains("evil"),
            "poisoned"
        );
    }

    // A Host that smuggles a path is not keyed: the victim's /private/x stays its own.
    let mut request =
        b"GET /api/x HTTP/1.1\r\nHost: localhost/api/private\r\nConnection: close\r\n\r\n".to_vec();
    let poison = tower_edge_tests::raw_request(addr, &request).await;
    assert_eq!(poison.body, b"public x");
    assert!(
        poison
            .header("cache-status")
            .unwrap()
            .contains("fwd=bypass")
    );
    let victim = raw_get(addr, b"/api/private/x", &[]).await;
    assert_eq!(victim.body, b"private x");
    // Two Host lines: bypassed too.
    request = b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nHost: other\r\nConnection: close\r\n\r\n"
        .to_vec();
    let res = tower_edge_tests::raw_request(addr, &request).await;
    assert!(res.status == 400 || res.header("cache-status").unwrap().contains("fwd=bypass"));
    server.stop().await;
}

#[tokio::test]
async fn responses_mixing_a_secret_with_reflected_input_can_be_left_uncompressed() {
    let (_dir, server) = server().await;
    let gzip: &[(&str, &[u8])] = &[("accept-encoding", b"gzip")];
    let items = raw_get(server.addr(), b"/api/items", gzip).await;
    assert_eq!(items.header("content-encoding"), Some("gzip"));
    let account = raw_get(server.addr(), b"/api/account?q=csrf%20value%3D%22s3", gzip).await;
    assert_eq!(account.status, 200);
    assert_eq!(account.header("content-encoding"), None);
    assert!(String::from_utf8_lossy(&account.body).contains("s3cr3t-csrf-token"));
    server.stop().await;
}
