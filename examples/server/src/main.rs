//! Runs the tower-edge example server.
//!
//! ```text
//! tower-edge-example-server [--addr HOST:PORT]
//! ```
//!
//! The address comes from `--addr`, else the `ADDR` variable, else `127.0.0.1:3000`. With
//! `REDIS_URL` set (`redis://127.0.0.1:6379/0`), the response cache keeps memory in front of
//! that Redis, shared with every other instance started with the same URL, and invalidations
//! reach all of them through the Redis invalidation bus.

use std::{net::SocketAddr, process::ExitCode};

const USAGE: &str = "\
tower-edge example server

USAGE:
    tower-edge-example-server [--addr HOST:PORT]

OPTIONS:
    --addr HOST:PORT    address to listen on [env: ADDR] [default: 127.0.0.1:3000]

ENVIRONMENT:
    REDIS_URL           keep the response cache in memory in front of this Redis
    -h, --help          print this help
";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<SocketAddr>, String> {
    let mut addr = std::env::var("ADDR").ok();
    let mut args = args.skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => {
                let value = args.next();
                addr = Some(value.ok_or("--addr needs a value, e.g. 127.0.0.1:3000")?);
            }
            other => match other.strip_prefix("--addr=") {
                Some(value) => addr = Some(value.to_owned()),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    addr.parse()
        .map(Some)
        .map_err(|e| format!("invalid address {addr:?}: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = match parse_args(std::env::args()) {
        Ok(Some(addr)) => addr,
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
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    eprintln!("tower-edge example server listening on http://{local}/");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("shutting down");
    };
    let state = tower_edge_example_server::AppState::new();
    let app = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let l2 = match tower_edge_store::RedisStore::builder(&url)
                .prefix("tower-edge-example:")
                .build()
            {
                Ok(l2) => l2,
                Err(e) => {
                    eprintln!("error: REDIS_URL {url:?}: {e}");
                    return ExitCode::from(2);
                }
            };
            eprintln!("response cache: memory in front of {url}, with the invalidation bus");
            let memory = tower_edge_store::MokaStore::builder()
                .max_bytes(64 * 1024 * 1024)
                .build();
            let store = tower_edge_store::tiered::Tiered::new(memory, l2).with_invalidation_bus();
            tower_edge_example_server::app_with_store(state, store)
        }
        _ => tower_edge_example_server::app_with_state(state),
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
