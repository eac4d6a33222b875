//! The preset: the recommended stack of layers, in the right order, from one call.
//!
//! ```text
//! request ─▶ ResponseCache ─▶ Compression ─▶ ETag ─▶ LastModified ─▶ your handlers
//! ```
//!
//! [`EdgeStack::new`] builds it with every layer's defaults and a cache keyed by the
//! compression layer's negotiation (so each stored variant is already compressed). Each part
//! can be replaced by another layer of the same kind (`with_…`) or removed (`without_…`, which
//! puts tower's `Identity` in its place), and the whole stack is one `Layer` for
//! `Router::layer`.
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, header};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_edge::{cache::MokaStore, stack::EdgeStack};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let page = "<p>hello</p>".repeat(200);
//! let app = Router::new()
//!     .route("/", get(move || async move {
//!         ([(header::CACHE_CONTROL, "public, max-age=60"), (header::CONTENT_TYPE, "text/html")], page)
//!     }))
//!     .layer(EdgeStack::new(MokaStore::default()).default_ttl(Duration::from_secs(30)));
//!
//! let get = || Request::get("/").header(header::HOST, "example.com")
//!     .header(header::ACCEPT_ENCODING, "br").body(Body::empty()).unwrap();
//! let first = app.clone().oneshot(get()).await.unwrap();
//! assert_eq!(first.headers()[header::CONTENT_ENCODING], "br");
//! assert!(first.headers()[header::ETAG].to_str().unwrap().starts_with("W/\""));
//! first.into_body().collect().await.unwrap();
//! # tokio::task::yield_now().await;
//! let second = app.oneshot(get()).await.unwrap();
//! assert!(second.headers()["cache-status"].to_str().unwrap().starts_with("tower-edge; hit"));
//! # }
//! ```

use std::time::Duration;

use tower::{Layer, layer::util::Identity};
use tower_edge_store::CacheStore;

use crate::{
    cache::{CacheHandle, ResponseCacheLayer},
    compression::{CompressionLayer, Predicate},
    etag::ETagLayer,
    last_modified::LastModifiedLayer,
};

/// The recommended stack: `C` (the response cache) outside `Z` (compression) outside `E`
/// (ETag) outside `L` (Last-Modified), and outside them all `O`, an
/// [`ObserveLayer`](crate::observe::ObserveLayer) when [`observe`](EdgeStack::observe) adds one.
/// See the [module docs](crate::stack).
#[derive(Clone, Debug)]
pub struct EdgeStack<C, Z, E, L, O = Identity> {
    cache: C,
    compression: Z,
    etag: E,
    last_modified: L,
    observe: O,
}

impl<St: CacheStore + Clone>
    EdgeStack<ResponseCacheLayer<St>, CompressionLayer, ETagLayer, LastModifiedLayer>
{
    /// Every layer with its defaults, the cache in `store`, keyed by the compression layer's
    /// negotiation.
    pub fn new(store: St) -> Self {
        let compression = CompressionLayer::new();
        Self {
            cache: ResponseCacheLayer::new(store).encoding(Some(compression.negotiator())),
            compression,
            etag: ETagLayer::new(),
            last_modified: LastModifiedLayer::new(),
            observe: Identity::new(),
        }
    }
}

