//! Heap allocations per request, counted by a counting global allocator: the bare handler, and
//! each layer's hit or answer on the same 10 KiB JSON, built as a user builds them (the preset is
//! `EdgeStack::new(MokaStore::default())`, as the README shows).
//!
//! ```text
//! cargo run --release -p tower-edge-benches --bin allocs
//! ```
//!
//! Every request goes through the router in process (`Router::clone().oneshot`, as
//! `axum::serve` calls it per request, on a router whose state is set once as `axum::serve`
//! sets it: without that, axum would build each route's service again per request) and its body
//! is read to the end. A count is the same on
//! a quiet machine and a busy one: it measures work, not time. The table's "over bare" column
//! is what a layer adds to what the handler's own response costs (request, routing, body).

#![allow(clippy::print_stdout)] // a command-line report

use std::{alloc::System, process::ExitCode};

use axum::{Router, body::Body, http::header};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt;
use tower_edge::etag::ETagLayer;
use tower_edge_benches::{bare_app, body_10k, cache_hit_app, etag_of_body_10k, fs, preset_app};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const USAGE: &str = "\
Heap allocations per request for the bare handler and each layer's hit.

usage: allocs [--requests N] [--only NAME,...] [--smoke]

    --requests N   requests counted per scenario (default 1000)
    --only NAMES   only these scenarios (comma-separated), with the bare baseline
    --smoke        100 requests per scenario: checks every scenario answers right
";

struct Case {
    name: &'static str,
    description: &'static str,
    app: Router,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    status: StatusCode,
    encoding: Option<&'static str>,
    /// The length of the full (identity) body.
    full_len: usize,
}

fn cases() -> Vec<Case> {
    let preset = preset_app;
    vec![
        Case {
            name: "bare",
            description: "bare axum handler, 10 KiB JSON (the baseline)",
            app: bare_app(),
            headers: Vec::new(),
            status: StatusCode::OK,
            encoding: None,
            path: "/data",
            full_len: body_10k().len(),
        },
        Case {
            name: "preset-hit",
            description: "EdgeStack (as the README builds it), identity hit",
            app: preset(),
            headers: Vec::new(),
            status: StatusCode::OK,
            encoding: None,
            path: "/data",
            full_len: body_10k().len(),
        },
        Case {
            name: "preset-br-hit",
            description: "EdgeStack, brotli hit (Accept-Encoding: gzip, br)",
            app: preset(),
            headers: vec![("accept-encoding", "gzip, br".to_owned())],
            status: StatusCode::OK,
            encoding: Some("br"),
            path: "/data",
            full_len: body_10k().len(),
        },
        Case {
            name: "preset-304",
            description: "EdgeStack, If-None-Match answered from the cache: 304",
            app: preset(),
            headers: vec![("if-none-match", etag_of_body_10k())],
            status: StatusCode::NOT_MODIFIED,
            encoding: None,
            path: "/data",
            full_len: body_10k().len(),
        },
        Case {
            name: "cache-hit",
            description: "ResponseCacheLayer alone on a MokaStore, hit",
            app: cache_hit_app(),
            headers: Vec::new(),
            status: StatusCode::OK,
            encoding: None,
            path: "/data",
            full_len: body_10k().len(),
        },
        Case {
            name: "etag-200",
            description: "ETagLayer on the bare handler, whose kept body it hashed once and remembers, full response",
            app: bare_app().layer(ETagLayer::new()),
            headers: Vec::new(),
            status: StatusCode::OK,
            encoding: None,
            path: "/data",
            full_len: body_10k().len(),
        },
        Case {
            name: "etag-304",
            description: "ETagLayer on the bare handler, If-None-Match matches: 304",
            app: bare_app().layer(ETagLayer::new()),
            headers: vec![("if-none-match", etag_of_body_10k())],
            status: StatusCode::NOT_MODIFIED,
            encoding: None,
            path: "/data",
            full_len: body_10k().len(),
        },
        Case {
            name: "fs-10k",
            description: "tower-edge ServeDir, a 10 KiB file (from its hot-file cache)",
            app: fs::edge_app(),
            headers: Vec::new(),
            status: StatusCode::OK,
            encoding: None,
            path: "/small.bin",
            full_len: 10 * 1024,
        },
        Case {
            name: "fs-304",
            description: "tower-edge ServeDir, If-Modified-Since on a 10 KiB file: 304",
            app: fs::edge_app(),
            headers: vec![("if-modified-since", fs::modified_of_small())],
            status: StatusCode::NOT_MODIFIED,
            encoding: None,
            path: "/small.bin",
            full_len: 10 * 1024,
        },
    ]
}

