//! [`ObserveLayer`]: request duration histograms by route and cache outcome, origin time, and
//! a slow-request log.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use http::{Method, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::scope::{self, Record};

/// The cache outcomes a request is labelled with: the events of `tower_edge_cache_total`, and
/// `none` where no cache decided (no cache on the route, or one outside this layer).
pub const CACHE_LABELS: [&str; 8] = [
    "hit",
    "stale",
    "revalidate",
    "collapsed",
    "miss",
    "forward",
    "bypass",
    "none",
];

/// The status labels: the class of the response's status, or `error` when the inner service
/// failed instead of answering.
pub const STATUS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// Histogram bucket boundaries, in seconds, that suit a cache: from 10 µs (a memory hit takes
/// a few tens of microseconds of the server's time, to the end of its body) to 10 s (a slow
/// origin). `metrics` leaves buckets to the exporter; give it these, e.g. with
/// `PrometheusBuilder::set_buckets_for_metric(Matcher::Prefix("tower_edge_".into()), &DURATION_BUCKETS)`.
pub const DURATION_BUCKETS: [f64; 18] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The route label of requests no route template matched.
const UNMATCHED: &str = "unmatched";
/// The route label of templates past [`ObserveLayer::max_routes`].
const OTHER: &str = "other";

/// Middleware that times each request, from the call to the end of its body, and records it:
///
/// - `tower_edge_request_duration_seconds{route, cache, status}`: a histogram (feature
///   `metrics`). `route` is the route's template (axum's `MatchedPath`, feature `axum`), never
///   the raw path, so the label stays bounded: `unmatched` without one (the router's fallback,
///   and services mounted with `nest_service`, for which axum gives no template), `other` past
///   [`max_routes`](Self::max_routes). `cache` is one of [`CACHE_LABELS`], `status` one of
///   [`STATUS_LABELS`].
/// - `tower_edge_origin_duration_seconds{route}`: the time a cache inside this layer waited on
///   the inner service, for the requests it forwarded (misses, revalidations).
/// - With [`slow_after`](Self::slow_after), one `WARN` event (target `tower_edge::slow`) per
///   request slower than the threshold, with its route, method, path, status, cache outcome,
///   and its total, origin and store time in milliseconds.
///
/// Put it outside the other layers of tower-edge, so that it sees what they decide, and on
/// the router (`Router::layer`, not around the whole `Router` as a service), so that the route
/// template is known. Install the `metrics` recorder before the first request: the layer keeps
/// the handles it gets from the recorder then.
///
/// ```
/// use std::time::Duration;
///
/// use axum::{Router, routing::get};
/// use tower_edge::{cache::MokaStore, observe::ObserveLayer, stack::EdgeStack};
///
/// let app: Router = Router::new()
///     .route("/api/items/{id}", get(|| async { "[]" }))
///     .layer(EdgeStack::new(MokaStore::default()))
///     .layer(ObserveLayer::new().slow_after(Duration::from_millis(500)));
/// ```
#[derive(Clone)]
pub struct ObserveLayer {
    shared: Arc<Shared>,
}

struct Shared {
    slow_after: Option<Duration>,
    routes: Routes,
}

impl fmt::Debug for ObserveLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveLayer")
            .field("slow_after", &self.shared.slow_after)
            .field("max_routes", &self.shared.routes.max)
            .finish_non_exhaustive()
    }
}

impl Default for ObserveLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ObserveLayer {
    /// Histograms on, no slow-request log.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                slow_after: None,
                routes: Routes::new(500),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Option<Duration>, &mut usize)) -> Self {
        let (mut slow_after, mut max) = (self.shared.slow_after, self.shared.routes.max);
        f(&mut slow_after, &mut max);
        Self {
            shared: Arc::new(Shared {
                slow_after,
                routes: Routes::new(max),
            }),
        }
    }

    /// Logs every request that takes at least `threshold`, from the call to the end of its
    /// body, once, when it ends.
    ///
    /// Defaults to no log.
    #[must_use]
    pub fn slow_after(self, threshold: Duration) -> Self {
        self.with(|slow, _| *slow = Some(threshold))
    }

    /// How many route templates get a label of their own; the rest share `other`.
    ///
    /// Defaults to 500.
    #[must_use]
    pub fn max_routes(self, max: usize) -> Self {
        self.with(|_, routes| *routes = max)
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            site: Arc::new(Site {
                shared: Arc::clone(&self.shared),
                seen: std::sync::OnceLock::new(),
            }),
        }
    }
}

