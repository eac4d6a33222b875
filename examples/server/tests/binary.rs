//! The README's run command, as a user runs it: the example server binary starts with no
//! external service, and what `curl` sees on every documented route is what the README says.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use http::StatusCode;
use tower_edge_example_server::ROUTES;

mod common;
use common::get;

/// The server process this test started; stopped (by its PID) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, as a service manager stops it: the server shuts down and removes its
        // temporary download directory, which a kill would leave behind. Killed if it does not
        // exit within its 10 s of grace and some.
        let terminated = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        while terminated && Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Server, SocketAddr) {
    start_with(&[])
}

/// The server with `extra` flags after the test's own.
fn start_with(extra: &[&str]) -> (Server, SocketAddr) {
    start_with_env(extra, &[])
}

/// The server with `extra` flags and `env` variables.
fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> (Server, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tower-edge-example-server"))
        .args(["--addr", "127.0.0.1:0", "--warm", "/"])
        .args(extra)
        .envs(env.iter().copied())
        .env_remove("REDIS_URL")
        .env_remove("ADDR")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example server binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let server = Server(child);
    // It prints the address it listens on once it is ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest
                .trim_end_matches('/')
                .parse()
                .expect("a socket address");
            return (server, addr);
        }
        assert!(
            Instant::now() < deadline,
            "the server never said it was listening"
        );
    }
    panic!("the server exited before listening");
}

