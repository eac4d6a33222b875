use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http::{HeaderValue, Response, StatusCode, header, response::Parts};
use http_body::Body;
use pin_project_lite::pin_project;

use super::{RangeBody, layer::Config, service::RangeRequest};
use crate::collected::Collected;
use crate::http::responses::Short;
use crate::http::{
    etag::EntityTag,
    preconditions::Validators,
    range::{ByteRange, Multipart, Resolution, evaluate},
};
use crate::observe::Counts;

pin_project! {
    /// Response future of [`Range`](super::Range).
    pub struct ResponseFuture<F, B: Body> {
        #[pin]
        state: State<F, B>,
        request: Option<RangeRequest>,
        config: std::sync::Arc<Config>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B: Body> {
        Inner { #[pin] future: F },
        // Reading a body of known length to cut ranges from it. Boxed so that, should it turn out
        // longer than its size hint said, the unread rest can be handed on as it is.
        Buffering {
            parts: Option<Parts>,
            body: Option<Pin<Box<B>>>,
            collected: Collected,
        },
        Done,
    }
}

impl<F, B: Body> ResponseFuture<F, B> {
    pub(super) fn new(
        future: F,
        request: Option<RangeRequest>,
        config: std::sync::Arc<Config>,
    ) -> Self {
        Self {
            state: State::Inner { future },
            request,
            config,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Data: Buf,
{
    type Output = Result<Response<RangeBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let (mut parts, body) = ready!(future.poll(cx))?.into_parts();
                    let Some(request) = this.request.as_ref() else {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(pass(parts, body)));
                    };
                    let Some(len) = rangeable_len(&parts, &body, this.config.max_body_size) else {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(pass(parts, body)));
                    };
                    // RFC 9110 §14.3: say that ranges are served for this resource.
                    if !parts.headers.contains_key(header::ACCEPT_RANGES) {
                        parts
                            .headers
                            .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                    }
                    // Decide on the announced length first, so a request whose Range is to be
                    // ignored costs no buffering.
                    if !request.wants_range()
                        || resolve(request, &parts, len, this.config) == Resolution::Full
                    {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(pass(parts, body)));
                    }
                    this.state.set(State::Buffering {
                        parts: Some(parts),
                        body: Some(Box::pin(body)),
                        collected: Collected::default(),
                    });
                }
                StateProj::Buffering {
                    parts,
                    body,
                    collected,
                } => {
                    let response = loop {
                        let frame = ready!(
                            body.as_mut()
                                .expect("polled after completion")
                                .as_mut()
                                .poll_frame(cx)
                        );
                        match frame {
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => {
                                    collected.push(data);
                                    if collected.len() > this.config.max_body_size {
                                        // The size hint understated the length: send what was
                                        // read and stream the rest, whole and untouched.
                                        let rest = body.take().expect("body present");
                                        let mut parts = take(parts);
                                        parts.headers.remove(header::ACCEPT_RANGES);
                                        let body = RangeBody::prefixed(collected.take(), rest);
                                        break Response::from_parts(parts, body);
                                    }
                                }
                                // Trailers end the body; a partial response does not carry them.
                                Err(_trailers) => {
                                    break finish(
                                        take(parts),
                                        std::mem::take(collected),
                                        this.request,
                                        this.config,
                                    );
                                }
                            },
                            Some(Err(error)) => {
                                break Response::from_parts(take(parts), RangeBody::failed(error));
                            }
                            None => {
                                break finish(
                                    take(parts),
                                    std::mem::take(collected),
                                    this.request,
                                    this.config,
                                );
                            }
                        }
                    };
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

fn pass<B: Body>(parts: Parts, body: B) -> Response<RangeBody<B>> {
    Response::from_parts(parts, RangeBody::stream(body))
}

/// The length of a response ranges can be served from, or `None` to leave it alone.
fn rangeable_len<B: Body>(parts: &Parts, body: &B, max: u64) -> Option<u64> {
    if !serves_ranges(parts.status, &parts.headers) {
        return None;
    }
    let hint = body.size_hint();
    let len = hint.exact()?;
    (len <= max).then_some(len)
}

/// Whether a response with this status and these headers may be answered in ranges; shared
/// with the response cache.
pub(crate) fn serves_ranges(status: StatusCode, headers: &http::HeaderMap) -> bool {
    // RFC 9110 §14.2: ranges apply to a 200's representation; other statuses are left alone.
    if status != StatusCode::OK {
        return false;
    }
    // The handler may have said it serves no ranges (`Accept-Ranges: none`), or something this
    // layer does not understand.
    if let Some(accept) = headers.get(header::ACCEPT_RANGES)
        && !accept.as_bytes().eq_ignore_ascii_case(b"bytes")
    {
        return false;
    }
    // A content-coded response is its own representation (§8.4), and a range of it is a range
    // of the coded bytes. That is only sound when those bytes are the same on every request,
    // which a strong ETag promises (§8.8.1); an encoder's output with a weak or no tag is left
    // alone, so a resumed download can never splice two different encodings.
    if let Some(coding) = headers.get(header::CONTENT_ENCODING) {
        let identity = coding.as_bytes().eq_ignore_ascii_case(b"identity");
        let strong = headers
            .get(header::ETAG)
            .and_then(|v| EntityTag::try_from(v).ok())
            .is_some_and(|t| !t.is_weak());
        if !identity && !strong {
            return false;
        }
    }
    true
}

fn resolve(request: &RangeRequest, parts: &Parts, len: u64, config: &Config) -> Resolution {
    let validators = Validators::from_headers(&parts.headers);
    evaluate(
        &request.method,
        &request.headers,
        len,
        &validators,
        config.clock.now(),
        &config.limits,
    )
}

fn finish<B: Body>(
    mut parts: Parts,
    mut collected: Collected,
    request: &Option<RangeRequest>,
    config: &Config,
) -> Response<RangeBody<B>> {
    let len = collected.len();
    let request = request.as_ref().expect("a range request");
    // Resolve again on the bytes actually read: a size hint is a promise, not a proof.
    let resolution = resolve(request, &parts, len, config);
    match resolution {
        Resolution::Full => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            // An empty representation (whose Range §14.2 lets us ignore) needs no buffer.
            let body = if len == 0 {
                RangeBody::empty()
            } else {
                RangeBody::buffered(collected.take(), None)
            };
            Response::from_parts(parts, body)
        }
        Resolution::Unsatisfiable => unsatisfiable(parts, len, &config.counts),
        Resolution::Partial(ranges) => {
            let whole = collected.into_bytes();
            partial(parts, &whole, &ranges, &config.counts)
        }
    }
}

/// The `206` for `ranges` (disjoint, within `whole`, in the order to send them).
fn partial<B: Body>(
    parts: Parts,
    whole: &Bytes,
    ranges: &[ByteRange],
    counts: &Counts,
) -> Response<RangeBody<B>> {
    let (parts, body) = partial_parts(parts, whole, ranges, counts);
    Response::from_parts(parts, RangeBody::buffered(body, None))
}

/// The head and body chunks of the `206` for `ranges` (disjoint, within `whole`, in order); shared
/// with the response cache, which answers ranges from stored bodies.
pub(crate) fn partial_parts(
    parts: Parts,
    whole: &Bytes,
    ranges: &[ByteRange],
    counts: &Counts,
) -> (Parts, VecDeque<Bytes>) {
    // In bounds: resolution clamps every range to the representation.
    let slice = |r: &ByteRange| whole.slice(r.first() as usize..=r.last() as usize);
    partial_parts_with(parts, whole.len() as u64, ranges, slice, counts)
}

/// [`partial_parts`] for a representation of `complete` bytes whose ranges `slice` reads: the
/// response cache's stored parts hold only some of them.
pub(crate) fn partial_parts_with(
    mut parts: Parts,
    complete: u64,
    ranges: &[ByteRange],
    slice: impl Fn(&ByteRange) -> Bytes,
    counts: &Counts,
) -> (Parts, VecDeque<Bytes>) {
    // Counted and recorded on the request span here, for this layer and the cache alike.
    let what = if ranges.len() == 1 {
        "206"
    } else {
        "206 multipart"
    };
    counts.range(what);
    parts.status = StatusCode::PARTIAL_CONTENT;
    let body: VecDeque<Bytes> = if let [range] = ranges {
        // §14.4: a single part carries its Content-Range in the header block.
        parts
            .headers
            .insert(header::CONTENT_RANGE, range.content_range(complete));
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(range.len()));
        [slice(range)].into()
    } else {
        // §14.6: several parts as multipart/byteranges, each with the representation's
        // Content-Type and its own Content-Range.
        let multipart = Multipart::new(parts.headers.get(header::CONTENT_TYPE).cloned(), complete);
        parts
            .headers
            .insert(header::CONTENT_TYPE, multipart.content_type());
        parts.headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(multipart.body_len(ranges)),
        );
        let mut body = VecDeque::with_capacity(ranges.len() * 2 + 1);
        for range in ranges {
            body.push_back(multipart.part_header(*range));
            body.push_back(slice(range));
        }
        body.push_back(multipart.closing());
        body
    };
    (parts, body)
}

/// The `416` for a representation of `complete` bytes, keeping its validators.
fn unsatisfiable<B: Body>(parts: Parts, complete: u64, counts: &Counts) -> Response<RangeBody<B>> {
    let (parts, body) = unsatisfiable_parts(parts, complete, counts);
    Response::from_parts(parts, RangeBody::buffered([body].into(), None))
}

/// The head and body of the `416` for a representation of `complete` bytes; shared with the
/// response cache.
/// Counted and recorded on the request span here, for this layer and the cache alike.
pub(crate) fn unsatisfiable_parts(
    mut parts: Parts,
    complete: u64,
    counts: &Counts,
) -> (Parts, Bytes) {
    counts.range("416");
    let (status, body) = Short::RangeNotSatisfiable { complete }.head(&mut parts.headers, counts);
    parts.status = status;
    (parts, body)
}

fn take<T>(slot: &mut Option<T>) -> T {
    slot.take().expect("ResponseFuture polled after completion")
}
