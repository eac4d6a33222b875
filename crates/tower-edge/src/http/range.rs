//! Byte ranges (RFC 9110 §14): parsing `Range`, resolving it against a representation's length,
//! and the framing of `multipart/byteranges` answers.
//!
//! [`evaluate`] is what a layer calls: it applies the rules of §14.2 (only `GET`, one `Range`
//! field, `If-Range` through [`preconditions::if_range`](super::preconditions::if_range)) and says
//! whether to send the whole representation (`200`), some ranges of it (`206`), or
//! `416 Range Not Satisfiable`.
//!
//! ```
//! use tower_edge::http::range::{ByteRange, RangeLimits, Resolution, resolve};
//!
//! let limits = RangeLimits::new();
//! // Overlapping and adjacent ranges are coalesced; the last one is clamped to the length.
//! let r = resolve(b"bytes=0-9, 5-19, 20-29, 90-200", 100, &limits);
//! assert_eq!(
//!     r,
//!     Resolution::Partial(vec![ByteRange::new(0, 29), ByteRange::new(90, 99)])
//! );
//! assert_eq!(resolve(b"bytes=100-", 100, &limits), Resolution::Unsatisfiable);
//! // An unknown unit or a malformed field is ignored: the whole representation is sent.
//! assert_eq!(resolve(b"pages=1-2", 100, &limits), Resolution::Full);
//! assert_eq!(resolve(b"bytes=9-3", 100, &limits), Resolution::Full);
//! ```
//!
//! # Abuse limits
//!
//! A `Range` field is a cheap way to ask a server for a lot of work: thousands of tiny ranges, or
//! the same bytes many times over (`bytes=0-,0-,0-,…`). §14.2 lets a server ignore such a field,
//! and [`resolve`] does, answering with the whole representation (`200`) when:
//!
//! - the field names more ranges than [`RangeLimits::max_ranges`] (16 by default), counted as
//!   written, before coalescing; or
//! - the satisfiable ranges, summed as written (before coalescing), ask for more bytes than the
//!   representation holds: overlapping requests can never cost more than a plain `200`.
//!
//! Below those limits, overlapping and adjacent ranges are merged (§14.2 allows it), so no byte
//! is sent twice and a request that coalesces to one range gets a plain `206`. Otherwise the
//! parts keep the order of the request (§15.3.7.2): `bytes=9-9,0-0` answers byte 9 first.
//!
//! # Empty representations
//!
//! §14.2 lets a server ignore `Range` when the representation has no content; [`resolve`] does
//! (a `200` with an empty body), since no `Content-Range` can name a byte of it.

use std::{
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, header};

use super::preconditions::{Validators, if_range};

/// One satisfiable byte range: `first..=last`, both within the representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRange {
    first: u64,
    last: u64,
}

impl ByteRange {
    /// The range `first..=last` (inclusive, as in `Content-Range`).
    ///
    /// # Panics
    ///
    /// When `last < first`.
    pub fn new(first: u64, last: u64) -> Self {
        assert!(first <= last, "a byte range ends at or after its start");
        Self { first, last }
    }

    /// The offset of the first byte.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The offset of the last byte (inclusive).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The number of bytes in the range (never zero).
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Always `false`: a satisfiable range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value for this range of a representation of `complete` bytes:
    /// `bytes first-last/complete` (§14.4).
    pub fn content_range(&self, complete: u64) -> HeaderValue {
        let text = format!("bytes {}-{}/{complete}", self.first, self.last);
        HeaderValue::try_from(text).expect("digits and ASCII punctuation")
    }
}

