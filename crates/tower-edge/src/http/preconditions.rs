//! Conditional request evaluation (RFC 9110 §13), in one place for every layer.
//!
//! [`evaluate`] applies the four preconditions in the order of RFC 9110 §13.2.2 against the
//! validators of the selected representation and says whether the request proceeds, is answered
//! `304 Not Modified`, or `412 Precondition Failed`. [`if_range`] evaluates `If-Range`
//! (§13.1.5) for the layers that serve byte ranges. [`retain_not_modified_headers`] trims a
//! response's headers to what a 304 carries (§15.4.5).
//!
//! ```
//! use http::{HeaderMap, Method, header};
//! use tower_edge::http::etag::EntityTag;
//! use tower_edge::http::preconditions::{evaluate, Precondition, Validators};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(header::IF_NONE_MATCH, "W/\"v7\"".parse().unwrap());
//! let current = Validators::new().with_etag(EntityTag::strong("v7").unwrap());
//!
//! assert_eq!(evaluate(&Method::GET, &headers, &current), Precondition::NotModified);
//! assert_eq!(evaluate(&Method::PUT, &headers, &current), Precondition::PreconditionFailed);
//! ```
//!
//! Malformed fields are handled so that a garbled header can never make a request succeed where
//! it should not: an `If-Match` whose members are all invalid matches nothing (412), an
//! `If-None-Match` whose members are all invalid matches nothing (the request proceeds), and an
//! unparsable or listed date is ignored, as §13.1.3 and §13.1.4 require. A date in the future is
//! compared like any other: RFC 9110 dropped RFC 7232's rule that made it invalid, so
//! `If-Modified-Since` later than `Last-Modified` is answered 304 whatever the clock says.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use super::date::{parse_http_date, parse_single, truncate_to_seconds};
use super::etag::{Comparison, EntityTag, list_match};

/// The outcome of evaluating a request's preconditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Every condition holds (or none applies): process the request as usual.
    Proceed,
    /// Answer `304 Not Modified` (GET or HEAD only).
    NotModified,
    /// Answer `412 Precondition Failed`.
    PreconditionFailed,
}

/// The validators of the selected representation that conditions are evaluated against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    etag: Option<EntityTag>,
    last_modified: Option<SystemTime>,
    exists: bool,
}

impl Default for Validators {
    fn default() -> Self {
        Self::new()
    }
}

impl Validators {
    /// A representation that exists and has no validators yet.
    pub fn new() -> Self {
        Self {
            etag: None,
            last_modified: None,
            exists: true,
        }
    }

    /// No current representation: `If-Match: *` fails and `If-None-Match: *` holds (the
    /// "create only if absent" case of RFC 9110 §13.1.2).
    pub fn missing() -> Self {
        Self {
            exists: false,
            ..Self::new()
        }
    }

    /// Sets the entity tag.
    #[must_use]
    pub fn with_etag(mut self, etag: EntityTag) -> Self {
        self.etag = Some(etag);
        self
    }

    /// Sets the last modification time (truncated to the second, the precision of HTTP dates).
    #[must_use]
    pub fn with_last_modified(mut self, time: SystemTime) -> Self {
        self.last_modified = Some(truncate_to_seconds(time));
        self
    }

    /// Reads `ETag` and `Last-Modified` from response headers. Unparsable values are left out.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            etag: headers
                .get(header::ETAG)
                .and_then(|v| EntityTag::try_from(v).ok()),
            last_modified: headers
                .get(header::LAST_MODIFIED)
                .and_then(|v| parse_http_date(v.as_bytes())),
            exists: true,
        }
    }

    /// The entity tag, if any.
    pub fn etag(&self) -> Option<&EntityTag> {
        self.etag.as_ref()
    }

    /// The last modification time, if any, truncated to the second.
    pub fn last_modified(&self) -> Option<SystemTime> {
        self.last_modified
    }

    /// Whether a current representation exists.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Writes `ETag` and `Last-Modified` into `headers`, replacing what was there.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(etag) = &self.etag {
            headers.insert(header::ETAG, etag.to_header_value());
        }
        if let Some(time) = self.last_modified {
            headers.insert(header::LAST_MODIFIED, super::date::http_date_value(time));
        }
    }
}

