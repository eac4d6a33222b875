//! Turning a request path into segments that can only name something under the root.

use std::path::{Component, Path};

/// Why a request path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// The path is not a valid percent-encoded UTF-8 path: answer `400` with this reason.
    Malformed(&'static str),
    /// The path is well formed but names nothing this server shows (`..`, a hidden file, a
    /// drive letter…): answer as for a missing file, revealing nothing.
    Hidden,
}

/// A request path reduced to plain file-name segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SafePath {
    /// Whether the request path ends with `/` (a directory was asked for).
    pub(super) trailing_slash: bool,
    /// The segments joined with `/`, plus a trailing `/` when asked: the hot cache's key. The
    /// segments are read back from it (none holds a `/`), so a request parses into one string.
    pub(super) key: Box<str>,
}

impl SafePath {
    /// The path of one file name, which must hold no `/`.
    pub(super) fn file(name: &str) -> Self {
        debug_assert!(!name.contains('/'));
        Self {
            trailing_slash: false,
            key: name.into(),
        }
    }

    /// The decoded segments, in order: none empty, none `.` or `..`, none holding `/`.
    pub(super) fn segments(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.relative().split('/').filter(|s| !s.is_empty())
    }

    /// The segments joined with `/`, without the trailing one.
    pub(super) fn relative(&self) -> &str {
        self.key.strip_suffix('/').unwrap_or(&self.key)
    }
}

/// Parses the path of a request URI (without query).
///
/// Each `/`-separated segment is percent-decoded on its own, then must be a single, ordinary file
/// name: not `.` or `..`, without `/`, `\`, `:` (drive letters, alternate data streams) or NUL,
/// and not hidden (leading `.`) unless `allow_hidden`. Nothing is normalized away: a path that
/// needs normalizing is refused, so `a/../b` never becomes `b`. Empty segments (`//`) are
/// skipped, which cannot climb anywhere.
pub(super) fn parse(path: &str, allow_hidden: bool) -> Result<SafePath, Refused> {
    // A plain path's key is the path without its leading `/`: room for exactly that, so that
    // the key becomes a boxed `str` without a reallocation (only a decoded or `//` path shrinks).
    let mut key = String::with_capacity(path.len().saturating_sub(1).max(1));
    for raw in path.split('/') {
        if raw.is_empty() {
            continue;
        }
        // A segment without `%` is its own decoding: checked where it lies, copied once.
        let decoded;
        let segment = if raw.contains('%') {
            let bytes = percent_decode(raw.as_bytes()).ok_or(Refused::Malformed(
                "bad request: malformed percent-encoding in the path\n",
            ))?;
            decoded = String::from_utf8(bytes)
                .map_err(|_| Refused::Malformed("bad request: the path is not valid UTF-8\n"))?;
            decoded.as_str()
        } else {
            raw
        };
        check_segment(segment, allow_hidden)?;
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(segment);
    }
    let trailing_slash = path.ends_with('/') || key.is_empty();
    if trailing_slash {
        key.push('/');
    }
    Ok(SafePath {
        trailing_slash,
        key: key.into_boxed_str(),
    })
}

/// One decoded segment must be a single, ordinary file name (see [`parse`]).
fn check_segment(segment: &str, allow_hidden: bool) -> Result<(), Refused> {
    if segment.contains('\0') {
        return Err(Refused::Malformed("bad request: NUL byte in the path\n"));
    }
    if segment == "." || segment == ".." {
        return Err(Refused::Hidden);
    }
    if segment.contains(['/', '\\', ':']) {
        return Err(Refused::Hidden);
    }
    if segment.starts_with('.') && !allow_hidden {
        return Err(Refused::Hidden);
    }
    // Belt and braces: the platform must see exactly one ordinary component.
    let mut components = Path::new(segment).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(c)), None) if c == segment => Ok(()),
        _ => Err(Refused::Hidden),
    }
}

fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hi = hex(*input.get(i + 1)?)?;
            let lo = hex(*input.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a file name for a URL path or an RFC 5987 `ext-value`: everything but the
/// unreserved characters of RFC 3986 §2.3.
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(path: &str) -> SafePath {
        parse(path, false).unwrap()
    }

    #[test]
    fn splits_and_decodes_plain_paths() {
        let p = ok("/css/app%20v2.css");
        assert_eq!(p.segments().collect::<Vec<_>>(), ["css", "app v2.css"]);
        assert_eq!(p.relative(), "css/app v2.css");
        assert!(!p.trailing_slash);
        assert_eq!(&*p.key, "css/app v2.css");
        assert_eq!(&*ok("/docs/").key, "docs/");
        assert_eq!(ok("/docs/").relative(), "docs");
        assert_eq!(ok("/docs/").segments().next_back(), Some("docs"));
        assert!(ok("/").trailing_slash);
        assert_eq!(ok("/").segments().count(), 0);
        assert_eq!(ok("/").relative(), "");
        assert_eq!(&*ok("//a//b").key, "a/b");
        assert_eq!(ok("/caf%C3%A9").segments().collect::<Vec<_>>(), ["café"]);
        // Decoded and plain segments side by side, and an encoded space kept as one segment.
        assert_eq!(&*ok("/a%2Db/c/d%20e/").key, "a-b/c/d e/");
    }

    #[test]
    fn refuses_climbing_and_odd_names() {
        for path in [
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.",
            "/a/./b",
            "/a%2f..%2fb",
            "/..%5c..%5cwindows",
            "/a\\b",
            "/C:/Windows",
            "/c%3a/x",
            "/.env",
            "/.git/config",
            "/a/.hidden",
        ] {
            assert_eq!(parse(path, false), Err(Refused::Hidden), "{path}");
        }
    }

    #[test]
    fn allows_hidden_files_when_asked() {
        assert_eq!(
            parse("/.well-known/x", true)
                .unwrap()
                .segments()
                .collect::<Vec<_>>(),
            [".well-known", "x"]
        );
        assert_eq!(parse("/..", true), Err(Refused::Hidden));
    }

    #[test]
    fn malformed_paths_are_bad_requests() {
        for path in ["/%", "/%zz", "/a%0", "/nul%00byte", "/%ff%fe"] {
            assert!(
                matches!(parse(path, false), Err(Refused::Malformed(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn percent_encoding_round_trips() {
        let name = "résumé final (2).pdf";
        let encoded = percent_encode(name);
        assert!(encoded.is_ascii());
        assert_eq!(percent_decode(encoded.as_bytes()).unwrap(), name.as_bytes());
    }

    proptest! {
        #[test]
        fn never_yields_a_segment_that_climbs(path in "(/|%2e|%2E|\\.|%2f|%5c|\\\\|a|%00|%|:)*") {
            if let Ok(p) = parse(&path, true) {
                for s in p.segments() {
                    prop_assert!(s != "." && s != ".." && !s.contains(['/', '\\', '\0', ':']));
                }
                // The key is the segments joined, so they read back as parsed.
                let joined = p.segments().collect::<Vec<_>>().join("/");
                prop_assert_eq!(joined.as_str(), p.relative());
            }
        }
    }
}
