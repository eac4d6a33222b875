//! The short answers layers give in place of the inner response: 304 and 412.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header, response::Parts};
use http_body::Body;

use crate::{
    body::EdgeBody,
    http::preconditions::{PRECONDITION_FAILED_REASON, retain_not_modified_headers},
};

/// Turns the parts of a 2xx response into a `304 Not Modified` with the RFC 9110 §15.4.5 header
/// set and no body.
pub(crate) fn not_modified<B: Body>(mut parts: Parts) -> Response<EdgeBody<B>> {
    crate::observe::validator("304");
    parts.status = StatusCode::NOT_MODIFIED;
    retain_not_modified_headers(&mut parts.headers);
    Response::from_parts(parts, EdgeBody::empty())
}

/// Turns the parts of a 2xx response into a `412 Precondition Failed` that still tells the client
/// the current validators, with a one-line reason.
pub(crate) fn precondition_failed<B: Body>(mut parts: Parts) -> Response<EdgeBody<B>> {
    crate::observe::validator("412");
    parts.status = StatusCode::PRECONDITION_FAILED;
    let etag = parts.headers.remove(header::ETAG);
    let last_modified = parts.headers.remove(header::LAST_MODIFIED);
    parts.headers.clear();
    if let Some(etag) = etag {
        parts.headers.insert(header::ETAG, etag);
    }
    if let Some(lm) = last_modified {
        parts.headers.insert(header::LAST_MODIFIED, lm);
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // A 412 must not be mistaken for the representation by a cache.
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let body = Bytes::from_static(PRECONDITION_FAILED_REASON.as_bytes());
    Response::from_parts(parts, EdgeBody::buffered([body].into(), None))
}
