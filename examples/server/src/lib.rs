//! The tower-edge example server: every layer at work on realistic routes.
//!
//! [`app`] builds the router, so tests can drive it with `oneshot` and the binary can serve it.
//! Routes:
//!
//! | route                        | what it shows                                                   |
//! |------------------------------|-----------------------------------------------------------------|
//! | `GET /`                      | this list as an HTML page (with a computed `ETag`)              |
//! | `GET /api/products`          | a ~10 KiB JSON catalogue, `ETag` hashed from the body by `ETagLayer` |
//! | `GET /api/products/{id}`     | `ETag` and `Last-Modified` from the record's version: 304 before any serialisation |
//! | `PUT /api/products/{id}`     | `If-Match` checked before the write: 412 for a stale copy, 428 without one |
//! | `GET /articles/{slug}`       | `Last-Modified` stamped by `LastModifiedLayer` from the handler's data |
//! | `GET /api/stats`             | an expensive report with an early 304 from a version counter    |
//! | `GET /cache/stats`           | the response cache's counters                                   |
//! | `GET /events`                | server-sent events, compressed and flushed per event            |
//! | `POST /cache/purge`          | empties the response cache                                      |
//! | `GET /healthz`               | liveness                                                        |
//! | `GET /static/…`              | files from `static/` through `ServeDir`: ranges, validators, a precompressed `.gz`, an immutable hashed asset |
//!
//! The whole router sits behind a [`ResponseCacheLayer`] on an in-memory store: the catalogue
//! and the articles are served from it (`Cache-Status` says so), a `PUT` removes the product it
//! changed (RFC 9111 §4.4) and, through its `Cache-Tag`, the catalogue listing.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
#[cfg(feature = "profiling")]
mod profile;
pub mod telemetry;

use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tower_edge::{
    cache::{CacheHandle, CacheStore, CacheTags, MokaStore, ResponseCacheLayer},
    compression::CompressionLayer,
    etag::ETagLayer,
    extract::{Preconditions, Unmet},
    fs::ServeDir,
    fs::ServeFile,
    http::{etag::EntityTag, preconditions::Validators},
    last_modified::LastModifiedLayer,
};
use tower_edge_store::memo::Memo;

/// A product in the catalogue.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Product {
    /// Identifier.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Price in cents.
    pub price_cents: u64,
    /// Free-text description.
    pub description: String,
    /// Units in stock.
    pub stock: u32,
}

/// What a client may change with `PUT /api/products/{id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct ProductUpdate {
    /// New display name.
    pub name: String,
    /// New price in cents.
    pub price_cents: u64,
    /// New description.
    pub description: String,
    /// New stock level.
    pub stock: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    product: Product,
    version: u64,
    updated_at: SystemTime,
}

#[derive(Clone, Debug)]
struct Article {
    title: &'static str,
    body: &'static str,
    published: SystemTime,
}

/// The server's in-memory data and settings. Cloning shares them.
#[derive(Clone)]
pub struct AppState {
    products: Arc<RwLock<BTreeMap<u32, Record>>>,
    articles: Arc<BTreeMap<&'static str, Article>>,
    // Bumped on every write; the stats report is a function of it.
    data_version: Arc<AtomicU64>,
    // Product lookups, memoized (as a slow database query would be).
    memo: Memo<MokaStore>,
    purge_token: Option<Arc<str>>,
    metrics: Option<PrometheusHandle>,
    // The large download, in a directory removed when the last clone of the state goes.
    download: Arc<tempfile::TempDir>,
    faults: Option<Faults>,
    // What `/static` serves.
    static_dir: Arc<std::path::PathBuf>,
}

/// Faults to inject into the data routes (`GET /api/products…` and `/articles/…`), for soak
/// and failure testing: a share of requests fails with `503` (marked `x-fault: injected`, so a
/// test can tell them from 5xx the stack produced itself), another share is delayed, and an
/// outage ([`Faults::set_outage`]) fails them all.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Failures per thousand requests.
    pub fail_per_mille: u32,
    /// Delays per thousand requests.
    pub slow_per_mille: u32,
    /// How long a delayed request waits.
    pub slow_for: Duration,
    rng: Arc<AtomicU64>,
    outage: Arc<std::sync::atomic::AtomicBool>,
}

impl Faults {
    /// Fails `fail_per_mille` and delays `slow_per_mille` of every thousand requests by
    /// `slow_for`, chosen by a generator seeded with `seed`.
    pub fn new(fail_per_mille: u32, slow_per_mille: u32, slow_for: Duration, seed: u64) -> Self {
        Self {
            fail_per_mille,
            slow_per_mille,
            slow_for,
            rng: Arc::new(AtomicU64::new(seed | 1)),
            outage: Arc::default(),
        }
    }

    /// Starts or ends an outage: while it lasts, every data request fails. Clones share it.
    pub fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::Relaxed);
    }

    /// A number in `0..1000` (xorshift; shared, so concurrent draws differ).
    fn draw(&self) -> u32 {
        let mut x = self.rng.load(Ordering::Relaxed);
        loop {
            let mut next = x;
            next ^= next << 13;
            next ^= next >> 7;
            next ^= next << 17;
            match self
                .rng
                .compare_exchange_weak(x, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return u32::try_from(next % 1000).expect("below 1000"),
                Err(current) => x = current,
            }
        }
    }
}

