//! Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so a proxy removes them
//! before forwarding in either direction.

use http::{HeaderMap, HeaderName, HeaderValue, Version, header};

/// Fields that are hop-by-hop whether or not `Connection` names them. `Keep-Alive` and
/// `Proxy-Connection` are pre-HTTP/1.1 and still sent by some clients (RFC 9110 §7.6.1).
const ALWAYS: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes `Connection`, the fields it names, and the fields that are always hop-by-hop.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(ALWAYS.iter()) {
        headers.remove(name);
    }
}

/// Appends this proxy to `Via` for a message received with `version` (RFC 9110 §7.6.3), after
/// any `Via` already there.
pub(crate) fn append_via(headers: &mut HeaderMap, version: Version) {
    let value = match version {
        Version::HTTP_09 => "0.9 tower-edge",
        Version::HTTP_10 => "1.0 tower-edge",
        Version::HTTP_2 => "2 tower-edge",
        Version::HTTP_3 => "3 tower-edge",
        _ => "1.1 tower-edge",
    };
    headers.append(header::VIA, HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_connection_and_the_fields_it_names() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "close, X-Hop".parse().unwrap());
        headers.append(header::CONNECTION, "x-other".parse().unwrap());
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert("x-other", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("proxy-connection", "keep-alive".parse().unwrap());
        headers.insert(header::TE, "trailers".parse().unwrap());
        headers.insert(header::TRAILER, "x-checksum".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        headers.insert("x-end-to-end", "kept".parse().unwrap());
        headers.insert(header::ETAG, "\"v1\"".parse().unwrap());

        remove_hop_by_hop(&mut headers);

        assert_eq!(headers.len(), 2, "{headers:?}");
        assert_eq!(headers["x-end-to-end"], "kept");
        assert_eq!(headers[header::ETAG], "\"v1\"");
    }

    #[test]
    fn appends_via_after_existing_entries() {
        let mut headers = HeaderMap::new();
        headers.insert(header::VIA, "1.1 cdn".parse().unwrap());
        append_via(&mut headers, Version::HTTP_10);
        let via: Vec<_> = headers.get_all(header::VIA).iter().collect();
        assert_eq!(via, ["1.1 cdn", "1.0 tower-edge"]);
    }
}
