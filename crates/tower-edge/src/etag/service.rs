use std::task::{Context, Poll};

use bytes::Buf;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::{ETagBody, ResponseFuture, layer::Config};
use crate::conditional::RequestConditions;

/// Middleware that adds `ETag`s and answers conditional requests; see [`ETagLayer`](super::ETagLayer).
#[derive(Clone, Debug)]
pub struct ETag<S> {
    pub(super) inner: S,
    // Shared: a service is cloned for every request by routers such as axum's, and its
    // future holds the config too.
    pub(super) config: std::sync::Arc<Config>,
}

impl<S> ETag<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the middleware, returning the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ETag<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    ResB::Data: Buf,
{
    type Response = Response<ETagBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let request = RequestConditions::capture(&req);
        ResponseFuture::new(
            self.inner.call(req),
            request,
            std::sync::Arc::clone(&self.config),
        )
    }
}
