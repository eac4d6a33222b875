//! Compression scenarios: this crate's `CompressionLayer` against tower-http's on the same
//! bodies, codecs and levels (each `zip-…` scenario is paired with its `tower-http-zip-…` twin),
//! and a brotli-compressed response-cache hit.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use axum::{
    Router,
    body::Body,
    http::{HeaderValue, Request, StatusCode, header},
    routing::get,
};
use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_edge::{
    cache::{MokaStore, ResponseCacheLayer},
    compression::CompressionLayer,
};
use tower_http::compression::{CompressionLayer as HttpCompressionLayer, CompressionLevel};

use crate::{Expect, RequestSpec, Scenario, body_10k};

/// The levels both layers use: this crate's defaults.
pub const GZIP_LEVEL: u32 = 5;
/// Brotli quality.
pub const BR_LEVEL: u32 = 4;
/// Zstd level.
pub const ZSTD_LEVEL: u32 = 3;

/// 1 MiB of English-like text.
pub fn text_1m() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| {
        let words = [
            "cache",
            "edge",
            "validator",
            "range",
            "stream",
            "header",
            "client",
            "origin",
            "stale",
            "fresh",
            "compress",
            "negotiate",
            "server",
            "request",
            "response",
        ];
        let mut out = String::with_capacity(1 << 20);
        let mut i = 0usize;
        while out.len() < (1 << 20) - 16 {
            out.push_str(words[(i * 7 + i / 3) % words.len()]);
            out.push(if i % 11 == 10 { '\n' } else { ' ' });
            i += 1;
        }
        Bytes::from(out)
    })
    .clone()
}

fn routes() -> Router {
    Router::new()
        .route(
            "/json",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body_10k(),
                )
            }),
        )
        .route(
            "/text",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    )],
                    text_1m(),
                )
            }),
        )
}

fn edge(level: fn(CompressionLayer) -> CompressionLayer) -> Router {
    routes().layer(level(CompressionLayer::new()))
}

fn tower_http(level: u32) -> Router {
    routes().layer(HttpCompressionLayer::new().quality(CompressionLevel::Precise(level as i32)))
}

/// This crate's layer with gzip at [`GZIP_LEVEL`].
pub fn edge_gzip() -> Router {
    edge(|l| l.gzip_level(GZIP_LEVEL))
}
/// This crate's layer with brotli at [`BR_LEVEL`].
pub fn edge_br() -> Router {
    edge(|l| l.br_level(BR_LEVEL))
}
/// This crate's layer with zstd at [`ZSTD_LEVEL`].
pub fn edge_zstd() -> Router {
    edge(|l| l.zstd_level(ZSTD_LEVEL))
}
/// tower-http's layer at [`GZIP_LEVEL`].
pub fn http_gzip() -> Router {
    tower_http(GZIP_LEVEL)
}
/// tower-http's layer at [`BR_LEVEL`].
pub fn http_br() -> Router {
    tower_http(BR_LEVEL)
}
/// tower-http's layer at [`ZSTD_LEVEL`].
pub fn http_zstd() -> Router {
    tower_http(ZSTD_LEVEL)
}

/// The stack as the preset orders it: the cache outside compression, keyed by the negotiated
/// coding, so a brotli hit serves stored brotli bytes.
pub fn cache_br_hit_app() -> Router {
    let compression = CompressionLayer::new().br_level(BR_LEVEL);
    crate::cacheable_router().layer(compression.clone()).layer(
        ResponseCacheLayer::new(MokaStore::default()).encoding(Some(compression.negotiator())),
    )
}

/// The example server (the full preset: cache, compression, ETag, Last-Modified, on realistic
/// routes), for its product listing's hit path.
pub fn example_app() -> Router {
    tower_edge_example_server::app()
}

/// The length of the body `app` answers `path` with for `accept`, measured once.
pub(crate) fn answer_len(
    key: &'static str,
    app: fn() -> Router,
    path: &'static str,
    accept: &'static str,
) -> usize {
    static LENS: OnceLock<Mutex<HashMap<&'static str, usize>>> = OnceLock::new();
    let lens = LENS.get_or_init(Mutex::default);
    if let Some(len) = lens.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
        return *len;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let len = rt.block_on(async {
        let req = Request::get(path)
            .header(header::HOST, "bench")
            .header(header::ACCEPT_ENCODING, accept)
            .body(Body::empty())
            .expect("valid request");
        let res = app().oneshot(req).await.expect("infallible router");
        assert_eq!(res.headers()[header::CONTENT_ENCODING], accept, "{key}");
        res.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .len()
    });
    lens.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, len);
    len
}

