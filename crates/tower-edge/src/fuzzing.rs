//! Entry points for the fuzz targets under `fuzz/` and for the test that replays their corpus.
//!
//! Each function takes arbitrary bytes, runs one parser or decoder on them, and checks the
//! properties its documentation promises. A broken property is a panic, which is what a fuzzer
//! reports as a crash. These functions are not part of the library's API: they exist so the fuzz
//! targets and the corpus replay run exactly the same checks, and they may change at any time.
//!
//! Inputs that carry several fields split them at `\n`; a leading byte, where one is taken,
//! picks a parameter (a length, a limit, a flag).

use std::path::{Component, Path};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use tower_edge_store::{CacheKey, Entry};

use crate::http::accept_encoding::{AcceptEncoding, Coding};
use crate::http::cache_control::CacheControl;
use crate::http::date::{format_http_date, parse_http_date};
use crate::http::etag::{EntityTag, EntityTagList};
use crate::http::range::{RangeLimits, Resolution, resolve};

/// One target's check: panics when a property does not hold.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: what `fuzz/fuzz_targets/<name>.rs` runs and what the corpus
/// directory `fuzz/corpus/<name>/` feeds.
pub const TARGETS: &[(&str, Check)] = &[
    ("etag_list", etag_list),
    ("http_date", http_date),
    ("range", range),
    ("accept_encoding", accept_encoding),
    ("cache_control", cache_control),
    ("cache_policy", cache_policy),
    ("vary", vary),
    ("cache_key", cache_key),
    ("entry_codec", entry_codec),
    ("file_path", file_path),
];

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
}

/// Entity tags and `If-Match` / `If-None-Match` lists.
pub fn etag_list(data: &[u8]) {
    let list = EntityTagList::parse_bytes(data);
    for tag in list.tags() {
        // Every tag parsed from a list prints as a field value that parses back to itself.
        let printed = tag.to_header_value();
        let again = EntityTag::parse(printed.as_bytes()).expect("a printed tag parses");
        assert_eq!(&again, tag);
        assert_eq!(again.strong_eq(tag), !tag.is_weak());
        assert!(list.matches_weak(tag));
        // A tag in the list matches itself strongly exactly when it is strong.
        assert_eq!(list.matches_strong(tag), !tag.is_weak());
        assert!(tag.to_weak().is_weak() && tag.to_weak().weak_eq(tag));
    }
    // A list read as several field lines is the same list as the lines read one by one.
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.append(header::IF_NONE_MATCH, value);
        assert_eq!(
            EntityTagList::parse(headers.get_all(header::IF_NONE_MATCH)),
            list
        );
    }
    if let Ok(tag) = EntityTag::parse(data) {
        // One tag alone: its printed form is the input without surrounding whitespace.
        let ows = |b: &u8| *b == b' ' || *b == b'\t';
        let start = data.iter().position(|b| !ows(b)).unwrap_or(data.len());
        let end = data.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
        assert_eq!(tag.to_header_value().as_bytes(), &data[start..end]);
        assert_eq!(list.tags(), std::slice::from_ref(&tag));
    }
}

/// HTTP dates in the three formats of RFC 9110 §5.6.7.
pub fn http_date(data: &[u8]) {
    if let Some(time) = parse_http_date(data) {
        // Whole seconds, and the IMF-fixdate printed for it reads back as the same instant.
        let since = time
            .duration_since(UNIX_EPOCH)
            .expect("dates are after 1970");
        assert_eq!(since.subsec_nanos(), 0);
        let printed = format_http_date(time);
        assert_eq!(printed.len(), 29, "IMF-fixdate is 29 bytes: {printed}");
        assert_eq!(parse_http_date(printed.as_bytes()), Some(time));
    }
}

