use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header, response::Parts};
use http_body::Body;
use pin_project_lite::pin_project;

use super::{
    CompressionBody,
    encoder::Encoder,
    layer::Config,
    predicate::{Predicate, essence},
    service::Choice,
};
use crate::collected::Collected;
use crate::http::{accept_encoding::Coding, cache_control::CacheControl, etag::EntityTag};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// Response future of [`Compression`](super::Compression).
    pub struct ResponseFuture<F, B, P> {
        #[pin]
        state: State<F, B>,
        choice: Choice,
        config: Arc<Config>,
        predicate: Arc<P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F },
        // A body of unknown length, read until `min_size` bytes (or its end) decide.
        Sniffing {
            parts: Option<Parts>,
            body: Option<Pin<Box<B>>>,
            collected: Collected,
            coding: Coding,
        },
        Done,
    }
}

impl<F, B, P> ResponseFuture<F, B, P> {
    pub(super) fn new(future: F, choice: Choice, config: Arc<Config>, predicate: Arc<P>) -> Self {
        Self {
            state: State::Inner { future },
            choice,
            config,
            predicate,
        }
    }
}

/// What to do with a response head.
enum Decision {
    Pass,
    /// Sent as it is, but the choice depended on `Accept-Encoding`.
    PassVary,
    NotModified,
    Reject,
    Compress {
        coding: Coding,
        flush_each: bool,
    },
    Sniff(Coding),
}

fn is_streaming_type(headers: &HeaderMap) -> bool {
    essence(headers).is_some_and(|e| e == "text/event-stream" || e == "application/x-ndjson")
}

fn decide<B: Body, P: Predicate>(
    choice: Choice,
    parts: &Parts,
    body: &B,
    config: &Config,
    predicate: &P,
) -> Decision {
    let status = parts.status;
    let headers = &parts.headers;
    if matches!(choice, Choice::Skip)
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
        || headers.contains_key(header::CONTENT_RANGE)
        || headers.contains_key(header::UPGRADE)
    {
        return Decision::Pass;
    }
    if status == StatusCode::NOT_MODIFIED {
        return Decision::NotModified;
    }
    // RFC 9110 §7.7 / RFC 9111 §5.2.2.6: no-transform forbids changing the content.
    if CacheControl::parse(headers.get_all(header::CACHE_CONTROL)).has("no-transform") {
        return Decision::Pass;
    }
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Decision::Pass;
    }
    if !predicate.should_compress(parts) {
        return Decision::Pass;
    }
    let hint = body.size_hint();
    if hint.upper().is_some_and(|upper| upper < config.min_size) {
        return Decision::Pass;
    }
    match choice {
        Choice::Skip => Decision::Pass,
        Choice::NotAcceptable if config.reject_unacceptable => Decision::Reject,
        Choice::NotAcceptable | Choice::Coding(Coding::Identity) => Decision::PassVary,
        Choice::Coding(coding) => {
            let streaming = is_streaming_type(headers);
            if hint.exact().is_some() || streaming || hint.lower() >= config.min_size {
                Decision::Compress {
                    coding,
                    flush_each: streaming || hint.exact().is_none(),
                }
            } else {
                Decision::Sniff(coding)
            }
        }
    }
}

/// Adds `Accept-Encoding` to `Vary` unless it (or `*`) is already there.
pub(crate) fn add_vary(headers: &mut HeaderMap) {
    crate::http::vary::add(headers, header::ACCEPT_ENCODING);
}

/// RFC 9110 §8.8.1: the compressed bytes are not the identity bytes, so a strong tag for the
/// latter becomes a weak one. A weak tag still answers `If-None-Match`.
pub(crate) fn weaken_etag(headers: &mut HeaderMap) {
    let Some(value) = headers.get(header::ETAG) else {
        return;
    };
    if let Ok(tag) = EntityTag::try_from(value)
        && !tag.is_weak()
    {
        headers.insert(header::ETAG, tag.to_weak().to_header_value());
    }
}

fn compressed_head(parts: &mut Parts, coding: Coding, config: &Config) {
    crate::observe::record("edge.encoding", coding.as_str());
    config.counts.encodings.count(coding.as_str());
    let headers = &mut parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    // Ranges of the identity bytes mean nothing against the compressed ones.
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.as_str()),
    );
    weaken_etag(headers);
    add_vary(headers);
}

const NOT_ACCEPTABLE_REASON: &str = "not acceptable: the request excludes identity and accepts \
                                     none of the content codings this server offers\n";

