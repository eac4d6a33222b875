use std::{
    convert::Infallible,
    io,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use tower::{BoxError, Service};

use super::{
    FileBody, ResponseFuture,
    cache::{HashCache, HotCache},
    negotiate::{Accepted, Encoding},
    open::{self, Caches, Loaded},
    path::{self, Refused, SafePath},
    respond::{self, Source},
};
use crate::{
    clock::{Clock, SharedClock},
    http::range::RangeLimits,
};

/// Serves the files under a directory; see the [module docs](crate::fs).
///
/// `F` is the service that answers when no file matches (by default a plain `404`).
#[derive(Clone, Debug)]
pub struct ServeDir<F = DefaultNotFound> {
    pub(super) config: Arc<Config>,
    pub(super) cache: Arc<HotCache>,
    pub(super) hashes: Arc<HashCache>,
    pub(super) not_found: F,
}

/// How the strong `ETag` of a file is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ETagSource {
    /// From the file's size, modification time (to the nanosecond) and inode: free to compute.
    #[default]
    Metadata,
    /// From a hash of the file's bytes (XXH3-128), computed once per file version (size,
    /// modification time, inode) and remembered: for deployments where modification times say
    /// nothing, such as Nix stores and container images, so that identical files on different
    /// machines share a tag. The first request for each version reads the whole file once.
    ContentHash,
}

/// Offload mode: instead of the bytes, answer with a header that tells a front server (nginx,
/// Apache, lighttpd) which file to send, after this service checked the path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offload {
    /// `X-Accel-Redirect: {prefix}{path relative to the root, percent-encoded}` (nginx). The
    /// prefix names an `internal` location of nginx that maps to the same root.
    XAccelRedirect {
        /// The URI prefix, such as `/protected/`.
        prefix: String,
    },
    /// `X-Sendfile: {canonical absolute path}` (Apache mod_xsendfile, lighttpd).
    XSendfile,
}

#[derive(Clone, Debug)]
pub(super) struct Config {
    /// Changes with every change of the configuration: what the heads a cached file keeps
    /// (`respond::KeptHeads`) were built under, since clones share the hot-file cache.
    pub(super) id: u64,
    root: PathBuf,
    canonical_root: OnceLock<Option<PathBuf>>,
    /// ServeFile: the one file name served, whatever the request path.
    pub(super) single_file: Option<String>,
    pub(super) index_files: Vec<String>,
    pub(super) redirect_directories: bool,
    pub(super) allow_hidden: bool,
    pub(super) follow_symlinks: bool,
    precompressed: [bool; 3],
    pub(super) chunk_size: usize,
    pub(super) etag_source: ETagSource,
    pub(super) last_modified: bool,
    pub(super) cache_control: Option<HeaderValue>,
    pub(super) immutable_hashed_names: bool,
    pub(super) attachment: bool,
    pub(super) offload: Option<Offload>,
    pub(super) cache_max_file_size: u64,
    pub(super) cache_capacity: u64,
    pub(super) cache_revalidate: Duration,
    pub(super) limits: RangeLimits,
    pub(super) clock: SharedClock,
    /// The counters of the 304s and 412s answered (a clone starts its own handles).
    pub(super) counts: crate::observe::Counts,
}

impl Config {
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The root, canonicalized once (on the blocking pool, at the first request).
    pub(super) fn canonical_root(&self) -> io::Result<&Path> {
        self.canonical_root
            .get_or_init(|| std::fs::canonicalize(&self.root).ok())
            .as_deref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the root does not exist"))
    }

    pub(super) fn precompressed(&self, e: Encoding) -> bool {
        self.precompressed[e as usize]
    }

    pub(super) fn any_precompressed(&self) -> bool {
        self.precompressed.iter().any(|&p| p)
    }
}

