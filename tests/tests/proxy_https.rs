//! The caching proxy in front of an HTTPS origin that behaves like an object store (files with
//! `ETag`, `Last-Modified` and `Range`, no `Cache-Control`), over real sockets: a private CA,
//! HTTP/2 by ALPN, the `Host` the origin gets, certificates that must be refused, ranges that
//! fill the cache, and a large object that streams through.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    middleware::{self, Next},
    response::Response,
    routing,
};
use bytes::Bytes;
use http::{StatusCode, Version, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, oneshot};
use tower_edge::fs::ServeDir;
use tower_edge_caching_proxy::{HostHeader, Proxy, ProxyConfig};
use tower_edge_tests::{
    TestServer,
    tls_origin::{TestCa, TlsServer},
};

/// What the origin saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    version: Version,
    /// `Host`, or HTTP/2's `:authority`.
    host: String,
    range: Option<String>,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, path: &str) -> usize {
        self.all().iter().filter(|s| s.path == path).count()
    }
}

const OBJECT_LEN: usize = 1024 * 1024;

/// A deterministic object: byte `i` is `i * 7 mod 251`.
fn object(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// An object store: `/bucket/*` from files, and `/stream/big`, whose first 64 KiB go out at
/// once and the rest only after `release` is notified.
struct Store {
    _dir: tempfile::TempDir,
    log: Log,
    release: Arc<Notify>,
}

const BIG_LEN: usize = 20 * 1024 * 1024;
const FIRST_CHUNK: usize = 64 * 1024;

fn store() -> (Store, Router) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("object.bin"), object(OBJECT_LEN)).unwrap();
    std::fs::write(dir.path().join("small.txt"), "small object\n").unwrap();
    let log = Log::default();
    let release = Arc::new(Notify::new());
    let files = ServeDir::new(dir.path()).cache_control(None);
    let gate = Arc::clone(&release);
    let router = Router::new()
        .nest_service("/bucket", files)
        .route(
            "/stream/big",
            routing::get(move || {
                let gate = Arc::clone(&gate);
                async move {
                    let data = Bytes::from(object(BIG_LEN));
                    let stream = async_stream(data, gate);
                    Response::builder()
                        .header(header::CONTENT_LENGTH, BIG_LEN)
                        .header(header::CACHE_CONTROL, "public, max-age=600")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
            }),
        )
        .layer(middleware::from_fn_with_state(log.clone(), record));
    (
        Store {
            _dir: dir,
            log,
            release,
        },
        router,
    )
}

/// The first chunk, then (after `gate`) the rest in 1 MiB chunks.
fn async_stream(
    data: Bytes,
    gate: Arc<Notify>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold((0usize, data, gate), |(sent, data, gate)| async move {
        if sent >= data.len() {
            return None;
        }
        if sent == FIRST_CHUNK {
            gate.notified().await;
        }
        let end = if sent == 0 {
            FIRST_CHUNK
        } else {
            (sent + 1024 * 1024).min(data.len())
        };
        Some((Ok(data.slice(sent..end)), (end, data, gate)))
    })
}

async fn record(
    axum::extract::State(log): axum::extract::State<Log>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(ToString::to_string))
        .unwrap_or_default();
    log.0.lock().unwrap().push(Seen {
        path: req.uri().path().to_owned(),
        version: req.version(),
        host,
        range: req
            .headers()
            .get(header::RANGE)
            .map(|r| r.to_str().unwrap().to_owned()),
    });
    next.run(req).await
}

/// A CA, its PEM file, and an HTTPS object store whose certificate it signed for `localhost`
/// and `127.0.0.1`.
struct Setup {
    _ca_dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    store: Store,
    origin: TlsServer,
}

async fn setup(alpn: &[&[u8]]) -> Setup {
    let ca = TestCa::new("tower-edge test CA");
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let (store, router) = store();
    let origin =
        TlsServer::start(router, ca.server_config(&["localhost", "127.0.0.1"], alpn)).await;
    Setup {
        _ca_dir: ca_dir,
        ca_file,
        store,
        origin,
    }
}

impl Setup {
    fn upstream(&self) -> String {
        format!("https://localhost:{}", self.origin.addr().port())
    }

    async fn proxy(&self, config: impl FnOnce(ProxyConfig) -> ProxyConfig) -> TestServer {
        let base = ProxyConfig::new(&self.upstream())
            .unwrap()
            .upstream_ca(&self.ca_file)
            .unwrap()
            .default_ttl(Duration::from_secs(3600));
        TestServer::start(Proxy::new().upstream(config(base)).build().router).await
    }
}

