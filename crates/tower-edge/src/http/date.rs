//! HTTP dates (RFC 9110 §5.6.7), through `httpdate`.
//!
//! All three formats are accepted on input (IMF-fixdate, the obsolete RFC 850 form and asctime);
//! output is always IMF-fixdate. HTTP dates have one-second precision, so every comparison in this
//! crate first truncates times with [`truncate_to_seconds`].
//!
//! ```
//! use tower_edge::http::date::{format_http_date, parse_http_date};
//!
//! let t = parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT").unwrap();
//! assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// Parses an HTTP-date in any of the three formats RFC 9110 §5.6.7 requires recipients to accept.
///
/// Leading and trailing whitespace is allowed. Anything else, including a list of dates, is
/// `None`: a recipient must then ignore the field (RFC 9110 §13.1.3, §13.1.4).
pub fn parse_http_date(value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    httpdate::parse_http_date(text).ok()
}

/// Parses the value of a header that must hold exactly one HTTP-date.
///
/// More than one field line counts as a list and yields `None`.
pub(crate) fn parse_single<'a>(
    mut values: impl Iterator<Item = &'a HeaderValue>,
) -> Option<SystemTime> {
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(first.as_bytes())
}

/// Formats a time as an IMF-fixdate, truncating to the second.
pub fn format_http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// Formats a time as an IMF-fixdate header value (for `Last-Modified`, `Date`, `Expires`).
pub fn http_date_value(time: SystemTime) -> HeaderValue {
    HeaderValue::try_from(format_http_date(time)).expect("an IMF-fixdate is a valid header value")
}

/// Drops the sub-second part: the precision of an HTTP-date.
///
/// Times before the Unix epoch are returned unchanged (no HTTP-date can name them).
pub fn truncate_to_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXPECTED: u64 = 784_111_777; // 1994-11-06T08:49:37Z

    #[test]
    fn parses_all_three_formats() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            let t = parse_http_date(text.as_bytes()).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(t, UNIX_EPOCH + Duration::from_secs(EXPECTED), "{text}");
        }
    }

    #[test]
    fn tolerates_surrounding_whitespace() {
        assert!(parse_http_date(b" \tSun, 06 Nov 1994 08:49:37 GMT ").is_some());
    }

    #[test]
    fn rejects_garbage_and_lists() {
        for text in [
            &b""[..],
            b"yesterday",
            b"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
            b"Sun, 32 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 25:49:37 GMT",
            b"1994-11-06T08:49:37Z",
            b"\xff\xfe",
        ] {
            assert!(
                parse_http_date(text).is_none(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn more_than_one_field_line_is_a_list() {
        let a = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(parse_single([&a].into_iter()).is_some());
        assert!(parse_single([&a, &a].into_iter()).is_none());
    }

    #[test]
    fn truncates_subsecond_precision() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(truncate_to_seconds(t), UNIX_EPOCH + Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_http_date(&input);
        }

        #[test]
        fn imf_fixdate_round_trips(secs in 0u64..253_402_300_799) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let text = format_http_date(t);
            prop_assert_eq!(parse_http_date(text.as_bytes()), Some(t));
            let value = http_date_value(t);
            prop_assert_eq!(value.to_str().unwrap(), text);
        }
    }
}