impl ServeDir {
    /// Serves the files under `root`.
    ///
    /// The root is resolved (symlinks and all) at the first request; if it does not exist then,
    /// every request is answered by the not-found service. A root that is not a directory when
    /// the service is made (a typo, a path relative to another working directory) is logged
    /// as a warning then, with the path and the working directory, rather than showing only
    /// as 404s later.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        if !root.is_dir() {
            let cwd = std::env::current_dir().ok();
            tracing::warn!(
                root = %root.display(),
                working_directory = ?cwd,
                "ServeDir root is not a directory: every request will be answered 404"
            );
        }
        Self {
            config: Arc::new(Config {
                id: next_config_id(),
                root,
                canonical_root: OnceLock::new(),
                single_file: None,
                index_files: vec!["index.html".to_owned()],
                redirect_directories: true,
                allow_hidden: false,
                follow_symlinks: false,
                precompressed: [false; 3],
                chunk_size: 256 * 1024,
                etag_source: ETagSource::Metadata,
                last_modified: true,
                cache_control: Some(HeaderValue::from_static("no-cache")),
                immutable_hashed_names: true,
                attachment: false,
                offload: None,
                cache_max_file_size: 1024 * 1024,
                cache_capacity: 32 * 1024 * 1024,
                cache_revalidate: Duration::from_secs(1),
                limits: RangeLimits::new(),
                clock: SharedClock::default(),
                counts: crate::observe::Counts::new(),
            }),
            cache: Arc::default(),
            hashes: Arc::default(),
            not_found: DefaultNotFound,
        }
    }
}

/// A configuration id no other configuration of this process has.
fn next_config_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<F> ServeDir<F> {
    /// The configuration, to change: it gets a new id.
    pub(super) fn config(&mut self) -> &mut Config {
        let config = Arc::make_mut(&mut self.config);
        config.id = next_config_id();
        config
    }

    /// The files tried, in order, for a request that names a directory (with its trailing
    /// slash). An empty list serves no directory.
    ///
    /// Defaults to `["index.html"]`.
    #[must_use]
    pub fn index_files<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config().index_files = names.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a request for a directory without its trailing slash is redirected (`307`, with
    /// a relative `Location` that adds the slash) or answered as not found.
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn redirect_directories(mut self, redirect: bool) -> Self {
        self.config().redirect_directories = redirect;
        self
    }

    /// Whether files and directories whose name starts with `.` may be served (`.env`,
    /// `.git/`). `..` is never allowed.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn hidden_files(mut self, allow: bool) -> Self {
        self.config().allow_hidden = allow;
        self
    }

    /// Whether symbolic links may lead outside the root. When `false`, every file is
    /// canonicalized and served only if its real path is under the root's real path.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn follow_symlinks_outside_root(mut self, allow: bool) -> Self {
        self.config().follow_symlinks = allow;
        self
    }

    /// Serves `file.br` in place of `file` to clients that accept Brotli.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn precompressed_br(mut self, on: bool) -> Self {
        self.config().precompressed[Encoding::Brotli as usize] = on;
        self
    }

    /// Serves `file.zst` in place of `file` to clients that accept zstd.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn precompressed_zstd(mut self, on: bool) -> Self {
        self.config().precompressed[Encoding::Zstd as usize] = on;
        self
    }

    /// Serves `file.gz` in place of `file` to clients that accept gzip.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn precompressed_gzip(mut self, on: bool) -> Self {
        self.config().precompressed[Encoding::Gzip as usize] = on;
        self
    }

    /// The most bytes read from disk at once for a streamed file; also the most one response
    /// holds in memory. Values below 1 are raised to 1.
    ///
    /// Defaults to 256 KiB.
    #[must_use]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.config().chunk_size = bytes.max(1);
        self
    }

    /// How the strong `ETag` is made.
    ///
    /// Defaults to [`ETagSource::Metadata`].
    #[must_use]
    pub fn etag_source(mut self, source: ETagSource) -> Self {
        self.config().etag_source = source;
        self
    }

    /// Whether to send `Last-Modified` (and evaluate dates against it). Turn it off where
    /// modification times are meaningless.
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn last_modified(mut self, on: bool) -> Self {
        self.config().last_modified = on;
        self
    }

    /// The `Cache-Control` of files whose name carries no content hash (`None` sends none).
    ///
    /// Defaults to `no-cache`: caches keep the file but revalidate it on each use, which the
    /// validators make cheap, so a new deployment is seen at once.
    #[must_use]
    pub fn cache_control(mut self, value: Option<HeaderValue>) -> Self {
        self.config().cache_control = value;
        self
    }

    /// Whether files with a content hash in their name (`app.3f2a9c1b.css`: a dot-separated
    /// segment of at least eight hexadecimal digits between the stem and the extension) get
    /// `Cache-Control: public, max-age=31536000, immutable`.
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn immutable_hashed_names(mut self, on: bool) -> Self {
        self.config().immutable_hashed_names = on;
        self
    }

    /// Sends `Content-Disposition: attachment` with the file's name (RFC 6266, with an RFC 8187
    /// `filename*` for names that are not plain ASCII), so browsers download it.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn attachment(mut self, on: bool) -> Self {
        self.config().attachment = on;
        self
    }

    /// Answers with an offload header instead of the bytes; see [`Offload`]. Paths are checked
    /// exactly as when serving, but conditionals and ranges are left to the front server.
    ///
    /// Defaults to `None` (the bytes are sent).
    #[must_use]
    pub fn offload(mut self, offload: Option<Offload>) -> Self {
        self.config().offload = offload;
        self
    }

    /// Files of at most this many bytes (and their precompressed siblings) are kept in memory.
    /// `0` turns the hot-file cache off.
    ///
    /// Defaults to 1 MiB: a hot file that size, and any range of it, is answered from memory
    /// without a system call, within [`cache_capacity`](Self::cache_capacity) in all. Larger
    /// files stream from disk, one chunk at a time.
    #[must_use]
    pub fn cache_max_file_size(mut self, bytes: u64) -> Self {
        self.config().cache_max_file_size = bytes;
        self
    }

    /// The most bytes the hot-file cache holds, all files together. `0` turns it off.
    ///
    /// Defaults to 32 MiB.
    #[must_use]
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.config().cache_capacity = bytes;
        self
    }

    /// How long a cached file is served without looking at the disk; after that, the next
    /// request for it compares the files' size, modification time and inode with the cached
    /// ones (one `stat` per representation) and reloads on any change. A precompressed sibling
    /// created after a file was cached is noticed when the file itself changes.
    ///
    /// Defaults to 1 second.
    #[must_use]
    pub fn cache_revalidate_interval(mut self, interval: Duration) -> Self {
        self.config().cache_revalidate = interval;
        self
    }

    /// The most ranges one request may name; see [`RangeLimits::max_ranges`].
    ///
    /// Defaults to 16.
    #[must_use]
    pub fn max_ranges(mut self, n: usize) -> Self {
        let limits = self.config().limits.max_ranges(n);
        self.config().limits = limits;
        self
    }

    /// The clock for date preconditions and for the hot-file cache's revalidation interval.
    ///
    /// Defaults to [`SystemClock`](crate::clock::SystemClock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config().clock = SharedClock::new(clock);
        self
    }

    /// The service that answers requests no file matches (and paths refused as hidden or
    /// climbing out of the root), with the original request: a custom 404 page, or a
    /// single-page app's `index.html` through [`ServeFile`](super::ServeFile).
    ///
    /// Defaults to a plain-text `404 Not Found`.
    #[must_use]
    pub fn not_found_service<G>(self, service: G) -> ServeDir<G> {
        ServeDir {
            config: self.config,
            cache: self.cache,
            hashes: self.hashes,
            not_found: service,
        }
    }

    fn safe_path<B>(&self, req: &Request<B>) -> Result<SafePath, Refused> {
        if let Some(name) = &self.config.single_file {
            return Ok(SafePath::file(name));
        }
        path::parse(req.uri().path(), self.config.allow_hidden)
    }
}

