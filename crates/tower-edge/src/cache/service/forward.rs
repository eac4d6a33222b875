//! Forwarding a request the cache cannot answer, one step at a time:
//!
//! ```text
//! Forwarding::new ──▶ call ──┬─▶ Reply::Failed        the error: nothing stale may stand in
//!                            ├─▶ Reply::StaleIfError  the stale entry (RFC 5861 §4)
//!                            └─▶ Reply::Answered ──┬─▶ 304 to a revalidation   revalidate.rs
//!                                                  ├─▶ 206 to a range          partial.rs
//!                                                  └─▶ any other answer        keep, below
//! ```
//!
//! An answer that may be kept is stored before the client gets it when its body is small,
//! empty or not sent (a 304 or 412 to the client), and otherwise streams to the client while a
//! copy is stored at its end.

use super::*;

/// A request on its way to the inner service, and what its answer will need.
struct Forwarding<'a, St> {
    ctx: &'a Ctx<St>,
    /// The stored response being revalidated, if any.
    stale: Option<Arc<Entry>>,
    /// The flight this request leads, if any: told how it ended.
    guard: Option<Lead>,
    fwd: Fwd,
    /// A range on a miss goes to the inner service as it is.
    keep_range: bool,
    /// The forwarded request's fields, which storing the answer depends on (`Authorization`,
    /// `Cookie`, `no-store`).
    sent: HeaderMap,
    /// For the store's fence: the answer is not stored if what it addresses is invalidated from
    /// now on (the origin may have read the data from before that write).
    ticket: Option<Ticket>,
}

/// What the call to the inner service came to.
enum Reply<B, E> {
    /// An answer to keep or pass on.
    Answered(Response<B>),
    /// Failed (with this status, or without an answer) while a stale entry may stand in.
    StaleIfError(Option<StatusCode>),
    /// Failed, and nothing may stand in.
    Failed(E),
}