impl<St: CacheStore + Clone, Z, E, L, O> EdgeStack<ResponseCacheLayer<St>, Z, E, L, O> {
    /// The cache's TTL for responses without freshness information of their own.
    ///
    /// Defaults to none (see [`ResponseCacheLayer::default_ttl`]).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.cache = self.cache.default_ttl(ttl);
        self
    }

    /// A handle on the preset's cache, for invalidation and statistics outside requests (see
    /// [`ResponseCacheLayer::handle`]). It stays live whatever is changed after it is taken,
    /// the compression layer included.
    pub fn handle(&self, origin: &str) -> CacheHandle {
        self.cache.handle(origin)
    }

    /// Adjusts the preset's cache (bypass, key, freshness, ...) in place, keeping it keyed by
    /// the compression layer's negotiation.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use tower_edge::{cache::MokaStore, stack::EdgeStack};
    ///
    /// let stack = EdgeStack::new(MokaStore::default()).cache(|cache| {
    ///     cache
    ///         .bypass(|parts| parts.headers.contains_key("x-preview"))
    ///         .stale_while_revalidate(Duration::from_secs(30))
    /// });
    /// # let _ = stack;
    /// ```
    #[must_use]
    pub fn cache(
        mut self,
        configure: impl FnOnce(ResponseCacheLayer<St>) -> ResponseCacheLayer<St>,
    ) -> Self {
        self.cache = configure(self.cache);
        self
    }

    /// Requests for which `f` is true bypass the cache (Flask-Caching's `unless`): a logged-in
    /// user's, say. The same as `.cache(|c| c.bypass(f))`.
    ///
    /// ```
    /// use tower_edge::{cache::MokaStore, stack::EdgeStack};
    ///
    /// let stack = EdgeStack::new(MokaStore::default())
    ///     .unless(|parts| parts.headers.contains_key("cookie"));
    /// # let _ = stack;
    /// ```
    #[must_use]
    pub fn unless<F>(self, f: F) -> Self
    where
        F: Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    {
        self.cache(|cache| cache.bypass(f))
    }

    /// The cache to use instead. Its `encoding` should be the compression layer's
    /// [`CompressionLayer::negotiator`]; [`EdgeStack::with_compression`] keeps them in step.
    ///
    /// Defaults to `ResponseCacheLayer::new(store)` keyed by the default compression layer.
    #[must_use]
    pub fn with_cache<St2>(
        self,
        cache: ResponseCacheLayer<St2>,
    ) -> EdgeStack<ResponseCacheLayer<St2>, Z, E, L, O> {
        EdgeStack {
            cache,
            compression: self.compression,
            etag: self.etag,
            last_modified: self.last_modified,
            observe: self.observe,
        }
    }

    /// The compression layer to use instead; the cache is re-keyed by its negotiation.
    ///
    /// Defaults to [`CompressionLayer::new`].
    #[must_use]
    pub fn with_compression<P: Predicate>(
        self,
        compression: CompressionLayer<P>,
    ) -> EdgeStack<ResponseCacheLayer<St>, CompressionLayer<P>, E, L, O> {
        EdgeStack {
            cache: self.cache.encoding(Some(compression.negotiator())),
            compression,
            etag: self.etag,
            last_modified: self.last_modified,
            observe: self.observe,
        }
    }

    /// No compression; the cache keys nothing on the encoding (a response that still varies on
    /// `Accept-Encoding` is keyed by the raw header).
    #[must_use]
    pub fn without_compression(self) -> EdgeStack<ResponseCacheLayer<St>, Identity, E, L, O> {
        EdgeStack {
            cache: self.cache.encoding(None),
            compression: Identity::new(),
            etag: self.etag,
            last_modified: self.last_modified,
            observe: self.observe,
        }
    }
}

impl<C, Z, E, L, O> EdgeStack<C, Z, E, L, O> {
    /// Times every request outside the whole stack with `observe` (request durations by route
    /// and cache outcome, origin time, the slow-request log: see
    /// [`ObserveLayer`](crate::observe::ObserveLayer)).
    ///
    /// The same as `.layer(observe)` after the stack, but cheaper under axum: a layer of its own
    /// on a `Router` is one more boxed service and body per request, which this saves.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use axum::{Router, routing::get};
    /// use tower_edge::{cache::MokaStore, observe::ObserveLayer, stack::EdgeStack};
    ///
    /// let app: Router = Router::new()
    ///     .route("/api/items/{id}", get(|| async { "{}" }))
    ///     .layer(
    ///         EdgeStack::new(MokaStore::default())
    ///             .observe(ObserveLayer::new().slow_after(Duration::from_millis(500))),
    ///     );
    /// ```
    #[must_use]
    pub fn observe(
        self,
        observe: crate::observe::ObserveLayer,
    ) -> EdgeStack<C, Z, E, L, crate::observe::ObserveLayer> {
        EdgeStack {
            cache: self.cache,
            compression: self.compression,
            etag: self.etag,
            last_modified: self.last_modified,
            observe,
        }
    }

