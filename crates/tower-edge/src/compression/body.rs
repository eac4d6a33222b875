//! [`CompressionBody`]: the inner body, compressed frame by frame or passed through.

use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::encoder::Encoder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// Body of [`Compression`](super::Compression) responses.
    pub struct CompressionBody<B> {
        #[pin]
        inner: Inner<B>,
        // Bytes read before the response head was decided (the size sniff), sent first.
        prefix: VecDeque<Bytes>,
        // Boxed, as are the trailers: this body sits inside every response of a stack, and is
        // moved whole wherever the response is.
        encoder: Option<Box<Encoder>>,
        // Flush after every frame: the body streams and each frame should reach the client.
        flush_each: bool,
        encoder_finished: bool,
        trailers: Option<Box<HeaderMap>>,
        error: Option<BoxError>,
        done: bool,
        // For the request's span and the byte counters, when compressing.
        bytes: Option<Box<ByteCount>>,
    }
}

/// Bytes in and out of the encoder, reported when the compressed stream ends.
struct ByteCount {
    span: tracing::Span,
    input: u64,
    output: u64,
}

impl ByteCount {
    fn report(&self) {
        self.span.record("edge.bytes_in", self.input);
        self.span.record("edge.bytes_out", self.output);
        crate::observe::add("tower_edge_compression_bytes_in_total", self.input);
        crate::observe::add("tower_edge_compression_bytes_out_total", self.output);
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Direct { #[pin] body: B },
        Boxed { body: Pin<Box<B>> },
        Ended,
    }
}

/// An empty body: what a layer outside builds for an answer of its own, such as tower-http's
/// `TimeoutLayer` for its `408`.
impl<B> Default for CompressionBody<B> {
    fn default() -> Self {
        Self::build(Inner::Ended, VecDeque::new(), None, false)
    }
}

impl<B> CompressionBody<B> {
    pub(crate) fn pass(body: B) -> Self {
        Self::build(Inner::Direct { body }, VecDeque::new(), None, false)
    }

    pub(crate) fn encode(body: B, encoder: Encoder, flush_each: bool) -> Self {
        Self::build(
            Inner::Direct { body },
            VecDeque::new(),
            Some(encoder),
            flush_each,
        )
    }

    /// `prefix` then the rest of `body` (which may have ended: then `rest` is `None`), with
    /// trailers or an error met while reading the prefix.
    pub(crate) fn resumed(
        prefix: VecDeque<Bytes>,
        rest: Option<Pin<Box<B>>>,
        trailers: Option<HeaderMap>,
        error: Option<BoxError>,
        encoder: Option<Encoder>,
        flush_each: bool,
    ) -> Self {
        let inner = match rest {
            Some(body) => Inner::Boxed { body },
            None => Inner::Ended,
        };
        let mut body = Self::build(inner, prefix, encoder, flush_each);
        body.trailers = trailers.map(Box::new);
        body.error = error;
        body
    }

    pub(crate) fn full(data: Bytes) -> Self {
        let mut prefix = VecDeque::new();
        prefix.push_back(data);
        Self::build(Inner::Ended, prefix, None, false)
    }

    fn build(
        inner: Inner<B>,
        prefix: VecDeque<Bytes>,
        encoder: Option<Encoder>,
        flush_each: bool,
    ) -> Self {
        let bytes = encoder.as_ref().map(|_| {
            Box::new(ByteCount {
                span: tracing::Span::current(),
                input: 0,
                output: 0,
            })
        });
        Self {
            bytes,
            inner,
            prefix,
            encoder: encoder.map(Box::new),
            flush_each,
            encoder_finished: false,
            trailers: None,
            error: None,
            done: false,
        }
    }
}

fn io_error(e: std::io::Error) -> BoxError {
    Box::new(e)
}

impl<B> Body for CompressionBody<B>
where
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            // 1. What was read ahead.
            if let Some(chunk) = this.prefix.pop_front() {
                let Some(encoder) = this.encoder.as_mut() else {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                };
                encoder.write(&chunk).map_err(io_error)?;
                if *this.flush_each && this.prefix.is_empty() {
                    encoder.flush().map_err(io_error)?;
                }
                let out = encoder.take();
                if let Some(b) = this.bytes.as_mut() {
                    b.input += chunk.len() as u64;
                    b.output += out.len() as u64;
                }
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                continue;
            }
            // 2. The inner body.
            let polled = match this.inner.as_mut().project() {
                InnerProj::Direct { body } => Some(ready!(body.poll_frame(cx))),
                InnerProj::Boxed { body } => Some(ready!(body.as_mut().poll_frame(cx))),
                InnerProj::Ended => None,
            };
            match polled {
                Some(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => {
                        let bytes = data.copy_to_bytes(data.remaining());
                        let Some(encoder) = this.encoder.as_mut() else {
                            return Poll::Ready(Some(Ok(Frame::data(bytes))));
                        };
                        encoder.write(&bytes).map_err(io_error)?;
                        if *this.flush_each {
                            encoder.flush().map_err(io_error)?;
                        }
                        let out = encoder.take();
                        if let Some(b) = this.bytes.as_mut() {
                            b.input += bytes.len() as u64;
                            b.output += out.len() as u64;
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body; they go out after the compressed stream ends.
                        *this.trailers = frame.into_trailers().ok().map(Box::new);
                        this.inner.set(Inner::Ended);
                    }
                },
                Some(Some(Err(error))) => {
                    this.inner.set(Inner::Ended);
                    *this.done = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
                Some(None) => this.inner.set(Inner::Ended),
                None => {
                    // 3. The end: the error met while reading ahead, the end of the compressed
                    // stream, then the trailers.
                    if let Some(error) = this.error.take() {
                        *this.done = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                    if let Some(encoder) = this.encoder.as_mut()
                        && !*this.encoder_finished
                    {
                        *this.encoder_finished = true;
                        encoder.finish().map_err(io_error)?;
                        let out = encoder.take();
                        if let Some(b) = this.bytes.as_mut() {
                            b.output += out.len() as u64;
                            b.report();
                        }
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    *this.done = true;
                    return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(*t))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        // Passing through with nothing held back: as ended as the inner body.
        if self.encoder.is_none()
            && self.prefix.is_empty()
            && self.trailers.is_none()
            && self.error.is_none()
        {
            return match &self.inner {
                Inner::Direct { body } => body.is_end_stream(),
                Inner::Boxed { body } => body.is_end_stream(),
                Inner::Ended => true,
            };
        }
        false
    }

    fn size_hint(&self) -> SizeHint {
        if self.encoder.is_some() {
            return SizeHint::default();
        }
        let prefix: u64 = self.prefix.iter().map(|c| c.len() as u64).sum();
        let rest = match &self.inner {
            Inner::Direct { body } => body.size_hint(),
            Inner::Boxed { body } => body.size_hint(),
            Inner::Ended => SizeHint::with_exact(0),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + prefix);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + prefix);
        }
        hint
    }
}

impl<B> fmt::Debug for CompressionBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompressionBody")
            .field("compressing", &self.encoder.is_some())
            .field("flush_each", &self.flush_each)
            .finish_non_exhaustive()
    }
}
