//! Middleware that serves byte ranges (RFC 9110 §14) from responses held in memory.
//!
//! [`RangeLayer`] answers a `GET` with `Range` from the inner service's `200` response: one range
//! as `206 Partial Content` with `Content-Range`, several as `multipart/byteranges`, none
//! satisfiable as `416 Range Not Satisfiable` with `Content-Range: bytes */len`. It honours
//! `If-Range` (strong comparison only) against the response's own `ETag` and `Last-Modified`,
//! and advertises `Accept-Ranges: bytes` on every response it could serve ranges from. Parsing,
//! coalescing and the abuse limits are those of [`crate::http::range`].
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode, header};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_edge::range::RangeLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/alphabet", get(|| async { "abcdefghijklmnopqrstuvwxyz" }))
//!     .layer(RangeLayer::new());
//!
//! let req = Request::get("/alphabet").header(header::RANGE, "bytes=-3");
//! let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
//! assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 23-25/26");
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "xyz");
//! # }
//! ```
//!
//! # What it leaves alone
//!
//! - Methods other than `GET` and `HEAD`, and statuses other than `200` (a `206` from the
//!   handler passes through as it is). `HEAD` gets `Accept-Ranges` but never a range: range
//!   handling is defined for `GET` only (§14.2).
//! - Responses with `Accept-Ranges` other than `bytes` (a handler says `none` to opt out).
//! - Bodies of unknown length, and bodies longer than [`RangeLayer::max_body_size`].
//! - Responses with a `Content-Encoding` and no strong `ETag`. A content coding is part of the
//!   selected representation (§8.4), so a range of a gzip response is a range of the gzip
//!   bytes; that is only meaningful if those bytes are the same on every request, which a strong
//!   `ETag` promises and an on-the-fly encoder (whose tags are weak) does not. Without that
//!   promise, a download resumed with `Range` could splice two different encodings.
//!
//! # Buffering
//!
//! Only a `GET` with a `Range` that is to be honoured is buffered, and only when the body's size
//! hint gives an exact length of at most [`RangeLayer::max_body_size`] (1 MiB by default): the
//! layer reads the whole body, then sends slices of it without copying (one copy when the body
//! came in several chunks). A body that turns out longer than its size hint is read up to the
//! bound and then sent whole, as it comes, without a range. Every other response streams through.
//!
//! # Ordering
//!
//! Put this layer *outside* [`ETagLayer`](crate::etag::ETagLayer) and
//! [`LastModifiedLayer`](crate::last_modified::LastModifiedLayer): preconditions are then
//! answered first (a range is evaluated last, RFC 9110 §13.2.2 step 5) and the `206` is cut from
//! a response that already carries the validators `If-Range` compares with. Put it *inside* a
//! compression layer, so ranges are taken of the identity bytes; compressors leave a `206` alone.

mod future;

#[cfg(feature = "cache")]
pub(crate) use self::future::{
    partial_parts, partial_parts_with, serves_ranges, unsatisfiable_parts,
};
mod layer;
mod service;

pub use self::{future::ResponseFuture, layer::RangeLayer, service::Range};

/// The body of a [`Range`] response.
pub type RangeBody<B> = crate::body::EdgeBody<B>;

#[cfg(test)]
mod tests;
