use tower::Layer;

use super::Range;
use crate::{
    clock::{Clock, SharedClock},
    http::range::RangeLimits,
};

/// Serves `Range` requests from responses whose body is in memory or of known length under a
/// bound, and advertises `Accept-Ranges: bytes` on them.
///
/// See the [module docs](crate::range) for what it serves, what it leaves alone, and where it
/// buffers.
#[derive(Clone, Debug)]
pub struct RangeLayer {
    pub(super) config: Config,
}

#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) max_body_size: u64,
    pub(super) limits: RangeLimits,
    pub(super) clock: SharedClock,
    /// The counters of this layer's 206s and 416s, shared by the services it makes.
    pub(super) counts: std::sync::Arc<crate::observe::Counts>,
}

impl Default for RangeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeLayer {
    /// A layer with the defaults: bodies up to 1 MiB, at most 16 ranges, the system clock.
    pub fn new() -> Self {
        Self {
            config: Config {
                max_body_size: 1024 * 1024,
                limits: RangeLimits::new(),
                clock: SharedClock::default(),
                counts: std::sync::Arc::default(),
            },
        }
    }

    /// The largest body ranges are served from. A `Range` request for a response whose length
    /// is known and at most this is answered by buffering the body (so this is also the most
    /// memory one response holds in this layer); longer bodies, and bodies of unknown length,
    /// stream through untouched, without `Accept-Ranges`.
    ///
    /// Defaults to 1 MiB.
    #[must_use]
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.config.max_body_size = bytes;
        self
    }

    /// The most ranges one request may name before it is answered with the whole body; see
    /// [`RangeLimits::max_ranges`].
    ///
    /// Defaults to 16.
    #[must_use]
    pub fn max_ranges(mut self, n: usize) -> Self {
        self.config.limits = self.config.limits.max_ranges(n);
        self
    }

    /// The clock used to decide whether a `Last-Modified` is recent enough to be weak when
    /// evaluating a date in `If-Range` (RFC 9110 §8.8.2.2).
    ///
    /// Defaults to [`SystemClock`](crate::clock::SystemClock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = SharedClock::new(clock);
        self
    }
}

impl<S> Layer<S> for RangeLayer {
    type Service = Range<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Range {
            inner,
            config: std::sync::Arc::new(self.config.clone()),
        }
    }
}
