//! Single-flight: concurrent misses on one key make one call to the source, within a process
//! ([`Flights`]) and across processes that share a store ([`lock_or_wait`]).
//!
//! The response cache of `tower-edge` and [`Memo`](crate::memo::Memo) both follow this
//! protocol; a cache built on a [`CacheStore`](crate::CacheStore) can follow it too.
//!
//! 1. A miss joins the key's flight ([`Flights::join`]). The first becomes its leader
//!    ([`Lead`]); the others wait for it.
//! 2. The leader looks the key up again (a flight may have ended between its miss and its join),
//!    then takes the store's lock with [`lock_or_wait`]. That looks the key up once more right
//!    after taking the lock: another process may have stored it and let the lock go between this
//!    leader's last look and its lock. Where another process holds the lock, the leader polls
//!    the store for its entry, and tries the lock again, until the lock's TTL has passed.
//! 3. The leader calls the source, stores what it got, and says how its flight ended
//!    ([`Lead::finish`]): [`Finish::Stored`] sends the waiters to the store,
//!    [`Finish::NotStored`] (the answer could not be kept) sends each to the source itself. A
//!    leader dropped without finishing (its caller went away) hands the flight to one waiter,
//!    which leads it from there.
//! 4. A flight that runs longer than its `age` lets one more waiter go to the source (and again
//!    after each further `age`), as nginx's `proxy_cache_lock_age` does; the other waiters keep
//!    waiting for whichever call ends first. Waiting thus never sends every waiter to a slow
//!    source at once.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//!
//! use tower_edge_store::single_flight::{Finish, Flights, Joined};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let flights = Arc::new(Flights::default());
//! let age = Duration::from_secs(10);
//! let Joined::Lead(lead) = flights.join("GET /report", age).await else {
//!     unreachable!("the first to join leads");
//! };
//! // A second miss on the key waits for the leader...
//! let waiter = tokio::spawn({
//!     let flights = Arc::clone(&flights);
//!     async move { flights.join("GET /report", age).await }
//! });
//! tokio::task::yield_now().await;
//! // ...which stores the report, then says so.
//! lead.finish(Finish::Stored);
//! assert!(matches!(waiter.await.unwrap(), Joined::Done(Finish::Stored)));
//! # }
//! ```

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use crate::{CacheKey, CacheLock, Holder};

/// The flights of one cache: at most one per key, with its leaders and waiters.
#[derive(Debug, Default)]
pub struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

#[derive(Debug)]
struct Flight {
    state: watch::Sender<State>,
    leaders: Mutex<Leaders>,
}

#[derive(Debug)]
struct Leaders {
    count: usize,
    /// When the latest leader started: one more may start `age` after it.
    latest: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Finished(Finish),
    /// Every leader went away without finishing.
    Abandoned,
}

/// How a leader's call ended, for those that waited for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The answer was stored: look it up.
    Stored,
    /// The answer could not be stored (not cacheable, too large, the call or the put failed):
    /// go to the source yourself.
    NotStored,
}

impl Finish {
    /// [`Stored`](Self::Stored) when `stored`, else [`NotStored`](Self::NotStored).
    pub fn of(stored: bool) -> Self {
        if stored {
            Self::Stored
        } else {
            Self::NotStored
        }
    }
}

/// What [`Flights::join`] resolved to.
#[derive(Debug)]
pub enum Joined {
    /// Call the source, then [`Lead::finish`].
    Lead(Lead),
    /// A leader finished; this is how.
    Done(Finish),
}

/// Run when a leader goes: releases what it took (a store lock).
pub type Release = Box<dyn FnOnce() + Send + Sync>;

/// Held by a request that calls the source for a flight. Dropping it without
/// [`Lead::finish`] hands the flight to one of the waiters.
#[must_use = "the flight ends when the lead is dropped"]
pub struct Lead {
    flights: Arc<Flights>,
    flight: Arc<Flight>,
    key: String,
    finish: Option<Finish>,
    release: Option<Release>,
    holder: Option<Holder>,
}

