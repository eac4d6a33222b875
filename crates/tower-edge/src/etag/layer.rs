use std::sync::Arc;

use tower::Layer;

use super::{Algorithm, ETag, memo::Digests};

/// Adds strong `ETag`s computed from the body and answers conditional requests.
///
/// See the [module docs](crate::etag) for what it does and when it buffers.
#[derive(Clone, Debug)]
pub struct ETagLayer {
    pub(super) config: Config,
}

#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) max_body_size: u64,
    pub(super) weak: bool,
    pub(super) algorithm: Algorithm,
    /// Shared by the layer's clones and the services it makes; `None` when turned off.
    pub(super) digests: Option<Arc<Digests>>,
    /// The counters of this layer's 304s and 412s, shared like `digests`.
    pub(super) counts: Arc<crate::observe::Counts>,
}

impl Default for ETagLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ETagLayer {
    /// A layer with the defaults: strong tags, bodies up to 1 MiB hashed.
    pub fn new() -> Self {
        Self {
            config: Config {
                max_body_size: 1024 * 1024,
                weak: false,
                algorithm: Algorithm::Sha256,
                digests: Some(Arc::default()),
                counts: Arc::default(),
            },
        }
    }

    /// The largest body that is buffered and hashed; longer bodies stream through without an
    /// `ETag`. This is also the most memory one response can hold in this layer.
    ///
    /// Defaults to 1 MiB.
    #[must_use]
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.config.max_body_size = bytes;
        self
    }

    /// Sends computed tags as weak (`W/"…"`): for handlers whose output may differ in
    /// insignificant bytes between equivalent responses. Weak tags still answer
    /// `If-None-Match`, but never `If-Match` or `If-Range` (RFC 9110 §8.8.3.2).
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn weak(mut self, weak: bool) -> Self {
        self.config.weak = weak;
        self
    }

    /// The hash function for computed tags. [`Algorithm::Xxh3_128`] costs a small fraction of
    /// SHA-256 per byte; see [`Algorithm`] for what each guarantees.
    ///
    /// Defaults to [`Algorithm::Sha256`].
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.config.algorithm = algorithm;
        self
    }
}

impl ETagLayer {
    /// Remembers the digests of bodies that live in shared memory (static data, or a `Bytes`
    /// the application keeps and sends again), so that sending the same memory again costs no
    /// hash. Bodies rendered for one response are never remembered. See the
    /// [module docs](crate::etag#bodies-sent-again) for why this is sound and what it keeps.
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn remember_shared_bodies(mut self, remember: bool) -> Self {
        self.config.digests = remember.then(Arc::default);
        self
    }
}

impl<S> Layer<S> for ETagLayer {
    type Service = ETag<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ETag {
            inner,
            config: std::sync::Arc::new(self.config.clone()),
        }
    }
}