/// The header that marks a failure [`Faults`] injected.
pub const FAULT_HEADER: &str = "x-fault";

async fn inject_faults(
    faults: Option<Faults>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let data_route = path.starts_with("/api/products") || path.starts_with("/articles/");
    if let Some(faults) = faults.filter(|_| data_route && req.method() == http::Method::GET) {
        let roll = faults.draw();
        if roll < faults.fail_per_mille || faults.outage.load(Ordering::Relaxed) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(FAULT_HEADER, "injected"), ("cache-control", "no-store")],
                "injected fault\n",
            )
                .into_response();
        }
        if roll < faults.fail_per_mille + faults.slow_per_mille {
            tokio::time::sleep(faults.slow_for).await;
        }
    }
    next.run(req).await
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("data_version", &self.data_version)
            .field("purge_token", &self.purge_token.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

/// The size of `/download/sample.bin`.
pub const DOWNLOAD_LEN: usize = 2 * 1024 * 1024;

/// The content of `/download/sample.bin`: [`DOWNLOAD_LEN`] pseudo-random bytes that do not
/// compress, like the archives people download. The same on every run, so a client can check
/// any range it gets.
pub fn download_bytes() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..DOWNLOAD_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

const START: u64 = 1_735_689_600; // 2025-01-01T00:00:00Z, a fixed time so tags are reproducible

impl AppState {
    /// A catalogue of 40 products and a few articles.
    pub fn new() -> Self {
        let adjectives = ["Sturdy", "Compact", "Deluxe", "Portable", "Heavy-duty"];
        let nouns = [
            "anvil", "kettle", "lantern", "compass", "toolbox", "hammock", "tent", "stove",
        ];
        let products = (1..=40u32)
            .map(|id| {
                let name = format!(
                    "{} {}",
                    adjectives[id as usize % adjectives.len()],
                    nouns[id as usize % nouns.len()]
                );
                let product = Product {
                    id,
                    description: format!(
                        "The {} is made for long trips and rough weather; item {id} of our \
                         outdoor range, tested for a decade of use.",
                        name.to_lowercase()
                    ),
                    name,
                    price_cents: 999 + u64::from(id) * 250,
                    stock: id * 3 % 17,
                };
                let record = Record {
                    product,
                    version: 1,
                    updated_at: UNIX_EPOCH + Duration::from_secs(START + u64::from(id) * 3600),
                };
                (id, record)
            })
            .collect();
        let articles = [
            (
                "caching-at-the-edge",
                Article {
                    title: "Caching at the edge",
                    body: "A response that is fresh need not be computed again. A response that \
                           is stale but unchanged need not be sent again: the client revalidates \
                           and the server answers 304 Not Modified.",
                    published: UNIX_EPOCH + Duration::from_secs(START),
                },
            ),
            (
                "validators",
                Article {
                    title: "Validators",
                    body: "ETag and Last-Modified let a client ask 'has this changed?' instead \
                           of 'send it again'. If-Match and If-Unmodified-Since turn the same \
                           validators into protection against lost updates.",
                    published: UNIX_EPOCH + Duration::from_secs(START + 86_400),
                },
            ),
        ]
        .into_iter()
        .collect();
        let download = tempfile::Builder::new()
            .prefix("tower-edge-example-")
            .tempdir()
            .expect("a temporary directory for the download");
        let bytes = download_bytes();
        std::fs::write(download.path().join("sample.bin"), bytes).expect("write the download");
        Self {
            products: Arc::new(RwLock::new(products)),
            articles: Arc::new(articles),
            data_version: Arc::new(AtomicU64::new(1)),
            memo: Memo::new(
                MokaStore::builder().max_bytes(8 * 1024 * 1024).build(),
                "products",
            ),
            purge_token: None,
            metrics: None,
            faults: None,
            download: Arc::new(download),
            static_dir: Arc::new(default_static_dir()),
        }
    }

    /// Serves `/static` from `dir` (see [`default_static_dir`] for the default).
    #[must_use]
    pub fn with_static_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.static_dir = Arc::new(dir.into());
        self
    }

    /// Protects `POST /cache/purge` with this bearer token (without one it answers 403).
    #[must_use]
    pub fn with_purge_token(mut self, token: &str) -> Self {
        self.purge_token = Some(Arc::from(token));
        self
    }

    /// Injects `faults` into the data routes (see [`Faults`]).
    #[must_use]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Serves the metrics of this recorder at `/metrics`, in the Prometheus text format.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Checks the operator token (`Authorization: Bearer <PURGE_TOKEN>`): `Err` is the answer
    /// to send instead (403 when no token is configured, 401 for a wrong one).
    #[allow(clippy::result_large_err)] // the error is the response itself
    fn authorize(&self, headers: &http::HeaderMap) -> Result<(), Response> {
        let Some(token) = self.purge_token.as_deref() else {
            return Err((
                StatusCode::FORBIDDEN,
                "operator routes are disabled: start the server with PURGE_TOKEN set\n",
            )
                .into_response());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compared without an early exit, so the time taken says nothing about the token.
        let matches = presented.is_some_and(|p| {
            p.len() == token.len()
                && p.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if matches {
            Ok(())
        } else {
            Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid bearer token is required\n",
            )
                .into_response())
        }
    }

    async fn lookup(&self, id: u32) -> Option<Record> {
        let products = Arc::clone(&self.products);
        self.memo
            .get_or_compute(&id.to_string(), Duration::from_secs(30), || async move {
                let found = products
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .cloned();
                Ok::<_, std::convert::Infallible>(found)
            })
            .await
            .unwrap_or_else(|never| match never {})
    }

    async fn forget(&self, id: u32) {
        if let Err(error) = self.memo.delete(&id.to_string()).await {
            tracing::warn!(%error, id, "could not forget a memoized product");
        }
    }
}

/// The example application with its layers, on fresh in-memory data.
pub fn app() -> Router {
    app_with_state(AppState::new())
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

/// [`app_with_store`] on memory in front of `l2`, with the invalidation bus: what `main.rs`
/// runs when `REDIS_URL` or `REDIS_CLUSTER_NODES` is set.
pub fn app_on_redis(state: AppState, l2: tower_edge_store::RedisStore) -> Router {
    let memory = MokaStore::builder().max_bytes(64 * 1024 * 1024).build();
    let store = tower_edge_store::tiered::Tiered::new(memory, l2).with_invalidation_bus();
    app_with_store(state, store)
}

/// The example application on the given data, with an in-memory cache.
pub fn app_with_state(state: AppState) -> Router {
    let store = MokaStore::builder().max_bytes(64 * 1024 * 1024).build();
    app_with_store(state, store)
}

/// The example application with its cache in `store`: [`MokaStore`] alone, or memory in front
/// of Redis ([`app_on_redis`]).
pub fn app_with_store<St: CacheStore + Clone>(state: AppState, store: St) -> Router {
    let compression = CompressionLayer::new();
    let download = state.download.path().join("sample.bin");
    let faults = state.faults.clone();
    let static_dir = Arc::clone(&state.static_dir);
    Router::new()
        .route("/", get(index))
        .route("/api/products", get(list_products).post(create_product))
        .route(
            "/api/products/{id}",
            get(get_product).put(put_product).delete(delete_product),
        )
        .route("/articles/{slug}", get(article))
        .route("/api/stats", get(stats))
        .route("/cache/stats", get(cache_stats))
        .route("/cache/purge", axum::routing::post(cache_purge))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .merge(profiling_routes())
        .route("/healthz", get(|| async { "ok" }))
        .nest_service("/static", static_files(&static_dir))
        .route_service(
            "/download/sample.bin",
            ServeFile::new(download).configure(|dir| dir.attachment(true)),
        )
        .with_state(state)
        // Innermost, so what it injects is what a failing handler would send.
        .layer(axum::middleware::from_fn(move |req, next| {
            inject_faults(faults.clone(), req, next)
        }))
        // Stamps Last-Modified from the `Published` extension that handlers attach.
        .layer(
            LastModifiedLayer::new().source(|parts: &http::response::Parts| {
                parts.extensions.get::<Published>().map(|p| p.0)
            }),
        )
        .layer(ETagLayer::new())
        // Outside ETag, so tags are computed once on the identity bytes and weakened here.
        .layer(compression.clone())
        // Outermost: a hit skips everything above, compression included. Keyed by the coding
        // the compression layer will pick, so each stored variant is already compressed.
        .layer(ResponseCacheLayer::new(store).encoding(Some(compression.negotiator())))
}

/// `GET /events`: five server-sent events, one a second. Compressed like any text, and flushed
/// per event, so each one reaches the client when it is sent.
async fn events() -> Response {
    let ticks = futures_util::stream::unfold(0u32, |n| async move {
        if n == 5 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let event = format!("id: {n}\nevent: tick\ndata: {{\"tick\":{n}}}\n\n");
        Some((Ok::<_, std::convert::Infallible>(event), n + 1))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(ticks),
    )
        .into_response()
}

/// The sample files of this crate: `static/` next to its manifest, where `cargo run` finds
/// them whatever the working directory.
pub const STATIC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/static");

/// What `/static` serves unless told otherwise (`--static-dir`, `STATIC_DIR`): the sample files
/// ([`STATIC_DIR`]) when they are there, as they are for `cargo run`; otherwise `static` in the
/// working directory, as for a binary copied elsewhere.
pub fn default_static_dir() -> std::path::PathBuf {
    let built_in = std::path::Path::new(STATIC_DIR);
    if built_in.is_dir() {
        built_in.to_path_buf()
    } else {
        std::path::PathBuf::from("static")
    }
}

/// `ServeDir` over `dir`, with gzip siblings (`app.3f2a9c1b.css.gz`) served to clients that
/// accept them.
fn static_files(dir: &std::path::Path) -> ServeDir {
    ServeDir::new(dir).precompressed_gzip(true)
}

/// `Cache-Control` for the public, briefly cacheable routes: fresh for 30 s, and served stale
/// for up to 5 minutes when the handler fails (RFC 5861).
const SHORT: &str = "public, max-age=30, stale-if-error=300";

/// A response extension: when the content was last changed.
#[derive(Clone, Copy, Debug)]
struct Published(SystemTime);

/// The routes the index page lists: (path, description).
pub const ROUTES: &[(&str, &str)] = &[
    (
        "/api/products",
        "JSON catalogue; strong ETag from a SHA-256 of the body (ETagLayer)",
    ),
    (
        "/api/products/7",
        "one product; ETag and Last-Modified from its version, 304 before serialising",
    ),
    (
        "/articles/validators",
        "HTML article; Last-Modified stamped by LastModifiedLayer",
    ),
    (
        "/api/stats",
        "expensive report; early 304 from a version counter (Preconditions extractor)",
    ),
    ("/cache/stats", "the response cache's counters (JSON)"),
    (
        "/events",
        "server-sent events, compressed and flushed one by one (CompressionLayer)",
    ),
    ("/healthz", "liveness"),
    (
        "/download/sample.bin",
        "a 2 MiB download: Range and If-Range to resume it, Content-Disposition (ServeFile)",
    ),
    (
        "/static/hello.txt",
        "a static file through ServeDir: Range, If-Range, ETag, Last-Modified",
    ),
    (
        "/static/app.3f2a9c1b.css",
        "a hashed asset: immutable for a year, gzip sibling for clients that accept it",
    ),
    ("/static/docs/", "a directory's index.html"),
];

/// The languages the home page speaks, and its greeting in each.
const GREETINGS: [(&str, &str); 3] = [
    ("en", "Every route answers conditional requests."),
    ("fr", "Chaque route répond aux requêtes conditionnelles."),
    ("de", "Jede Route beantwortet bedingte Anfragen."),
];

/// The first language of `Accept-Language` the page speaks (weights ignored: browsers list
/// languages in order), else English.
fn language(headers: &http::HeaderMap) -> &'static str {
    let wanted = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    wanted
        .split(',')
        .filter_map(|item| item.split(';').next())
        .map(|tag| {
            tag.trim()
                .split('-')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        })
        .find_map(|tag| GREETINGS.iter().find(|(l, _)| *l == tag).map(|(l, _)| *l))
        .unwrap_or("en")
}

/// `GET /`: the route list, greeting in the client's language. Cached per language: the
/// response varies on `Accept-Language`, so the cache keeps one entry per value.
async fn index(headers: http::HeaderMap) -> Response {
    let lang = language(&headers);
    let greeting = GREETINGS
        .iter()
        .find(|(l, _)| *l == lang)
        .map_or(GREETINGS[0].1, |(_, g)| *g);
    let mut html = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <title>tower-edge example</title></head><body>\n<h1>tower-edge example server</h1>\n\
         <p>{greeting} Try <code>curl -i</code> with <code>If-None-Match</code> set to the \
         <code>ETag</code> you got.</p>\n<ul>\n"
    );
    for (path, what) in ROUTES {
        html.push_str(&format!(
            "<li><a href=\"{path}\"><code>{path}</code></a>: {what}</li>\n"
        ));
    }
    html.push_str(
        "<li><code>POST /api/products</code>: create a product (201 with Location)</li>\n\
         <li><code>PUT /api/products/{id}</code>: update with <code>If-Match</code>; \
         412 when your copy is stale</li>\n\
         <li><code>DELETE /api/products/{id}</code>: delete (If-Match honoured)</li>\n\
         <li><code>POST /cache/purge?tag=catalogue</code>: purge a tag, or everything without \
         one; needs <code>Authorization: Bearer &lt;PURGE_TOKEN&gt;</code></li>\n\
         <li><code>GET /metrics</code>: Prometheus metrics (when the server installed a recorder)</li>\n\
         </ul>\n</body></html>\n",
    );
    let mut res = Html(html).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=60"),
    );
    headers.insert(
        header::VARY,
        http::HeaderValue::from_static("accept-language"),
    );
    headers.insert(
        header::CONTENT_LANGUAGE,
        http::HeaderValue::from_static(lang),
    );
    res
}