/// The service made by [`ObserveLayer`].
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    // One `Arc`: axum clones a route's service for every request.
    site: Arc<Site>,
}

/// What one application of the layer keeps.
struct Site {
    shared: Arc<Shared>,
    /// The first route template this service saw. `Router::layer` gives every route a
    /// service of its own, whose requests all carry the same template: they find their labels
    /// here, with one comparison instead of the shared map's lock and hash.
    seen: std::sync::OnceLock<Arc<Route>>,
}

impl<S: fmt::Debug> fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Observe<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
{
    type Response = Response<ObserveBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let began = Instant::now();
        let site = &*self.site;
        let shared = &*site.shared;
        let route = match template(&req) {
            Some(template) => match site.seen.get() {
                Some(route) if *route.name == *template => Arc::clone(route),
                Some(_) => shared.routes.named(template),
                None => {
                    let route = shared.routes.named(template);
                    let _ = site.seen.set(Arc::clone(&route));
                    route
                }
            },
            None => Arc::clone(&shared.routes.unmatched),
        };
        // What the log names, kept only when there is a log (boxed: the future and the body
        // carry this state, and every request without a log moves it several times).
        let slow = shared.slow_after.map(|threshold| {
            Box::new(Slow {
                threshold,
                method: req.method().clone(),
                uri: req.uri().clone(),
            })
        });
        let mut record = Record::default();
        let inner = scope::within(&mut record, || self.inner.call(req));
        ResponseFuture {
            inner,
            state: Some(Pending {
                route,
                slow,
                began,
                record,
                status: 0,
            }),
        }
    }
}

/// What a request carries until it ends.
struct Pending {
    route: Arc<Route>,
    slow: Option<Box<Slow>>,
    began: Instant,
    record: Record,
    /// Index into [`STATUS_LABELS`].
    status: usize,
}

impl Pending {
    fn end(self) {
        let took = self.began.elapsed();
        let cache = self.record.cache.unwrap_or("none");
        self.route
            .record(cache, self.status, took, self.record.origin);
        if let Some(slow) = &self.slow
            && took >= slow.threshold
        {
            let (method, uri) = (&slow.method, &slow.uri);
            // Milliseconds to the microsecond.
            let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
            tracing::warn!(
                target: "tower_edge::slow",
                route = %self.route.name,
                %method,
                path = uri.path(),
                status = STATUS_LABELS[self.status],
                cache,
                total_ms = ms(took),
                origin_ms = ms(self.record.origin),
                store_ms = ms(self.record.store),
                "slow request"
            );
        }
    }
}

/// The slow-request log's threshold, and what it names.
struct Slow {
    threshold: Duration,
    method: Method,
    uri: Uri,
}

pin_project! {
    /// The future of [`Observe`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<Pending>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ObserveBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(state) = this.state.as_mut() else {
            panic!("ResponseFuture polled after completion");
        };
        let inner = this.inner;
        let out = ready!(scope::within(&mut state.record, || inner.poll(cx)));
        let mut state = this.state.take().expect("checked above");
        Poll::Ready(match out {
            Ok(res) => {
                state.status = usize::from(res.status().as_u16() / 100)
                    .saturating_sub(1)
                    .min(4);
                let (parts, body) = res.into_parts();
                let mut body = ObserveBody {
                    inner: body,
                    state: Some(state),
                };
                if body.inner.is_end_stream() {
                    body.end();
                }
                Ok(Response::from_parts(parts, body))
            }
            Err(error) => {
                state.status = STATUS_LABELS.len() - 1;
                state.end();
                Err(error)
            }
        })
    }
}

