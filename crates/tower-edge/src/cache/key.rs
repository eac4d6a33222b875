//! What identifies a stored response: the resource (method class, scheme, host, path, normalized
//! query) and the variant (negotiated encoding, `Vary` values, the user key).

use http::{HeaderMap, HeaderName, Uri, header, request::Parts};
use tower_edge_store::CacheKey;

use crate::http::vary::Vary;

/// Which query parameters take part in the key.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueryPolicy {
    pub(crate) allow: Option<Vec<String>>,
    pub(crate) deny: Vec<String>,
}

impl QueryPolicy {
    /// The query with its parameters sorted (so `?b=1&a=2` and `?a=2&b=1` share an entry),
    /// filtered through the allow and deny lists. Parameters keep their encoded form.
    pub(crate) fn normalize(&self, query: Option<&str>) -> String {
        let Some(query) = query else {
            return String::new();
        };
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or(p);
                let allowed = self
                    .allow
                    .as_ref()
                    .is_none_or(|allow| allow.iter().any(|a| a == name));
                allowed && !self.deny.iter().any(|d| d == name)
            })
            .collect();
        // A stable sort keeps repeated parameters in their order (`?a=1&a=2` is not `?a=2&a=1`).
        params.sort_by_key(|p| p.split('=').next().unwrap_or(p));
        params.join("&")
    }
}

/// Which origin a stored response is keyed under, and a handle's invalidations address (see
/// [`ResponseCacheLayer::key_origin`](super::ResponseCacheLayer::key_origin)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The request's own: scheme and `Host` (or the absolute URI's authority). A handle
    /// addresses its own origin: the request's, in a handler. The default.
    #[default]
    Request,
    /// One origin for every request, whatever its `Host`: for a site reached under several
    /// names (`localhost`, `127.0.0.1`), or behind a proxy that terminates TLS and forwards
    /// `http`. Every handle addresses it. Made by [`KeyOrigin::fixed`].
    Fixed(String),
    /// No origin in keys at all, for a service that answers one site only: keys start at the
    /// path, and every handle addresses them.
    None,
}

/// The error [`KeyOrigin::fixed`] returns for what is not `scheme://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOrigin {
    given: String,
}

impl std::fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} is not an origin: expected http:// or https:// and a host[:port], with no path",
            self.given
        )
    }
}

impl std::error::Error for InvalidOrigin {}

impl KeyOrigin {
    /// A fixed origin, `http://` or `https://` and `host[:port]`, lowercased; a trailing `/` is
    /// dropped.
    ///
    /// ```
    /// use tower_edge::cache::KeyOrigin;
    ///
    /// let origin = KeyOrigin::fixed("https://Example.COM/").unwrap();
    /// assert_eq!(origin, KeyOrigin::Fixed("https://example.com".into()));
    /// assert!(KeyOrigin::fixed("example.com").is_err());
    /// assert!(KeyOrigin::fixed("https://example.com/shop").is_err());
    /// ```
    pub fn fixed(origin: &str) -> Result<Self, InvalidOrigin> {
        let invalid = || InvalidOrigin {
            given: origin.to_owned(),
        };
        let trimmed = origin.strip_suffix('/').unwrap_or(origin);
        let (scheme, host) = trimmed.split_once("://").ok_or_else(invalid)?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") || !is_plain_authority(host.as_bytes()) {
            return Err(invalid());
        }
        Ok(Self::Fixed(format!(
            "{scheme}://{}",
            host.to_ascii_lowercase()
        )))
    }

    /// The origin a request is keyed under; `None` when its host cannot be keyed without
    /// ambiguity (see [`origin`]), whatever the policy: such a request bypasses the cache.
    pub(crate) fn of(&self, parts: &Parts) -> Option<String> {
        let (scheme, host) = authority(parts)?;
        let mut out = String::with_capacity(self.len(scheme, host));
        self.push(scheme, host, &mut out);
        Some(out)
    }

    /// Appends the origin keys carry for a request naming `scheme` and `host` (see
    /// [`authority`]) to `out`.
    fn push(&self, scheme: &str, host: &str, out: &mut String) {
        match self {
            Self::Request => push_origin(out, scheme, host),
            Self::Fixed(fixed) => out.push_str(fixed),
            Self::None => {}
        }
    }

    /// The length of what [`KeyOrigin::push`] appends.
    fn len(&self, scheme: &str, host: &str) -> usize {
        match self {
            Self::Request => scheme.len() + 3 + host.len(),
            Self::Fixed(fixed) => fixed.len(),
            Self::None => 0,
        }
    }
}

