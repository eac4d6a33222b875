//! Runs the tower-edge example server. `--help` lists every option; each has an environment
//! variable, read when the flag is absent.
//!
//! With `REDIS_URL` set (`redis://127.0.0.1:6379/0`), the response cache keeps memory in front
//! of that Redis, shared with every other instance started with the same URL, and
//! invalidations reach all of them through the Redis invalidation bus. `REDIS_CLUSTER_NODES`
//! (`redis://127.0.0.1:7000,redis://127.0.0.1:7001,...`) does the same on a Redis Cluster.

use std::{
    net::SocketAddr,
    num::{NonZeroU64, NonZeroUsize},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use axum::{Router, http::StatusCode};
use clap::{CommandFactory, FromArgMatches, Parser};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tower::{ServiceBuilder, limit::ConcurrencyLimitLayer};
use tower_edge_example_server::AppState;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

/// The variables read outside the flags, for `--help`.
const ENVIRONMENT: &str = "\
Environment:
  RUST_LOG                     log filter, e.g. info or tower_edge=debug [default: info]
  OTEL_EXPORTER_OTLP_ENDPOINT  with feature otel: export traces over OTLP/HTTP to this collector";

/// The tower-edge example server: every layer of tower-edge on realistic routes, with its
/// response cache in memory, or in memory in front of Redis.
#[derive(Debug, Parser)]
#[command(version, after_help = ENVIRONMENT)]
struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "ADDR",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:3000"
    )]
    addr: SocketAddr,

    /// Answer 503 to a request not done within this many seconds.
    #[arg(
        long,
        env = "REQUEST_TIMEOUT",
        value_name = "SECS",
        default_value = "30"
    )]
    request_timeout: NonZeroU64,

    /// Requests handled at once; the rest wait.
    #[arg(long, env = "CONCURRENCY", value_name = "N", default_value = "1024")]
    concurrency: NonZeroUsize,

    /// Seconds a client has to send a request head, also between requests on a kept-alive
    /// connection.
    #[arg(
        long,
        env = "HEADER_TIMEOUT",
        value_name = "SECS",
        default_value = "10"
    )]
    header_timeout: NonZeroU64,

    /// Log each request that takes at least this many milliseconds (to the end of its body),
    /// once, with its route, cache outcome, and origin and store time; 0 turns the log off.
    #[arg(
        long,
        env = "SLOW_REQUEST_MS",
        value_name = "MS",
        default_value = "1000"
    )]
    slow_request_ms: u64,

    /// Comma-separated paths fetched into the cache at start.
    #[arg(
        long,
        env = "WARM",
        value_name = "PATHS",
        default_value = "/,/api/products"
    )]
    warm: String,

    /// The files served under /static [default: the sample files when run from the source
    /// tree, else ./static].
    #[arg(long, env = "STATIC_DIR", value_name = "DIR")]
    static_dir: Option<PathBuf>,

    /// The files served under /download [default: a generated 2 MiB sample.bin in a
    /// temporary directory].
    #[arg(long, env = "DOWNLOAD_DIR", value_name = "DIR")]
    download_dir: Option<PathBuf>,

    /// Behind nginx: answer /download/FILE with `X-Accel-Redirect: <PREFIX><FILE>` instead of the
    /// bytes, for an `internal` nginx location at PREFIX that aliases the download directory.
    #[arg(long, env = "X_ACCEL_REDIRECT", value_name = "PREFIX")]
    x_accel_redirect: Option<String>,

    /// Keep the response cache in memory in front of this Redis, shared with every instance
    /// started with the same URL.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    redis_url: Option<String>,

    /// Or in front of this Redis Cluster: comma-separated node URLs, e.g.
    /// redis://127.0.0.1:7000,redis://127.0.0.1:7001 (not both).
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_name = "URLS")]
    redis_cluster_nodes: Option<String>,

    /// Bearer token the operator routes require (POST /cache/purge, and GET
    /// /debug/pprof/flamegraph with feature profiling); off without one. Prefer the
    /// environment variable: other users can read a process's flags.
    #[arg(
        long,
        env = "PURGE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    purge_token: Option<String>,
}

