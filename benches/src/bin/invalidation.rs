//! What invalidating a URL costs in Redis as the keyspace grows: a write (three variants of a
//! resource stored) followed by its invalidation (`RedisStore::delete_resource`, what the cache
//! runs after every successful unsafe request), with 0, 100,000 and 1,000,000 unrelated keys in
//! the same database. A `delete_prefix` of one resource, which still walks the keyspace with
//! `SCAN`, is measured alongside as the cost the index avoids.
//!
//! ```sh
//! cargo run --release -p tower-edge-benches --bin invalidation -- --iterations 2000
//! ```
//!
//! It starts its own `redis-server` on a free loopback port and kills it at the end.

#![allow(clippy::print_stdout)] // a command-line report

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tower_edge_benches::redis::BenchRedis;
use tower_edge_store::{CacheKey, CacheStore, Entry, RedisStore};

const SIZES: [u64; 3] = [0, 100_000, 1_000_000];
/// `--smoke`: the same steps on small sizes, to check the bench works, not to measure.
const SMOKE_SIZES: [u64; 3] = [0, 1_000, 10_000];

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut iterations = 2000usize;
    let mut scans = 20usize;
    let mut sizes = SIZES;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| exit(&format!("{name} takes a number")))
        };
        match arg.as_str() {
            "--iterations" => iterations = value("--iterations").max(1),
            "--scans" => scans = value("--scans").max(1),
            "--smoke" => {
                (iterations, scans, sizes) = (20, 2, SMOKE_SIZES);
            }
            "-h" | "--help" => {
                println!(
                    "invalidation [--iterations N (2000)] [--scans N (20)] [--smoke]\n\n\
                     Times a write of three variants plus delete_resource, and delete_prefix \
                     of one resource, with 0, 100k and 1M unrelated keys in Redis."
                );
                return;
            }
            other => exit(&format!("unknown argument {other:?} (try --help)")),
        }
    }
    let redis = BenchRedis::start().unwrap_or_else(|e| exit(&e));
    let store = RedisStore::builder(&redis.url())
        .prefix("bench:")
        .op_timeout(Duration::from_secs(5))
        .admin_timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| exit(&e.to_string()));
    let client = deadpool_redis::redis::Client::open(redis.url()).expect("valid URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| exit(&e.to_string()));

    println!(
        "| unrelated keys | write + invalidate p50 µs | p99 µs | invalidate alone p50 µs | p99 µs | delete_prefix (SCAN) p50 µs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut filled = 0u64;
    let mut first: Option<(Duration, Duration)> = None;
    for size in sizes {
        // Another application's keys, added in batches so Redis is never blocked for long.
        while filled < size {
            let batch = (size - filled).min(50_000);
            let _: i64 = deadpool_redis::redis::cmd("EVAL")
                .arg(
                    "for i = ARGV[1], ARGV[2] do redis.call('SET', 'other:' .. i, 'x') end \
                     return 1",
                )
                .arg(0)
                .arg(filled + 1)
                .arg(filled + batch)
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| exit(&e.to_string()));
            filled += batch;
        }
        let mut both = Vec::with_capacity(iterations);
        let mut alone = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let resource = format!("GET http://bench.example/{size}/{i}");
            let started = Instant::now();
            for enc in ["br", "gzip", "identity"] {
                let key = CacheKey::new(&resource).with_variant("enc", enc);
                let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"{}"));
                store
                    .put(&key, entry, Duration::from_secs(600))
                    .await
                    .unwrap_or_else(|e| exit(&e.to_string()));
            }
            let invalidating = Instant::now();
            let removed = store
                .delete_resource(&resource)
                .await
                .unwrap_or_else(|e| exit(&e.to_string()));
            assert_eq!(removed, 3, "every variant is removed");
            alone.push(invalidating.elapsed());
            both.push(started.elapsed());
        }
        let mut scan = Vec::with_capacity(scans);
        for i in 0..scans {
            let resource = format!("GET http://bench.example/scan/{size}/{i}");
            let key = CacheKey::new(&resource);
            let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"{}"));
            store
                .put(&key, entry, Duration::from_secs(600))
                .await
                .unwrap_or_else(|e| exit(&e.to_string()));
            let started = Instant::now();
            store
                .delete_prefix(&resource)
                .await
                .unwrap_or_else(|e| exit(&e.to_string()));
            scan.push(started.elapsed());
        }
        let (p50, p99) = (percentile(&mut alone, 50), percentile(&mut alone, 99));
        first.get_or_insert((p50, p99));
        println!(
            "| {size} | {} | {} | {} | {} | {} |",
            micros(percentile(&mut both, 50)),
            micros(percentile(&mut both, 99)),
            micros(p50),
            micros(p99),
            micros(percentile(&mut scan, 50)),
        );
        if size == sizes[sizes.len() - 1]
            && let Some((empty50, empty99)) = first
        {
            println!(
                "\ninvalidate alone, {size} keys / empty: p50 {:.2}x, p99 {:.2}x",
                p50.as_secs_f64() / empty50.as_secs_f64(),
                p99.as_secs_f64() / empty99.as_secs_f64()
            );
        }
    }
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort_unstable();
    let rank = (samples.len() * p).div_ceil(100).max(1) - 1;
    samples[rank.min(samples.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn exit(message: &str) -> ! {
    eprintln!("invalidation: {message}");
    std::process::exit(2)
}
