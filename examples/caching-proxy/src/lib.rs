//! An RFC 9111 shared cache in front of HTTP and HTTPS upstreams, built from tower-edge layers.
//!
//! ```text
//! client ──▶ ResponseCacheLayer ──▶ [CompressionLayer] ──▶ Forward ──▶ upstream
//! ```
//!
//! [`proxy`] returns an axum [`Router`] that sends every request, whatever its method, to the
//! upstream through a pooled client (HTTP/1.1, or HTTP/2 over TLS when the upstream offers it;
//! see [`Forward`]), with a [`ResponseCacheLayer`](tower_edge::cache::ResponseCacheLayer) (over a
//! [`MokaStore`](tower_edge::cache::MokaStore)) in front. [`Proxy`] builds the same for several
//! upstreams chosen by `Host`, over a cache shared by every instance through Redis, and gives
//! the [`Purge`] an operator's [`Admin`] listener serves; [`mod@file`] reads all of it from TOML.
//!
//! The cache does what a shared cache does: it stores what RFC 9111
//! lets it store, answers fresh hits itself with `Age` and `Cache-Status`, answers the client's
//! `If-None-Match` / `If-Modified-Since` with `304` and `Range` with `206` from the stored
//! response, revalidates stale entries with a conditional request, and removes a URL's entries
//! after a successful `POST`, `PUT`, `PATCH` or `DELETE` to it (RFC 9111 §4.4).
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, header};
//! use tower::ServiceExt;
//! use tower_edge_caching_proxy::{ProxyConfig, proxy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // An origin on a free loopback port.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let upstream = format!("http://{}", listener.local_addr().unwrap());
//! let origin = Router::new().route(
//!     "/",
//!     get(|| async { ([(header::CACHE_CONTROL, "public, max-age=60")], "hello") }),
//! );
//! tokio::spawn(async move { axum::serve(listener, origin).await });
//!
//! let app = proxy(ProxyConfig::new(&upstream).unwrap());
//! let get = || {
//!     Request::get("/").header(header::HOST, "www.example.com").body(Body::empty()).unwrap()
//! };
//! let first = app.clone().oneshot(get()).await.unwrap();
//! assert_eq!(first.headers()["cache-status"], "tower-edge-proxy; fwd=miss; stored");
//! http_body_util::BodyExt::collect(first.into_body()).await.unwrap(); // stored at the end
//! # tokio::task::yield_now().await;
//!
//! let second = app.oneshot(get()).await.unwrap();
//! assert!(second.headers()["cache-status"].to_str().unwrap().starts_with("tower-edge-proxy; hit"));
//! # }
//! ```
//!
//! # What is forwarded
//!
//! - The method, the path and the query, unchanged, to the upstream's scheme and authority.
//! - Every request and response header except the hop-by-hop ones (RFC 9110 §7.6.1):
//!   `Connection` and the fields it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//!   `Transfer-Encoding` and `Upgrade`.
//! - `Host` as the client sent it for an `http` upstream, so the origin builds links and
//!   virtual hosts for the public name, as it would with the proxy absent; the upstream's own
//!   name for an `https` upstream, whose certificate names it. [`HostHeader`] chooses otherwise.
//!   The cache keys by the client's `Host` in every case. A request in absolute form
//!   (`GET http://host/path`) names its host in the target, and its `Host` is replaced by it
//!   (RFC 9112 §3.2.2), so that the upstream answers for the host the cache keys by.
//! - `Via` (RFC 9110 §7.6.3) only with [`ProxyConfig::via`].
//! - Not interim responses. An upstream's `100 Continue` or `103 Early Hints` is read and
//!   dropped; the client gets the final response, and nothing of the `103` is stored with it.
//!   RFC 9110 §15.2 asks a proxy to forward 1xx responses, and RFC 8297 §2 lets an intermediary
//!   drop `103`, but the HTTP server this proxy runs on (hyper 1.x) has no way to send a 1xx
//!   before the final response, so the proxy cannot forward them. The conformance tests check
//!   that a `100` or `103` before a `200` or a `304` changes nothing else.
//!
//! Nothing is transformed unless [`ProxyConfig::compress`] is on: then a
//! [`CompressionLayer`](tower_edge::compression::CompressionLayer)
//! sits inside the cache, and the cache keys variants by the encoding that layer negotiates, so
//! each stored variant is compressed once.
//!
//! # Failures
//!
//! An upstream that refuses the connection, or breaks it before answering, gives `502 Bad
//! Gateway`; one that does not connect within [`ProxyConfig::connect_timeout`] or send its
//! response head within [`ProxyConfig::read_timeout`] gives `504 Gateway Timeout`. Both carry a
//! short `text/plain` reason and `Cache-Control: no-store`. A TLS handshake that fails (an
//! untrusted or expired certificate, one for another name) is a `502` that says why; the
//! request is never sent in plain text instead. A body that stalls for longer than
//! the read timeout between two chunks is cut off, and the client sees the connection end early.
//!
//! # Buffering
//!
//! Bodies stream in both directions. The cache keeps a copy of a storable response up to its
//! bound (8 MiB); nothing else is buffered, except that a response of a known length up to
//! 64 KiB, and a `206` part, is read whole and stored before it is sent, so that its
//! `Cache-Status` says `stored` only when the store kept it.
//!
//! # Ranges
//!
//! A `Range` on a miss goes to the upstream as it is, and its `206` is stored as a part of the
//! representation (RFC 9111 §3.3). Later ranges within the parts held are answered from them;
//! parts with the same strong `ETag` are combined (§3.4), and once they cover the whole
//! representation the proxy holds it as a `200` and answers every `GET` and range from it. A
//! video or a large download behind the proxy fills the cache as clients fetch it.

