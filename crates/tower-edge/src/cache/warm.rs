//! Populating the cache at start-up.

use std::future::poll_fn;

use bytes::Buf;
use http::{Request, Response, StatusCode, header};
use http_body::Body;
use tower::Service;

/// The `Accept-Encoding` values [`warm_up`] sends each path with: a current browser's (a cache
/// keyed by `CompressionLayer`'s negotiation, as `EdgeStack`'s is, stores it as the brotli
/// variant) and none (the identity variant `curl`, health checks and many API clients get).
pub const WARM_ACCEPT_ENCODINGS: [&str; 2] = ["gzip, deflate, br, zstd", ""];

/// One request [`warm_up`] sent, and how it went.
#[derive(Debug)]
pub struct Warmed<E> {
    /// The path.
    pub path: String,
    /// The `Accept-Encoding` it was sent with (empty: none).
    pub accept_encoding: String,
    /// Its status, or the service's error.
    pub result: Result<StatusCode, E>,
}

/// Sends a `GET` for each of `paths` (on `origin`, like `"https://example.com"`) through
/// `service` (the stack that includes the [`ResponseCacheLayer`](super::ResponseCacheLayer)),
/// once per value of [`WARM_ACCEPT_ENCODINGS`], and reads each body to its end, so the variants
/// most clients ask for are stored before real traffic arrives. [`warm_up_with`] takes other
/// `Accept-Encoding` values.
///
/// The requests carry an empty `String` body, which an axum `Router` (and any service generic
/// over its request body) takes as it is.
///
/// ```
/// use axum::{Router, http::header, routing::get};
/// use tower_edge::{cache::{MokaStore, warm_up}, stack::EdgeStack};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stack = EdgeStack::new(MokaStore::default());
/// let handle = stack.handle("https://example.com");
/// let page = "<p>home</p>".repeat(100);
/// let app = Router::new()
///     .route("/", get(move || async move {
///         ([(header::CACHE_CONTROL, "max-age=300"), (header::CONTENT_TYPE, "text/html")], page)
///     }))
///     .layer(stack);
///
/// let report = warm_up(app, "https://example.com", ["/"]).await;
/// assert!(report.iter().all(|w| w.result.as_ref().ok() == Some(&http::StatusCode::OK)));
/// # tokio::task::yield_now().await;
/// // The brotli and the identity variants.
/// assert_eq!(handle.stats().stored, 2);
/// # }
/// ```
pub async fn warm_up<S, ResB, P>(
    service: S,
    origin: &str,
    paths: impl IntoIterator<Item = P>,
) -> Vec<Warmed<S::Error>>
where
    S: Service<Request<String>, Response = Response<ResB>>,
    ResB: Body,
    ResB::Data: Buf,
    P: AsRef<str>,
{
    warm_up_with(service, origin, paths, WARM_ACCEPT_ENCODINGS).await
}

/// [`warm_up`], sending each path once per value of `accept_encodings` (an empty value sends
/// no `Accept-Encoding`).
pub async fn warm_up_with<S, ResB, P, A>(
    mut service: S,
    origin: &str,
    paths: impl IntoIterator<Item = P>,
    accept_encodings: impl IntoIterator<Item = A>,
) -> Vec<Warmed<S::Error>>
where
    S: Service<Request<String>, Response = Response<ResB>>,
    ResB: Body,
    ResB::Data: Buf,
    P: AsRef<str>,
    A: AsRef<str>,
{
    let origin = origin.trim_end_matches('/');
    let host = origin.split_once("://").map_or(origin, |(_, host)| host);
    let accepts: Vec<String> = accept_encodings
        .into_iter()
        .map(|a| a.as_ref().to_owned())
        .collect();
    let mut report = Vec::new();
    for path in paths {
        let path = path.as_ref().to_owned();
        for accept in &accepts {
            let mut request = Request::get(format!("{origin}{path}")).header(header::HOST, host);
            if !accept.is_empty() {
                request = request.header(header::ACCEPT_ENCODING, accept.as_str());
            }
            let warmed = |result| Warmed {
                path: path.clone(),
                accept_encoding: accept.clone(),
                result,
            };
            let Ok(request) = request.body(String::new()) else {
                // Not a valid URL or header value: nothing to warm. Reported as the 400 a
                // server would give it.
                report.push(warmed(Ok(StatusCode::BAD_REQUEST)));
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
            report.push(warmed(result));
        }
    }
    // Let the stores spawned at each body's end run before reporting back.
    tokio::task::yield_now().await;
    report
}
