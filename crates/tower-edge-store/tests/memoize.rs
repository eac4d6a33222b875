//! `#[memoize]`: keys from the function and its arguments, `forget` and `forget_all`, skipped
//! arguments, plain and `Result` returns, generic functions and stale-while-revalidate.
#![cfg(feature = "macros")]

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use serde::{Serialize, Serializer};
use tower_edge_store::{
    MokaStore,
    clock::ManualClock,
    memo::{Memo, memoize},
};

static SHOP: LazyLock<Memo<MokaStore>> = LazyLock::new(|| Memo::new(MokaStore::default(), "shop"));
static PRICE_CALLS: AtomicUsize = AtomicUsize::new(0);
static STOCK_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(memo = SHOP, ttl = "10m")]
async fn price(sku: u32, region: String) -> Result<u64, String> {
    PRICE_CALLS.fetch_add(1, SeqCst);
    if sku == 0 {
        return Err("no such product".into());
    }
    let base: u64 = format!("{sku}00")
        .parse()
        .map_err(|_| "overflow".to_owned())?;
    Ok(base + region.len() as u64)
}

/// A plain return (no `Result`), a `mut` argument.
#[memoize(memo = SHOP, ttl = 600)]
async fn stock(mut sku: u32) -> u32 {
    STOCK_CALLS.fetch_add(1, SeqCst);
    sku += 1;
    sku
}

#[tokio::test]
async fn calls_are_cached_by_their_arguments_and_forgotten_one_by_one_or_all_at_once() {
    assert_eq!(price(7, "eu".into()).await, Ok(702));
    assert_eq!(price(7, "eu".into()).await, Ok(702));
    assert_eq!(PRICE_CALLS.load(SeqCst), 1, "the second call is a hit");
    assert_eq!(price(7, "us-east".into()).await, Ok(707));
    assert_eq!(price(8, "eu".into()).await, Ok(802));
    assert_eq!(PRICE_CALLS.load(SeqCst), 3, "other arguments, other keys");

    // Errors are returned, not stored.
    assert_eq!(
        price(0, "eu".into()).await,
        Err("no such product".to_owned())
    );
    assert_eq!(
        price(0, "eu".into()).await,
        Err("no such product".to_owned())
    );
    assert_eq!(PRICE_CALLS.load(SeqCst), 5);

    let key = price::key(&7, &"eu".to_owned()).unwrap();
    assert!(
        key.starts_with(concat!(module_path!(), "::price:")),
        "{key}"
    );
    assert!(SHOP.has(&key).await.unwrap());

    // One set of arguments.
    assert_eq!(price::forget(&SHOP, &7, &"eu".to_owned()).await.unwrap(), 1);
    assert_eq!(price(7, "eu".into()).await, Ok(702));
    assert_eq!(PRICE_CALLS.load(SeqCst), 6, "recomputed after forget");
    assert_eq!(price(7, "us-east".into()).await, Ok(707));
    assert_eq!(PRICE_CALLS.load(SeqCst), 6, "the others stay");

    // Every value of the function, and nothing of another function's or of plain `set`s.
    assert_eq!(stock(1).await, 2);
    SHOP.set("price:note", &1u8, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(price::forget_all(&SHOP).await.unwrap(), 3);
    assert!(
        !SHOP
            .has(&price::key(&8, &"eu".to_owned()).unwrap())
            .await
            .unwrap()
    );
    assert!(SHOP.has(&stock::key(&1).unwrap()).await.unwrap());
    assert!(SHOP.has("price:note").await.unwrap());
    assert_eq!(price(8, "eu".into()).await, Ok(802));
    assert_eq!(PRICE_CALLS.load(SeqCst), 7);

    // A plain return is cached too.
    assert_eq!(stock(1).await, 2);
    assert_eq!(STOCK_CALLS.load(SeqCst), 1);
}

/// The memo is an argument, left out of the key with the other skipped one.
#[memoize(memo = memo, ttl = "1h30m", name = "reports::total", skip(memo, trace_id, calls))]
async fn total(memo: &Memo<MokaStore>, year: u16, trace_id: u64, calls: &AtomicU64) -> u64 {
    calls.fetch_add(1, SeqCst);
    u64::from(year) + trace_id
}

#[tokio::test]
async fn skipped_arguments_and_a_given_name_shape_the_key() {
    let memo = Memo::new(MokaStore::default(), "m");
    let calls = AtomicU64::new(0);
    assert_eq!(total(&memo, 2026, 1, &calls).await, 2027);
    // Another trace id is the same call: the first value comes back.
    assert_eq!(total(&memo, 2026, 2, &calls).await, 2027);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(total::NAME, "reports::total");
    let key = total::key(&2026).unwrap();
    assert!(key.starts_with("reports::total:"), "{key}");
    assert!(memo.has(&key).await.unwrap());
}

/// Generic over its argument.
#[memoize(memo = memo, ttl = "1m", skip(memo))]
async fn length<T: Serialize + AsRef<str>>(memo: &Memo<MokaStore>, text: T) -> usize {
    text.as_ref().len()
}

struct Unkeyable;

impl Serialize for Unkeyable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not keyable"))
    }
}