mod admin;
mod body;
pub mod file;
mod forward;
mod hop;
mod sites;
mod tls;

use std::{fmt, path::Path, str::FromStr, time::Duration};

use axum::Router;
use http::{HeaderValue, Uri};

pub use self::{
    admin::{Admin, Purge, PurgeError},
    forward::Forward,
    sites::{Built, Proxy},
};

/// Where the proxy sends requests and how it caches and forwards them.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    upstream: Uri,
    cache_bytes: u64,
    connect_timeout: Duration,
    read_timeout: Duration,
    via: bool,
    compress: bool,
    heuristic: bool,
    default_ttl: Option<Duration>,
    cdn_cache_control: bool,
    stale_if_error: Duration,
    store_set_cookie: bool,
    roots: tls::Roots,
    host_header: Option<HostHeader>,
}

/// The `Host` the upstream receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostHeader {
    /// The client's, unchanged: the upstream builds links and picks virtual hosts by the
    /// public name, as it would with the proxy absent. The default for `http` upstreams.
    Client,
    /// The upstream's own `host[:port]`, as in the upstream URL: what an origin behind TLS
    /// expects (an object store's bucket host, a CDN origin), since its certificate names the
    /// same host. The default for `https` upstreams, and the only mode in which the proxy
    /// speaks HTTP/2 to the upstream.
    Upstream,
    /// This name, whatever the client sent.
    Fixed(HeaderValue),
}

impl FromStr for HostHeader {
    type Err = ConfigError;

    /// `client`, `upstream`, or a host name (with an optional port) to send.
    fn from_str(value: &str) -> Result<Self, ConfigError> {
        match value {
            "client" => Ok(Self::Client),
            "upstream" => Ok(Self::Upstream),
            name => {
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
                match HeaderValue::from_str(name) {
                    Ok(value) if valid => Ok(Self::Fixed(value)),
                    _ => Err(ConfigError(format!(
                        "host header {name:?}: expected client, upstream, or a host[:port]"
                    ))),
                }
            }
        }
    }
}

impl ProxyConfig {
    /// A configuration for `upstream`, an `http://host[:port]` or `https://host[:port]` URL
    /// with no path beyond `/`.
    pub fn new(upstream: &str) -> Result<Self, ConfigError> {
        let uri: Uri = upstream
            .parse()
            .map_err(|e| ConfigError(format!("invalid upstream {upstream:?}: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => {
                return Err(ConfigError(format!(
                    "upstream scheme {other:?} is not supported, only http and https"
                )));
            }
            None => {
                return Err(ConfigError(format!(
                    "upstream {upstream:?} needs a scheme, e.g. http://127.0.0.1:8000"
                )));
            }
        }
        if uri.authority().is_none() {
            return Err(ConfigError(format!("upstream {upstream:?} has no host")));
        }
        if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
            return Err(ConfigError(format!(
                "upstream {upstream:?} has a path or query; give only scheme, host and port"
            )));
        }
        Ok(Self {
            upstream: uri,
            cache_bytes: 256 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            via: false,
            compress: false,
            heuristic: false,
            default_ttl: None,
            cdn_cache_control: true,
            stale_if_error: Duration::ZERO,
            store_set_cookie: false,
            roots: tls::Roots::System,
            host_header: None,
        })
    }

    /// Trusts only the certificate authorities in this PEM file for an `https` upstream (a
    /// private CA), instead of the system's. The file is read and checked now.
    pub fn upstream_ca(mut self, pem_file: impl AsRef<Path>) -> Result<Self, ConfigError> {
        self.roots = tls::Roots::from_pem_file(pem_file.as_ref())?;
        Ok(self)
    }

    /// The `Host` the upstream receives; see [`HostHeader`].
    ///
    /// Defaults to [`HostHeader::Client`] for an `http` upstream and [`HostHeader::Upstream`]
    /// for an `https` one.
    #[must_use]
    pub fn host_header(mut self, host: HostHeader) -> Self {
        self.host_header = Some(host);
        self
    }

