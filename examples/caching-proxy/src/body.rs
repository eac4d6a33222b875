//! The upstream's response body with an idle timeout between frames.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep};

pin_project! {
    /// Passes `B` through, and ends it with an error when no frame arrives for `timeout`.
    ///
    /// Unlike a plain timeout wrapper it reports the inner body's size hint and end: the cache
    /// above knows from them that it has the whole body, and the server sends `Content-Length`.
    pub(crate) struct IdleTimeoutBody<B> {
        timeout: Duration,
        #[pin]
        sleep: Sleep,
        #[pin]
        body: B,
    }
}

impl<B> IdleTimeoutBody<B> {
    pub(crate) fn new(timeout: Duration, body: B) -> Self {
        Self {
            timeout,
            sleep: sleep(timeout),
            body,
        }
    }
}

/// The upstream sent no frame within the read timeout.
#[derive(Debug)]
pub(crate) struct IdleTimeout;

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream body timed out")
    }
}

impl std::error::Error for IdleTimeout {}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            this.sleep.as_mut().reset(Instant::now() + *this.timeout);
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.sleep.poll(cx));
        Poll::Ready(Some(Err(Box::new(IdleTimeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn keeps_the_inner_size_hint() {
        let body = IdleTimeoutBody::new(Duration::from_secs(1), Full::new(&b"abc"[..]));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
    }

    #[tokio::test(start_paused = true)]
    async fn fails_when_the_inner_body_stalls() {
        let stalled = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<bytes::Bytes>, std::convert::Infallible>,
        >());
        let body = IdleTimeoutBody::new(Duration::from_secs(30), stalled);
        let error = body.collect().await.expect_err("an error after 30 s");
        assert!(error.is::<IdleTimeout>());
    }
}