impl Flights {
    /// Joins the flight for `key`: leads it when there is none, or waits for one of its
    /// leaders to finish. A flight whose latest leader started more than `age` ago takes one
    /// waiter on as another leader.
    pub async fn join(self: &Arc<Self>, key: &str, age: Duration) -> Joined {
        loop {
            let (flight, mut state) = {
                let mut map = self.lock();
                match map.get(key) {
                    Some(flight) => (Arc::clone(flight), flight.state.subscribe()),
                    None => return Joined::Lead(self.start(&mut map, key)),
                }
            };
            loop {
                match *state.borrow_and_update() {
                    State::Finished(finish) => return Joined::Done(finish),
                    // Gone from the map: join again, and one of the waiters leads.
                    State::Abandoned => break,
                    State::Running => {}
                }
                let next_lead = later(flight.leaders().latest, age);
                if tokio::time::timeout_at(next_lead, state.changed())
                    .await
                    .is_err()
                    && let Some(lead) = self.take_over(key, &flight, age)
                {
                    return Joined::Lead(lead);
                }
            }
        }
    }

    /// Leads the flight for `key` if there is none; `None` if one is under way. For work that
    /// nobody waits for, such as a background refresh.
    pub fn try_lead(self: &Arc<Self>, key: &str) -> Option<Lead> {
        let mut map = self.lock();
        (!map.contains_key(key)).then(|| self.start(&mut map, key))
    }

    fn start(self: &Arc<Self>, map: &mut HashMap<String, Arc<Flight>>, key: &str) -> Lead {
        let flight = Arc::new(Flight {
            state: watch::Sender::new(State::Running),
            leaders: Mutex::new(Leaders {
                count: 1,
                latest: Instant::now(),
            }),
        });
        map.insert(key.to_owned(), Arc::clone(&flight));
        self.lead(flight, key)
    }

    /// One more leader for `flight`, if it is still the key's and its latest leader started at
    /// least `age` ago (another waiter may have just taken over).
    fn take_over(self: &Arc<Self>, key: &str, flight: &Arc<Flight>, age: Duration) -> Option<Lead> {
        let map = self.lock();
        if !map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            return None;
        }
        let mut leaders = flight.leaders();
        let now = Instant::now();
        if *flight.state.borrow() != State::Running || now < later(leaders.latest, age) {
            return None;
        }
        leaders.count += 1;
        leaders.latest = now;
        drop(leaders);
        drop(map);
        Some(self.lead(Arc::clone(flight), key))
    }

    fn lead(self: &Arc<Self>, flight: Arc<Flight>, key: &str) -> Lead {
        Lead {
            flights: Arc::clone(self),
            flight,
            key: key.to_owned(),
            finish: None,
            release: None,
            holder: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many keys have a flight under way.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no flight is under way.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl Flight {
    fn leaders(&self) -> MutexGuard<'_, Leaders> {
        self.leaders.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Lead {
    /// Ends this leader's part of the flight: the waiters learn how.
    pub fn finish(mut self, finish: Finish) {
        self.finish = Some(finish);
    }

    /// Runs `release` when this lead goes, finished or not (before the waiters are woken).
    pub fn on_release(&mut self, release: Release) {
        self.release = Some(release);
    }

    /// Records that this leader holds the store's lock ([`Locked::Held`]): the lock is let go
    /// when the lead goes (finished or dropped half-way, on the current Tokio runtime), and
    /// [`Lead::holder`] gives what the leader's put passes to
    /// [`CacheStore::put_held`](crate::CacheStore::put_held), so that a leader whose lock
    /// expired and passed to another does not overwrite that one's entry.
    pub fn hold<St: CacheLock + Clone>(&mut self, store: &St, holder: Holder) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, held) = (store.clone(), holder.clone());
            self.on_release(Box::new(move || {
                runtime.spawn(async move {
                    let _ = store.unlock(held.key(), held.token()).await;
                });
            }));
        }
        self.holder = Some(holder);
    }

    /// The store lock this leader holds, if it took one.
    pub fn holder(&self) -> Option<&Holder> {
        self.holder.as_ref()
    }

    /// Lets those waiting on this flight go at once, as if it had finished without storing
    /// ([`Finish::NotStored`]: each goes on its own), starts a new flight for whoever joins
    /// next, and lets the store lock go, so that other instances stop waiting too. The leader
    /// goes on without a [`holder`](Self::holder): what it stores, it stores with a plain put.
    /// For an answer that streams for an unknown time, which nobody should sit through.
    pub fn let_waiters_go(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
        self.holder = None;
        let mut map = self.flights.lock();
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.key);
        }
        drop(map);
        self.flight
            .state
            .send_replace(State::Finished(Finish::NotStored));
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
        let mut map = self.flights.lock();
        let mut leaders = self.flight.leaders();
        leaders.count -= 1;
        let last = leaders.count == 0;
        drop(leaders);
        if last
            && map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.key);
        }
        // Whoever joins from here on finds the flight gone, or (when another leader still runs)
        // finds how this one finished.
        match self.finish {
            Some(finish) => {
                self.flight.state.send_replace(State::Finished(finish));
            }
            None if last => {
                self.flight.state.send_if_modified(|state| {
                    let running = *state == State::Running;
                    if running {
                        *state = State::Abandoned;
                    }
                    running
                });
            }
            None => {}
        }
        drop(map);
    }
}

