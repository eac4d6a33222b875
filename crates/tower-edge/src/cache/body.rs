//! [`CacheBody`]: a stored body, or the inner body passed through (and possibly copied into the
//! cache as it streams).

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};

use crate::collected::Collected;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// What to do once the body has streamed by: store it whole (`Some`), or learn that it cannot
/// be kept (`None`: longer than the bound, or with trailers). Dropped unused when the body
/// fails or the client goes away before its end.
pub(crate) type OnComplete = Box<dyn FnOnce(Option<Bytes>) + Send>;

pin_project! {
    /// Body of [`ResponseCache`](super::ResponseCache) responses.
    pub struct CacheBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Full { data: Option<Bytes> },
        // The empty body of a 304: no length stated (see `no_content`).
        NoContent,
        Chunks { chunks: std::collections::VecDeque<Bytes> },
        Stream { #[pin] body: B },
        // Boxed: a response holding this body is moved whole through every layer outside.
        Tee { #[pin] body: B, tee: Option<Box<Tee>> },
    }
}

/// Copies of the chunks seen so far, up to `max` bytes. Dropping it (on overflow, trailers,
/// an error, or the client going away) drops `on_complete` unused.
struct Tee {
    collected: Collected,
    max: u64,
    // The length the body announced, if exact: a server that sent Content-Length may stop
    // polling once that many bytes went out, without waiting for the body's end.
    expected: Option<u64>,
    on_complete: Option<OnComplete>,
}

impl Tee {
    fn complete(mut self) {
        if let Some(done) = self.on_complete.take() {
            done(Some(std::mem::take(&mut self.collected).into_bytes()));
        }
    }

    /// The body goes on to the client, but will not be kept.
    fn give_up(mut self) {
        if let Some(done) = self.on_complete.take() {
            done(None);
        }
    }
}

/// An empty body: what a layer outside builds for an answer of its own, such as tower-http's
/// `TimeoutLayer` for its `408`.
impl<B> Default for CacheBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B> CacheBody<B> {
    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    pub(crate) fn chunks(chunks: std::collections::VecDeque<Bytes>) -> Self {
        Self {
            kind: Kind::Chunks { chunks },
        }
    }

    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }

    /// The empty body of a `304`, its length unstated (see `EdgeBody::no_content`).
    pub(crate) fn no_content() -> Self {
        Self {
            kind: Kind::NoContent,
        }
    }

    pub(crate) fn stream(body: B) -> Self {
        Self {
            kind: Kind::Stream { body },
        }
    }

    /// Streams `body` and calls `on_complete` with all of it at its end, unless it turns out
    /// longer than `max` bytes, ends in trailers or an error, or is dropped before its end. Holds
    /// at most `max` bytes of copies (shared `Bytes`, so usually no copy at all).
    pub(crate) fn tee(body: B, max: u64, on_complete: OnComplete) -> Self
    where
        B: Body,
    {
        let expected = body.size_hint().exact();
        Self {
            kind: Kind::Tee {
                body,
                tee: Some(Box::new(Tee {
                    collected: Collected::default(),
                    max,
                    expected,
                    on_complete: Some(on_complete),
                })),
            },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::NoContent => Poll::Ready(None),
            KindProj::Chunks { chunks } => {
                Poll::Ready(chunks.pop_front().map(|d| Ok(Frame::data(d))))
            }
            KindProj::Stream { body } => {
                let frame = ready!(body.poll_frame(cx));
                Poll::Ready(
                    frame.map(|f| f.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))),
                )
            }
            KindProj::Tee { mut body, tee } => {
                let frame = ready!(body.as_mut().poll_frame(cx));
                match frame {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => {
                            let Some(t) = tee.as_mut() else {
                                let bytes = data.copy_to_bytes(data.remaining());
                                return Poll::Ready(Some(Ok(Frame::data(bytes))));
                            };
                            let bytes = t.collected.push(data);
                            let len = t.collected.len();
                            if len > t.max {
                                // Too long to store: stop copying, and let waiters go.
                                if let Some(t) = tee.take() {
                                    t.give_up();
                                }
                            } else if (t.expected == Some(len) || body.is_end_stream())
                                && let Some(t) = tee.take()
                            {
                                t.complete();
                            }
                            Poll::Ready(Some(Ok(Frame::data(bytes))))
                        }
                        Err(frame) => {
                            // Trailers are not stored; such a response is passed on only.
                            if let Some(t) = tee.take() {
                                t.give_up();
                            }
                            Poll::Ready(Some(Ok(frame.map_data(|_: B::Data| Bytes::new()))))
                        }
                    },
                    Some(Err(e)) => {
                        *tee = None;
                        Poll::Ready(Some(Err(e)))
                    }
                    None => {
                        if let Some(t) = tee.take() {
                            if t.expected.is_none_or(|n| n == t.collected.len()) {
                                t.complete();
                            } else {
                                // Shorter than announced: not the representation to keep.
                                t.give_up();
                            }
                        }
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::NoContent => true,
            Kind::Chunks { chunks } => chunks.is_empty(),
            Kind::Stream { body } => body.is_end_stream(),
            // Reported as not ended until the tee has seen the whole body.
            Kind::Tee { tee, body } => tee.is_none() && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::NoContent => SizeHint::new(),
            Kind::Chunks { chunks } => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
            Kind::Stream { body } | Kind::Tee { body, .. } => body.size_hint(),
        }
    }
}

impl<B> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "Full",
            Kind::NoContent => "NoContent",
            Kind::Chunks { .. } => "Chunks",
            Kind::Stream { .. } => "Stream",
            Kind::Tee { .. } => "Tee",
        };
        f.debug_struct("CacheBody").field("kind", &kind).finish()
    }
}