/// The origin of a [`CacheHandle`](super::CacheHandle) given to a request that has none
/// ([`origin`] is `None`). `.invalid` is reserved (RFC 6761 §6.4); and since such a request never
/// reads or stores, the handle's invalidations only reach entries under this name.
pub(crate) const UNKEYABLE_ORIGIN: &str = "http://unkeyable.invalid";

/// `scheme://host[:port]` of the request, lowercased: from an absolute URI (without any
/// userinfo), else the `Host` header. `None` when the request names its host in a way that cannot
/// go into a key without ambiguity: several `Host` lines, a value that is not a plain
/// `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2), an authority-form target, or a scheme other
/// than `http` and `https`. Such a request bypasses the cache: a `Host`
/// of `example.com/private` must not produce the key of `/private/…` on `example.com`.
pub(crate) fn origin(parts: &Parts) -> Option<String> {
    let (scheme, host) = authority(parts)?;
    let mut origin = String::with_capacity(scheme.len() + 3 + host.len());
    push_origin(&mut origin, scheme, host);
    Some(origin)
}

/// The scheme and the `host[:port]` (as the request wrote it) of [`origin`]; `None` where it is.
fn authority(parts: &Parts) -> Option<(&'static str, &str)> {
    let scheme = match parts.uri.scheme_str() {
        None => "http",
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        // Not a resource this cache knows how to name (and the `http` crate lets an empty
        // scheme through).
        Some(_) => return None,
    };
    let host = match parts.uri.authority() {
        // Authority-form (`host:port` alone) is for CONNECT only.
        Some(_) if parts.uri.scheme().is_none() => return None,
        Some(authority) => {
            let hostport = authority.as_str().rsplit('@').next().unwrap_or_default();
            if !is_plain_authority(hostport.as_bytes()) {
                return None;
            }
            hostport.as_bytes()
        }
        None => {
            let mut lines = parts.headers.get_all(header::HOST).iter();
            match (lines.next(), lines.next()) {
                (None, _) => &[][..],
                (Some(host), None) if is_plain_authority(host.as_bytes()) => host.as_bytes(),
                _ => return None,
            }
        }
    };
    // Checked to be ASCII above.
    Some((scheme, std::str::from_utf8(host).ok()?))
}

/// `scheme://host`, the host lowercased once copied (it is ASCII: see [`authority`]).
fn push_origin(out: &mut String, scheme: &str, host: &str) {
    out.push_str(scheme);
    out.push_str("://");
    let at = out.len();
    out.push_str(host);
    out[at..].make_ascii_lowercase();
}

/// `host[:port]` with a registered name, IPv4 or bracketed IPv6 host: no userinfo, path, query,
/// fragment, whitespace or other delimiters.
fn is_plain_authority(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 255 + 6
        && value.iter().all(|&b| AUTHORITY_BYTES[usize::from(b)])
}

/// The bytes [`is_plain_authority`] allows, by value: this runs on every request.
const AUTHORITY_BYTES: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut b = 0u8;
    loop {
        allowed[b as usize] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b':'
                    | b'['
                    | b']'
            );
        if b == u8::MAX {
            break allowed;
        }
        b += 1;
    }
};

/// The resource string of a GET (or HEAD) for `uri` at `origin`, as invalidations name it (a
/// lookup writes it with [`request_resource`]).
pub(crate) fn resource(origin: &str, uri: &Uri, query: &QueryPolicy) -> String {
    let query = query.normalize(uri.query());
    let path = uri.path();
    let mut out = String::with_capacity(4 + origin.len() + path.len() + 1 + query.len());
    out.push_str("GET ");
    out.push_str(origin);
    push_target(&mut out, path, &query);
    out
}

