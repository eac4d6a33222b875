//! Whether a response may be stored, and if not, why (RFC 9111 §3, §3.5, §5.2).
//!
//! [`Exchange::storable`] walks the list of RFC 9111 §3 in its order, reading directives
//! through the one `Cache-Control` parser, so `Private`, `NO-STORE` and `private` are the same
//! directive.
//!
//! ```
//! use http::{HeaderMap, Method, StatusCode};
//! use tower_edge::http::{
//!     cache_control::CacheControl,
//!     storability::{Exchange, NotStorable},
//! };
//!
//! let request = HeaderMap::new();
//! let response = HeaderMap::new();
//! let exchange = |cc: &str| Exchange {
//!     method: Method::GET,
//!     request: &request,
//!     request_cc: CacheControl::default(),
//!     status: StatusCode::OK,
//!     response: &response,
//!     response_cc: CacheControl::parse_str(cc),
//!     shared: true,
//!     cache_extension: false,
//! };
//! assert_eq!(exchange("max-age=100, Private").storable(), Err(NotStorable::Private));
//! assert_eq!(exchange("max-age=100").storable(), Ok(()));
//! ```

use std::fmt;

use http::{HeaderMap, Method, StatusCode, header};

use super::{cache_control::CacheControl, freshness::is_heuristically_cacheable};

/// Why a response may not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotStorable {
    /// The request method is not one this cache stores responses to (only `GET`).
    Method,
    /// An interim (1xx) response (§3: the status must be final).
    NotFinal,
    /// A status whose caching requirements this cache does not implement as a stored response
    /// (`206`, `304`), or an unregistered one under `must-understand` (§3, §5.2.2.3).
    Status,
    /// `no-store` in the request or the response (§5.2.1.5, §5.2.2.5).
    NoStore,
    /// `private`, to a shared cache (§5.2.2.7).
    Private,
    /// A request with `Authorization`, to a shared cache, without a directive in the response
    /// that allows sharing it (§3.5).
    Authorization,
    /// Nothing in the response allows storing it: no explicit freshness, no `public`, and a
    /// status that is not heuristically cacheable (§3, last item).
    NoPermission,
}

impl NotStorable {
    /// The reason as a short token, for `Cache-Status` `detail` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::NotFinal => "not-final",
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::NoPermission => "not-storable",
        }
    }
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request and the response to it, as far as storing goes.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// The request method.
    pub method: Method,
    /// The request's fields (for `Authorization`).
    pub request: &'a HeaderMap,
    /// The request's `Cache-Control`.
    pub request_cc: CacheControl,
    /// The response status.
    pub status: StatusCode,
    /// The response's fields (for `Expires`).
    pub response: &'a HeaderMap,
    /// The response's directives: its `Cache-Control`, or what replaces it for this cache
    /// (`CDN-Cache-Control`, RFC 9213).
    pub response_cc: CacheControl,
    /// Whether the cache is shared between users.
    pub shared: bool,
    /// Whether a cache extension that this cache understands allows storing (for this crate:
    /// a TTL the handler set for this cache alone).
    pub cache_extension: bool,
}

impl Exchange<'_> {
    /// May the response be stored (RFC 9111 §3)? The first rule it breaks, in the RFC's order.
    pub fn storable(&self) -> Result<(), NotStorable> {
        let cc = &self.response_cc;
        // "the request method is understood by the cache"
        if self.method != Method::GET {
            return Err(NotStorable::Method);
        }
        // "the response status code is final"
        if self.status.is_informational() {
            return Err(NotStorable::NotFinal);
        }
        // "if the response status code is 206 or 304, or the must-understand cache directive
        // is present: the cache understands the response status code"
        let understood = understands(self.status);
        let must_understand = cc.has("must-understand");
        if !understood && (must_understand || matches!(self.status.as_u16(), 206 | 304)) {
            return Err(NotStorable::Status);
        }
        // "the no-store cache directive is not present in the response"; §5.2.2.3: with
        // must-understand, a cache that understands the status may ignore no-store.
        if (cc.has("no-store") && !(must_understand && understood))
            || self.request_cc.has("no-store")
        {
            return Err(NotStorable::NoStore);
        }
        // "if the cache is shared: the private response directive is either not present or
        // allows a shared cache to store a modified response". A qualified `private="field"`
        // would allow storing the response without those fields; this cache keeps none of it.
        if self.shared && cc.has("private") {
            return Err(NotStorable::Private);
        }
        // §3.5: "if the cache is shared: the Authorization header field is not present in the
        // request or a response directive is present that explicitly allows shared caching"
        if self.shared
            && self.request.contains_key(header::AUTHORIZATION)
            && !(cc.has("must-revalidate") || cc.has("public") || cc.has("s-maxage"))
        {
            return Err(NotStorable::Authorization);
        }
        if self.permits_storing() {
            Ok(())
        } else {
            Err(NotStorable::NoPermission)
        }
    }

    /// The last item of §3: "the response contains at least one of ...".
    fn permits_storing(&self) -> bool {
        let cc = &self.response_cc;
        cc.has("public")
            || (!self.shared && cc.has("private"))
            || self.response.contains_key(header::EXPIRES)
            || cc.has("max-age")
            || (self.shared && cc.has("s-maxage"))
            || self.cache_extension
            || is_heuristically_cacheable(self.status)
    }
}

