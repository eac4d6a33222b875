//! In-process single-flight: concurrent misses on one key make one inner call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;

#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, watch::Receiver<()>>>,
}

/// Held by the request that makes the inner call; dropping it (after storing, or on giving up)
/// wakes every follower.
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: String,
    // Dropped with the guard: followers see the channel close.
    _done: watch::Sender<()>,
    // Releases the store's lock (other instances' followers), if this flight took it.
    release: Option<Release>,
}

pub(crate) type Release = Box<dyn FnOnce() + Send + Sync>;

impl FlightGuard {
    /// Runs `release` when the flight ends.
    pub(crate) fn on_release(&mut self, release: Release) {
        self.release = Some(release);
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
        self.flights
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

pub(crate) enum Join {
    Leader(FlightGuard),
    Follower(watch::Receiver<()>),
}

impl Flights {
    pub(crate) fn join(self: &Arc<Self>, key: String) -> Join {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = map.get(&key) {
            return Join::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        map.insert(key.clone(), rx);
        Join::Leader(FlightGuard {
            flights: Arc::clone(self),
            key,
            _done: tx,
            release: None,
        })
    }
}

impl std::fmt::Debug for FlightGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Waits until the leader drops its guard, or `timeout` passes. Returns whether it finished.
pub(crate) async fn wait(mut rx: watch::Receiver<()>, timeout: Duration) -> bool {
    // `changed` fails once the sender is gone, which is the only way a flight ends.
    tokio::time::timeout(timeout, async { while rx.changed().await.is_ok() {} })
        .await
        .is_ok()
}