/// [`resource`] for a request, its origin as `key_origin` keys it after `prefix`: the same
/// string as `resource(prefix + origin, ..)`, written in one buffer with no origin string of its
/// own. `None` when the request's host cannot be keyed (see [`origin`]).
pub(crate) fn request_resource(
    prefix: &str,
    key_origin: &KeyOrigin,
    parts: &Parts,
    query: &QueryPolicy,
) -> Option<String> {
    let (scheme, host) = authority(parts)?;
    let query = query.normalize(parts.uri.query());
    let path = parts.uri.path();
    // One allocation, this runs on every lookup: the resource, and room for the usual variant
    // parts the key adds after it (`|enc=identity`, a user key).
    let mut out = String::with_capacity(
        4 + prefix.len()
            + key_origin.len(scheme, host)
            + path.len()
            + 1
            + query.len()
            + VARIANT_ROOM,
    );
    out.push_str("GET ");
    out.push_str(prefix);
    key_origin.push(scheme, host, &mut out);
    push_target(&mut out, path, &query);
    Some(out)
}

fn push_target(out: &mut String, path: &str, query: &str) {
    out.push_str(path);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
}

/// The bytes [`request_resource`] leaves free for the variant parts of [`base_key`].
const VARIANT_ROOM: usize = 48;

/// The key before `Vary`: resource, negotiated encoding, user key.
pub(crate) fn base_key(resource: String, encoding: &str, user: Option<&str>) -> CacheKey {
    let key = CacheKey::from_string(resource).with_variant("enc", encoding);
    match user {
        Some(user) => key.with_variant("user", user),
        None => key,
    }
}

