use std::{fmt, sync::Arc, time::SystemTime};

use http::response::Parts;
use tower::Layer;

use super::LastModified;
use crate::clock::{Clock, SharedClock};

/// Evaluates `If-Modified-Since` / `If-Unmodified-Since` against `Last-Modified`.
///
/// See the [module docs](crate::last_modified).
#[derive(Clone, Debug, Default)]
pub struct LastModifiedLayer {
    pub(super) config: Config,
}

#[derive(Clone, Default)]
pub(super) struct Config {
    pub(super) source: Option<Source>,
    pub(super) clock: SharedClock,
    /// The counters of this layer's 304s and 412s, shared by the services it makes.
    pub(super) counts: Arc<crate::observe::Counts>,
}

pub(super) type Source = Arc<dyn Fn(&Parts) -> Option<SystemTime> + Send + Sync>;

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("source", &self.source.as_ref().map(|_| "Fn"))
            .field("clock", &self.clock)
            .finish()
    }
}

impl LastModifiedLayer {
    /// A layer that only evaluates the `Last-Modified` handlers set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stamps `Last-Modified` on `2xx` responses to `GET` and `HEAD` that have none, from a
    /// function of the response head: read an extension the handler attached, or return a fixed
    /// time such as the build or deployment time of static content.
    ///
    /// A time later than the clock's now is sent as now (RFC 9110 §8.8.2.1).
    ///
    /// Defaults to none: only handler-set `Last-Modified` headers are used.
    #[must_use]
    pub fn source<F>(mut self, source: F) -> Self
    where
        F: Fn(&Parts) -> Option<SystemTime> + Send + Sync + 'static,
    {
        self.config.source = Some(Arc::new(source));
        self
    }

    /// The clock used for "now".
    ///
    /// Defaults to [`SystemClock`](crate::clock::SystemClock).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = SharedClock::new(clock);
        self
    }
}

impl<S> Layer<S> for LastModifiedLayer {
    type Service = LastModified<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LastModified {
            inner,
            config: std::sync::Arc::new(self.config.clone()),
        }
    }
}
