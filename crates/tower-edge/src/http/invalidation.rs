//! What a successful unsafe request invalidates in a cache (RFC 9111 §4.4): its target URI, and
//! the URIs in its response's `Location` and `Content-Location` when they share its origin.
//!
//! ```
//! use http::{HeaderMap, Uri, header};
//! use tower_edge::http::invalidation::targets;
//!
//! let request: Uri = "/orders/7/items".parse().unwrap();
//! let mut response = HeaderMap::new();
//! response.insert(header::LOCATION, "8".parse().unwrap()); // relative to the request's target
//! response.insert(header::CONTENT_LOCATION, "https://elsewhere.example/x".parse().unwrap());
//! let targets: Vec<String> = targets(&request, "https://shop.example", &response)
//!     .iter()
//!     .map(ToString::to_string)
//!     .collect();
//! assert_eq!(targets, ["/orders/7/items", "/orders/7/8"]);
//! ```

use http::{HeaderMap, Uri, header};

/// The URIs a successful unsafe request to `request` invalidates, on a server whose origin is
/// `origin` (`scheme://authority`): the request's own target, then `Location` and
/// `Content-Location` resolved against it (RFC 9110 §10.2.2, §8.7) when they are of the same
/// origin. §4.4 forbids invalidating another origin's URIs, since that would let one origin
/// flush another's entries.
pub fn targets(request: &Uri, origin: &str, response: &HeaderMap) -> Vec<Uri> {
    let mut targets = vec![request.clone()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(target) = response
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|value| resolve(request, value))
        else {
            continue;
        };
        let same_origin = match target.authority() {
            None => true,
            Some(authority) => {
                let scheme = target.scheme_str().unwrap_or("http");
                format!("{scheme}://{authority}").eq_ignore_ascii_case(origin)
            }
        };
        if same_origin {
            targets.push(target);
        }
    }
    targets
}

/// Resolves a URI-reference (a `Location` or `Content-Location` value) against the request's
/// target, as RFC 3986 §5.2 says: `b`, `../b`, `?page=2` and `/b` all name a resource of the
/// request's own origin; `//host/b` and `https://host/b` name their own. The fragment is
/// dropped. `None` when the result is not a valid URI.
pub fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
    let reference = reference.split('#').next().unwrap_or_default().trim();
    // A scheme (`http:`, `https:`) before any `/`, `?`: an absolute URI.
    let scheme_end = reference.find(':');
    let first_delimiter = reference.find(['/', '?']);
    let absolute = scheme_end.is_some_and(|colon| {
        colon > 0
            && first_delimiter.is_none_or(|d| colon < d)
            && reference[..colon]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    if absolute || reference.starts_with("//") {
        let reference = if absolute {
            reference.to_owned()
        } else {
            format!("{}:{reference}", base.scheme_str().unwrap_or("http"))
        };
        return reference.parse().ok();
    }
    let (path, query) = match reference.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (reference, None),
    };
    let path = if path.is_empty() {
        base.path().to_owned()
    } else if path.starts_with('/') {
        remove_dot_segments(path)
    } else {
        // §5.2.3: everything of the base path up to its last `/`, then the reference.
        let base_path = base.path();
        let dir = &base_path[..=base_path.rfind('/').unwrap_or(0)];
        let dir = if dir.is_empty() { "/" } else { dir };
        remove_dot_segments(&format!("{dir}{path}"))
    };
    let query = match (query, path == base.path() && reference.is_empty()) {
        (Some(query), _) => Some(query.to_owned()),
        (None, true) => base.query().map(str::to_owned),
        (None, false) => None,
    };
    let target = match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    target.parse().ok()
}

/// RFC 3986 §5.2.4 for an absolute path: `.` and `..` segments removed.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_references_as_rfc_3986_does() {
        // RFC 3986 §5.4.1's examples that a Location can carry, from its base
        // `http://a/b/c/d;p?q`, as paths of the request's own origin.
        let base: Uri = "http://a/b/c/d;p?q".parse().unwrap();
        for (reference, expected) in [
            ("g", "/b/c/g"),
            ("./g", "/b/c/g"),
            ("g/", "/b/c/g/"),
            ("/g", "/g"),
            ("?y", "/b/c/d;p?y"),
            ("g?y", "/b/c/g?y"),
            ("g#s", "/b/c/g"),
            ("", "/b/c/d;p?q"),
            (".", "/b/c/"),
            ("./", "/b/c/"),
            ("..", "/b/"),
            ("../", "/b/"),
            ("../g", "/b/g"),
            ("../..", "/"),
            ("../../g", "/g"),
            ("../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("g.", "/b/c/g."),
            ("..g", "/b/c/..g"),
            ("./../g", "/b/g"),
            ("g/./h", "/b/c/g/h"),
            ("g/../h", "/b/c/h"),
        ] {
            let resolved = resolve(&base, reference).unwrap();
            assert_eq!(resolved.to_string(), expected, "{reference:?}");
        }
        assert_eq!(
            resolve(&base, "http://g/x").unwrap().to_string(),
            "http://g/x"
        );
        assert_eq!(resolve(&base, "//g/x").unwrap().to_string(), "http://g/x");
        // A request target in origin form.
        let base: Uri = "/products/7".parse().unwrap();
        assert_eq!(resolve(&base, "8").unwrap().to_string(), "/products/8");
    }
}