impl fmt::Debug for Lead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lead")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What [`lock_or_wait`] resolved to.
#[derive(Debug)]
pub enum Locked<T> {
    /// The entry, stored by another process (or by one that finished just before the lock was
    /// taken).
    Found(T),
    /// This process holds the store's lock: call the source, store with
    /// [`CacheStore::put_held`](crate::CacheStore::put_held), then unlock (both through
    /// [`Lead::hold`]).
    Held(Holder),
    /// Go to the source without the lock: the store has no lock to give (it failed), or the
    /// process holding it neither stored an entry nor let the lock go within its TTL.
    Without,
}

/// Takes the store's lock named `lock_key` for `ttl`, or waits for the process that holds it.
///
/// `look` reads the cache: right after the lock is taken (so an entry stored by a holder that
/// just let go is found, and the source is not called twice), and between tries while another
/// process holds it. A lock taken only to find the entry is let go again at once. While
/// another holds the lock this polls, 2 ms apart at first and 50 ms at most, for at most `ttl`,
/// the time after which the holder's lock frees itself.
pub async fn lock_or_wait<St, T, L, Fut>(
    store: &St,
    lock_key: &CacheKey,
    ttl: Duration,
    mut look: L,
) -> Locked<T>
where
    St: CacheLock,
    L: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = later(Instant::now(), ttl);
    let mut delay = Duration::from_millis(2);
    loop {
        match store.try_lock(lock_key, ttl).await {
            Ok(Some(token)) => {
                if let Some(found) = look().await {
                    let _ = store.unlock(lock_key, &token).await;
                    return Locked::Found(found);
                }
                return Locked::Held(Holder::new(lock_key.clone(), token));
            }
            Ok(None) if Instant::now() >= deadline => return Locked::Without,
            Ok(None) => {
                tokio::time::sleep(delay.min(deadline - Instant::now())).await;
                delay = (delay * 2).min(Duration::from_millis(50));
                if let Some(found) = look().await {
                    return Locked::Found(found);
                }
            }
            Err(error) => {
                tracing::debug!(%error, key = %lock_key, "store lock unavailable; going without it");
                return Locked::Without;
            }
        }
    }
}