/// Evaluates the request's preconditions in the order of RFC 9110 §13.2.2.
///
/// Only call this for a request whose response without conditions would be 2xx (§13.2.1).
pub fn evaluate(method: &Method, headers: &HeaderMap, validators: &Validators) -> Precondition {
    evaluate_with(method, headers, validators, Scope::All)
}

/// Evaluates only `If-Unmodified-Since` and `If-Modified-Since`, each only when its entity-tag
/// counterpart (`If-Match`, `If-None-Match`) is absent.
///
/// This is the part a layer that knows the modification time but not the entity tag can decide
/// alone, and it agrees with [`evaluate`] whenever it decides anything: stacking a date-only
/// evaluator with a full one, in either order, gives the result of the full one.
pub fn evaluate_dates(
    method: &Method,
    headers: &HeaderMap,
    last_modified: Option<SystemTime>,
) -> Precondition {
    let validators = Validators {
        etag: None,
        last_modified: last_modified.map(truncate_to_seconds),
        exists: true,
    };
    evaluate_with(method, headers, &validators, Scope::DatesOnly)
}

/// Whether a request carries any of the four preconditions of §13.2.2.
pub fn has_preconditions(headers: &HeaderMap) -> bool {
    CONDITIONAL_HEADERS.iter().any(|h| headers.contains_key(h))
}

/// The request headers [`evaluate`] reads.
pub const CONDITIONAL_HEADERS: [HeaderName; 4] = [
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
];

/// The body of the 412 the layers and extractors send.
#[allow(dead_code)] // unused when no layer feature is on
pub(crate) const PRECONDITION_FAILED_REASON: &str = "precondition failed: the current \
     representation does not satisfy If-Match, If-Unmodified-Since or If-None-Match\n";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    DatesOnly,
}

fn evaluate_with(
    method: &Method,
    headers: &HeaderMap,
    v: &Validators,
    scope: Scope,
) -> Precondition {
    let get_or_head = method == Method::GET || method == Method::HEAD;

    // Step 1: If-Match (§13.1.1), strong comparison.
    if headers.contains_key(header::IF_MATCH) {
        if scope == Scope::All {
            let m = list_match(
                headers.get_all(header::IF_MATCH),
                v.etag.as_ref(),
                Comparison::Strong,
            );
            let holds = v.exists && (m.any || m.matched);
            if !holds {
                return Precondition::PreconditionFailed;
            }
        }
    // Step 2: If-Unmodified-Since (§13.1.4), only when If-Match is absent.
    } else if let Some(date) = parse_single(headers.get_all(header::IF_UNMODIFIED_SINCE).iter()) {
        // §13.1.4: a server MAY ignore it when no modification date is available; we do, since
        // there is nothing to compare with.
        if let Some(lm) = v.last_modified
            && lm > date
        {
            return Precondition::PreconditionFailed;
        }
    }

    // Step 3: If-None-Match (§13.1.2), weak comparison.
    if headers.contains_key(header::IF_NONE_MATCH) {
        if scope == Scope::All {
            let m = list_match(
                headers.get_all(header::IF_NONE_MATCH),
                v.etag.as_ref(),
                Comparison::Weak,
            );
            let matched = if m.any { v.exists } else { m.matched };
            if matched {
                return if get_or_head {
                    Precondition::NotModified
                } else {
                    Precondition::PreconditionFailed
                };
            }
        }
        // §13.1.3: If-Modified-Since is ignored when If-None-Match is present.
        return Precondition::Proceed;
    }

    // Step 4: If-Modified-Since (§13.1.3), GET and HEAD only.
    if get_or_head
        && let (Some(date), Some(lm)) = (
            parse_single(headers.get_all(header::IF_MODIFIED_SINCE).iter()),
            v.last_modified,
        )
    {
        // A date ahead of this clock is compared too (RFC 9110 §13.1.3 no longer calls it
        // invalid): a client that sends one asks for changes after that instant.
        if lm <= date {
            return Precondition::NotModified;
        }
    }

    Precondition::Proceed
}

