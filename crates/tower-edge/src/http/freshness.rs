//! How long a stored response is fresh, and how old it is (RFC 9111 §4.2).
//!
//! Pure functions over a response's fields, read through the one `Cache-Control` parser
//! ([`CacheControl`]), so directive names count in any letter case. Where the RFC lets a cache
//! choose between trusting odd freshness information and treating the response as stale, these
//! functions choose stale: an invalid `max-age`, `s-maxage`, `Age` or `Expires` never makes a
//! response fresh.
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//!
//! use http::{HeaderMap, StatusCode, header};
//! use tower_edge::http::{
//!     cache_control::CacheControl,
//!     freshness::{Lifetime, Reader, age},
//! };
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(header::CACHE_CONTROL, "Max-Age=600, S-MaxAge=60".parse().unwrap());
//! headers.insert(header::AGE, "20".parse().unwrap());
//! let cc = CacheControl::parse(headers.get_all(header::CACHE_CONTROL));
//! let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
//!
//! // A shared cache reads s-maxage first (RFC 9111 §4.2.1), whatever its case.
//! let lifetime = Reader::shared().lifetime(StatusCode::OK, &cc, &headers, now);
//! assert_eq!(lifetime, Lifetime::Explicit(Duration::from_secs(60)));
//! // The response was 20 seconds old on arrival (RFC 9111 §4.2.3).
//! assert_eq!(age(&headers, now, now), Some(Duration::from_secs(20)));
//! ```

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{cache_control::CacheControl, date::parse_http_date};

/// The largest delta-seconds a cache needs to work with: 2^31 seconds (RFC 9111 §1.2.2). Larger
/// values are clamped to it, so sums of lifetimes and ages cannot overflow.
pub const MAX_DELTA: Duration = Duration::from_secs(1 << 31);

/// A response's freshness lifetime (RFC 9111 §4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// From `s-maxage` (shared caches), `max-age` or `Expires`. Zero when that information is
    /// present but invalid or contradictory.
    Explicit(Duration),
    /// No explicit lifetime; this one was computed from `Last-Modified` (RFC 9111 §4.2.2).
    Heuristic(Duration),
    /// No explicit lifetime, and no heuristic one allowed or possible.
    None,
}

impl Lifetime {
    /// The lifetime, zero for [`Lifetime::None`].
    pub fn duration(self) -> Duration {
        match self {
            Self::Explicit(d) | Self::Heuristic(d) => d,
            Self::None => Duration::ZERO,
        }
    }

    /// Whether the origin gave the lifetime.
    pub fn is_explicit(self) -> bool {
        matches!(self, Self::Explicit(_))
    }
}

/// Reads freshness as one kind of cache does: shared or private, with or without heuristics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    shared: bool,
    /// Percent of the time since `Last-Modified`; `None`: no heuristic freshness.
    heuristic_percent: Option<u32>,
    heuristic_max: Duration,
}

impl Reader {
    /// A shared cache's reading (`s-maxage` counts), without heuristic freshness.
    pub fn shared() -> Self {
        Self {
            shared: true,
            heuristic_percent: None,
            heuristic_max: Duration::from_secs(24 * 3600),
        }
    }

    /// A private cache's reading (`s-maxage` is ignored), without heuristic freshness.
    pub fn private() -> Self {
        Self {
            shared: false,
            ..Self::shared()
        }
    }

    /// Allows heuristic freshness: `percent` of the time between `Last-Modified` and `Date`,
    /// at most `max`, for heuristically cacheable statuses or `public` responses
    /// (RFC 9111 §4.2.2, which suggests 10%).
    #[must_use]
    pub fn heuristic(self, percent: u32, max: Duration) -> Self {
        Self {
            heuristic_percent: Some(percent),
            heuristic_max: max,
            ..self
        }
    }

    /// Whether this reader is a shared cache's.
    pub fn is_shared(self) -> bool {
        self.shared
    }

