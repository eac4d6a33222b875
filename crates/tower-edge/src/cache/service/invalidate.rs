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
    for target in crate::http::invalidation::targets(uri, origin, headers) {
        let resource = key::resource(origin, &target, &shared.config.query);
        if let Err(error) = handle.invalidate_resource(&resource).await {
            bump(&shared.counters.store_errors);
            tracing::warn!(%error, %resource, "invalidation after an unsafe request failed");
        }
    }
}
