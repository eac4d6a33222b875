//! Time as an input: the [`Clock`] that `tower-edge`'s layers and `tower-edge-store`'s stores
//! and `Memo` ask for "now", so that one clock drives them all and tests move time without
//! sleeping. Both crates re-export it (`tower_edge::clock`, `tower_edge_store::clock`).
//!
//! Any `Fn() -> SystemTime` is a clock too.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use tower_edge_clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_005));
//! ```

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// Any function returning the time is a clock.
impl<F: Fn() -> SystemTime + Send + Sync + 'static> Clock for F {
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The system clock ([`SystemTime::now`]). The default everywhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; clones share the same time. For tests.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn clones_of_a_manual_clock_share_its_time_and_functions_are_clocks() {
        let clock = ManualClock::new(UNIX_EPOCH);
        let other = clock.clone();
        clock.advance(Duration::from_secs(3));
        assert_eq!(other.now(), UNIX_EPOCH + Duration::from_secs(3));
        other.set(UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(10));

        let read: Arc<dyn Clock> = Arc::new(move || other.now() + Duration::from_secs(1));
        assert_eq!(read.now(), UNIX_EPOCH + Duration::from_secs(11));
        assert!(SystemClock.now() > UNIX_EPOCH);
    }
}