impl Cli {
    /// The options from the command line, then the environment. An empty variable counts as
    /// unset (`REDIS_URL=` in a compose file means no Redis), where clap alone would read an
    /// empty value.
    fn from_env() -> Self {
        let command = Self::command().mut_args(|arg| {
            let empty = arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|value| value.is_empty());
            if empty { arg.env(None) } else { arg }
        });
        let matches = command.get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The paths of `--warm`.
    fn warm_paths(&self) -> Vec<String> {
        self.warm
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The application state the options describe.
    fn state(&self) -> AppState {
        let mut state = AppState::new();
        if self.slow_request_ms > 0 {
            state = state.with_slow_requests(Duration::from_millis(self.slow_request_ms));
        }
        if let Some(token) = &self.purge_token {
            state = state.with_purge_token(token);
        }
        if let Some(dir) = &self.static_dir {
            state = state.with_static_dir(dir);
        }
        if let Some(dir) = &self.download_dir {
            state = state.with_download_dir(dir);
        }
        if let Some(prefix) = &self.x_accel_redirect {
            tracing::info!(
                prefix,
                "downloads offloaded to the front server (X-Accel-Redirect)"
            );
            state = state.with_x_accel_redirect(prefix);
        }
        state
    }
}

fn build_app(cli: &Cli, state: AppState) -> Result<Router, String> {
    let (url, nodes) = (cli.redis_url.as_deref(), cli.redis_cluster_nodes.as_deref());
    match tower_edge_example_server::shared_store(url, nodes)? {
        Some(l2) => {
            if l2.is_cluster() {
                tracing::info!(
                    nodes = nodes.unwrap_or_default(),
                    "response cache: memory in front of a Redis Cluster, with the invalidation bus"
                );
            } else {
                tracing::info!(
                    url = url.unwrap_or_default(),
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
    // `--help` and mistakes end here (exit 0 and 2).
    let cli = Cli::from_env();
    let _telemetry = tower_edge_example_server::telemetry::init();
    // Buckets for the duration histograms that suit a cache: 10 µs to 10 s.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets_for_metric(
        metrics_exporter_prometheus::Matcher::Prefix("tower_edge_".to_owned()),
        &tower_edge::observe::DURATION_BUCKETS,
    );
    let metrics = match recorder.and_then(|recorder| recorder.install_recorder()) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "no metrics recorder; /metrics answers 404");
            None
        }
    };

    let mut state = cli.state();
    if let Some(handle) = metrics {
        state = state.with_metrics(handle);
    }
    let app = match build_app(&cli, state) {
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
                Duration::from_secs(cli.request_timeout.get()),
            ))
            .layer(ConcurrencyLimitLayer::new(cli.concurrency.get())),
    );

    let listener = match tokio::net::TcpListener::bind(cli.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", cli.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(cli.addr, |a| a);

    // Warm the cache before taking traffic.
    let report =
        tower_edge::cache::warm_up(app.clone(), &format!("http://{local}"), &cli.warm_paths())
            .await;
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
    serve(listener, app, Duration::from_secs(cli.header_timeout.get())).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn the_options_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn reads_flags_in_both_forms_and_splits_the_warm_list() {
        let cli = parse(&[
            "--addr=0.0.0.0:80",
            "--warm",
            " /a, ,/b ",
            "--concurrency",
            "8",
        ])
        .unwrap();
        assert_eq!(cli.addr, "0.0.0.0:80".parse().unwrap());
        assert_eq!(cli.warm_paths(), ["/a", "/b"]);
        assert_eq!(cli.concurrency.get(), 8);
    }

    #[test]
    fn refuses_zero_and_words_where_a_count_is_due() {
        for bad in [
            &["--concurrency", "0"][..],
            &["--request-timeout", "soon"],
            &["--header-timeout=0"],
            &["--bogus"],
            &["--addr"],
        ] {
            let error = parse(bad).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{bad:?}");
        }
    }
}
