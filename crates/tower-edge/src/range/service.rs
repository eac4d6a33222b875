use std::task::{Context, Poll};

use bytes::Buf;
use http::{HeaderMap, Method, Request, Response, header};
use http_body::Body;
use tower::Service;

use super::{RangeBody, ResponseFuture, layer::Config};

/// Middleware that serves byte ranges; see [`RangeLayer`](super::RangeLayer).
#[derive(Clone, Debug)]
pub struct Range<S> {
    pub(super) inner: S,
    // Shared: a service is cloned for every request by routers such as axum's, and its
    // future holds the config too.
    pub(super) config: std::sync::Arc<Config>,
}

impl<S> Range<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the middleware, returning the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Range<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    ResB::Data: Buf,
{
    type Response = Response<RangeBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let request = RangeRequest::capture(&req);
        ResponseFuture::new(
            self.inner.call(req),
            request,
            std::sync::Arc::clone(&self.config),
        )
    }
}

/// What the layer remembers of a `GET` or `HEAD` request while the inner service runs.
#[derive(Debug)]
pub(super) struct RangeRequest {
    pub(super) method: Method,
    // Only Range and If-Range; empty (and unallocated) for most requests.
    pub(super) headers: HeaderMap,
}

impl RangeRequest {
    fn capture<B>(req: &Request<B>) -> Option<Self> {
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let mut headers = HeaderMap::new();
        if method == Method::GET {
            for name in [header::RANGE, header::IF_RANGE] {
                for value in req.headers().get_all(&name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        Some(Self {
            method: method.clone(),
            headers,
        })
    }

    pub(super) fn wants_range(&self) -> bool {
        self.headers.contains_key(header::RANGE)
    }
}