/// `Range` against representations of every size: first byte picks the limit, the next eight
/// the length (when present), the rest is the field value.
pub fn range(data: &[u8]) {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let limits = RangeLimits::new().max_ranges(usize::from(limit % 40));
    let (len, value) = if rest.len() >= 8 {
        let (len, value) = rest.split_at(8);
        (
            u64::from_le_bytes(len.try_into().expect("eight bytes")),
            value,
        )
    } else {
        (u64::from(limit) * 97, rest)
    };
    for len in [len, len % 4096, u64::MAX, 0, 1] {
        match resolve(value, len, &limits) {
            Resolution::Full => {}
            Resolution::Unsatisfiable => assert!(len > 0, "an empty representation is sent whole"),
            Resolution::Partial(ranges) => {
                assert!(!ranges.is_empty());
                assert!(ranges.len() <= limits.get_max_ranges());
                let mut total: u64 = 0;
                for r in &ranges {
                    assert!(r.first() <= r.last() && r.last() < len, "{r:?} in {len}");
                    assert_eq!(r.len(), r.last() - r.first() + 1);
                    total = total.checked_add(r.len()).expect("within len");
                }
                // Apart, and not touching (touching ranges are merged), in whatever order the
                // request named them.
                let mut sorted = ranges.clone();
                sorted.sort_by_key(|r| r.first());
                for w in sorted.windows(2) {
                    assert!(w[1].first() > w[0].last().saturating_add(1), "{ranges:?}");
                }
                assert!(total <= len);
                // The Content-Range of every part is a valid field value, and reads back.
                for r in &ranges {
                    let value = r.content_range(len);
                    assert_eq!(
                        crate::http::range::parse_content_range(value.as_bytes()),
                        Some((*r, len))
                    );
                }
            }
        }
    }
    // Any value: a Content-Range read is inside its representation, and writes back the same.
    if let Some((r, complete)) = crate::http::range::parse_content_range(value) {
        assert!(r.first() <= r.last() && r.last() < complete);
        let again = r.content_range(complete);
        assert_eq!(
            crate::http::range::parse_content_range(again.as_bytes()),
            Some((r, complete))
        );
    }
}

/// `Accept-Encoding` weights and negotiation.
pub fn accept_encoding(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in lines(data) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::ACCEPT_ENCODING, value);
        }
    }
    let accept = AcceptEncoding::from_headers(&headers);
    let all = [
        Coding::Br,
        Coding::Zstd,
        Coding::Gzip,
        Coding::Deflate,
        Coding::Identity,
    ];
    for coding in all {
        assert!(accept.weight(coding) <= 1000);
    }
    for n in 0..=all.len() {
        let offered = &all[..n];
        match accept.negotiate(offered) {
            Ok(Coding::Identity) => {
                // Identity is chosen only when acceptable, or when nothing offered is.
                let any_offered = offered
                    .iter()
                    .any(|c| *c != Coding::Identity && accept.weight(*c) > 0);
                assert!(
                    accept.weight(Coding::Identity) > 0 || !any_offered,
                    "identity refused but chosen"
                );
            }
            Ok(chosen) => {
                assert!(offered.contains(&chosen));
                let w = accept.weight(chosen);
                assert!(w > 0, "a refused coding was chosen");
                // No offered coding weighs more.
                assert!(
                    offered
                        .iter()
                        .all(|c| accept.weight(*c) <= w || *c == Coding::Identity)
                );
            }
            Err(_) => {
                assert_eq!(accept.weight(Coding::Identity), 0);
                assert!(
                    offered
                        .iter()
                        .all(|c| *c == Coding::Identity || accept.weight(*c) == 0)
                );
            }
        }
    }
}

/// `Cache-Control` (and `CDN-Cache-Control`, which has the same syntax) directives.
pub fn cache_control(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let cc = CacheControl::parse_str(&text);
    for (name, value) in cc.directives() {
        assert!(!name.is_empty());
        assert_eq!(name, name.to_ascii_lowercase(), "names are lowercased");
        assert!(cc.has(name));
        assert!(cc.has(&name.to_ascii_uppercase()), "lookup ignores case");
        let _ = (cc.seconds(name), cc.duration(name), value);
        if let Some(seconds) = cc.seconds(name) {
            assert_eq!(cc.duration(name), Some(Duration::from_secs(seconds)));
        }
    }
    // Several field lines are one list.
    let mut headers = HeaderMap::new();
    for line in lines(data) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::CACHE_CONTROL, value);
        }
    }
    let _ = CacheControl::parse(headers.get_all(header::CACHE_CONTROL));
}