#[memoize(memo = memo, ttl = "1m", skip(memo, calls))]
async fn unkeyable(memo: &Memo<MokaStore>, _arg: Unkeyable, calls: &AtomicU64) -> u64 {
    calls.fetch_add(1, SeqCst) + 1
}

#[tokio::test]
async fn generic_functions_work_and_arguments_that_do_not_serialize_are_not_cached() {
    let memo = Memo::new(MokaStore::default(), "g");
    assert_eq!(length(&memo, "four").await, 4);
    assert_eq!(length(&memo, String::from("four")).await, 4);
    assert!(memo.has(&length::key(&"four").unwrap()).await.unwrap());

    let calls = AtomicU64::new(0);
    assert_eq!(unkeyable(&memo, Unkeyable, &calls).await, 1);
    assert_eq!(
        unkeyable(&memo, Unkeyable, &calls).await,
        2,
        "computed each time"
    );
    assert_eq!(unkeyable::key(&Unkeyable), None);
    assert_eq!(unkeyable::forget(&memo, &Unkeyable).await.unwrap(), 0);
}

static CLOCK: LazyLock<ManualClock> = LazyLock::new(|| {
    ManualClock::new(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30))
});
static DAILY: LazyLock<Memo<MokaStore>> = LazyLock::new(|| {
    Memo::new(MokaStore::default(), "daily")
        .refresh_window(Duration::from_secs(300))
        .clock(CLOCK.clone())
});
static DAILY_RUNS: AtomicU64 = AtomicU64::new(0);
static GATE: LazyLock<Arc<tokio::sync::Notify>> = LazyLock::new(Arc::default);

#[memoize(memo = DAILY, ttl = "60s", refresh)]
async fn daily(day: u32) -> Result<u64, String> {
    let run = DAILY_RUNS.fetch_add(1, SeqCst) + 1;
    if run > 1 {
        GATE.notified().await;
    }
    Ok(u64::from(day) * 10 + run)
}

#[tokio::test]
async fn refresh_returns_the_stale_value_at_once_while_one_caller_recomputes() {
    assert_eq!(daily(1).await, Ok(11));
    // The first computation lets the store's lock go in a task of its own: on this
    // single-threaded runtime, that task runs when this one yields.
    tokio::task::yield_now().await;
    CLOCK.advance(Duration::from_secs(90));
    // Stale, within the window: the old value at once, though the refresh is held at the gate.
    assert_eq!(daily(1).await, Ok(11));
    assert_eq!(daily(1).await, Ok(11));
    GATE.notify_one();
    // The refresh stores 12; wait for it by polling the store through the public key (bounded).
    let key = daily::key(&1).unwrap();
    let mut fresh = None;
    for _ in 0..1000 {
        fresh = DAILY.get::<u64>(&key).await.unwrap();
        if fresh.is_some() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(fresh, Some(12));
    assert_eq!(
        DAILY_RUNS.load(SeqCst),
        2,
        "one refresh for every stale caller"
    );
    assert_eq!(daily(1).await, Ok(12));
}

#[tokio::test]
async fn a_memoized_function_shares_its_store_with_the_rest() {
    // `forget_all` goes through the tag index: it removes nothing of another namespace.
    let store = MokaStore::default();
    let a = Memo::new(store.clone(), "a");
    let b = Memo::new(store.clone(), "b");
    assert_eq!(length(&a, "x").await, 1);
    assert_eq!(length(&b, "x").await, 1);
    assert_eq!(length::forget_all(&a).await.unwrap(), 1);
    assert!(b.has(&length::key(&"x").unwrap()).await.unwrap());
    assert_eq!(store.entry_count(), 1);
}
