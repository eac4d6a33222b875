//! The tower-edge example server: every layer at work on realistic routes.
//!
//! [`app`] builds the router, so tests can drive it with `oneshot` and the binary can serve it.
//! Routes:
//!
//! | route                        | what it shows                                                   |
//! |------------------------------|-----------------------------------------------------------------|
//! | `GET /`                      | this list as an HTML page, one cached copy per language (`Vary: Accept-Language`) |
//! | `GET /api/products`          | a ~10 KiB JSON catalogue, `ETag` hashed from the body by `ETagLayer` |
//! | `GET /api/products/{id}`     | `ETag` and `Last-Modified` from the record's version: 304 before any serialisation |
//! | `PUT /api/products/{id}`     | `If-Match` checked before the write: 412 for a stale copy, 428 without one |
//! | `POST`, `DELETE /api/products…` | create and delete; the cache drops what they changed      |
//! | `GET /api/low-stock`         | `stale-while-revalidate`: once stale, answered from the cache at once while one background request recomputes it |
//! | `GET /api/stats`             | an expensive report with an early 304 from a version counter    |
//! | `GET /articles/{slug}`       | `Last-Modified` stamped by `LastModifiedLayer` from the handler's data |
//! | `GET /events`                | server-sent events, compressed and flushed per event            |
//! | `GET /static/…`              | files from `static/` through `ServeDir`: ranges, validators, a precompressed `.gz`, an immutable hashed asset |
//! | `GET /download/…`            | a resumable 2 MiB download (`Range`, `If-Range`, `Content-Disposition`); behind nginx, an `X-Accel-Redirect` instead of the bytes ([`AppState::with_x_accel_redirect`]) |
//! | `GET /cache/stats`           | the response cache's counters                                   |
//! | `POST /cache/purge`          | empties the response cache, or one tag of it (bearer token)     |
//! | `GET /metrics`               | Prometheus metrics, when the binary installed a recorder        |
//! | `GET /dashboard`             | a live page drawn from `/metrics`: hit ratio, request rate, p50/p99 by cache outcome and route, store health |
//! | `GET /healthz`               | liveness                                                        |
//!
//! Every route sits behind [`EdgeStack`], the preset (response cache, compression, `ETag`,
//! `Last-Modified`), on an in-memory store or memory in front of Redis: the catalogue and the
//! articles are served from the cache (`Cache-Status` says so), a `PUT` removes the product it
//! changed (RFC 9111 §4.4) and, through its `Cache-Tag`, the catalogue listing.
//!
//! The code is laid out by concern, one module each: [`catalogue`] (products and their
//! reports), [`articles`], [`home`] (the index page), [`events`], [`files`] (static files and
//! downloads) and [`operations`] (cache statistics and purge, metrics, health, profiling). The
//! [`faults`] module is test scaffolding that a copy of this server can delete.

use axum::Router;
use tower_edge::{
    cache::{CacheStore, MokaStore, ResponseCacheLayer},
    compression::CompressionLayer,
    etag::ETagLayer,
    fs::ServeDir,
    last_modified::LastModifiedLayer,
    observe::ObserveLayer,
    stack::EdgeStack,
};

pub mod articles;
pub mod catalogue;
pub mod events;
pub mod faults;
pub mod files;
pub mod home;
pub mod operations;
#[cfg(feature = "profiling")]
mod profile;
mod state;
pub mod telemetry;
#[cfg(test)]
mod testing;

pub use catalogue::{Product, ProductUpdate};
pub use files::{DOWNLOAD_LEN, STATIC_DIR, default_static_dir, download_bytes};
pub use home::ROUTES;
pub use state::AppState;

/// The example application with its layers, on fresh in-memory data.
pub fn app() -> Router {
    app_with_state(AppState::new())
}

/// The example application on the given data, with an in-memory cache.
pub fn app_with_state(state: AppState) -> Router {
    let store = MokaStore::builder().max_bytes(64 * 1024 * 1024).build();
    app_with_store(state, store)
}

/// [`app_with_store`] on memory in front of `l2`, with the invalidation bus: what `main.rs`
/// runs when `REDIS_URL` or `REDIS_CLUSTER_NODES` is set.
pub fn app_on_redis(state: AppState, l2: tower_edge_store::RedisStore) -> Router {
    let memory = MokaStore::builder().max_bytes(64 * 1024 * 1024).build();
    let store = tower_edge_store::tiered::Tiered::new(memory, l2)
        .clock(state.clock())
        .with_invalidation_bus();
    app_with_store(state, store)
}

/// The example application with its cache in `store`: [`MokaStore`] alone, or memory in front
/// of Redis ([`app_on_redis`]).
pub fn app_with_store<St: CacheStore + Clone>(state: AppState, store: St) -> Router {
    let edge = Edge::new(store, &state);
    edge.around(routes(state))
}

