use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Buf;
use http::{Response, header};
use http_body::Body;
use pin_project_lite::pin_project;

use super::{LastModifiedBody, layer::Config};
use crate::{
    conditional::RequestConditions,
    http::{
        date::{http_date_value, parse_http_date, truncate_to_seconds},
        preconditions::Precondition,
    },
    response::{not_modified, precondition_failed},
};

pin_project! {
    /// Response future of [`LastModified`](super::LastModified).
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        request: Option<RequestConditions>,
        config: std::sync::Arc<Config>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(
        future: F,
        request: Option<RequestConditions>,
        config: std::sync::Arc<Config>,
    ) -> Self {
        Self {
            future,
            request,
            config,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Data: Buf,
{
    type Output = Result<Response<LastModifiedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (mut parts, body) = ready!(this.future.poll(cx))?.into_parts();
        let body = LastModifiedBody::stream(body);
        let Some(request) = this.request.as_ref() else {
            return Poll::Ready(Ok(Response::from_parts(parts, body)));
        };
        if !parts.status.is_success() {
            return Poll::Ready(Ok(Response::from_parts(parts, body)));
        }
        let mut now = None;
        let mut last_modified = None;
        if let Some(source) = &this.config.source
            && !parts.headers.contains_key(header::LAST_MODIFIED)
            && let Some(time) = source(&parts)
        {
            let current = *now.get_or_insert_with(|| this.config.clock.now());
            // RFC 9110 §8.8.2.1: never a Last-Modified later than the message's Date.
            let time = truncate_to_seconds(time.min(current));
            parts
                .headers
                .insert(header::LAST_MODIFIED, http_date_value(time));
            last_modified = Some(time);
        }
        if !request.has_conditions() {
            return Poll::Ready(Ok(Response::from_parts(parts, body)));
        }
        let last_modified = last_modified.or_else(|| {
            parts
                .headers
                .get(header::LAST_MODIFIED)
                .and_then(|v| parse_http_date(v.as_bytes()))
        });
        let response = match request.evaluate_dates(last_modified) {
            Precondition::Proceed => Response::from_parts(parts, body),
            Precondition::NotModified => not_modified(parts, &this.config.counts),
            Precondition::PreconditionFailed => precondition_failed(parts, &this.config.counts),
        };
        Poll::Ready(Ok(response))
    }
}
