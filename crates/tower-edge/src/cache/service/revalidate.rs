//! RFC 9111 §4.3.4: a stale entry the inner service confirmed with `304 Not Modified`, freshened
//! with the 304's fields and stored again.

use super::*;

/// A revalidation answered `304`.
pub(super) struct Revalidation<'a> {
    /// The stored response that was revalidated.
    pub(super) stale: Arc<Entry>,
    /// The 304's head.
    pub(super) not_modified: response::Parts,
    /// The forwarded request's fields.
    pub(super) request: &'a HeaderMap,
    pub(super) ticket: Option<Ticket>,
    pub(super) guard: Option<Lead>,
    pub(super) fwd: Fwd,
}

/// The stored response with the 304's fields, stored again when it still may be, as the
/// client's answer.
pub(super) async fn revalidated<St, B>(
    ctx: &Ctx<St>,
    revalidation: Revalidation<'_>,
) -> Response<CacheBody<B>>
where
    St: CacheStore + Clone,
{
    let Revalidation {
        stale,
        not_modified: mut rparts,
        request: policy_request,
        ticket,
        guard,
        fwd,
    } = revalidation;
    let shared = &ctx.shared;
    let config = &shared.config;
    // RFC 9111 §4.3.4: the stored response, with the 304's fields, is fresh again.
    let mut headers = stale.headers().clone();
    // RFC 9110 §6.6.1: a 304 without Date (an in-process handler's) is dated on receipt, so
    // the refreshed response's age counts from now, not from the first store.
    if !rparts.headers.contains_key(header::DATE) {
        rparts
            .headers
            .insert(header::DATE, crate::http::date::http_date_value(ctx.now));
    }
    policy::merge_not_modified(&mut headers, &rparts.headers);
    let mut refreshed = response::Parts::clone(&rparts);
    refreshed.status = stale.status();
    refreshed.headers = headers;
    let tags = stale.tags().to_vec();
    match policy::decide(
        policy_request,
        &mut refreshed,
        ctx.per_user,
        ctx.now,
        config,
        true,
    ) {
        Ok(freshness) => {
            bump(&shared.counters.revalidated);
            tracing::debug!(key = %ctx.base, "revalidated with 304");
            let key = variant_key(ctx, &refreshed.headers);
            let entry = entry_of(&refreshed, stale.body().clone(), &freshness, tags, ctx.now);
            let ttl = freshness.store_ttl(true, config.keep_stale_for);
            let entry = Arc::new(entry);
            let claim = Claim {
                ticket,
                holder: guard.as_ref().and_then(Lead::holder),
            };
            let stored = store_entry(
                ctx,
                claim,
                &key,
                &refreshed.headers,
                Entry::clone(&entry),
                ttl,
            )
            .await;
            finish(guard, Finish::of(stored));
            let found = Found {
                entry,
                key: Some(key),
            };
            let outcome = Outcome::Forwarded {
                fwd,
                not_modified: true,
                stored: Stored::kept(stored),
            };
            serve(&found, ctx, outcome)
        }
        Err(reason) => {
            // No longer storable: still the right answer for this request.
            let found = Found {
                entry: Arc::new(entry_of(
                    &refreshed,
                    stale.body().clone(),
                    &FRESH_NOW,
                    tags,
                    ctx.now,
                )),
                key: None,
            };
            let _ = shared.store.delete(found.key(ctx)).await;
            finish(guard, Finish::NotStored);
            let outcome = Outcome::Forwarded {
                fwd,
                not_modified: true,
                stored: Stored::No(reason),
            };
            serve(&found, ctx, outcome)
        }
    }
}