pin_project! {
    /// The body of [`Observe`]'s responses: the inner body, timed until its end (or until it
    /// is dropped, for a client that went away).
    pub struct ObserveBody<B> {
        #[pin]
        inner: B,
        state: Option<Pending>,
    }

    impl<B> PinnedDrop for ObserveBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().state.take() {
                state.end();
            }
        }
    }
}

impl<B> ObserveBody<B> {
    fn end(&mut self) {
        if let Some(state) = self.state.take() {
            state.end();
        }
    }
}

impl<B: Default> Default for ObserveBody<B> {
    fn default() -> Self {
        Self {
            inner: B::default(),
            state: None,
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ObserveBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ObserveBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let inner = this.inner.as_mut();
        let frame = match this.state.as_mut() {
            // The body's work (a cache storing what it read, say) counts for the request.
            Some(state) => ready!(scope::within(&mut state.record, || inner.poll_frame(cx))),
            None => ready!(inner.poll_frame(cx)),
        };
        let ended = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
        };
        if ended && let Some(state) = this.state.take() {
            state.end();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The labels and metric handles of one route template.
struct Route {
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    durations: [std::sync::OnceLock<metrics::Histogram>; CACHE_LABELS.len() * STATUS_LABELS.len()],
    #[cfg(feature = "metrics")]
    origin: std::sync::OnceLock<metrics::Histogram>,
}

impl Route {
    fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            #[cfg(feature = "metrics")]
            durations: std::array::from_fn(|_| std::sync::OnceLock::new()),
            #[cfg(feature = "metrics")]
            origin: std::sync::OnceLock::new(),
        }
    }

    #[allow(unused_variables)] // without `metrics`, nothing is recorded
    fn record(&self, cache: &'static str, status: usize, took: Duration, origin: Duration) {
        #[cfg(feature = "metrics")]
        {
            let at = CACHE_LABELS.iter().position(|c| *c == cache).unwrap_or(7);
            let histogram = self.durations[at * STATUS_LABELS.len() + status].get_or_init(|| {
                metrics::histogram!(
                    "tower_edge_request_duration_seconds",
                    "route" => metrics::SharedString::from(Arc::clone(&self.name)),
                    "cache" => CACHE_LABELS[at],
                    "status" => STATUS_LABELS[status],
                )
            });
            histogram.record(took.as_secs_f64());
            if !origin.is_zero() {
                self.origin
                    .get_or_init(|| {
                        metrics::histogram!(
                            "tower_edge_origin_duration_seconds",
                            "route" => metrics::SharedString::from(Arc::clone(&self.name)),
                        )
                    })
                    .record(origin.as_secs_f64());
            }
        }
    }
}

/// Route templates to their [`Route`], bounded.
struct Routes {
    max: usize,
    known: RwLock<HashMap<Box<str>, Arc<Route>>>,
    unmatched: Arc<Route>,
    other: Arc<Route>,
}

impl Routes {
    fn new(max: usize) -> Self {
        Self {
            max,
            known: RwLock::default(),
            unmatched: Arc::new(Route::new(UNMATCHED)),
            other: Arc::new(Route::new(OTHER)),
        }
    }

    fn named(&self, template: &str) -> Arc<Route> {
        if let Some(route) = self
            .known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(template)
        {
            return Arc::clone(route);
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if let Some(route) = known.get(template) {
            return Arc::clone(route);
        }
        if known.len() >= self.max {
            return Arc::clone(&self.other);
        }
        let route = Arc::new(Route::new(template));
        known.insert(template.into(), Arc::clone(&route));
        route
    }
}

#[cfg(feature = "axum")]
pub(super) fn template<B>(req: &Request<B>) -> Option<&str> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

#[cfg(not(feature = "axum"))]
pub(super) fn template<B>(_: &Request<B>) -> Option<&str> {
    None
}
