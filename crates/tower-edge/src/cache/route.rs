//! Per-route cache policy: [`cache_for`].

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::DefaultTtl;

/// Caches a route's responses for `ttl` when they state no freshness of their own: the
/// per-route form of [`ResponseCacheLayer::default_ttl`](super::ResponseCacheLayer::default_ttl),
/// with the same limits (no errors, no streams of unknown length).
///
/// It sets the [`DefaultTtl`] response extension, which a [`ResponseCacheLayer`] outside
/// reads; the client's own `Cache-Control` is not touched. A response that states its freshness
/// (`Cache-Control: max-age`, `no-store`, ...) keeps it.
///
/// ```
/// use std::time::Duration;
///
/// use axum::{Router, routing::get};
/// use tower_edge::cache::{MokaStore, ResponseCacheLayer, cache_for};
///
/// let app: Router = Router::new()
///     .route("/report", get(|| async { "expensive" }).layer(cache_for(Duration::from_secs(60))))
///     .route("/live", get(|| async { "not cached" }))
///     .layer(ResponseCacheLayer::new(MokaStore::default()));
/// ```
///
/// [`ResponseCacheLayer`]: super::ResponseCacheLayer
pub fn cache_for(ttl: Duration) -> CacheForLayer {
    CacheForLayer { ttl }
}

/// The layer [`cache_for`] makes.
#[derive(Clone, Copy, Debug)]
pub struct CacheForLayer {
    ttl: Duration,
}

impl<S> Layer<S> for CacheForLayer {
    type Service = CacheFor<S>;

    fn layer(&self, inner: S) -> CacheFor<S> {
        CacheFor {
            inner,
            ttl: self.ttl,
        }
    }
}

/// The service [`cache_for`] wraps a route in.
#[derive(Clone, Copy, Debug)]
pub struct CacheFor<S> {
    inner: S,
    ttl: Duration,
}

impl<S, Req, B> Service<Req> for CacheFor<S>
where
    S: Service<Req, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = CacheForFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        CacheForFuture {
            inner: self.inner.call(req),
            ttl: self.ttl,
        }
    }
}

pin_project! {
    /// Response future of [`CacheFor`].
    #[derive(Debug)]
    pub struct CacheForFuture<F> {
        #[pin]
        inner: F,
        ttl: Duration,
    }
}

impl<F, B, E> Future for CacheForFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        // A handler's own DefaultTtl wins over the route's.
        if res.extensions().get::<DefaultTtl>().is_none() {
            res.extensions_mut().insert(DefaultTtl(*this.ttl));
        }
        Poll::Ready(Ok(res))
    }
}
