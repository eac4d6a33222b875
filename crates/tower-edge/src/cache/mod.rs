//! Middleware that caches responses: an RFC 9111 shared cache inside the application.
//!
//! [`ResponseCacheLayer`] goes outermost. A request it can answer from its [`CacheStore`] never
//! reaches the service below; one it cannot goes on, stripped of the client's conditionals and
//! `Range`, and the response is stored (when RFC 9111 allows it) while it streams to the client.
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode, header};
//! use tower::ServiceExt;
//! use tower_edge::cache::ResponseCacheLayer;
//! use tower_edge_store::MokaStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/api/items", get(|| async {
//!         ([(header::CACHE_CONTROL, "public, max-age=60")], "[1,2,3]")
//!     }))
//!     .layer(ResponseCacheLayer::new(MokaStore::default()));
//!
//! let get = || Request::get("/api/items").header(header::HOST, "example.com").body(Body::empty()).unwrap();
//! let first = app.clone().oneshot(get()).await.unwrap();
//! assert_eq!(first.headers()["cache-status"], "tower-edge; fwd=miss; stored");
//! http_body_util::BodyExt::collect(first.into_body()).await.unwrap(); // stored at the body's end
//! # tokio::task::yield_now().await;
//!
//! let second = app.oneshot(get()).await.unwrap();
//! assert_eq!(second.status(), StatusCode::OK);
//! assert!(second.headers()["cache-status"].to_str().unwrap().starts_with("tower-edge; hit; ttl="));
//! assert_eq!(second.headers()[header::AGE], "0");
//! # }
//! ```
//!
//! # What is stored
//!
//! Storability and freshness follow RFC 9111 as read by [`crate::http::storability`] and
//! [`crate::http::freshness`], on the one `Cache-Control` parser, so directive names count in
//! any letter case (`Private` is `private`): any final status with explicit freshness
//! (`s-maxage` over `max-age` over `Expires`, with `Age`) may be stored, and without it only the
//! heuristically cacheable statuses of RFC 9110 §15.1; `no-store`, `private` and responses to
//! requests with `Authorization` that do not say `public`, `s-maxage` or `must-revalidate` are
//! not stored (unless [`ResponseCacheLayer::per_user`] keys entries by user);
//! `must-understand` stores the statuses this cache understands even with `no-store`;
//! `no-cache` responses are stored and revalidated on every use; an invalid `max-age`, `Age` or
//! `Expires` makes a response stale, never fresh; heuristic freshness only with
//! [`ResponseCacheLayer::heuristic_freshness`]. This layer adds:
//!
//! - responses with `Set-Cookie` are never stored, and `Vary: *` never matches;
//! - responses to requests with `Cookie` are stored only when marked `public` or `s-maxage`,
//!   or varying on `Cookie` (see [`ResponseCacheLayer::store_cookie_requests`]);
//! - [`ResponseCacheLayer::default_ttl`] (or the [`DefaultTtl`] response extension, per route)
//!   for responses with no freshness information;
//! - [`CacheTtl`] (a response extension) or the `tower-edge-ttl` response header (seconds) set
//!   the TTL for this cache only, and are removed before the client sees the response;
//! - `CDN-Cache-Control` (RFC 9213) when [`ResponseCacheLayer::cdn_cache_control`] is on;
//! - `stale-while-revalidate` and `stale-if-error` (RFC 5861), from the response or layer
//!   defaults, never for responses with `must-revalidate`, `proxy-revalidate` or `no-cache`;
//!   the layer's defaults also not for responses with `s-maxage` (RFC 9111 §5.2.2.10).
//!
//! # Keys
//!
//! `GET scheme://host/path?query` with the query sorted and filtered through
//! [`ResponseCacheLayer::query_allow`] / [`ResponseCacheLayer::query_deny`], plus the negotiated
//! content encoding (see [`ResponseCacheLayer::encoding`]), the request's values of each header
//! in the stored response's `Vary`, and the parts added by [`ResponseCacheLayer::key`] and
//! [`ResponseCacheLayer::per_user`]. `HEAD` is answered from the `GET` entry.
//!
//! The host comes from an absolute request target (without userinfo) or the `Host` header. A
//! request with several `Host` lines, or a `Host` that is not a plain `host[:port]` (a `/`, `?`,
//! `@`, whitespace…), bypasses the cache and invalidates nothing: otherwise
//! `Host: example.com/private` on `/x` would be stored under the key of
//! `http://example.com/private/x`, and served to whoever asks for that.
//!
//! A [`CacheHandle`] addresses the same keys: paths on its origin (the request's, in a
//! handler). So by default an entry stored for `http://127.0.0.1:3000` is not reached by a
//! handle for `http://localhost:3000`, nor by `https://…` behind a proxy that terminated TLS.
//! A site reached under several names keys everything under one origin with
//! [`ResponseCacheLayer::key_origin`] ([`KeyOrigin::fixed`], or [`KeyOrigin::None`] for no
//! origin at all): then requests for every name share entries, and every handle reaches them.
//!
//! # Answers
//!
//! Every response says what happened in `Cache-Status` (RFC 9211): `hit; ttl=N`,
//! `fwd=miss; stored`, `fwd=miss; detail=private`, `fwd=stale; fwd-status=304`, `fwd=bypass` and
//! so on. A hit carries `Age`. The client's `If-None-Match`, `If-Modified-Since`, `If-Match` and
//! `If-Unmodified-Since` are answered from the stored validators (304, 412) on hits and misses
//! alike, through [`crate::http::preconditions`].
//!
//! A stale entry with validators is revalidated with a conditional request; a `304` refreshes
//! the stored headers (RFC 9111 §4.3.4).
//!
//! # Ranges and partial content
//!
//! A `Range` on a stored response is answered from it (`206`, multipart in the request's order,
//! `416`). A `Range` on a miss goes to the service below as it is, and the `206` it answers is
//! stored as a part of the representation (RFC 9111 §3.3) when it is a single part whose
//! `Content-Range` gives the complete length. Later ranges wholly within the parts held are
//! answered from them. A new part is combined with the parts held only when both carry the same
//! strong `ETag` (§3.4); otherwise it replaces them. Once the parts cover the representation,
//! they are stored as its complete `200`, which then answers plain `GET`s and `HEAD`s. Parts are
//! fetched again, with the range, once stale (they are not revalidated), and a request with
//! preconditions other than `If-Range` goes to the service below.
//!
//! # Single-flight
//!
//! Concurrent misses on one key make one inner call, by the protocol of
//! [`tower_edge_store::single_flight`]: the others wait and are answered from the entry it
//! stored, or go to the inner service themselves if it could not be stored. A call that runs
//! past [`ResponseCacheLayer::coalesce_timeout`] lets one more waiting miss go to the inner
//! service, not all of them; a leader whose client goes away hands its flight to one waiter.
//! Instances sharing a store (Redis) do the same through the store's lock: the instance that
//! takes it looks the key up once more before forwarding, so an entry another instance stored
//! and unlocked a moment before is served instead of fetched a second time.
//!
//! # Invalidation
//!
//! [`CacheHandle`] (an axum extractor with feature `axum`, or from
//! [`ResponseCacheLayer::handle`]) removes by URL, by path prefix, by tag (from a `Cache-Tag`
//! response header or the [`CacheTags`] extension, both removed before the client), by
//! generation (O(1)), or everything. A successful unsafe request (`POST`, `PUT`, `PATCH`,
//! `DELETE`, …) removes its URL and its same-origin `Location` and `Content-Location`
//! (RFC 9111 §4.4). Every invalidation removes all variants.
//!
//! A response whose fetch an invalidation overtook is not stored: the origin may have read its
//! data before the write that caused the invalidation, and storing it after would bring the old
//! data back until it expired. The request it was fetched for still gets it. This covers the
//! invalidations of this process and, with the invalidation bus of `tower-edge-store`'s
//! `Tiered`, those whose message arrives before the fill ends (a fill that ends first can leave
//! the old entry in Redis until its TTL: the window is the bus's latency). It needs a store
//! that keeps a
//! [`Fence`](tower_edge_store::fence::Fence), as every store of `tower-edge-store` does. Such
//! responses are counted in [`CacheStats::fenced`].
//!
//! # Buffering and failure
//!
//! A stored body is kept whole in the store, up to [`ResponseCacheLayer::max_body_size`]
//! (8 MiB by default). On a miss the body streams to the client while a copy accumulates; a body
//! that passes the bound stops being copied and streams on. The body is read whole and stored
//! before answering when its length is known and at most 64 KiB, when the client's conditionals
//! turn a storable miss into a 304 or 412, and for a part (`206`): then `Cache-Status` says
//! `stored` exactly when the store kept it. A streamed body's `Cache-Status` makes no such
//! claim, since its headers leave before the copy is complete. A store that fails is a miss:
//! counted in [`CacheStats::store_errors`], logged with `tracing`, and the request goes
//! through.
//!
//! Stores and background refreshes run on the Tokio runtime the service is called from.
//!
//! # Warming up
//!
//! [`warm_up`] sends `GET`s for a list of paths through the stack at start-up, for the brotli
//! and the identity variants (or the `Accept-Encoding` values given to [`warm_up_with`]), so the first
//! visitors already get hits.

