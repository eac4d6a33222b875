//! What a CDN gives a website, as tower layers: validators, compression, caching, byte ranges.
//!
//! `tower-edge` brings what a caching reverse proxy does at the edge into any [tower] service, so
//! an [axum] application gets it with `.layer()`. Each capability is an independent layer behind
//! its own cargo feature, and every layer reads HTTP through the same RFC 9110 primitives in
//! [`http`], so they agree on what a header means.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode, header};
//! use tower::ServiceExt;
//! use tower_edge::{etag::ETagLayer, last_modified::LastModifiedLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/api/items", get(|| async { r#"[{"id":1,"name":"anvil"}]"# }))
//!     .layer(ETagLayer::new())
//!     .layer(LastModifiedLayer::new());
//!
//! let first = app.clone().oneshot(Request::get("/api/items").body(Body::empty()).unwrap()).await.unwrap();
//! let etag = first.headers()[header::ETAG].clone();
//!
//! // A client revalidating its copy gets 304 and no body…
//! let again = Request::get("/api/items").header(header::IF_NONE_MATCH, etag.clone());
//! let res = app.clone().oneshot(again.body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
//!
//! // …and one whose copy is stale gets 412 when it asks for an exact match.
//! let stale = Request::get("/api/items").header(header::IF_MATCH, "\"stale\"");
//! let res = app.oneshot(stale.body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
//! # }
//! ```
//!
//! # Features
//!
//! No feature is on by default; `full` turns on all of them.
//!
//! | feature         | what it adds                                                           |
//! |-----------------|------------------------------------------------------------------------|
//! | `etag`          | [`etag::ETagLayer`]: strong `ETag`s from a SHA-256 of the body, 304/412 |
//! | `last-modified` | [`last_modified::LastModifiedLayer`]: `If-Modified-Since`, `If-Unmodified-Since` |
//! | `range`         | [`range::RangeLayer`]: `206`/`416` and `multipart/byteranges` for in-memory bodies |
//! | `fs`            | [`fs::ServeDir`], [`fs::ServeFile`]: files with validators, ranges, precompressed siblings, a hot cache |
//! | `cache`         | [`cache::ResponseCacheLayer`]: an RFC 9111 shared cache on a [`cache::CacheStore`] (in memory by default; Redis through `tower-edge-store`) |
//! | `compression-gzip` | [`compression::CompressionLayer`] with gzip                          |
//! | `compression-br`   | … with brotli                                                         |
//! | `compression-zstd` | … with zstd                                                           |
//! | `compression-deflate` | … with deflate (zlib)                                              |
//! | `compression-full` | every codec                                                          |
//! | `metrics`       | counters through the `metrics` facade (see [`observe`]) |
//! | `preset`        | [`stack::EdgeStack`]: cache → compression → ETag → Last-Modified as one layer |
//! | `axum`          | [`extract::Preconditions`]: answer 304/412 in a handler before the work; [`cache::CacheHandle`] as an extractor |
//!
//! The RFC primitives in [`http`] and the [`clock`] are always available.
//!
//! # Ordering
//!
//! Layers added later with `Router::layer` wrap the earlier ones, so the last `.layer()` call is
//! the outermost. The recommended stack, outermost first, which [`stack::EdgeStack`] (feature
//! `preset`) builds in one call:
//!
//! ```text
//! request ─▶ ResponseCache ─▶ Compression ─▶ ETag ─▶ LastModified ─▶ handler / ServeDir
//! ```
//!
//! What each rule buys, and what changes if it is broken:
//!
//! - **The cache goes outermost.** A hit skips everything below it: no compression, no hashing,
//!   no handler. Inside compression, every hit would be compressed again (5–10x the cost of a
//!   bare response for a 10 KiB body), and the cache would store identity bytes only.
//! - **The cache is keyed by the compression layer's negotiation**
//!   ([`compression::CompressionLayer::negotiator`]): one stored variant per coding actually
//!   sent, not per `Accept-Encoding` string. Without it the cache still keys correctly, by the raw
//!   header, with more entries.
//! - **Compression goes outside `ETag`.** The tag is computed once, on the identity bytes, and
//!   the compressor marks it weak for the encoded variant (RFC 9110 §8.8.1); `If-None-Match`
//!   with that weak tag still matches (weak comparison). With `ETag` outside compression the tag
//!   would hash encoder output (a compression per revalidation, and a different tag per coding).
//! - **`ETag` and `LastModified` may go in either order**: the date layer only decides
//!   `If-Modified-Since` when there is no `If-None-Match`, and `If-Unmodified-Since` when there is
//!   no `If-Match`, which is exactly the precedence of RFC 9110 §13.2.2.
//! - **Ranges:** `RangeLayer` belongs inside compression (compression leaves `206` alone), and
//!   the cache answers ranges of stored bodies itself. Outside compression, a range would be cut
//!   from encoder output, which `RangeLayer` refuses unless the tag is strong.
//! - **`ServeDir` is a leaf**: it does its own validators and ranges from file metadata, and
//!   serves precompressed siblings itself; the layers above treat its answers like any other.
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod http;
pub mod observe;

#[cfg(any(feature = "etag", feature = "last-modified", feature = "range"))]
pub mod body;
mod collected;
#[cfg(any(feature = "etag", feature = "last-modified"))]
mod conditional;
#[cfg(any(feature = "etag", feature = "last-modified"))]
mod response;

#[cfg(feature = "etag")]
#[cfg_attr(docsrs, doc(cfg(feature = "etag")))]
pub mod etag;

#[cfg(feature = "last-modified")]
#[cfg_attr(docsrs, doc(cfg(feature = "last-modified")))]
pub mod last_modified;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;

#[cfg(feature = "preset")]
#[cfg_attr(docsrs, doc(cfg(feature = "preset")))]
pub mod stack;

#[cfg(any(
    feature = "compression-gzip",
    feature = "compression-deflate",
    feature = "compression-br",
    feature = "compression-zstd"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "compression-gzip",
        feature = "compression-deflate",
        feature = "compression-br",
        feature = "compression-zstd"
    )))
)]
pub mod compression;

#[cfg(feature = "range")]
#[cfg_attr(docsrs, doc(cfg(feature = "range")))]
pub mod range;

#[cfg(feature = "fs")]
#[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
pub mod fs;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

/// Coming from Flask-Caching and Flask-Compress: each decorator, call and configuration key,
/// and what it becomes here. Its snippets run as this crate's doc tests.
#[cfg(feature = "full")]
#[cfg_attr(docsrs, doc(cfg(feature = "full")))]
pub mod migrating_from_flask {
    #![doc = include_str!("../docs/migrating-from-flask.md")]
}

#[cfg(feature = "etag")]
pub use etag::ETagLayer;

// The README's examples are compiled and run as doc tests, so it cannot describe an API that
// does not exist.
#[cfg(all(doctest, feature = "full"))]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
#[cfg(feature = "cache")]
pub use cache::ResponseCacheLayer;
#[cfg(feature = "last-modified")]
pub use last_modified::LastModifiedLayer;
#[cfg(feature = "range")]
pub use range::RangeLayer;