    /// The freshness lifetime of a response with status `status`, directives `cc` (the
    /// response's `Cache-Control`, or what replaces it) and fields `headers`, received at
    /// `response_time` (RFC 9111 §4.2.1, in its order of precedence).
    pub fn lifetime(
        self,
        status: StatusCode,
        cc: &CacheControl,
        headers: &HeaderMap,
        response_time: SystemTime,
    ) -> Lifetime {
        // §4.2.1: s-maxage (shared caches only), then max-age, then Expires minus Date. A
        // present but invalid value is information that the response is not fresh (§4.2.1:
        // "caches are encouraged to consider responses that have invalid freshness information
        // to be stale").
        if self.shared && cc.has("s-maxage") {
            return Lifetime::Explicit(directive_seconds(cc, "s-maxage"));
        }
        if cc.has("max-age") {
            return Lifetime::Explicit(directive_seconds(cc, "max-age"));
        }
        if headers.contains_key(header::EXPIRES) {
            return Lifetime::Explicit(expires_lifetime(headers, response_time));
        }
        self.heuristic_lifetime(status, cc, headers, response_time)
    }

    fn heuristic_lifetime(
        self,
        status: StatusCode,
        cc: &CacheControl,
        headers: &HeaderMap,
        response_time: SystemTime,
    ) -> Lifetime {
        let Some(percent) = self.heuristic_percent else {
            return Lifetime::None;
        };
        // §4.2.2: only for heuristically cacheable statuses, or responses marked cacheable.
        if !is_heuristically_cacheable(status) && !cc.has("public") {
            return Lifetime::None;
        }
        let Some(last_modified) = single_date(headers, &header::LAST_MODIFIED) else {
            return Lifetime::None;
        };
        let date = single_date(headers, &header::DATE).unwrap_or(response_time);
        let since = date.duration_since(last_modified).unwrap_or_default();
        let lifetime = since.min(MAX_DELTA) * percent / 100;
        Lifetime::Heuristic(lifetime.min(self.heuristic_max))
    }
}

/// The statuses RFC 9110 §15.1 defines as heuristically cacheable.
pub fn is_heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// A delta-seconds directive, clamped to [`MAX_DELTA`]; zero when it has no valid argument or
/// when it appears more than once with different arguments (§4.2.1: the response is then
/// considered stale).
fn directive_seconds(cc: &CacheControl, name: &str) -> Duration {
    let mut values = cc
        .directives()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.and_then(delta_seconds));
    let Some(Some(first)) = values.next() else {
        return Duration::ZERO;
    };
    if values.any(|other| other != Some(first)) {
        return Duration::ZERO;
    }
    Duration::from_secs(first).min(MAX_DELTA)
}

/// delta-seconds (RFC 9111 §1.2.2): one or more digits, around them only spaces and tabs;
/// too large saturates.
pub(crate) fn delta_seconds(value: &str) -> Option<u64> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u64>().unwrap_or(u64::MAX))
}

/// `Expires` minus `Date` (RFC 9111 §4.2.1, §5.3). An `Expires` that is not one valid HTTP-date
/// (several lines, "0", garbage) is a time in the past, as §5.3 requires. Without a valid
/// `Date`, the time the response arrived stands in for it.
fn expires_lifetime(headers: &HeaderMap, response_time: SystemTime) -> Duration {
    let Some(expires) = single_date(headers, &header::EXPIRES) else {
        return Duration::ZERO;
    };
    let date = single_date(headers, &header::DATE).unwrap_or(response_time);
    expires
        .duration_since(date)
        .unwrap_or_default()
        .min(MAX_DELTA)
}

/// The one HTTP-date of a field; `None` when absent, invalid, or given more than once with
/// different values.
fn single_date(headers: &HeaderMap, name: &header::HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.any(|other| other != first) {
        return None;
    }
    parse_http_date(first.as_bytes())
}

