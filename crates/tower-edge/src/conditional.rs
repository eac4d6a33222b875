//! What the validator layers remember of a request while the inner service runs.

use std::time::SystemTime;

use http::{HeaderMap, Method, Request};

use crate::http::preconditions::{
    CONDITIONAL_HEADERS, Precondition, Validators, evaluate, evaluate_dates,
};

/// The method and the conditional headers of a `GET` or `HEAD` request.
#[derive(Debug)]
pub(crate) struct RequestConditions {
    method: Method,
    // Only the four precondition headers; empty (and unallocated) for most requests.
    headers: HeaderMap,
}

impl RequestConditions {
    /// `None` for methods other than GET and HEAD, which the validator layers leave alone.
    pub(crate) fn capture<B>(req: &Request<B>) -> Option<Self> {
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let mut headers = HeaderMap::new();
        for name in CONDITIONAL_HEADERS {
            for value in req.headers().get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        Some(Self {
            method: method.clone(),
            headers,
        })
    }

    // Used by ETagLayer only (as is `evaluate`).
    #[cfg_attr(not(feature = "etag"), allow(dead_code))]
    pub(crate) fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    pub(crate) fn has_conditions(&self) -> bool {
        !self.headers.is_empty()
    }

    #[cfg_attr(not(feature = "etag"), allow(dead_code))]
    pub(crate) fn evaluate(&self, validators: &Validators) -> Precondition {
        if !self.has_conditions() {
            return Precondition::Proceed;
        }
        evaluate(&self.method, &self.headers, validators)
    }

    // Used by LastModifiedLayer only.
    #[cfg_attr(not(feature = "last-modified"), allow(dead_code))]
    pub(crate) fn evaluate_dates(&self, last_modified: Option<SystemTime>) -> Precondition {
        if !self.has_conditions() {
            return Precondition::Proceed;
        }
        evaluate_dates(&self.method, &self.headers, last_modified)
    }
}