/// `at + wait`, or a time no wait reaches when that is past what an `Instant` can hold (a
/// timeout of `Duration::MAX` means: never).
fn later(at: Instant, wait: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(wait)
        .or_else(|| at.checked_add(CENTURY))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::*;

    fn lead(joined: Joined) -> Lead {
        match joined {
            Joined::Lead(lead) => lead,
            Joined::Done(finish) => panic!("expected to lead, got {finish:?}"),
        }
    }

    const AGE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn waiters_learn_how_the_leader_finished() {
        for finish in [Finish::Stored, Finish::NotStored] {
            let flights = Arc::new(Flights::default());
            let first = lead(flights.join("k", AGE).await);
            let waiters: Vec<_> = (0..5)
                .map(|_| {
                    let flights = Arc::clone(&flights);
                    tokio::spawn(async move { flights.join("k", AGE).await })
                })
                .collect();
            tokio::task::yield_now().await;
            first.finish(finish);
            for waiter in waiters {
                assert!(matches!(waiter.await.unwrap(), Joined::Done(f) if f == finish));
            }
            assert!(flights.is_empty());
        }
    }

    #[tokio::test]
    async fn an_abandoned_flight_passes_to_exactly_one_waiter() {
        let flights = Arc::new(Flights::default());
        let first = lead(flights.join("k", AGE).await);
        let leads = Arc::new(AtomicUsize::new(0));
        let (done_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let (flights, leads) = (Arc::clone(&flights), Arc::clone(&leads));
                let mut done = done_tx.subscribe();
                tokio::spawn(async move {
                    match flights.join("k", AGE).await {
                        Joined::Lead(lead) => {
                            leads.fetch_add(1, SeqCst);
                            // Hold the flight until every waiter has joined it.
                            let _ = done.recv().await;
                            lead.finish(Finish::Stored);
                            true
                        }
                        Joined::Done(finish) => {
                            assert_eq!(finish, Finish::Stored);
                            false
                        }
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(first);
        while leads.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        done_tx.send(()).unwrap();
        let mut led = 0;
        for waiter in waiters {
            led += usize::from(waiter.await.unwrap());
        }
        assert_eq!(led, 1);
        assert_eq!(leads.load(SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_flight_takes_one_more_leader_per_age() {
        let flights = Arc::new(Flights::default());
        let _first = lead(flights.join("k", AGE).await);
        let leads = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let (flights, leads) = (Arc::clone(&flights), Arc::clone(&leads));
                tokio::spawn(async move {
                    if let Joined::Lead(lead) = flights.join("k", AGE).await {
                        leads.fetch_add(1, SeqCst);
                        std::future::pending::<()>().await;
                        drop(lead);
                    }
                })
            })
            .collect();
        // Checked half an age away from each take-over, so no timer fires at the same instant.
        tokio::time::sleep(AGE / 2).await;
        assert_eq!(leads.load(SeqCst), 0);
        tokio::time::sleep(AGE).await;
        assert_eq!(leads.load(SeqCst), 1, "one waiter, not all, after one age");
        tokio::time::sleep(AGE).await;
        assert_eq!(leads.load(SeqCst), 2);
        for waiter in waiters {
            waiter.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_go_when_any_leader_finishes() {
        let flights = Arc::new(Flights::default());
        let first = lead(flights.join("k", AGE).await);
        tokio::time::sleep(AGE).await;
        // Past its age, the flight takes one more leader; then two more wait.
        let second = lead(flights.join("k", AGE).await);
        let [waiter, late] = [(); 2].map(|()| {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move { flights.join("k", AGE).await })
        });
        tokio::task::yield_now().await;
        // The slow first one finishes before the second: every waiter goes.
        first.finish(Finish::Stored);
        for waiter in [waiter, late] {
            assert!(matches!(
                waiter.await.unwrap(),
                Joined::Done(Finish::Stored)
            ));
        }
        // The flight lives on with its second leader, already known to have stored.
        assert!(matches!(
            flights.join("k", AGE).await,
            Joined::Done(Finish::Stored)
        ));
        drop(second);
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn an_endless_age_never_overflows() {
        let flights = Arc::new(Flights::default());
        let first = lead(flights.join("k", Duration::MAX).await);
        let waiter = {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move { flights.join("k", Duration::MAX).await })
        };
        tokio::task::yield_now().await;
        first.finish(Finish::Stored);
        assert!(matches!(
            waiter.await.unwrap(),
            Joined::Done(Finish::Stored)
        ));
    }

    #[tokio::test]
    async fn try_lead_does_not_wait() {
        let flights = Arc::new(Flights::default());
        let first = flights.try_lead("k").expect("no flight yet");
        assert!(flights.try_lead("k").is_none());
        drop(first);
        assert!(flights.try_lead("k").is_some());
    }

    #[tokio::test]
    async fn a_lead_releases_what_it_took_before_waking_waiters() {
        let flights = Arc::new(Flights::default());
        let released = Arc::new(AtomicUsize::new(0));
        let mut first = lead(flights.join("k", AGE).await);
        let seen = Arc::clone(&released);
        first.on_release(Box::new(move || {
            seen.fetch_add(1, SeqCst);
        }));
        let waiter = {
            let (flights, released) = (Arc::clone(&flights), Arc::clone(&released));
            tokio::spawn(async move {
                let joined = flights.join("k", AGE).await;
                (joined, released.load(SeqCst))
            })
        };
        tokio::task::yield_now().await;
        first.finish(Finish::NotStored);
        let (joined, released_then) = waiter.await.unwrap();
        assert!(matches!(joined, Joined::Done(Finish::NotStored)));
        assert_eq!(released_then, 1);
    }
}
