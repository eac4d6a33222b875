//! Soak: the example server, its cache in memory in front of a real Redis, under a bounded mixed
//! load for a given time, while Redis is killed and restarted and handlers fail or slow down.
//!
//! ```text
//! cargo run --release -p tower-edge-tests --bin soak -- --duration 600
//! ```
//!
//! Each restart of Redis empties the memory tier too (the invalidation bus may have missed
//! messages while it was down), so Redis is killed less often than entries live (40 s against
//! a 30 s `max-age`), and handler outages fall when entries expire: that is when stale answers
//! (`stale-if-error`) are served.
//!
//! Every answer is checked: a product is the one asked for, a range holds the right bytes, a
//! write is visible to the next read, an event stream is whole and in order. The run fails (exit
//! status 1) if any answer is wrong, if a 5xx reaches a client that the handler did not produce
//! (injected failures are marked `x-fault`), if a request takes longer than `--hang-secs`, or
//! if the process's resident memory passes `--max-rss-mib`. It prints requests, errors by kind,
//! stale answers, p50/p99 latency and peak memory.

#![allow(clippy::print_stdout)] // a command-line report

use std::{
    collections::BTreeMap,
    io::Read,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tower_edge_example_server::{
    AppState, download_bytes,
    faults::{FAULT_HEADER, Faults, app_with_faults},
};
use tower_edge_store::{MokaStore, RedisStore, tiered::Tiered};
use tower_edge_tests::redis_server::RedisServer;

struct Options {
    duration: Duration,
    workers: usize,
    kill_every: Duration,
    down_for: Duration,
    fail_per_mille: u32,
    slow_per_mille: u32,
    max_rss_mib: u64,
    outage_every: Duration,
    outage_for: Duration,
    hang: Duration,
    seed: u64,
}

const HELP: &str =
    "soak: the example server under mixed load, with Redis killed and handlers failing

options (defaults in brackets):
  --duration SECS       how long to run [60]
  --workers N           concurrent keep-alive clients [12]
  --kill-every SECS     kill Redis this often [40]
  --down-for SECS       keep it down this long before restarting it [2]
  --fail-per-mille N    injected handler failures per 1000 data requests [20]
  --slow-per-mille N    injected handler delays (200 ms) per 1000 data requests [20]
  --outage-every SECS   make every data handler fail this often [25]
  --outage-for SECS     for this long [8]
  --max-rss-mib N       fail if resident memory passes this [512]
  --hang-secs N         fail if one request takes longer [10]
  --seed N              seed of the load and fault generators [1]

environment:
  SOAK_LOG=LEVEL        print the server's tracing events at LEVEL (error, warn, info, debug)
                        and above to standard error";

fn options() -> Options {
    let mut o = Options {
        duration: Duration::from_secs(60),
        workers: 12,
        kill_every: Duration::from_secs(40),
        down_for: Duration::from_secs(2),
        fail_per_mille: 20,
        slow_per_mille: 20,
        max_rss_mib: 512,
        outage_every: Duration::from_secs(25),
        outage_for: Duration::from_secs(8),
        hang: Duration::from_secs(10),
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{HELP}");
            std::process::exit(0);
        }
        let value: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("{flag} needs a number\n\n{HELP}");
            std::process::exit(2)
        });
        match flag.as_str() {
            "--duration" => o.duration = Duration::from_secs(value),
            "--workers" => o.workers = value.max(1) as usize,
            "--kill-every" => o.kill_every = Duration::from_secs(value.max(1)),
            "--down-for" => o.down_for = Duration::from_secs(value),
            "--fail-per-mille" => o.fail_per_mille = value.min(1000) as u32,
            "--slow-per-mille" => o.slow_per_mille = value.min(1000) as u32,
            "--max-rss-mib" => o.max_rss_mib = value,
            "--outage-every" => o.outage_every = Duration::from_secs(value.max(1)),
            "--outage-for" => o.outage_for = Duration::from_secs(value),
            "--hang-secs" => o.hang = Duration::from_secs(value.max(1)),
            "--seed" => o.seed = value,
            _ => {
                eprintln!("unknown option {flag}\n\n{HELP}");
                std::process::exit(2);
            }
        }
    }
    o
}

