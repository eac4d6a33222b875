//! One behavioural suite for every [`CacheStore`] backend: each backend's test file calls
//! [`run_all`] with a fresh, empty store.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tower_edge_store::{CacheKey, CacheStore, Entry, Holder};

const TTL: Duration = Duration::from_secs(3600);

fn entry(body: &'static str, tags: &[&str]) -> Entry {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Entry::new(StatusCode::OK, headers, Bytes::from_static(body.as_bytes()))
        .with_fresh_for(Duration::from_secs(60))
        .with_tags(tags.iter().map(|t| (*t).to_owned()).collect())
}

fn key(resource: &str, enc: &str) -> CacheKey {
    CacheKey::new(resource).with_variant("enc", enc)
}

/// The body stored under `key`; and whenever the store answers without waiting
/// (`get_now`), that answer must agree with `get`'s, after every operation the checks make.
async fn body_of<S: CacheStore>(store: &S, key: &CacheKey) -> Option<Bytes> {
    let now = store.get_now(key);
    let got = store.get(key).await.expect("get succeeds");
    if let Some(now) = now {
        assert_eq!(
            now.as_deref(),
            got.as_deref(),
            "get_now and get disagree on {key}"
        );
    }
    got.map(|e| e.body().clone())
}

/// Runs every check, purging the store between them.
pub async fn run_all<S: CacheStore>(store: &S) {
    macro_rules! check {
        ($name:ident) => {
            store.purge().await.expect("purge succeeds");
            $name(store).await;
        };
    }
    check!(get_returns_what_put_stored);
    check!(put_replaces_and_zero_ttl_removes);
    check!(delete_removes_one_variant);
    check!(delete_resource_removes_every_variant_of_that_resource_only);
    check!(delete_prefix_removes_every_resource_under_it);
    check!(delete_tag_removes_tagged_entries_only);
    check!(replacing_an_entry_replaces_its_tags);
    check!(bump_generation_hides_everything_at_once);
    check!(purge_removes_everything);
    check!(locks_exclude_and_release_only_to_their_owner);
    check!(a_put_held_stores_only_while_its_lock_is_held);
    check!(keys_with_separators_do_not_collide);
    check!(the_longest_ttl_is_stored);
    check!(counters_add_atomically_and_go_with_their_key);
    check!(many_at_once_reads_and_writes_as_one_at_a_time);
    check!(a_counter_keeps_the_window_of_its_first_addition);
}