/// The cache's storability and freshness decision on hostile response and request fields:
/// `Cache-Control`, `CDN-Cache-Control`, `Expires`, `Date`, `Age`, `Vary`, the TTL override
/// header. Lines are `name: value`; the first byte picks the status and the layer's options.
pub fn cache_policy(data: &[u8]) {
    use crate::cache::fuzz_decide;

    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let statuses = [200, 203, 204, 206, 301, 304, 404, 405, 410, 500, 501];
    let status =
        StatusCode::from_u16(statuses[usize::from(pick) % statuses.len()]).expect("valid status");
    let mut response = HeaderMap::new();
    let mut request = HeaderMap::new();
    for line in lines(rest) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let (target, name) = match name.strip_prefix(b"req-") {
            Some(name) => (&mut request, name),
            None => (&mut response, name),
        };
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            target.append(name, value);
        }
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Ok(freshness) = fuzz_decide(
        status,
        response,
        &request,
        pick & 0x80 != 0,
        pick & 0x40 != 0,
        now,
    ) {
        // The fresh lifetime counts from the response's age at arrival.
        assert!(freshness.fresh_for >= freshness.initial_age);
        let _ = freshness.store_ttl(true, Duration::from_secs(300));
        let _ = freshness.store_ttl(false, Duration::ZERO);
    }
}

/// `Vary` names and the key part built from a request's values for them. The first line is the
/// response's `Vary`; the others are request lines `name: value`.
pub fn vary(data: &[u8]) {
    use crate::cache::{fuzz_vary_key, fuzz_vary_names};

    let mut it = lines(data);
    let Some(vary) = it.next() else { return };
    let Ok(vary) = HeaderValue::from_bytes(vary) else {
        return;
    };
    let mut response = HeaderMap::new();
    response.append(header::VARY, vary);
    let mut request = HeaderMap::new();
    for line in it {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            request.append(name, value);
        }
    }
    // Adding a name is idempotent, never turns `*` into a list, and the name is then listed.
    let parsed = crate::http::vary::Vary::of(&response);
    let mut added = response.clone();
    crate::http::vary::add(&mut added, header::ACCEPT_LANGUAGE);
    let again = crate::http::vary::Vary::of(&added);
    crate::http::vary::add(&mut added, header::ACCEPT_LANGUAGE);
    assert_eq!(crate::http::vary::Vary::of(&added), again);
    match parsed.names() {
        None => assert_eq!(again, crate::http::vary::Vary::Any),
        Some(_) => assert!(again.lists(&header::ACCEPT_LANGUAGE)),
    }
    let Some(names) = fuzz_vary_names(&response) else {
        return;
    };
    assert!(
        names.windows(2).all(|w| w[0].as_str() < w[1].as_str()),
        "sorted, unique"
    );
    assert!(!names.contains(&header::ACCEPT_ENCODING));
    let base = CacheKey::new("GET http://fuzz/");
    let key = fuzz_vary_key(base.clone(), &names, &request);
    assert_eq!(
        key,
        fuzz_vary_key(base.clone(), &names, &request),
        "deterministic"
    );
    // Whitespace around list commas does not make a new variant.
    let mut spaced = HeaderMap::new();
    for (name, value) in &request {
        let mut bytes = Vec::new();
        for (i, part) in value.as_bytes().split(|&b| b == b',').enumerate() {
            if i > 0 {
                bytes.extend_from_slice(b" , ");
            }
            bytes.extend_from_slice(part);
        }
        spaced.append(
            name,
            HeaderValue::from_bytes(&bytes).expect("same bytes plus spaces"),
        );
    }
    assert_eq!(key, fuzz_vary_key(base, &names, &spaced));
}

