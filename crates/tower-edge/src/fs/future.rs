use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;

use super::FileBody;

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response<FileBody>, Infallible>> + Send>>;

pin_project! {
    /// Response future of [`ServeDir`](super::ServeDir) and [`ServeFile`](super::ServeFile).
    ///
    /// A request answered from the hot-file cache (or refused outright) is ready at once and
    /// allocates no future; one that touches the disk is boxed, since it waits for tokio's
    /// blocking pool.
    pub struct ResponseFuture {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        Ready { response: Option<Response<FileBody>> },
        Boxed { #[pin] future: BoxedResponse },
    }
}

impl ResponseFuture {
    pub(super) fn ready(response: Response<FileBody>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    pub(super) fn boxed(
        future: impl Future<Output = Result<Response<FileBody>, Infallible>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<FileBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Boxed { future } => future.poll(cx),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Ready { .. } => "Ready",
            Kind::Boxed { .. } => "Boxed",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
