//! What the layers inside an [`ObserveLayer`](super::ObserveLayer) tell it about one request:
//! the cache's outcome and the time spent on the origin and the store.
//!
//! The observe layer's future and body put the request's record in a thread-local slot for the
//! length of each poll (and of the inner service's `call`), as `tracing` enters a span. Code
//! that runs inside (the cache's state machine, its body) adds to whatever record is there;
//! code that runs elsewhere (a background refresh) finds none and records nothing. No
//! allocation, no lock, and nothing at all when no observe layer is outside.

use std::{cell::Cell, future::Future, time::Duration, time::Instant};

/// One request's notes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// The cache's outcome (the `tower_edge_cache_total` event), if a cache decided.
    pub(crate) cache: Option<&'static str>,
    /// Time waiting on the inner service for the cache (misses, revalidations).
    pub(crate) origin: Duration,
    /// Time waiting on the cache's store.
    pub(crate) store: Duration,
}

thread_local! {
    static CURRENT: Cell<Option<Record>> = const { Cell::new(None) };
}

/// Puts the outer record back however `within` ends, unwinding included.
struct Restore {
    outer: Option<Record>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.set(self.outer.take());
    }
}

/// Runs `f` with `record` as the current record, and keeps what `f` added to it.
pub(crate) fn within<R>(record: &mut Record, f: impl FnOnce() -> R) -> R {
    let restore = Restore {
        outer: CURRENT.replace(Some(*record)),
    };
    let out = f();
    if let Some(updated) = CURRENT.get() {
        *record = updated;
    }
    drop(restore);
    out
}

fn update(f: impl FnOnce(&mut Record)) {
    CURRENT.with(|current| {
        if let Some(mut record) = current.get() {
            f(&mut record);
            current.set(Some(record));
        }
    });
}

fn recording() -> bool {
    CURRENT.get().is_some()
}

/// The cache decided `event` for the current request.
#[allow(dead_code)] // unused in builds without the cache
pub(crate) fn cache_outcome(event: &'static str) {
    update(|record| record.cache = Some(event));
}

/// Awaits `f`, adding the time it took to the current request's origin time.
#[allow(dead_code)] // unused in builds without the cache
pub(crate) async fn origin<F: Future>(f: F) -> F::Output {
    timed(f, |record, took| record.origin += took).await
}

/// Awaits `f`, adding the time it took to the current request's store time.
#[allow(dead_code)] // unused in builds without the cache
pub(crate) async fn store<F: Future>(f: F) -> F::Output {
    timed(f, |record, took| record.store += took).await
}

async fn timed<F: Future>(f: F, add: impl FnOnce(&mut Record, Duration)) -> F::Output {
    // Whether a record is current is known when the first poll runs, which is where this
    // async fn's body starts: inside the observe layer's poll, or not at all.
    if !recording() {
        return f.await;
    }
    let began = Instant::now();
    let out = f.await;
    let took = began.elapsed();
    update(|record| add(record, took));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_reach_the_record_they_are_made_within_and_no_other() {
        cache_outcome("hit"); // no record: nothing happens
        let mut outer = Record::default();
        let mut inner = Record::default();
        within(&mut outer, || {
            cache_outcome("miss");
            within(&mut inner, || cache_outcome("hit"));
            update(|r| r.store += Duration::from_millis(2));
        });
        assert_eq!(outer.cache, Some("miss"));
        assert_eq!(outer.store, Duration::from_millis(2));
        assert_eq!(inner.cache, Some("hit"));
        assert_eq!(CURRENT.get(), None);
    }

    #[test]
    fn a_panic_inside_leaves_no_record_behind() {
        let mut record = Record::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            within(&mut record, || panic!("inside"));
        }));
        assert!(caught.is_err());
        assert_eq!(CURRENT.get(), None);
    }

    #[tokio::test]
    async fn timed_futures_add_their_time_only_inside_a_record() {
        // Outside: the future runs, nothing is recorded anywhere.
        assert_eq!(origin(async { 7 }).await, 7);
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let mut record = Record::default();
        let mut fut = std::pin::pin!(store(async { rx.await.unwrap() }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(within(&mut record, || fut.as_mut().poll(&mut cx)).is_pending());
        let between = Instant::now();
        while between.elapsed().is_zero() {}
        tx.send(1).unwrap();
        assert_eq!(
            within(&mut record, || fut.as_mut().poll(&mut cx)),
            std::task::Poll::Ready(1)
        );
        // At least the time spun above passed between the polls.
        assert!(
            record.store > Duration::ZERO,
            "the wall time between polls counts"
        );
        assert_eq!(record.origin, Duration::ZERO);
    }
}