/// Parses the `Content-Range` of a single-part `206`: `bytes first-last/complete` (RFC 9110
/// §14.4), with a known complete length and `first <= last < complete`.
///
/// Anything else (another unit, an unknown length `*`, the `bytes */len` of a 416, a range
/// outside the representation, digits that overflow) is `None`: a part this cache cannot place.
///
/// ```
/// use tower_edge::http::range::{ByteRange, parse_content_range};
///
/// assert_eq!(parse_content_range(b"bytes 0-499/1234"), Some((ByteRange::new(0, 499), 1234)));
/// assert_eq!(parse_content_range(b"bytes 0-499/*"), None);
/// assert_eq!(parse_content_range(b"bytes 500-1234/1234"), None);
/// ```
pub fn parse_content_range(value: &[u8]) -> Option<(ByteRange, u64)> {
    let value = std::str::from_utf8(value).ok()?;
    let (unit, rest) = value.trim_matches([' ', '\t']).split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, complete) = rest.trim_start_matches(' ').split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().ok())
            .flatten()
    };
    let (first, last, complete) = (number(first)?, number(last)?, number(complete)?);
    (first <= last && last < complete).then(|| (ByteRange::new(first, last), complete))
}

/// The `Content-Range` of a `416` answer: `bytes */complete` (§14.4, §15.5.17).
pub fn unsatisfied_content_range(complete: u64) -> HeaderValue {
    HeaderValue::try_from(format!("bytes */{complete}")).expect("digits and ASCII punctuation")
}

/// Limits on what a `Range` field may ask for; beyond them it is ignored (see the
/// [module docs](self#abuse-limits)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLimits {
    max_ranges: usize,
}

impl Default for RangeLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeLimits {
    /// The defaults: at most 16 ranges.
    pub fn new() -> Self {
        Self { max_ranges: 16 }
    }

    /// The most ranges one `Range` field may name, before coalescing; a field naming more is
    /// answered with the whole representation. `0` turns range support off.
    ///
    /// Defaults to 16.
    #[must_use]
    pub fn max_ranges(mut self, n: usize) -> Self {
        self.max_ranges = n;
        self
    }

    /// The configured maximum number of ranges.
    pub fn get_max_ranges(&self) -> usize {
        self.max_ranges
    }
}

/// What to send for a request, once its `Range` is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Send the whole representation with `200`: there is no `Range`, or it is to be ignored
    /// (another method than `GET`, an unknown unit, a malformed field, `If-Range` not matching,
    /// a field over the limits, an empty representation).
    Full,
    /// Send these ranges with `206`, in this order: non-overlapping, non-adjacent, within the
    /// representation, at least one, and in the order the request named them (a merged range
    /// where its first member stood).
    Partial(Vec<ByteRange>),
    /// Answer `416 Range Not Satisfiable` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Resolves a request's `Range` for a representation of `len` bytes (RFC 9110 §14.2).
///
/// Range handling is defined for `GET` only: any other method, no `Range` field, more than one
/// `Range` field line, or an `If-Range` that does not hold (strong comparison, through
/// [`if_range`]) gives [`Resolution::Full`]. `validators` are those of the representation,
/// `now` the origin's clock. Call this after the preconditions of §13.2.2 have let the request
/// proceed: a range is evaluated last (step 5).
pub fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    len: u64,
    validators: &Validators,
    now: SystemTime,
    limits: &RangeLimits,
) -> Resolution {
    if method != Method::GET {
        return Resolution::Full;
    }
    let mut values = headers.get_all(header::RANGE).iter();
    let Some(value) = values.next() else {
        return Resolution::Full;
    };
    // A list of Range fields is not a valid ranges-specifier (§14.2: singleton field).
    if values.next().is_some() {
        return Resolution::Full;
    }
    // §13.1.5: when the If-Range condition is false, the Range is ignored.
    if !if_range(headers, validators, now) {
        return Resolution::Full;
    }
    resolve(value.as_bytes(), len, limits)
}

