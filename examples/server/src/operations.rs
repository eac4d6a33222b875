//! What an operator uses: the cache's counters and a purge, Prometheus metrics, a liveness
//! check, and (feature `profiling`) a CPU flamegraph of the process or of one route's requests
//! (`/debug/pprof/route?route=/api/products/{id}`). The purge and the flamegraphs need the
//! bearer token the server was started with (`PURGE_TOKEN`); without one they are off.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower_edge::cache::CacheHandle;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    let routes = Router::new()
        .route("/cache/stats", get(cache_stats))
        .route("/cache/purge", post(cache_purge))
        .route("/metrics", get(metrics))
        .route("/dashboard", get(dashboard))
        .route("/healthz", get(|| async { "ok" }));
    #[cfg(feature = "profiling")]
    let routes = routes
        .route("/debug/pprof/flamegraph", get(crate::profile::flamegraph))
        .route("/debug/pprof/route", get(crate::profile::route_flamegraph));
    routes
}

impl AppState {
    /// Checks the operator token (`Authorization: Bearer <PURGE_TOKEN>`): `Err` is the answer
    /// to send instead (403 when no token is configured, 401 for a wrong one).
    #[allow(clippy::result_large_err)] // the error is the response itself
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
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
}

/// `GET /cache/stats`: the response cache's counters, as JSON.
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
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
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

/// The live page: one self-contained HTML file whose script reads `/metrics` every 2 s and
/// draws the hit ratio, the request rate, p50 and p99 by cache outcome and by route, and the
/// store's health. Its policy lets it fetch from this server only.
const DASHBOARD: &str = include_str!("dashboard.html");

/// `GET /dashboard`: the live page (it needs the recorder `/metrics` serves).
async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
            ),
        ],
        DASHBOARD,
    )
        .into_response()
}

/// `GET /metrics`: the Prometheus text format, when the server installed a recorder.
async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            if let Some(record) = state.store_metrics.get() {
                record();
            }
            (
                [
                    (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                handle.render(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no metrics recorder installed\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, StatusCode, header};

    use crate::{
        AppState, app, app_with_state,
        testing::{cache_status, get, send},
    };

    fn purge(uri: &str, token: Option<&str>) -> Request<Body> {
        let mut req = Request::post(uri);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        req.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn purging_is_off_without_a_token() {
        let (status, _, _) = send(&app(), purge("/cache/purge", Some("anything"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn metrics_are_off_without_a_recorder() {
        let (status, _, _) = send(&app(), get("/metrics")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn cache_stats_and_purge() {
        let app = app_with_state(AppState::new().with_purge_token("s3cret"));
        send(&app, get("/articles/validators")).await;
        send(&app, get("/articles/validators")).await;
        let (_, _, body) = send(&app, get("/cache/stats")).await;
        let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(stats["hits"], 1);
        assert!(stats["stored"].as_u64().unwrap() >= 1);
        // Without the token, or with a wrong one: refused.
        let (status, _, _) = send(&app, purge("/cache/purge", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = send(&app, purge("/cache/purge", Some("s3creT"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // By tag, then everything.
        let by_tag = purge("/cache/purge?tag=nothing-has-this", Some("s3cret"));
        let (status, _, body) = send(&app, by_tag).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"purged 0 entries tagged nothing-has-this\n");
        let (status, _, _) = send(&app, purge("/cache/purge", Some("s3cret"))).await;
        assert_eq!(status, StatusCode::OK);
        let (_, headers, _) = send(&app, get("/articles/validators")).await;
        assert!(cache_status(&headers).contains("fwd=miss"));
    }

    /// One sampling profiler per process: the tests that start one take turns.
    #[cfg(feature = "profiling")]
    static PROFILER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[cfg(feature = "profiling")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_route_profile_has_that_routes_work_only() {
        let _turn = PROFILER.lock().await;
        let app = app_with_state(AppState::new().with_purge_token("t"));
        let authorized = |uri: &str| {
            Request::get(uri)
                .header(header::AUTHORIZATION, "Bearer t")
                .body(Body::empty())
                .unwrap()
        };
        let anonymous = get("/debug/pprof/route?route=/api/products/{id}&seconds=1");
        assert_eq!(send(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
        for bad in [
            "/debug/pprof/route?seconds=1",
            "/debug/pprof/route?route=x&seconds=1",
        ] {
            assert_eq!(
                send(&app, authorized(bad)).await.0,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }

        // Requests to the profiled route and to another for as long as it samples; each must
        // be answered as usual, the profiled ones from the profiled thread. The sampler's timer
        // fires on whichever thread is running: on a busy machine a window can pass with no
        // sample on the profiled thread, so up to three windows.
        let mut n = 0u32;
        let mut sampled = None;
        for _ in 0..3 {
            let profile = tokio::spawn({
                let app = app.clone();
                async move {
                    send(
                        &app,
                        authorized("/debug/pprof/route?route=/api/products/{id}&seconds=2"),
                    )
                    .await
                }
            });
            while !profile.is_finished() {
                n += 1;
                // A new query each time: a miss, so the handler and the layers work.
                let (status, _, body) =
                    send(&app, get(&format!("/api/products/{}?n={n}", n % 40 + 1))).await;
                assert_eq!(status, StatusCode::OK);
                assert!(body.starts_with(b"{"), "a product's JSON");
                let (status, _, _) = send(&app, get(&format!("/articles/validators?n={n}"))).await;
                assert_eq!(status, StatusCode::OK);
            }
            let (status, headers, body) = profile.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            let text = String::from_utf8_lossy(&body).into_owned();
            if headers[header::CONTENT_TYPE] == "image/svg+xml" {
                sampled = Some(text);
                break;
            }
            assert!(text.starts_with("no samples"), "{text}");
        }
        let text = sampled.expect("three windows without a sample of the route");
        assert!(text.contains("catalogue"), "the route's handler is in it");
        assert!(
            !text.contains("articles::article"),
            "another route's is not"
        );
        // Once done, the route runs where it did, and another profile may start.
        let (status, _, _) = send(&app, get("/api/products/1")).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[cfg(feature = "profiling")]
    #[tokio::test]
    async fn the_flamegraph_needs_the_token_and_is_an_svg() {
        let _turn = PROFILER.lock().await;
        let app = app_with_state(AppState::new().with_purge_token("t"));
        let anonymous = get("/debug/pprof/flamegraph?seconds=1");
        assert_eq!(send(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
        let bad = Request::get("/debug/pprof/flamegraph?seconds=0")
            .header(header::AUTHORIZATION, "Bearer t")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, bad).await.0, StatusCode::BAD_REQUEST);
        let req = Request::get("/debug/pprof/flamegraph?seconds=1")
            .header(header::AUTHORIZATION, "Bearer t")
            .body(Body::empty())
            .unwrap();
        // Something to sample while the profiler runs.
        let busy = std::thread::spawn(|| {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(1200);
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
}