async fn list_products(State(state): State<AppState>) -> Response {
    let products = state.products.read().unwrap_or_else(|e| e.into_inner());
    let list: Vec<&Product> = products.values().map(|r| &r.product).collect();
    // The ETag comes from ETagLayer, which hashes this body. The tag lets a write to any
    // product remove this listing from the cache.
    let mut res = ([(header::CACHE_CONTROL, SHORT)], Json(list)).into_response();
    res.extensions_mut()
        .insert(CacheTags(vec!["catalogue".to_owned()]));
    res
}

fn validators(record: &Record) -> Validators {
    let tag = EntityTag::strong(&format!("p{}-v{}", record.product.id, record.version))
        .expect("digits and letters are valid entity-tag characters");
    Validators::new()
        .with_etag(tag)
        .with_last_modified(record.updated_at)
}

async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<u32>,
    pre: Preconditions,
) -> Result<Response, Response> {
    // Memoized for 30 s; every write forgets the product.
    let record = state.lookup(id).await.ok_or_else(|| not_found(id))?;
    let current = validators(&record);
    // Answer 304 from the version alone: no serialisation, and ETagLayer leaves our tag alone.
    pre.check(&current).map_err(IntoResponse::into_response)?;
    Ok((
        current,
        [(header::CACHE_CONTROL, SHORT)],
        Json(record.product),
    )
        .into_response())
}