/// Resolves one `Range` field value against a representation of `len` bytes.
///
/// This is the pure part of [`evaluate`]: no method, no `If-Range`.
pub fn resolve(value: &[u8], len: u64, limits: &RangeLimits) -> Resolution {
    let Some(specs) = parse(value, limits.max_ranges) else {
        return Resolution::Full;
    };
    if len == 0 {
        return Resolution::Full;
    }
    let mut ranges = Vec::with_capacity(specs.len());
    let mut requested: u64 = 0;
    for spec in specs {
        if let Some(range) = spec.satisfy(len) {
            requested = requested.saturating_add(range.len());
            ranges.push(range);
        }
    }
    // §14.1.1: a set with no satisfiable range is unsatisfiable.
    if ranges.is_empty() {
        return Resolution::Unsatisfiable;
    }
    // Asking for more bytes than a 200 would carry: answer with the 200.
    if requested > len {
        return Resolution::Full;
    }
    Resolution::Partial(coalesce(ranges))
}

/// Merges the ranges that overlap or touch (§14.2 allows it "regardless of the order in which
/// the corresponding range-spec appeared"), and keeps the order of the request otherwise:
/// §15.3.7.2 asks for the parts "in the same order that the corresponding range-spec appeared",
/// so a merged range stands where the first of its members stood.
fn coalesce(ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    let mut by_start: Vec<(usize, ByteRange)> = ranges.into_iter().enumerate().collect();
    by_start.sort_unstable_by_key(|(_, r)| r.first);
    // (position in the request, merged range)
    let mut merged: Vec<(usize, ByteRange)> = Vec::with_capacity(by_start.len());
    for (position, range) in by_start {
        match merged.last_mut() {
            Some((first_seen, prev)) if range.first <= prev.last.saturating_add(1) => {
                prev.last = prev.last.max(range.last);
                *first_seen = (*first_seen).min(position);
            }
            _ => merged.push((position, range)),
        }
    }
    merged.sort_unstable_by_key(|(position, _)| *position);
    merged.into_iter().map(|(_, range)| range).collect()
}

/// One `range-spec` as written (§14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-` (`last` is `None`).
    From { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

impl Spec {
    fn satisfy(self, len: u64) -> Option<ByteRange> {
        match self {
            // §14.1.2: a first-pos at or past the end is unsatisfiable; a last-pos past the
            // end is clamped to the last byte.
            Spec::From { first, last } => (first < len).then(|| ByteRange {
                first,
                last: last.map_or(len - 1, |l| l.min(len - 1)),
            }),
            // §14.1.2: a suffix longer than the representation means all of it; a suffix of
            // zero bytes is unsatisfiable.
            Spec::Suffix(n) => (n > 0).then(|| ByteRange {
                first: len.saturating_sub(n),
                last: len - 1,
            }),
        }
    }
}

/// Parses `bytes=range-set`; `None` for another unit, a syntax error, or more than `max` specs.
fn parse(value: &[u8], max: usize) -> Option<Vec<Spec>> {
    let value = trim(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    // §14.1: range units are compared case-insensitively.
    if !trim(&value[..eq]).eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    // No whitespace is allowed between the unit and "=" in the grammar, but trimming it costs
    // nothing and hurts no one; anything else before "=" was rejected above.
    let mut specs = Vec::new();
    // §5.6.1: a recipient accepts empty list elements (", ,") but needs at least one member.
    for element in value[eq + 1..].split(|&b| b == b',') {
        let element = trim(element);
        if element.is_empty() {
            continue;
        }
        if specs.len() == max {
            return None;
        }
        specs.push(parse_spec(element)?);
    }
    (!specs.is_empty()).then_some(specs)
}

fn parse_spec(spec: &[u8]) -> Option<Spec> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(Spec::From { first, last: None });
    }
    let last = digits(last)?;
    // §14.1.1: a byte-range-spec whose last-pos is less than its first-pos is invalid, which
    // makes the whole field invalid (and so ignored).
    (last >= first).then_some(Spec::From {
        first,
        last: Some(last),
    })
}

/// `1*DIGIT`, saturating: a position too large for `u64` is past the end of any representation,
/// and a suffix that large means the whole representation, so saturation keeps the meaning.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else { return &[] };
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &s[start..=end]
}