fn spec(path: &'static str, accept: &'static str) -> RequestSpec {
    RequestSpec {
        method: Method::GET,
        path,
        headers: vec![("accept-encoding", accept.to_owned())],
    }
}

/// The compression scenarios.
pub fn scenarios() -> Vec<Scenario> {
    type Case = (
        &'static str,
        &'static str,
        fn() -> Router,
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: [Case; 12] = [
        (
            "zip-gzip-10k",
            "CompressionLayer gzip-5, 10 KiB JSON",
            edge_gzip,
            "/json",
            "gzip",
            "gzip",
        ),
        (
            "tower-http-zip-gzip-10k",
            "tower-http compression gzip-5, 10 KiB JSON",
            http_gzip,
            "/json",
            "gzip",
            "gzip",
        ),
        (
            "zip-br-10k",
            "CompressionLayer br-4, 10 KiB JSON",
            edge_br,
            "/json",
            "br",
            "br",
        ),
        (
            "tower-http-zip-br-10k",
            "tower-http compression br-4, 10 KiB JSON",
            http_br,
            "/json",
            "br",
            "br",
        ),
        (
            "zip-zstd-10k",
            "CompressionLayer zstd-3, 10 KiB JSON",
            edge_zstd,
            "/json",
            "zstd",
            "zstd",
        ),
        (
            "tower-http-zip-zstd-10k",
            "tower-http compression zstd-3, 10 KiB JSON",
            http_zstd,
            "/json",
            "zstd",
            "zstd",
        ),
        (
            "zip-gzip-1m",
            "CompressionLayer gzip-5, 1 MiB text",
            edge_gzip,
            "/text",
            "gzip",
            "gzip",
        ),
        (
            "tower-http-zip-gzip-1m",
            "tower-http compression gzip-5, 1 MiB text",
            http_gzip,
            "/text",
            "gzip",
            "gzip",
        ),
        (
            "zip-br-1m",
            "CompressionLayer br-4, 1 MiB text",
            edge_br,
            "/text",
            "br",
            "br",
        ),
        (
            "tower-http-zip-br-1m",
            "tower-http compression br-4, 1 MiB text",
            http_br,
            "/text",
            "br",
            "br",
        ),
        (
            "zip-zstd-1m",
            "CompressionLayer zstd-3, 1 MiB text",
            edge_zstd,
            "/text",
            "zstd",
            "zstd",
        ),
        (
            "tower-http-zip-zstd-1m",
            "tower-http compression zstd-3, 1 MiB text",
            http_zstd,
            "/text",
            "zstd",
            "zstd",
        ),
    ];
    let mut out: Vec<Scenario> = cases
        .into_iter()
        .map(|(name, description, app, path, accept, _)| Scenario {
            name,
            description,
            app,
            request: spec(path, accept),
            expect: Expect {
                status: StatusCode::OK,
                body_len: answer_len(name, app, path, accept),
            },
        })
        .collect();
    out.push(Scenario {
        name: "example-products-hit",
        description: "the example server's full stack, GET /api/products with br: a cache hit",
        app: example_app,
        request: RequestSpec {
            method: Method::GET,
            path: "/api/products",
            headers: vec![("accept-encoding", "br".to_owned())],
        },
        expect: Expect {
            status: StatusCode::OK,
            body_len: answer_len("example-products-hit", example_app, "/api/products", "br"),
        },
    });
    out.push(Scenario {
        name: "cache-br-hit",
        description: "cache outside compression: a stored brotli variant served (compare with zip-br-10k and bare)",
        app: cache_br_hit_app,
        request: RequestSpec {
            method: Method::GET,
            path: "/data",
            headers: vec![("accept-encoding", "br".to_owned())],
        },
        expect: Expect {
            status: StatusCode::OK,
            body_len: answer_len("cache-br-hit", cache_br_hit_app, "/data", "br"),
        },
    });
    out
}

/// `zip-…` scenarios are paired with their tower-http twins.
pub fn paired(name: &str) -> Option<&'static str> {
    Some(match name {
        "zip-gzip-10k" => "tower-http-zip-gzip-10k",
        "zip-br-10k" => "tower-http-zip-br-10k",
        "zip-zstd-10k" => "tower-http-zip-zstd-10k",
        "zip-gzip-1m" => "tower-http-zip-gzip-1m",
        "zip-br-1m" => "tower-http-zip-br-1m",
        "zip-zstd-1m" => "tower-http-zip-zstd-1m",
        "cache-br-hit" => "zip-br-10k",
        _ => return None,
    })
}
