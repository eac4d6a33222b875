//! `Cache-Control` and `CDN-Cache-Control` directives (RFC 9111 §5.2, RFC 9213).
//!
//! [`CacheControl::parse`] reads every field line into a list of directives, tolerating what
//! RFC 9110 §5.6.1 asks recipients to tolerate (empty list members, whitespace, any case) and
//! quoted values with commas inside. The cache layer uses it for the directives its policy crate
//! does not cover (`stale-while-revalidate`, `stale-if-error`) and to tell explicit freshness
//! from none.
//!
//! ```
//! use tower_edge::http::cache_control::CacheControl;
//!
//! let cc = CacheControl::parse_str("public, Max-Age=60, stale-while-revalidate=\"30\", no-cache=\"set-cookie, x\"");
//! assert!(cc.has("public"));
//! assert_eq!(cc.seconds("max-age"), Some(60));
//! assert_eq!(cc.seconds("stale-while-revalidate"), Some(30));
//! assert_eq!(cc.value("no-cache"), Some("set-cookie, x"));
//! ```

use std::time::Duration;

use http::HeaderValue;

/// The directives of one `Cache-Control`-style header, in order, names lowercased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    directives: Vec<(String, Option<String>)>,
}

impl CacheControl {
    /// Parses every field line of the header as one list (RFC 9110 §5.3).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut cc = Self::default();
        for value in values {
            // Non-UTF-8 bytes can only sit inside quoted values; a lossy reading keeps the rest.
            cc.extend(&String::from_utf8_lossy(value.as_bytes()));
        }
        cc
    }

    /// Parses one field value.
    pub fn parse_str(value: &str) -> Self {
        let mut cc = Self::default();
        cc.extend(value);
        cc
    }

    fn extend(&mut self, value: &str) {
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return;
            }
            let name_end = rest.find(['=', ',']).unwrap_or(rest.len());
            let name = rest[..name_end].trim().to_ascii_lowercase();
            rest = &rest[name_end..];
            let mut argument = None;
            if let Some(after_eq) = rest.strip_prefix('=') {
                let after_eq = after_eq.trim_start_matches([' ', '\t']);
                if let Some(quoted) = after_eq.strip_prefix('"') {
                    // quoted-string (RFC 9110 §5.6.4): ends at the first unescaped quote.
                    let mut out = String::new();
                    let mut chars = quoted.char_indices();
                    let mut end = quoted.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, escaped)) = chars.next() {
                                    out.push(escaped);
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            c => out.push(c),
                        }
                    }
                    argument = Some(out);
                    rest = &quoted[end.min(quoted.len())..];
                    // Skip anything between the closing quote and the next comma.
                    rest = &rest[rest.find(',').unwrap_or(rest.len())..];
                } else {
                    let end = after_eq.find(',').unwrap_or(after_eq.len());
                    argument = Some(after_eq[..end].trim().to_owned());
                    rest = &after_eq[end..];
                }
            }
            if !name.is_empty() && !name.contains([' ', '\t', '"']) {
                self.directives.push((name, argument));
            }
        }
    }

    /// Whether the directive is present (with or without an argument). `name` is compared
    /// without regard to ASCII case, as directive names are (RFC 9111 §5.2).
    pub fn has(&self, name: &str) -> bool {
        self.directives
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The first argument of the directive, if it has one. `name` is compared without regard
    /// to ASCII case.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    /// A delta-seconds argument (RFC 9111 §1.2.2): digits only; a value too large for the
    /// platform saturates, and anything else (negative, empty, fractional) is `None`, which
    /// RFC 9111 §4.2.1 asks caches to treat as invalid.
    pub fn seconds(&self, name: &str) -> Option<u64> {
        let value = self.value(name)?;
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(value.parse::<u64>().unwrap_or(u64::MAX))
    }

    /// [`CacheControl::seconds`] as a [`Duration`].
    pub fn duration(&self, name: &str) -> Option<Duration> {
        self.seconds(name).map(Duration::from_secs)
    }

    /// Whether the header held no directive at all.
    pub fn is_empty(&self) -> bool {
        self.directives.is_empty()
    }

    /// The directives in order, names lowercased.
    pub fn directives(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.directives
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
    }
}