/// Evaluates `If-Range` (RFC 9110 §13.1.5): whether a `Range` may be honoured.
///
/// Returns `true` when there is no `If-Range`. An entity tag matches only by strong comparison; a
/// date matches only when it equals the `Last-Modified` exactly and that `Last-Modified` is strong,
/// that is at least one second older than `now` (§8.8.2.2). Anything else, including a malformed
/// value, is `false`: the whole representation is sent.
pub fn if_range(headers: &HeaderMap, validators: &Validators, now: SystemTime) -> bool {
    let mut values = headers.get_all(header::IF_RANGE).iter();
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    if_range_value(value, validators, now)
}

fn if_range_value(value: &HeaderValue, v: &Validators, now: SystemTime) -> bool {
    let bytes = value.as_bytes();
    let trimmed = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&[][..], |i| &bytes[i..]);
    if trimmed.starts_with(b"\"") || trimmed.starts_with(b"W/") {
        return match (EntityTag::parse(bytes), &v.etag) {
            (Ok(sent), Some(current)) => sent.strong_eq(current),
            _ => false,
        };
    }
    match (parse_http_date(bytes), v.last_modified) {
        (Some(date), Some(lm)) => {
            lm == date && lm + Duration::from_secs(1) <= truncate_to_seconds(now)
        }
        _ => false,
    }
}

/// The header fields a `304 Not Modified` carries (RFC 9110 §15.4.5): the ones a 200 would have
/// had among Cache-Control, Content-Location, Date, ETag, Expires and Vary, plus Last-Modified,
/// which guides cache updates.
pub const NOT_MODIFIED_HEADERS: [HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
];

