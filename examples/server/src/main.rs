//! Runs the tower-edge example server.
//!
//! ```text
//! tower-edge-example-server [--addr HOST:PORT] [--request-timeout SECS] [--concurrency N]
//!                           [--header-timeout SECS] [--warm PATHS] [--static-dir DIR]
//! ```
//!
//! Every flag has an environment variable (see `--help`). With `REDIS_URL` set
//! (`redis://127.0.0.1:6379/0`), the response cache keeps memory in front of that Redis, shared
//! with every other instance started with the same URL, and invalidations reach all of them
//! through the Redis invalidation bus. `REDIS_CLUSTER_NODES`
//! (`redis://127.0.0.1:7000,redis://127.0.0.1:7001,...`) does the same on a Redis Cluster.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use axum::{Router, http::StatusCode};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tower::{ServiceBuilder, limit::ConcurrencyLimitLayer};
use tower_edge_example_server::AppState;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

const USAGE: &str = "\
tower-edge example server

USAGE:
    tower-edge-example-server [OPTIONS]

OPTIONS:
    --addr HOST:PORT          address to listen on [env: ADDR] [default: 127.0.0.1:3000]
    --request-timeout SECS    answer 503 to a request not done in time [env: REQUEST_TIMEOUT] [default: 30]
    --concurrency N           requests handled at once; the rest wait [env: CONCURRENCY] [default: 1024]
    --header-timeout SECS     time a client has to send a request head, also between
                              requests on a kept-alive connection [env: HEADER_TIMEOUT] [default: 10]
    --warm PATHS              comma-separated paths fetched into the cache at start
                              [env: WARM] [default: /,/api/products]
    --static-dir DIR          the files served under /static [env: STATIC_DIR]
                              [default: the sample files when run from the source tree,
                              else ./static]
    -h, --help                print this help

ENVIRONMENT:
    REDIS_URL                 keep the response cache in memory in front of this Redis
    REDIS_CLUSTER_NODES       or in front of this Redis Cluster: comma-separated node URLs,
                              e.g. redis://127.0.0.1:7000,redis://127.0.0.1:7001 (not both)
    PURGE_TOKEN               bearer token the operator routes require (POST /cache/purge, and
                              GET /debug/pprof/flamegraph with feature profiling); off without it
    RUST_LOG                  log filter, e.g. info or tower_edge=debug [default: info]
    OTEL_EXPORTER_OTLP_ENDPOINT
                              with feature otel: export traces over OTLP/HTTP to this collector
";

#[derive(Debug)]
struct Config {
    addr: SocketAddr,
    request_timeout: Duration,
    concurrency: usize,
    header_timeout: Duration,
    warm: Vec<String>,
    static_dir: Option<std::path::PathBuf>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut addr = env("ADDR");
    let mut request_timeout = env("REQUEST_TIMEOUT");
    let mut concurrency = env("CONCURRENCY");
    let mut header_timeout = env("HEADER_TIMEOUT");
    let mut warm = env("WARM");
    let mut static_dir = env("STATIC_DIR");
    let mut args = args.skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let slot = match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => &mut addr,
            "--request-timeout" => &mut request_timeout,
            "--concurrency" => &mut concurrency,
            "--header-timeout" => &mut header_timeout,
            "--warm" => &mut warm,
            "--static-dir" => &mut static_dir,
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(format!("{name} needs a value"))?,
        };
        *slot = Some(value);
    }
    let seconds = |value: Option<String>, name: &str, default: u64| -> Result<Duration, String> {
        match value {
            None => Ok(Duration::from_secs(default)),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or(format!("{name}: {v:?} is not a positive number of seconds")),
        }
    };
    let addr = addr.unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    Ok(Some(Config {
        addr: addr
            .parse()
            .map_err(|e| format!("invalid address {addr:?}: {e}"))?,
        request_timeout: seconds(request_timeout, "--request-timeout", 30)?,
        concurrency: match concurrency {
            None => 1024,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("--concurrency: {v:?} is not a positive number"))?,
        },
        header_timeout: seconds(header_timeout, "--header-timeout", 10)?,
        warm: warm
            .unwrap_or_else(|| "/,/api/products".to_owned())
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        static_dir: static_dir.map(std::path::PathBuf::from),
    }))
}

fn build_app(state: AppState) -> Result<Router, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (url, nodes) = (env("REDIS_URL"), env("REDIS_CLUSTER_NODES"));
    match tower_edge_example_server::shared_store(url.as_deref(), nodes.as_deref())? {
        Some(l2) => {
            if l2.is_cluster() {
                tracing::info!(
                    nodes = nodes.as_deref().unwrap_or_default(),
                    "response cache: memory in front of a Redis Cluster, with the invalidation bus"
                );
            } else {
                tracing::info!(
                    url = url.as_deref().unwrap_or_default(),
                    "response cache: memory in front of Redis, with the invalidation bus"
                );
            }
            Ok(tower_edge_example_server::app_on_redis(state, l2))
        }
        None => Ok(tower_edge_example_server::app_with_state(state)),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args(std::env::args()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            #[allow(clippy::print_stdout)] // --help goes to standard output
            {
                print!("{USAGE}");
            }
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprint!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = tower_edge_example_server::telemetry::init();
    let metrics = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "no metrics recorder; /metrics answers 404");
            None
        }
    };

    let mut state = AppState::new();
    if let Ok(token) = std::env::var("PURGE_TOKEN")
        && !token.is_empty()
    {
        state = state.with_purge_token(&token);
    }
    if let Some(handle) = metrics {
        state = state.with_metrics(handle);
    }
    if let Some(dir) = &config.static_dir {
        state = state.with_static_dir(dir);
    }
    let app = match build_app(state) {
        Ok(app) => app,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    // Outside the edge stack: the request span (with every field the layers record), a time
    // limit per request, and a bound on requests in progress.
    let app = app.layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http().make_span_with(tower_edge::observe::request_span))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                config.request_timeout,
            ))
            .layer(ConcurrencyLimitLayer::new(config.concurrency)),
    );

    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(config.addr, |a| a);

    // Warm the cache before taking traffic.
    let report =
        tower_edge::cache::warm_up(app.clone(), &format!("http://{local}"), &config.warm).await;
    for warmed in report {
        match warmed.result {
            Ok(status) => tracing::info!(
                path = warmed.path,
                accept_encoding = warmed.accept_encoding,
                %status,
                "warmed"
            ),
            Err(never) => match never {},
        }
    }
    eprintln!("tower-edge example server listening on http://{local}/");
    serve(listener, app, config.header_timeout).await
}

/// Serves HTTP/1.1 and HTTP/2 with a header read timeout, until Ctrl-C or SIGTERM; then lets
/// the requests in progress finish (for up to 10 s).
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
) -> ExitCode {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    // Ctrl-C, or SIGTERM from a service manager or an orchestrator.
    let mut stop = std::pin::pin!(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone().into_service::<hyper::body::Incoming>());
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut stop => {
                eprintln!("shutting down");
                break;
            }
        }
    }
    tokio::select! {
        () = graceful.shutdown() => ExitCode::SUCCESS,
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            eprintln!("some connections did not finish within 10 s");
            ExitCode::SUCCESS
        }
    }
}
