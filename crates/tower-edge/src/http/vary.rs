//! `Vary` (RFC 9110 §12.5.5), read in one place: the cache's secondary keys, what a revalidated
//! response keeps, and the `Accept-Encoding` the compression layer adds all go through [`Vary`].
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header};
//! use tower_edge::http::vary::{self, Vary};
//!
//! let mut headers = HeaderMap::new();
//! headers.append(header::VARY, HeaderValue::from_static("Accept-Language, cookie"));
//! vary::add(&mut headers, header::ACCEPT_ENCODING);
//! vary::add(&mut headers, header::COOKIE); // already listed
//!
//! let vary = Vary::of(&headers);
//! assert!(vary.lists(&header::ACCEPT_ENCODING));
//! assert_eq!(vary.names().unwrap().len(), 3);
//! headers.insert(header::VARY, HeaderValue::from_static("*"));
//! assert_eq!(Vary::of(&headers), Vary::Any);
//! ```

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// The request fields a response's representation was chosen on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vary {
    /// `*`, or a member that is not a field name: the choice depends on more than the request's
    /// fields, and no later request matches it (RFC 9111 §4.1).
    Any,
    /// The names listed on every `Vary` line, lower case, each once, in the order first listed.
    /// Empty when the response has no `Vary`.
    Names(Vec<HeaderName>),
}

impl Vary {
    /// Reads every `Vary` line of `headers`. Empty members (`a,,b`) are skipped.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut names: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::VARY) {
            let Ok(value) = value.to_str() else {
                return Self::Any;
            };
            for member in value.split(',').map(|m| m.trim_matches([' ', '\t'])) {
                if member.is_empty() {
                    continue;
                }
                // `*` is a valid token, so it is looked for before names are.
                if member == "*" {
                    return Self::Any;
                }
                // `HeaderName` lowercases, so names compare in any letter case.
                match HeaderName::from_bytes(member.as_bytes()) {
                    Ok(name) if !names.contains(&name) => names.push(name),
                    Ok(_) => {}
                    Err(_) => return Self::Any,
                }
            }
        }
        Self::Names(names)
    }

    /// The names, unless the response varies on anything (`*`).
    pub fn names(&self) -> Option<&[HeaderName]> {
        match self {
            Self::Any => None,
            Self::Names(names) => Some(names),
        }
    }

    /// Whether `name` is listed (`*` lists no name, though it matches no request).
    pub fn lists(&self, name: &HeaderName) -> bool {
        self.names().is_some_and(|names| names.contains(name))
    }
}

/// Adds `name` to the `Vary` of `headers`, unless it is listed already or the `Vary` is `*`
/// (which already covers it).
pub fn add(headers: &mut HeaderMap, name: HeaderName) {
    let vary = Vary::of(headers);
    if vary == Vary::Any || vary.lists(&name) {
        return;
    }
    headers.append(header::VARY, HeaderValue::from(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(lines: &[&'static str]) -> Vary {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::VARY, HeaderValue::from_static(line));
        }
        Vary::of(&headers)
    }

    fn names(list: &[&'static str]) -> Vary {
        Vary::Names(list.iter().map(|n| HeaderName::from_static(n)).collect())
    }

    #[test]
    fn reads_every_line_in_any_case_once() {
        assert_eq!(of(&[]), names(&[]));
        assert_eq!(
            of(&[
                "Accept-Encoding,accept-language",
                " ACCEPT-ENCODING ,, Cookie\t"
            ]),
            names(&["accept-encoding", "accept-language", "cookie"])
        );
    }

    #[test]
    fn a_star_or_a_member_that_is_no_field_name_varies_on_anything() {
        for lines in [&["*"][..], &["accept, *"], &["accept", "x y"], &["a\"b"]] {
            assert_eq!(of(lines), Vary::Any, "{lines:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::VARY, HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(Vary::of(&headers), Vary::Any);
    }

    #[test]
    fn add_appends_only_what_is_missing() {
        let mut headers = HeaderMap::new();
        add(&mut headers, header::ACCEPT_ENCODING);
        add(&mut headers, header::ACCEPT_ENCODING);
        assert_eq!(headers.get_all(header::VARY).iter().count(), 1);
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        add(&mut headers, header::ACCEPT_ENCODING);
        assert_eq!(headers.get_all(header::VARY).iter().count(), 1);
        headers.insert(header::VARY, HeaderValue::from_static("*"));
        add(&mut headers, header::COOKIE);
        assert_eq!(headers[header::VARY], "*");
    }
}
