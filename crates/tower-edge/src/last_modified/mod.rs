//! Middleware that answers `If-Modified-Since` and `If-Unmodified-Since` from `Last-Modified`.
//!
//! [`LastModifiedLayer`] reads the `Last-Modified` of `2xx` responses to `GET` and `HEAD`
//! (optionally stamping one from a function you give it) and evaluates the date preconditions of
//! RFC 9110 §13.2.2 against it, at the one-second precision of HTTP dates:
//!
//! - `If-Unmodified-Since` only when the request has no `If-Match`, answering `412`;
//! - `If-Modified-Since` only when the request has no `If-None-Match`, answering `304`;
//! - a date that does not parse, or a list of dates, is ignored (§13.1.3, §13.1.4); an
//!   `If-Modified-Since` later than the server's clock is compared like any other date.
//!
//! Entity-tag conditions are left to [`ETagLayer`](crate::etag::ETagLayer) or the handler, so the
//! two layers stack in either order with the same result.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode, header};
//! use tower::ServiceExt;
//! use tower_edge::last_modified::LastModifiedLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let published = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let app = Router::new()
//!     .route("/post", get(|| async { "an article" }))
//!     // Stamp every response with the publication time.
//!     .layer(LastModifiedLayer::new().source(move |_: &http::response::Parts| Some(published)));
//!
//! let req = Request::get("/post")
//!     .header(header::IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:20 GMT")
//!     .body(Body::empty())
//!     .unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
//! assert_eq!(res.headers()[header::LAST_MODIFIED], "Tue, 14 Nov 2023 22:13:20 GMT");
//! # }
//! ```

mod future;
mod layer;
mod service;

pub use self::{future::ResponseFuture, layer::LastModifiedLayer, service::LastModified};

/// The body of a [`LastModified`] response.
pub type LastModifiedBody<B> = crate::body::EdgeBody<B>;

#[cfg(test)]
mod tests;