async fn put_product(
    State(state): State<AppState>,
    Path(id): Path<u32>,
    cache: CacheHandle,
    pre: Preconditions,
    Json(update): Json<ProductUpdate>,
) -> Response {
    let response = update_product(&state, id, &pre, update);
    if response.status().is_success() {
        state.forget(id).await;
    }
    // The cache already drops this product's URL after a successful PUT (RFC 9111 §4.4); the
    // listing that contains it goes by its tag.
    if response.status().is_success()
        && let Err(error) = cache.invalidate_tag("catalogue").await
    {
        tracing::warn!(%error, "could not invalidate the catalogue");
    }
    response
}

fn update_product(
    state: &AppState,
    id: u32,
    pre: &Preconditions,
    update: ProductUpdate,
) -> Response {
    let mut products = state.products.write().unwrap_or_else(|e| e.into_inner());
    let Some(record) = products.get_mut(&id) else {
        return not_found(id);
    };
    // RFC 6585 §3: insist on a conditional update, so no client overwrites a change it never saw.
    if !pre.is_conditional() {
        return (
            StatusCode::PRECONDITION_REQUIRED,
            "precondition required: send If-Match with the ETag you last read\n",
        )
            .into_response();
    }
    // Checked under the write lock: the check and the write are atomic.
    if let Err(unmet) = pre.check(&validators(record)) {
        return unmet.into_response();
    }
    record.product = Product {
        id,
        name: update.name,
        price_cents: update.price_cents,
        description: update.description,
        stock: update.stock,
    };
    record.version += 1;
    record.updated_at = SystemTime::now();
    state.data_version.fetch_add(1, Ordering::Relaxed);
    (validators(record), Json(record.product.clone())).into_response()
}