fn not_acceptable<B>(mut parts: Parts, config: &Config) -> Response<CompressionBody<B>> {
    parts.status = StatusCode::NOT_ACCEPTABLE;
    parts.headers.clear();
    add_vary(&mut parts.headers);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let offered: Vec<&str> = config.offered.iter().map(|c| c.as_str()).collect();
    let reason = format!("{NOT_ACCEPTABLE_REASON}offered: {}\n", offered.join(", "));
    Response::from_parts(parts, CompressionBody::full(Bytes::from(reason)))
}

impl<F, B, P, E> Future for ResponseFuture<F, B, P>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Data: Buf,
    B::Error: Into<BoxError>,
    P: Predicate,
{
    type Output = Result<Response<CompressionBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let (mut parts, body) = ready!(future.poll(cx))?.into_parts();
                    let decision =
                        decide(*this.choice, &parts, &body, this.config, &**this.predicate);
                    let response = match decision {
                        Decision::Pass => Response::from_parts(parts, CompressionBody::pass(body)),
                        Decision::PassVary => {
                            add_vary(&mut parts.headers);
                            Response::from_parts(parts, CompressionBody::pass(body))
                        }
                        Decision::NotModified => {
                            // The client holds the variant this request negotiates: if that is
                            // compressed, its tag was weakened. Either way the 200 varied on
                            // the header (identity answers of compressible types say so too),
                            // and the 304 must say the same (RFC 9110 §15.4.5). A 304 carries
                            // no type to check the filter against, so it says Vary for every
                            // negotiated request: stating one name too many costs a downstream
                            // cache a split, while one too few lets it mix encodings.
                            if let Choice::Coding(coding) = *this.choice
                                && coding != Coding::Identity
                            {
                                weaken_etag(&mut parts.headers);
                            }
                            add_vary(&mut parts.headers);
                            Response::from_parts(parts, CompressionBody::pass(body))
                        }
                        Decision::Reject => not_acceptable(parts, this.config),
                        Decision::Compress { coding, flush_each } => {
                            match Encoder::new(coding, this.config.levels, body.size_hint().exact())
                            {
                                Some(encoder) => {
                                    compressed_head(&mut parts, coding, this.config);
                                    Response::from_parts(
                                        parts,
                                        CompressionBody::encode(body, encoder, flush_each),
                                    )
                                }
                                None => Response::from_parts(parts, CompressionBody::pass(body)),
                            }
                        }
                        Decision::Sniff(coding) => {
                            this.state.set(State::Sniffing {
                                parts: Some(parts),
                                body: Some(Box::pin(body)),
                                collected: Collected::default(),
                                coding,
                            });
                            continue;
                        }
                    };
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Sniffing {
                    parts,
                    body,
                    collected,
                    coding,
                } => {
                    let min = this.config.min_size;
                    // Only what the body has ready is sniffed: once it would wait, the head
                    // goes out and the stream is compressed as it comes, so a page sent in
                    // small pieces reaches the client when its handler sends them.
                    let mut stalled = false;
                    let (ended, trailers, error) = loop {
                        if collected.len() >= min {
                            break (false, None, None);
                        }
                        let Some(inner) = body.as_mut() else {
                            break (true, None, None);
                        };
                        let Poll::Ready(next) = inner.as_mut().poll_frame(cx) else {
                            stalled = true;
                            break (false, None, None);
                        };
                        match next {
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => {
                                    collected.push(data);
                                }
                                Err(frame) => break (true, frame.into_trailers().ok(), None),
                            },
                            Some(Err(error)) => break (true, None, Some(error.into())),
                            None => break (true, None, None),
                        }
                    };
                    let mut head = parts.take().expect("sniffing state holds the head");
                    let rest = if ended { None } else { body.take() };
                    let len = collected.len();
                    let chunks = collected.take();
                    let compress = (len >= min || stalled) && error.is_none();
                    let response = match compress
                        .then(|| Encoder::new(*coding, this.config.levels, None))
                        .flatten()
                    {
                        Some(encoder) => {
                            compressed_head(&mut head, *coding, this.config);
                            // Past the sniff it is a stream of unknown length: flush per frame.
                            let body = CompressionBody::resumed(
                                chunks,
                                rest,
                                trailers,
                                None,
                                Some(encoder),
                                true,
                            );
                            Response::from_parts(head, body)
                        }
                        None => {
                            if ended && error.is_none() {
                                // The whole body is here: its length is known now.
                                head.headers
                                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                            }
                            let body = CompressionBody::resumed(
                                chunks, rest, trailers, error, None, false,
                            );
                            Response::from_parts(head, body)
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