/// The `Age` a response arrived with (RFC 9111 §5.1): `Some(Duration::ZERO)` when absent, the
/// first member of a list, and `None` when that is not a non-negative integer. A `None` age
/// means the response's freshness cannot be trusted: callers treat it as stale.
pub fn age_value(headers: &HeaderMap) -> Option<Duration> {
    let Some(first_line) = headers.get(header::AGE) else {
        return Some(Duration::ZERO);
    };
    let text = first_line.to_str().ok()?;
    // §5.1: a list-based Age: use its first member, discard the rest.
    let first = text.split(',').next().unwrap_or_default();
    delta_seconds(first).map(|s| Duration::from_secs(s).min(MAX_DELTA))
}

/// How old a response was when it arrived (RFC 9111 §4.2.3: `corrected_initial_age`). The
/// request went out at `request_time` and the response arrived at `response_time`. `None`
/// when its `Age` is invalid (see [`age_value`]).
pub fn age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Option<Duration> {
    let age_value = age_value(headers)?;
    // apparent_age = max(0, response_time - date_value)
    let apparent_age = single_date(headers, &header::DATE)
        .and_then(|date| response_time.duration_since(date).ok())
        .unwrap_or_default();
    // corrected_age_value = age_value + response_delay
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    let corrected_age_value = age_value + response_delay;
    Some(apparent_age.max(corrected_age_value).min(MAX_DELTA))
}

/// Whether a stored response may never be served stale (RFC 9111 §4.2.4, §5.2.2.2,
/// §5.2.2.4, §5.2.2.8): when it says `must-revalidate`, `no-cache`, or, to a shared cache,
/// `proxy-revalidate`.
///
/// `s-maxage` also implies `proxy-revalidate` for a shared cache (§5.2.2.10); that is left to
/// [`may_serve_stale_by_default`], because a response with `s-maxage` that grants its own
/// stale window (`stale-while-revalidate`, `stale-if-error`, RFC 5861) has said explicitly
/// that it may be served stale, as CDNs read it.
pub fn forbids_stale(cc: &CacheControl, shared: bool) -> bool {
    cc.has("must-revalidate") || cc.has("no-cache") || (shared && cc.has("proxy-revalidate"))
}

/// Whether a cache may serve the response stale on its own initiative (a stale window the
/// cache is configured with, not one the response grants): not when [`forbids_stale`], nor,
/// for a shared cache, when the response has `s-maxage` (RFC 9111 §5.2.2.10).
pub fn may_serve_stale_by_default(cc: &CacheControl, shared: bool) -> bool {
    let implied_proxy_revalidate = shared && cc.has("s-maxage");
    !(forbids_stale(cc, shared) || implied_proxy_revalidate)
}

/// A delta-seconds argument of `name` for the stale windows of RFC 5861
/// (`stale-while-revalidate`, `stale-if-error`), clamped; `None` when absent or invalid.
pub fn stale_window(cc: &CacheControl, name: &str) -> Option<Duration> {
    cc.value(name)
        .and_then(delta_seconds)
        .map(|s| Duration::from_secs(s).min(MAX_DELTA))
}

/// What a request's own `Cache-Control` asks of a stored response (RFC 9111 §5.2.1): how old
/// it may be, how much longer it must stay fresh, and how stale the client will take it.
///
/// ```
/// use std::time::Duration;
///
/// use tower_edge::http::{cache_control::CacheControl, freshness::Demand};
///
/// let secs = Duration::from_secs;
/// // Fresh for 60 s, 50 s old: fine for a plain request, not for one wanting 20 s more.
/// assert!(Demand::of(&CacheControl::parse_str("")).takes_fresh(secs(50), secs(60)));
/// assert!(!Demand::of(&CacheControl::parse_str("Min-Fresh=20")).takes_fresh(secs(50), secs(60)));
/// // `max-age=0` asks for a validated response (§5.2.1.1).
/// assert!(!Demand::of(&CacheControl::parse_str("max-age=0")).takes_fresh(secs(1), secs(60)));
/// // `max-stale` without a value takes a response stale by any amount (§5.2.1.2).
/// assert!(Demand::of(&CacheControl::parse_str("max-stale")).takes_stale(secs(90), secs(30)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    max_age: Option<Duration>,
    min_fresh: Option<Duration>,
    max_stale: Option<Duration>,
}