async fn article(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let Some(article) = state.articles.get(slug.as_str()) else {
        return (StatusCode::NOT_FOUND, "no such article\n").into_response();
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\
         </head><body><article><h1>{0}</h1><p>{1}</p></article></body></html>\n",
        article.title, article.body
    );
    let mut res = ([(header::CACHE_CONTROL, "public, max-age=300")], Html(html)).into_response();
    res.extensions_mut().insert(Published(article.published));
    res
}

#[derive(Serialize)]
struct Stats {
    data_version: u64,
    products: usize,
    total_stock: u64,
    mean_price_cents: u64,
}

async fn stats(State(state): State<AppState>, pre: Preconditions) -> Result<Response, Unmet> {
    let version = state.data_version.load(Ordering::Relaxed);
    let current = Validators::new().with_etag(
        EntityTag::strong(&format!("stats-{version}")).expect("valid entity-tag characters"),
    );
    pre.check(&current)?;
    // The expensive part, skipped on a 304.
    let products = state.products.read().unwrap_or_else(|e| e.into_inner());
    let total_stock = products.values().map(|r| u64::from(r.product.stock)).sum();
    let sum: u64 = products.values().map(|r| r.product.price_cents).sum();
    let stats = Stats {
        data_version: version,
        products: products.len(),
        total_stock,
        mean_price_cents: sum / products.len().max(1) as u64,
    };
    let mut res = (current, Json(stats)).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    Ok(res)
}

async fn cache_stats(cache: CacheHandle) -> Response {
    let s = cache.stats();
    let body = serde_json::json!({
        "hits": s.hits,
        "misses": s.misses,
        "stale": s.stale,
        "revalidated": s.revalidated,
        "coalesced": s.coalesced,
        "bypassed": s.bypassed,
        "stored": s.stored,
        "store_errors": s.store_errors,
        "bytes_stored": s.bytes_stored,
    });
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `POST /cache/purge[?tag=T]`: purges a tag, or everything, for a holder of the token.
async fn cache_purge(
    State(state): State<AppState>,
    cache: CacheHandle,
    headers: http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = state.authorize(&headers) {
        return refused;
    }
    let result = match query.get("tag") {
        Some(tag) => cache
            .invalidate_tag(tag)
            .await
            .map(|n| format!("purged {n} entries tagged {tag}\n")),
        None => cache.purge().await.map(|()| "purged\n".to_owned()),
    };
    match result {
        Ok(message) => message.into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the cache store failed: {error}\n"),
        )
            .into_response(),
    }
}

#[cfg(feature = "profiling")]
fn profiling_routes() -> Router<AppState> {
    Router::new().route("/debug/pprof/flamegraph", get(profile::flamegraph))
}