/// One request through `app`, its body read to the end; checked against what the case expects.
async fn once(case: &Case) -> Result<(), String> {
    let mut req = Request::get(case.path).header(header::HOST, "bench");
    for (name, value) in &case.headers {
        req = req.header(*name, value);
    }
    let req = req.body(Body::empty()).map_err(|e| e.to_string())?;
    let Ok(res) = case.app.clone().oneshot(req).await;
    let status = res.status();
    let encoding = res
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != case.status {
        return Err(format!("status {status}, expected {}", case.status));
    }
    if encoding.as_deref() != case.encoding {
        return Err(format!(
            "content-encoding {encoding:?}, expected {:?}",
            case.encoding
        ));
    }
    let expected_len = match (status, case.encoding) {
        (StatusCode::NOT_MODIFIED, _) => Some(0),
        (_, None) => Some(case.full_len),
        (_, Some(_)) => None,
    };
    if expected_len.is_some_and(|len| len != body.len()) || body.len() > case.full_len {
        return Err(format!("a body of {} bytes", body.len()));
    }
    Ok(())
}

struct Counted {
    allocations: f64,
    bytes: f64,
}

async fn count(case: &Case, requests: u32) -> Result<Counted, String> {
    // The first requests fill the cache (the store's put runs in a task spawned at the body's
    // end) and every lazily built value; they are not counted.
    for _ in 0..10 {
        once(case).await?;
        tokio::task::yield_now().await;
    }
    let region = Region::new(GLOBAL);
    for _ in 0..requests {
        once(case).await?;
    }
    let change = region.change();
    let n = f64::from(requests);
    Ok(Counted {
        allocations: (change.allocations + change.reallocations) as f64 / n,
        bytes: change.bytes_allocated as f64 / n,
    })
}

fn main() -> ExitCode {
    let mut requests = 1000u32;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => requests = 100,
            "--requests" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => requests = n,
                _ => {
                    eprint!("error: --requests takes a positive number\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--only" => match args.next() {
                Some(names) => only.extend(names.split(',').map(str::to_owned)),
                None => {
                    eprint!("error: --only takes scenario names\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprint!("error: unknown argument {other}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    // One thread: no other thread's allocations land in a region.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let mut cases = cases();
    for case in &mut cases {
        case.app = case.app.clone().with_state(());
    }
    if let Some(unknown) = only
        .iter()
        .find(|n| !cases.iter().any(|c| c.name == n.as_str()))
    {
        eprint!("error: no scenario {unknown}\n\n{USAGE}");
        return ExitCode::from(2);
    }
    if !only.is_empty() {
        cases.retain(|c| c.name == "bare" || only.iter().any(|n| n == c.name));
    }
    let mut rows = Vec::new();
    let mut failed = false;
    for case in &cases {
        match rt.block_on(count(case, requests)) {
            Ok(counted) => rows.push((case, counted)),
            Err(error) => {
                eprintln!("{}: {error}", case.name);
                failed = true;
            }
        }
    }
    let bare = rows
        .iter()
        .find(|(case, _)| case.name == "bare")
        .map_or(0.0, |(_, c)| c.allocations);
    println!("| scenario | allocations / request | over bare | bytes allocated / request |");
    println!("|---|---:|---:|---:|");
    for (case, counted) in &rows {
        println!(
            "| {} ({}) | {:.1} | {:+.1} | {:.0} |",
            case.name,
            case.description,
            counted.allocations,
            counted.allocations - bare,
            counted.bytes
        );
    }
    println!("\n{requests} requests counted per scenario, after 10 not counted.");
    fs::remove_files();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