impl Demand {
    /// Reads `max-age`, `min-fresh` and `max-stale` from the request's directives, in any
    /// letter case. An argument that is not delta-seconds leaves its directive out, except for
    /// `max-stale`, whose value is optional: without one (or with one that does not parse) it
    /// takes a response stale by any amount.
    pub fn of(request: &CacheControl) -> Self {
        let seconds = |name: &str| {
            request
                .value(name)
                .and_then(delta_seconds)
                .map(Duration::from_secs)
        };
        Self {
            max_age: seconds("max-age"),
            min_fresh: seconds("min-fresh"),
            max_stale: request
                .has("max-stale")
                .then(|| seconds("max-stale").unwrap_or(Duration::MAX)),
        }
    }

    /// Whether a response of `age`, fresh for `lifetime` in all, may answer the request as a
    /// fresh response: it is fresh, no older than `max-age` (§5.2.1.1), and stays fresh for at
    /// least `min-fresh` more (§5.2.1.3).
    pub fn takes_fresh(&self, age: Duration, lifetime: Duration) -> bool {
        age < lifetime
            && self.max_age.is_none_or(|max| age <= max)
            && self.min_fresh.is_none_or(|min| lifetime - age >= min)
    }

    /// Whether the request refuses a response that is still fresh, because of its own
    /// `max-age` or `min-fresh`: then it asks for a validated response (RFC 9211 `fwd=request`),
    /// and nothing stale stands in.
    pub fn refuses_fresh(&self, age: Duration, lifetime: Duration) -> bool {
        age < lifetime && !self.takes_fresh(age, lifetime)
    }

    /// Whether the client takes a response of `age`, stale by `stale_by`, without validation
    /// (`max-stale`, §5.2.1.2). The response's own directives may still forbid it
    /// ([`forbids_stale`]); `max-age` still bounds its age.
    pub fn takes_stale(&self, age: Duration, stale_by: Duration) -> bool {
        self.max_stale.is_some_and(|max| stale_by <= max)
            && self.max_age.is_none_or(|max| age <= max)
    }
}