/// `incr`: atomic among concurrent callers, overflow refused, and removed by the invalidations
/// of its key, its resource, a prefix, a generation and a purge.
pub async fn counters_add_atomically_and_go_with_their_key<S: CacheStore>(store: &S) {
    let k = key("GET http://a/count", "n");
    assert_eq!(store.incr(&k, 1, TTL).await.unwrap(), 1);
    assert_eq!(store.incr(&k, 5, TTL).await.unwrap(), 6);
    assert_eq!(store.incr(&k, -10, TTL).await.unwrap(), -4);

    // 64 additions at once: each sees a different count, and none is lost.
    let adds = (0..64).map(|_| store.incr(&k, 1, TTL));
    let mut seen: Vec<i64> = futures_util::future::join_all(adds)
        .await
        .into_iter()
        .map(|n| n.expect("incr succeeds"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (-3..=60).collect::<Vec<_>>());

    let big = key("GET http://a/big", "n");
    assert_eq!(store.incr(&big, i64::MAX, TTL).await.unwrap(), i64::MAX);
    assert!(
        store.incr(&big, 1, TTL).await.is_err(),
        "overflow is refused"
    );
    assert_eq!(
        store.incr(&big, 0, TTL).await.unwrap(),
        i64::MAX,
        "and changes nothing"
    );

    store.delete(&k).await.unwrap();
    assert_eq!(store.incr(&k, 0, TTL).await.unwrap(), 0, "a key deletion");
    store.incr(&k, 3, TTL).await.unwrap();
    store.delete_resource("GET http://a/count").await.unwrap();
    assert_eq!(
        store.incr(&k, 0, TTL).await.unwrap(),
        0,
        "a resource deletion"
    );
    store.incr(&k, 3, TTL).await.unwrap();
    store.delete_prefix("GET http://a/co").await.unwrap();
    assert_eq!(
        store.incr(&k, 0, TTL).await.unwrap(),
        0,
        "a prefix deletion"
    );
    store.incr(&k, 3, TTL).await.unwrap();
    store.bump_generation().await.unwrap();
    assert_eq!(store.incr(&k, 0, TTL).await.unwrap(), 0, "a new generation");
    store.incr(&k, 3, TTL).await.unwrap();
    store.purge().await.unwrap();
    assert_eq!(store.incr(&k, 1, TTL).await.unwrap(), 1, "a purge");
    // Another variant of the resource is another counter.
    assert_eq!(
        store
            .incr(&key("GET http://a/count", "m"), 1, TTL)
            .await
            .unwrap(),
        1
    );
}

/// `get_many` answers what `get` answers for each key, in order; `put_many` stores what `put`
/// stores, indexed by resource and by tag alike.
pub async fn many_at_once_reads_and_writes_as_one_at_a_time<S: CacheStore>(store: &S) {
    assert_eq!(store.get_many(&[]).await.unwrap(), Vec::new());
    let keys: Vec<CacheKey> = (0..12)
        .map(|i| {
            key(
                &format!("GET http://a/many/{i}"),
                if i % 2 == 0 { "br" } else { "gzip" },
            )
        })
        .collect();
    let items = keys
        .iter()
        .take(8)
        .enumerate()
        .map(|(i, k)| {
            let tags: &[&str] = if i < 3 { &["first"] } else { &[] };
            (
                k.clone(),
                entry(["a", "b", "c", "d", "e", "f", "g", "h"][i], tags),
            )
        })
        .collect();
    store.put_many(items, TTL).await.unwrap();
    // Read in an order of their own, with absent keys in between and one key twice.
    let asked: Vec<CacheKey> = [9, 0, 7, 11, 3, 0]
        .iter()
        .map(|&i| keys[i].clone())
        .collect();
    let bodies: Vec<Option<Bytes>> = store
        .get_many(&asked)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.map(|e| e.body().clone()))
        .collect();
    let expected: Vec<Option<&[u8]>> =
        vec![None, Some(b"a"), Some(b"h"), None, Some(b"d"), Some(b"a")];
    assert_eq!(
        bodies.iter().map(Option::as_deref).collect::<Vec<_>>(),
        expected
    );
    for (k, got) in asked.iter().zip(&bodies) {
        assert_eq!(
            &body_of(store, k).await,
            got,
            "get agrees with get_many on {k}"
        );
    }
    assert_eq!(store.delete_tag("first").await.unwrap(), 3);
    assert_eq!(body_of(store, &keys[2]).await, None);
    assert_eq!(
        store.delete_resource("GET http://a/many/5").await.unwrap(),
        1
    );
    assert_eq!(body_of(store, &keys[5]).await, None);
    assert_eq!(body_of(store, &keys[6]).await.as_deref(), Some(&b"g"[..]));
}

/// A counter lives for the TTL of its first addition; later ones (with a longer TTL) keep it.
pub async fn a_counter_keeps_the_window_of_its_first_addition<S: CacheStore>(store: &S) {
    let k = key("GET http://a/window", "n");
    assert_eq!(
        store.incr(&k, 1, Duration::from_millis(100)).await.unwrap(),
        1
    );
    assert_eq!(store.incr(&k, 1, TTL).await.unwrap(), 2);
    // Bounded wait for the first window to end: with the hour-long TTL applied instead, it
    // would not, and the deadline fails the check.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = store.incr(&k, 0, TTL).await.unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(n, 2);
        assert!(
            std::time::Instant::now() < deadline,
            "the counter outlived its window"
        );
        tokio::task::yield_now().await;
    }
    // The next window takes the TTL of its own first addition.
    assert_eq!(store.incr(&k, 1, TTL).await.unwrap(), 1);
}

/// The longest lifetime RFC 9111 §1.2.2 has a cache represent (`Memo::FOREVER`): stored as any
/// other, not refused or overflowed by the backend's expiry.
pub async fn the_longest_ttl_is_stored<S: CacheStore>(store: &S) {
    let k = key("GET http://a/forever", "br");
    store
        .put(&k, entry("kept", &[]), Duration::from_secs(1 << 31))
        .await
        .unwrap();
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"kept"[..]));
}

/// A stored entry comes back with status, headers, body and metadata intact.
pub async fn get_returns_what_put_stored<S: CacheStore>(store: &S) {
    let k = key("GET http://a/x", "br");
    assert!(store.get(&k).await.unwrap().is_none());
    let stored = entry("hello", &["t"]);
    store.put(&k, stored.clone(), TTL).await.unwrap();
    let got = store.get(&k).await.unwrap().expect("a hit after put");
    assert_eq!(*got, stored);
    assert_eq!(got.headers()[header::CONTENT_TYPE], "text/plain");
}

/// A second put replaces the first; a zero TTL stores nothing and removes the old entry.
pub async fn put_replaces_and_zero_ttl_removes<S: CacheStore>(store: &S) {
    let k = key("GET http://a/x", "gzip");
    store.put(&k, entry("one", &[]), TTL).await.unwrap();
    store.put(&k, entry("two", &[]), TTL).await.unwrap();
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"two"[..]));
    store
        .put(&k, entry("three", &[]), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(body_of(store, &k).await, None);
}