/// The framing of a `multipart/byteranges` body (§14.6): the boundary, each part's header block,
/// the closing delimiter, and the total length, known before any byte is sent.
///
/// A body is, for each range, [`part_header`](Self::part_header) then the range's bytes, and then
/// [`closing`](Self::closing) once.
#[derive(Clone, Debug)]
pub struct Multipart {
    boundary: String,
    content_type: Option<HeaderValue>,
    complete: u64,
}

impl Multipart {
    /// Framing for parts of a representation of `complete` bytes whose own `Content-Type` is
    /// `content_type` (repeated in each part, as §14.6 asks), with a fresh boundary.
    ///
    /// The boundary is 32 hexadecimal digits drawn from the standard library's randomly keyed
    /// hasher and a process-wide counter: not cryptographic, but no one can predict it to plant it
    /// in a body, and the chance of it occurring in a file by accident is 2⁻¹²⁸ per position.
    pub fn new(content_type: Option<HeaderValue>, complete: u64) -> Self {
        Self::with_boundary(fresh_boundary(), content_type, complete)
    }

    /// Framing with a given boundary (for tests and reproducible output). The boundary must be
    /// 1 to 70 characters of the RFC 2046 set; others are replaced with a fresh one.
    pub fn with_boundary(
        boundary: impl Into<String>,
        content_type: Option<HeaderValue>,
        complete: u64,
    ) -> Self {
        let mut boundary = boundary.into();
        if !is_valid_boundary(&boundary) {
            boundary = fresh_boundary();
        }
        Self {
            boundary,
            content_type,
            complete,
        }
    }

    /// The boundary string.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The response's `Content-Type`: `multipart/byteranges; boundary=…`.
    pub fn content_type(&self) -> HeaderValue {
        HeaderValue::try_from(format!("multipart/byteranges; boundary={}", self.boundary))
            .expect("boundary characters are valid in a header")
    }

    /// The delimiter and header block that precede range `range`'s bytes.
    pub fn part_header(&self, range: ByteRange) -> Bytes {
        let mut out = BytesMut::with_capacity(128 + self.boundary.len());
        out.put_slice(b"\r\n--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"\r\n");
        if let Some(ct) = &self.content_type {
            out.put_slice(b"Content-Type: ");
            out.put_slice(ct.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Range: ");
        out.put_slice(range.content_range(self.complete).as_bytes());
        out.put_slice(b"\r\n\r\n");
        out.freeze()
    }

    /// The closing delimiter after the last part.
    pub fn closing(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
    }

    /// The length of the whole body for these ranges: part headers, bytes and closing delimiter.
    pub fn body_len(&self, ranges: &[ByteRange]) -> u64 {
        let framing: u64 = ranges
            .iter()
            .map(|r| self.part_header(*r).len() as u64 + r.len())
            .sum();
        framing + self.closing().len() as u64
    }
}

fn is_valid_boundary(b: &str) -> bool {
    // RFC 2046 §5.1.1 bchars, without the space so the value needs no quoting.
    (1..=70).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&c))
}

fn fresh_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = std::hash::RandomState::new();
    let mut hi = state.build_hasher();
    hi.write_u64(n);
    let mut lo = state.build_hasher();
    lo.write_u64(!n);
    format!("{:016x}{:016x}", hi.finish(), lo.finish())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn parses_a_single_part_content_range() {
        let ok = [
            ("bytes 0-0/1", (0, 0, 1)),
            ("bytes 10-19/20", (10, 19, 20)),
            ("BYTES 1-2/3", (1, 2, 3)),
            (" bytes  4-5/6 ", (4, 5, 6)),
        ];
        for (value, (first, last, complete)) in ok {
            assert_eq!(
                parse_content_range(value.as_bytes()),
                Some((ByteRange::new(first, last), complete)),
                "{value:?}"
            );
        }
        for value in [
            "bytes */10",
            "bytes 0-9/*",
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes -1-2/3",
            "bytes +1-2/3",
            "items 0-1/2",
            "bytes 0-1",
            "bytes 0-99999999999999999999/100000000000000000000",
            "",
        ] {
            assert_eq!(parse_content_range(value.as_bytes()), None, "{value:?}");
        }
    }

