//! The scenarios shared by tower-edge's load bench and criterion benches.
//!
//! Each [`Scenario`] is an axum router plus the one request the load generator repeats and the
//! answer it must get back. `bare` is the baseline every other scenario is compared with: the same
//! handler, with no tower-edge layer in front of it.

pub mod chart;
pub mod compression;
pub mod fs;
pub mod nginx;
pub mod proxy;
pub mod redis;

use std::sync::OnceLock;

use axum::{
    Router,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_edge::{
    ETagLayer,
    cache::{MokaStore, ResponseCacheLayer},
    etag::Algorithm,
    extract::{Preconditions, Unmet},
    http::{etag::EntityTag, preconditions::Validators},
};

/// The request a scenario's load generator sends over and over.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// Request method.
    pub method: Method,
    /// Path and query.
    pub path: &'static str,
    /// Extra request headers.
    pub headers: Vec<(&'static str, String)>,
}

/// What every response must be; anything else is counted as an error.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// Expected status.
    pub status: StatusCode,
    /// Expected body length in bytes.
    pub body_len: usize,
}

/// One load-bench scenario. Those named `redis-…` or `tiered-…` need a Redis server (see
/// [`redis::needs_redis`]).
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Short name, used by `--only` and in the report.
    pub name: &'static str,
    /// One line on what it measures.
    pub description: &'static str,
    /// Builds a fresh router for the scenario (for `nginx-…` scenarios, which nginx serves,
    /// the tower-edge twin's, unused).
    pub app: fn() -> Router,
    /// The request to repeat.
    pub request: RequestSpec,
    /// The answer to expect.
    pub expect: Expect,
}

/// A JSON document of at most `len` bytes (and within one record of it): an array of small records, like an API listing.
pub fn json_body(len: usize) -> Bytes {
    let mut out = String::with_capacity(len + 128);
    out.push('[');
    for i in 0u32.. {
        let record = format!(
            "{{\"id\":{i},\"name\":\"item {i}\",\"price_cents\":{},\"in_stock\":{}}}",
            999 + i * 7,
            i % 3 != 0
        );
        // Room for this record, its comma and the closing bracket.
        if out.len() + record.len() + 2 > len {
            break;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&record);
    }
    out.push(']');
    Bytes::from(out)
}

/// The 10 KiB JSON body every scenario serves.
pub fn body_10k() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| json_body(10 * 1024)).clone()
}

/// A handler that returns `body_10k()` as JSON.
async fn json_handler() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body_10k(),
    )
        .into_response()
}

/// The bare handler's JSON rendered for each response: a fresh buffer, as a handler that
/// serializes per request hands on (nothing else holds it, so `ETagLayer` hashes it every time).
async fn rendered_handler() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Bytes::from(body_10k().to_vec()),
    )
        .into_response()
}

/// The handler that renders per request, alone: the baseline of `etag-rendered-200`.
pub fn bare_rendered_app() -> Router {
    Router::new().route("/data", get(rendered_handler))
}

/// The handler that renders per request, behind `ETagLayer`.
pub fn etag_rendered_app() -> Router {
    bare_rendered_app().layer(ETagLayer::new())
}

/// The version-number validator the extractor scenario's handler knows without rendering.
fn version_validators() -> Validators {
    Validators::new().with_etag(EntityTag::strong("v42").expect("valid entity-tag characters"))
}

/// A handler that answers conditionals from a version number before building its body.
async fn versioned_handler(pre: Preconditions) -> Result<Response, Unmet> {
    let current = version_validators();
    pre.check(&current)?;
    Ok((current, json_handler().await).into_response())
}

/// The bare axum handler: the baseline.
pub fn bare_app() -> Router {
    Router::new().route("/data", get(json_handler))
}

/// The same handler behind `ETagLayer`.
pub fn etag_app() -> Router {
    bare_app().layer(ETagLayer::new())
}

/// The same handler behind `ETagLayer` hashing with XXH3-128.
pub fn etag_xxh3_app() -> Router {
    bare_app().layer(ETagLayer::new().algorithm(Algorithm::Xxh3_128))
}

