//! RFC 9111 §4.4: what a successful unsafe request invalidates.

use super::*;

/// RFC 9111 §4.4: after a successful unsafe request, the stored responses for its URL, and for
/// `Location` and `Content-Location` on the same origin, are invalid.
pub(super) async fn invalidate_after_unsafe<St>(
    handle: &CacheHandle,
    origin: &str,
    uri: &Uri,
    headers: &HeaderMap,
    shared: &Shared<St>,
) {
    let mut resources = vec![key::resource(origin, uri, &shared.config.query)];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(target) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Some(target) = resolve(uri, target) else {
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
            resources.push(key::resource(origin, &target, &shared.config.query));
        }
    }
    for resource in resources {
        if let Err(error) = handle.invalidate_resource(&resource).await {
            bump(&shared.counters.store_errors);
            tracing::warn!(%error, %resource, "invalidation after an unsafe request failed");
        }
    }
}

/// Resolves a `Location` or `Content-Location` value against the request's target (RFC 9110
/// §10.2.2, §8.7: a URI-reference, resolved as RFC 3986 §5.2 says): `b`, `../b`, `?page=2`
/// and `/b` all name a resource of the request's own origin. The fragment is dropped.
fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
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
