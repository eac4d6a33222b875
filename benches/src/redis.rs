//! Scenarios that need a Redis server: the load bench starts one (`redis-server` on a free
//! loopback port) and hands its URL over with [`set_url`] before running them.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::OnceLock,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use deadpool_redis::{Pool, Runtime, redis};
use tower_edge::cache::{MokaStore, ResponseCacheLayer};
use tower_edge_store::{RedisStore, tiered::Tiered};

use crate::{Expect, RequestSpec, Scenario, body_10k, get_data};

static URL: OnceLock<String> = OnceLock::new();

/// The key the baseline handler reads.
const RAW_KEY: &str = "bench:raw-10k";

/// Sets the URL of the Redis the scenarios use (once).
pub fn set_url(url: String) {
    let _ = URL.set(url);
}

/// Whether a scenario needs Redis: those named `redis-…` or `tiered-…`.
pub fn needs_redis(name: &str) -> bool {
    name.starts_with("redis-") || name.starts_with("tiered-")
}

fn url() -> &'static str {
    URL.get()
        .expect("the load bench starts redis-server and sets its URL before these scenarios")
}

/// Writes the 10 KiB body under [`RAW_KEY`] with a plain RESP `SET` (no client needed).
fn seed() {
    let addr = url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    let body = body_10k();
    let mut request = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{RAW_KEY}\r\n${}\r\n",
        RAW_KEY.len(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request.extend_from_slice(b"\r\n");
    let mut stream = TcpStream::connect(addr).expect("connect to the bench redis-server");
    stream.write_all(&request).expect("SET the bench body");
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).expect("SET reply");
    assert_eq!(&reply, b"+OK\r\n", "SET failed");
}

/// The baseline: an axum handler doing one deadpool-redis `GET` of the same 10 KiB.
pub fn redis_bare_app() -> Router {
    seed();
    let pool = deadpool_redis::Config::from_url(url())
        .create_pool(Some(Runtime::Tokio1))
        .expect("pool");
    Router::new()
        .route("/data", get(redis_get))
        .with_state(pool)
}

async fn redis_get(State(pool): State<Pool>) -> Response {
    let Ok(mut conn) = pool.get().await else {
        return http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let value: Option<Vec<u8>> = redis::cmd("GET")
        .arg(RAW_KEY)
        .query_async(&mut conn)
        .await
        .unwrap_or(None);
    match value {
        Some(bytes) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        None => http::StatusCode::NOT_FOUND.into_response(),
    }
}

fn redis_store(prefix: &str) -> RedisStore {
    RedisStore::builder(url())
        .prefix(prefix)
        .build()
        .expect("valid URL")
}

/// `ResponseCacheLayer` on `RedisStore` alone: every hit is a Redis `GET` and a decode.
pub fn redis_hit_app() -> Router {
    crate::cacheable_router().layer(ResponseCacheLayer::new(redis_store("bench-l2:")))
}

/// `ResponseCacheLayer` on `Tiered<MokaStore, RedisStore>`: hits come from memory.
pub fn tiered_hit_app() -> Router {
    let store = Tiered::new(MokaStore::default(), redis_store("bench-tiered:"));
    crate::cacheable_router().layer(ResponseCacheLayer::new(store))
}

/// The scenarios that need Redis.
pub fn scenarios(full: Expect) -> Vec<Scenario> {
    let request: RequestSpec = get_data(Vec::new());
    vec![
        Scenario {
            name: "redis-bare",
            description: "axum handler doing a plain deadpool-redis GET of the 10 KiB (baseline for redis-hit)",
            app: redis_bare_app,
            request: request.clone(),
            expect: full,
        },
        Scenario {
            name: "redis-hit",
            description: "ResponseCacheLayer hit on RedisStore only (one GET, one decode)",
            app: redis_hit_app,
            request: request.clone(),
            expect: full,
        },
        Scenario {
            name: "tiered-hit",
            description: "ResponseCacheLayer hit on Tiered<MokaStore, RedisStore> (compare with cache-hit)",
            app: tiered_hit_app,
            request,
            expect: full,
        },
    ]
}

/// A `redis-server` this bench started on a free loopback port; killed (by its PID) on drop.
#[derive(Debug)]
pub struct BenchRedis {
    child: std::process::Child,
    port: u16,
}

impl BenchRedis {
    /// Starts `redis-server` on a free loopback port, without persistence.
    pub fn start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start redis-server ({e}); install it (apt-get install redis-server)"
                )
            })?;
        let redis = Self { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                return Err("redis-server did not start within 10 s".to_owned());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(redis)
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for BenchRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