/// The header names of a `Vary` value, lowercased, sorted, without `Accept-Encoding` (the
/// negotiated encoding is already in the key). `None` for `Vary: *`, which matches no later
/// request.
pub(crate) fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vary::of(headers)
        .names()?
        .iter()
        .filter(|name| **name != header::ACCEPT_ENCODING)
        .cloned()
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// The full key: the base key plus the request's value of each name in `vary` (all field lines,
/// joined, whitespace around commas removed, so equivalent requests share an entry).
///
/// The `Accept` family (`Accept`, `Accept-Charset`, `Accept-Encoding`, `Accept-Language`) is
/// normalised further (RFC 9111 §4.1 allows it where the field's semantics do): names in lower
/// case, empty members dropped, weights written one way (`q=0.50` is `q=0.5`, `q=1` is no
/// weight), members ordered by weight. Members of equal weight keep their order, which some
/// origins read as a preference.
pub(crate) fn vary_key(base: CacheKey, vary: &[HeaderName], request: &HeaderMap) -> CacheKey {
    vary.iter().fold(base, |key, name| {
        let parts: Vec<&[u8]> = request
            .get_all(name)
            .iter()
            .flat_map(|line| line.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .collect();
        let value = match accept_family(name).then(|| normalized_accept(&parts)) {
            Some(Some(normalized)) => normalized.into_bytes(),
            _ => parts.join(&b","[..]),
        };
        key.with_variant(&format!("vary:{name}"), value)
    })
}

fn accept_family(name: &HeaderName) -> bool {
    [
        header::ACCEPT,
        header::ACCEPT_CHARSET,
        header::ACCEPT_ENCODING,
        header::ACCEPT_LANGUAGE,
    ]
    .contains(name)
}

/// One way of writing an `Accept`-style list (see [`vary_key`]); `None` for bytes that are not
/// text, which are keyed as they are.
fn normalized_accept(members: &[&[u8]]) -> Option<String> {
    let mut weighted: Vec<(u16, String)> = Vec::with_capacity(members.len());
    for member in members {
        let member = std::str::from_utf8(member).ok()?;
        let mut pieces = member.split(';').map(str::trim);
        let Some(token) = pieces.next().filter(|t| !t.is_empty()) else {
            continue;
        };
        let mut written = token.to_ascii_lowercase();
        let mut weight = 1000;
        for param in pieces.filter(|p| !p.is_empty()) {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            let name = name.trim().to_ascii_lowercase();
            match (name.as_str(), qvalue(value.trim())) {
                ("q", Some(q)) => weight = q,
                _ => {
                    written.push(';');
                    written.push_str(&name);
                    if !value.is_empty() {
                        written.push('=');
                        written.push_str(value.trim());
                    }
                }
            }
        }
        if weight != 1000 {
            let thousandths = format!("{weight:03}");
            let digits = thousandths.trim_end_matches('0');
            if digits.is_empty() {
                written.push_str(";q=0");
            } else {
                written.push_str(";q=0.");
                written.push_str(digits);
            }
        }
        weighted.push((weight, written));
    }
    // Stable: members of equal weight keep the request's order.
    weighted.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    Some(
        weighted
            .into_iter()
            .map(|(_, member)| member)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// A weight (RFC 9110 §12.4.2) in thousandths: `0`, `0.5`, `1.000`; `None` if malformed.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction_value: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(fraction_value),
        "1" if fraction_value == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Request};

    fn accept_key(name: HeaderName, lines: &[&str]) -> CacheKey {
        let mut request = HeaderMap::new();
        for line in lines {
            request.append(name.clone(), HeaderValue::from_str(line).unwrap());
        }
        vary_key(CacheKey::new("GET http://a/"), &[name], &request)
    }

    #[test]
    fn equivalent_accept_lists_share_a_variant() {
        // RFC 9111 §4.1: case, whitespace, empty members and how a weight is written.
        let lang = header::ACCEPT_LANGUAGE;
        let reference = accept_key(lang.clone(), &["en-US, fr;q=0.5"]);
        for same in [
            &["en-us,fr;q=0.5"][..],
            &["EN-us ,  FR;Q=0.50"],
            &["fr;q=0.500, en-US"],
            &["en-US;q=1.0", "fr;q=0.5"],
            &["en-US,,fr; q=0.5,"],
        ] {
            assert_eq!(accept_key(lang.clone(), same), reference, "{same:?}");
        }
        // Members of equal weight keep their order; other weights are other variants.
        assert_ne!(accept_key(lang.clone(), &["fr, en-US"]), reference);
        assert_ne!(accept_key(lang, &["en-US, fr;q=0.4"]), reference);
        assert_eq!(
            accept_key(header::ACCEPT_ENCODING, &["GZIP;q=0, br"]),
            accept_key(header::ACCEPT_ENCODING, &["br, gzip;q=0.0"])
        );
    }

    #[test]
    fn weights_are_read_as_rfc_9110_writes_them() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        for bad in ["1.5", "0.1234", "2", "", "abc", "-0.5", "0.x"] {
            assert_eq!(qvalue(bad), None, "{bad:?}");
        }
        // A malformed weight stays in the key as written, a variant of its own.
        assert_ne!(
            accept_key(header::ACCEPT_LANGUAGE, &["fr;q=abc"]),
            accept_key(header::ACCEPT_LANGUAGE, &["fr"])
        );
    }

    #[test]
    fn query_is_sorted_and_filtered() {
        let all = QueryPolicy::default();
        assert_eq!(all.normalize(Some("b=1&a=2&&c")), "a=2&b=1&c");
        assert_eq!(all.normalize(Some("a=2&a=1")), "a=2&a=1");
        let deny = QueryPolicy {
            allow: None,
            deny: vec!["utm_source".into(), "fbclid".into()],
        };
        assert_eq!(
            deny.normalize(Some("page=2&utm_source=x&fbclid=1")),
            "page=2"
        );
        let allow = QueryPolicy {
            allow: Some(vec!["page".into()]),
            deny: Vec::new(),
        };
        assert_eq!(allow.normalize(Some("sort=asc&page=2")), "page=2");
        assert_eq!(allow.normalize(None), "");
    }

    #[test]
    fn a_request_resource_is_the_resource_of_its_keyed_origin() {
        let requests = [
            Request::get("/p?b=2&a=1").header(header::HOST, "Example.COM:8080"),
            Request::get("/").header(header::HOST, "[::1]:3000"),
            Request::get("https://A.test/q%7C?x"),
            Request::get("http://user@b.test/r"),
            Request::get("/no-host"),
            // Not keyable: two Host lines, a host with a path, a scheme other than http(s).
            Request::get("/")
                .header(header::HOST, "a")
                .header(header::HOST, "b"),
            Request::get("/").header(header::HOST, "a.test/private"),
            Request::get("ftp://a.test/f"),
        ];
        let policies = [
            KeyOrigin::Request,
            KeyOrigin::fixed("https://Fixed.example").unwrap(),
            KeyOrigin::None,
        ];
        let queries = [
            QueryPolicy::default(),
            QueryPolicy {
                allow: Some(vec!["a".into()]),
                deny: Vec::new(),
            },
        ];
        for request in requests {
            let (parts, ()) = request.body(()).unwrap().into_parts();
            for policy in &policies {
                for query in &queries {
                    for prefix in ["", "tenant-1:"] {
                        let expected = policy
                            .of(&parts)
                            .map(|o| resource(&format!("{prefix}{o}"), &parts.uri, query));
                        let got = request_resource(prefix, policy, &parts, query);
                        assert_eq!(got, expected, "{:?} {policy:?} {prefix}", parts.uri);
                        if let Some(got) = got {
                            assert!(got.capacity() >= got.len() + VARIANT_ROOM, "{got}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn resource_uses_host_header_or_absolute_uri() {
        let (parts, ()) = Request::get("/p?x=1")
            .header(header::HOST, "Example.COM")
            .body(())
            .unwrap()
            .into_parts();
        let o = origin(&parts).unwrap();
        assert_eq!(o, "http://example.com");
        assert_eq!(
            resource(&o, &parts.uri, &QueryPolicy::default()),
            "GET http://example.com/p?x=1"
        );
        let (parts, ()) = Request::get("https://a.test/q")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(origin(&parts).unwrap(), "https://a.test");
        let (parts, ()) = Request::get("https://user@A.test:8443/q")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(origin(&parts).unwrap(), "https://a.test:8443");
    }

    #[test]
    fn a_host_that_is_not_a_plain_authority_has_no_origin() {
        for bad in [
            "example.com/private",
            "a.test?x",
            "a.test#f",
            "user@a.test",
            "a test",
            "a|b",
        ] {
            let (parts, ()) = Request::get("/x")
                .header(header::HOST, bad)
                .body(())
                .unwrap()
                .into_parts();
            assert_eq!(origin(&parts), None, "{bad}");
        }
        let (parts, ()) = Request::get("/x")
            .header(header::HOST, "a.test")
            .header(header::HOST, "b.test")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(origin(&parts), None, "two Host lines");
        for good in ["a.test", "a.test:8080", "[::1]:3000", "127.0.0.1"] {
            let (parts, ()) = Request::get("/x")
                .header(header::HOST, good)
                .body(())
                .unwrap()
                .into_parts();
            assert_eq!(origin(&parts).unwrap(), format!("http://{good}"));
        }
    }

    #[test]
    fn the_authority_table_allows_exactly_the_plain_bytes() {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b);
        for b in 0..=u8::MAX {
            assert_eq!(AUTHORITY_BYTES[usize::from(b)], plain(b), "byte {b:#04x}");
        }
    }

    #[test]
    fn vary_star_and_accept_encoding() {
        let mut h = HeaderMap::new();
        h.append(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, Accept-Language"),
        );
        h.append(header::VARY, HeaderValue::from_static("cookie"));
        let names = vary_names(&h).unwrap();
        assert_eq!(names, vec![header::ACCEPT_LANGUAGE, header::COOKIE]);
        h.append(header::VARY, HeaderValue::from_static("*"));
        assert!(vary_names(&h).is_none());
    }

    #[test]
    fn vary_values_are_normalized_for_whitespace() {
        let base = base_key("GET http://a/x".to_owned(), "br", None);
        let mut a = HeaderMap::new();
        a.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("fr,  en"));
        let mut b = HeaderMap::new();
        b.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("fr , en"));
        let names = [header::ACCEPT_LANGUAGE];
        assert_eq!(
            vary_key(base.clone(), &names, &a),
            vary_key(base.clone(), &names, &b)
        );
        let mut c = HeaderMap::new();
        c.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en, fr"));
        assert_ne!(
            vary_key(base.clone(), &names, &a),
            vary_key(base.clone(), &names, &c)
        );
        // An absent header and an empty one are the same request as far as Vary goes.
        assert_eq!(
            vary_key(base, &names, &HeaderMap::new()).variant(),
            "enc=br&vary:accept-language="
        );
    }
}
