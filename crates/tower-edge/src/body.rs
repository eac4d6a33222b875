//! The response body the layers of this crate produce.

use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// A response body that is either the inner service's body passed through, bytes a layer
    /// holds in memory (possibly followed by the rest of the inner body), or empty.
    ///
    /// Every frame's data is yielded as [`Bytes`]; for a body whose data already is `Bytes`
    /// this costs nothing.
    pub struct EdgeBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        Stream { #[pin] inner: B },
        Buffered {
            chunks: VecDeque<Bytes>,
            // Boxed: this body sits inside responses that are moved whole, and trailers are rare.
            trailers: Option<Box<HeaderMap>>,
            // Boxed: the rest of a body a layer started reading, handed on without copying.
            rest: Option<Pin<Box<B>>>,
        },
        Empty,
        // The empty body of a 304: no length stated (see `no_content`).
        NoContent,
        // The inner body failed while a layer was reading it; the error is handed on once.
        Failed { error: Option<B::Error> },
    }
}

/// An empty body: what a layer outside builds for an answer of its own, such as tower-http's
/// `TimeoutLayer` for its `408`.
impl<B: Body> Default for EdgeBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B: Body> EdgeBody<B> {
    pub(crate) fn stream(inner: B) -> Self {
        Self {
            kind: Kind::Stream { inner },
        }
    }

    pub(crate) fn buffered(chunks: VecDeque<Bytes>, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Buffered {
                chunks,
                trailers: trailers.map(Box::new),
                rest: None,
            },
        }
    }

    /// The chunks already read, then whatever `rest` still yields. (ETagLayer's.)
    #[cfg_attr(not(feature = "etag"), allow(dead_code))]
    pub(crate) fn prefixed(chunks: VecDeque<Bytes>, rest: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Buffered {
                chunks,
                trailers: None,
                rest: Some(rest),
            },
        }
    }

    pub(crate) fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// The empty body of a `304`: ended at once, with its length unstated. A `304` must not
    /// carry `Content-Length` unless it is the length of the `200` (RFC 9110 §8.6), and axum's
    /// router writes `Content-Length: 0` for every body whose exact length it knows, which
    /// HTTP/2 then sends.
    #[cfg_attr(
        not(any(feature = "etag", feature = "last-modified")),
        allow(dead_code)
    )]
    pub(crate) fn no_content() -> Self {
        Self {
            kind: Kind::NoContent,
        }
    }

    #[cfg_attr(not(feature = "etag"), allow(dead_code))]
    pub(crate) fn failed(error: B::Error) -> Self {
        Self {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<B> Body for EdgeBody<B>
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
            KindProj::Stream { inner } => map_frame(inner.poll_frame(cx)),
            KindProj::Buffered {
                chunks,
                trailers,
                rest,
            } => {
                if let Some(chunk) = chunks.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if let Some(rest) = rest {
                    return map_frame(rest.as_mut().poll_frame(cx));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
            KindProj::Empty | KindProj::NoContent => Poll::Ready(None),
            KindProj::Failed { error } => Poll::Ready(error.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stream { inner } => inner.is_end_stream(),
            Kind::Buffered {
                chunks,
                trailers,
                rest,
            } => {
                chunks.is_empty()
                    && trailers.is_none()
                    && rest.as_ref().is_none_or(Body::is_end_stream)
            }
            Kind::Empty | Kind::NoContent => true,
            Kind::Failed { error } => error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stream { inner } => inner.size_hint(),
            Kind::Buffered { chunks, rest, .. } => {
                let held: u64 = chunks.iter().map(|c| c.len() as u64).sum();
                match rest {
                    None => SizeHint::with_exact(held),
                    Some(rest) => {
                        let r = rest.size_hint();
                        let mut hint = SizeHint::new();
                        hint.set_lower(held + r.lower());
                        if let Some(upper) = r.upper() {
                            hint.set_upper(held + upper);
                        }
                        hint
                    }
                }
            }
            Kind::Empty => SizeHint::with_exact(0),
            Kind::NoContent => SizeHint::new(),
            Kind::Failed { .. } => SizeHint::default(),
        }
    }
}

type PolledFrame<D, E> = Poll<Option<Result<Frame<D>, E>>>;

fn map_frame<D: Buf, E>(polled: PolledFrame<D, E>) -> PolledFrame<Bytes, E> {
    polled.map(|frame| {
        frame.map(|frame| frame.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))))
    })
}

impl<B: Body> fmt::Debug for EdgeBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Stream { .. } => "Stream",
            Kind::Buffered { .. } => "Buffered",
            Kind::Empty => "Empty",
            Kind::NoContent => "NoContent",
            Kind::Failed { .. } => "Failed",
        };
        f.debug_struct("EdgeBody").field("kind", &kind).finish()
    }
}
