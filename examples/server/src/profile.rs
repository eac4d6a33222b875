//! `GET /debug/pprof/flamegraph?seconds=N` (feature `profiling`): samples the process's CPU
//! for N seconds (1 to 60, default 10) and answers an SVG flamegraph. It needs the purge token,
//! like every operator route.
//!
//! pprof keeps its sample buffer in a named temporary file held by a static: a process that
//! profiled leaves one empty `.tmpXXXXXX` file in the temporary directory when it exits.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::AppState;

pub(crate) async fn flamegraph(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = state.authorize(&headers) {
        return refused;
    }
    let seconds = match seconds(&query) {
        Ok(seconds) => seconds,
        Err(refused) => return refused,
    };
    sample(seconds, 99, |_| true, "the process was idle the whole time").await
}

/// The `seconds` parameter: 1 to 60, 10 when absent; `Err` is the 400 to send.
#[allow(clippy::result_large_err)] // the error is the response itself
fn seconds(query: &BTreeMap<String, String>) -> Result<u64, Response> {
    match query.get("seconds").map(|s| s.parse::<u64>()) {
        None => Ok(10),
        Some(Ok(s)) if (1..=60).contains(&s) => Ok(s),
        Some(_) => Err((
            StatusCode::BAD_REQUEST,
            "seconds must be a whole number from 1 to 60\n",
        )
            .into_response()),
    }
}

/// Samples the process's CPU `frequency` times a second for `seconds`, and answers an SVG
/// flamegraph of the samples `keep` keeps, or `none` when there is none.
async fn sample(
    seconds: u64,
    frequency: i32,
    keep: impl Fn(&pprof::Frames) -> bool,
    none: &str,
) -> Response {
    let guard = match pprof::ProfilerGuardBuilder::default()
        .frequency(frequency)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
    {
        Ok(guard) => guard,
        Err(e) => {
            return (StatusCode::CONFLICT, format!("cannot profile now: {e}\n")).into_response();
        }
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut svg = Vec::new();
    let rendered = guard
        .report()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|mut report| {
            report.data.retain(|frames, _| keep(frames));
            if report.data.is_empty() {
                return Ok(());
            }
            report.flamegraph(&mut svg).map_err(|e| e.to_string())
        });
    match rendered {
        Ok(()) if svg.is_empty() => (
            [(header::CACHE_CONTROL, "no-store")],
            format!("no samples: {none}\n"),
        )
            .into_response(),
        Ok(()) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("profile failed: {e}\n"),
        )
            .into_response(),
    }
}

/// The thread a profiled route's requests run on while `GET /debug/pprof/route` samples.
const PROFILED_THREAD: &str = "profiled-route";

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Which route template is being profiled, and the thread its requests run on meanwhile.
///
/// The sampler (pprof) takes the stack of whatever thread a timer signal lands on, and cannot
/// tell which request that thread is working for. So while a route is profiled, its requests
/// (handler, the edge stack around it, and their bodies, read whole) run on one thread of their
/// own, and the flamegraph keeps that thread's samples only: every sample in it is the route's
/// work, none is another request's. What runs on the connection's thread (reading the request
/// head, writing the answer to the socket) is not in it.
#[derive(Default)]
pub(crate) struct RouteProfiling {
    route: std::sync::Mutex<Option<String>>,
    jobs: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Job>>,
}

impl std::fmt::Debug for RouteProfiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteProfiling").finish_non_exhaustive()
    }
}

impl RouteProfiling {
    fn profiled(&self, template: Option<&str>) -> bool {
        let route = self.route.lock().unwrap_or_else(|e| e.into_inner());
        template.is_some_and(|t| route.as_deref() == Some(t))
    }

    /// The profiled thread's queue, started on first use.
    fn jobs(&self) -> &tokio::sync::mpsc::UnboundedSender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
            let started = std::thread::Builder::new()
                .name(PROFILED_THREAD.to_owned())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the profiled thread");
                    runtime.block_on(async move {
                        while let Some(job) = rx.recv().await {
                            tokio::spawn(job);
                        }
                    });
                });
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start the profiled thread");
            }
            tx
        })
    }
}

/// The largest body a profiled request's answer is read into on the profiled thread.
const PROFILED_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Middleware, outside the edge stack: a request of the route being profiled runs on the
/// profiled thread, its answer read whole there; every other request goes on as usual.
pub(crate) async fn run_profiled(
    State(profiling): State<std::sync::Arc<RouteProfiling>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let template = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str);
    if !profiling.profiled(template) {
        return next.run(req).await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::pin(async move {
        let (parts, body) = next.run(req).await.into_parts();
        let answer = match axum::body::to_bytes(body, PROFILED_BODY_LIMIT).await {
            Ok(bytes) => Response::from_parts(parts, axum::body::Body::from(bytes)),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("a profiled answer must be read whole, up to 16 MiB: {e}\n"),
            )
                .into_response(),
        };
        let _ = tx.send(answer);
    });
    if profiling.jobs().send(job).is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the profiled thread is gone\n",
        )
            .into_response();
    }
    rx.await.unwrap_or_else(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the profiled request was dropped\n",
        )
            .into_response()
    })
}

/// `GET /debug/pprof/route?route=TEMPLATE&seconds=N`: a CPU flamegraph of one route's requests
/// only (see [`RouteProfiling`]), for N seconds (1 to 60, default 10). One at a time; it needs
/// the purge token, like every operator route.
pub(crate) async fn route_flamegraph(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = state.authorize(&headers) {
        return refused;
    }
    let Some(route) = query.get("route").filter(|r| r.starts_with('/')) else {
        return (
            StatusCode::BAD_REQUEST,
            "route= must be a route template, as /metrics labels it (e.g. /api/products/{id})\n",
        )
            .into_response();
    };
    let seconds = match seconds(&query) {
        Ok(seconds) => seconds,
        Err(refused) => return refused,
    };
    let profiling = &state.route_profiling;
    {
        let mut current = profiling.route.lock().unwrap_or_else(|e| e.into_inner());
        if current.is_some() {
            return (StatusCode::CONFLICT, "a route is being profiled already\n").into_response();
        }
        *current = Some(route.clone());
    }
    // However this ends, the route goes back to running where it did.
    struct Stop<'a>(&'a RouteProfiling);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            *self.0.route.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
    let _stop = Stop(profiling);
    let none = format!("no request of {route} ran while sampling");
    sample(
        seconds,
        199,
        |frames| frames.thread_name == PROFILED_THREAD,
        &none,
    )
    .await
}