#[tokio::test]
async fn the_binary_serves_every_documented_route() {
    let (_server, addr) = start();
    // Warmed at start: the home page is already a hit.
    let (status, headers, _) = get(addr, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("tower-edge; hit"),
        "{headers:?}"
    );
    for (path, _) in ROUTES {
        let (status, _, body) = get(addr, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
    // Prometheus metrics, with the layers' counters in them.
    let (status, _, metrics) = get(addr, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&metrics).contains("tower_edge_cache_total"));
    // Purging is off without PURGE_TOKEN.
    let (status, _, _) = get(addr, "/healthz", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn help_lists_every_option_and_bad_flags_exit_2() {
    let help = Command::new(env!("CARGO_BIN_EXE_tower-edge-example-server"))
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--addr",
        "--request-timeout",
        "--concurrency",
        "--header-timeout",
        "--warm",
        "--static-dir",
        "--download-dir",
        "--x-accel-redirect",
        "--redis-url",
        "--redis-cluster-nodes",
        "--purge-token",
        "STATIC_DIR",
        "DOWNLOAD_DIR",
        "X_ACCEL_REDIRECT",
        "RUST_LOG",
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "PURGE_TOKEN",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_tower-edge-example-server"))
        .arg("--concurrency=zero")
        .output()
        .expect("run with a bad flag");
    assert_eq!(bad.status.code(), Some(2));
}

/// One Redis or a cluster, never both: the server says so and exits 2 before it listens.
#[test]
fn redis_url_and_cluster_nodes_together_are_refused() {
    let both = Command::new(env!("CARGO_BIN_EXE_tower-edge-example-server"))
        .args(["--addr", "127.0.0.1:0"])
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .env("REDIS_CLUSTER_NODES", "redis://127.0.0.1:2")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run with both");
    assert_eq!(both.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(
        stderr.contains("set REDIS_URL or REDIS_CLUSTER_NODES, not both"),
        "{stderr}"
    );
    let empty = Command::new(env!("CARGO_BIN_EXE_tower-edge-example-server"))
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("REDIS_URL")
        .env("REDIS_CLUSTER_NODES", " , ")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run with an empty node list");
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("lists no node URL"));
    // An empty variable is no variable: `REDIS_URL=` does not count as a second choice.
    let blank = Command::new(env!("CARGO_BIN_EXE_tower-edge-example-server"))
        .args(["--addr", "127.0.0.1:0"])
        .env("REDIS_URL", "")
        .env("REDIS_CLUSTER_NODES", " , ")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run with an empty REDIS_URL");
    assert_eq!(blank.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&blank.stderr).contains("lists no node URL"));
}

/// A binary copied away from its source tree serves the directory it is told to.
#[tokio::test]
async fn static_dir_chooses_what_static_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("mine.txt"), "my own file").expect("write a file");
    let root = dir.path().to_str().expect("a UTF-8 temp path");
    let (_server, addr) = start_with(&["--static-dir", root]);
    let (status, _, body) = get(addr, "/static/mine.txt", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"my own file");
    // The sample files are not served from it.
    let (status, _, _) = get(addr, "/static/hello.txt", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Behind nginx: the downloads of the directory it is told to, offloaded by header.
#[tokio::test]
async fn download_dir_and_x_accel_redirect_offload_the_downloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("report.pdf"), "%PDF-1.7").expect("write a file");
    let root = dir.path().to_str().expect("a UTF-8 temp path");
    let (_server, addr) = start_with(&[
        "--download-dir",
        root,
        "--x-accel-redirect",
        "/internal/downloads/",
    ]);
    let (status, headers, body) = get(addr, "/download/report.pdf", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-accel-redirect"],
        "/internal/downloads/report.pdf"
    );
    assert!(body.is_empty());
    // The generated sample is not in that directory.
    let (status, _, _) = get(addr, "/download/sample.bin", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// One sample line of the Prometheus text format: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples and the `# TYPE` of each metric family, from the text format (no escaped
/// quotes in the label values this server writes).
fn parse_exposition(text: &str) -> (Vec<Sample>, std::collections::HashMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = std::collections::HashMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a series and its value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a number in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels end with }");
                let labels = labels
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once("=\"").expect("k=\"v\"");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    (samples, types)
}

#[tokio::test]
async fn metrics_after_a_short_load_have_the_histograms_and_gauges() {
    let (_server, addr) = start();
    for round in 0..3 {
        for id in 1..=5 {
            let (status, _, _) = get(addr, &format!("/api/products/{id}"), &[]).await;
            assert_eq!(status, StatusCode::OK, "round {round}");
        }
    }
    get(addr, "/no/such/page", &[]).await;
    let (status, headers, body) = get(addr, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let (samples, types) = parse_exposition(std::str::from_utf8(&body).unwrap());
    let find = |name: &str, labels: &[(&str, &str)]| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .collect()
    };

    for histogram in [
        "tower_edge_request_duration_seconds",
        "tower_edge_origin_duration_seconds",
    ] {
        assert_eq!(
            types.get(histogram).map(String::as_str),
            Some("histogram"),
            "{histogram}"
        );
    }
    let product = [("route", "/api/products/{id}"), ("status", "2xx")];
    let count = |cache: &str| {
        let labels = [product[0], product[1], ("cache", cache)];
        find("tower_edge_request_duration_seconds_count", &labels)
            .first()
            .map_or(0.0, |s| s.value)
    };
    assert_eq!(count("miss"), 5.0, "one miss per product");
    assert_eq!(count("hit"), 10.0, "then hits");
    // The buckets suit a cache: from 10 µs.
    let buckets = find(
        "tower_edge_request_duration_seconds_bucket",
        &[product[0], ("cache", "hit")],
    );
    assert!(
        buckets.iter().any(|s| s.label("le") == Some("0.00001")),
        "{buckets:?}"
    );
    assert!(
        buckets
            .iter()
            .any(|s| s.label("le") == Some("+Inf") && s.value == 10.0)
    );
    // Route templates, never raw paths.
    assert!(
        samples
            .iter()
            .filter_map(|s| s.label("route"))
            .all(|route| !route.contains("/api/products/1") && !route.contains("/no/such")),
        "a raw path became a label"
    );
    assert!(
        !find(
            "tower_edge_request_duration_seconds_count",
            &[("route", "unmatched"), ("status", "4xx")]
        )
        .is_empty()
    );
    let origin = find("tower_edge_origin_duration_seconds_count", &[product[0]]);
    assert_eq!(
        origin.first().map(|s| s.value),
        Some(5.0),
        "the origin, on misses"
    );

    // The store's gauges, set as the page was rendered.
    assert_eq!(
        types.get("tower_edge_store_entries").map(String::as_str),
        Some("gauge")
    );
    let entries = find("tower_edge_store_entries", &[("backend", "memory")]);
    assert!(
        entries.first().is_some_and(|s| s.value >= 5.0),
        "{entries:?}"
    );
    assert!(
        find("tower_edge_store_bytes", &[("backend", "memory")])
            .first()
            .is_some_and(|s| s.value > 0.0)
    );
    // And the memo of the product lookups.
    assert!(!find("tower_edge_memo_total", &[("namespace", "products")]).is_empty());
}

/// With feature `otel`, the server exports its request spans over OTLP/HTTP: a collector in
/// this test receives them (decoded with the protocol's own types) with the route and the
/// `edge.*` fields the layers recorded.
#[cfg(feature = "otel")]
#[tokio::test]
async fn request_spans_reach_an_otlp_collector_with_the_edge_fields() {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    use axum::{body::Bytes, routing::post};
    use opentelemetry_proto::tonic::{
        collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
        common::v1::any_value::Value,
    };
    use prost::Message as _;

    let received: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let collector = axum::Router::new().route(
        "/v1/traces",
        post({
            let received = Arc::clone(&received);
            move |body: Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                received.lock().unwrap().push(request);
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let collecting = tokio::spawn(async move { axum::serve(listener, collector).await });

    let (server, addr) = start_with_env(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())]);
    let br = [("accept-encoding", "br")];
    let (status, _, _) = get(addr, "/api/products", &br).await; // a miss, compressed
    assert_eq!(status, StatusCode::OK);
    // Then a hit. A compressed answer's length is unknown until it ends, so it is stored as it
    // ends, which may be just after this client read it: asked again (bounded) until it is.
    let mut asked = 1;
    loop {
        let (_, headers, _) = get(addr, "/api/products", &br).await;
        asked += 1;
        if headers["cache-status"].to_str().unwrap().contains("hit") {
            break;
        }
        assert!(asked < 50, "never a hit: {headers:?}");
    }
    // Stopped as a service manager stops it: the exporter flushes before the process ends.
    // (Waited for off this runtime's thread, which serves the collector meanwhile.)
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();

    let spans: Vec<HashMap<String, String>> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|export| &export.resource_spans)
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .filter(|span| span.name == "request")
        .map(|span| {
            span.attributes
                .iter()
                .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
                    Value::IntValue(n) => Some((kv.key.clone(), n.to_string())),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let products: Vec<_> = spans
        .iter()
        .filter(|attrs| attrs.get("route").map(String::as_str) == Some("/api/products"))
        .collect();
    assert_eq!(products.len(), asked, "{spans:?}");
    let (miss, hit) = (products[0], products[asked - 1]);
    assert!(miss["edge.cache"].starts_with("fwd=miss"), "{miss:?}");
    assert_eq!(miss["edge.encoding"], "br");
    assert_eq!(miss["path"], "/api/products");
    assert_eq!(miss["edge.cache_key"].len(), 16);
    assert!(hit["edge.cache"].starts_with("hit"), "{hit:?}");
    collecting.abort();
}

/// The text inside the first element of `html` with `id`, tags stripped.
fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = at + html[at..].find('>').expect("the tag ends") + 1;
    let mut text = String::new();
    let mut depth = 0usize;
    let mut in_tag = false;
    let rest = &html[start..];
    for (i, c) in rest.char_indices() {
        match c {
            '<' if rest[i..].starts_with("</") && depth == 0 => break,
            '<' => {
                in_tag = true;
                if rest[i..].starts_with("</") {
                    depth = depth.saturating_sub(1);
                } else if !rest[i..].starts_with("<br") {
                    depth += 1;
                }
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_owned()
}

/// The live page, in a real headless browser (Debian's `chromium`; the test command installs
/// it): its script reads `/metrics` and draws the server's own numbers.
#[tokio::test]
async fn the_dashboard_draws_the_servers_numbers_in_a_headless_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let (_server, addr) = start();
    for _ in 0..3 {
        for path in ["/api/products", "/api/products/1", "/articles/validators"] {
            let (status, _, _) = get(addr, path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
    }
    // What the page should say, from the same source; operator routes (this scrape, the
    // page's own) bypass the cache and leave these counts alone.
    let (_, _, metrics) = get(addr, "/metrics", &[]).await;
    let (samples, _) = parse_exposition(std::str::from_utf8(&metrics).unwrap());
    let events = |names: &[&str]| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == "tower_edge_cache_total")
            .filter(|s| s.label("event").is_some_and(|e| names.contains(&e)))
            .map(|s| s.value)
            .sum()
    };
    let hits = events(&["hit", "stale"]);
    let lookups = events(&["hit", "stale", "miss", "revalidate", "collapsed"]);
    assert!(hits >= 6.0 && lookups > hits, "{hits} of {lookups}");
    let expected_ratio = format!("{:.1}%", 100.0 * hits / lookups);

    // A profile and temporary files of its own, removed afterwards.
    let scratch = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/dashboard");
    let profile = scratch.path().join("profile");
    let browser_tmp = scratch.path().join("tmp");
    std::fs::create_dir_all(&browser_tmp).unwrap();
    let dom = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.display()))
            // Virtual time: the page's timer fires, and the browser leaves once it idles.
            .args(["--virtual-time-budget=5000", "--dump-dom", &url])
            .env("TMPDIR", &browser_tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {chromium:?} ({e}): install Debian's chromium package (apt-get install chromium), as scripts/test.sh does, or set CHROMIUM")
            });
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the browser did not finish within 90 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut dom = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut dom).unwrap();
        dom
    })
    .await
    .unwrap();
    drop(scratch);

    assert!(
        text_of(&dom, "status").starts_with("updated"),
        "{}",
        text_of(&dom, "status")
    );
    assert_eq!(text_of(&dom, "hit-ratio"), expected_ratio);
    assert_eq!(text_of(&dom, "store-health"), "healthy");
    assert_eq!(text_of(&dom, "breaker"), "none (memory only)");
    let entries: u64 = text_of(&dom, "store-entries").parse().unwrap();
    assert!(entries >= 3, "{entries}");
    // p50 and p99 of the hits, drawn from the histogram's buckets.
    let hit_row = dom
        .split("<tr data-cache=\"hit\">")
        .nth(1)
        .expect("a row for the hits")
        .split("</tr>")
        .next()
        .unwrap()
        .to_owned();
    assert!(hit_row.contains(&format!("<td>{hits}</td>")), "{hit_row}");
    for quantile in ["p50", "p99"] {
        let cell = hit_row
            .split(&format!("class=\"{quantile}\">"))
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        assert!(
            cell.ends_with("µs") || cell.ends_with("ms"),
            "{quantile}: {cell:?}"
        );
    }
    // Routes by template, with their own hit ratio.
    assert!(text_of(&dom, "routes").contains("/api/products/{id}"));
    // Self-contained: nothing from another host.
    let (_, headers, page) = get(addr, "/dashboard", &[]).await;
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'")
    );
    let page = String::from_utf8_lossy(&page);
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page names another host"
    );
}