/// The cache key of a request: `Host`, target and query, as the layer builds it. Two requests
/// get the same key only when they ask for the same resource. Input: `host\ntarget\nhost\ntarget`.
pub fn cache_key(data: &[u8]) {
    use crate::cache::fuzz_request_key;

    let mut it = lines(data);
    let mut request = || -> Option<(Request<()>, String)> {
        let host = it.next()?;
        let target = it.next()?;
        let uri = Uri::try_from(target).ok()?;
        let mut builder = Request::get(uri);
        if let Ok(host) = HeaderValue::from_bytes(host) {
            builder = builder.header(header::HOST, host);
        }
        let request = builder.body(()).ok()?;
        let key = fuzz_request_key(&request)?;
        Some((request, key.to_string()))
    };
    let Some((a, key_a)) = request() else { return };
    // The resource part of a key is `GET scheme://authority/path[?query]` with no `|`, and the
    // authority part can be read back without ambiguity.
    let resource = key_a.split('|').next().expect("split yields one part");
    let rest = resource.strip_prefix("GET ").expect("method class first");
    let (scheme, after) = rest.split_once("://").expect("scheme://");
    assert!(scheme == "http" || scheme == "https", "{key_a:?}");
    let path_start = after.find('/').unwrap_or(after.len());
    let authority = &after[..path_start];
    assert!(
        !authority.contains(['/', '?', '#', '@', ' ', '|']),
        "{authority:?}"
    );
    let Some((b, key_b)) = request() else { return };
    if key_a == key_b {
        assert_eq!(a.uri().path(), b.uri().path(), "same key, different paths");
        let host = |r: &Request<()>| {
            r.uri()
                .authority()
                // Userinfo does not name a different resource.
                .map(|a| {
                    a.as_str()
                        .rsplit('@')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                })
                .or_else(|| {
                    r.headers()
                        .get(header::HOST)
                        .map(|h| String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase())
                })
        };
        assert_eq!(host(&a), host(&b), "same key, different hosts");
    }
}

/// The stored form of a cache entry: decoding arbitrary bytes never panics, and whatever decodes
/// encodes to bytes that decode to the same entry (the decoder accepts over-long varints, so the
/// bytes themselves may differ; the encoder's output is its own fixed point).
pub fn entry_codec(data: &[u8]) {
    let Ok(entry) = Entry::decode(data) else {
        return;
    };
    let encoded = entry.encode();
    assert!(
        encoded.len() <= data.len(),
        "the encoder writes the shortest form"
    );
    let again = Entry::decode(&encoded).expect("what was encoded decodes");
    assert_eq!(again.status(), entry.status());
    assert_eq!(again.headers(), entry.headers());
    assert_eq!(again.body(), entry.body());
    assert_eq!(again.stored_at(), entry.stored_at());
    assert_eq!(again.initial_age(), entry.initial_age());
    assert_eq!(again.fresh_for(), entry.fresh_for());
    assert_eq!(
        again.stale_while_revalidate(),
        entry.stale_while_revalidate()
    );
    assert_eq!(again.stale_if_error(), entry.stale_if_error());
    assert_eq!(again.tags(), entry.tags());
    assert_eq!(again.encode(), encoded, "encoding is canonical");
    let _ = (entry.weight(), entry.age(SystemTime::now()));
    // A well-formed entry built from the decoded fields round-trips too.
    let rebuilt = Entry::new(entry.status(), entry.headers().clone(), Bytes::new());
    assert!(Entry::decode(&rebuilt.encode()).is_ok());
}

/// A request path resolved for `ServeDir`: whatever is accepted names something under the root.
pub fn file_path(data: &[u8]) {
    use crate::fs::fuzz_parse_path;

    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for allow_hidden in [false, true] {
        let Some(segments) = fuzz_parse_path(path, allow_hidden) else {
            continue;
        };
        let root = Path::new("/srv/root");
        let mut joined = root.to_path_buf();
        for segment in &segments {
            assert!(!segment.is_empty());
            assert!(segment != "." && segment != "..");
            assert!(!segment.contains(['/', '\\', ':', '\0']), "{segment:?}");
            assert!(allow_hidden || !segment.starts_with('.'));
            joined.push(segment);
        }
        assert!(joined.starts_with(root));
        assert_eq!(
            joined.components().count(),
            root.components().count() + segments.len()
        );
        assert!(
            joined
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        );
    }
}
