use std::sync::Arc;

use http::HeaderMap;
use tower::Layer;

use super::{
    Compression,
    encoder::Levels,
    predicate::{MimeAllowList, Predicate},
};
use crate::http::accept_encoding::{self, Coding};

/// Compresses responses with the best content coding the client accepts.
///
/// See the [module docs](crate::compression) for what is compressed, what is left alone, and
/// how validators change.
#[derive(Clone, Debug)]
pub struct CompressionLayer<P = MimeAllowList> {
    pub(super) config: Config,
    pub(super) predicate: P,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) offered: Vec<Coding>,
    pub(crate) levels: Levels,
    pub(crate) min_size: u64,
    pub(crate) reject_unacceptable: bool,
    /// The counters of the responses this layer compresses (a service's own: each service
    /// holds its config in an `Arc`).
    pub(crate) counts: crate::observe::Counts,
}

/// The codecs this build has, in the default order of preference.
fn available() -> Vec<Coding> {
    let mut codings = Vec::new();
    if cfg!(feature = "compression-br") {
        codings.push(Coding::Br);
    }
    if cfg!(feature = "compression-zstd") {
        codings.push(Coding::Zstd);
    }
    if cfg!(feature = "compression-gzip") {
        codings.push(Coding::Gzip);
    }
    if cfg!(feature = "compression-deflate") {
        codings.push(Coding::Deflate);
    }
    codings
}

impl Default for CompressionLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CompressionLayer {
    /// Every codec this build has, preferred in the order br, zstd, gzip, deflate, at levels
    /// suited to dynamic content (gzip 5, deflate 5, brotli 4, zstd 3), for the default media
    /// types ([`MimeAllowList`]) of at least 1 KiB.
    pub fn new() -> Self {
        Self {
            config: Config {
                offered: available(),
                levels: Levels {
                    gzip: 5,
                    deflate: 5,
                    br: 4,
                    zstd: 3,
                },
                min_size: 1024,
                reject_unacceptable: false,
                counts: crate::observe::Counts::new(),
            },
            predicate: MimeAllowList::new(),
        }
    }
}

impl<P: Predicate> CompressionLayer<P> {
    /// The codings to offer, most preferred first (a tie in the client's weights goes to the
    /// earlier one). Codings this build lacks are dropped.
    ///
    /// Defaults to br, zstd, gzip, deflate (those compiled in).
    #[must_use]
    pub fn prefer(mut self, order: &[Coding]) -> Self {
        let available = available();
        self.config.offered = order
            .iter()
            .copied()
            .filter(|c| available.contains(c))
            .collect();
        self
    }

    /// The gzip level, 0 (none) to 9 (smallest).
    ///
    /// Defaults to 5.
    #[must_use]
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.config.levels.gzip = level.min(9) as i32;
        self
    }

    /// The deflate level, 0 to 9.
    ///
    /// Defaults to 5.
    #[must_use]
    pub fn deflate_level(mut self, level: u32) -> Self {
        self.config.levels.deflate = level.min(9) as i32;
        self
    }

    /// The brotli quality, 0 to 11. 11 is for content compressed once and served often (it
    /// costs tens of milliseconds per 10 KiB); behind a response cache that stores compressed
    /// variants, that can be the right choice.
    ///
    /// Defaults to 4.
    #[must_use]
    pub fn br_level(mut self, level: u32) -> Self {
        self.config.levels.br = level.min(11) as i32;
        self
    }

    /// The zstd level, 1 to 22.
    ///
    /// Defaults to 3.
    #[must_use]
    pub fn zstd_level(mut self, level: u32) -> Self {
        self.config.levels.zstd = level.clamp(1, 22) as i32;
        self
    }

    /// Bodies shorter than this are sent as they are. Of a body of unknown length, the layer
    /// reads only what is ready at once: if that reaches this many bytes, or the body would
    /// have to be waited for (a page sent in pieces), it is compressed as a stream, each piece
    /// flushed as it comes; if the body ends short of it, it is sent as it is, with its length.
    /// Streams (`text/event-stream`, `application/x-ndjson`) are compressed from the first
    /// byte.
    ///
    /// Defaults to 1024 bytes.
    #[must_use]
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.config.min_size = bytes;
        self
    }

    /// Answers `406 Not Acceptable` when the client excludes identity (`identity;q=0` or
    /// `*;q=0`) and accepts none of the offered codings. Otherwise such a request gets the
    /// representation uncompressed, which RFC 9110 §12.5.3 also allows.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn reject_unacceptable(mut self, reject: bool) -> Self {
        self.config.reject_unacceptable = reject;
        self
    }

    /// Replaces the media-type policy with a [`Predicate`] (a [`MimeAllowList`], or several
    /// combined with [`Predicate::and`]). For a closure, [`CompressionLayer::compress_if`]
    /// needs no type annotation.
    ///
    /// Defaults to [`MimeAllowList::new`].
    #[must_use]
    pub fn compress_when<Q: Predicate>(self, predicate: Q) -> CompressionLayer<Q> {
        CompressionLayer {
            config: self.config,
            predicate,
        }
    }

    /// Replaces the media-type policy with a closure over the response head.
    ///
    /// ```
    /// use tower_edge::compression::CompressionLayer;
    ///
    /// // Compress nothing the handler marks as already dense.
    /// let layer = CompressionLayer::new().compress_if(|parts| !parts.headers.contains_key("x-dense"));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn compress_if<F>(self, predicate: F) -> CompressionLayer<F>
    where
        F: Fn(&http::response::Parts) -> bool + Clone + Send + Sync + 'static,
    {
        CompressionLayer {
            config: self.config,
            predicate,
        }
    }

    /// This layer's negotiation as a function, for
    /// [`ResponseCacheLayer::encoding`](crate::cache::ResponseCacheLayer) (feature `cache`):
    /// the cache then keys stored variants by the coding this layer will choose.
    pub fn negotiator(&self) -> Arc<dyn Fn(&HeaderMap) -> &'static str + Send + Sync> {
        let offered = self.config.offered.clone();
        Arc::new(move |headers: &HeaderMap| {
            accept_encoding::negotiate(headers, &offered).map_or("none", Coding::as_str)
        })
    }
}

impl<S, P: Clone> Layer<S> for CompressionLayer<P> {
    type Service = Compression<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Compression {
            inner,
            config: Arc::new(self.config.clone()),
            predicate: Arc::new(self.predicate.clone()),
        }
    }
}
