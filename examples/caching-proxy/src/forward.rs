//! The service at the bottom of the stack: sends the request to the upstream and streams the
//! answer back.

use std::{
    convert::Infallible,
    error::Error as _,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header, uri::PathAndQuery};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use tower::Service;
use tower_edge::cache::CacheTags;

use crate::{
    HostHeader, ProxyConfig,
    body::IdleTimeoutBody,
    hop::{append_via, remove_hop_by_hop},
    tls,
};

/// Forwards every request to the upstream over a pooled connection and answers with the
/// upstream's response, hop-by-hop fields removed. Never fails: an upstream that cannot be
/// reached, fails its TLS handshake or is too slow gives `502` or `504`.
///
/// An `http` upstream is spoken to in HTTP/1.1. An `https` one gets TLS with the upstream's
/// host name as SNI, its certificate checked against the system's CAs or
/// [`ProxyConfig::upstream_ca`]'s, and HTTP/2 when the upstream offers it (ALPN) and
/// [`HostHeader::Upstream`] is in force (HTTP/2 carries the host in `:authority`, which must
/// name the same host as `Host`); otherwise HTTP/1.1. It never falls back to plain text.
///
/// [`proxy`](crate::proxy) puts the cache in front of it; use it directly to compose other
/// layers. Clones share one connection pool.
#[derive(Clone)]
pub struct Forward {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    upstream: Arc<Upstream>,
    read_timeout: Duration,
    via: bool,
}

struct Upstream {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    host: HostHeader,
}

impl Forward {
    /// A forwarding service for `config`'s upstream, TLS, `Host`, timeouts and `Via` settings;
    /// the cache settings are not used.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn new(config: ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        // The TLS connector checks the scheme itself; the plain one would refuse `https`.
        connector.enforce_http(false);
        let https = config.upstream.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = config.forwarded_host();
        // Read only for an https upstream: loading the system's CAs reads a directory.
        let tls_config = if https {
            tls::client_config(&config.roots)
        } else {
            tls::client_config(&tls::Roots::Only(Arc::new([])))
        };
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http();
        let connector = if matches!(host, HostHeader::Upstream) {
            builder.enable_all_versions().wrap_connector(connector)
        } else {
            builder.enable_http1().wrap_connector(connector)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .timer(TokioTimer::new())
            .build(connector);
        let parts = config.upstream.into_parts();
        Self {
            client,
            upstream: Arc::new(Upstream {
                scheme: parts.scheme.expect("checked by ProxyConfig::new"),
                authority: parts.authority.expect("checked by ProxyConfig::new"),
                host,
            }),
            read_timeout: config.read_timeout,
            via: config.via,
        }
    }

    /// The request's target on the upstream: its scheme and authority, the request's path and
    /// query.
    fn target(&self, uri: &Uri) -> Uri {
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path)
            .build()
            .expect("scheme, authority and path from valid URIs")
    }

    async fn forward(self, req: Request<Body>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        parts.uri = self.target(&parts.uri);
        remove_hop_by_hop(&mut parts.headers);
        if self.via {
            append_via(&mut parts.headers, parts.version);
        }
        match &self.upstream.host {
            // The client adds one only when it is missing.
            HostHeader::Client => {}
            // The client writes the upstream's authority: as `Host` in HTTP/1.1, as
            // `:authority` in HTTP/2.
            HostHeader::Upstream => {
                parts.headers.remove(header::HOST);
            }
            HostHeader::Fixed(name) => {
                parts.headers.insert(header::HOST, name.clone());
            }
        }
        // The request's version belongs to the client's connection. HTTP/1.1 here lets the
        // pool use whichever connection it has: HTTP/1.1, or HTTP/2 when ALPN chose it.
        parts.version = Version::HTTP_11;
        let sent = self.client.request(Request::from_parts(parts, body));
        let res = match tokio::time::timeout(self.read_timeout, sent).await {
            Ok(Ok(res)) => res,
            Ok(Err(error)) if is_timeout(&error) => {
                return failure(StatusCode::GATEWAY_TIMEOUT, "upstream connect timed out");
            }
            Ok(Err(error)) if error.is_connect() => {
                log_failure(&error);
                if let Some(reason) = tls::tls_failure(&error) {
                    return failure_with(
                        StatusCode::BAD_GATEWAY,
                        format!("upstream TLS handshake failed: {reason}"),
                    );
                }
                return failure(StatusCode::BAD_GATEWAY, "upstream unreachable");
            }
            Ok(Err(error)) => {
                log_failure(&error);
                return failure(StatusCode::BAD_GATEWAY, "upstream failed to answer");
            }
            Err(_elapsed) => {
                return failure(StatusCode::GATEWAY_TIMEOUT, "upstream timed out");
            }
        };
        let (mut parts, body) = res.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        surrogate_keys_to_tags(&mut parts);
        if self.via {
            append_via(&mut parts.headers, parts.version);
        }
        // The version is the connection's, not the message's (RFC 9110 §6.2): the client gets
        // this proxy's HTTP/1.1 even from an HTTP/1.0 upstream.
        parts.version = Version::HTTP_11;
        // A body that stalls between chunks is cut off rather than held open forever.
        let body = Body::new(IdleTimeoutBody::new(self.read_timeout, body));
        Response::from_parts(parts, body)
    }
}

