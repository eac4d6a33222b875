//! What the unit tests of every module share: one request through the whole application.

use axum::{Router, body::Body};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Sends `req` through `app` and reads the whole response.
pub(crate) async fn send(
    app: &Router,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    // The cache stores a response in a task spawned at its body's end: let it run.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    (status, headers, body)
}

/// A plain `GET uri`.
pub(crate) fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// `PUT /api/products/{id}` renaming it "Renamed", with `If-Match` when given.
pub(crate) fn put(id: u32, if_match: Option<&str>) -> Request<Body> {
    let mut req = Request::put(format!("/api/products/{id}"))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(tag) = if_match {
        req = req.header(http::header::IF_MATCH, tag);
    }
    let body = r#"{"name":"Renamed","price_cents":1,"description":"d","stock":2}"#;
    req.body(Body::from(body)).unwrap()
}

/// The response's `Cache-Status`.
pub(crate) fn cache_status(headers: &http::HeaderMap) -> &str {
    headers["cache-status"].to_str().unwrap()
}