/// A `Cache-Control` value for a handler to send, built from typed directives instead of a
/// string: durations in whole seconds (RFC 9111 §1.2.2), directives that contradict one another
/// impossible to combine by mistake.
///
/// With feature `axum`, a handler returns it next to its body.
///
/// ```
/// use std::time::Duration;
///
/// use tower_edge::http::cache_control::Directives;
///
/// let cc = Directives::public()
///     .max_age(Duration::from_secs(60))
///     .stale_while_revalidate(Duration::from_secs(30));
/// assert_eq!(cc.to_string(), "public, max-age=60, stale-while-revalidate=30");
/// assert_eq!(Directives::no_store().to_string(), "no-store");
/// assert_eq!(
///     Directives::private().no_cache().to_string(),
///     "private, no-cache"
/// );
/// ```
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use std::time::Duration;
///
/// use axum::{Router, routing::get};
/// use tower_edge::http::cache_control::Directives;
///
/// async fn catalogue() -> (Directives, &'static str) {
///     (Directives::public().max_age(Duration::from_secs(300)), "[...]")
/// }
/// let app: Router = Router::new().route("/catalogue", get(catalogue));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directives {
    // `public`, `private` or `no-store`: who may keep it at all.
    scope: &'static str,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_while_revalidate: Option<u64>,
    stale_if_error: Option<u64>,
    no_cache: bool,
    must_revalidate: bool,
    immutable: bool,
}

impl Directives {
    fn scoped(scope: &'static str) -> Self {
        Self {
            scope,
            max_age: None,
            s_maxage: None,
            stale_while_revalidate: None,
            stale_if_error: None,
            no_cache: false,
            must_revalidate: false,
            immutable: false,
        }
    }

    /// `public`: any cache, shared ones included, may keep it.
    pub fn public() -> Self {
        Self::scoped("public")
    }

    /// `private`: only the client's own cache may keep it; a shared cache (this crate's
    /// `ResponseCacheLayer` included) never stores it.
    pub fn private() -> Self {
        Self::scoped("private")
    }

    /// `no-store`: no cache keeps it. Further directives are ignored: nothing is stored for
    /// them to act on.
    pub fn no_store() -> Self {
        Self::scoped("no-store")
    }

    fn stores(&self) -> bool {
        self.scope != "no-store"
    }

    /// `max-age`: fresh for this long.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age.as_secs());
        self
    }

    /// `s-maxage`: fresh for this long in shared caches (overrides `max-age` there).
    #[must_use]
    pub fn s_maxage(mut self, age: Duration) -> Self {
        self.s_maxage = Some(age.as_secs());
        self
    }

    /// `stale-while-revalidate` (RFC 5861): may be served stale this long while a cache
    /// refreshes it in the background.
    #[must_use]
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = Some(window.as_secs());
        self
    }

    /// `stale-if-error` (RFC 5861): may be served stale this long when the origin fails.
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window.as_secs());
        self
    }

    /// `no-cache`: may be stored, but is validated with the origin before every use.
    #[must_use]
    pub fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// `must-revalidate`: never served stale, whatever a stale window says.
    #[must_use]
    pub fn must_revalidate(mut self) -> Self {
        self.must_revalidate = true;
        self
    }

    /// `immutable` (RFC 8246): will not change while fresh; browsers skip revalidating it on
    /// reload. For content-hashed assets.
    #[must_use]
    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// The header value.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::try_from(self.to_string()).expect("directives are ASCII tokens and digits")
    }
}

impl std::fmt::Display for Directives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scope)?;
        if !self.stores() {
            return Ok(());
        }
        let seconds = [
            ("max-age", self.max_age),
            ("s-maxage", self.s_maxage),
            ("stale-while-revalidate", self.stale_while_revalidate),
            ("stale-if-error", self.stale_if_error),
        ];
        for (name, value) in seconds {
            if let Some(value) = value {
                write!(f, ", {name}={value}")?;
            }
        }
        let flags = [
            ("no-cache", self.no_cache),
            ("must-revalidate", self.must_revalidate),
            ("immutable", self.immutable),
        ];
        for (name, set) in flags {
            if set {
                write!(f, ", {name}")?;
            }
        }
        Ok(())
    }
}