    /// No response cache.
    #[must_use]
    pub fn without_cache(self) -> EdgeStack<Identity, Z, E, L, O> {
        EdgeStack {
            cache: Identity::new(),
            compression: self.compression,
            etag: self.etag,
            last_modified: self.last_modified,
            observe: self.observe,
        }
    }

    /// The ETag layer to use instead (say, `ETagLayer::new().algorithm(Algorithm::Xxh3_128)`).
    ///
    /// Defaults to [`ETagLayer::new`].
    #[must_use]
    pub fn with_etag(self, etag: ETagLayer) -> EdgeStack<C, Z, ETagLayer, L, O> {
        EdgeStack {
            cache: self.cache,
            compression: self.compression,
            etag,
            last_modified: self.last_modified,
            observe: self.observe,
        }
    }

    /// No computed ETags (handlers' own still pass through the other layers).
    #[must_use]
    pub fn without_etag(self) -> EdgeStack<C, Z, Identity, L, O> {
        EdgeStack {
            cache: self.cache,
            compression: self.compression,
            etag: Identity::new(),
            last_modified: self.last_modified,
            observe: self.observe,
        }
    }

    /// The Last-Modified layer to use instead (say, with a `source`).
    ///
    /// Defaults to [`LastModifiedLayer::new`].
    #[must_use]
    pub fn with_last_modified(
        self,
        last_modified: LastModifiedLayer,
    ) -> EdgeStack<C, Z, E, LastModifiedLayer, O> {
        EdgeStack {
            cache: self.cache,
            compression: self.compression,
            etag: self.etag,
            last_modified,
            observe: self.observe,
        }
    }

    /// No Last-Modified evaluation.
    #[must_use]
    pub fn without_last_modified(self) -> EdgeStack<C, Z, E, Identity, O> {
        EdgeStack {
            cache: self.cache,
            compression: self.compression,
            etag: self.etag,
            last_modified: Identity::new(),
            observe: self.observe,
        }
    }
}

