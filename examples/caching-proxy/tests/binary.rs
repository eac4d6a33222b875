//! The proxy binary as an operator runs it: `--check-config` on good and bad files, and a
//! configuration file with two upstreams chosen by `Host` and the admin listener, over real
//! sockets.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_tower-edge-caching-proxy");
const TOKEN: &str = "a-token-for-the-admin-listener";

/// The proxy process this test started; killed (by its PID) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proxy_command() -> Command {
    let mut command = Command::new(BIN);
    for var in [
        "UPSTREAM",
        "PROXY_CONFIG",
        "ADDR",
        "CACHE_MIB",
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "ADMIN_ADDR",
        "ADMIN_TOKEN",
        "UPSTREAM_CA",
    ] {
        command.env_remove(var);
    }
    command.env("RUST_LOG", "warn");
    command
}

fn check(config: &Path, extra: &[&str]) -> Output {
    proxy_command()
        .arg("--config")
        .arg(config)
        .arg("--check-config")
        .args(extra)
        .output()
        .expect("the proxy binary runs")
}

#[test]
fn check_config_accepts_a_good_file_and_explains_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("proxy.toml");
    std::fs::write(
        &good,
        "cache_mib = 64\n\
         [[upstream]]\nhosts = [\"media.example\"]\nurl = \"https://bucket.example\"\n\
         default_ttl = 3600\n\
         [[upstream]]\nurl = \"http://127.0.0.1:8000\"\n",
    )
    .unwrap();
    let out = check(&good, &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("configuration OK: 2 upstream(s) for 1 host name(s)"),
        "{said}"
    );
    assert!(said.contains("64 MiB"), "{said}");
    // A flag of the whole proxy overrides the file.
    let out = check(&good, &["--cache-mib", "8"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 MiB"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[upstream]]\nurl = \"http://a\"\ndefault_tll = 5\n").unwrap();
    let out = check(&bad, &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("bad.toml") && said.contains("default_tll") && said.contains("line 3"),
        "{said}"
    );

    // Upstream flags belong to the file once there is one; a variable left in the
    // environment is not read then.
    let out = check(&good, &["--upstream", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    let out = proxy_command()
        .arg("--config")
        .arg(&good)
        .arg("--check-config")
        .env("UPSTREAM", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An admin listener needs its token.
    let out = check(&good, &["--admin-addr", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ADMIN_TOKEN"));
}

/// An origin that answers with its name and counts its requests.
async fn origin(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = Router::new().fallback(get(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { ([("cache-control", "public, max-age=600")], name) }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, calls)
}

/// One request on a new connection; the status line, and the whole response.
async fn request(addr: SocketAddr, head: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

async fn get_host(addr: SocketAddr, host: &str, path: &str) -> String {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test]
async fn a_configuration_file_routes_by_host_and_the_admin_listener_purges() {
    let (media, media_calls) = origin("media").await;
    let (app, app_calls) = origin("app").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "addr = \"127.0.0.1:0\"\n\
             [admin]\naddr = \"127.0.0.1:0\"\n\
             [[upstream]]\nhosts = [\"media.example\"]\nurl = \"http://{media}\"\n\
             [[upstream]]\nurl = \"http://{app}\"\n"
        ),
    )
    .unwrap();
    let mut child = proxy_command()
        .arg("--config")
        .arg(&config)
        .env("ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the proxy binary starts");
    let stderr = child.stderr.take().unwrap();
    let _running = Running(child);
    // It prints the admin address, then the proxy's, once both listen. Read on a thread of its
    // own, so that a proxy that never says so fails the test instead of hanging it.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let (mut proxy, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the proxy says it listens within 30 s");
        let addr = |marker: &str| -> Option<SocketAddr> {
            let rest = line.split(marker).nth(1)?;
            rest.split('/').next()?.parse().ok()
        };
        admin = admin.or_else(|| addr("admin (purge, metrics) on http://"));
        proxy = proxy.or_else(|| addr("caching proxy on http://"));
    }
    let (proxy, admin) = (proxy.expect("proxy address"), admin.expect("admin address"));

    let first = get_host(proxy, "media.example", "/v.mp4").await;
    assert!(
        first.starts_with("HTTP/1.1 200") && first.ends_with("media"),
        "{first}"
    );
    let other = get_host(proxy, "www.example", "/").await;
    assert!(other.ends_with("app"), "{other}");
    let again = get_host(proxy, "Media.Example:8080", "/v.mp4").await;
    assert!(again.ends_with("media"), "{again}");
    let hit = get_host(proxy, "media.example", "/v.mp4").await;
    assert!(hit.contains("cache-status: tower-edge-proxy; hit"), "{hit}");
    assert_eq!(media_calls.load(Ordering::SeqCst), 2, "one per Host value");
    assert_eq!(app_calls.load(Ordering::SeqCst), 1);

    let refused = request(
        admin,
        "POST /purge?all=true HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let purged = request(
        admin,
        &format!(
            "POST /purge?url=http://media.example/v.mp4 HTTP/1.1\r\nHost: a\r\n\
             Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(
        purged.starts_with("HTTP/1.1 200") && purged.contains("\"removed\":1"),
        "{purged}"
    );
    let refetched = get_host(proxy, "media.example", "/v.mp4").await;
    assert!(refetched.contains("fwd=miss"), "{refetched}");
    assert_eq!(media_calls.load(Ordering::SeqCst), 3);

    let metrics = request(
        admin,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(metrics.contains("tower_edge_cache_total"), "{metrics}");
}
