//! Which of the fields the layers act on a request carries, found in one pass over its names.

use http::{HeaderMap, header};

use super::preconditions::CONDITIONAL_HEADERS;

/// Which of the fields the layers act on a request carries. Found in one pass over its header
/// names, since each lookup by name hashes the name, and every request asks about most of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(dead_code)] // each layer reads the fields it acts on
pub(crate) struct Asks {
    /// Any of the preconditions of RFC 9110 §13.2.2 (as
    /// [`has_preconditions`](super::preconditions::has_preconditions)).
    pub(crate) conditional: bool,
    pub(crate) range: bool,
    pub(crate) authorization: bool,
    pub(crate) cache_control: bool,
    pub(crate) pragma: bool,
}

impl Asks {
    #[allow(dead_code)] // unused when no layer feature is on
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut asks = Self::default();
        // `keys` yields each name once, however many lines it has.
        for name in headers.keys() {
            if CONDITIONAL_HEADERS.contains(name) {
                asks.conditional = true;
            } else if name == header::RANGE {
                asks.range = true;
            } else if name == header::AUTHORIZATION {
                asks.authorization = true;
            } else if name == header::CACHE_CONTROL {
                asks.cache_control = true;
            } else if name == header::PRAGMA {
                asks.pragma = true;
            }
        }
        asks
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::http::preconditions::has_preconditions;

    #[test]
    fn one_pass_agrees_with_a_lookup_of_each_field() {
        let fields = [
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
            header::AUTHORIZATION,
            header::CACHE_CONTROL,
            header::PRAGMA,
            header::ACCEPT,
            HeaderName::from_static("x-range"),
        ];
        // Every subset of the fields, each present with one line or two.
        for subset in 0u32..1 << fields.len() {
            let mut headers = HeaderMap::new();
            for (i, name) in fields.iter().enumerate() {
                if subset & (1 << i) != 0 {
                    headers.append(name.clone(), HeaderValue::from_static("1"));
                    if subset.count_ones() % 2 == 0 {
                        headers.append(name.clone(), HeaderValue::from_static("2"));
                    }
                }
            }
            let expected = Asks {
                conditional: has_preconditions(&headers),
                range: headers.contains_key(header::RANGE),
                authorization: headers.contains_key(header::AUTHORIZATION),
                cache_control: headers.contains_key(header::CACHE_CONTROL),
                pragma: headers.contains_key(header::PRAGMA),
            };
            assert_eq!(Asks::of(&headers), expected, "{headers:?}");
        }
    }
}
