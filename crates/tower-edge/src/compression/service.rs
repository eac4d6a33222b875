use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Method, Request, Response};
use http_body::Body;
use tower::Service;

use super::{CompressionBody, ResponseFuture, layer::Config, predicate::Predicate};
use crate::http::accept_encoding::{self, Coding, NotAcceptable};

/// The service made by [`CompressionLayer`](super::CompressionLayer).
#[derive(Clone, Debug)]
pub struct Compression<S, P> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
    // Shared, as the config is: a router clones the service for every request, and each
    // response future needs the predicate (a list of media types, say) too.
    pub(super) predicate: Arc<P>,
}

impl<S, P> Compression<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What the layer knows of a request when the response arrives.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Choice {
    /// HEAD and CONNECT: never touched.
    Skip,
    /// The negotiated coding (identity included).
    Coding(Coding),
    /// Nothing acceptable, identity excluded.
    NotAcceptable,
}

impl<S, P, ReqB, B> Service<Request<ReqB>> for Compression<S, P>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
    B: Body,
    B::Data: bytes::Buf,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    P: Predicate,
{
    type Response = Response<CompressionBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, B, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let choice = if req.method() == Method::HEAD || req.method() == Method::CONNECT {
            Choice::Skip
        } else {
            match accept_encoding::negotiate(req.headers(), &self.config.offered) {
                Ok(coding) => Choice::Coding(coding),
                Err(NotAcceptable) => Choice::NotAcceptable,
            }
        };
        ResponseFuture::new(
            self.inner.call(req),
            choice,
            Arc::clone(&self.config),
            Arc::clone(&self.predicate),
        )
    }
}
