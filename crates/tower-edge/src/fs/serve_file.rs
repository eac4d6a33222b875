use std::{
    convert::Infallible,
    path::PathBuf,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower::Service;

use super::{FileBody, ResponseFuture, ServeDir, serve_dir::DefaultNotFound};

/// Serves one file, whatever the request path; see the [module docs](crate::fs).
///
/// It is a [`ServeDir`] rooted at the file's directory that always names the file, so every
/// option of `ServeDir` applies (precompressed siblings, caching, attachment…), and symlinks
/// are followed wherever they lead: the file was named by the application, not by a client.
#[derive(Clone, Debug)]
pub struct ServeFile<F = DefaultNotFound> {
    inner: ServeDir<F>,
}

impl ServeFile {
    /// Serves the file at `path`. If it does not exist when a request comes, the request is
    /// answered `404`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut inner = ServeDir::new(dir).follow_symlinks_outside_root(true);
        inner.config().single_file = Some(name);
        Self { inner }
    }
}

impl<F> ServeFile<F> {
    /// Applies `f` to the underlying [`ServeDir`], to set any of its options:
    /// `ServeFile::new("app.js").configure(|d| d.precompressed_br(true))`.
    ///
    /// Defaults to leaving `ServeDir`'s defaults.
    #[must_use]
    pub fn configure<G>(self, f: impl FnOnce(ServeDir<F>) -> ServeDir<G>) -> ServeFile<G> {
        let mut inner = f(self.inner);
        // The one file stays the one file, whatever `f` did.
        let name = inner.config.single_file.clone();
        inner.config().single_file = name;
        ServeFile { inner }
    }
}

impl<ReqB, F> Service<Request<ReqB>> for ServeFile<F>
where
    ServeDir<F>: Service<
            Request<ReqB>,
            Response = Response<FileBody>,
            Error = Infallible,
            Future = ResponseFuture,
        >,
{
    type Response = Response<FileBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> ResponseFuture {
        self.inner.call(req)
    }
}