/// Whether this cache understands the caching requirements of `status` as a stored response:
/// every final status registered for HTTP, `206` included (its parts are stored and combined as
/// RFC 9111 §3.3 and §3.4 say), except `304` (which updates a stored response; it is never
/// stored itself).
pub fn understands(status: StatusCode) -> bool {
    !status.is_informational()
        && status != StatusCode::NOT_MODIFIED
        && status.canonical_reason().is_some()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    struct Case<'a> {
        method: Method,
        request: &'a [(&'a str, &'a str)],
        status: u16,
        response: &'a [(&'a str, &'a str)],
        shared: bool,
    }

    impl Default for Case<'_> {
        fn default() -> Self {
            Self {
                method: Method::GET,
                request: &[],
                status: 200,
                response: &[],
                shared: true,
            }
        }
    }

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        fields
            .iter()
            .map(|(n, v)| {
                (
                    header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                )
            })
            .collect()
    }

    fn decide(case: Case<'_>) -> Result<(), NotStorable> {
        let (request, response) = (map(case.request), map(case.response));
        Exchange {
            method: case.method,
            request_cc: CacheControl::parse(request.get_all(header::CACHE_CONTROL)),
            request: &request,
            status: StatusCode::from_u16(case.status).unwrap(),
            response_cc: CacheControl::parse(response.get_all(header::CACHE_CONTROL)),
            response: &response,
            shared: case.shared,
            cache_extension: false,
        }
        .storable()
    }

    fn with_cc(cc: &str) -> Result<(), NotStorable> {
        let fields = [("cache-control", cc)];
        decide(Case {
            response: &fields,
            ..Case::default()
        })
    }

    /// Every way of writing a directive name: lower, upper, title and mixed case.
    fn spellings(name: &str) -> Vec<String> {
        let title: String = name
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect::<Vec<_>>()
            .join("-");
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        vec![name.to_owned(), name.to_ascii_uppercase(), title, mixed]
    }

    #[test]
    fn private_in_any_case_is_never_stored_by_a_shared_cache() {
        for private in spellings("private") {
            for cc in [
                format!("max-age=100, {private}"),
                format!("{private}, s-maxage=100"),
                format!("public, {private}"),
                format!("{private}=\"set-cookie\", max-age=100"),
            ] {
                assert_eq!(with_cc(&cc), Err(NotStorable::Private), "{cc}");
            }
        }
    }

    #[test]
    fn private_is_stored_by_a_private_cache() {
        let fields = [("cache-control", "Private, max-age=60")];
        let case = Case {
            response: &fields,
            shared: false,
            ..Case::default()
        };
        assert_eq!(decide(case), Ok(()));
    }

    #[test]
    fn no_store_in_any_case_is_never_stored() {
        for no_store in spellings("no-store") {
            let cc = format!("max-age=100, public, {no_store}");
            assert_eq!(with_cc(&cc), Err(NotStorable::NoStore), "{cc}");
        }
        // In the request, too (§5.2.1.5).
        let request = [("cache-control", "No-Store")];
        let response = [("cache-control", "max-age=100")];
        let case = Case {
            request: &request,
            response: &response,
            ..Case::default()
        };
        assert_eq!(decide(case), Err(NotStorable::NoStore));
    }

    #[test]
    fn no_cache_is_stored_to_be_revalidated() {
        // §5.2.2.4: no-cache allows storing; it forbids reuse without validation.
        for no_cache in spellings("no-cache") {
            assert_eq!(with_cc(&format!("{no_cache}, max-age=100")), Ok(()));
        }
    }

    #[test]
    fn authorization_is_shared_only_when_the_response_allows_it() {
        // §3.5.
        let auth = [("authorization", "Bearer alice")];
        for (cc, allowed) in [
            ("max-age=100", false),
            ("no-cache, max-age=100", false),
            ("Public, max-age=100", true),
            ("S-MaxAge=100", true),
            ("Must-Revalidate, max-age=100", true),
        ] {
            let fields = [("cache-control", cc)];
            let case = Case {
                request: &auth,
                response: &fields,
                ..Case::default()
            };
            let expected = if allowed {
                Ok(())
            } else {
                Err(NotStorable::Authorization)
            };
            assert_eq!(decide(case), expected, "{cc}");
        }
        // A private cache may store it.
        let fields = [("cache-control", "max-age=100")];
        let case = Case {
            request: &auth,
            response: &fields,
            shared: false,
            ..Case::default()
        };
        assert_eq!(decide(case), Ok(()));
    }

    #[test]
    fn only_get_responses_are_stored() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
            let fields = [("cache-control", "max-age=100")];
            let case = Case {
                method,
                response: &fields,
                ..Case::default()
            };
            assert_eq!(decide(case), Err(NotStorable::Method));
        }
    }

    #[test]
    fn any_final_status_with_explicit_freshness_is_storable() {
        // §3: not only RFC 7234's list.
        for status in [
            200, 201, 202, 302, 303, 307, 400, 403, 409, 418, 429, 500, 502, 503,
        ] {
            for fields in [
                &[("cache-control", "max-age=60")][..],
                &[("cache-control", "s-maxage=60")],
                &[("cache-control", "public")],
                &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")],
            ] {
                let case = Case {
                    status,
                    response: fields,
                    ..Case::default()
                };
                assert_eq!(decide(case), Ok(()), "{status} {fields:?}");
            }
        }
    }

    #[test]
    fn without_explicit_freshness_only_heuristically_cacheable_statuses() {
        for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            let case = Case {
                status,
                ..Case::default()
            };
            assert_eq!(decide(case), Ok(()), "{status}");
        }
        for status in [201, 302, 303, 307, 400, 403, 500, 502, 503] {
            let case = Case {
                status,
                ..Case::default()
            };
            assert_eq!(decide(case), Err(NotStorable::NoPermission), "{status}");
        }
    }

    #[test]
    fn interim_and_not_modified_responses_are_not_stored_partial_ones_are() {
        let fields = [("cache-control", "max-age=60")];
        let partial = Case {
            status: 206,
            response: &fields,
            ..Case::default()
        };
        assert_eq!(decide(partial), Ok(()));
        for (status, why) in [(103, NotStorable::NotFinal), (304, NotStorable::Status)] {
            let fields = [("cache-control", "max-age=60")];
            let case = Case {
                status,
                response: &fields,
                ..Case::default()
            };
            assert_eq!(decide(case), Err(why), "{status}");
        }
    }

    #[test]
    fn must_understand_stores_understood_statuses_despite_no_store() {
        // §5.2.2.3: "must-understand, no-store" lets caches that understand the status store
        // it, and keeps the others out.
        let fields = [("cache-control", "Must-Understand, No-Store, max-age=60")];
        let stored = Case {
            response: &fields,
            ..Case::default()
        };
        assert_eq!(decide(stored), Ok(()));
        for status in [299, 599, 304] {
            let case = Case {
                status,
                response: &fields,
                ..Case::default()
            };
            assert_eq!(decide(case), Err(NotStorable::Status), "{status}");
        }
        // Without no-store, an unknown status under must-understand is not stored either.
        let fields = [("cache-control", "must-understand, max-age=60")];
        let case = Case {
            status: 299,
            response: &fields,
            ..Case::default()
        };
        assert_eq!(decide(case), Err(NotStorable::Status));
    }

    #[test]
    fn a_cache_extension_permits_storing() {
        let (request, response) = (HeaderMap::new(), HeaderMap::new());
        let exchange = Exchange {
            method: Method::GET,
            request: &request,
            request_cc: CacheControl::default(),
            status: StatusCode::CREATED,
            response: &response,
            response_cc: CacheControl::default(),
            shared: true,
            cache_extension: true,
        };
        assert_eq!(exchange.storable(), Ok(()));
    }

    proptest! {
        #[test]
        fn a_private_directive_always_keeps_a_response_out_of_a_shared_cache(
            before in "[a-z=0-9, -]{0,30}",
            after in "[a-z=0-9, -]{0,30}",
            mask in any::<u8>(),
            status in 200u16..600,
        ) {
            let private: String = "private"
                .chars()
                .enumerate()
                .map(|(i, c)| if mask & (1 << i) != 0 { c.to_ascii_uppercase() } else { c })
                .collect();
            let cc = format!("{before}, {private}, {after}");
            let fields = [("cache-control", cc.as_str())];
            let case = Case { status, response: &fields, ..Case::default() };
            prop_assert!(decide(case).is_err());
        }
    }
}