impl<S, C, Z, E, L, O> Layer<S> for EdgeStack<C, Z, E, L, O>
where
    L: Layer<S>,
    E: Layer<L::Service>,
    Z: Layer<E::Service>,
    C: Layer<Z::Service>,
    O: Layer<C::Service>,
{
    type Service = O::Service;

    fn layer(&self, inner: S) -> Self::Service {
        // Innermost first: the handler's own layer is applied first.
        let inner = self.last_modified.layer(inner);
        let inner = self.etag.layer(inner);
        let inner = self.compression.layer(inner);
        self.observe.layer(self.cache.layer(inner))
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_edge_store::MokaStore;

    use super::*;
    use crate::etag::Algorithm;

    fn page() -> String {
        "<li>item</li>".repeat(300)
    }

    fn routes() -> Router {
        Router::new().route(
            "/",
            get(|| async {
                (
                    [
                        (header::CACHE_CONTROL, "public, max-age=60"),
                        (header::CONTENT_TYPE, "text/html"),
                    ],
                    page(),
                )
            }),
        )
    }

    async fn send(
        app: &Router,
        accept: &str,
        extra: Option<(&str, &str)>,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let mut req = Request::get("/")
            .header(header::HOST, "t")
            .header(header::ACCEPT_ENCODING, accept);
        if let Some((n, v)) = extra {
            req = req.header(n, v);
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        (status, headers, body)
    }

    #[tokio::test]
    async fn a_handle_taken_first_stays_live_through_every_later_change() {
        let stack = EdgeStack::new(MokaStore::default());
        let early = stack.handle("http://t");
        let stack = stack
            .default_ttl(std::time::Duration::from_secs(30))
            .with_compression(CompressionLayer::new())
            .cache(|cache| cache.stale_if_error(std::time::Duration::from_secs(60)));
        let app = routes().layer(stack);
        send(&app, "br", None).await;
        let (_, h, _) = send(&app, "br", None).await;
        assert!(h["cache-status"].to_str().unwrap().contains("hit"));
        assert_eq!(early.stats().hits, 1);
        assert_eq!(early.stats().misses, 1);
        assert_eq!(early.invalidate("/").await.unwrap(), 1);
        let (_, h, _) = send(&app, "br", None).await;
        assert!(h["cache-status"].to_str().unwrap().contains("fwd=miss"));
    }

    #[tokio::test]
    async fn after_warm_up_a_browsers_first_request_and_a_bare_one_are_hits() {
        let stack = EdgeStack::new(MokaStore::default());
        let handle = stack.handle("http://t");
        let app = routes().layer(stack);
        let report = crate::cache::warm_up(app.clone(), "http://t", ["/"]).await;
        assert_eq!(report.len(), 2);
        assert!(
            report
                .iter()
                .all(|w| w.result.as_ref().ok() == Some(&StatusCode::OK))
        );
        for accept in ["gzip, deflate, br", "gzip, deflate, br, zstd", ""] {
            let (_, h, _) = send(&app, accept, None).await;
            let status = h["cache-status"].to_str().unwrap();
            assert!(
                status.starts_with("tower-edge; hit"),
                "{accept:?}: {status}"
            );
        }
        assert_eq!(handle.stats().misses, 2);
    }

    #[tokio::test]
    async fn unless_bypasses_the_cache_for_the_requests_it_picks() {
        let app = routes().layer(
            EdgeStack::new(MokaStore::default()).unless(|p| p.headers.contains_key("cookie")),
        );
        send(&app, "br", None).await;
        let (_, h, _) = send(&app, "br", Some(("cookie", "session=1"))).await;
        assert_eq!(h["cache-status"], "tower-edge; fwd=bypass");
        let (_, h, _) = send(&app, "br", None).await;
        assert!(h["cache-status"].to_str().unwrap().contains("hit"));
    }

    #[tokio::test]
    async fn the_full_stack_compresses_tags_caches_and_revalidates() {
        let app = routes().layer(EdgeStack::new(MokaStore::default()));
        let (_, h, br) = send(&app, "br", None).await;
        assert_eq!(h[header::CONTENT_ENCODING], "br");
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        assert!(etag.starts_with("W/\""), "{etag}");
        let (_, h, again) = send(&app, "gzip;q=0.5, br", None).await;
        assert!(
            h["cache-status"]
                .to_str()
                .unwrap()
                .starts_with("tower-edge; hit")
        );
        assert_eq!(br, again);
        // The weakened tag revalidates against the cache.
        let (status, _, _) = send(&app, "br", Some(("if-none-match", &etag))).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn parts_can_be_removed_or_replaced() {
        let bare = routes().layer(
            EdgeStack::new(MokaStore::default())
                .without_compression()
                .without_cache(),
        );
        let (_, h, body) = send(&bare, "br", None).await;
        assert!(!h.contains_key(header::CONTENT_ENCODING));
        assert!(!h.contains_key("cache-status"));
        assert_eq!(body, page().as_bytes());
        assert!(h.contains_key(header::ETAG));

        let xxh3 = routes().layer(
            EdgeStack::new(MokaStore::default())
                .with_etag(ETagLayer::new().algorithm(Algorithm::Xxh3_128))
                .with_compression(
                    CompressionLayer::new().prefer(&[crate::compression::Coding::Gzip]),
                )
                .without_last_modified(),
        );
        let (_, h, _) = send(&xxh3, "br, gzip", None).await;
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        // An XXH3 tag is 22 base64url characters: W/ + quotes + 22.
        assert_eq!(h[header::ETAG].len(), 26, "{:?}", h[header::ETAG]);
        // The cache was re-keyed with the new negotiation: a br+gzip client hits the gzip entry.
        let (_, h, _) = send(&xxh3, "gzip, br", None).await;
        assert!(
            h["cache-status"]
                .to_str()
                .unwrap()
                .starts_with("tower-edge; hit")
        );
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
    }
}
