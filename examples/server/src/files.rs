//! Files from disk through `ServeDir`: the static assets under `/static/` and the downloads
//! under `/download/`. `ServeDir` does its own validators and ranges from the file's metadata
//! and seeks instead of buffering; the preset around it caches and compresses what it may.
//!
//! Behind nginx, the downloads can be offloaded instead ([`AppState::with_x_accel_redirect`]):
//! this server checks the path and answers `X-Accel-Redirect`, and nginx sends the file.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tower_edge::fs::{Offload, ServeDir};

use crate::AppState;

/// The sample files of this crate: `static/` next to its manifest, where `cargo run` finds
/// them whatever the working directory.
pub const STATIC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/static");

/// What `/static` serves unless told otherwise (`--static-dir`, `STATIC_DIR`): the sample files
/// ([`STATIC_DIR`]) when they are there, as they are for `cargo run`; otherwise `static` in the
/// working directory, as for a binary copied elsewhere.
pub fn default_static_dir() -> PathBuf {
    let built_in = Path::new(STATIC_DIR);
    if built_in.is_dir() {
        built_in.to_path_buf()
    } else {
        PathBuf::from("static")
    }
}

/// `/static`: `ServeDir` with gzip siblings (`app.3f2a9c1b.css.gz`) served to clients that
/// accept them, and hashed names (`app.3f2a9c1b.css`) marked immutable (its default).
pub(crate) fn static_files(state: &AppState) -> ServeDir {
    ServeDir::new(state.static_dir.as_path()).precompressed_gzip(true)
}

/// `/download`: every file as an attachment, so browsers save it; or, offloaded, the header
/// that tells nginx which file to send.
pub(crate) fn downloads(state: &AppState) -> ServeDir {
    let dir = ServeDir::new(state.downloads.path()).attachment(true);
    match &state.downloads.x_accel_redirect {
        Some(prefix) => dir.offload(Some(Offload::XAccelRedirect {
            prefix: prefix.clone(),
        })),
        None => dir,
    }
}

impl AppState {
    /// Whether `/download/` answers with `X-Accel-Redirect` instead of the bytes.
    pub(crate) fn offloads_downloads(&self) -> bool {
        self.downloads.x_accel_redirect.is_some()
    }
}

/// What `/download/` serves, and how.
#[derive(Clone, Debug)]
pub(crate) struct Downloads {
    dir: DownloadDir,
    x_accel_redirect: Option<String>,
}

#[derive(Clone, Debug)]
enum DownloadDir {
    // Removed when the last clone of the state goes.
    Sample(Arc<tempfile::TempDir>),
    Given(Arc<PathBuf>),
}

impl Downloads {
    /// A temporary directory holding [`download_bytes`] as `sample.bin`.
    pub(crate) fn sample() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tower-edge-example-")
            .tempdir()
            .expect("a temporary directory for the download");
        std::fs::write(dir.path().join("sample.bin"), download_bytes())
            .expect("write the download");
        Self {
            dir: DownloadDir::Sample(Arc::new(dir)),
            x_accel_redirect: None,
        }
    }

    pub(crate) fn dir(self, dir: PathBuf) -> Self {
        Self {
            dir: DownloadDir::Given(Arc::new(dir)),
            ..self
        }
    }

    pub(crate) fn x_accel_redirect(self, prefix: &str) -> Self {
        Self {
            x_accel_redirect: Some(prefix.to_owned()),
            ..self
        }
    }

    /// The directory `/download/` serves.
    pub(crate) fn path(&self) -> &Path {
        match &self.dir {
            DownloadDir::Sample(dir) => dir.path(),
            DownloadDir::Given(dir) => dir,
        }
    }
}

/// The size of `/download/sample.bin`.
pub const DOWNLOAD_LEN: usize = 2 * 1024 * 1024;

/// The content of `/download/sample.bin`: [`DOWNLOAD_LEN`] pseudo-random bytes that do not
/// compress, like the archives people download. The same on every run, so a client can check
/// any range it gets.
pub fn download_bytes() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..DOWNLOAD_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, StatusCode, header};

    use super::{DOWNLOAD_LEN, STATIC_DIR};
    use crate::{
        app,
        testing::{get, send},
    };

    #[tokio::test]
    async fn the_download_resumes_with_ranges() {
        let app = app();
        let (status, h, whole) = send(&app, get("/download/sample.bin")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(whole.len(), DOWNLOAD_LEN);
        assert!(
            h[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        let resume = Request::get("/download/sample.bin")
            .header(header::RANGE, "bytes=1000000-")
            .header(header::IF_RANGE, etag)
            .body(Body::empty())
            .unwrap();
        let (status, h, tail) = send(&app, resume).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            h[header::CONTENT_RANGE],
            format!("bytes 1000000-{}/{DOWNLOAD_LEN}", DOWNLOAD_LEN - 1)
        );
        assert_eq!(tail, whole[1_000_000..]);
    }

    #[tokio::test]
    async fn static_files_are_served_with_ranges_validators_and_gzip_siblings() {
        let app = app();
        let on_disk = std::fs::read(format!("{STATIC_DIR}/hello.txt")).unwrap();
        let (status, headers, body) = send(&app, get("/static/hello.txt")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, on_disk);
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        let etag = headers[header::ETAG].clone();

        let req = Request::get("/static/hello.txt")
            .header(header::RANGE, "bytes=0-4")
            .header(header::IF_RANGE, etag.clone());
        let (status, headers, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            headers[header::CONTENT_RANGE],
            format!("bytes 0-4/{}", on_disk.len()).as_str()
        );
        assert_eq!(body, &on_disk[..5]);

        let req = Request::get("/static/hello.txt").header(header::IF_NONE_MATCH, etag);
        let (status, _, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());

        let req = Request::get("/static/app.3f2a9c1b.css").header(header::ACCEPT_ENCODING, "gzip");
        let (status, headers, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            body,
            std::fs::read(format!("{STATIC_DIR}/app.3f2a9c1b.css.gz")).unwrap()
        );

        let (status, headers, _) = send(&app, get("/static/docs")).await;
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(headers[header::LOCATION], "docs/");
        let (status, _, _) = send(&app, get("/static/../Cargo.toml")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
