//! Support for tower-edge's integration tests: a real server on a loopback port and a small
//! HTTP/1.1 client.

pub mod redis_server;
pub mod store_suite;
pub mod tls_origin;

use std::net::SocketAddr;

use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// An axum router served on `127.0.0.1` at a free port, shut down when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds a free loopback port and serves `router` on it.
    pub async fn start(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request on a new connection and reads the whole response.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Response<Bytes> {
        send(self.addr, req).await
    }

    /// Sends a GET with the given headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
        let mut req = Request::get(path).header(http::header::HOST, self.addr.to_string());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Full::new(Bytes::new())).expect("valid request"))
            .await
    }

    /// Stops accepting connections and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends one request to `addr` on a new HTTP/1.1 connection and reads the whole response.
pub async fn send(addr: SocketAddr, mut req: Request<Full<Bytes>>) -> Response<Bytes> {
    if !req.headers().contains_key(http::header::HOST) {
        req.headers_mut().insert(
            http::header::HOST,
            addr.to_string().parse().expect("valid host"),
        );
    }
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let res = sender.send_request(req).await.expect("response");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("whole body").to_bytes();
    Response::from_parts(parts, body)
}

/// Sends one request to `addr` on a new HTTP/2 connection without TLS (h2c, prior knowledge)
/// and reads the whole response.
pub async fn send_h2(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Bytes> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    let res = sender.send_request(req).await.expect("response");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("whole body").to_bytes();
    Response::from_parts(parts, body)
}

/// A response read off the wire by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    /// The status code of the status line.
    pub status: u16,
    /// The status line and header section, as text.
    pub head: String,
    /// Everything after the header section, as sent (chunked framing included).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of the first header line named `name` (ASCII case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The whole response as lossy text.
    pub fn text(&self) -> String {
        format!(
            "{}\r\n\r\n{}",
            self.head,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// Sends `request` as raw bytes (a whole HTTP/1.1 request, which may be malformed in ways
/// `http::Request` would refuse) on a new connection, and reads until the server closes it.
/// Include `Connection: close`. Panics after 30 seconds: a hostile request must not hang.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the test server");
        stream.write_all(request).await.expect("send the request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read the response");
        response
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
        .await
        .expect("the server answers within 30 s");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no header section in {:?}",
                String::from_utf8_lossy(&response)
            )
        });
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    RawResponse {
        status,
        head,
        body: response[split + 4..].to_vec(),
    }
}

/// `GET target` with `Host: localhost` and the given extra header lines, through
/// [`raw_request`].
pub async fn raw_get(addr: SocketAddr, target: &[u8], headers: &[(&str, &[u8])]) -> RawResponse {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    raw_request(addr, &request).await
}

/// Request targets that try to climb out of a served directory, in every encoding a server
/// might decode: the file service must answer each with 404 or 400. They assume a root with
/// `secret.txt` one level above it.
pub const HOSTILE_PATHS: &[&[u8]] = &[
    b"/../secret.txt",
    b"/../../../../../../etc/passwd",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E/secret.txt",
    b"/%2e%2e%2fsecret.txt",
    b"/..%2fsecret.txt",
    b"/..%5csecret.txt",
    b"/..\\secret.txt",
    b"/\\..\\secret.txt",
    b"/.%2e/secret.txt",
    b"/%2e./secret.txt",
    b"/%252e%252e/secret.txt",
    b"/a/b/../../../secret.txt",
    b"/public/%2e%2e/%2e%2e/secret.txt",
    b"/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"/%2e%2e%5c%2e%2e%5cetc%5cpasswd",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/%e0%80%ae%e0%80%ae/secret.txt",
    b"/%00../secret.txt",
    b"/ok.txt%00.html",
    b"/..;/secret.txt",
    b"//etc/passwd",
    b"/C:/Windows/win.ini",
    b"/c:%5cwindows%5cwin.ini",
    b"/%2fetc%2fpasswd",
    b"/.hidden",
    b"/.git/config",
    b"/%2egit/config",
    b"/link.txt",
    b"/linkdir/secret.txt",
    b"/linkdir/public/../secret.txt",
    b"../secret.txt",
    b"/....//secret.txt",
    b"/%u002e%u002e/secret.txt",
    b"/%%32%65%%32%65/secret.txt",
    b"/..%00/secret.txt",
    b"/%2e%2e%u2215secret.txt",
];