/// Every route of the application, on its state, without the edge stack.
pub(crate) fn routes(state: AppState) -> Router {
    Router::new()
        .merge(home::routes())
        .merge(catalogue::routes())
        .merge(articles::routes())
        .merge(events::routes())
        .merge(operations::routes())
        .nest_service("/static", files::static_files(&state))
        .with_state(state)
}

/// What goes around the routes: the preset, and the downloads (inside it too, unless they are
/// offloaded to a front server).
pub(crate) struct Edge<St> {
    stack: EdgeStack<
        ResponseCacheLayer<St>,
        CompressionLayer,
        ETagLayer,
        LastModifiedLayer,
        ObserveLayer,
    >,
    observe: ObserveLayer,
    #[cfg(feature = "profiling")]
    profiling: std::sync::Arc<profile::RouteProfiling>,
    downloads: ServeDir,
    offloaded: bool,
}

impl<St: CacheStore + Clone> Edge<St> {
    pub(crate) fn new(store: St, state: &AppState) -> Self {
        // `/metrics` asks the store for its gauges (entries, bytes, the Redis breaker...).
        let metered = store.clone();
        let _ = state
            .store_metrics
            .set(Box::new(move || metered.record_metrics()));
        let observe = match state.slow_after {
            Some(threshold) => ObserveLayer::new().slow_after(threshold),
            None => ObserveLayer::new(),
        };
        let stack = EdgeStack::new(store)
            // The articles say when they last changed through a response extension; the
            // preset's LastModifiedLayer turns it into `Last-Modified`.
            .with_last_modified(
                LastModifiedLayer::new()
                    .source(articles::published)
                    .clock(state.clock()),
            )
            // Ages and freshness on the application's clock, so tests move time without
            // sleeping.
            .cache(|cache| cache.clock(state.clock()))
            // What an operator reads is never a cached copy, and it does not count in the hit
            // ratio: the cache passes it by (`Cache-Status: ...; fwd=bypass`).
            .unless(|parts| operator_route(parts.uri.path()))
            // Outside it all, request durations by route and cache outcome, and the
            // slow-request log.
            .observe(observe.clone());
        Self {
            stack,
            observe,
            #[cfg(feature = "profiling")]
            profiling: std::sync::Arc::clone(&state.route_profiling),
            downloads: files::downloads(state),
            offloaded: state.offloads_downloads(),
        }
    }

    /// The routes with the edge stack around them.
    pub(crate) fn around(self, routes: Router) -> Router {
        // Outside the stack, so that a profiled route's requests run all of it on the
        // profiled thread (`GET /debug/pprof/route`).
        #[cfg(feature = "profiling")]
        let routes = routes.layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::clone(&self.profiling),
            profile::run_profiled,
        ));
        if self.offloaded {
            // Outside the stack: an offloaded answer carries no bytes of its own (nginx sends
            // the file, with its own validators and ranges), so an `ETag` hashed from its empty
            // body, or a cached copy of it answering a `Range`, would describe the wrong bytes.
            // Observed all the same.
            let downloads = tower::ServiceBuilder::new()
                .layer(self.observe)
                .service(self.downloads);
            routes
                .layer(self.stack)
                .nest_service("/download", downloads)
        } else {
            routes
                .nest_service("/download", self.downloads)
                .layer(self.stack)
        }
    }
}

/// The routes an operator reads: metrics, the live page, health, the cache's own counters.
fn operator_route(path: &str) -> bool {
    matches!(path, "/metrics" | "/dashboard" | "/healthz") || path.starts_with("/cache/")
}

/// Where the response cache keeps what is shared between instances, as the environment of
/// `main.rs` says: `REDIS_URL` (one Redis) or `REDIS_CLUSTER_NODES` (comma-separated node URLs
/// of a Redis Cluster), never both. `Ok(None)`: neither is set, memory only.
pub fn shared_store(
    redis_url: Option<&str>,
    cluster_nodes: Option<&str>,
) -> Result<Option<tower_edge_store::RedisStore>, String> {
    let builder = match (redis_url, cluster_nodes) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err("set REDIS_URL or REDIS_CLUSTER_NODES, not both".to_owned());
        }
        (Some(url), None) => tower_edge_store::RedisStore::builder(url),
        (None, Some(nodes)) => {
            let nodes: Vec<&str> = nodes
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            if nodes.is_empty() {
                return Err("REDIS_CLUSTER_NODES lists no node URL".to_owned());
            }
            tower_edge_store::RedisStore::cluster_builder(nodes)
        }
    };
    builder
        .prefix("tower-edge-example:")
        .build()
        .map(Some)
        .map_err(|e| match (redis_url, cluster_nodes) {
            (Some(url), _) => format!("REDIS_URL {url:?}: {e}"),
            (_, nodes) => format!("REDIS_CLUSTER_NODES {:?}: {e}", nodes.unwrap_or_default()),
        })
}
