//! The `304` and `412` the validator layers give in place of the inner response, as
//! [`EdgeBody`] responses; their fields are those of [`crate::http::responses`].

use http::{Response, response::Parts};
use http_body::Body;

use crate::{body::EdgeBody, http::responses::Short, observe::Counts};

/// Turns the parts of a 2xx response into its `304`.
pub(crate) fn not_modified<B: Body>(parts: Parts, counts: &Counts) -> Response<EdgeBody<B>> {
    short(parts, Short::NotModified, counts)
}

/// Turns the parts of a 2xx response into a `412` that still tells the client the current
/// validators.
pub(crate) fn precondition_failed<B: Body>(parts: Parts, counts: &Counts) -> Response<EdgeBody<B>> {
    short(parts, Short::PreconditionFailed, counts)
}

fn short<B: Body>(mut parts: Parts, answer: Short, counts: &Counts) -> Response<EdgeBody<B>> {
    let (status, body) = answer.head(&mut parts.headers, counts);
    parts.status = status;
    let body = if status == http::StatusCode::NOT_MODIFIED {
        EdgeBody::no_content()
    } else if body.is_empty() {
        EdgeBody::empty()
    } else {
        EdgeBody::buffered([body].into(), None)
    };
    Response::from_parts(parts, body)
}
