//! Looking a request up: its key, the `Vary` marker, the variant, and joining the flight of a
//! miss.

use super::*;

/// What joining a miss's flight gave.
pub(super) enum Taken {
    /// Fetch, for this request and those waiting.
    Lead(Lead),
    /// The entry the leader stored.
    Collapsed(Found),
    /// An entry stale already: answered (and revalidated) as any stale entry is.
    Stale(Found),
    /// The leader kept nothing this request can use: fetch, for this request alone.
    Alone,
}

/// Joins the flight of `key` (see `tower_edge_store::single_flight`).
pub(super) async fn take_flight<St: CacheStore>(ctx: &Ctx<St>, mut key: CacheKey) -> Taken {
    let shared = &ctx.shared;
    let mut rejoined = false;
    loop {
        let finish = match shared
            .flights
            .join(&key.to_string(), shared.config.coalesce_timeout)
            .await
        {
            Joined::Lead(lead) => return Taken::Lead(lead),
            Joined::Done(finish) => finish,
        };
        if finish == Finish::NotStored {
            return Taken::Alone;
        }
        match probe(ctx).await {
            Ok(found) if found.fresh(ctx.now) => {
                bump(&shared.counters.coalesced);
                return Taken::Collapsed(found);
            }
            Ok(found) => return Taken::Stale(found),
            // The leader stored another variant, and with it the resource's Vary: this
            // request's own variant has a flight of its own, which it waits for once.
            Err(variant) if !rejoined && variant != key => {
                key = variant;
                rejoined = true;
            }
            Err(_) => return Taken::Alone,
        }
    }
}

/// A stored entry and the key it was found under.
pub(super) struct Found {
    pub(super) entry: Arc<Entry>,
    /// `None` for the request's base key, which a hit then need not copy.
    pub(super) key: Option<CacheKey>,
}

impl Found {
    /// The key the entry was found under.
    pub(super) fn key<'a, St>(&'a self, ctx: &'a Ctx<St>) -> &'a CacheKey {
        self.key.as_ref().unwrap_or(&ctx.base)
    }

    pub(super) fn age(&self, now: SystemTime) -> Duration {
        self.entry.age(now)
    }

    pub(super) fn fresh(&self, now: SystemTime) -> bool {
        self.age(now) < self.entry.fresh_for()
    }

    pub(super) fn stale_by(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.entry.fresh_for())
    }
}

/// Looks the request up: the base key, then, if that holds a `Vary` marker, the variant.
/// A store failure is a miss.
pub(super) async fn lookup<St: CacheStore>(ctx: &Ctx<St>) -> Option<Found> {
    probe(ctx).await.ok()
}

/// [`lookup`], with what a miss knows: the key the request's own entry would have, which is
/// the variant key once the base holds a `Vary` marker. Concurrent misses coalesce on that key,
/// so requests for different variants of one resource do not wait for each other.
pub(super) async fn probe<St: CacheStore>(ctx: &Ctx<St>) -> Result<Found, CacheKey> {
    match after_base(ctx, get(ctx, &ctx.base).await) {
        Probe::Done(probed) => probed,
        Probe::Variant(key) => {
            let entry = get(ctx, &key).await;
            after_variant(key, entry)
        }
    }
}

/// [`probe`] from a store that answers without waiting ([`CacheStore::get_now`]); `None` when
/// it cannot.
pub(super) fn probe_now<St: CacheStore>(ctx: &Ctx<St>) -> Option<Result<Found, CacheKey>> {
    match after_base(ctx, ctx.shared.store.get_now(&ctx.base)?) {
        Probe::Done(probed) => Some(probed),
        Probe::Variant(key) => {
            let entry = ctx.shared.store.get_now(&key)?;
            Some(after_variant(key, entry))
        }
    }
}

/// Where a probe stands after the base key.
enum Probe {
    Done(Result<Found, CacheKey>),
    /// The base holds a `Vary` marker: the request's variant is under this key.
    Variant(CacheKey),
}

fn after_base<St>(ctx: &Ctx<St>, entry: Option<Arc<Entry>>) -> Probe {
    let Some(entry) = entry else {
        return Probe::Done(Err(ctx.base.clone()));
    };
    let Some(names) = marker(entry.headers()) else {
        return Probe::Done(Ok(Found { entry, key: None }));
    };
    let names: Option<Vec<HeaderName>> = names.to_str().ok().and_then(|names| {
        names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect()
    });
    match names {
        Some(names) => Probe::Variant(key::vary_key(ctx.base.clone(), &names, &ctx.client)),
        None => Probe::Done(Err(ctx.base.clone())),
    }
}

/// The `Vary` marker's list, if the entry is a marker. Found by comparing the names a stored
/// response has, which costs less than hashing the marker's name for a lookup (every hit asks).
fn marker(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers
        .iter()
        .find_map(|(name, value)| (*name == VARY_MARKER).then_some(value))
}

fn after_variant(key: CacheKey, entry: Option<Arc<Entry>>) -> Result<Found, CacheKey> {
    let Some(entry) = entry else {
        return Err(key);
    };
    // A marker under a variant key would be a corrupt store; never serve it.
    if marker(entry.headers()).is_some() {
        return Err(key);
    }
    Ok(Found {
        entry,
        key: Some(key),
    })
}

pub(super) async fn get<St: CacheStore>(ctx: &Ctx<St>, key: &CacheKey) -> Option<Arc<Entry>> {
    match crate::observe::scope::store(ctx.shared.store.get(key)).await {
        Ok(entry) => entry,
        Err(error) => {
            bump(&ctx.shared.counters.store_errors);
            tracing::warn!(%error, %key, "cache store get failed; treating as a miss");
            None
        }
    }
}
