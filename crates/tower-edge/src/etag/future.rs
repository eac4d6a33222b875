use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http::{HeaderMap, Response, StatusCode, header, response::Parts};
use http_body::Body;
use pin_project_lite::pin_project;

use super::{
    ETagBody,
    hash::{Hasher, MAX_ENCODED},
    layer::Config,
    memo::{Digest, Digests},
};
use crate::{
    collected::Collected,
    conditional::RequestConditions,
    http::{
        date::parse_http_date,
        etag::EntityTag,
        preconditions::{Precondition, Validators},
    },
    response::{not_modified, precondition_failed},
};

pin_project! {
    /// Response future of [`ETag`](super::ETag).
    pub struct ResponseFuture<F, B: Body> {
        #[pin]
        state: State<F, B>,
        request: Option<RequestConditions>,
        config: std::sync::Arc<Config>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B: Body> {
        Inner { #[pin] future: F },
        // Reading the body to hash it. The body is boxed so it can be handed on, unread part
        // and all, if it turns out longer than the bound.
        // Hashed once whole, not chunk by chunk: a body that arrives as one shared chunk may
        // have a remembered digest (see `memo`).
        Hashing {
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
        request: Option<RequestConditions>,
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
    type Output = Result<Response<ETagBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let (mut parts, body) = ready!(future.poll(cx))?.into_parts();
                    drop_invalid_etag(&mut parts.headers);
                    let Some(request) = this.request.as_ref() else {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(Response::from_parts(
                            parts,
                            ETagBody::stream(body),
                        )));
                    };
                    if !should_hash(&parts, &body, request, this.config.max_body_size) {
                        this.state.set(State::Done);
                        let validators = (parts.status.is_success() && request.has_conditions())
                            .then(|| Validators::from_headers(&parts.headers));
                        return Poll::Ready(Ok(answer(
                            parts,
                            ETagBody::stream(body),
                            request,
                            validators,
                            &this.config.counts,
                        )));
                    }
                    this.state.set(State::Hashing {
                        parts: Some(parts),
                        body: Some(Box::pin(body)),
                        collected: Collected::default(),
                    });
                }
                StateProj::Hashing {
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
                                        // read and stream the rest, without a tag.
                                        let rest = body.take().expect("body present");
                                        let body = ETagBody::prefixed(collected.take(), rest);
                                        break Response::from_parts(take(parts), body);
                                    }
                                }
                                Err(frame) => {
                                    // Trailers end the body.
                                    let trailers = frame.into_trailers().ok();
                                    break finish(
                                        take(parts),
                                        collected.take(),
                                        trailers,
                                        this.request.as_ref(),
                                        this.config,
                                    );
                                }
                            },
                            Some(Err(error)) => {
                                break Response::from_parts(take(parts), ETagBody::failed(error));
                            }
                            None => {
                                break finish(
                                    take(parts),
                                    collected.take(),
                                    None,
                                    this.request.as_ref(),
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

/// Removes a handler's `ETag` that is not one quoted entity-tag (`abc` for `"abc"`, or several
/// lines): clients and caches would ignore it or, worse, compare it. The layer then tags the
/// response itself, as if the handler had sent none. Logged once per process, with the value.
fn drop_invalid_etag(headers: &mut http::HeaderMap) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut lines = headers.get_all(header::ETAG).iter();
    let (Some(first), second) = (lines.next(), lines.next()) else {
        return;
    };
    if second.is_none() && crate::http::etag::EntityTag::try_from(first).is_ok() {
        return;
    }
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            etag = ?first,
            "a handler sent an ETag that is not one quoted entity-tag (RFC 9110 §8.8.3): \
             ETagLayer replaces it with its own (logged once)"
        );
    }
    headers.remove(header::ETAG);
}

fn should_hash<B: Body>(parts: &Parts, body: &B, request: &RequestConditions, max: u64) -> bool {
    // 206 and the bodiless 2xx have no representation to hash.
    if !matches!(
        parts.status,
        StatusCode::OK | StatusCode::NON_AUTHORITATIVE_INFORMATION
    ) || parts.headers.contains_key(header::ETAG)
    {
        return false;
    }
    let hint = body.size_hint();
    if hint.upper().is_none_or(|upper| upper > max) {
        return false;
    }
    // A HEAD handler may send no body with a Content-Length for the GET's; hashing nothing
    // would give a tag that the GET does not have.
    if request.is_head() && hint.upper() == Some(0) {
        return parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
    }
    true
}

fn finish<B: Body>(
    mut parts: Parts,
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    request: Option<&RequestConditions>,
    config: &Config,
) -> Response<ETagBody<B>> {
    let digest = digest_of(&chunks, config);
    let tag = EntityTag::from_valid(config.weak, digest.as_bytes());
    tracing::trace!(etag = %tag, "computed etag");
    parts.headers.insert(header::ETAG, tag.to_header_value());
    let body = ETagBody::buffered(chunks, trailers);
    match request {
        Some(request) if request.has_conditions() => {
            let mut validators = Validators::new().with_etag(tag);
            if let Some(lm) = parts
                .headers
                .get(header::LAST_MODIFIED)
                .and_then(|v| parse_http_date(v.as_bytes()))
            {
                validators = validators.with_last_modified(lm);
            }
            answer(parts, body, request, Some(validators), &config.counts)
        }
        _ => Response::from_parts(parts, body),
    }
}

/// The digest of a body read whole: remembered, for a body in shared memory seen before (see
/// `memo`), or computed.
fn digest_of(chunks: &VecDeque<Bytes>, config: &Config) -> Digest {
    let remembered = match (&config.digests, chunks.len()) {
        (Some(digests), 1) if Digests::eligible(&chunks[0]) => Some((digests, &chunks[0])),
        _ => None,
    };
    if let Some((digests, body)) = remembered
        && let Some(digest) = digests.get(body, config.algorithm)
    {
        return digest;
    }
    let mut hasher = Hasher::new(config.algorithm);
    for chunk in chunks {
        hasher.update(chunk);
    }
    let mut digest = Digest {
        encoded: [0u8; MAX_ENCODED],
        len: 0,
    };
    digest.len = hasher.finish(&mut digest.encoded);
    if let Some((digests, body)) = remembered {
        digests.remember(body, config.algorithm, digest);
    }
    digest
}

/// Answers 304 or 412 when the preconditions say so, else sends the response as it is.
fn answer<B: Body>(
    parts: Parts,
    body: ETagBody<B>,
    request: &RequestConditions,
    validators: Option<Validators>,
    counts: &crate::observe::Counts,
) -> Response<ETagBody<B>> {
    let Some(validators) = validators else {
        return Response::from_parts(parts, body);
    };
    match request.evaluate(&validators) {
        Precondition::Proceed => Response::from_parts(parts, body),
        Precondition::NotModified => not_modified(parts, counts),
        Precondition::PreconditionFailed => precondition_failed(parts, counts),
    }
}

fn take<T>(slot: &mut Option<T>) -> T {
    slot.take().expect("ResponseFuture polled after completion")
}