/// `Age` as a header value: whole seconds.
pub fn age_header(age: Duration) -> HeaderValue {
    let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    crate::http::value::ValueBuf::new()
        .int(secs)
        .finish()
        .unwrap_or_else(|| HeaderValue::from(age.as_secs()))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use proptest::prelude::*;

    use super::*;
    use crate::http::date::format_http_date;

    const NOW: u64 = 1_750_000_000;

    /// RFC 9111 §5.2.1.1–§5.2.1.3 on a response fresh for 60 s in all.
    #[test]
    fn request_directives_bound_what_a_stored_response_may_answer() {
        let secs = Duration::from_secs;
        let lifetime = secs(60);
        // (request directives, age, taken fresh, refused while fresh, taken stale)
        let table = [
            ("", 30, true, false, false),
            ("", 70, false, false, false),
            ("max-age=30", 30, true, false, false),
            ("MAX-AGE=29", 30, false, true, false),
            ("max-age=0", 0, true, false, false),
            ("max-age=0", 1, false, true, false),
            ("min-fresh=30", 30, true, false, false),
            ("Min-Fresh=31", 30, false, true, false),
            ("min-fresh=x", 30, true, false, false),
            ("max-stale=10", 70, false, false, true),
            ("max-stale=9", 70, false, false, false),
            ("max-stale", 7000, false, false, true),
            ("max-stale=\"10\"", 70, false, false, true),
            ("max-stale=junk", 7000, false, false, true),
            ("max-stale, max-age=65", 70, false, false, false),
            ("max-stale, max-age=70", 70, false, false, true),
        ];
        for (directives, age, fresh, refused, stale) in table {
            let demand = Demand::of(&CacheControl::parse_str(directives));
            let age = secs(age);
            let stale_by = age.saturating_sub(lifetime);
            assert_eq!(
                demand.takes_fresh(age, lifetime),
                fresh,
                "{directives} at {age:?}"
            );
            assert_eq!(
                demand.refuses_fresh(age, lifetime),
                refused,
                "{directives} at {age:?}"
            );
            assert_eq!(
                demand.takes_stale(age, stale_by),
                stale,
                "{directives} at {age:?}"
            );
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn lifetime(reader: Reader, fields: &[(&str, &str)]) -> Lifetime {
        let map = headers(fields);
        let cc = CacheControl::parse(map.get_all(header::CACHE_CONTROL));
        reader.lifetime(StatusCode::OK, &cc, &map, now())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn date(offset: i64) -> String {
        format_http_date(UNIX_EPOCH + Duration::from_secs(NOW.saturating_add_signed(offset)))
    }

    #[test]
    fn directive_names_count_in_any_case() {
        for cc in ["max-age=60", "Max-Age=60", "MAX-AGE=60", "mAx-AgE=60"] {
            assert_eq!(
                lifetime(Reader::shared(), &[("cache-control", cc)]),
                Lifetime::Explicit(secs(60)),
                "{cc}"
            );
        }
        assert_eq!(
            lifetime(
                Reader::shared(),
                &[("cache-control", "S-MAXAGE=5, max-age=60")]
            ),
            Lifetime::Explicit(secs(5))
        );
    }

    #[test]
    fn s_maxage_counts_for_shared_caches_only() {
        // RFC 9111 §5.2.2.10.
        let fields = [("cache-control", "max-age=60, s-maxage=5")];
        assert_eq!(
            lifetime(Reader::shared(), &fields),
            Lifetime::Explicit(secs(5))
        );
        assert_eq!(
            lifetime(Reader::private(), &fields),
            Lifetime::Explicit(secs(60))
        );
    }

    #[test]
    fn max_age_wins_over_expires() {
        // RFC 9111 §5.3: Expires is ignored when max-age is present.
        let fields = [
            ("cache-control", "max-age=60"),
            ("date", &date(0)),
            ("expires", &date(3600)),
        ];
        assert_eq!(
            lifetime(Reader::shared(), &fields),
            Lifetime::Explicit(secs(60))
        );
    }

    #[test]
    fn expires_counts_from_date_in_every_date_format() {
        // RFC 9110 §5.6.7: IMF-fixdate, RFC 850 and asctime are all accepted.
        let t = UNIX_EPOCH + Duration::from_secs(NOW);
        let fixdate = format_http_date(t + secs(120));
        let expires = [
            fixdate,
            httpdate_rfc850(t + secs(120)),
            httpdate_asctime(t + secs(120)),
        ];
        for e in expires {
            assert_eq!(
                lifetime(Reader::shared(), &[("date", &date(0)), ("expires", &e)]),
                Lifetime::Explicit(secs(120)),
                "{e}"
            );
        }
    }

    fn httpdate_rfc850(t: SystemTime) -> String {
        // "Sunday, 06-Nov-94 08:49:37 GMT" from the IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT".
        let fix = format_http_date(t);
        let day = match &fix[..3] {
            "Mon" => "Monday",
            "Tue" => "Tuesday",
            "Wed" => "Wednesday",
            "Thu" => "Thursday",
            "Fri" => "Friday",
            "Sat" => "Saturday",
            _ => "Sunday",
        };
        format!(
            "{day}, {}-{}-{} {}",
            &fix[5..7],
            &fix[8..11],
            &fix[14..16],
            &fix[17..]
        )
    }

    fn httpdate_asctime(t: SystemTime) -> String {
        // "Sun Nov  6 08:49:37 1994".
        let fix = format_http_date(t);
        let day: u32 = fix[5..7].parse().unwrap();
        format!(
            "{} {} {day:>2} {} {}",
            &fix[..3],
            &fix[8..11],
            &fix[17..25],
            &fix[12..16]
        )
    }

    #[test]
    fn an_invalid_expires_is_in_the_past() {
        // RFC 9111 §5.3: "0" and other invalid dates mean already expired.
        for e in ["0", "-1", "tomorrow", "Thu, 32 Jan 2099 00:00:00 GMT", ""] {
            assert_eq!(
                lifetime(Reader::shared(), &[("date", &date(0)), ("expires", e)]),
                Lifetime::Explicit(Duration::ZERO),
                "{e:?}"
            );
        }
        // Two different Expires lines: stale, not whichever is later.
        let fields = [
            ("date", &date(0)[..]),
            ("expires", &date(60)),
            ("expires", &date(600)),
        ];
        assert_eq!(
            lifetime(Reader::shared(), &fields),
            Lifetime::Explicit(Duration::ZERO)
        );
    }

    #[test]
    fn invalid_or_conflicting_max_age_is_stale() {
        // RFC 9111 §4.2.1: invalid freshness information means stale.
        for cc in [
            "max-age=abc",
            "max-age=-5",
            "max-age=1.5",
            "max-age",
            "max-age=",
            "max-age=60, max-age=120",
            "s-maxage=x, max-age=60",
        ] {
            assert_eq!(
                lifetime(Reader::shared(), &[("cache-control", cc)]),
                Lifetime::Explicit(Duration::ZERO),
                "{cc}"
            );
        }
        // The same value twice is no conflict; a quoted value is read too.
        assert_eq!(
            lifetime(
                Reader::shared(),
                &[
                    ("cache-control", "max-age=60"),
                    ("cache-control", "max-age=60")
                ]
            ),
            Lifetime::Explicit(secs(60))
        );
        assert_eq!(
            lifetime(Reader::shared(), &[("cache-control", "max-age=\"60\"")]),
            Lifetime::Explicit(secs(60))
        );
    }

    #[test]
    fn huge_lifetimes_are_clamped() {
        // RFC 9111 §1.2.2: 2^31 is as large as a cache needs.
        assert_eq!(
            lifetime(
                Reader::shared(),
                &[("cache-control", "max-age=99999999999999999999999")]
            ),
            Lifetime::Explicit(MAX_DELTA)
        );
    }

    #[test]
    fn heuristics_only_where_allowed() {
        let lm = date(-10 * 24 * 3600);
        let fields = [("date", &date(0)[..]), ("last-modified", &lm)];
        // Off unless asked for.
        assert_eq!(lifetime(Reader::shared(), &fields), Lifetime::None);
        let reader = Reader::shared().heuristic(10, secs(24 * 3600));
        // 10% of ten days: one day, which is also the cap.
        assert_eq!(
            lifetime(reader, &fields),
            Lifetime::Heuristic(secs(24 * 3600))
        );
        let recent = date(-1000);
        assert_eq!(
            lifetime(reader, &[("date", &date(0)), ("last-modified", &recent)]),
            Lifetime::Heuristic(secs(100))
        );
        // Not for a status outside RFC 9110 §15.1's list, unless public.
        let map = headers(&fields);
        let none = CacheControl::default();
        assert_eq!(
            reader.lifetime(StatusCode::FOUND, &none, &map, now()),
            Lifetime::None
        );
        let public = CacheControl::parse_str("public");
        assert!(matches!(
            reader.lifetime(StatusCode::FOUND, &public, &map, now()),
            Lifetime::Heuristic(_)
        ));
        // Never without Last-Modified.
        assert_eq!(lifetime(reader, &[("date", &date(0))]), Lifetime::None);
    }

    #[test]
    fn heuristically_cacheable_statuses_are_rfc_9110s_list() {
        let cacheable: Vec<u16> = (100..600)
            .filter(|&s| is_heuristically_cacheable(StatusCode::from_u16(s).unwrap()))
            .collect();
        assert_eq!(
            cacheable,
            [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]
        );
    }

    #[test]
    fn age_follows_section_4_2_3() {
        // Absent: zero (plus transit and apparent age).
        assert_eq!(age(&headers(&[]), now(), now()), Some(Duration::ZERO));
        // Age plus the response delay.
        assert_eq!(
            age(&headers(&[("age", "30")]), now() - secs(2), now()),
            Some(secs(32))
        );
        // The apparent age wins when larger (a Date 100 s in the past).
        assert_eq!(
            age(
                &headers(&[("age", "30"), ("date", &date(-100))]),
                now(),
                now()
            ),
            Some(secs(100))
        );
        // A Date in the future is no negative age.
        assert_eq!(
            age(&headers(&[("date", &date(100))]), now(), now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn a_list_age_uses_its_first_member_and_an_invalid_one_is_untrusted() {
        // RFC 9111 §5.1.
        assert_eq!(age_value(&headers(&[("age", "7200, 0")])), Some(secs(7200)));
        assert_eq!(
            age_value(&headers(&[("age", "7200"), ("age", "0")])),
            Some(secs(7200))
        );
        for bad in ["-1", "abc", "1.5", "", "0x10", ", 5"] {
            assert_eq!(age_value(&headers(&[("age", bad)])), None, "{bad:?}");
        }
        assert_eq!(
            age_value(&headers(&[("age", "99999999999999999999")])),
            Some(MAX_DELTA)
        );
    }

    #[test]
    fn stale_is_forbidden_by_the_revalidation_directives() {
        for (cc, shared, forbidden) in [
            ("must-revalidate", true, true),
            ("Must-Revalidate", false, true),
            ("no-cache", true, true),
            ("NO-CACHE", true, true),
            ("proxy-revalidate", true, true),
            ("proxy-revalidate", false, false),
            ("s-maxage=60", true, false),
            ("max-age=60, stale-while-revalidate=30", true, false),
        ] {
            assert_eq!(
                forbids_stale(&CacheControl::parse_str(cc), shared),
                forbidden,
                "{cc} shared={shared}"
            );
        }
        // s-maxage implies proxy-revalidate for a shared cache: no stale window of its own.
        let s_maxage = CacheControl::parse_str("S-MaxAge=60");
        assert!(!may_serve_stale_by_default(&s_maxage, true));
        assert!(may_serve_stale_by_default(&s_maxage, false));
        assert!(may_serve_stale_by_default(
            &CacheControl::parse_str("max-age=60"),
            true
        ));
    }

    proptest! {
        #[test]
        fn lifetimes_never_panic_and_stay_clamped(
            cc in "[ -~]{0,60}",
            expires in "[ -~]{0,40}",
            age_field in "[ -~]{0,20}",
            status in 100u16..600,
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in [(header::CACHE_CONTROL, &cc), (header::EXPIRES, &expires), (header::AGE, &age_field)] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    map.insert(name, v);
                }
            }
            let parsed = CacheControl::parse(map.get_all(header::CACHE_CONTROL));
            let status = StatusCode::from_u16(status).unwrap();
            for reader in [Reader::shared(), Reader::private().heuristic(10, MAX_DELTA)] {
                prop_assert!(reader.lifetime(status, &parsed, &map, now()).duration() <= MAX_DELTA);
            }
            if let Some(a) = age(&map, now() - secs(5), now()) {
                prop_assert!(a <= MAX_DELTA);
            }
        }

        #[test]
        fn a_valid_max_age_reads_back_in_any_case(secs_ in 0u64..(1 << 31), mask in any::<u8>()) {
            let name: String = "max-age"
                .chars()
                .enumerate()
                .map(|(i, c)| if mask & (1 << (i % 8)) != 0 { c.to_ascii_uppercase() } else { c })
                .collect();
            let fields = [("cache-control", format!("{name}={secs_}"))];
            let map = headers(&[("cache-control", &fields[0].1)]);
            let cc = CacheControl::parse(map.get_all(header::CACHE_CONTROL));
            prop_assert_eq!(
                Reader::shared().lifetime(StatusCode::OK, &cc, &map, now()),
                Lifetime::Explicit(Duration::from_secs(secs_))
            );
        }
    }
}
