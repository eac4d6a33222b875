//! ServeDir and ServeFile on a real socket: hostile paths, preconditions and If-Range for GET
//! and HEAD, and a 2 GiB sparse file served in full and in ranges with bounded memory.

use std::{
    io::{Seek, SeekFrom, Write},
    path::Path,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tempfile::TempDir;
use tower::ServiceExt;
use tower_edge::fs::{FileBody, ServeDir};
use tower_edge_tests::{HOSTILE_PATHS, TestServer, raw_get};

const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// `outer/secret.txt` (outside), `outer/public/` (the root) with a file, a hidden file, and
/// symlinks that point outside.
fn layout() -> (TempDir, std::path::PathBuf) {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.txt"), SECRET).unwrap();
    let root = outer.path().join("public");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
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

#[tokio::test]
async fn hostile_paths_never_reach_outside_the_root() {
    let (_outer, root) = layout();
    let server = TestServer::start(Router::new().fallback_service(ServeDir::new(&root))).await;
    // The server works, so a 404 below is a refusal, not a broken setup.
    let ok = raw_get(server.addr(), b"/ok.txt", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"fine");

    let hostile = HOSTILE_PATHS;
    assert!(hostile.len() >= 25);
    for target in hostile {
        let res = raw_get(server.addr(), target, &[]).await;
        let (status, text) = (res.status, res.text());
        let shown = String::from_utf8_lossy(target);
        assert!(status == 404 || status == 400, "{shown}: {status}");
        assert!(!text.contains(SECRET), "{shown} leaked the secret");
        assert!(!text.contains("root:"), "{shown} leaked /etc/passwd");
    }
    server.stop().await;
}

#[tokio::test]
async fn preconditions_and_if_range_for_get_and_head_on_a_socket() {
    let (_outer, root) = layout();
    std::fs::write(root.join("page.html"), "0123456789abcdef").unwrap();
    // An hour old: a Last-Modified within the last second is weak and never satisfies If-Range
    // (RFC 9110 §8.8.2.2), which is the server's rule, not this test's.
    let file = std::fs::File::options()
        .write(true)
        .open(root.join("page.html"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    drop(file);
    let modified = std::fs::metadata(root.join("page.html"))
        .unwrap()
        .modified()
        .unwrap();
    let lm = httpdate::fmt_http_date(modified);
    let server = TestServer::start(Router::new().nest_service("/s", ServeDir::new(&root))).await;
    let first = server.get("/s/page.html", &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(first.headers()[header::LAST_MODIFIED], lm.as_str());

    for method in ["GET", "HEAD"] {
        let send = |headers: Vec<(&'static str, String)>| {
            let mut req = Request::builder().method(method).uri("/s/page.html");
            for (name, value) in headers {
                req = req.header(name, value);
            }
            server.send(req.body(http_body_util::Full::new(Bytes::new())).unwrap())
        };
        let res = send(vec![("if-none-match", etag.clone())]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{method}");
        assert!(res.body().is_empty());
        let res = send(vec![("if-modified-since", lm.clone())]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{method}");
        let res = send(vec![("if-match", "\"stale\"".to_owned())]).await;
        assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED, "{method}");
        let res = send(vec![("if-match", etag.clone())]).await;
        assert_eq!(res.status(), StatusCode::OK, "{method}");

        // If-Range: a range for GET when the validator matches, the whole file otherwise; HEAD
        // never gets a range (RFC 9110 §14.2).
        let ranged = |if_range: String| {
            send(vec![
                ("range", "bytes=10-".to_owned()),
                ("if-range", if_range),
            ])
        };
        for (if_range, honoured) in [
            (etag.clone(), true),
            (lm.clone(), true),
            ("\"stale\"".to_owned(), false),
            (format!("W/{etag}"), false),
        ] {
            let res = ranged(if_range.clone()).await;
            if method == "GET" && honoured {
                assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{if_range}");
                assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 10-15/16");
                assert_eq!(res.body().as_ref(), b"abcdef");
            } else {
                assert_eq!(res.status(), StatusCode::OK, "{method} {if_range}");
                assert_eq!(res.headers()[header::CONTENT_LENGTH], "16");
                let want: &[u8] = if method == "GET" {
                    b"0123456789abcdef"
                } else {
                    b""
                };
                assert_eq!(res.body().as_ref(), want);
            }
        }
    }
    server.stop().await;
}

/// Counts the bytes a body has produced that the consumer has not yet released, and the peak.
struct Counted {
    inner: FileBody,
    in_flight: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let now = self
                .in_flight
                .fetch_add(data.len() as u64, Ordering::SeqCst)
                + data.len() as u64;
            self.peak.fetch_max(now, Ordering::SeqCst);
        }
        polled
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

const TWO_GIB: u64 = 2 * 1024 * 1024 * 1024;

fn sparse_file(dir: &Path) {
    let mut file = std::fs::File::create(dir.join("huge.bin")).unwrap();
    file.set_len(TWO_GIB).unwrap();
    for (offset, mark) in [
        (0, &b"START"[..]),
        (TWO_GIB / 2, b"MIDDLE"),
        (TWO_GIB - 3, b"END"),
    ] {
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(mark).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_sparse_file_streams_in_full_with_one_chunk_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    sparse_file(dir.path());
    let chunk = 256 * 1024;
    let svc = ServeDir::new(dir.path());
    let req = Request::get("/huge.bin").body(()).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        TWO_GIB.to_string().as_str()
    );
    let in_flight = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let mut body = Counted {
        inner: res.into_body(),
        in_flight: in_flight.clone(),
        peak: peak.clone(),
    };
    let mut total = 0u64;
    let mut marks = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        // The consumer looks at the bytes, then releases them.
        for (offset, mark) in [
            (0, &b"START"[..]),
            (TWO_GIB / 2, b"MIDDLE"),
            (TWO_GIB - 3, b"END"),
        ] {
            if (total..total + data.len() as u64).contains(&offset) {
                let at = (offset - total) as usize;
                assert_eq!(&data[at..at + mark.len()], mark);
                marks.push(mark);
            }
        }
        total += data.len() as u64;
        in_flight.fetch_sub(data.len() as u64, Ordering::SeqCst);
    }
    assert_eq!(total, TWO_GIB);
    assert_eq!(marks.len(), 3);
    assert!(
        peak.load(Ordering::SeqCst) <= chunk,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_2_gib_sparse_file_serves_ranges_on_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    sparse_file(dir.path());
    let server = TestServer::start(Router::new().fallback_service(ServeDir::new(dir.path()))).await;
    let res = server.get("/huge.bin", &[("range", "bytes=-3")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE],
        format!("bytes {}-{}/{TWO_GIB}", TWO_GIB - 3, TWO_GIB - 1).as_str()
    );
    assert_eq!(res.body().as_ref(), b"END");

    let middle = TWO_GIB / 2;
    let spec = format!("bytes=0-4,{middle}-{}", middle + 5);
    let res = server.get("/huge.bin", &[("range", &spec)]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let body = String::from_utf8(res.body().to_vec()).unwrap();
    assert!(body.contains("Content-Range: bytes 0-4/2147483648\r\n\r\nSTART"));
    assert!(body.contains(&format!(
        "Content-Range: bytes {middle}-{}/2147483648\r\n\r\nMIDDLE",
        middle + 5
    )));
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );

    let res = server
        .get("/huge.bin", &[("range", "bytes=2147483648-")])
        .await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes */2147483648");
    server.stop().await;
}

/// Log lines captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_root_that_is_not_a_directory_is_named_in_a_warning_when_the_service_is_made() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    tracing::subscriber::with_default(subscriber, || {
        let _ = ServeDir::new(&missing);
        let _ = ServeDir::new(dir.path());
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("ServeDir root is not a directory").count(),
        1,
        "{text}"
    );
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("WARN"), "{text}");
}
