//! [`CacheHandle`]: invalidation and statistics, from handlers and from outside requests.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
};

use http::Uri;
use tower_edge_store::{CacheStore, Invalidation, StoreError, fence::Fence};

use super::{CacheStats, Shared, key, stats::Counters};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The invalidation half of a [`CacheStore`], object-safe so a handle needs no type parameter.
/// Invalidations are rare; boxing their futures costs nothing that matters.
trait Invalidate: Send + Sync {
    fn invalidate<'a>(&'a self, what: &'a Invalidation) -> BoxFuture<'a, u64>;
    fn fence(&self) -> Option<&Fence>;
}

impl<St: CacheStore> Invalidate for St {
    fn invalidate<'a>(&'a self, what: &'a Invalidation) -> BoxFuture<'a, u64> {
        Box::pin(CacheStore::invalidate(self, what))
    }
    fn fence(&self) -> Option<&Fence> {
        CacheStore::fence(self)
    }
}

/// The longest an invalidation waits for fills of what it addressed that were under way when
/// it was made (see `tower_edge_store::fence`): a fill's put takes at most its store's
/// timeouts.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Invalidates cached responses and reads the cache's counters.
///
/// In a handler, take it as an extractor (feature `axum`): its paths are relative to the
/// request's own origin. Outside requests, get one from
/// [`ResponseCacheLayer::handle`](super::ResponseCacheLayer::handle). Every invalidation
/// removes every stored variant (encodings, `Vary` values, users) of what it addresses.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::post};
/// use tower_edge::cache::CacheHandle;
///
/// async fn publish(cache: CacheHandle) -> &'static str {
///     // Everything tagged "catalogue" (by a `Cache-Tag` response header) goes.
///     let _ = cache.invalidate_tag("catalogue").await;
///     "published"
/// }
/// let app: Router = Router::new().route("/admin/publish", post(publish));
/// # }
/// ```
#[derive(Clone)]
pub struct CacheHandle {
    inner: Arc<HandleInner>,
    origin: String,
}

/// What every handle of one layer shares, built once with the layer and kept by every
/// reconfiguration of it, so a handle taken at any point stays live.
pub(crate) struct HandleInner {
    store: Box<dyn Invalidate>,
    counters: Arc<Counters>,
    // The layer's latest key rules; a setter of the layer updates them.
    rules: RwLock<KeyRules>,
}

/// What turns a handle's URL into the resource a request for it is stored under.
#[derive(Clone)]
pub(crate) struct KeyRules {
    pub(crate) query: key::QueryPolicy,
    pub(crate) origin: key::KeyOrigin,
    pub(crate) prefix: String,
}

impl HandleInner {
    pub(crate) fn new<St: CacheStore + Clone>(
        store: &St,
        counters: &Arc<Counters>,
        rules: KeyRules,
    ) -> Arc<Self> {
        Arc::new(Self {
            store: Box::new(store.clone()),
            counters: Arc::clone(counters),
            rules: RwLock::new(rules),
        })
    }

    pub(crate) fn set_rules(&self, rules: KeyRules) {
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = rules;
    }