/// The default not-found service: `404` with a one-line plain-text reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultNotFound;

impl<B> Service<Request<B>> for DefaultNotFound {
    type Response = Response<FileBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<FileBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        std::future::ready(Ok(respond::text(
            StatusCode::NOT_FOUND,
            HeaderMap::new(),
            "not found\n",
        )))
    }
}

impl<ReqB, F, FB> Service<Request<ReqB>> for ServeDir<F>
where
    ReqB: Send + 'static,
    F: Service<Request<ReqB>, Response = Response<FB>, Error = Infallible> + Clone + Send + 'static,
    F::Future: Send + 'static,
    FB: Body<Data = Bytes> + Send + 'static,
    FB::Error: Into<BoxError>,
{
    type Response = Response<FileBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqB>) -> ResponseFuture {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return ResponseFuture::ready(respond::method_not_allowed());
        }
        let path = match self.safe_path(&req) {
            Ok(path) => Some(path),
            Err(Refused::Malformed(reason)) => {
                return ResponseFuture::ready(respond::text(
                    StatusCode::BAD_REQUEST,
                    HeaderMap::new(),
                    reason,
                ));
            }
            Err(Refused::Hidden) => None,
        };
        let now = self.config.clock.now();

        // The hot path: a cached file checked recently costs no system call (and no clone).
        if let Some(path) = &path
            && self.config.offload.is_none()
            && let Some(entry) = self.cache.get(&path.key)
            && entry.is_fresh(now, self.config.cache_revalidate)
        {
            return ResponseFuture::ready(respond_cached(&self.config, &req, &entry));
        }

        let config = self.config.clone();

        let cache = self.cache.clone();
        let hashes = self.hashes.clone();
        let not_found = self.not_found.clone();
        ResponseFuture::boxed(async move {
            let Some(path) = path else {
                return Ok(not_found_response(not_found, req).await);
            };
            let accepted = Accepted::from_headers(req.headers());
            // Everything that touches the disk, and the response itself, is done in one trip to
            // the blocking pool; the request goes along and comes back for the not-found service.
            let job = tokio::task::spawn_blocking(move || {
                let caches = Caches {
                    hot: &cache,
                    hashes: &hashes,
                };
                let loaded = match caches.hot.get(&path.key) {
                    Some(entry) => match open::revalidate(&entry, now) {
                        Some(entry) => Loaded::Cached(entry),
                        None => {
                            caches.hot.remove(&path.key);
                            open::load(&config, &caches, &path, accepted, now)
                        }
                    },
                    None => open::load(&config, &caches, &path, accepted, now),
                };
                let response = match loaded {
                    Loaded::Cached(entry) => Some(respond_cached(&config, &req, &entry)),
                    Loaded::File {
                        file,
                        rep,
                        name,
                        content_type,
                    } => {
                        let request = respond::Request {
                            method: req.method(),
                            headers: req.headers(),
                        };
                        let mut response = respond::respond(
                            &config,
                            &request,
                            &rep,
                            &name,
                            &content_type,
                            Source::File(file),
                            None,
                        );
                        response.body_mut().prefetch();
                        Some(response)
                    }
                    Loaded::Redirect(location) => Some(respond::redirect(location)),
                    Loaded::Offload {
                        relative,
                        absolute,
                        name,
                    } => Some(offload(&config, &relative, &absolute, &name)),
                    Loaded::NotFound => None,
                };
                (response, req)
            });
            Ok(match job.await {
                Ok((Some(response), _)) => response,
                Ok((None, req)) => not_found_response(not_found, req).await,
                // The blocking job panicked (a bug): nothing was served, and nothing can be.
                Err(_) => respond::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    HeaderMap::new(),
                    "internal error while opening the file\n",
                ),
            })
        })
    }
}

