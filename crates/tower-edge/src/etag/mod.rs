//! Middleware that gives responses a strong `ETag` and answers `If-None-Match` / `If-Match`.
//!
//! When a handler sets no `ETag`, [`ETagLayer`] hashes the body of `200` and `203` responses to
//! `GET` and `HEAD` with SHA-256 (or, on request, the much cheaper XXH3-128: see [`Algorithm`])
//! and sends it, base64url-encoded, as a strong entity tag. It then
//! evaluates the request's preconditions (RFC 9110 §13.2.2, through
//! [`crate::http::preconditions`]) against the response's `ETag` and `Last-Modified`, answering
//! `304 Not Modified` or `412 Precondition Failed` in place of the body.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode, header};
//! use tower::ServiceExt;
//! use tower_edge::etag::ETagLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/", get(|| async { "hello, world" }))
//!     .layer(ETagLayer::new());
//!
//! let res = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let etag = res.headers()[header::ETAG].clone();
//!
//! let revalidate = Request::get("/").header(header::IF_NONE_MATCH, etag).body(Body::empty());
//! let res = app.oneshot(revalidate.unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
//! # }
//! ```
//!
//! # Buffering
//!
//! To hash a body the layer must hold it whole before sending the headers. It does so only when
//! the body's length is known (from its size hint) and at most [`ETagLayer::max_body_size`]
//! (1 MiB by default). A body of unknown length (a stream, server-sent events) or a longer one
//! streams through untouched, with no `ETag`. A body whose size hint understated its length is
//! read only up to the bound, then sent on as it comes, also without an `ETag`: the layer never
//! holds more than the bound.
//!
//! # Bodies sent again
//!
//! Hashing costs about 6 µs per 10 KiB with SHA-256, as much as the rest of a small response.
//! A handler that sends the same bytes again and again (an asset embedded with
//! `include_bytes!`, a document rendered once and kept in a [`Bytes`](bytes::Bytes)) hands the
//! layer the same memory each time, and the layer remembers its digest: sending it again costs
//! no hash, and answering a revalidation of it costs less than sending it.
//!
//! - A body is recognised by its memory, never by its content: the layer keeps a clone of each
//!   body it remembers, so that memory can be neither freed nor reused, and `Bytes` never
//!   changes the bytes it points to. A copy of the same content elsewhere is hashed.
//! - Only bodies that arrive in one chunk of at most 256 KiB, and that something else holds too
//!   (static data, or a buffer the application keeps), are remembered. A body rendered into a
//!   buffer of its own for one response is held by nothing else and is never remembered: such
//!   handlers pay one check per response, and the layer keeps none of their bodies alive.
//! - Each layer remembers at most 32 bodies. A remembered body keeps the whole buffer it is part
//!   of alive until another body takes its place: usually memory the application keeps anyway.
//!   A service whose bodies are slices of buffers it lets go (a body forwarded as it was read
//!   from a connection, a slice of a large document it replaces) can turn this off with
//!   [`ETagLayer::remember_shared_bodies`].
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use bytes::Bytes;
//! use http::{Request, header};
//! use tower::ServiceExt;
//! use tower_edge::etag::ETagLayer;
//!
//! static LOGO: &[u8] = b"<svg xmlns='http://www.w3.org/2000/svg'/>";
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/logo.svg", get(|| async { Bytes::from_static(LOGO) }))
//!     .layer(ETagLayer::new());
//!
//! // Hashed for the first response, remembered for the next: the same tag each time.
//! let mut tags = Vec::new();
//! for _ in 0..2 {
//!     let req = Request::get("/logo.svg").body(Body::empty()).unwrap();
//!     let res = app.clone().oneshot(req).await.unwrap();
//!     tags.push(res.headers()[header::ETAG].clone());
//! }
//! assert_eq!(tags[0], tags[1]);
//! # }
//! ```
//!
//! # Unsafe methods
//!
//! Only `GET` and `HEAD` are evaluated here. For `PUT`, `POST`, `DELETE` and `PATCH` the handler
//! has already acted by the time its response reaches a middleware, so a 412 decided afterwards
//! would report a change as refused after making it. Handlers of unsafe methods evaluate
//! preconditions themselves, before acting, with the
//! [`Preconditions`](crate::extract::Preconditions) extractor (feature `axum`).
//!
//! # Ordering
//!
//! Stacked with [`LastModifiedLayer`](crate::last_modified::LastModifiedLayer) in either order the
//! outcome is the same: `If-None-Match` takes precedence over `If-Modified-Since`. Put
//! compression *outside* this layer, so the tag names the identity representation and the
//! compressor can weaken it (RFC 9110 §8.8.1).

mod future;
mod hash;
mod layer;
mod memo;
mod service;

pub use self::{future::ResponseFuture, hash::Algorithm, layer::ETagLayer, service::ETag};

/// The body of an [`ETag`] response.
pub type ETagBody<B> = crate::body::EdgeBody<B>;

#[cfg(test)]
mod tests;