/// The bare handler's body with `Cache-Control: public, max-age=3600`, for the cache to store.
async fn cacheable_handler() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body_10k(),
    )
        .into_response()
}

/// The bare route with `Cache-Control: public, max-age=3600`, for the cache scenarios.
pub fn cacheable_router() -> Router {
    Router::new().route("/data", get(cacheable_handler))
}

/// The same bytes behind `ResponseCacheLayer` on a `MokaStore`: after the first request, every
/// request is a hit that never reaches the handler.
pub fn cache_hit_app() -> Router {
    cacheable_router().layer(ResponseCacheLayer::new(MokaStore::default()))
}

/// The bare handler's body with the header fields a preset hit sends (`Cache-Control`, `ETag`,
/// `Vary`, `Date`, `Age`, `Cache-Status`), as constants: what those fields cost to send, apart
/// from what the cache does to produce them.
async fn hit_shaped_handler() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (
                header::ETAG,
                "\"L9veUYQFfHruS7MXCr0PUo5p8sfGd9KCFvMK8wzmFCs\"",
            ),
            (header::VARY, "accept-encoding"),
            (header::DATE, "Mon, 30 Nov 2026 03:39:01 GMT"),
            (header::AGE, "0"),
        ],
        [(
            header::HeaderName::from_static("cache-status"),
            "tower-edge; hit; ttl=3599",
        )],
        body_10k(),
    )
        .into_response()
}

/// The bare route answering with a hit's header fields (see `hit_shaped_handler`).
pub fn hit_shaped_app() -> Router {
    Router::new().route("/data", get(hit_shaped_handler))
}

/// The preset as the README builds it, `EdgeStack::new(MokaStore::default())`, around the
/// cacheable route: after the first request of each variant, every request is a hit.
pub fn preset_app() -> Router {
    cacheable_router().layer(tower_edge::stack::EdgeStack::new(MokaStore::default()))
}

/// The preset observed (`EdgeStack::observe`), as the README builds it. The load bench gives
/// its server thread a Prometheus recorder for the scenarios named `*-observed` ([`observed`]),
/// so that the histograms and counters are really kept, as the example server keeps them.
pub fn observed_preset_app() -> Router {
    cacheable_router().layer(
        tower_edge::stack::EdgeStack::new(MokaStore::default())
            .observe(tower_edge::observe::ObserveLayer::new()),
    )
}

/// Whether a scenario runs with a metrics recorder on its server thread.
pub fn observed(name: &str) -> bool {
    name.ends_with("-observed")
}

/// A handler using the `Preconditions` extractor with its own version-number ETag.
pub fn extractor_app() -> Router {
    Router::new().route("/data", get(versioned_handler))
}

/// The ETag that `ETagLayer` gives `body_10k()`, found by asking the layer itself.
pub fn etag_of_body_10k() -> String {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime");
        rt.block_on(async {
            let req = http::Request::get("/data")
                .body(axum::body::Body::empty())
                .expect("valid request");
            let res = etag_app().oneshot(req).await.expect("infallible router");
            let tag = res.headers()[header::ETAG]
                .to_str()
                .expect("ASCII tag")
                .to_owned();
            let _ = res.into_body().collect().await;
            tag
        })
    })
    .clone()
}

pub(crate) fn get_data(headers: Vec<(&'static str, String)>) -> RequestSpec {
    RequestSpec {
        method: Method::GET,
        path: "/data",
        headers,
    }
}

/// The scenario a scenario is best compared with, besides the bare handler: the same work done
/// without the layer under test.
pub fn paired_baseline(name: &str) -> Option<&'static str> {
    match name {
        "redis-hit" => Some("redis-bare"),
        "tiered-hit" => Some("cache-hit"),
        "preset-hit-observed" => Some("preset-hit"),
        "etag-rendered-200" | "etag-rendered-304" => Some("bare-rendered"),
        // nginx without `sendfile`, against nginx with it.
        nginx::COPYING => Some("nginx-10k"),
        _ => fs::paired(name)
            .or_else(|| compression::paired(name))
            .or_else(|| proxy::paired(name)),
    }
}

