//! File-serving scenarios: tower-edge's `ServeDir` and tower-http's `ServeDir` on the same files,
//! side by side (each `fs-…` scenario is paired with its `tower-http-…` twin).
//!
//! The files are written once per process into a temporary directory, removed by
//! [`remove_files`] (a static is never dropped).

use std::{path::Path, sync::OnceLock, time::SystemTime};

use axum::{Router, http::StatusCode};
use tempfile::TempDir;
use tower_edge::{fs::ServeDir, http::date::format_http_date};

use crate::{Expect, RequestSpec, Scenario};

const SMALL: usize = 10 * 1024;
const LARGE: usize = 1024 * 1024;

static DIR: OnceLock<TempDir> = OnceLock::new();

/// Removes the directory of [`files`], if it was made: call it once the scenarios are done.
pub fn remove_files() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

/// The directory holding `small.bin` (10 KiB) and `large.bin` (1 MiB).
pub fn files() -> &'static Path {
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tower-edge-bench-fs")
            .tempdir()
            .expect("a temporary directory");
        let bytes = |len: usize| (0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>();
        std::fs::write(dir.path().join("small.bin"), bytes(SMALL)).expect("write small.bin");
        std::fs::write(dir.path().join("large.bin"), bytes(LARGE)).expect("write large.bin");
        dir
    })
    .path()
}

/// The `Last-Modified` of `small.bin`, for an `If-Modified-Since` that matches it.
pub fn modified_of_small() -> String {
    let modified = std::fs::metadata(files().join("small.bin"))
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    format_http_date(modified)
}

/// tower-edge's `ServeDir` with its defaults.
pub fn edge_app() -> Router {
    Router::new().fallback_service(ServeDir::new(files()))
}

/// tower-edge's `ServeDir` with a larger per-file bound for its hot-file cache (2 MiB) than
/// its default (1 MiB, which already holds the 1 MiB file): the same range as `fs-range`, to
/// show that a larger bound costs nothing more.
pub fn edge_hot_app() -> Router {
    Router::new().fallback_service(ServeDir::new(files()).cache_max_file_size(2 * 1024 * 1024))
}

/// tower-http's `ServeDir` with its defaults.
pub fn tower_http_app() -> Router {
    Router::new().fallback_service(tower_http::services::ServeDir::new(files()))
}

fn get(path: &'static str, headers: Vec<(&'static str, String)>) -> RequestSpec {
    RequestSpec {
        method: axum::http::Method::GET,
        path,
        headers,
    }
}

/// The file scenarios, each tower-edge one followed by its tower-http twin.
pub fn scenarios() -> Vec<Scenario> {
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<(&'static str, String)>,
        Expect,
    );
    let cases: [Case; 4] = [
        (
            "10k",
            "a 10 KiB file",
            "/small.bin",
            Vec::new(),
            Expect {
                status: StatusCode::OK,
                body_len: SMALL,
            },
        ),
        (
            "1m",
            "a 1 MiB file",
            "/large.bin",
            Vec::new(),
            Expect {
                status: StatusCode::OK,
                body_len: LARGE,
            },
        ),
        (
            "range",
            "a 1 KiB range of a 1 MiB file",
            "/large.bin",
            vec![("range", "bytes=524288-525311".to_owned())],
            Expect {
                status: StatusCode::PARTIAL_CONTENT,
                body_len: 1024,
            },
        ),
        (
            "304",
            "If-Modified-Since on a 10 KiB file: 304",
            "/small.bin",
            vec![("if-modified-since", modified_of_small())],
            Expect {
                status: StatusCode::NOT_MODIFIED,
                body_len: 0,
            },
        ),
    ];
    let mut out = Vec::new();
    for (key, what, path, headers, expect) in cases {
        let (edge, tower_http) = names(key);
        if let Some(nginx) = crate::nginx::twin(edge) {
            out.push(Scenario {
                name: nginx,
                description: leak(format!("nginx (sendfile, open_file_cache), {what}")),
                // nginx serves these; the router is the same files' tower-edge twin.
                app: edge_app,
                request: get(path, headers.clone()),
                expect,
            });
            if key == "10k" {
                out.push(Scenario {
                    name: crate::nginx::COPYING,
                    description: "nginx with sendfile off (the file read into memory and written from there, as hyper writes every body), a 10 KiB file",
                    app: edge_app,
                    request: get(path, headers.clone()),
                    expect,
                });
            }
        }
        out.push(Scenario {
            name: edge,
            description: leak(format!("tower-edge ServeDir, {what}")),
            app: edge_app,
            request: get(path, headers.clone()),
            expect,
        });
        out.push(Scenario {
            name: tower_http,
            description: leak(format!("tower-http ServeDir, {what}")),
            app: tower_http_app,
            request: get(path, headers),
            expect,
        });
    }
    out.push(Scenario {
        name: "fs-range-hot",
        description: "tower-edge ServeDir with a 2 MiB per-file hot-cache bound (the default, 1 MiB, already holds the file), a 1 KiB range of a 1 MiB file",
        app: edge_hot_app,
        request: get("/large.bin", vec![("range", "bytes=524288-525311".to_owned())]),
        expect: Expect {
            status: StatusCode::PARTIAL_CONTENT,
            body_len: 1024,
        },
    });
    out
}

fn names(key: &str) -> (&'static str, &'static str) {
    match key {
        "10k" => ("fs-10k", "tower-http-10k"),
        "1m" => ("fs-1m", "tower-http-1m"),
        "range" => ("fs-range", "tower-http-range"),
        _ => ("fs-304", "tower-http-304"),
    }
}

/// The tower-http twin of a tower-edge file scenario.
pub fn paired(name: &str) -> Option<&'static str> {
    match name {
        "fs-10k" => Some("tower-http-10k"),
        "fs-1m" => Some("tower-http-1m"),
        "fs-range" | "fs-range-hot" => Some("tower-http-range"),
        "fs-304" => Some("tower-http-304"),
        _ => None,
    }
}

fn leak(s: String) -> &'static str {
    // Built once per run for a handful of scenarios.
    Box::leak(s.into_boxed_str())
}