/// Removes every header field a 304 should not carry, keeping all lines of those it should.
pub fn retain_not_modified_headers(headers: &mut HeaderMap) {
    // One pass over the fields as they are, moving out those kept: cheaper than looking up
    // each name a 304 keeps, since a lookup through `entry` may grow the map it searches.
    let mut kept = HeaderMap::with_capacity(NOT_MODIFIED_HEADERS.len());
    let mut current: Option<HeaderName> = None;
    // `into_iter` names a field on its first line only; the lines after it are its own.
    for (name, value) in std::mem::take(headers) {
        if let Some(name) = name {
            current = NOT_MODIFIED_HEADERS.contains(&name).then_some(name);
        }
        if let Some(name) = &current {
            kept.append(name.clone(), value);
        }
    }
    *headers = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn now() -> SystemTime {
        at(T0 + 3600)
    }

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn current() -> Validators {
        Validators::new()
            .with_etag(EntityTag::strong("v1").unwrap())
            .with_last_modified(at(T0))
    }

    #[allow(clippy::needless_pass_by_value)] // reads better in the tables below than `&Method::GET`
    fn eval(method: Method, pairs: &[(HeaderName, &str)]) -> Precondition {
        evaluate(&method, &headers(pairs), &current())
    }

    use Precondition::{NotModified, PreconditionFailed, Proceed};

    #[test]
    fn proceeds_without_conditions() {
        assert_eq!(eval(Method::GET, &[]), Proceed);
        assert!(!has_preconditions(&HeaderMap::new()));
    }

    // Step 1: If-Match.
    #[test]
    fn if_match_uses_strong_comparison() {
        assert_eq!(eval(Method::PUT, &[(header::IF_MATCH, "\"v1\"")]), Proceed);
        assert_eq!(
            eval(Method::PUT, &[(header::IF_MATCH, "W/\"v1\"")]),
            PreconditionFailed
        );
        assert_eq!(
            eval(Method::GET, &[(header::IF_MATCH, "\"v0\"")]),
            PreconditionFailed
        );
    }

    #[test]
    fn if_match_list_matches_any_member() {
        assert_eq!(
            eval(Method::DELETE, &[(header::IF_MATCH, "\"a\", \"v1\"")]),
            Proceed
        );
        assert_eq!(
            eval(
                Method::DELETE,
                &[(header::IF_MATCH, "\"a\""), (header::IF_MATCH, "\"v1\"")]
            ),
            Proceed
        );
    }

    #[test]
    fn if_match_star_needs_a_current_representation() {
        let h = headers(&[(header::IF_MATCH, "*")]);
        assert_eq!(evaluate(&Method::PUT, &h, &current()), Proceed);
        assert_eq!(
            evaluate(&Method::PUT, &h, &Validators::missing()),
            PreconditionFailed
        );
    }

    #[test]
    fn if_match_against_a_resource_without_etag_fails() {
        let h = headers(&[(header::IF_MATCH, "\"v1\"")]);
        assert_eq!(
            evaluate(&Method::PUT, &h, &Validators::new()),
            PreconditionFailed
        );
    }

    #[test]
    fn garbage_if_match_fails_safely() {
        assert_eq!(
            eval(Method::PUT, &[(header::IF_MATCH, "v1")]),
            PreconditionFailed
        );
        assert_eq!(
            eval(Method::PUT, &[(header::IF_MATCH, "\"unterminated")]),
            PreconditionFailed
        );
    }

    #[test]
    fn if_match_overrides_if_unmodified_since() {
        // Step 1 passes, so step 2 is skipped even though the date alone would fail.
        assert_eq!(
            eval(
                Method::PUT,
                &[
                    (header::IF_MATCH, "\"v1\""),
                    (header::IF_UNMODIFIED_SINCE, &date(T0 - 10))
                ]
            ),
            Proceed
        );
    }

    // Step 2: If-Unmodified-Since.
    #[test]
    fn if_unmodified_since_fails_when_modified_later() {
        assert_eq!(
            eval(Method::PUT, &[(header::IF_UNMODIFIED_SINCE, &date(T0 - 1))]),
            PreconditionFailed
        );
        assert_eq!(
            eval(Method::PUT, &[(header::IF_UNMODIFIED_SINCE, &date(T0))]),
            Proceed
        );
        assert_eq!(
            eval(Method::GET, &[(header::IF_UNMODIFIED_SINCE, &date(T0 + 1))]),
            Proceed
        );
    }

    #[test]
    fn if_unmodified_since_garbage_or_list_is_ignored() {
        assert_eq!(
            eval(Method::PUT, &[(header::IF_UNMODIFIED_SINCE, "not a date")]),
            Proceed
        );
        let d = date(T0 - 100);
        assert_eq!(
            eval(
                Method::PUT,
                &[
                    (header::IF_UNMODIFIED_SINCE, &d),
                    (header::IF_UNMODIFIED_SINCE, &d)
                ]
            ),
            Proceed
        );
    }

    #[test]
    fn if_unmodified_since_without_last_modified_is_ignored() {
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, &date(T0 - 100))]);
        assert_eq!(evaluate(&Method::PUT, &h, &Validators::new()), Proceed);
    }

    // Step 3: If-None-Match.
    #[test]
    fn if_none_match_gives_304_for_get_and_head() {
        for method in [Method::GET, Method::HEAD] {
            assert_eq!(
                eval(method.clone(), &[(header::IF_NONE_MATCH, "\"v1\"")]),
                NotModified
            );
            assert_eq!(
                eval(method, &[(header::IF_NONE_MATCH, "W/\"v1\"")]),
                NotModified
            );
        }
    }

    #[test]
    fn if_none_match_gives_412_for_other_methods() {
        for method in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
            assert_eq!(
                eval(method, &[(header::IF_NONE_MATCH, "\"v1\"")]),
                PreconditionFailed
            );
        }
    }

    #[test]
    fn if_none_match_proceeds_when_nothing_matches() {
        assert_eq!(
            eval(Method::GET, &[(header::IF_NONE_MATCH, "\"v0\", W/\"v2\"")]),
            Proceed
        );
        assert_eq!(
            eval(Method::GET, &[(header::IF_NONE_MATCH, "garbage")]),
            Proceed
        );
    }

    #[test]
    fn if_none_match_star() {
        let h = headers(&[(header::IF_NONE_MATCH, "*")]);
        assert_eq!(evaluate(&Method::GET, &h, &current()), NotModified);
        assert_eq!(evaluate(&Method::PUT, &h, &current()), PreconditionFailed);
        assert_eq!(evaluate(&Method::PUT, &h, &Validators::missing()), Proceed);
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        // RFC 9110 §13.2.2: If-None-Match present, so If-Modified-Since is ignored both ways.
        assert_eq!(
            eval(
                Method::GET,
                &[
                    (header::IF_NONE_MATCH, "\"other\""),
                    (header::IF_MODIFIED_SINCE, &date(T0 + 10))
                ]
            ),
            Proceed
        );
        assert_eq!(
            eval(
                Method::GET,
                &[
                    (header::IF_NONE_MATCH, "\"v1\""),
                    (header::IF_MODIFIED_SINCE, &date(T0 - 10))
                ]
            ),
            NotModified
        );
    }

    #[test]
    fn if_match_failure_wins_over_if_none_match() {
        assert_eq!(
            eval(
                Method::GET,
                &[
                    (header::IF_MATCH, "\"nope\""),
                    (header::IF_NONE_MATCH, "\"v1\"")
                ]
            ),
            PreconditionFailed
        );
    }

    // Step 4: If-Modified-Since.
    #[test]
    fn if_modified_since_gives_304_when_unmodified() {
        assert_eq!(
            eval(Method::GET, &[(header::IF_MODIFIED_SINCE, &date(T0))]),
            NotModified
        );
        assert_eq!(
            eval(Method::HEAD, &[(header::IF_MODIFIED_SINCE, &date(T0 + 5))]),
            NotModified
        );
        assert_eq!(
            eval(Method::GET, &[(header::IF_MODIFIED_SINCE, &date(T0 - 1))]),
            Proceed
        );
    }

    #[test]
    fn if_modified_since_only_for_get_and_head() {
        for method in [Method::PUT, Method::POST, Method::DELETE, Method::OPTIONS] {
            assert_eq!(
                eval(method, &[(header::IF_MODIFIED_SINCE, &date(T0))]),
                Proceed
            );
        }
    }

    #[test]
    fn if_modified_since_in_the_future_is_evaluated() {
        // `now()` is T0 + 3600; the date is an hour past it and after Last-Modified (T0).
        assert_eq!(
            eval(
                Method::GET,
                &[(header::IF_MODIFIED_SINCE, &date(T0 + 7200))]
            ),
            NotModified
        );
        let newer = Validators::new().with_last_modified(at(T0 + 9000));
        let h = headers(&[(header::IF_MODIFIED_SINCE, &date(T0 + 7200))]);
        assert_eq!(evaluate(&Method::GET, &h, &newer), Proceed);
    }

    #[test]
    fn if_modified_since_garbage_or_list_is_ignored() {
        for value in ["0", "", "Sun, 06 Nov 1994 08:49:37 GMT, x", "-1"] {
            assert_eq!(
                eval(Method::GET, &[(header::IF_MODIFIED_SINCE, value)]),
                Proceed,
                "{value:?}"
            );
        }
        let d = date(T0);
        assert_eq!(
            eval(
                Method::GET,
                &[
                    (header::IF_MODIFIED_SINCE, &d),
                    (header::IF_MODIFIED_SINCE, &d)
                ]
            ),
            Proceed
        );
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let v = Validators::new().with_last_modified(at(T0) + Duration::from_millis(900));
        let h = headers(&[(header::IF_MODIFIED_SINCE, &date(T0))]);
        assert_eq!(evaluate(&Method::GET, &h, &v), NotModified);
    }

    #[test]
    fn if_modified_since_without_last_modified_is_ignored() {
        let h = headers(&[(header::IF_MODIFIED_SINCE, &date(T0))]);
        assert_eq!(evaluate(&Method::GET, &h, &Validators::new()), Proceed);
    }

    // Date-only evaluation.
    #[test]
    fn dates_only_leaves_tag_conditions_alone() {
        let lm = Some(at(T0));
        let h = headers(&[(header::IF_MATCH, "\"anything\"")]);
        assert_eq!(evaluate_dates(&Method::GET, &h, lm), Proceed);
        let h = headers(&[
            (header::IF_MATCH, "\"anything\""),
            (header::IF_UNMODIFIED_SINCE, &date(T0 - 10)),
        ]);
        assert_eq!(evaluate_dates(&Method::GET, &h, lm), Proceed);
        let h = headers(&[
            (header::IF_NONE_MATCH, "\"x\""),
            (header::IF_MODIFIED_SINCE, &date(T0)),
        ]);
        assert_eq!(evaluate_dates(&Method::GET, &h, lm), Proceed);
    }

    #[test]
    fn dates_only_evaluates_dates() {
        let lm = Some(at(T0));
        let h = headers(&[(header::IF_MODIFIED_SINCE, &date(T0))]);
        assert_eq!(evaluate_dates(&Method::GET, &h, lm), NotModified);
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, &date(T0 - 1))]);
        assert_eq!(evaluate_dates(&Method::GET, &h, lm), PreconditionFailed);
    }

    // If-Range.
    #[test]
    fn if_range_with_strong_etag() {
        let v = current();
        assert!(if_range(&HeaderMap::new(), &v, now()));
        assert!(if_range(
            &headers(&[(header::IF_RANGE, "\"v1\"")]),
            &v,
            now()
        ));
        assert!(!if_range(
            &headers(&[(header::IF_RANGE, "\"v2\"")]),
            &v,
            now()
        ));
        assert!(!if_range(
            &headers(&[(header::IF_RANGE, "W/\"v1\"")]),
            &v,
            now()
        ));
        let weak = Validators::new().with_etag(EntityTag::weak("v1").unwrap());
        assert!(!if_range(
            &headers(&[(header::IF_RANGE, "\"v1\"")]),
            &weak,
            now()
        ));
    }

    #[test]
    fn if_range_with_date_needs_exact_strong_last_modified() {
        let v = current();
        assert!(if_range(
            &headers(&[(header::IF_RANGE, &date(T0))]),
            &v,
            now()
        ));
        assert!(!if_range(
            &headers(&[(header::IF_RANGE, &date(T0 + 1))]),
            &v,
            now()
        ));
        assert!(!if_range(
            &headers(&[(header::IF_RANGE, &date(T0 - 1))]),
            &v,
            now()
        ));
        // Modified within the last second: Last-Modified is weak (§8.8.2.2).
        assert!(!if_range(
            &headers(&[(header::IF_RANGE, &date(T0))]),
            &v,
            at(T0)
        ));
    }

    #[test]
    fn if_range_garbage_sends_whole_representation() {
        for value in ["garbage", "\"unterminated", "", "W/"] {
            assert!(
                !if_range(&headers(&[(header::IF_RANGE, value)]), &current(), now()),
                "{value:?}"
            );
        }
    }

    #[test]
    fn not_modified_keeps_only_rfc_9110_header_set() {
        let mut h = headers(&[
            (header::CONTENT_TYPE, "text/html"),
            (header::CONTENT_LENGTH, "42"),
            (header::ETAG, "\"v1\""),
            (header::VARY, "Accept-Encoding"),
            (header::VARY, "Accept-Language"),
            (header::CACHE_CONTROL, "max-age=60"),
            (header::LAST_MODIFIED, &date(T0)),
            (header::SET_COOKIE, "a=b"),
            (header::CONTENT_ENCODING, "gzip"),
            (header::SET_COOKIE, "c=d"),
            (header::VARY, "Cookie"),
            (HeaderName::from_static("x-custom"), "1"),
        ]);
        retain_not_modified_headers(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["cache-control", "etag", "last-modified", "vary"]);
        // Every line of a kept field, in order; no line of a dropped one.
        let vary: Vec<_> = h.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Accept-Language", "Cookie"]);
        assert_eq!(h.len(), 6);
    }

    #[test]
    fn validators_read_from_headers() {
        let h = headers(&[
            (header::ETAG, "W/\"x\""),
            (header::LAST_MODIFIED, &date(T0)),
        ]);
        let v = Validators::from_headers(&h);
        assert_eq!(v.etag().unwrap().to_string(), "W/\"x\"");
        assert_eq!(v.last_modified(), Some(at(T0)));
        let mut out = HeaderMap::new();
        v.write_headers(&mut out);
        assert_eq!(out, h);
    }
}