impl From<Directives> for HeaderValue {
    fn from(directives: Directives) -> Self {
        directives.to_header_value()
    }
}

/// Sets `Cache-Control`, so a handler can return `(directives, body)`.
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponseParts for Directives {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum_core::response::ResponseParts,
    ) -> Result<axum_core::response::ResponseParts, Self::Error> {
        res.headers_mut()
            .insert(http::header::CACHE_CONTROL, self.to_header_value());
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lookups_ignore_the_case_of_the_name_asked_for() {
        let cc = CacheControl::parse_str("Max-Age=5, NO-STORE");
        assert!(cc.has("no-store") && cc.has("No-Store"));
        assert_eq!(cc.seconds("MAX-AGE"), Some(5));
        assert_eq!(cc.value("max-age"), Some("5"));
    }

    #[test]
    fn reads_every_line_as_one_list() {
        let a = HeaderValue::from_static("max-age=10");
        let b = HeaderValue::from_static("  , S-MAXAGE=20 ,,private");
        let cc = CacheControl::parse([&a, &b]);
        assert_eq!(cc.seconds("max-age"), Some(10));
        assert_eq!(cc.seconds("s-maxage"), Some(20));
        assert!(cc.has("private"));
        assert!(!cc.has("public"));
    }

    #[test]
    fn invalid_delta_seconds_are_none() {
        for bad in [
            "max-age=-1",
            "max-age=",
            "max-age=1.5",
            "max-age=abc",
            "max-age",
        ] {
            assert_eq!(
                CacheControl::parse_str(bad).seconds("max-age"),
                None,
                "{bad}"
            );
        }
        let huge = CacheControl::parse_str("max-age=99999999999999999999999");
        assert_eq!(huge.seconds("max-age"), Some(u64::MAX));
        assert_eq!(
            CacheControl::parse_str("max-age=\"5\"").seconds("max-age"),
            Some(5)
        );
    }

    #[test]
    fn quoted_values_keep_commas_and_escapes() {
        let cc = CacheControl::parse_str(r#"private="a, b", no-cache="x\"y", public"#);
        assert_eq!(cc.value("private"), Some("a, b"));
        assert_eq!(cc.value("no-cache"), Some("x\"y"));
        assert!(cc.has("public"));
        let unterminated = CacheControl::parse_str("private=\"a, b");
        assert_eq!(unterminated.value("private"), Some("a, b"));
    }

    #[test]
    fn garbage_yields_no_bogus_directives() {
        assert!(CacheControl::parse_str("").is_empty());
        assert!(CacheControl::parse_str(" , ,, ").is_empty());
        assert!(!CacheControl::parse_str("no store").has("no-store"));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,64}") {
            let cc = CacheControl::parse_str(&s);
            for (name, _) in cc.directives() {
                prop_assert!(!name.is_empty());
                prop_assert_eq!(name.to_ascii_lowercase(), name);
            }
        }

        #[test]
        fn round_trips_simple_directives(
            names in proptest::collection::vec("[a-z][a-z-]{0,10}", 1..6),
            values in proptest::collection::vec(proptest::option::of(0u64..1_000_000), 6),
        ) {
            let text: Vec<String> = names.iter().zip(&values).map(|(n, v)| match v {
                Some(v) => format!("{n}={v}"),
                None => n.clone(),
            }).collect();
            let cc = CacheControl::parse_str(&text.join(", "));
            let parsed: Vec<_> = cc.directives().map(|(n, v)| (n.to_owned(), v.map(str::to_owned))).collect();
            let expected: Vec<_> = names.iter().zip(&values).map(|(n, v)| (n.clone(), v.map(|v| v.to_string()))).collect();
            prop_assert_eq!(parsed, expected);
        }
    }
}