/// `delete` addresses exactly one key.
pub async fn delete_removes_one_variant<S: CacheStore>(store: &S) {
    let (br, gz) = (key("GET http://a/x", "br"), key("GET http://a/x", "gzip"));
    store.put(&br, entry("b", &[]), TTL).await.unwrap();
    store.put(&gz, entry("g", &[]), TTL).await.unwrap();
    assert_eq!(store.delete(&br).await.unwrap(), 1);
    assert_eq!(store.delete(&br).await.unwrap(), 0);
    assert_eq!(body_of(store, &br).await, None);
    assert!(body_of(store, &gz).await.is_some());
}

/// `delete_resource` removes every variant of the resource and nothing that merely shares its
/// beginning.
pub async fn delete_resource_removes_every_variant_of_that_resource_only<S: CacheStore>(store: &S) {
    let variants = [
        key("GET http://a/x", "br"),
        key("GET http://a/x", "identity"),
        CacheKey::new("GET http://a/x")
            .with_variant("enc", "br")
            .with_variant("accept-language", "fr"),
    ];
    for k in &variants {
        store.put(k, entry("v", &[]), TTL).await.unwrap();
    }
    let longer = key("GET http://a/xy", "br");
    store.put(&longer, entry("other", &[]), TTL).await.unwrap();
    assert_eq!(store.delete_resource("GET http://a/x").await.unwrap(), 3);
    for k in &variants {
        assert_eq!(body_of(store, k).await, None, "{k}");
    }
    assert!(body_of(store, &longer).await.is_some());
}

/// `delete_prefix` removes every resource that starts with the prefix.
pub async fn delete_prefix_removes_every_resource_under_it<S: CacheStore>(store: &S) {
    let under = [
        key("GET http://a/api/1", "br"),
        key("GET http://a/api/2?q=1", "gzip"),
    ];
    let outside = [
        key("GET http://a/apx", "br"),
        key("GET http://b/api/1", "br"),
    ];
    for k in under.iter().chain(&outside) {
        store.put(k, entry("v", &[]), TTL).await.unwrap();
    }
    assert_eq!(store.delete_prefix("GET http://a/api/").await.unwrap(), 2);
    for k in &under {
        assert_eq!(body_of(store, k).await, None, "{k}");
    }
    for k in &outside {
        assert!(body_of(store, k).await.is_some(), "{k}");
    }
}

/// `delete_tag` removes the entries carrying the tag, in every variant.
pub async fn delete_tag_removes_tagged_entries_only<S: CacheStore>(store: &S) {
    let a = key("GET http://a/p/1", "br");
    let a2 = key("GET http://a/p/1", "gzip");
    let b = key("GET http://a/p/2", "br");
    store
        .put(&a, entry("1", &["product:1", "catalogue"]), TTL)
        .await
        .unwrap();
    store
        .put(&a2, entry("1", &["product:1"]), TTL)
        .await
        .unwrap();
    store
        .put(&b, entry("2", &["product:2", "catalogue"]), TTL)
        .await
        .unwrap();
    assert_eq!(store.delete_tag("product:1").await.unwrap(), 2);
    assert_eq!(body_of(store, &a).await, None);
    assert_eq!(body_of(store, &a2).await, None);
    assert!(body_of(store, &b).await.is_some());
    assert_eq!(store.delete_tag("catalogue").await.unwrap(), 1);
    assert_eq!(body_of(store, &b).await, None);
    assert_eq!(store.delete_tag("nobody").await.unwrap(), 0);
}

/// A replaced entry keeps only the new entry's tags.
pub async fn replacing_an_entry_replaces_its_tags<S: CacheStore>(store: &S) {
    let k = key("GET http://a/r", "br");
    store
        .put(&k, entry("old", &["old-tag"]), TTL)
        .await
        .unwrap();
    store
        .put(&k, entry("new", &["new-tag"]), TTL)
        .await
        .unwrap();
    store.delete_tag("old-tag").await.unwrap();
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"new"[..]));
    assert_eq!(store.delete_tag("new-tag").await.unwrap(), 1);
    assert_eq!(body_of(store, &k).await, None);
}

/// A generation bump hides every entry; new entries are stored under the new generation.
pub async fn bump_generation_hides_everything_at_once<S: CacheStore>(store: &S) {
    let k = key("GET http://a/g", "br");
    store.put(&k, entry("before", &["t"]), TTL).await.unwrap();
    let first = store.bump_generation().await.unwrap();
    assert_eq!(body_of(store, &k).await, None);
    store.put(&k, entry("after", &[]), TTL).await.unwrap();
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"after"[..]));
    assert!(store.bump_generation().await.unwrap() > first);
    assert_eq!(body_of(store, &k).await, None);
}