/// What the run saw.
#[derive(Default)]
struct Report {
    requests: AtomicU64,
    stale: AtomicU64,
    hits: AtomicU64,
    injected: AtomicU64,
    /// Problems that fail the run, by kind, with the first few examples.
    failures: Mutex<BTreeMap<&'static str, (u64, Vec<String>)>>,
    latencies_us: Mutex<Vec<u32>>,
    peak_rss: AtomicU64,
    /// When the load began, to date the failures.
    started: std::sync::OnceLock<std::time::Instant>,
}

impl Report {
    fn fail(&self, kind: &'static str, detail: impl std::fmt::Display) {
        let mut failures = self.failures.lock().unwrap();
        let entry = failures.entry(kind).or_default();
        entry.0 += 1;
        if entry.1.len() < 5 {
            let at = self
                .started
                .get()
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            entry.1.push(format!("at {at:.1}s: {detail}"));
        }
    }
}

/// A small deterministic generator per worker.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

/// One keep-alive connection that reconnects when the server closes it.
struct Client {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await.map_err(|e| format!("ready: {e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get(path).header(header::HOST, "soak.test");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.body(Full::new(Bytes::new())).expect("valid request")
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out)
}

/// The body as the client reads it, decoded if it was compressed.
fn decoded(answer: &Answer) -> Result<Vec<u8>, String> {
    match answer.headers.get(header::CONTENT_ENCODING) {
        None => Ok(answer.body.to_vec()),
        Some(v) if v == "gzip" => gunzip(&answer.body),
        Some(other) => Err(format!("unexpected coding {other:?}")),
    }
}

/// Books the status: `Ok(true)` for a 2xx to check, `Ok(false)` for an injected failure.
fn book(report: &Report, what: &str, answer: &Answer) -> Result<bool, ()> {
    if let Some(status) = answer
        .headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
    {
        if status.contains("stale") {
            report.stale.fetch_add(1, Ordering::Relaxed);
        } else if status.starts_with("tower-edge; hit") {
            report.hits.fetch_add(1, Ordering::Relaxed);
        }
    }
    if answer.status.is_server_error() {
        if answer.headers.contains_key(FAULT_HEADER) {
            report.injected.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        report.fail(
            "5xx-not-from-handler",
            format!(
                "{what}: {} {:?}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ),
        );
        return Err(());
    }
    Ok(true)
}

async fn timed(
    report: &Report,
    hang: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<Answer, String>>,
) -> Option<Answer> {
    let start = Instant::now();
    let outcome = tokio::time::timeout(hang, fut).await;
    report.requests.fetch_add(1, Ordering::Relaxed);
    // An event stream lasts four seconds by design: its time is not a request's latency.
    if !what.starts_with("GET /events") {
        let us = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        report.latencies_us.lock().unwrap().push(us);
    }
    match outcome {
        Err(_) => {
            report.fail("hang", format!("{what}: no answer within {hang:?}"));
            None
        }
        Ok(Err(e)) => {
            report.fail("transport", format!("{what}: {e}"));
            None
        }
        Ok(Ok(answer)) => Some(answer),
    }
}

fn product_id(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("id")?.as_u64()
}

async fn worker(
    id: usize,
    addr: SocketAddr,
    options: Arc<Options>,
    report: Arc<Report>,
    stop: Arc<AtomicBool>,
    download: Arc<Vec<u8>>,
) {
    let mut client = Client { addr, sender: None };
    let mut rng = Rng(options
        .seed
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(id as u64 * 7919)
        | 1);
    let hang = options.hang;
    let mut writes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.below(100);
        let gzip = rng.below(2) == 0;
        let ae: &[(&str, &str)] = if gzip {
            &[("accept-encoding", "gzip")]
        } else {
            &[]
        };
        match roll {
            // Hits on the hot products.
            0..=44 => {
                let pid = 1 + rng.below(10);
                let what = format!("GET /api/products/{pid}");
                let Some(a) = timed(
                    &report,
                    hang,
                    &what,
                    client.send(get(&format!("/api/products/{pid}"), ae)),
                )
                .await
                else {
                    continue;
                };
                if book(&report, &what, &a) == Ok(true) {
                    match decoded(&a).map(|b| product_id(&b)) {
                        Ok(Some(got)) if got == pid => {}
                        other => report.fail("wrong-body", format!("{what}: {other:?}")),
                    }
                }
            }
            // Misses: a fresh query each time.
            45..=59 => {
                let pid = 1 + rng.below(40);
                let path = format!("/api/products/{pid}?miss={}", rng.below(u64::MAX));
                let Some(a) = timed(&report, hang, &path, client.send(get(&path, ae))).await else {
                    continue;
                };
                if book(&report, &path, &a) == Ok(true) {
                    match decoded(&a).map(|b| product_id(&b)) {
                        Ok(Some(got)) if got == pid => {}
                        other => report.fail("wrong-body", format!("{path}: {other:?}")),
                    }
                }
            }
            // The catalogue.
            60..=69 => {
                let what = "GET /api/products";
                let Some(a) =
                    timed(&report, hang, what, client.send(get("/api/products", ae))).await
                else {
                    continue;
                };
                if book(&report, what, &a) == Ok(true) {
                    let ok = decoded(&a)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok());
                    match ok {
                        Some(list) if list.len() >= 10 => {}
                        other => report.fail("wrong-body", format!("{what}: {other:?}")),
                    }
                }
            }
            // Ranges of the download.
            70..=79 => {
                let len = download.len() as u64;
                let first = rng.below(len);
                let last = (first + rng.below(256 * 1024)).min(len - 1);
                let range = format!("bytes={first}-{last}");
                let what = format!("GET /download/sample.bin {range}");
                let Some(a) = timed(
                    &report,
                    hang,
                    &what,
                    client.send(get("/download/sample.bin", &[("range", &range)])),
                )
                .await
                else {
                    continue;
                };
                if book(&report, &what, &a) == Ok(true) {
                    let expected = &download[first as usize..=last as usize];
                    if a.status != StatusCode::PARTIAL_CONTENT || a.body != expected {
                        report.fail(
                            "wrong-body",
                            format!("{what}: {} with {} bytes", a.status, a.body.len()),
                        );
                    }
                }
            }
            // Articles.
            80..=87 => {
                let what = "GET /articles/validators";
                let Some(a) = timed(
                    &report,
                    hang,
                    what,
                    client.send(get("/articles/validators", ae)),
                )
                .await
                else {
                    continue;
                };
                if book(&report, what, &a) == Ok(true) {
                    match decoded(&a) {
                        Ok(b) if String::from_utf8_lossy(&b).contains("<h1>") => {}
                        other => report.fail(
                            "wrong-body",
                            format!("{what}: {:?}", other.map(|b| b.len())),
                        ),
                    }
                }
            }
            // Writes (invalidations), each visible to the next read. Each worker owns the
            // products it writes, so no other writer races it.
            _ => {
                let pid = 11 + (id as u64 % 30);
                let path = format!("/api/products/{pid}");
                let Some(read) = timed(&report, hang, &path, client.send(get(&path, &[]))).await
                else {
                    continue;
                };
                if book(&report, &path, &read) != Ok(true) {
                    continue;
                }
                let Some(etag) = read.headers.get(header::ETAG).cloned() else {
                    report.fail("wrong-body", format!("{path}: no ETag"));
                    continue;
                };
                writes += 1;
                let name = format!("soak w{id} n{writes}");
                let body = serde_json::json!({
                    "name": name, "price_cents": writes, "description": "soak", "stock": id,
                });
                let put = Request::builder()
                    .method(Method::PUT)
                    .uri(&path)
                    .header(header::HOST, "soak.test")
                    .header(header::IF_MATCH, etag)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .expect("valid request");
                let what = format!("PUT {path}");
                let Some(w) = timed(&report, hang, &what, client.send(put)).await else {
                    continue;
                };
                if book(&report, &what, &w) != Ok(true) {
                    continue;
                }
                if w.status != StatusCode::OK {
                    // The ETag read from the cache was not the current one: a stale read.
                    report.fail("stale-after-write", format!("{what}: {}", w.status));
                    continue;
                }
                let Some(after) = timed(&report, hang, &path, client.send(get(&path, &[]))).await
                else {
                    continue;
                };
                if book(&report, &path, &after) == Ok(true) {
                    let seen = serde_json::from_slice::<serde_json::Value>(&after.body)
                        .ok()
                        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_owned));
                    if seen.as_deref() != Some(name.as_str()) {
                        // How each read was answered, to tell where the old data came from.
                        let how = |a: &Answer| {
                            let header = |n: &str| {
                                a.headers
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("-")
                                    .to_owned()
                            };
                            format!(
                                "[{}; age {}; etag {}]",
                                header("cache-status"),
                                header("age"),
                                header("etag")
                            )
                        };
                        report.fail(
                            "stale-after-write",
                            format!(
                                "{path}: wrote {name:?}, read {seen:?} {}; read before the write {}",
                                how(&after),
                                how(&read)
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Reads whole event streams, one after another, checking each is complete and in order.
async fn sse_reader(addr: SocketAddr, report: Arc<Report>, stop: Arc<AtomicBool>, hang: Duration) {
    let mut client = Client { addr, sender: None };
    while !stop.load(Ordering::Relaxed) {
        let what = "GET /events";
        let Some(a) = timed(
            &report,
            hang,
            what,
            client.send(get("/events", &[("accept-encoding", "gzip")])),
        )
        .await
        else {
            continue;
        };
        if book(&report, what, &a) != Ok(true) {
            continue;
        }
        let text = decoded(&a).map(|b| String::from_utf8_lossy(&b).into_owned());
        let ids: Vec<String> = text
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("id: ").map(str::to_owned))
            .collect();
        if ids != ["0", "1", "2", "3", "4"] {
            report.fail("wrong-body", format!("{what}: event ids {ids:?}"));
        }
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let options = Arc::new(options());
    if let Some(level) = std::env::var("SOAK_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
    {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let code = runtime.block_on(run(options));
    // Drops the server's task, and with it the example's temporary download directory, which
    // `exit` would leave behind.
    runtime.shutdown_timeout(Duration::from_secs(5));
    std::process::exit(code);
}

async fn run(options: Arc<Options>) -> i32 {
    let redis = Arc::new(Mutex::new(RedisServer::start()));
    let url = redis.lock().unwrap().url();
    let l2 = RedisStore::builder(&url)
        .prefix("soak:")
        .build()
        .expect("a Redis store for the local redis-server");
    let memory = MokaStore::builder().max_bytes(32 * 1024 * 1024).build();
    let store = Tiered::new(memory, l2).with_invalidation_bus();
    let faults = Faults::new(
        options.fail_per_mille,
        options.slow_per_mille,
        Duration::from_millis(200),
        options.seed,
    );
    let app = app_with_faults(AppState::new(), store, faults.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server runs");
    });

    let report = Arc::new(Report::default());
    let _ = report.started.set(std::time::Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let download = Arc::new(download_bytes());
    let started = Instant::now();
    println!(
        "soak: {:?} on {addr}, {} workers + 2 event-stream readers, Redis killed every {:?} for {:?}, \
         {}‰ handler failures, {}‰ delays, handler outages of {:?} every {:?}",
        options.duration,
        options.workers,
        options.kill_every,
        options.down_for,
        options.fail_per_mille,
        options.slow_per_mille,
        options.outage_for,
        options.outage_every
    );

    let mut tasks = Vec::new();
    for id in 0..options.workers {
        tasks.push(tokio::spawn(worker(
            id,
            addr,
            Arc::clone(&options),
            Arc::clone(&report),
            Arc::clone(&stop),
            Arc::clone(&download),
        )));
    }
    for _ in 0..2 {
        tasks.push(tokio::spawn(sse_reader(
            addr,
            Arc::clone(&report),
            Arc::clone(&stop),
            options.hang,
        )));
    }

    // Chaos and memory watch until the time is up.
    let mut kills = 0u64;
    let mut outages = 0u64;
    let mut next_kill = started + options.kill_every;
    let mut next_outage = started + options.outage_every;
    let mut outage_ends: Option<Instant> = None;
    let mut next_line = started + Duration::from_secs(10);
    while started.elapsed() < options.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rss = rss_bytes();
        report.peak_rss.fetch_max(rss, Ordering::Relaxed);
        if rss > options.max_rss_mib * 1024 * 1024 {
            report.fail("memory", format!("resident memory {} MiB", rss >> 20));
            break;
        }
        if outage_ends.is_some_and(|end| Instant::now() >= end) {
            faults.set_outage(false);
            outage_ends = None;
        }
        if Instant::now() >= next_outage {
            outages += 1;
            faults.set_outage(true);
            outage_ends = Some(Instant::now() + options.outage_for);
            next_outage += options.outage_every;
        }
        if Instant::now() >= next_kill {
            kills += 1;
            redis.lock().unwrap().stop();
            tokio::time::sleep(options.down_for).await;
            let r = Arc::clone(&redis);
            tokio::task::spawn_blocking(move || r.lock().unwrap().restart())
                .await
                .expect("restart redis-server");
            next_kill = Instant::now() + options.kill_every;
        }
        if Instant::now() >= next_line {
            println!(
                "  {:>4}s: {} requests, {} hits, {} stale, {} injected, {} Redis kills, {} outages, rss {} MiB",
                started.elapsed().as_secs(),
                report.requests.load(Ordering::Relaxed),
                report.hits.load(Ordering::Relaxed),
                report.stale.load(Ordering::Relaxed),
                report.injected.load(Ordering::Relaxed),
                kills,
                outages,
                rss >> 20
            );
            next_line += Duration::from_secs(10);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        if let Err(e) = tokio::time::timeout(options.hang * 2, task).await {
            report.fail("hang", format!("a client did not finish: {e}"));
        }
    }
    server.abort();

    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *report.latencies_us.lock().unwrap());
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let requests = report.requests.load(Ordering::Relaxed);
    println!("soak report after {:.0} s", elapsed.as_secs_f64());
    println!(
        "  requests {requests} ({:.0}/s), hits {}, stale served {}, injected 5xx {}, Redis kills {kills}, handler outages {outages}",
        requests as f64 / elapsed.as_secs_f64(),
        report.hits.load(Ordering::Relaxed),
        report.stale.load(Ordering::Relaxed),
        report.injected.load(Ordering::Relaxed),
    );
    println!(
        "  latency (event streams excluded) p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  peak resident memory {} MiB (bound {} MiB)",
        report.peak_rss.load(Ordering::Relaxed) >> 20,
        options.max_rss_mib
    );
    let failures = report.failures.lock().unwrap();
    if failures.is_empty() {
        println!("  errors: none (no wrong body, no 5xx the handler did not send, no hang)");
        0
    } else {
        for (kind, (n, examples)) in failures.iter() {
            println!("  FAILED {kind}: {n}");
            for e in examples {
                println!("    {e}");
            }
        }
        1
    }
}
