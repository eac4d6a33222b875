//! tower-edge's layers in one `ServiceBuilder` with tower-http's middleware and axum's
//! `middleware::from_fn`, stacked as an existing app stacks them, through a real socket.
//!
//! tower-http's `TimeoutLayer` builds its own answer with `ResBody::default()`, so it only
//! compiles over a layer whose body has a `Default`: every body type of this crate has one.

use std::time::Duration;

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use tower::ServiceBuilder;
use tower_edge::{
    ETagLayer, LastModifiedLayer, RangeLayer, ResponseCacheLayer,
    cache::MokaStore,
    compression::CompressionLayer,
    fs::{ServeDir, ServeFile},
    stack::EdgeStack,
};
use tower_edge_tests::TestServer;
use tower_http::{cors::CorsLayer, timeout::TimeoutLayer, trace::TraceLayer};

const TIMEOUT: Duration = Duration::from_millis(100);

async fn stamp(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut()
        .insert("x-stamped", HeaderValue::from_static("1"));
    res
}

fn routes() -> Router {
    Router::new()
        .route(
            "/data",
            get(|| async {
                (
                    [
                        (header::CACHE_CONTROL, "public, max-age=60"),
                        (header::CONTENT_TYPE, "text/plain"),
                    ],
                    "tower-edge ".repeat(200),
                )
            }),
        )
        // Never answers: the timeout must.
        .route("/hang", get(std::future::pending::<&'static str>))
}

fn timeout() -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, TIMEOUT)
}

#[tokio::test]
async fn the_preset_composes_with_timeout_trace_cors_and_from_fn_in_one_service_builder() {
    let app = routes().layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(CorsLayer::permissive())
            .layer(middleware::from_fn(stamp))
            // Directly over the preset: its body must have a `Default`.
            .layer(timeout())
            .layer(EdgeStack::new(MokaStore::default())),
    );
    let server = TestServer::start(app).await;

    let first = server
        .get(
            "/data",
            &[("origin", "https://a.test"), ("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(first.headers()["x-stamped"], "1");
    assert_eq!(first.headers()["access-control-allow-origin"], "*");
    assert!(first.headers().contains_key(header::ETAG));
    let again = server.get("/data", &[("accept-encoding", "gzip")]).await;
    let status = again.headers()["cache-status"].to_str().unwrap();
    assert!(status.contains("hit"), "{status}");
    assert_eq!(again.headers()[header::CONTENT_ENCODING], "gzip");

    let hung = server.get("/hang", &[]).await;
    assert_eq!(hung.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hung.headers()["x-stamped"], "1");
    server.stop().await;
}

#[tokio::test]
async fn every_layer_alone_and_the_file_services_sit_under_a_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("a.txt"), "file body").expect("write a file");
    let app = Router::new()
        .nest(
            "/cache",
            routes().layer(
                ServiceBuilder::new()
                    .layer(timeout())
                    .layer(ResponseCacheLayer::new(MokaStore::default())),
            ),
        )
        .nest(
            "/zip",
            routes().layer(
                ServiceBuilder::new()
                    .layer(timeout())
                    .layer(CompressionLayer::new()),
            ),
        )
        .nest(
            "/etag",
            routes().layer(
                ServiceBuilder::new()
                    .layer(timeout())
                    .layer(ETagLayer::new()),
            ),
        )
        .nest(
            "/lm",
            routes().layer(
                ServiceBuilder::new()
                    .layer(timeout())
                    .layer(LastModifiedLayer::new()),
            ),
        )
        .nest(
            "/range",
            routes().layer(
                ServiceBuilder::new()
                    .layer(timeout())
                    .layer(RangeLayer::new()),
            ),
        )
        .nest_service(
            "/dir",
            ServiceBuilder::new()
                .layer(timeout())
                .service(ServeDir::new(dir.path())),
        )
        .route_service(
            "/file",
            ServiceBuilder::new()
                .layer(timeout())
                .service(ServeFile::new(dir.path().join("a.txt"))),
        );
    let server = TestServer::start(app).await;
    for prefix in ["/cache", "/zip", "/etag", "/lm", "/range"] {
        let res = server.get(&format!("{prefix}/data"), &[]).await;
        assert_eq!(res.status(), StatusCode::OK, "{prefix}");
        assert_eq!(res.body().len(), "tower-edge ".len() * 200, "{prefix}");
        let res = server.get(&format!("{prefix}/hang"), &[]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{prefix}");
    }
    for path in ["/dir/a.txt", "/file"] {
        let res = server.get(path, &[]).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(&res.body()[..], b"file body", "{path}");
    }
    server.stop().await;
}
