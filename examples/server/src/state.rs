//! The application's state: its data, and the settings `main.rs` reads from flags.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, OnceLock, RwLock, atomic::AtomicU64},
    time::{Duration, SystemTime},
};

use metrics_exporter_prometheus::PrometheusHandle;
use tower_edge::{
    cache::MokaStore,
    clock::{Clock, SystemClock},
};
use tower_edge_store::memo::Memo;

use crate::{articles::Article, catalogue::Record, files::Downloads};

/// A fixed time the sample data starts at (2025-01-01T00:00:00Z), so its validators are the
/// same on every run.
pub(crate) const START: Duration = Duration::from_secs(1_735_689_600);

/// The server's in-memory data and settings. Cloning shares them.
#[derive(Clone)]
pub struct AppState {
    pub(crate) products: Arc<RwLock<BTreeMap<u32, Record>>>,
    pub(crate) articles: Arc<BTreeMap<&'static str, Article>>,
    // Bumped on every write; the stats report is a function of it.
    pub(crate) data_version: Arc<AtomicU64>,
    // Product lookups, memoized (as a slow database query would be).
    pub(crate) memo: Memo<MokaStore>,
    pub(crate) purge_token: Option<Arc<str>>,
    pub(crate) metrics: Option<PrometheusHandle>,
    // Sets the response cache's store gauges; `/metrics` calls it before rendering.
    pub(crate) store_metrics: Arc<OnceLock<StoreMetrics>>,
    // Requests at least this slow are logged, once each.
    pub(crate) slow_after: Option<Duration>,
    // The route `GET /debug/pprof/route` is profiling, if any.
    #[cfg(feature = "profiling")]
    pub(crate) route_profiling: Arc<crate::profile::RouteProfiling>,
    pub(crate) downloads: Downloads,
    // What `/static` serves.
    pub(crate) static_dir: Arc<PathBuf>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("data_version", &self.data_version)
            .field("purge_token", &self.purge_token.as_ref().map(|_| "(set)"))
            .field("downloads", &self.downloads)
            .field("static_dir", &self.static_dir)
            .finish_non_exhaustive()
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

impl AppState {
    /// A catalogue of 40 products, a few articles, and the sample download.
    pub fn new() -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self {
            products: Arc::new(RwLock::new(crate::catalogue::sample())),
            articles: Arc::new(crate::articles::sample()),
            data_version: Arc::new(AtomicU64::new(1)),
            memo: product_memo(&clock),
            purge_token: None,
            metrics: None,
            store_metrics: Arc::default(),
            slow_after: None,
            #[cfg(feature = "profiling")]
            route_profiling: Arc::default(),
            downloads: Downloads::sample(),
            static_dir: Arc::new(crate::files::default_static_dir()),
            clock,
        }
    }

    /// Serves `/static` from `dir` (see [`default_static_dir`](crate::default_static_dir) for
    /// the default).
    #[must_use]
    pub fn with_static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Arc::new(dir.into());
        self
    }

    /// Serves `/download/` from `dir` instead of the generated sample (a temporary directory
    /// holding [`download_bytes`](crate::download_bytes) as `sample.bin`).
    #[must_use]
    pub fn with_download_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.downloads = self.downloads.dir(dir.into());
        self
    }

    /// Answers `/download/{file}` with `X-Accel-Redirect: {prefix}{file}` instead of the bytes,
    /// for nginx in front: an `internal` location at `prefix` that aliases the download
    /// directory sends the file, ranges and validators included, after this server checked the
    /// path. For example, with `--x-accel-redirect /internal/downloads/`:
    ///
    /// ```nginx
    /// location / { proxy_pass http://127.0.0.1:3000; }
    /// location /internal/downloads/ { internal; alias /srv/downloads/; }
    /// ```
    #[must_use]
    pub fn with_x_accel_redirect(mut self, prefix: &str) -> Self {
        self.downloads = self.downloads.x_accel_redirect(prefix);
        self
    }

    /// Protects `POST /cache/purge` with this bearer token (without one it answers 403).
    #[must_use]
    pub fn with_purge_token(mut self, token: &str) -> Self {
        self.purge_token = Some(Arc::from(token));
        self
    }

    /// Serves the metrics of this recorder at `/metrics`, in the Prometheus text format.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Logs every request that takes at least `threshold` (to the end of its body), once,
    /// with its route, cache outcome, and the time spent on the origin and the cache's store.
    ///
    /// Defaults to no log.
    #[must_use]
    pub fn with_slow_requests(mut self, threshold: Duration) -> Self {
        self.slow_after = Some(threshold);
        self
    }

    /// Reads the time from `clock`: the response cache's ages and freshness, the memoized
    /// lookups and the handlers' timestamps alike. Tests pass a
    /// [`ManualClock`](tower_edge::clock::ManualClock) and move it.
    ///
    /// Defaults to the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.memo = product_memo(&self.clock);
        self
    }

    /// The time now, on the state's clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The state's clock, for a layer or store that takes one.
    pub(crate) fn clock(&self) -> impl Clock + use<> {
        let clock = Arc::clone(&self.clock);
        move || clock.now()
    }
}

/// What records the response cache's store gauges (`CacheStore::record_metrics`).
pub(crate) type StoreMetrics = Box<dyn Fn() + Send + Sync>;

fn product_memo(clock: &Arc<dyn Clock>) -> Memo<MokaStore> {
    let clock = Arc::clone(clock);
    Memo::new(
        MokaStore::builder().max_bytes(8 * 1024 * 1024).build(),
        "products",
    )
    .clock(move || clock.now())
}