    /// The `Host` mode in force: the one set, or the default for the upstream's scheme.
    pub(crate) fn forwarded_host(&self) -> HostHeader {
        self.host_header.clone().unwrap_or_else(|| {
            if self.upstream.scheme() == Some(&http::uri::Scheme::HTTPS) {
                HostHeader::Upstream
            } else {
                HostHeader::Client
            }
        })
    }

    /// Heuristic freshness (RFC 9111 §4.2.2) for responses that have a `Last-Modified` but no
    /// explicit freshness: fresh for a tenth of their age, as shared caches commonly do.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn heuristic(mut self, enabled: bool) -> Self {
        self.heuristic = enabled;
        self
    }

    /// A TTL for responses with no freshness information at all (no `Cache-Control` lifetime, no
    /// `Expires`), like a CDN's default TTL. Responses that forbid storing are still not stored.
    ///
    /// Defaults to none: such responses are not stored.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Reads `CDN-Cache-Control` (RFC 9213) in place of `Cache-Control` and `Expires` when the
    /// upstream sends it: the field is meant for caches like this one. It reaches the client
    /// unchanged.
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn cdn_cache_control(mut self, enabled: bool) -> Self {
        self.cdn_cache_control = enabled;
        self
    }

    /// How long past its freshness a stored response may be served when the upstream fails
    /// (cannot be reached, times out, closes the connection, or answers with a 5xx), for
    /// responses that give no `stale-if-error` of their own (RFC 5861). Never for responses
    /// that say `must-revalidate`, `proxy-revalidate`, `no-cache` or `s-maxage`
    /// (RFC 9111 §4.2.4).
    ///
    /// Defaults to zero: a failing upstream's error reaches the client.
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Stores responses with `Set-Cookie` as RFC 9111 §7.3 allows, and serves them, cookie
    /// included, to later clients. Only for an upstream that marks personal cookies `private`
    /// or `no-store`.
    ///
    /// Defaults to `false`: a response that sets a cookie is passed on and not stored.
    #[must_use]
    pub fn store_set_cookie(mut self, enabled: bool) -> Self {
        self.store_set_cookie = enabled;
        self
    }

    /// The upstream's URL, as given to [`ProxyConfig::new`].
    pub fn upstream(&self) -> &Uri {
        &self.upstream
    }

    /// The bound of the in-memory cache, in bytes of stored entries.
    ///
    /// Defaults to 256 MiB.
    #[must_use]
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// How long to wait for a TCP connection to the upstream; past it the client gets `504`.
    ///
    /// Defaults to 5 seconds.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the upstream's response head once the request is sent (past it the
    /// client gets `504`), and then between two chunks of its body (past it the body is cut off).
    ///
    /// Defaults to 30 seconds.
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Adds `Via: <version> tower-edge` to forwarded requests and to responses (RFC 9110
    /// §7.6.3).
    ///
    /// Defaults to `false`: headers pass through as they are.
    #[must_use]
    pub fn via(mut self, enabled: bool) -> Self {
        self.via = enabled;
        self
    }

    /// Compresses responses the upstream sent uncompressed, for clients that accept it, with a
    /// [`CompressionLayer`](tower_edge::compression::CompressionLayer) inside the cache, so
    /// compressed variants are stored.
    ///
    /// Defaults to `false`: bodies reach the client as the upstream sent them.
    #[must_use]
    pub fn compress(mut self, enabled: bool) -> Self {
        self.compress = enabled;
        self
    }
}

/// A mistake in the proxy's configuration: an upstream URL it cannot use, a CA file it cannot
/// read, a configuration file that does not parse. The message says which and why.
#[derive(Clone, Debug)]
pub struct ConfigError(pub(crate) String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The caching proxy as an axum [`Router`]: every request goes through an in-memory cache of
/// [`ProxyConfig::cache_bytes`] to the upstream. Serve it with [`axum::serve()`]. [`Proxy`]
/// builds the rest: several upstreams by `Host`, a cache shared through Redis, and the
/// operator's [`Purge`].
///
/// Must be called inside a Tokio runtime (the client's connection pool runs on it).
pub fn proxy(config: ProxyConfig) -> Router {
    let bytes = config.cache_bytes;
    Proxy::new()
        .upstream(config)
        .cache_bytes(bytes)
        .build()
        .router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_an_http_upstream_with_host_and_port() {
        let config = ProxyConfig::new("http://127.0.0.1:8000").unwrap();
        assert_eq!(config.upstream().authority().unwrap(), "127.0.0.1:8000");
        assert!(ProxyConfig::new("http://origin.internal/").is_ok());
    }

    #[test]
    fn rejects_upstreams_it_cannot_forward_to() {
        assert!(ProxyConfig::new("https://bucket.s3.example:8443").is_ok());
        for bad in [
            "ftp://example.com",
            "127.0.0.1:8000",
            "/relative",
            "http://example.com/base",
            "http://example.com/?q=1",
            "not a url",
        ] {
            assert!(ProxyConfig::new(bad).is_err(), "{bad} should be rejected");
        }
    }
}
