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
    let seconds = match query.get("seconds").map(|s| s.parse::<u64>()) {
        None => 10,
        Some(Ok(s)) if (1..=60).contains(&s) => s,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "seconds must be a whole number from 1 to 60\n",
            )
                .into_response();
        }
    };
    let guard = match pprof::ProfilerGuardBuilder::default()
        .frequency(99)
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
        .and_then(|report| report.flamegraph(&mut svg).map_err(|e| e.to_string()));
    match rendered {
        Ok(()) if svg.is_empty() => (
            [(header::CACHE_CONTROL, "no-store")],
            "no samples: the process was idle the whole time\n",
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
