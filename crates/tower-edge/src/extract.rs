//! axum extractors: evaluate preconditions in a handler, before doing the expensive work.
//!
//! A handler that knows a cheap validator of its resource (a version number, an `updated_at`
//! column) should not build the whole response only for a middleware to hash it and throw it
//! away on a match. [`Preconditions`] lets it answer `304` or `412` first:
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use axum::{Router, body::Body, response::IntoResponse, routing::get};
//! use http::{Request, StatusCode, header};
//! use tower::ServiceExt;
//! use tower_edge::{extract::{Preconditions, Unmet}, http::{etag::EntityTag, preconditions::Validators}};
//!
//! async fn report(pre: Preconditions) -> Result<impl IntoResponse, Unmet> {
//!     let version = 42; // e.g. `SELECT version FROM reports WHERE id = $1`
//!     let current = Validators::new().with_etag(EntityTag::strong(&format!("r{version}")).unwrap());
//!     pre.check(&current)?; // 304 or 412 here, before the expensive part
//!     Ok((current, "the expensive report"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new().route("/report", get(report));
//! let req = Request::get("/report").header(header::IF_NONE_MATCH, "\"r42\"").body(Body::empty());
//! let res = app.oneshot(req.unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
//! assert_eq!(res.headers()[header::ETAG], "\"r42\"");
//! # }
//! ```
//!
//! This is also how handlers of unsafe methods (`PUT`, `DELETE`, …) honour `If-Match`: evaluate
//! against the current version, and only then write. For the check and the write to be atomic,
//! do both inside one transaction (or a compare-and-swap on the version).

use std::convert::Infallible;

use axum_core::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use http::{HeaderMap, Method, StatusCode, request::Parts};

use crate::http::responses::Short;

use crate::http::preconditions::{CONDITIONAL_HEADERS, Precondition, Validators, evaluate};

/// The method and conditional headers of a request, for [`Preconditions::check`].
///
/// Extracting it never fails and copies only the four precondition headers.
#[derive(Clone, Debug)]
pub struct Preconditions {
    method: Method,
    headers: HeaderMap,
}

impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Preconditions {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut headers = HeaderMap::new();
        for name in CONDITIONAL_HEADERS {
            for value in parts.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        Ok(Self {
            method: parts.method.clone(),
            headers,
        })
    }
}

impl Preconditions {
    /// Whether the request carries any precondition at all.
    pub fn is_conditional(&self) -> bool {
        !self.headers.is_empty()
    }

    /// Evaluates the preconditions against the current validators (RFC 9110 §13.2.2).
    pub fn evaluate(&self, current: &Validators) -> Precondition {
        if !self.is_conditional() {
            return Precondition::Proceed;
        }
        evaluate(&self.method, &self.headers, current)
    }

    /// `Ok(())` when the request should proceed, otherwise the `304` or `412` to send.
    pub fn check(&self, current: &Validators) -> Result<(), Unmet> {
        let status = match self.evaluate(current) {
            Precondition::Proceed => return Ok(()),
            Precondition::NotModified => StatusCode::NOT_MODIFIED,
            Precondition::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        };
        Err(Unmet {
            status,
            validators: current.clone(),
        })
    }
}

/// A precondition that did not hold: a response of `304 Not Modified` or `412 Precondition
/// Failed` carrying the current `ETag` and `Last-Modified`.
#[derive(Clone, Debug)]
pub struct Unmet {
    status: StatusCode,
    validators: Validators,
}

impl Unmet {
    /// `304 Not Modified` or `412 Precondition Failed`.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            StatusCode::NOT_MODIFIED => f.write_str("not modified"),
            _ => f.write_str("precondition failed"),
        }
    }
}

impl std::error::Error for Unmet {}

impl IntoResponse for Unmet {
    fn into_response(self) -> Response {
        let answer = if self.status == StatusCode::NOT_MODIFIED {
            Short::NotModified
        } else {
            Short::PreconditionFailed
        };
        let mut headers = HeaderMap::new();
        self.validators.write_headers(&mut headers);
        // No layer holds this answer's counter handles: registered for each one, as the
        // facade does.
        let (status, body) = answer.head(&mut headers, &crate::observe::Counts::new());
        let body = if status == StatusCode::NOT_MODIFIED {
            axum_core::body::Body::new(NoContent)
        } else {
            axum_core::body::Body::from(body)
        };
        let mut res = Response::new(body);
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res
    }
}

/// The empty body of a `304`: ended at once, its length unstated, so that axum's router does not
/// write `Content-Length: 0` on it, which HTTP/2 would send (RFC 9110 §8.6 allows only the
/// 200's length there).
struct NoContent;

impl http_body::Body for NoContent {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        std::task::Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }
}

/// Writes `ETag` and `Last-Modified`, so a handler can return `(validators, body)`.
impl IntoResponseParts for Validators {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.write_headers(res.headers_mut());
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::etag::EntityTag;
    use axum_core::extract::FromRequestParts;
    use http::Request;
    use http::header;

    async fn extract(req: Request<()>) -> Preconditions {
        let (mut parts, ()) = req.into_parts();
        Preconditions::from_request_parts(&mut parts, &())
            .await
            .unwrap()
    }

    fn v1() -> Validators {
        Validators::new().with_etag(EntityTag::strong("v1").unwrap())
    }

    #[tokio::test]
    async fn proceeds_without_conditions() {
        let pre = extract(Request::get("/").body(()).unwrap()).await;
        assert!(!pre.is_conditional());
        assert!(pre.check(&v1()).is_ok());
    }

    #[tokio::test]
    async fn answers_304_with_validators_for_matching_get() {
        let req = Request::get("/").header(header::IF_NONE_MATCH, "\"v1\"");
        let pre = extract(req.body(()).unwrap()).await;
        let unmet = pre.check(&v1()).unwrap_err();
        let res = unmet.into_response();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.headers()[header::ETAG], "\"v1\"");
    }

    #[tokio::test]
    async fn answers_412_for_stale_if_match_on_put() {
        let req = Request::put("/").header(header::IF_MATCH, "\"v0\"");
        let pre = extract(req.body(()).unwrap()).await;
        let unmet = pre.check(&v1()).unwrap_err();
        assert_eq!(unmet.status(), StatusCode::PRECONDITION_FAILED);
        let res = unmet.into_response();
        assert_eq!(res.headers()[header::ETAG], "\"v1\"");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn create_only_if_absent() {
        let req = Request::put("/").header(header::IF_NONE_MATCH, "*");
        let pre = extract(req.body(()).unwrap()).await;
        assert!(pre.check(&Validators::missing()).is_ok());
        assert_eq!(
            pre.check(&v1()).unwrap_err().status(),
            StatusCode::PRECONDITION_FAILED
        );
    }
}