/// `purge` removes everything.
pub async fn purge_removes_everything<S: CacheStore>(store: &S) {
    let keys: Vec<CacheKey> = (0..20)
        .map(|i| key(&format!("GET http://a/{i}"), "br"))
        .collect();
    for k in &keys {
        store.put(k, entry("v", &["t"]), TTL).await.unwrap();
    }
    store.purge().await.unwrap();
    for k in &keys {
        assert_eq!(body_of(store, k).await, None, "{k}");
    }
    assert_eq!(store.delete_tag("t").await.unwrap(), 0);
}

/// Waits, bounded, until the lock `k` is free, and takes it for `ttl`.
async fn take_once_free<S: CacheStore>(store: &S, k: &CacheKey, ttl: Duration) -> Holder {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(token) = store.try_lock(k, ttl).await.unwrap() {
            return Holder::new(k.clone(), token);
        }
        assert!(std::time::Instant::now() < deadline, "lock never expired");
        tokio::task::yield_now().await;
    }
}

/// A fenced lock owner: `put_held` stores while its lock is held, and refuses (storing
/// nothing) once the lock expired and passed to another, or was let go.
pub async fn a_put_held_stores_only_while_its_lock_is_held<S: CacheStore>(store: &S) {
    let k = key("GET http://a/held", "br");
    let lock = CacheKey::new("GET http://a/held");
    let first = take_once_free(store, &lock, Duration::from_millis(20)).await;
    assert!(
        store
            .put_held(&k, entry("first", &[]), TTL, &first)
            .await
            .unwrap()
    );
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"first"[..]));
    // The first holder stalls past its TTL; a second takes the lock and stores.
    let second = take_once_free(store, &lock, Duration::from_secs(30)).await;
    assert!(
        store
            .put_held(&k, entry("second", &["t"]), TTL, &second)
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_held(&k, entry("stale", &["t"]), TTL, &first)
            .await
            .unwrap(),
        "a holder whose lock passed to another is refused"
    );
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"second"[..]));
    assert!(store.unlock(&lock, second.token()).await.unwrap());
    assert!(
        !store
            .put_held(&k, entry("late", &[]), TTL, &second)
            .await
            .unwrap(),
        "a holder that let go is refused"
    );
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"second"[..]));
    // The entry stored is the second holder's, tag and all.
    assert_eq!(store.delete_tag("t").await.unwrap(), 1);
    // A lock named after another resource works too (on a cluster, in another slot).
    let elsewhere = take_once_free(store, &CacheKey::new("memo:other"), TTL).await;
    assert!(
        store
            .put_held(&k, entry("third", &[]), TTL, &elsewhere)
            .await
            .unwrap()
    );
    assert_eq!(body_of(store, &k).await.as_deref(), Some(&b"third"[..]));
    assert!(
        store
            .unlock(elsewhere.key(), elsewhere.token())
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_held(&k, entry("x", &[]), TTL, &elsewhere)
            .await
            .unwrap()
    );
}

/// A lock excludes other takers until released by its owner, and frees itself after its TTL.
pub async fn locks_exclude_and_release_only_to_their_owner<S: CacheStore>(store: &S) {
    let k = key("GET http://a/lock", "br");
    let token = store
        .try_lock(&k, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free lock is taken");
    assert!(
        store
            .try_lock(&k, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
    let stranger = tower_edge_store::LockToken::random();
    assert!(!store.unlock(&k, &stranger).await.unwrap());
    assert!(
        store
            .try_lock(&k, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.unlock(&k, &token).await.unwrap());
    assert!(!store.unlock(&k, &token).await.unwrap(), "released twice");
    let again = store.try_lock(&k, Duration::from_millis(1)).await.unwrap();
    assert!(again.is_some());
    // A lock whose holder vanished frees itself: poll, bounded, for the 1 ms TTL to pass.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if store
            .try_lock(&k, Duration::from_secs(30))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lock never expired");
        tokio::task::yield_now().await;
    }
}

/// Keys whose parts contain the separators stay distinct.
pub async fn keys_with_separators_do_not_collide<S: CacheStore>(store: &S) {
    let a = CacheKey::new("GET http://a/s").with_variant("x", "1&y=2");
    let b = CacheKey::new("GET http://a/s")
        .with_variant("x", "1")
        .with_variant("y", "2");
    store.put(&a, entry("a", &[]), TTL).await.unwrap();
    store.put(&b, entry("b", &[]), TTL).await.unwrap();
    assert_eq!(body_of(store, &a).await.as_deref(), Some(&b"a"[..]));
    assert_eq!(body_of(store, &b).await.as_deref(), Some(&b"b"[..]));
}