#[cfg(not(feature = "profiling"))]
fn profiling_routes() -> Router<AppState> {
    Router::new()
}

/// `GET /metrics`: the Prometheus text format, when the server installed a recorder.
async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [
                (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no metrics recorder installed\n").into_response(),
    }
}

/// `POST /api/products`: creates a product; the cache drops the listing (by its tag) and the
/// new URL (by `Location`, RFC 9111 §4.4).
async fn create_product(
    State(state): State<AppState>,
    cache: CacheHandle,
    Json(new): Json<ProductUpdate>,
) -> Response {
    let record = {
        let mut products = state.products.write().unwrap_or_else(|e| e.into_inner());
        let id = products.keys().next_back().map_or(1, |last| last + 1);
        let record = Record {
            product: Product {
                id,
                name: new.name,
                price_cents: new.price_cents,
                description: new.description,
                stock: new.stock,
            },
            version: 1,
            updated_at: SystemTime::now(),
        };
        products.insert(id, record.clone());
        record
    };
    state.data_version.fetch_add(1, Ordering::Relaxed);
    if let Err(error) = cache.invalidate_tag("catalogue").await {
        tracing::warn!(%error, "could not invalidate the catalogue");
    }
    let location = format!("/api/products/{}", record.product.id);
    (
        StatusCode::CREATED,
        validators(&record),
        [(header::LOCATION, location)],
        Json(record.product),
    )
        .into_response()
}

/// `DELETE /api/products/{id}`: deletes, honouring `If-Match`.
async fn delete_product(
    State(state): State<AppState>,
    Path(id): Path<u32>,
    cache: CacheHandle,
    pre: Preconditions,
) -> Response {
    {
        let mut products = state.products.write().unwrap_or_else(|e| e.into_inner());
        let Some(record) = products.get(&id) else {
            return not_found(id);
        };
        if let Err(unmet) = pre.check(&validators(record)) {
            return unmet.into_response();
        }
        products.remove(&id);
    }
    state.data_version.fetch_add(1, Ordering::Relaxed);
    state.forget(id).await;
    if let Err(error) = cache.invalidate_tag("catalogue").await {
        tracing::warn!(%error, "could not invalidate the catalogue");
    }
    StatusCode::NO_CONTENT.into_response()
}

