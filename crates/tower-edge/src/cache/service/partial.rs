//! Partial content (RFC 9111 §3.3 and §3.4): storing the `206` a forwarded range brought,
//! combining it with the parts of the same representation already held, and answering later
//! ranges that lie wholly within them. A video or a download behind the cache fills it range by
//! range; once the parts cover the whole representation, they are stored as a complete `200`.

use super::*;
use crate::cache::parts::{PARTS_HEADER, Pieces, same_strong_etag};
use crate::range::partial_parts_with;

/// Where a variant's parts are kept: next to its complete entry, under the same resource, so
/// invalidating the resource removes them too.
pub(super) fn parts_key(variant: &CacheKey) -> CacheKey {
    variant.clone().with_variant("parts", "bytes")
}

/// Answers a range request from stored parts when each range it asks for lies within one held
/// span (§3.3), or with a `416` when none is satisfiable. `None`: go on as a miss.
///
/// Only fresh parts answer; stale ones are fetched again with the range, not revalidated. A
/// request with preconditions other than `If-Range` goes to the origin: they are about the
/// whole representation, which the cache does not hold.
pub(super) async fn answer_from_parts<St: CacheStore, B>(
    ctx: &Ctx<St>,
    variant: &CacheKey,
) -> Option<Response<CacheBody<B>>> {
    if ctx.method != Method::GET || !ctx.asks.range || ctx.asks.conditional {
        return None;
    }
    let key = parts_key(variant);
    let found = Found {
        entry: get(ctx, &key).await?,
        key: Some(key),
    };
    if !found.fresh(ctx.now) {
        return None;
    }
    let entry = &found.entry;
    let pieces = Pieces::from_stored(entry.headers(), entry.body())?;
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::OK;
    *res.headers_mut() = entry.headers().clone();
    res.headers_mut().remove(PARTS_HEADER);
    let validators = Validators::from_headers(res.headers());
    let resolution = range::evaluate(
        &ctx.method,
        &ctx.client,
        pieces.complete(),
        &validators,
        ctx.now,
        &RangeLimits::new(),
    );
    let ranges = match resolution {
        Resolution::Partial(ranges)
            if ranges.iter().all(|range| pieces.slice(*range).is_some()) =>
        {
            Some(ranges)
        }
        Resolution::Unsatisfiable => None,
        // The whole representation, or a range the parts do not hold.
        Resolution::Partial(_) | Resolution::Full => return None,
    };
    bump(&ctx.shared.counters.hits);
    tracing::trace!(key = %found.key(ctx), "cache hit on stored parts");
    let ttl = entry.fresh_for().saturating_sub(found.age(ctx.now));
    res.headers_mut()
        .insert(header::AGE, policy::seconds_value(found.age(ctx.now)));
    Outcome::Hit { ttl }.apply(
        res.headers_mut(),
        &ctx.shared.counters,
        &ctx.shared.config.cache_name,
    );
    let (parts, ()) = res.into_parts();
    Some(match ranges {
        Some(ranges) => {
            let slice = |range: &ByteRange| pieces.slice(*range).expect("checked above");
            let (parts, chunks) = partial_parts_with(
                parts,
                pieces.complete(),
                &ranges,
                slice,
                &ctx.shared.counters.answers,
            );
            Response::from_parts(parts, CacheBody::chunks(chunks))
        }
        None => {
            let (parts, body) =
                unsatisfiable_parts(parts, pieces.complete(), &ctx.shared.counters.answers);
            Response::from_parts(parts, CacheBody::full(body))
        }
    })
}

/// What [`store_part`] needs besides the response.
pub(super) struct Part<'a> {
    pub(super) request: &'a HeaderMap,
    pub(super) ticket: Option<Ticket>,
    pub(super) fwd: Fwd,
    pub(super) tags: Vec<String>,
}

