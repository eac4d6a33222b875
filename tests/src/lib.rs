//! Support for tower-edge's integration tests: a real server on a loopback port and a small
//! HTTP/1.1 client.

pub mod redis_server;
pub mod store_suite;

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