fn not_found(id: u32) -> Response {
    (StatusCode::NOT_FOUND, format!("no product with id {id}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        // The cache stores a response in a task spawned at its body's end: let it run.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        (status, headers, body)
    }

    fn get(uri: &str) -> http::request::Builder {
        Request::get(uri)
    }

    #[tokio::test]
    async fn index_links_every_route() {
        let (status, headers, body) = send(&app(), get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains_key(header::ETAG));
        let html = String::from_utf8(body).unwrap();
        for (path, _) in ROUTES {
            assert!(html.contains(&format!("href=\"{path}\"")), "{path}");
        }
    }

    #[tokio::test]
    async fn catalogue_is_about_ten_kib_and_revalidates() {
        let app = app();
        let (status, headers, body) =
            send(&app, get("/api/products").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!((6_000..16_000).contains(&body.len()), "{}", body.len());
        let etag = headers[header::ETAG].clone();
        let req = get("/api/products").header(header::IF_NONE_MATCH, etag);
        let (status, _, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn product_has_version_validators() {
        let (status, headers, _) =
            send(&app(), get("/api/products/7").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ETAG], "\"p7-v1\"");
        assert_eq!(
            headers[header::LAST_MODIFIED],
            "Wed, 01 Jan 2025 07:00:00 GMT"
        );
    }

    #[tokio::test]
    async fn product_answers_if_modified_since() {
        let req = get("/api/products/7")
            .header(header::IF_MODIFIED_SINCE, "Wed, 01 Jan 2025 07:00:00 GMT");
        let (status, _, _) = send(&app(), req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
    }

    fn put(id: u32, if_match: Option<&str>) -> Request<Body> {
        let mut req = Request::put(format!("/api/products/{id}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(tag) = if_match {
            req = req.header(header::IF_MATCH, tag);
        }
        let body = r#"{"name":"Renamed","price_cents":1,"description":"d","stock":2}"#;
        req.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn put_requires_and_checks_if_match() {
        let app = app();
        let (status, _, _) = send(&app, put(3, None)).await;
        assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
        let (status, headers, _) = send(&app, put(3, Some("\"p3-v1\""))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ETAG], "\"p3-v2\"");
        // The same stale tag again: the write is refused and the data is unchanged.
        let (status, headers, _) = send(&app, put(3, Some("\"p3-v1\""))).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(headers[header::ETAG], "\"p3-v2\"");
        let (_, headers, _) = send(&app, get("/api/products/3").body(Body::empty()).unwrap()).await;
        assert_eq!(headers[header::ETAG], "\"p3-v2\"");
    }

    #[tokio::test]
    async fn stats_answers_304_until_data_changes() {
        let app = app();
        let req = get("/api/stats").header(header::IF_NONE_MATCH, "\"stats-1\"");
        let (status, _, _) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        send(&app, put(1, Some("*"))).await;
        let req = get("/api/stats").header(header::IF_NONE_MATCH, "\"stats-1\"");
        let (status, headers, _) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ETAG], "\"stats-2\"");
    }

    fn cache_status(headers: &http::HeaderMap) -> &str {
        headers["cache-status"].to_str().unwrap()
    }

    #[tokio::test]
    async fn catalogue_comes_from_the_cache_until_a_put_changes_a_product() {
        let app = app();
        let list = || get("/api/products").body(Body::empty()).unwrap();
        let (_, headers, _) = send(&app, list()).await;
        assert_eq!(cache_status(&headers), "tower-edge; fwd=miss; stored");
        let (_, headers, first) = send(&app, list()).await;
        assert!(cache_status(&headers).starts_with("tower-edge; hit"));
        assert!(!headers.contains_key("cache-tag"));
        // The product itself is cached too, and the PUT removes it with the listing.
        send(&app, get("/api/products/4").body(Body::empty()).unwrap()).await;
        let (status, _, _) = send(&app, put(4, Some("\"p4-v1\""))).await;
        assert_eq!(status, StatusCode::OK);
        let (_, headers, after) = send(&app, list()).await;
        assert!(cache_status(&headers).contains("fwd=miss"), "{headers:?}");
        assert_ne!(first, after);
        let (_, headers, body) =
            send(&app, get("/api/products/4").body(Body::empty()).unwrap()).await;
        assert!(cache_status(&headers).contains("fwd=miss"));
        assert!(String::from_utf8(body).unwrap().contains("Renamed"));
    }

    #[tokio::test(start_paused = true)]
    async fn events_arrive_compressed() {
        let req = get("/events")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let res = app().oneshot(req).await.unwrap();
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert_eq!(text.matches("event: tick").count(), 5);
        assert!(text.ends_with("data: {\"tick\":4}\n\n"));
    }

    #[tokio::test]
    async fn catalogue_is_cached_per_coding() {
        let app = app();
        let req = |coding: &str| {
            get("/api/products")
                .header(header::ACCEPT_ENCODING, coding)
                .body(Body::empty())
                .unwrap()
        };
        let (_, h, br) = send(&app, req("br, gzip")).await;
        assert_eq!(h[header::CONTENT_ENCODING], "br");
        let (_, h, gz) = send(&app, req("gzip")).await;
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert!(
            cache_status(&h).contains("fwd=miss"),
            "another coding is another entry"
        );
        let (_, h, br_again) = send(&app, req("gzip;q=0.5, br")).await;
        assert!(cache_status(&h).starts_with("tower-edge; hit"));
        assert_eq!(h[header::CONTENT_ENCODING], "br");
        assert_eq!(br, br_again);
        assert_ne!(br, gz);
    }

    #[tokio::test]
    async fn purging_is_off_without_a_token() {
        let purge = Request::post("/cache/purge")
            .header(header::AUTHORIZATION, "Bearer anything")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app(), purge).await.0, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn the_home_page_is_cached_per_language() {
        let app = app();
        let home = |lang: &str| {
            get("/")
                .header(header::ACCEPT_LANGUAGE, lang)
                .body(Body::empty())
                .unwrap()
        };
        let (_, h, fr) = send(&app, home("fr-CH, fr;q=0.9, en;q=0.8")).await;
        assert_eq!(h[header::CONTENT_LANGUAGE], "fr");
        assert!(
            String::from_utf8(fr.clone())
                .unwrap()
                .contains("Chaque route")
        );
        let (_, h, de) = send(&app, home("de")).await;
        assert_eq!(h[header::CONTENT_LANGUAGE], "de");
        assert!(
            cache_status(&h).contains("fwd=miss"),
            "another language, another entry"
        );
        let (_, h, fr_again) = send(&app, home("fr-CH, fr;q=0.9, en;q=0.8")).await;
        assert!(cache_status(&h).starts_with("tower-edge; hit"));
        assert_eq!(fr, fr_again);
        assert_ne!(fr, de);
    }

    #[tokio::test]
    async fn products_are_created_memoized_and_deleted() {
        let app = app();
        let body = r#"{"name":"Rope","price_cents":500,"description":"50 m","stock":9}"#;
        let create = Request::post("/api/products")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let (status, h, _) = send(&app, create).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(h[header::LOCATION], "/api/products/41");
        let (status, h, _) = send(&app, get("/api/products/41").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        let stale = Request::delete("/api/products/41")
            .header(header::IF_MATCH, "\"p41-v0\"")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, stale).await.0, StatusCode::PRECONDITION_FAILED);
        let delete = Request::delete("/api/products/41")
            .header(header::IF_MATCH, etag)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, delete).await.0, StatusCode::NO_CONTENT);
        // Gone from the store, the memo and the cache alike.
        let (status, _, _) = send(&app, get("/api/products/41").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_download_resumes_with_ranges() {
        let app = app();
        let (status, h, whole) = send(
            &app,
            get("/download/sample.bin").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(whole.len(), DOWNLOAD_LEN);
        assert!(
            h[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        let resume = get("/download/sample.bin")
            .header(header::RANGE, "bytes=1000000-")
            .header(header::IF_RANGE, etag)
            .body(Body::empty())
            .unwrap();
        let (status, h, tail) = send(&app, resume).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            h[header::CONTENT_RANGE],
            format!("bytes 1000000-{}/{DOWNLOAD_LEN}", DOWNLOAD_LEN - 1)
        );
        assert_eq!(tail, whole[1_000_000..]);
    }

    #[cfg(feature = "profiling")]
    #[tokio::test]
    async fn the_flamegraph_needs_the_token_and_is_an_svg() {
        let app = app_with_state(AppState::new().with_purge_token("t"));
        let anonymous = get("/debug/pprof/flamegraph?seconds=1")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
        let bad = get("/debug/pprof/flamegraph?seconds=0")
            .header(header::AUTHORIZATION, "Bearer t")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, bad).await.0, StatusCode::BAD_REQUEST);
        let req = get("/debug/pprof/flamegraph?seconds=1")
            .header(header::AUTHORIZATION, "Bearer t")
            .body(Body::empty())
            .unwrap();
        // Something to sample while the profiler runs.
        let busy = std::thread::spawn(|| {
            let until = std::time::Instant::now() + Duration::from_millis(1200);
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            x
        });
        let (status, headers, body) = send(&app, req).await;
        let _ = busy.join();
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8_lossy(&body);
        // Sampling is a timer signal: on a loaded machine the window can pass with no sample
        // taken, which the endpoint says plainly instead of drawing an empty graph.
        if headers[header::CONTENT_TYPE] == "image/svg+xml" {
            assert!(text.contains("<svg"), "{}", &text[..text.len().min(300)]);
        } else {
            assert_eq!(text, "no samples: the process was idle the whole time\n");
        }
    }

    #[tokio::test]
    async fn metrics_are_off_without_a_recorder() {
        let (status, _, _) = send(&app(), get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn cache_stats_and_purge() {
        let app = app_with_state(AppState::new().with_purge_token("s3cret"));
        send(
            &app,
            get("/articles/validators").body(Body::empty()).unwrap(),
        )
        .await;
        send(
            &app,
            get("/articles/validators").body(Body::empty()).unwrap(),
        )
        .await;
        let (_, _, body) = send(&app, get("/cache/stats").body(Body::empty()).unwrap()).await;
        let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(stats["hits"], 1);
        assert!(stats["stored"].as_u64().unwrap() >= 1);
        // Without the token, or with a wrong one: refused.
        let purge = Request::post("/cache/purge").body(Body::empty()).unwrap();
        assert_eq!(send(&app, purge).await.0, StatusCode::UNAUTHORIZED);
        let wrong = Request::post("/cache/purge")
            .header(header::AUTHORIZATION, "Bearer s3creT")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);
        // By tag, then everything.
        let by_tag = Request::post("/cache/purge?tag=nothing-has-this")
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(&app, by_tag).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"purged 0 entries tagged nothing-has-this\n");
        let purge = Request::post("/cache/purge")
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = send(&app, purge).await;
        assert_eq!(status, StatusCode::OK);
        let (_, headers, _) = send(
            &app,
            get("/articles/validators").body(Body::empty()).unwrap(),
        )
        .await;
        assert!(cache_status(&headers).contains("fwd=miss"));
    }

    #[tokio::test]
    async fn article_gets_last_modified_from_layer() {
        let (status, headers, _) = send(
            &app(),
            get("/articles/validators").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::LAST_MODIFIED],
            "Thu, 02 Jan 2025 00:00:00 GMT"
        );
        assert!(headers.contains_key(header::ETAG));
        let (status, _, _) = send(&app(), get("/articles/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn static_files_are_served_with_ranges_validators_and_gzip_siblings() {
        let app = app();
        let on_disk = std::fs::read(format!("{STATIC_DIR}/hello.txt")).unwrap();
        let (status, headers, body) =
            send(&app, get("/static/hello.txt").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, on_disk);
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        let etag = headers[header::ETAG].clone();

        let req = get("/static/hello.txt")
            .header(header::RANGE, "bytes=0-4")
            .header(header::IF_RANGE, etag.clone());
        let (status, headers, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            headers[header::CONTENT_RANGE],
            format!("bytes 0-4/{}", on_disk.len()).as_str()
        );
        assert_eq!(body, &on_disk[..5]);

        let req = get("/static/hello.txt").header(header::IF_NONE_MATCH, etag);
        let (status, _, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());

        let req = get("/static/app.3f2a9c1b.css").header(header::ACCEPT_ENCODING, "gzip");
        let (status, headers, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            body,
            std::fs::read(format!("{STATIC_DIR}/app.3f2a9c1b.css.gz")).unwrap()
        );

        let (status, headers, _) =
            send(&app, get("/static/docs").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(headers[header::LOCATION], "docs/");
        let (status, _, _) = send(
            &app,
            get("/static/../Cargo.toml").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
