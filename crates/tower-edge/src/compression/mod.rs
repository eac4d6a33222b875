//! Middleware that compresses response bodies: gzip, brotli, zstd and deflate, negotiated per
//! RFC 9110 §12.5.3, for the media types worth it, while the body streams.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, header};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_edge::compression::CompressionLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let json = "[".to_owned() + &"{\"id\":1,\"name\":\"anvil\"},".repeat(100) + "{}]";
//! let app = Router::new()
//!     .route("/items", get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json) }))
//!     .layer(CompressionLayer::new());
//!
//! let req = Request::get("/items").header(header::ACCEPT_ENCODING, "gzip, br").body(Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.headers()[header::CONTENT_ENCODING], "br");
//! assert_eq!(res.headers()[header::VARY], "accept-encoding");
//! let compressed = res.into_body().collect().await.unwrap().to_bytes();
//! assert!(compressed.len() < 200);
//! # }
//! ```
//!
//! # What is compressed
//!
//! Responses whose media type the [`Predicate`] allows ([`MimeAllowList`] by default: text,
//! JSON, JavaScript, XML, SVG, wasm, uncompressed fonts, ndjson; never images, audio, video,
//! archives), of at least [`CompressionLayer::min_size`] bytes (1 KiB by default), to a client
//! that accepts one of the offered codings (each behind its cargo feature).
//!
//! Never touched: responses to `HEAD` and `CONNECT`, `1xx`, `204`, `206` and anything with
//! `Content-Range`, upgrades, bodies that already have a `Content-Encoding`, and responses with
//! `Cache-Control: no-transform`.
//!
//! # Headers
//!
//! A compressed response gets `Content-Encoding` and `Vary: Accept-Encoding` (merged with any
//! `Vary` already there), loses `Content-Length` and `Accept-Ranges`, and its strong `ETag`
//! becomes weak (RFC 9110 §8.8.1: the bytes changed). A response left uncompressed *because*
//! of the request's `Accept-Encoding` still gets the `Vary`. A `304` to a request that negotiates
//! a coding gets the weakened tag too, so revalidation with `If-None-Match` keeps working.
//!
//! # Secrets next to reflected input (BREACH)
//!
//! A compressed response's length leaks how well its parts compress together. When one response
//! carries both a secret (a CSRF token, a session-bound value) and text the requester chose (a
//! query echoed into the page), an attacker who can make a victim's browser send many requests,
//! and can see the encrypted lengths, can guess the secret a byte at a time: the BREACH attack
//! (2013). TLS does not help; turning compression off for those responses does, at the price of
//! their size. Mark them, and leave them out with a predicate:
//!
//! ```
//! use axum::{Router, routing::get, response::IntoResponse};
//! use tower_edge::compression::{CompressionLayer, MimeAllowList, Predicate};
//!
//! /// A response extension: this body mixes a secret with reflected input.
//! #[derive(Clone, Copy)]
//! struct MixesSecret;
//!
//! async fn account() -> impl IntoResponse {
//!     let mut res = "<form>… csrf token … echoed query …</form>".into_response();
//!     res.extensions_mut().insert(MixesSecret);
//!     res
//! }
//!
//! let compression = CompressionLayer::new().compress_when(
//!     MimeAllowList::new()
//!         .and(|parts: &http::response::Parts| parts.extensions.get::<MixesSecret>().is_none()),
//! );
//! let app: Router = Router::new().route("/account", get(account)).layer(compression);
//! ```
//!
//! The other mitigations (masking the token anew on each response, rate limits, same-site
//! cookies) are the application's; this layer only offers the switch.
//!
//! # Streaming and buffering
//!
//! Bodies are compressed frame by frame, never buffered whole. A body of known length is
//! flushed only at its end (best ratio); a body of unknown length, and every
//! `text/event-stream` or `application/x-ndjson` body, is flushed after each frame, so a client
//! can decode each event as soon as the handler sends it. To apply the minimum size to a body of
//! unknown length, the layer reads up to `min_size` bytes before sending the head (streaming
//! types excepted), boxing the body to hand it on afterwards. Trailers pass through after the
//! compressed stream ends; a body error reaches the client as the body's error.
//!
//! Each compressed response has its own encoder; with the body's length known, brotli and
//! zstd size their state to it. The brotli state is boxed.
//!
//! # With the response cache
//!
//! Put compression *inside* [`ResponseCacheLayer`](crate::cache::ResponseCacheLayer), and give
//! the cache [`CompressionLayer::negotiator`], so each stored variant is already compressed and
//! keyed by the coding this layer picks: a hit then costs no compression at all.

mod body;
mod encoder;
mod future;
mod layer;
mod predicate;
mod service;

pub use self::{
    body::CompressionBody,
    future::ResponseFuture,
    layer::CompressionLayer,
    predicate::{And, MimeAllowList, Predicate},
    service::Compression,
};
pub use crate::http::accept_encoding::Coding;

#[cfg(test)]
mod tests;