/// Every scenario, baseline first.
pub fn scenarios() -> Vec<Scenario> {
    let full = Expect {
        status: StatusCode::OK,
        body_len: body_10k().len(),
    };
    let not_modified = Expect {
        status: StatusCode::NOT_MODIFIED,
        body_len: 0,
    };
    let mut all = vec![
        Scenario {
            name: "bare",
            description: "bare axum handler, 10 KiB JSON (the baseline)",
            app: bare_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "etag-200",
            description: "ETagLayer on the bare handler (which sends one kept 10 KiB buffer: hashed once, then remembered), full response",
            app: etag_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "etag-304",
            description: "ETagLayer on the bare handler, If-None-Match matches: 304 from the remembered tag",
            app: etag_app,
            request: get_data(vec![("if-none-match", etag_of_body_10k())]),
            expect: not_modified,
        },
        Scenario {
            name: "bare-rendered",
            description: "the bare handler copying its 10 KiB into a fresh buffer per response (as one that serializes per request)",
            app: bare_rendered_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "etag-rendered-200",
            description: "ETagLayer on bare-rendered: a body nothing else holds, hashed every time, full response",
            app: etag_rendered_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "etag-rendered-304",
            description: "ETagLayer on bare-rendered, If-None-Match matches: 304 after hashing",
            app: etag_rendered_app,
            request: get_data(vec![("if-none-match", etag_of_body_10k())]),
            expect: not_modified,
        },
        Scenario {
            name: "etag-xxh3-200",
            description: "ETagLayer with Algorithm::Xxh3_128, full response",
            app: etag_xxh3_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "cache-hit",
            description: "ResponseCacheLayer hit on a MokaStore, same 10 KiB body",
            app: cache_hit_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "bare-hit-fields",
            description: "bare handler sending a preset hit's 8 header fields as constants (what the fields alone cost)",
            app: hit_shaped_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "preset-hit",
            description: "EdgeStack::new(MokaStore::default()) as the README builds it, identity hit",
            app: preset_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "preset-hit-observed",
            description: "preset-hit with ObserveLayer outside and a Prometheus recorder: what metrics cost a hit",
            app: observed_preset_app,
            request: get_data(Vec::new()),
            expect: full,
        },
        Scenario {
            name: "preset-br-hit",
            description: "EdgeStack as the README builds it, brotli hit (Accept-Encoding: gzip, br)",
            app: preset_app,
            request: get_data(vec![("accept-encoding", "gzip, br".to_owned())]),
            expect: Expect {
                status: StatusCode::OK,
                body_len: compression::answer_len("preset-br-hit", preset_app, "/data", "br"),
            },
        },
        Scenario {
            name: "preset-304",
            description: "EdgeStack as the README builds it, If-None-Match answered from the cache: 304",
            app: preset_app,
            request: get_data(vec![("if-none-match", etag_of_body_10k())]),
            expect: not_modified,
        },
        Scenario {
            name: "extractor-304",
            description: "Preconditions extractor with a version ETag: 304 before rendering",
            app: extractor_app,
            request: get_data(vec![("if-none-match", "\"v42\"".to_owned())]),
            expect: not_modified,
        },
    ];
    all.extend(redis::scenarios(full));
    all.extend(fs::scenarios());
    all.extend(compression::scenarios());
    all.extend(proxy::scenarios(full));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_is_valid_json_of_about_the_asked_size() {
        let body = json_body(10 * 1024);
        assert!(
            (10 * 1024 - 80..=10 * 1024).contains(&body.len()),
            "{}",
            body.len()
        );
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert!(value.as_array().is_some_and(|a| a.len() > 100));
    }

    #[test]
    fn etag_of_body_is_a_strong_quoted_tag() {
        let tag = etag_of_body_10k();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
        assert_eq!(tag.len(), 45, "{tag}"); // 43 base64url characters of SHA-256, quoted
    }
}