/// Stores the `206` the origin answered a forwarded range with, combined with the parts
/// already held when both carry the same strong `ETag` (§3.4), and answers the client with it.
///
/// Stored when it is a single part (`Content-Range: bytes first-last/complete`) whose body has
/// the range's length, no longer than `max_body_size`, and the response is storable as any
/// other is. Parts that add up to the whole representation are stored as its `200`.
pub(super) async fn store_part<St, B>(
    ctx: &Ctx<St>,
    mut rparts: response::Parts,
    rbody: B,
    part: Part<'_>,
) -> Response<CacheBody<B>>
where
    St: CacheStore,
    B: Body,
    B::Data: Buf,
{
    let config = &ctx.shared.config;
    let range = rparts
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| range::parse_content_range(v.as_bytes()));
    let placed = match range {
        // A multipart/byteranges answer, or one this cache cannot place.
        None => Err("multipart"),
        Some((range, _)) if rbody.size_hint().exact() != Some(range.len()) => Err("length"),
        Some((range, _)) if range.len() > config.max_body_size => Err("too-large"),
        Some(placed) => policy::decide(
            part.request,
            &mut rparts,
            ctx.per_user,
            ctx.now,
            config,
            true,
        )
        .map(|freshness| (freshness, placed)),
    };
    let (freshness, (range, complete)) = match placed {
        Ok(placed) => placed,
        Err(reason) => {
            tracing::debug!(key = %ctx.base, reason, "partial response not stored");
            Outcome::Forwarded {
                fwd: part.fwd,
                not_modified: false,
                stored: Stored::No(reason),
            }
            .apply(
                &mut rparts.headers,
                &ctx.shared.counters,
                &ctx.shared.config.cache_name,
            );
            return answer_uncached(ctx, rparts, rbody);
        }
    };
    let Some(bytes) = Collected::read(rbody, range.len()).await else {
        // The body failed half-way: nothing to keep, and nothing whole to send.
        return Response::from_parts(rparts, CacheBody::empty());
    };
    let variant = variant_key(ctx, &rparts.headers);
    let held = parts_key(&variant);
    // One part of a representation is combined and stored at a time: a part that arrives
    // while another is being stored goes to its client unstored, rather than wait for it or
    // race it (each combination reads and writes every byte held).
    let Some(_storing) = ctx.shared.refreshes.try_lead(&format!("parts {held}")) else {
        tracing::debug!(key = %held, "another part is being stored; this one is not");
        Outcome::Forwarded {
            fwd: part.fwd,
            not_modified: false,
            stored: Stored::Unclaimed,
        }
        .apply(
            &mut rparts.headers,
            &ctx.shared.counters,
            &ctx.shared.config.cache_name,
        );
        return match client_precondition(ctx, &rparts) {
            Precondition::Proceed => Response::from_parts(rparts, CacheBody::full(bytes)),
            other => short_answer(rparts, other, &ctx.shared.counters.answers),
        };
    };
    let mut pieces = Pieces::new(range, complete, bytes.clone()).expect("length checked above");
    if let Some(stored) = get(ctx, &held).await
        && same_strong_etag(stored.headers(), &rparts.headers)
        && let Some(before) = Pieces::from_stored(stored.headers(), stored.body())
        && let Some(combined) = before.combine(pieces.clone())
        && combined.held() <= config.max_body_size
    {
        pieces = combined;
    }

    let has_validators = rparts.headers.contains_key(header::ETAG)
        || rparts.headers.contains_key(header::LAST_MODIFIED);
    let ttl = freshness.store_ttl(has_validators, config.keep_stale_for);
    let mut kept = response::Parts::clone(&rparts);
    kept.headers.remove(header::CONTENT_RANGE);
    kept.headers.remove(header::CONTENT_LENGTH);
    let whole = pieces.whole();
    // Parts are stored outside the flight of the whole, under no store lock.
    let claim = Claim {
        ticket: part.ticket,
        holder: None,
    };
    let stored = if let Some(whole) = whole.clone() {
        kept.status = StatusCode::OK;
        let entry = entry_of(&kept, whole, &freshness, part.tags, ctx.now);
        let stored = store_entry(ctx, claim, &variant, &kept.headers, entry, ttl).await;
        if stored {
            let _ = ctx.shared.store.delete(&held).await;
        }
        stored
    } else {
        let (spans, body) = pieces.to_stored();
        kept.headers.insert(PARTS_HEADER, spans);
        let entry = entry_of(&kept, body, &freshness, part.tags, ctx.now);
        store_entry(ctx, claim, &held, &kept.headers, entry, ttl).await
    };
    Outcome::Forwarded {
        fwd: part.fwd,
        not_modified: false,
        stored: Stored::kept(stored),
    }
    .apply(
        &mut rparts.headers,
        &ctx.shared.counters,
        &ctx.shared.config.cache_name,
    );
    // The client's conditionals come before its range (RFC 9110 §13.2.2).
    match client_precondition(ctx, &rparts) {
        Precondition::Proceed => Response::from_parts(rparts, CacheBody::full(bytes)),
        other => short_answer(rparts, other, &ctx.shared.counters.answers),
    }
}