/// `Surrogate-Key` (space-separated, as object stores' CDNs use it) becomes cache tags, like
/// `Cache-Tag` (comma-separated), which the cache reads itself. Neither reaches the client.
fn surrogate_keys_to_tags(parts: &mut http::response::Parts) {
    if !parts.headers.contains_key(SURROGATE_KEY) {
        return;
    }
    let tags: Vec<String> = parts
        .headers
        .get_all(SURROGATE_KEY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(str::split_ascii_whitespace)
        .map(str::to_owned)
        .collect();
    parts.headers.remove(SURROGATE_KEY);
    parts.extensions.insert(CacheTags(tags));
}

const SURROGATE_KEY: &str = "surrogate-key";

fn log_failure(error: &hyper_util::client::legacy::Error) {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::warn!(error = %message, "upstream request failed");
}

/// A connect timeout surfaces as an I/O `TimedOut` somewhere in the error's sources.
fn is_timeout(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The proxy's own answer when the upstream gave none; never stored.
fn failure(status: StatusCode, reason: &'static str) -> Response<Body> {
    failure_with(status, reason.to_owned())
}

fn failure_with(status: StatusCode, mut reason: String) -> Response<Body> {
    reason.push('\n');
    let mut res = Response::new(Body::from(reason));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field(
                "upstream",
                &format_args!("{}://{}", self.upstream.scheme, self.upstream.authority),
            )
            .field("host", &self.upstream.host)
            .field("read_timeout", &self.read_timeout)
            .field("via", &self.via)
            .finish_non_exhaustive()
    }
}

impl Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = Infallible;
    // Boxed: the future does network I/O, and the pooled client's future is not nameable.
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pool opens connections on demand; there is nothing to wait for here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn targets_the_upstream_with_the_request_path_and_query() {
        let config = ProxyConfig::new("http://127.0.0.1:8000").unwrap();
        let forward = Forward::new(config);
        let from_origin_form = forward.target(&"/a/b?x=1&y=2".parse().unwrap());
        assert_eq!(from_origin_form, "http://127.0.0.1:8000/a/b?x=1&y=2");
        let from_absolute_form = forward.target(&"http://public.example/c".parse().unwrap());
        assert_eq!(from_absolute_form, "http://127.0.0.1:8000/c");
    }

    #[tokio::test]
    async fn answers_an_http_1_0_upstream_in_http_1_1_with_via() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        let config = ProxyConfig::new(&format!("http://{addr}"))
            .unwrap()
            .via(true);
        let res = tower::ServiceExt::oneshot(
            Forward::new(config),
            Request::get("/").body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.version(), Version::HTTP_11);
        assert_eq!(res.headers()[header::VIA], "1.0 tower-edge");
    }

    #[tokio::test]
    async fn answers_502_when_nothing_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let config = ProxyConfig::new(&format!("http://{addr}")).unwrap();
        let res = tower::ServiceExt::oneshot(
            Forward::new(config),
            Request::get("/").body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    }
}