    use proptest::prelude::*;

    use super::*;
    use crate::http::{date::format_http_date, etag::EntityTag};

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange::new(first, last)
    }

    fn res(value: &str, len: u64) -> Resolution {
        resolve(value.as_bytes(), len, &RangeLimits::new())
    }

    fn partial(ranges: &[(u64, u64)]) -> Resolution {
        Resolution::Partial(ranges.iter().map(|&(a, b)| r(a, b)).collect())
    }

    #[test]
    fn parses_the_three_forms_of_range_spec() {
        assert_eq!(res("bytes=0-499", 10_000), partial(&[(0, 499)]));
        assert_eq!(res("bytes=9500-", 10_000), partial(&[(9500, 9999)]));
        assert_eq!(res("bytes=-500", 10_000), partial(&[(9500, 9999)]));
        assert_eq!(res("bytes=0-0", 1), partial(&[(0, 0)]));
    }

    #[test]
    fn clamps_last_pos_and_long_suffixes_to_the_representation() {
        assert_eq!(res("bytes=5-1000", 10), partial(&[(5, 9)]));
        assert_eq!(res("bytes=-1000", 10), partial(&[(0, 9)]));
        assert_eq!(
            res("bytes=0-99999999999999999999999999", 10),
            partial(&[(0, 9)])
        );
    }

    #[test]
    fn unsatisfiable_when_no_range_starts_inside() {
        assert_eq!(res("bytes=10-", 10), Resolution::Unsatisfiable);
        assert_eq!(res("bytes=10-20, 30-40", 10), Resolution::Unsatisfiable);
        assert_eq!(res("bytes=-0", 10), Resolution::Unsatisfiable);
        assert_eq!(
            res("bytes=99999999999999999999999-", 10),
            Resolution::Unsatisfiable
        );
    }

    #[test]
    fn unsatisfiable_parts_of_a_list_are_dropped() {
        assert_eq!(res("bytes=50-60, 0-1", 10), partial(&[(0, 1)]));
    }

    #[test]
    fn ignores_unknown_units_and_malformed_fields() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=5-4",
            "bytes=0-1,x",
            "bytes=+1-2",
            "bytes=0x10-",
            "=0-1",
            "items=0-1",
            "bytes 0-1",
            "bytes=0 -1",
        ] {
            assert_eq!(res(value, 100), Resolution::Full, "{value:?}");
        }
    }

    #[test]
    fn accepts_whitespace_empty_elements_and_any_case_unit() {
        assert_eq!(res(" BYTES=0-1 ,\t, 5-6 ,", 10), partial(&[(0, 1), (5, 6)]));
    }

    #[test]
    fn coalesces_overlapping_and_adjacent_ranges_in_any_order() {
        assert_eq!(res("bytes=5-9,0-4", 100), partial(&[(0, 9)]));
        // The merged range stands where its first member stood.
        assert_eq!(
            res("bytes=20-29,0-9,5-14", 100),
            partial(&[(20, 29), (0, 14)])
        );
        assert_eq!(
            res("bytes=50-59,20-29,25-35", 100),
            partial(&[(50, 59), (20, 35)])
        );
        assert_eq!(res("bytes=0-0,2-2", 100), partial(&[(0, 0), (2, 2)]));
    }

    #[test]
    fn keeps_the_order_of_the_request() {
        // RFC 9110 §15.3.7.2.
        assert_eq!(res("bytes=9-9,0-0", 100), partial(&[(9, 9), (0, 0)]));
        assert_eq!(res("bytes=-10,0-0", 100), partial(&[(90, 99), (0, 0)]));
        assert_eq!(
            res("bytes=40-49,0-9,20-29", 100),
            partial(&[(40, 49), (0, 9), (20, 29)])
        );
    }

    #[test]
    fn answers_full_when_the_ranges_ask_for_more_than_the_representation() {
        assert_eq!(res("bytes=0-,0-", 100), Resolution::Full);
        assert_eq!(res("bytes=0-60,40-99", 100), Resolution::Full);
        // Exactly the representation, in two overlapping-free pieces: still ranges.
        assert_eq!(res("bytes=0-49,50-99", 100), partial(&[(0, 99)]));
    }

    #[test]
    fn answers_full_when_there_are_too_many_ranges() {
        let many = (0..17)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(res(&format!("bytes={many}"), 1000), Resolution::Full);
        let limits = RangeLimits::new().max_ranges(17);
        assert!(matches!(
            resolve(format!("bytes={many}").as_bytes(), 1000, &limits),
            Resolution::Partial(v) if v.len() == 17
        ));
        let off = RangeLimits::new().max_ranges(0);
        assert_eq!(resolve(b"bytes=0-1", 10, &off), Resolution::Full);
    }

    #[test]
    fn ignores_ranges_of_an_empty_representation() {
        assert_eq!(res("bytes=0-", 0), Resolution::Full);
        assert_eq!(res("bytes=-5", 0), Resolution::Full);
    }

    #[test]
    fn formats_content_range() {
        assert_eq!(r(0, 499).content_range(1234), "bytes 0-499/1234");
        assert_eq!(unsatisfied_content_range(1234), "bytes */1234");
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    const T0: u64 = 1_700_000_000;

    fn validators() -> Validators {
        Validators::new()
            .with_etag(EntityTag::strong("v1").unwrap())
            .with_last_modified(UNIX_EPOCH + Duration::from_secs(T0))
    }

    fn eval(method: &Method, pairs: &[(header::HeaderName, &str)]) -> Resolution {
        let now = UNIX_EPOCH + Duration::from_secs(T0 + 3600);
        evaluate(
            method,
            &headers(pairs),
            100,
            &validators(),
            now,
            &RangeLimits::new(),
        )
    }

    #[test]
    fn evaluates_range_for_get_only() {
        let range = [(header::RANGE, "bytes=0-9")];
        assert_eq!(eval(&Method::GET, &range), partial(&[(0, 9)]));
        for method in [Method::HEAD, Method::POST, Method::PUT] {
            assert_eq!(eval(&method, &range), Resolution::Full);
        }
        assert_eq!(eval(&Method::GET, &[]), Resolution::Full);
    }

    #[test]
    fn ignores_a_list_of_range_fields() {
        let h = [(header::RANGE, "bytes=0-9"), (header::RANGE, "bytes=20-29")];
        assert_eq!(eval(&Method::GET, &h), Resolution::Full);
    }

    #[test]
    fn honours_range_only_when_if_range_holds() {
        let date = format_http_date(UNIX_EPOCH + Duration::from_secs(T0));
        let later = format_http_date(UNIX_EPOCH + Duration::from_secs(T0 + 1));
        let cases = [
            ("\"v1\"", true),
            ("W/\"v1\"", false),
            ("\"v2\"", false),
            (date.as_str(), true),
            (later.as_str(), false),
            ("garbage", false),
        ];
        for (if_range, honoured) in cases {
            let got = eval(
                &Method::GET,
                &[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, if_range)],
            );
            let want = if honoured {
                partial(&[(0, 9)])
            } else {
                Resolution::Full
            };
            assert_eq!(got, want, "If-Range: {if_range}");
        }
    }

    #[test]
    fn multipart_framing_has_the_length_it_announces() {
        let ct = HeaderValue::from_static("text/plain");
        let m = Multipart::with_boundary("XYZ", Some(ct), 100);
        let ranges = [r(0, 4), r(10, 19)];
        let mut body = Vec::new();
        for range in ranges {
            body.extend_from_slice(&m.part_header(range));
            body.extend(std::iter::repeat_n(b'a', range.len() as usize));
        }
        body.extend_from_slice(&m.closing());
        assert_eq!(body.len() as u64, m.body_len(&ranges));
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(
            "\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-4/100\r\n\r\naaaaa"
        ));
        assert!(text.ends_with("\r\n--XYZ--\r\n"));
        assert_eq!(m.content_type(), "multipart/byteranges; boundary=XYZ");
    }

    #[test]
    fn fresh_boundaries_differ_and_are_valid() {
        let a = Multipart::new(None, 1);
        let b = Multipart::new(None, 1);
        assert_ne!(a.boundary(), b.boundary());
        assert!(is_valid_boundary(a.boundary()));
        assert_eq!(a.boundary().len(), 32);
        let bad = Multipart::with_boundary("has space", None, 1);
        assert!(is_valid_boundary(bad.boundary()));
    }

    proptest! {
        #[test]
        fn resolve_never_panics_on_arbitrary_bytes(value in proptest::collection::vec(any::<u8>(), 0..64), len in any::<u64>()) {
            let _ = resolve(&value, len, &RangeLimits::new());
        }

        #[test]
        fn resolved_ranges_are_disjoint_and_in_bounds(
            specs in proptest::collection::vec((proptest::option::of(0u64..300), proptest::option::of(0u64..300)), 1..20),
            len in 0u64..256,
        ) {
            let set: Vec<String> = specs.iter().map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => format!("{a}-{b}"),
                (Some(a), None) => format!("{a}-"),
                (None, Some(b)) => format!("-{b}"),
                (None, None) => String::from("-"),
            }).collect();
            let value = format!("bytes={}", set.join(","));
            match resolve(value.as_bytes(), len, &RangeLimits::new()) {
                Resolution::Partial(ranges) => {
                    prop_assert!(!ranges.is_empty());
                    prop_assert!(ranges.len() <= 16);
                    let mut sorted = ranges.clone();
                    sorted.sort_by_key(ByteRange::first);
                    for w in sorted.windows(2) {
                        // Disjoint, and separated by at least one byte.
                        prop_assert!(w[0].last() + 1 < w[1].first());
                    }
                    for range in &ranges {
                        prop_assert!(range.first() <= range.last());
                        prop_assert!(range.last() < len);
                    }
                    let total: u64 = ranges.iter().map(ByteRange::len).sum();
                    prop_assert!(total <= len);
                }
                Resolution::Unsatisfiable => prop_assert!(len > 0),
                Resolution::Full => {}
            }
        }

        #[test]
        fn agrees_with_a_byte_set_model(
            specs in proptest::collection::vec((0u64..64, 0u64..64), 1..6),
            len in 1u64..64,
        ) {
            let set: Vec<String> = specs.iter().map(|(a, b)| {
                let (a, b) = ((*a).min(*b), (*a).max(*b));
                format!("{a}-{b}")
            }).collect();
            let value = format!("bytes={}", set.join(","));
            // The model: the set of bytes asked for, within the representation.
            let mut wanted = vec![false; len as usize];
            let mut requested = 0;
            for (a, b) in &specs {
                let (a, b) = ((*a).min(*b), (*a).max(*b));
                if a < len {
                    let b = b.min(len - 1);
                    requested += b - a + 1;
                    for i in a..=b { wanted[i as usize] = true; }
                }
            }
            let got = resolve(value.as_bytes(), len, &RangeLimits::new());
            if !wanted.iter().any(|&w| w) {
                prop_assert_eq!(got, Resolution::Unsatisfiable);
            } else if requested > len {
                prop_assert_eq!(got, Resolution::Full);
            } else {
                let Resolution::Partial(ranges) = got else { panic!("expected ranges") };
                let mut covered = vec![false; len as usize];
                for range in ranges {
                    for i in range.first()..=range.last() { covered[i as usize] = true; }
                }
                prop_assert_eq!(covered, wanted);
            }
        }
    }
}
