//! RFC 9111 §4.4: what a successful unsafe request invalidates.

use super::*;

/// RFC 9111 §4.4: after a successful unsafe request, the stored responses for its URL, and for
/// `Location` and `Content-Location` on the same origin, are invalid.
///
/// `own` is the request's own origin, which "the same origin" means; `origin` the one its keys
/// carry (the same, unless the layer has a fixed [`KeyOrigin`](crate::cache::KeyOrigin)).
pub(super) async fn invalidate_after_unsafe<St>(
    handle: &CacheHandle,
    own: &str,
    origin: &str,
    uri: &Uri,
    headers: &HeaderMap,
    shared: &Shared<St>,
) {
    for target in crate::http::invalidation::targets(uri, own, headers) {
        let resource = key::resource(origin, &target, &shared.config.query);
        if let Err(error) = handle.invalidate_resource(&resource).await {
            bump(&shared.counters.store_errors);
            tracing::warn!(%error, %resource, "invalidation after an unsafe request failed");
        }
    }
}