    fn rules(&self) -> KeyRules {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CacheHandle {
    pub(super) fn new<St>(shared: &Shared<St>, origin: String) -> Self {
        Self {
            inner: Arc::clone(&shared.handle),
            origin,
        }
    }

    /// The same handle for another origin (`"https://example.com"`). Under a fixed
    /// [`KeyOrigin`](super::KeyOrigin) (or none), every handle addresses the layer's, whatever
    /// it was given.
    #[must_use]
    pub fn with_origin(mut self, origin: &str) -> Self {
        self.origin = origin.trim_end_matches('/').to_owned();
        self
    }

    /// The origin `given` stands for under the layer's key rules.
    fn keyed_origin(rules: &KeyRules, given: &str) -> String {
        let origin = match &rules.origin {
            key::KeyOrigin::Request => given,
            key::KeyOrigin::Fixed(fixed) => fixed,
            key::KeyOrigin::None => "",
        };
        format!("{}{origin}", rules.prefix)
    }

    fn resource_of(&self, path_and_query: &str) -> String {
        let rules = self.inner.rules();
        match path_and_query.parse::<Uri>() {
            Ok(uri) if uri.scheme().is_some() => {
                let given = format!(
                    "{}://{}",
                    uri.scheme_str().unwrap_or("http"),
                    uri.authority().map_or("", |a| a.as_str())
                );
                key::resource(&Self::keyed_origin(&rules, &given), &uri, &rules.query)
            }
            Ok(uri) => key::resource(
                &Self::keyed_origin(&rules, &self.origin),
                &uri,
                &rules.query,
            ),
            // Not a URI at all: it can name no stored resource, so address it literally.
            Err(_) => format!(
                "GET {}{path_and_query}",
                Self::keyed_origin(&rules, &self.origin)
            ),
        }
    }

    /// Removes every stored variant of one URL: a path (with query) on this handle's origin, or
    /// an absolute URL. Returns how many entries went.
    pub async fn invalidate(&self, url: &str) -> Result<u64, StoreError> {
        let resource = self.resource_of(url);
        self.invalidate_resource(&resource).await
    }

    /// Removes every stored URL whose path starts with `path_prefix` on this handle's origin.
    pub async fn invalidate_prefix(&self, path_prefix: &str) -> Result<u64, StoreError> {
        let origin = Self::keyed_origin(&self.inner.rules(), &self.origin);
        let prefix = format!("GET {origin}{path_prefix}");
        self.carry_out(Invalidation::Prefix(prefix)).await
    }

    /// Removes every entry stored with `tag` (from a `Cache-Tag` header or the
    /// [`CacheTags`](super::CacheTags) extension).
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, StoreError> {
        self.carry_out(Invalidation::Tag(tag.to_owned())).await
    }

    /// Makes every entry unreachable at once (the "version prefix" pattern, O(1)); returns the
    /// new generation.
    pub async fn bump_generation(&self) -> Result<u64, StoreError> {
        self.carry_out(Invalidation::Generation).await
    }

    /// Removes everything.
    pub async fn purge(&self) -> Result<(), StoreError> {
        self.carry_out(Invalidation::Purge).await.map(drop)
    }

    /// The cache's counters now.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    pub(super) async fn invalidate_resource(&self, resource: &str) -> Result<u64, StoreError> {
        self.carry_out(Invalidation::Resource(resource.to_owned()))
            .await
    }

    /// Carries out `what` on the store, then waits (bounded) for the fills of what it addressed
    /// that were under way, so that once this returns no request can be answered with what was
    /// invalidated.
    async fn carry_out(&self, what: Invalidation) -> Result<u64, StoreError> {
        let result = self.inner.store.invalidate(&what).await;
        if let Some(fence) = self.inner.store.fence()
            && !fence.settle(&what, SETTLE_LIMIT).await
        {
            tracing::debug!(
                ?what,
                "fills still under way after an invalidation; not waiting longer"
            );
        }
        result
    }
}

impl fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheHandle")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "axum")]
mod extractor {
    use axum_core::{
        extract::FromRequestParts,
        response::{IntoResponse, Response},
    };
    use http::{StatusCode, request::Parts};

    use super::CacheHandle;

    /// The rejection when a handler asks for a [`CacheHandle`] outside a `ResponseCacheLayer`.
    #[derive(Debug)]
    pub struct MissingCacheLayer;

    impl IntoResponse for MissingCacheLayer {
        fn into_response(self) -> Response {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "CacheHandle used on a route without ResponseCacheLayer\n",
            )
                .into_response()
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for CacheHandle {
        type Rejection = MissingCacheLayer;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<CacheHandle>()
                .cloned()
                .ok_or(MissingCacheLayer)
        }
    }
}

#[cfg(feature = "axum")]
pub use extractor::MissingCacheLayer;