mod body;
mod future;
mod handle;
mod heads;
mod key;
mod layer;
mod outcome;
mod parts;
mod policy;
mod route;
mod service;
mod stats;
mod warm;

use std::{sync::Arc, time::Duration};

use tower_edge_store::single_flight::Flights;

#[cfg(feature = "axum")]
pub use self::handle::MissingCacheLayer;
pub use self::{
    body::CacheBody,
    future::ResponseFuture,
    handle::CacheHandle,
    key::{InvalidOrigin, KeyOrigin},
    layer::{EncodingFn, ResponseCacheLayer},
    outcome::{CacheName, InvalidCacheName},
    policy::TTL_HEADER,
    route::{CacheFor, CacheForFuture, CacheForLayer, cache_for},
    service::ResponseCache,
    stats::CacheStats,
    warm::{WARM_ACCEPT_ENCODINGS, Warmed, warm_up, warm_up_with},
};
pub use tower_edge_store::{CacheStore, MokaStore};

/// Response extension: the TTL for this cache only, overriding `Cache-Control`. Removed before
/// the response leaves the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheTtl(pub Duration);

/// Response extension: the TTL for a response that has no freshness information of its own
/// (the per-route form of [`ResponseCacheLayer::default_ttl`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultTtl(pub Duration);