const PUBLIC: &str = "media.example";

/// A GET through the proxy with the public host name.
async fn get(proxy: &TestServer, path: &str, headers: &[(&str, &str)]) -> http::Response<Bytes> {
    let mut req = http::Request::get(path).header(header::HOST, PUBLIC);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    proxy
        .send(req.body(http_body_util::Full::default()).unwrap())
        .await
}

fn cache_status(res: &http::Response<Bytes>) -> &str {
    res.headers()
        .get("cache-status")
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn an_https_origin_with_a_private_ca_is_cached_and_spoken_to_in_http2() {
    let setup = setup(&[b"h2", b"http/1.1"]).await;
    let proxy = setup.proxy(|c| c).await;

    let first = get(&proxy, "/bucket/small.txt", &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.body().as_ref(), b"small object\n");
    assert!(cache_status(&first).contains("fwd=miss"), "{first:?}");
    let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert!(first.headers().contains_key(header::LAST_MODIFIED));

    let seen = setup.store.log.all();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_2, "ALPN chose HTTP/2");
    // An https upstream gets its own name, as its certificate and virtual hosts expect.
    assert_eq!(
        seen[0].host,
        setup.upstream().trim_start_matches("https://")
    );

    let second = get(&proxy, "/bucket/small.txt", &[]).await;
    assert!(cache_status(&second).contains("hit"), "{second:?}");
    assert_eq!(second.body().as_ref(), b"small object\n");
    // The store's validators are kept: a client revalidates against the proxy alone.
    let revalidated = get(&proxy, "/bucket/small.txt", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(setup.store.log.count("/bucket/small.txt"), 1);
}

#[tokio::test]
async fn the_client_host_mode_speaks_http1_with_the_clients_host() {
    let setup = setup(&[b"h2", b"http/1.1"]).await;
    let proxy = setup.proxy(|c| c.host_header(HostHeader::Client)).await;
    let res = get(&proxy, "/bucket/small.txt", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = setup.store.log.all();
    // HTTP/2 would carry the upstream's name in `:authority` next to another `Host`.
    assert_eq!(seen[0].version, Version::HTTP_11);
    assert_eq!(seen[0].host, PUBLIC);

    let fixed = setup
        .proxy(|c| c.host_header("origin.internal".parse().unwrap()))
        .await;
    let res = get(&fixed, "/bucket/object.bin", &[("range", "bytes=0-9")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(setup.store.log.all()[1].host, "origin.internal");
}

/// Certificates the proxy must refuse: one from a CA it does not trust, one for another name,
/// one expired.
/// Each is a 502 that says why, and nothing reaches the origin in plain text or otherwise.
#[tokio::test]
async fn certificates_that_do_not_check_out_are_a_502_with_the_reason() {
    let trusted = setup(&[b"http/1.1"]).await;

    // Signed by a CA the proxy was not given.
    let stranger = TestCa::new("another CA");
    let (other_store, router) = store();
    let untrusted = TlsServer::start(
        router,
        stranger.server_config(&["localhost", "127.0.0.1"], &[b"http/1.1"]),
    )
    .await;
    // Signed by the trusted CA, but for another host.
    let ca = TestCa::new("tower-edge test CA 2");
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let (misnamed_store, router) = store();
    let misnamed = TlsServer::start(
        router,
        ca.server_config(&["elsewhere.example"], &[b"http/1.1"]),
    )
    .await;

    // Signed by the trusted CA, for the right name, but expired.
    let (expired_store, router) = store();
    let expired = TlsServer::start(
        router,
        ca.expired_server_config(&["localhost", "127.0.0.1"], &[b"http/1.1"]),
    )
    .await;

    for (addr, ca_file, expected) in [
        (untrusted.addr(), &trusted.ca_file, "UnknownIssuer"),
        (misnamed.addr(), &ca_file, "not valid for name"),
        (expired.addr(), &ca_file, "expired"),
    ] {
        let config = ProxyConfig::new(&format!("https://localhost:{}", addr.port()))
            .unwrap()
            .upstream_ca(ca_file)
            .unwrap();
        let proxy = TestServer::start(Proxy::new().upstream(config).build().router).await;
        let res = get(&proxy, "/bucket/small.txt", &[]).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let reason = String::from_utf8_lossy(res.body());
        assert!(
            reason.contains("upstream TLS handshake failed") && reason.contains(expected),
            "{reason}"
        );
    }
    assert!(other_store.log.all().is_empty());
    assert!(misnamed_store.log.all().is_empty());
    assert!(expired_store.log.all().is_empty());
}

/// An `https://` upstream where a plain HTTP server listens: the handshake fails, and the
/// request is never sent in plain text instead.
#[tokio::test]
async fn an_https_upstream_never_falls_back_to_plain_text() {
    let (plain_store, router) = store();
    let plain = TestServer::start(router).await;
    let setup = setup(&[b"http/1.1"]).await;
    let config = ProxyConfig::new(&format!("https://localhost:{}", plain.addr().port()))
        .unwrap()
        .upstream_ca(&setup.ca_file)
        .unwrap();
    let proxy = TestServer::start(Proxy::new().upstream(config).build().router).await;
    let res = get(&proxy, "/bucket/small.txt", &[]).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let reason = String::from_utf8_lossy(res.body());
    assert!(reason.contains("TLS"), "{reason}");
    assert!(
        plain_store.log.all().is_empty(),
        "a request arrived in plain text"
    );
}

/// Ranges on a miss go to the origin as ranges; their parts are stored and, once they cover
/// the object, the proxy answers every request for it alone.
#[tokio::test]
async fn ranges_go_to_the_origin_as_ranges_and_fill_the_cache() {
    let setup = setup(&[b"h2", b"http/1.1"]).await;
    let proxy = setup.proxy(|c| c).await;
    let whole = object(OBJECT_LEN);
    let half = OBJECT_LEN / 2;

    let first = get(&proxy, "/bucket/object.bin", &[("range", "bytes=0-1023")]).await;
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(first.body().as_ref(), &whole[..1024]);
    let seen = setup.store.log.all();
    assert_eq!(seen[0].range.as_deref(), Some("bytes=0-1023"));
    // The same range again, from the stored part.
    let again = get(&proxy, "/bucket/object.bin", &[("range", "bytes=0-1023")]).await;
    assert_eq!(again.body().as_ref(), &whole[..1024]);
    assert_eq!(
        setup.store.log.count("/bucket/object.bin"),
        1,
        "{first:?}\n{again:?}"
    );

    for range in [format!("bytes=0-{}", half - 1), format!("bytes={half}-")] {
        let res = get(&proxy, "/bucket/object.bin", &[("range", &range)]).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
    }
    assert_eq!(setup.store.log.count("/bucket/object.bin"), 3);
    let full = get(&proxy, "/bucket/object.bin", &[]).await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.body().len(), OBJECT_LEN);
    assert!(
        full.body().as_ref() == whole.as_slice(),
        "the combined parts differ"
    );
    let middle = get(
        &proxy,
        "/bucket/object.bin",
        &[("range", "bytes=1000-2999")],
    )
    .await;
    assert_eq!(middle.body().as_ref(), &whole[1000..3000]);
    assert_eq!(
        setup.store.log.count("/bucket/object.bin"),
        3,
        "served from the parts"
    );
}

/// An object larger than the cache's bound streams through: the client has its first bytes
/// while the origin still holds the rest back.
#[tokio::test]
async fn a_large_object_streams_through_without_waiting_for_its_end() {
    let setup = setup(&[b"h2", b"http/1.1"]).await;
    let proxy = setup.proxy(|c| c).await;

    let (mut sender, conn) = handshake(proxy.addr()).await;
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = conn.await;
        let _ = done_tx.send(());
    });
    let req = http::Request::get("/stream/big")
        .header(header::HOST, PUBLIC)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut received = Vec::with_capacity(BIG_LEN);
    // Up to the first chunk, with the origin holding the rest back. Bounded: a proxy that
    // waited for the whole object would never send these.
    while received.len() < FIRST_CHUNK {
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("the first bytes arrive while the origin holds the rest back")
            .expect("a frame")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(received.len(), FIRST_CHUNK);
    setup.store.release.notify_one();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .expect("the rest of the object arrives")
    {
        if let Ok(data) = frame.unwrap().into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(received.len(), BIG_LEN);
    assert!(received == object(BIG_LEN), "the streamed bytes differ");
    drop(sender);
    let _ = done_rx.await;
}

async fn handshake(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, Empty<Bytes>>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap()
}
