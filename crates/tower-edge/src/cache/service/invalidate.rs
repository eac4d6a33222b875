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
        let Ok(target) = target.parse::<Uri>() else {
            continue;
        };
        let same_origin = match target.authority() {
            None => target.path().starts_with('/'),
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