/// Sends the request to the inner service (without the client's conditionals and range, with
/// the stale entry's validators if there is one), stores what may be stored, and answers the
/// client's conditionals.
pub(super) async fn forward<S, St, ReqB, ResB>(
    ctx: &Ctx<St>,
    inner: &mut S,
    parts: request::Parts,
    body: ReqB,
    stale: Option<Arc<Entry>>,
    guard: Option<Lead>,
    fwd: Fwd,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: CacheStore + Clone,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
{
    let (forwarding, request) = Forwarding::new(ctx, parts, stale, guard, fwd);
    match forwarding.call(inner, request, body).await {
        (forwarding, Reply::Answered(res)) => Ok(forwarding.answered(res).await),
        (forwarding, Reply::StaleIfError(status)) => Ok(forwarding.stale_if_error(status)),
        (forwarding, Reply::Failed(error)) => {
            // Those waiting try for themselves; a failure is not shared.
            finish(forwarding.guard, Finish::NotStored);
            Err(error)
        }
    }
}

impl<'a, St: CacheStore + Clone> Forwarding<'a, St> {
    /// The request the inner service gets, and what answering it will need.
    fn new(
        ctx: &'a Ctx<St>,
        mut parts: request::Parts,
        stale: Option<Arc<Entry>>,
        guard: Option<Lead>,
        fwd: Fwd,
    ) -> (Self, request::Parts) {
        let shared = &ctx.shared;
        parts.headers = ctx.client.clone();
        // A range asked for on a miss goes to the origin as it is, rather than fetching (and
        // the client waiting for) the whole representation; its 206 is stored as a part (see
        // `partial`). Revalidations fetch the whole, to refresh the stored body.
        let keep_range = stale.is_none() && ctx.method == Method::GET && ctx.asks.range;
        for name in &CLIENT_ONLY {
            if keep_range && (*name == header::RANGE || *name == header::IF_RANGE) {
                continue;
            }
            parts.headers.remove(name);
        }
        // The origin the request was keyed under, read again from what it named: only a
        // request that goes on to the inner service needs it as a string of its own.
        let origin = (shared.config.key_origin)
            .of(&parts)
            .unwrap_or_else(|| super::key::UNKEYABLE_ORIGIN.to_owned());
        parts.extensions.insert(CacheHandle::new(shared, origin));
        if let Some(stale) = &stale {
            if let Some(etag) = stale.headers().get(header::ETAG) {
                parts.headers.insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = stale.headers().get(header::LAST_MODIFIED) {
                parts.headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
            }
        }
        let forwarding = Self {
            ctx,
            stale,
            guard,
            fwd,
            keep_range,
            sent: parts.headers.clone(),
            ticket: shared.store.fence().map(Fence::ticket),
        };
        (forwarding, parts)
    }

    /// The stale entry that may answer should the inner service fail (RFC 5861 §4).
    fn stale_for_error(&self) -> Option<&Arc<Entry>> {
        let now = self.ctx.now;
        self.stale.as_ref().filter(|s| {
            !policy::forbids_stale(s.headers())
                && s.age(now).saturating_sub(s.fresh_for()) < s.stale_if_error()
        })
    }

    async fn call<S, ReqB, ResB>(
        self,
        inner: &mut S,
        parts: request::Parts,
        body: ReqB,
    ) -> (Self, Reply<ResB, S::Error>)
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
    {
        let result =
            crate::observe::scope::origin(inner.call(Request::from_parts(parts, body))).await;
        let may_stand_in = self.stale_for_error().is_some();
        let reply = match result {
            Ok(res) if res.status().is_server_error() && may_stand_in => {
                Reply::StaleIfError(Some(res.status()))
            }
            Ok(res) => Reply::Answered(res),
            Err(_) if may_stand_in => Reply::StaleIfError(None),
            Err(error) => Reply::Failed(error),
        };
        (self, reply)
    }

    /// The stale entry in place of the inner service's failure.
    fn stale_if_error<B>(self, status: Option<StatusCode>) -> Response<CacheBody<B>> {
        let ctx = self.ctx;
        let stale = Arc::clone(self.stale_for_error().expect("checked by `call`"));
        finish(self.guard, Finish::NotStored);
        bump(&ctx.shared.counters.stale);
        tracing::debug!(key = %ctx.base, "serving stale on error");
        let found = Found {
            entry: stale,
            key: None,
        };
        let stale_by = found.stale_by(ctx.now);
        serve(&found, ctx, Outcome::StaleIfError { stale_by, status })
    }

    /// What becomes of the inner service's answer.
    async fn answered<B>(self, res: Response<B>) -> Response<CacheBody<B>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        let (mut rparts, rbody) = res.into_parts();
        if rparts.status == StatusCode::NOT_MODIFIED
            && let Some(stale) = self.stale
        {
            let revalidation = Revalidation {
                stale,
                not_modified: rparts,
                request: &self.sent,
                ticket: self.ticket,
                guard: self.guard,
                fwd: self.fwd,
            };
            return revalidated(self.ctx, revalidation).await;
        }
        let tags = take_tags(&mut rparts);
        if self.keep_range && rparts.status == StatusCode::PARTIAL_CONTENT {
            // A range leads no flight (see `handle`); were it to, nobody waits for a part.
            finish(self.guard, Finish::NotStored);
            let part = Part {
                request: &self.sent,
                ticket: self.ticket,
                fwd: self.fwd,
                tags,
            };
            return store_part(self.ctx, rparts, rbody, part).await;
        }
        self.keep(rparts, rbody, tags).await
    }

    /// Stores the answer when it may be, and answers the client's conditionals.
    async fn keep<B>(
        self,
        mut rparts: response::Parts,
        rbody: B,
        tags: Vec<String>,
    ) -> Response<CacheBody<B>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        let Self {
            ctx,
            guard,
            fwd,
            sent,
            ticket,
            ..
        } = self;
        let shared = &ctx.shared;
        let config = &shared.config;
        let decision = if ctx.method == Method::HEAD {
            Err("head")
        } else if ctx.no_store {
            Err("no-store")
        } else if rparts.status == StatusCode::PARTIAL_CONTENT || rparts.status.is_informational() {
            // The forwarded request had no Range (a revalidation): its 206 is not for this
            // cache.
            Err("status")
        } else {
            let known_length = rbody.size_hint().exact().is_some();
            let decided = policy::decide(
                &sent,
                &mut rparts,
                ctx.per_user,
                ctx.now,
                config,
                known_length,
            );
            if rbody.size_hint().lower() > config.max_body_size {
                decided.and(Err("too-large"))
            } else {
                decided
            }
        };
        let freshness = match decision {
            Ok(freshness) => freshness,
            Err(reason) => {
                finish(guard, Finish::NotStored);
                tracing::debug!(key = %ctx.base, reason, "response not stored");
                Outcome::Forwarded {
                    fwd,
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

        let has_validators = rparts.headers.contains_key(header::ETAG)
            || rparts.headers.contains_key(header::LAST_MODIFIED);
        let ttl = freshness.store_ttl(has_validators, config.keep_stale_for);
        let key = variant_key(ctx, &rparts.headers);
        let template = entry_of(&rparts, Bytes::new(), &freshness, tags, ctx.now);
        let client_answer = client_precondition(ctx, &rparts);

        // Read the body here, bounded, and store it before answering when the client gets no
        // body (304 or 412), when there is none (an empty body may never be polled to its end,
        // which is where a streamed body is stored), or when its length is known and small.
        // Then RFC 9211 `stored` is said only of what the store kept. Larger bodies and bodies
        // of unknown length stream to the client as they arrive, and their `Cache-Status` makes
        // no claim.
        let small = rbody
            .size_hint()
            .exact()
            .is_some_and(|len| len <= STORE_BEFORE_ANSWER.min(config.max_body_size));
        if client_answer != Precondition::Proceed || rbody.is_end_stream() || small {
            let (stored, bytes) = match Collected::read(rbody, config.max_body_size).await {
                Some(bytes) => {
                    let entry = with_body(template, bytes.clone());
                    let claim = Claim {
                        ticket,
                        holder: guard.as_ref().and_then(Lead::holder),
                    };
                    let stored = store_entry(ctx, claim, &key, &rparts.headers, entry, ttl).await;
                    (stored, Some(bytes))
                }
                // Too long (or broken) to store.
                None => (false, None),
            };
            finish(guard, Finish::of(stored));
            Outcome::Forwarded {
                fwd,
                not_modified: false,
                stored: Stored::kept(stored),
            }
            .apply(
                &mut rparts.headers,
                &ctx.shared.counters,
                &ctx.shared.config.cache_name,
            );
            return match (client_answer, bytes) {
                (Precondition::Proceed, Some(bytes)) => {
                    Response::from_parts(rparts, CacheBody::full(bytes))
                }
                (Precondition::Proceed, None) => Response::from_parts(rparts, CacheBody::empty()),
                (other, _) => short_answer(rparts, other, &ctx.shared.counters.answers),
            };
        }

        // RFC 9211 `stored` is not claimed: the headers leave before the copy is complete, and
        // the body may fail, turn out too long, or be fenced by an invalidation.
        Outcome::Forwarded {
            fwd,
            not_modified: false,
            stored: Stored::Unclaimed,
        }
        .apply(
            &mut rparts.headers,
            &ctx.shared.counters,
            &ctx.shared.config.cache_name,
        );

        // A stream of unknown length (a page sent in pieces, a feed) may run for long: those
        // waiting on this fetch, here and in other instances, go to the origin themselves
        // rather than wait for its end. Its copy is still stored at the end (fenced against
        // invalidations), unless one that started later was stored meanwhile.
        let mut guard = guard;
        let streaming = rbody.size_hint().exact().is_none();
        if streaming && let Some(lead) = guard.as_mut() {
            lead.let_waiters_go();
        }

        // The common case: stream the body to the client and store a copy at its end.
        let store = shared.store.clone();
        let counters = Arc::clone(&shared.counters);
        let marker = marker_for(ctx, &rparts.headers, ttl);
        let holder = guard.as_ref().and_then(Lead::holder).cloned();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            finish(guard, Finish::NotStored);
            return Response::from_parts(rparts, CacheBody::stream(rbody));
        };
        // Dropped unused when the client goes away or the body fails half-way: then the flight
        // passes to one of those waiting.
        let on_complete = Box::new(move |whole: Option<Bytes>| {
            let Some(bytes) = whole else {
                finish(guard, Finish::NotStored);
                return;
            };
            runtime.spawn(async move {
                let entry = with_body(template, bytes);
                if streaming && newer_stored(&store, &key, entry.stored_at()).await {
                    finish(guard, Finish::NotStored);
                    return;
                }
                let claim = Claim {
                    ticket,
                    holder: holder.as_ref(),
                };
                let stored = fill(&store, &counters, claim, &key, marker, entry, ttl).await;
                finish(guard, Finish::of(stored));
            });
        });
        Response::from_parts(
            rparts,
            CacheBody::tee(rbody, config.max_body_size, on_complete),
        )
    }
}

/// Whether `key` holds an entry received after `than`: a stream that ran long (and so holds no
/// lock) must not put its older copy over it.
async fn newer_stored<St: CacheStore>(store: &St, key: &CacheKey, than: SystemTime) -> bool {
    matches!(store.get(key).await, Ok(Some(entry)) if entry.stored_at() > than)
}
