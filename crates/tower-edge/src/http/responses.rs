//! The short answers given in place of a representation: `304 Not Modified`, `412 Precondition
//! Failed` and `416 Range Not Satisfiable` (RFC 9110 §15.4.5, §15.5.13, §15.5.17). Every layer,
//! the file server, the extractors and the response cache build them here, so they carry the
//! same fields wherever they come from.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use super::{
    cache_status::CACHE_STATUS,
    preconditions::{PRECONDITION_FAILED_REASON, retain_not_modified_headers},
    range::unsatisfied_content_range,
};

/// The body of every `416`.
const UNSATISFIABLE_REASON: &str =
    "range not satisfiable: no range in the Range header starts inside the representation\n";

/// A short answer in place of a representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Each feature builds some of them; with every feature on, all of them are built.
#[allow(dead_code)]
pub(crate) enum Short {
    /// `304`: the client's copy is current (RFC 9110 §15.4.5).
    NotModified,
    /// `412`: a precondition did not hold (RFC 9110 §15.5.13).
    PreconditionFailed,
    /// `416` for a representation of `complete` bytes (RFC 9110 §15.5.17).
    RangeNotSatisfiable { complete: u64 },
}

impl Short {
    /// Rewrites `headers`, those of the representation, into this answer's; returns its status
    /// and body. A `304` or `412` is counted in `counts`; a `416` is counted by its caller,
    /// with the `206`s.
    ///
    /// - `304` keeps the fields of RFC 9110 §15.4.5 (all lines of each), and a cache's `Age`
    ///   and `Cache-Status`: it describes the stored response it validated.
    /// - `412` and `416` keep the validators (`ETag`, `Last-Modified`) and `Cache-Status`; a
    ///   `416` also `Accept-Ranges`, `Vary` and `Content-Range: bytes */complete`. Both have a
    ///   one-line `text/plain` reason and `Cache-Control: no-store`, so that no cache mistakes
    ///   them for the representation.
    #[allow(dead_code)] // unused when no layer feature is on
    pub(crate) fn head(
        self,
        headers: &mut HeaderMap,
        counts: &crate::observe::Counts,
    ) -> (StatusCode, Bytes) {
        let cache_status = CACHE_STATUS.clone();
        match self {
            Self::NotModified => {
                counts.validator("304");
                let age = headers.remove(header::AGE);
                let status = take_all(headers, &cache_status);
                retain_not_modified_headers(headers);
                if let Some(age) = age {
                    headers.insert(header::AGE, age);
                }
                put_back(headers, &cache_status, status);
                (StatusCode::NOT_MODIFIED, Bytes::new())
            }
            Self::PreconditionFailed => {
                counts.validator("412");
                keep_only(
                    headers,
                    &[header::ETAG, header::LAST_MODIFIED, cache_status],
                );
                (
                    StatusCode::PRECONDITION_FAILED,
                    reason(headers, PRECONDITION_FAILED_REASON),
                )
            }
            Self::RangeNotSatisfiable { complete } => {
                keep_only(
                    headers,
                    &[
                        header::ETAG,
                        header::LAST_MODIFIED,
                        header::ACCEPT_RANGES,
                        header::VARY,
                        cache_status,
                    ],
                );
                headers.insert(header::CONTENT_RANGE, unsatisfied_content_range(complete));
                (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    reason(headers, UNSATISFIABLE_REASON),
                )
            }
        }
    }
}

fn take_all(headers: &mut HeaderMap, name: &HeaderName) -> Vec<HeaderValue> {
    match headers.entry(name) {
        http::header::Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => Vec::new(),
    }
}

fn put_back(headers: &mut HeaderMap, name: &HeaderName, values: Vec<HeaderValue>) {
    for value in values {
        headers.append(name.clone(), value);
    }
}

fn keep_only(headers: &mut HeaderMap, names: &[HeaderName]) {
    let kept: Vec<_> = names.iter().map(|n| (n, take_all(headers, n))).collect();
    headers.clear();
    for (name, values) in kept {
        put_back(headers, name, values);
    }
}

fn reason(headers: &mut HeaderMap, text: &'static str) -> Bytes {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    Bytes::from_static(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const REPRESENTATION: &[(&str, &str)] = &[
        ("etag", "\"v1\""),
        ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("cache-control", "max-age=60"),
        ("vary", "accept-encoding"),
        ("vary", "accept-language"),
        ("content-type", "text/html"),
        ("content-length", "1234"),
        ("accept-ranges", "bytes"),
        ("age", "7"),
        ("cache-status", "tower-edge; hit"),
        ("set-cookie", "a=1"),
        ("x-custom", "1"),
    ];

    #[test]
    fn a_304_keeps_the_fields_of_rfc_9110_and_the_cache_s_own() {
        let mut h = fields(REPRESENTATION);
        let (status, body) = Short::NotModified.head(&mut h, &crate::observe::Counts::new());
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let mut names: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "age",
                "cache-control",
                "cache-status",
                "etag",
                "last-modified",
                "vary"
            ]
        );
        assert_eq!(h.get_all("vary").iter().count(), 2);
    }

    #[test]
    fn a_412_keeps_only_the_validators_and_is_never_stored() {
        let mut h = fields(REPRESENTATION);
        let (status, body) = Short::PreconditionFailed.head(&mut h, &crate::observe::Counts::new());
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(h["etag"], "\"v1\"");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["content-length"], body.len().to_string().as_str());
        assert!(!h.contains_key("vary") && !h.contains_key("set-cookie"));
        assert!(!h.contains_key("age") && !h.contains_key("x-custom"));
    }

    #[test]
    fn a_416_says_the_length_and_keeps_what_a_range_client_needs() {
        let mut h = fields(REPRESENTATION);
        let (status, body) = Short::RangeNotSatisfiable { complete: 1234 }
            .head(&mut h, &crate::observe::Counts::new());
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(h["content-range"], "bytes */1234");
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h.get_all("vary").iter().count(), 2);
        assert_eq!(h["content-length"], body.len().to_string().as_str());
        assert_eq!(h["cache-control"], "no-store");
        assert!(h.contains_key("last-modified") && !h.contains_key("set-cookie"));
    }
}