/// Response extension: invalidation tags for the stored response, in addition to those in a
/// `Cache-Tag` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheTags(pub Vec<String>);

/// What every service of one layer shares.
pub(crate) struct Shared<St> {
    store: St,
    config: layer::Config,
    flights: Arc<Flights>,
    refreshes: Arc<Flights>,
    counters: Arc<stats::Counters>,
    handle: Arc<handle::HandleInner>,
    /// Recent fresh hits' heads (per layer: they carry its `Cache-Status` name).
    heads: heads::Heads,
}

#[cfg(test)]
mod tests;

/// Hooks for [`crate::fuzzing`]: the key and policy functions the layer uses, on plain inputs.
#[cfg(feature = "fuzzing")]
mod fuzz_hooks {
    use std::time::{Duration, SystemTime};

    use http::{HeaderMap, HeaderName, Request, StatusCode};
    use tower_edge_store::{CacheKey, MokaStore};

    use super::{ResponseCacheLayer, key, policy};

    /// How long a response is to be kept, if storable.
    pub(crate) struct FuzzFreshness {
        pub(crate) fresh_for: Duration,
        pub(crate) initial_age: Duration,
        inner: policy::Freshness,
    }

    impl FuzzFreshness {
        pub(crate) fn store_ttl(&self, has_validators: bool, min_keep: Duration) -> Duration {
            self.inner.store_ttl(has_validators, min_keep)
        }
    }

    pub(crate) fn fuzz_decide(
        status: StatusCode,
        response: HeaderMap,
        request: &HeaderMap,
        cdn_cache_control: bool,
        heuristic: bool,
        now: SystemTime,
    ) -> Result<FuzzFreshness, &'static str> {
        thread_local! {
            // Building a layer (and its store) per input would dominate the run.
            static LAYERS: [ResponseCacheLayer<MokaStore>; 4] = std::array::from_fn(|i| {
                ResponseCacheLayer::new(MokaStore::default())
                    .cdn_cache_control(i & 1 != 0)
                    .heuristic_freshness(i & 2 != 0)
            });
        }
        let layer = LAYERS.with(|layers| {
            layers[usize::from(cdn_cache_control) | usize::from(heuristic) << 1].clone()
        });

        let mut res = http::Response::new(());
        *res.status_mut() = status;
        *res.headers_mut() = response;
        let (mut parts, ()) = res.into_parts();
        let inner = policy::decide(request, &mut parts, false, now, &layer.shared.config, true)?;
        Ok(FuzzFreshness {
            fresh_for: inner.fresh_for,
            initial_age: inner.initial_age,
            inner,
        })
    }

    pub(crate) fn fuzz_vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
        key::vary_names(headers)
    }

    pub(crate) fn fuzz_vary_key(
        base: CacheKey,
        vary: &[HeaderName],
        request: &HeaderMap,
    ) -> CacheKey {
        key::vary_key(base, vary, request)
    }

    /// The key of a GET for `request` with the default query policy, or `None` when the layer
    /// would not key it.
    pub(crate) fn fuzz_request_key(request: &Request<()>) -> Option<CacheKey> {
        let (parts, ()) = request.clone().into_parts();
        let resource = key::request_resource(
            "",
            &key::KeyOrigin::Request,
            &parts,
            &key::QueryPolicy::default(),
        )?;
        Some(key::base_key(resource, "any", None))
    }
}
#[cfg(feature = "fuzzing")]
pub(crate) use fuzz_hooks::{fuzz_decide, fuzz_request_key, fuzz_vary_key, fuzz_vary_names};
