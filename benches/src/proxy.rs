//! The caching proxy's hit, in front of a plain-HTTP origin and in front of an HTTPS one: a hit
//! never reaches the origin, so the two should cost the same.
//!
//! The origins (the cacheable 10 KiB route, over HTTP and over TLS with a certificate made for
//! the run) run on a thread of their own for the whole process; they answer one request per
//! scenario, the one that fills the cache.

use std::{net::SocketAddr, sync::OnceLock};

use axum::Router;
use tower_edge_caching_proxy::{Proxy, ProxyConfig};
use tower_edge_tests::tls_origin::{TestCa, TlsServer};

use crate::{Expect, Scenario, cacheable_router, get_data};

struct Origins {
    http: SocketAddr,
    https: SocketAddr,
    /// The CA that signed the HTTPS origin's certificate, as PEM.
    ca_pem: String,
    runtime: tokio::runtime::Handle,
}

fn origins() -> &'static Origins {
    static ORIGINS: OnceLock<Origins> = OnceLock::new();
    ORIGINS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("lb-origins".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind the origin");
                    let http = plain.local_addr().expect("local address");
                    tokio::spawn(async move { axum::serve(plain, cacheable_router()).await });
                    let ca = TestCa::new("tower-edge load bench CA");
                    let tls = TlsServer::start(
                        cacheable_router(),
                        ca.server_config(&["localhost"], &[b"h2", b"http/1.1"]),
                    )
                    .await;
                    let _ = tx.send(Origins {
                        http,
                        https: tls.addr(),
                        ca_pem: ca.pem().to_owned(),
                        runtime: tokio::runtime::Handle::current(),
                    });
                    // Serves for as long as the process runs.
                    std::future::pending::<()>().await;
                    drop(tls);
                });
            })
            .expect("origin thread");
        rx.recv().expect("the origins start")
    })
}

fn build(config: ProxyConfig) -> Router {
    // Built in a runtime's context, as `Proxy::build` asks; it serves on the bench's.
    let _context = origins().runtime.enter();
    Proxy::new().upstream(config).build().router
}

/// The proxy in front of the plain-HTTP origin.
pub fn proxy_http_app() -> Router {
    build(ProxyConfig::new(&format!("http://{}", origins().http)).expect("an upstream URL"))
}

/// The proxy in front of the HTTPS origin, trusting the run's CA.
pub fn proxy_https_app() -> Router {
    let origins = origins();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &origins.ca_pem).expect("write the CA file");
    let config = ProxyConfig::new(&format!("https://localhost:{}", origins.https.port()))
        .expect("an upstream URL")
        .upstream_ca(&ca_file)
        .expect("the CA file");
    build(config)
}

/// The scenarios, plain first.
pub fn scenarios(full: Expect) -> Vec<Scenario> {
    vec![
        Scenario {
            name: "proxy-hit",
            description: "caching proxy hit, plain-HTTP origin (baseline for proxy-hit-https-origin)",
            app: proxy_http_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "proxy-hit-https-origin",
            description: "caching proxy hit, HTTPS origin (rustls, HTTP/2): hits never touch it",
            app: proxy_https_app,
            request: get_data(Vec::new()),
            expect: full,
        },
    ]
}

/// The scenario `name` is best compared with.
pub fn paired(name: &str) -> Option<&'static str> {
    (name == "proxy-hit-https-origin").then_some("proxy-hit")
}
