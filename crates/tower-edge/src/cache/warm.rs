//! Populating the cache at start-up.

use std::future::poll_fn;

use bytes::Buf;
use http::{Request, Response, StatusCode, header};
use http_body::Body;
use tower::Service;

/// Sends a `GET` for each of `paths` (on `origin`, like `"https://example.com"`) through
/// `service` — the stack that includes the [`ResponseCacheLayer`](super::ResponseCacheLayer) —
/// and reads each body to its end, so every storable response is stored before real traffic
/// arrives. Returns each path's status, or the service's error. `ReqB` is the request body
/// type (`axum::body::Body` for a `Router`).
///
/// ```
/// use axum::{Router, http::header, routing::get};
/// use tower_edge::cache::{MokaStore, ResponseCacheLayer, warm_up};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = ResponseCacheLayer::new(MokaStore::default());
/// let handle = cache.handle("https://example.com");
/// let app = Router::new()
///     .route("/", get(|| async { ([(header::CACHE_CONTROL, "max-age=300")], "home") }))
///     .layer(cache);
///
/// // The request body type is named because a Router accepts many.
/// let report = warm_up::<axum::body::Body, _, _, _>(app, "https://example.com", ["/"]).await;
/// assert_eq!(report[0].1.as_ref().ok(), Some(&http::StatusCode::OK));
/// # tokio::task::yield_now().await;
/// assert_eq!(handle.stats().stored, 1);
/// # }
/// ```
pub async fn warm_up<ReqB, S, ResB, P>(
    mut service: S,
    origin: &str,
    paths: impl IntoIterator<Item = P>,
) -> Vec<(String, Result<StatusCode, S::Error>)>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: Default,
    ResB: Body,
    ResB::Data: Buf,
    P: AsRef<str>,
{
    let origin = origin.trim_end_matches('/');
    let host = origin.split_once("://").map_or(origin, |(_, host)| host);
    let mut report = Vec::new();
    for path in paths {
        let path = path.as_ref().to_owned();
        let request = Request::get(format!("{origin}{path}"))
            .header(header::HOST, host)
            .body(ReqB::default());
        let Ok(request) = request else {
            // Not a valid URL: nothing to warm. Reported as the 400 a server would give it.
            report.push((path, Ok(StatusCode::BAD_REQUEST)));
            continue;
        };
        let result = async {
            poll_fn(|cx| service.poll_ready(cx)).await?;
            let response = service.call(request).await?;
            let status = response.status();
            let mut body = std::pin::pin!(response.into_body());
            while let Some(Ok(_)) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {}
            Ok(status)
        }
        .await;
        report.push((path, result));
    }
    // Let the stores spawned at each body's end run before reporting back.
    tokio::task::yield_now().await;
    report
}
