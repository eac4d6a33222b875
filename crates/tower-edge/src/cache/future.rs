use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;

use super::body::CacheBody;

type Inner<B, E> = Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, E>> + Send>>;

/// Response future of [`ResponseCache`](super::ResponseCache).
///
/// Ready at once for a fresh hit on a store that answers without waiting (in memory); boxed
/// otherwise: a lookup is real asynchronous I/O for remote stores, and the miss path holds
/// several awaits (store, inner service, store again).
pub struct ResponseFuture<B, E> {
    state: State<B, E>,
}

enum State<B, E> {
    Ready(Option<Response<CacheBody<B>>>),
    Pending(Inner<B, E>),
}

// The response is moved out, never pinned in place; the boxed future pins itself.
impl<B, E> Unpin for ResponseFuture<B, E> {}

impl<B, E> ResponseFuture<B, E> {
    pub(super) fn new(inner: Inner<B, E>) -> Self {
        Self {
            state: State::Pending(inner),
        }
    }

    pub(super) fn ready(res: Response<CacheBody<B>>) -> Self {
        Self {
            state: State::Ready(Some(res)),
        }
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<CacheBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Ready(res) => Poll::Ready(Ok(res
                .take()
                .expect("ResponseFuture polled after completion"))),
            State::Pending(inner) => inner.as_mut().poll(cx),
        }
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
