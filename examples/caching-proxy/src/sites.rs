//! [`Proxy`]: one or several upstreams chosen by `Host`, over one cache, in memory or shared
//! through Redis.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    Router,
    body::Body,
    response::{IntoResponse, Response},
    routing::future::RouteFuture,
};
use http::{Request, StatusCode, header};
use tower::{Layer, Service};
use tower_edge::{
    cache::{CacheName, MokaStore, ResponseCacheLayer},
    compression::CompressionLayer,
};
use tower_edge_store::{CacheStore, RedisStore, tiered::Tiered};

use crate::{Forward, ProxyConfig, admin::Purge};

/// The proxy's parts, assembled by [`Proxy::build`].
///
/// ```
/// use tower_edge_caching_proxy::{Proxy, ProxyConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_edge_caching_proxy::ConfigError> {
/// let built = Proxy::new()
///     // Requests for `media.example.com` go to an object store, keeping its own host name.
///     .site("media.example.com", ProxyConfig::new("https://media-bucket.s3.example")?)
///     // Every other host, to the application.
///     .upstream(ProxyConfig::new("http://127.0.0.1:8000")?)
///     .cache_bytes(512 * 1024 * 1024)
///     .build();
/// let app: axum::Router = built.router;
/// let purge = built.purge; // for the admin listener
/// # let _ = (app, purge);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Proxy {
    default: Option<ProxyConfig>,
    sites: Vec<(String, ProxyConfig)>,
    cache_bytes: Option<u64>,
    shared: Option<RedisStore>,
    cache_name: Option<CacheName>,
}

/// What [`Proxy::build`] returns.
#[derive(Debug)]
#[non_exhaustive]
pub struct Built {
    /// The proxy: serve it with [`axum::serve()`].
    pub router: Router,
    /// Purges what the proxy stored, for the admin listener ([`Admin`](crate::Admin)).
    pub purge: Purge,
}

impl Proxy {
    /// A proxy with no upstream yet: add [`Proxy::upstream`], [`Proxy::site`], or both.
    pub fn new() -> Self {
        Self::default()
    }

    /// The upstream for every request whose `Host` no [`Proxy::site`] names.
    ///
    /// Without one, such requests get `421 Misdirected Request`.
    #[must_use]
    pub fn upstream(mut self, config: ProxyConfig) -> Self {
        self.default = Some(config);
        self
    }

    /// The upstream for requests whose `Host` is `host` (compared without the port and
    /// regardless of case). A later call for the same host replaces an earlier one.
    #[must_use]
    pub fn site(mut self, host: &str, config: ProxyConfig) -> Self {
        let host = normalized_host(host).to_ascii_lowercase();
        self.sites.retain(|(named, _)| *named != host);
        self.sites.push((host, config));
        self
    }

    /// The bound of the in-memory cache, in bytes of stored entries (with a shared cache, of
    /// the memory in front of it).
    ///
    /// Defaults to 256 MiB.
    #[must_use]
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// The name the proxy gives itself in `Cache-Status`, after any the upstream sent (a
    /// tower-edge application behind it says `tower-edge`).
    ///
    /// Defaults to `tower-edge-proxy`.
    #[must_use]
    pub fn cache_name(mut self, name: CacheName) -> Self {
        self.cache_name = Some(name);
        self
    }

    /// Keeps what is stored in Redis as well, behind each instance's memory, so every proxy
    /// instance on that Redis answers from what any of them fetched. Invalidations (a `POST`
    /// through any instance, a purge) reach every instance's memory through the invalidation
    /// bus.
    #[must_use]
    pub fn shared(mut self, l2: RedisStore) -> Self {
        self.shared = Some(l2);
        self
    }

    /// Assembles the proxy. Must be called inside a Tokio runtime (connection pools and the
    /// invalidation bus run on it).
    pub fn build(self) -> Built {
        let memory = MokaStore::builder()
            .max_bytes(self.cache_bytes.unwrap_or(256 * 1024 * 1024))
            .build();
        match self.shared.clone() {
            None => self.assemble(memory, None),
            Some(l2) => {
                let store = Tiered::new(memory, l2).with_invalidation_bus();
                let probe = store.clone();
                self.assemble(store, Some(Arc::new(move || probe.bus_connected())))
            }
        }
    }

    fn assemble<St: CacheStore + Clone>(
        self,
        store: St,
        bus: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    ) -> Built {
        let name = self
            .cache_name
            .unwrap_or_else(|| CacheName::new("tower-edge-proxy").expect("a token"));
        let sites: HashMap<String, Router> = self
            .sites
            .into_iter()
            .map(|(host, config)| (host, site(store.clone(), config, &name)))
            .collect();
        let fallback = self.default.map_or_else(
            || Router::new().fallback(misdirected),
            |config| site(store.clone(), config, &name),
        );
        let dispatch = Dispatch {
            sites: Arc::new(sites),
            fallback,
        };
        Built {
            router: Router::new().fallback_service(dispatch),
            purge: Purge::new(store, bus),
        }
    }
}

