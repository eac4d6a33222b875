//! Services that serve files from disk, with validators, byte ranges, precompressed variants and
//! a hot-file cache: [`ServeDir`] and [`ServeFile`].
//!
//! Both are leaf services (`Error = Infallible`) that drop into axum's `Router::nest_service` or
//! `Router::fallback_service`. They answer `GET` and `HEAD` (anything else gets `405` with
//! `Allow: GET, HEAD`) with:
//!
//! - `Content-Type` from the extension (`mime_guess`), with `charset=utf-8` for text;
//! - a strong `ETag` from the file's size, modification time and inode (or, with
//!   [`ETagSource::ContentHash`], from its bytes, hashed once per version) and `Last-Modified`;
//! - every precondition of RFC 9110 §13 through [`crate::http::preconditions`] (`304`, `412`),
//!   then `Range` and `If-Range` through [`crate::http::range`] (`206`, `multipart/byteranges`,
//!   `416`), by seeking in the file rather than reading what is not sent;
//! - precompressed siblings (`app.js.br`, `.zst`, `.gz`) chosen by `Accept-Encoding`, with
//!   `Content-Encoding` and `Vary: Accept-Encoding`; ranges apply to the file actually sent;
//! - `Cache-Control: public, max-age=31536000, immutable` for hashed asset names
//!   (`app.3f2a9c1b.css`), a configurable policy for the rest (`no-cache` by default);
//! - index files, a `307` to add a directory's trailing slash, and a configurable not-found
//!   service; optional `Content-Disposition: attachment` and an offload mode
//!   (`X-Accel-Redirect`, `X-Sendfile`).
//!
//! ```
//! use axum::{Router, body::Body};
//! use http::{Request, StatusCode, header};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_edge::fs::ServeDir;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("hello.txt"), "hello, world").unwrap();
//! let app = Router::new().nest_service("/static", ServeDir::new(dir.path()));
//!
//! let req = Request::get("/static/hello.txt").header(header::RANGE, "bytes=7-");
//! let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
//! assert_eq!(res.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "world");
//!
//! let req = Request::get("/static/../secret").body(Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! # }
//! ```
//!
//! # Safety of paths
//!
//! No request can name a file outside the root. Each path segment is percent-decoded on its own
//! and refused (`404`, through the not-found service) if it is `.` or `..`, holds `/`, `\` or
//! `:` (drive letters), or starts with `.` (hidden files, unless allowed); malformed
//! percent-encoding, invalid UTF-8 and NUL bytes are `400`. Nothing is normalized, so a path
//! that would need it is refused rather than reinterpreted. Then the file's real path
//! (`canonicalize`, which resolves every symlink) must lie under the root's real path, unless
//! [`ServeDir::follow_symlinks_outside_root`] says otherwise. Only regular files are served;
//! a path is `stat`ed before it is opened, so a FIFO or a device is never opened.
//!
//! # Memory and buffering
//!
//! A streamed file is read in chunks of [`ServeDir::chunk_size`] (256 KiB by default) on
//! tokio's blocking pool, one chunk at a time, and only when the previous one was taken: a
//! response never holds more than one chunk, whatever the file's size. Ranges seek to their
//! offset, so a 1 KiB range of a 2 GiB file reads 1 KiB.
//!
//! The hot-file cache holds files of at most [`ServeDir::cache_max_file_size`] (1 MiB) with
//! their precompressed siblings, up to [`ServeDir::cache_capacity`] (32 MiB) in all. A request
//! for a cached file checked within [`ServeDir::cache_revalidate_interval`] (1 s) is answered
//! without a system call or an allocation beyond the response; after the interval the next
//! request `stat`s the files and reloads them if their size, modification time or inode
//! changed. So an edited file may be served for up to one interval after the change.

mod body;
mod cache;
mod future;
mod meta;
mod negotiate;
mod open;
mod path;
mod respond;
mod serve_dir;
mod serve_file;

pub use self::{
    body::FileBody,
    future::ResponseFuture,
    serve_dir::{DefaultNotFound, ETagSource, Offload, ServeDir},
    serve_file::ServeFile,
};

#[cfg(test)]
mod tests;

/// Hook for [`crate::fuzzing`]: the request-path parser, as segments, or `None` when refused.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_parse_path(path: &str, allow_hidden: bool) -> Option<Vec<String>> {
    path::parse(path, allow_hidden)
        .ok()
        .map(|p| p.segments().map(str::to_owned).collect())
}
