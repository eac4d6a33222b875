//! Time as an input: a [`Clock`] the layers ask for "now", so tests can move time without sleeping.
//!
//! The same clock as `tower_edge_store::clock`'s (both are `tower-edge-clock`'s), so one
//! [`ManualClock`] drives the cache, the stores and `Memo` alike.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use tower_edge::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_005));
//! ```

use std::{fmt, sync::Arc, time::SystemTime};

pub use tower_edge_clock::{Clock, ManualClock, SystemClock};

/// A shareable clock, as the layers hold it. (Unused in a build with no layer at all.)
#[derive(Clone)]
#[cfg_attr(
    not(any(
        feature = "last-modified",
        feature = "cache",
        feature = "range",
        feature = "fs"
    )),
    allow(dead_code)
)]
pub(crate) struct SharedClock(Arc<dyn Clock>);

#[cfg_attr(
    not(any(
        feature = "last-modified",
        feature = "cache",
        feature = "range",
        feature = "fs"
    )),
    allow(dead_code)
)]
impl SharedClock {
    pub(crate) fn new(clock: impl Clock) -> Self {
        Self(Arc::new(clock))
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.0.now()
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::new(SystemClock)
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}