/// One upstream's cache and forwarding, over the proxy's `store`.
fn site<St: CacheStore + Clone>(store: St, config: ProxyConfig, name: &CacheName) -> Router {
    let mut cache = ResponseCacheLayer::new(store)
        .cache_name(name.clone())
        .heuristic_freshness(config.heuristic)
        .cdn_cache_control(config.cdn_cache_control)
        .stale_if_error(config.stale_if_error)
        .store_set_cookie(config.store_set_cookie);
    if let Some(ttl) = config.default_ttl {
        cache = cache.default_ttl(ttl);
    }
    let compress = config.compress;
    let forward = Forward::new(config);
    if compress {
        let compression = CompressionLayer::new();
        // The cache keys variants by the coding this layer will pick, not the raw header.
        let cache = cache.encoding(Some(compression.negotiator()));
        Router::new().fallback_service(cache.layer(compression.layer(forward)))
    } else {
        Router::new().fallback_service(cache.layer(forward))
    }
}

/// The host part of a `Host` value or site name (not lowercased).
pub(crate) fn normalized_host(host: &str) -> &str {
    let host = host.trim();
    // `[v6]:port`, `[v6]`, `name:port`, `name`.
    let name = match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    };
    // `example.com.` (fully qualified) names the same host as `example.com`.
    name.strip_suffix('.').unwrap_or(name)
}

/// Sends each request to the site its `Host` names, or to the fallback.
#[derive(Clone)]
struct Dispatch {
    sites: Arc<HashMap<String, Router>>,
    fallback: Router,
}

impl Dispatch {
    fn route(&self, req: &Request<Body>) -> &Router {
        if self.sites.is_empty() {
            return &self.fallback;
        }
        let host = req
            .uri()
            .host()
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .map(normalized_host);
        let Some(host) = host else {
            return &self.fallback;
        };
        let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.sites.get(&host.to_ascii_lowercase())
        } else {
            self.sites.get(host)
        };
        found.unwrap_or(&self.fallback)
    }
}

impl Service<Request<Body>> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Routers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // An absolute-form target names the host, and a `Host` that says otherwise is to be
        // replaced by it (RFC 9112 §3.2.2): the upstream must get the host the cache keys the
        // response under, never another.
        if let Some(authority) = req.uri().authority()
            && req.uri().scheme().is_some()
        {
            let hostport = authority.as_str().rsplit('@').next().unwrap_or_default();
            match http::HeaderValue::from_str(hostport) {
                Ok(host) => {
                    req.headers_mut().insert(header::HOST, host);
                }
                Err(_) => return bad_target().call(req),
            }
        }
        self.route(&req).clone().call(req)
    }
}

/// The answer for a target whose authority cannot be a `Host`.
fn bad_target() -> Router {
    Router::new().fallback(|| async {
        (
            StatusCode::BAD_REQUEST,
            [(header::CACHE_CONTROL, "no-store")],
            "the request target's host is not a valid Host\n",
        )
    })
}

/// The answer for a host no site names, without a default upstream.
async fn misdirected(req: Request<Body>) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("(none)");
    let body = format!("no upstream is configured for host {host:?}\n");
    (
        StatusCode::MISDIRECTED_REQUEST,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_hosts_without_their_port() {
        assert_eq!(
            normalized_host("Media.Example.com:8080"),
            "Media.Example.com"
        );
        assert_eq!(normalized_host("example.com"), "example.com");
        assert_eq!(normalized_host("[::1]:80"), "[::1]");
        assert_eq!(normalized_host("[::1]"), "[::1]");
        assert_eq!(normalized_host("example.com."), "example.com");
        assert_eq!(normalized_host("example.com.:8080"), "example.com");
    }

    #[tokio::test]
    async fn routes_by_host_and_refuses_unknown_hosts_without_a_default() {
        use tower::ServiceExt;
        let proxy = Proxy::new()
            .site("A.example", ProxyConfig::new("http://127.0.0.1:9").unwrap())
            .build();
        let send = |target: &str, host: &str| {
            let req = Request::get(target)
                .header(header::HOST, host)
                .body(Body::empty())
                .unwrap();
            proxy.router.clone().oneshot(req)
        };
        let res = send("/", "b.example").await.unwrap();
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        // The named site's upstream is down: its own answer, not the 421.
        let res = send("/", "a.EXAMPLE:8080").await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        // An absolute-form target wins over `Host` (RFC 9112 §3.2.2), both ways.
        let res = send("http://b.example/", "a.example").await.unwrap();
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
        let res = send("http://a.example/", "b.example").await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }
}
