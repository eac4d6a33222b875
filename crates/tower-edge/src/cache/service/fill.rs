//! Storing what the inner service answered: the entry, its `Vary` marker and tags, under the
//! fence protocol of `tower_edge_store::fence`, and how the flight that waited for it ended.

use super::*;

/// Tells those waiting for this request's flight, if it leads one, how it ended.
pub(super) fn finish(lead: Option<Lead>, how: Finish) {
    if let Some(lead) = lead {
        lead.finish(how);
    }
}

pub(super) const FRESH_NOW: policy::Freshness = policy::Freshness {
    fresh_for: Duration::ZERO,
    initial_age: Duration::ZERO,
    stale_while_revalidate: Duration::ZERO,
    stale_if_error: Duration::ZERO,
};

pub(super) fn entry_of(
    parts: &response::Parts,
    body: Bytes,
    freshness: &policy::Freshness,
    tags: Vec<String>,
    now: SystemTime,
) -> Entry {
    let mut headers = parts.headers.clone();
    headers.remove(header::AGE);
    headers.remove(&CACHE_STATUS);
    // RFC 9110 §6.6.1: a cache that stores a response without a Date adds one; hits then send
    // the Date of the stored response with its Age, not the time of the hit.
    if !headers.contains_key(header::DATE) {
        headers.insert(header::DATE, crate::http::date::http_date_value(now));
    }
    Entry::new(parts.status, headers, body)
        .with_stored_at(now)
        .with_initial_age(freshness.initial_age)
        .with_fresh_for(freshness.fresh_for)
        .with_stale_while_revalidate(freshness.stale_while_revalidate)
        .with_stale_if_error(freshness.stale_if_error)
        .with_tags(tags)
}

pub(super) fn with_body(template: Entry, body: Bytes) -> Entry {
    template.with_body(body)
}

/// The names a response varies on, as this cache keys them.
pub(super) fn vary_of<St>(ctx: &Ctx<St>, headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names = key::vary_names(headers).unwrap_or_default();
    if ctx.shared.config.encoding.is_none()
        && crate::http::vary::Vary::of(headers).lists(&header::ACCEPT_ENCODING)
    {
        // No negotiator to key on: the raw header is the only safe key.
        names.push(header::ACCEPT_ENCODING);
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    }
    names
}

pub(super) fn variant_key<St>(ctx: &Ctx<St>, headers: &HeaderMap) -> CacheKey {
    let names = vary_of(ctx, headers);
    if names.is_empty() {
        ctx.base.clone()
    } else {
        key::vary_key(ctx.base.clone(), &names, &ctx.client)
    }
}

/// The marker entry to store under the base key when the response varies on request headers.
pub(super) fn marker_for<St>(
    ctx: &Ctx<St>,
    headers: &HeaderMap,
    _ttl: Duration,
) -> Option<(CacheKey, Entry)> {
    let names = vary_of(ctx, headers);
    if names.is_empty() {
        return None;
    }
    let list = names
        .iter()
        .map(HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(",");
    let mut marker_headers = HeaderMap::new();
    marker_headers.insert(VARY_MARKER.clone(), HeaderValue::from_str(&list).ok()?);
    let marker = Entry::new(StatusCode::OK, marker_headers, Bytes::new()).with_stored_at(ctx.now);
    Some((ctx.base.clone(), marker))
}

/// What a fill holds: the fence ticket taken before the origin was asked, and the store lock of
/// a leader that took one.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Claim<'a> {
    pub(super) ticket: Option<Ticket>,
    pub(super) holder: Option<&'a Holder>,
}

pub(super) async fn store_entry<St: CacheStore>(
    ctx: &Ctx<St>,
    claim: Claim<'_>,
    key: &CacheKey,
    headers: &HeaderMap,
    entry: Entry,
    ttl: Duration,
) -> bool {
    let marker = marker_for(ctx, headers, ttl);
    let shared = &ctx.shared;
    crate::observe::scope::store(fill(
        &shared.store,
        &shared.counters,
        claim,
        key,
        marker,
        entry,
        ttl,
    ))
    .await
}

/// Puts `entry` (and its `Vary` marker) unless its resource or one of its tags was invalidated
/// since the claim's ticket: the origin may have read the old data before that write. Checked before the
/// put and again after it, undoing the put if an invalidation landed in between (the protocol
/// of `tower_edge_store::fence`). A leader that holds the store's lock (the claim's holder) puts the
/// entry only while it still holds it: one whose lock expired and passed to another leader,
/// which may be storing a newer answer, stores nothing.
pub(super) async fn fill<St: CacheStore>(
    store: &St,
    counters: &stats::Counters,
    claim: Claim<'_>,
    key: &CacheKey,
    marker: Option<(CacheKey, Entry)>,
    entry: Entry,
    ttl: Duration,
) -> bool {
    let tags = entry.tags().to_vec();
    let len = entry.body().len() as u64;
    let put = async {
        if let Some((marker_key, marker)) = marker {
            store
                .put(&marker_key, marker, ttl)
                .await
                .map_err(|_| Refused::Failed)?;
        }
        match claim.holder {
            Some(holder) => match store.put_held(key, entry, ttl, holder).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Refused::LockLost),
                Err(_) => Err(Refused::Failed),
            },
            None => store
                .put(key, entry, ttl)
                .await
                .map_err(|_| Refused::Failed),
        }
    };
    let undo = async {
        let _ = store.delete(key).await;
    };
    match fence::fill(store.fence(), claim.ticket, key, &tags, put, undo).await {
        Filled::Stored => {
            bump(&counters.stored);
            tracing::debug!(%key, bytes = len, ttl = ?ttl, "response stored");
            counters
                .bytes_stored
                .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            true
        }
        Filled::Fenced => {
            bump(&counters.fenced);
            tracing::debug!(%key, "invalidated while fetched; response not stored");
            false
        }
        Filled::Failed(Refused::LockLost) => {
            bump(&counters.fenced);
            tracing::debug!(%key, "the store lock passed to another leader; response not stored");
            false
        }
        Filled::Failed(Refused::Failed) => {
            bump(&counters.store_errors);
            tracing::warn!(%key, "cache store put failed; response not stored");
            false
        }
    }
}

/// Why a put did not store.
enum Refused {
    /// The store failed.
    Failed,
    /// The lock this leader held passed to another (see [`CacheStore::put_held`]).
    LockLost,
}

/// Tags from the `Cache-Tag` header and the [`CacheTags`] extension, removed from the response.
pub(super) fn take_tags(parts: &mut response::Parts) -> Vec<String> {
    let mut tags: Vec<String> = parts
        .extensions
        .remove::<CacheTags>()
        .map(|t| t.0)
        .unwrap_or_default();
    for value in parts.headers.get_all("cache-tag") {
        if let Ok(value) = value.to_str() {
            tags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    parts.headers.remove("cache-tag");
    tags.sort();
    tags.dedup();
    tags
}

pub(super) async fn drain<B: Body>(body: B) {
    let mut body = std::pin::pin!(body);
    while let Some(Ok(_)) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {}
}