async fn not_found_response<F, ReqB, FB>(mut not_found: F, req: Request<ReqB>) -> Response<FileBody>
where
    F: Service<Request<ReqB>, Response = Response<FB>, Error = Infallible>,
    FB: Body<Data = Bytes> + Send + 'static,
    FB::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| not_found.poll_ready(cx))
        .await
        .unwrap_or_else(|never| match never {});
    let response = not_found
        .call(req)
        .await
        .unwrap_or_else(|never| match never {});
    let (parts, body) = response.into_parts();
    let body = body.map_err(|e| io::Error::other(e.into())).boxed_unsync();
    Response::from_parts(parts, FileBody::other(body))
}

fn respond_cached<B>(
    config: &Config,
    req: &Request<B>,
    entry: &super::cache::Entry,
) -> Response<FileBody> {
    let encoding = if entry.reps.len() > 1 {
        Accepted::from_headers(req.headers()).choose(
            entry
                .reps
                .iter()
                .filter_map(|r| r.rep.encoding)
                .filter(|&e| config.precompressed(e)),
        )
    } else {
        None
    };
    let cached = entry.rep(encoding).unwrap_or_else(|| &entry.reps[0]);
    respond::respond(
        config,
        &respond::Request {
            method: req.method(),
            headers: req.headers(),
        },
        &cached.rep,
        &entry.name,
        &entry.content_type,
        Source::Bytes(cached.bytes.clone()),
        Some(&cached.heads),
    )
}

fn offload(config: &Config, relative: &str, absolute: &Path, name: &str) -> Response<FileBody> {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, super::meta::content_type(name));
    let value = match &config.offload {
        Some(Offload::XAccelRedirect { prefix }) => {
            let encoded: Vec<String> = relative.split('/').map(path::percent_encode).collect();
            HeaderValue::try_from(format!("{prefix}{}", encoded.join("/")))
                .map(|v| (header::HeaderName::from_static("x-accel-redirect"), v))
        }
        Some(Offload::XSendfile) | None => {
            HeaderValue::try_from(absolute.to_string_lossy().into_owned())
                .map(|v| (header::HeaderName::from_static("x-sendfile"), v))
        }
    };
    match value {
        Ok((name, value)) => {
            h.insert(name, value);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            let mut res = Response::new(FileBody::empty());
            *res.headers_mut() = h;
            res
        }
        // A path a header cannot carry (a control character in a file name): not servable.
        Err(_) => respond::text(StatusCode::NOT_FOUND, HeaderMap::new(), "not found\n"),
    }
}
