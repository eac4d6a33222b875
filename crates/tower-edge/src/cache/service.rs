use std::{
    future::poll_fn,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::{Buf, Bytes, BytesMut};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
    request, response,
};
use http_body::Body;
use tower::Service;
use tower_edge_store::{
    CacheKey, CacheStore, Entry,
    fence::{self, Fence, Filled, Ticket},
    single_flight::{Finish, Joined, Lead, Locked, lock_or_wait},
};

use super::{
    CacheHandle, CacheTags, ResponseFuture, Shared,
    body::CacheBody,
    key,
    outcome::{Fwd, Outcome, Stored},
    policy,
    stats::{self, bump},
};
use crate::http::{
    cache_control::CacheControl,
    preconditions::{
        Precondition, Validators, evaluate, has_preconditions, retain_not_modified_headers,
    },
    range::{self, RangeLimits, Resolution},
};
use crate::range::{partial_parts, serves_ranges, unsatisfiable_parts};

/// The service made by [`ResponseCacheLayer`](super::ResponseCacheLayer).
pub struct ResponseCache<S, St> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared<St>>,
}

impl<S: Clone, St> Clone for ResponseCache<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, St> std::fmt::Debug for ResponseCache<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, St> ResponseCache<S, St> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, St, ReqB, ResB> Service<Request<ReqB>> for ResponseCache<S, St>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    St: CacheStore + Clone,
    ReqB: Default + Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Send,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(Box::pin(handle(inner, Arc::clone(&self.shared), req)))
    }
}

/// The header a marker entry lists a resource's `Vary` names in. A marker is stored under the
/// key without `Vary` parts; the response itself under the key with them.
const VARY_MARKER: &str = "tower-edge-vary";

/// The headers that make a request conditional or partial: the cache answers them itself and
/// forwards requests without them.
const CLIENT_ONLY: [HeaderName; 6] = [
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// What one request needs to know while it goes through the cache.
struct Ctx<St> {
    shared: Arc<Shared<St>>,
    now: SystemTime,
    method: Method,
    /// The client's headers as received (for conditionals and `Vary` values).
    client: HeaderMap,
    base: CacheKey,
    origin: String,
    per_user: bool,
    no_store: bool,
}

async fn handle<S, St, ReqB, ResB>(
    mut inner: S,
    shared: Arc<Shared<St>>,
    req: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    St: CacheStore + Clone,
    ReqB: Default + Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Send,
{
    let config = &shared.config;
    let now = config.clock.now();
    let (mut parts, body) = req.into_parts();
    // A request whose host cannot be keyed without ambiguity neither reads, stores nor
    // invalidates; its handle addresses a reserved name no valid request shares a key with.
    let keyed_origin = key::origin(&parts);
    let origin = keyed_origin
        .clone()
        .unwrap_or_else(|| key::UNKEYABLE_ORIGIN.to_owned());

    if parts.method != Method::GET && parts.method != Method::HEAD {
        let handle = CacheHandle::new(&shared, origin.clone());
        parts.extensions.insert(handle.clone());
        bump(&shared.counters.bypassed);
        let is_unsafe = !matches!(parts.method, Method::OPTIONS | Method::TRACE);
        let uri = parts.uri.clone();
        let res = inner.call(Request::from_parts(parts, body)).await?;
        let status = res.status();
        if is_unsafe
            && keyed_origin.is_some()
            && config.invalidate_on_unsafe
            && (status.is_success() || status.is_redirection())
        {
            invalidate_after_unsafe(&handle, &origin, &uri, res.headers(), &shared).await;
        }
        return Ok(res.map(CacheBody::stream));
    }

    let user = config.per_user.as_ref().and_then(|f| f(&parts));
    let bypass = keyed_origin.is_none() || config.bypass.as_ref().is_some_and(|f| f(&parts));
    // A request with credentials is never answered from entries shared between users: the
    // origin may answer it for that user alone. Its answer is stored only when RFC 9111 §3.5
    // allows (`public`, `s-maxage`, `must-revalidate`), which `policy::decide` checks.
    let authorized = parts.headers.contains_key(header::AUTHORIZATION) && user.is_none();
    if bypass {
        bump(&shared.counters.bypassed);
        parts
            .extensions
            .insert(CacheHandle::new(&shared, origin.clone()));
        let mut res = inner.call(Request::from_parts(parts, body)).await?;
        Outcome::Bypass.apply(res.headers_mut());
        return Ok(res.map(CacheBody::stream));
    }

    let request_cc = CacheControl::parse(parts.headers.get_all(header::CACHE_CONTROL));
    // RFC 9111 §5.2.1.4 and §5.4: the client wants a validated answer, not a stored one.
    let no_cache = request_cc.has("no-cache")
        || (request_cc.is_empty()
            && parts
                .headers
                .get_all(header::PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache")));
    let resource = key::resource(&origin, &parts.uri, &config.query);
    let encoding = config
        .encoding
        .as_ref()
        .map_or("any", |negotiate| negotiate(&parts.headers));
    let mut base = key::base_key(resource, encoding, user.as_deref());
    if let Some(part) = config.key_fn.as_ref().and_then(|f| f(&parts)) {
        base = base.with_variant("key", part);
    }
    let span = tracing::Span::current();
    if !span.is_disabled() {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        // A hash, not the key: keys can carry user ids and header values.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(base.to_string());
        span.record("edge.cache_key", format!("{hash:016x}"));
    }
    // The client's headers move into the context: a hit needs no copy of them. A forwarded
    // request gets a copy back (see `forward`).
    let ctx = Ctx {
        shared: Arc::clone(&shared),
        now,
        method: parts.method.clone(),
        client: std::mem::take(&mut parts.headers),
        base,
        origin,
        per_user: user.is_some(),
        no_store: request_cc.has("no-store"),
    };

    if authorized {
        bump(&shared.counters.misses);
        return Box::pin(forward(
            &ctx,
            &mut inner,
            parts,
            body,
            None,
            None,
            Fwd::Request,
        ))
        .await;
    }
    let mut flight_key = ctx.base.clone();
    if !no_cache {
        match probe(&ctx).await {
            Ok(found) => return answer_from(found, &ctx, inner, parts, body).await,
            Err(key) => flight_key = key,
        }
        if request_cc.has("only-if-cached") {
            // RFC 9111 §5.2.1.7.
            let mut res = Response::new(CacheBody::empty());
            *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
            Outcome::OnlyIfCached.apply(res.headers_mut());
            return Ok(res);
        }
    }
    bump(&shared.counters.misses);
    let fwd = if no_cache { Fwd::Request } else { Fwd::Miss };
    let mut lead = match Box::pin(take_flight(&ctx, flight_key.clone())).await {
        Taken::Lead(lead) => lead,
        Taken::Collapsed(found) => {
            return Ok(serve(&found, &ctx, Outcome::Collapsed { fwd: Fwd::Miss }));
        }
        Taken::Stale(found) => return answer_from(found, &ctx, inner, parts, body).await,
        Taken::Alone => {
            return Box::pin(forward(&ctx, &mut inner, parts, body, None, None, fwd)).await;
        }
    };
    // A flight may have ended between the lookup and the join.
    if !no_cache && let Some(found) = lookup(&ctx).await {
        lead.finish(Finish::Stored);
        return answer_from(found, &ctx, inner, parts, body).await;
    }
    // Other instances sharing the store: one of us fetches, the others wait for its entry.
    // A reload (`no-cache`) goes to the origin whatever they do.
    if !no_cache {
        let clock = &shared.config.clock;
        let fresh = || async { lookup(&ctx).await.filter(|found| found.fresh(clock.now())) };
        match lock_or_wait(&shared.store, &flight_key, config.coalesce_timeout, fresh).await {
            Locked::Found(found) => {
                lead.finish(Finish::Stored);
                bump(&shared.counters.coalesced);
                return Ok(serve(&found, &ctx, Outcome::Collapsed { fwd: Fwd::Miss }));
            }
            Locked::Held(token) => {
                let store = shared.store.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    lead.on_release(Box::new(move || {
                        runtime.spawn(async move {
                            let _ = store.unlock(&flight_key, &token).await;
                        });
                    }));
                }
            }
            Locked::Without => {}
        }
    }
    Box::pin(forward(
        &ctx,
        &mut inner,
        parts,
        body,
        None,
        Some(lead),
        fwd,
    ))
    .await
}

/// What joining a miss's flight gave.
enum Taken {
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
async fn take_flight<St: CacheStore>(ctx: &Ctx<St>, mut key: CacheKey) -> Taken {
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
struct Found {
    entry: Arc<Entry>,
    key: CacheKey,
}

impl Found {
    fn age(&self, now: SystemTime) -> Duration {
        self.entry.age(now)
    }

    fn fresh(&self, now: SystemTime) -> bool {
        self.age(now) < self.entry.fresh_for()
    }

    fn stale_by(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.entry.fresh_for())
    }
}

/// Looks the request up: the base key, then, if that holds a `Vary` marker, the variant.
/// A store failure is a miss.
async fn lookup<St: CacheStore>(ctx: &Ctx<St>) -> Option<Found> {
    probe(ctx).await.ok()
}

/// [`lookup`], with what a miss knows: the key the request's own entry would have, which is
/// the variant key once the base holds a `Vary` marker. Concurrent misses coalesce on that key,
/// so requests for different variants of one resource do not wait for each other.
async fn probe<St: CacheStore>(ctx: &Ctx<St>) -> Result<Found, CacheKey> {
    let Some(entry) = get(ctx, &ctx.base).await else {
        return Err(ctx.base.clone());
    };
    let Some(names) = entry.headers().get(VARY_MARKER) else {
        return Ok(Found {
            entry,
            key: ctx.base.clone(),
        });
    };
    let names: Option<Vec<HeaderName>> = names.to_str().ok().and_then(|names| {
        names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect()
    });
    let Some(names) = names else {
        return Err(ctx.base.clone());
    };
    let key = key::vary_key(ctx.base.clone(), &names, &ctx.client);
    let Some(entry) = get(ctx, &key).await else {
        return Err(key);
    };
    // A marker under a variant key would be a corrupt store; never serve it.
    if entry.headers().contains_key(VARY_MARKER) {
        return Err(key);
    }
    Ok(Found { entry, key })
}

async fn get<St: CacheStore>(ctx: &Ctx<St>, key: &CacheKey) -> Option<Arc<Entry>> {
    match ctx.shared.store.get(key).await {
        Ok(entry) => entry,
        Err(error) => {
            bump(&ctx.shared.counters.store_errors);
            tracing::warn!(%error, %key, "cache store get failed; treating as a miss");
            None
        }
    }
}

/// Answers a request that found an entry: fresh, stale-while-revalidate, or a revalidation.
async fn answer_from<S, St, ReqB, ResB>(
    found: Found,
    ctx: &Ctx<St>,
    mut inner: S,
    parts: request::Parts,
    body: ReqB,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    St: CacheStore + Clone,
    ReqB: Default + Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Send,
{
    let shared = &ctx.shared;
    if found.fresh(ctx.now) {
        bump(&shared.counters.hits);
        tracing::trace!(key = %found.key, "cache hit");
        let ttl = found.entry.fresh_for().saturating_sub(found.age(ctx.now));
        return Ok(serve(&found, ctx, Outcome::Hit { ttl }));
    }
    let stale_by = found.stale_by(ctx.now);
    let may_serve_stale = !policy::forbids_stale(found.entry.headers());
    if may_serve_stale && stale_by < found.entry.stale_while_revalidate() {
        bump(&shared.counters.stale);
        tracing::debug!(key = %found.key, stale_by = ?stale_by, "serving stale while revalidating");
        // One background refresh per key; everyone else is served the stale entry meanwhile.
        if let Some(guard) = shared.refreshes.try_lead(&found.key.to_string())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let refresh_ctx = Ctx {
                shared: Arc::clone(shared),
                now: ctx.now,
                method: Method::GET,
                client: ctx.client.clone(),
                base: ctx.base.clone(),
                origin: ctx.origin.clone(),
                per_user: ctx.per_user,
                no_store: false,
            };
            let mut refresh_parts = parts.clone();
            refresh_parts.method = Method::GET;
            let stale = Arc::clone(&found.entry);
            let mut service = inner.clone();
            runtime.spawn(async move {
                let _guard = guard;
                if poll_fn(|cx| service.poll_ready(cx)).await.is_err() {
                    return;
                }
                let res = forward(
                    &refresh_ctx,
                    &mut service,
                    refresh_parts,
                    ReqB::default(),
                    Some(stale),
                    None,
                    Fwd::Stale,
                )
                .await;
                if let Ok(res) = res {
                    drain(res.into_body()).await;
                }
            });
        }
        return Ok(serve(
            &found,
            ctx,
            Outcome::StaleWhileRevalidate { stale_by },
        ));
    }
    // Stale: revalidate (with validators) or fetch again, one request per key.
    let joined = shared
        .flights
        .join(&ctx.base.to_string(), shared.config.coalesce_timeout)
        .await;
    let guard = match joined {
        Joined::Lead(guard) => Some(guard),
        Joined::Done(Finish::Stored) => {
            if let Some(again) = lookup(ctx).await
                && again.fresh(ctx.now)
            {
                bump(&shared.counters.coalesced);
                return Ok(serve(&again, ctx, Outcome::Collapsed { fwd: Fwd::Stale }));
            }
            None
        }
        Joined::Done(Finish::NotStored) => None,
    };
    // Boxed, like every miss path: the hit path's future stays small to move and poll.
    Box::pin(forward(
        ctx,
        &mut inner,
        parts,
        body,
        Some(found.entry),
        guard,
        Fwd::Stale,
    ))
    .await
}

/// Sends the request to the inner service (without the client's conditionals and range, with
/// the stale entry's validators if there is one), stores what may be stored, and answers the
/// client's conditionals.
async fn forward<S, St, ReqB, ResB>(
    ctx: &Ctx<St>,
    inner: &mut S,
    mut parts: request::Parts,
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
    let shared = &ctx.shared;
    let config = &shared.config;
    parts.headers = ctx.client.clone();
    // A range asked for on a miss goes to the origin as it is: its 206 is passed on and not
    // stored, rather than fetching (and the client waiting for) the whole representation.
    // Revalidations fetch the whole, to refresh the stored body.
    let keep_range =
        stale.is_none() && ctx.method == Method::GET && ctx.client.contains_key(header::RANGE);
    for name in &CLIENT_ONLY {
        if keep_range && (*name == header::RANGE || *name == header::IF_RANGE) {
            continue;
        }
        parts.headers.remove(name);
    }
    parts
        .extensions
        .insert(CacheHandle::new(shared, ctx.origin.clone()));
    if let Some(stale) = &stale {
        if let Some(etag) = stale.headers().get(header::ETAG) {
            parts.headers.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = stale.headers().get(header::LAST_MODIFIED) {
            parts.headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
        }
    }
    // What storing the answer depends on in the request (Authorization, Cookie, no-store).
    let policy_request = parts.headers.clone();
    let stale_for_error = stale.as_ref().filter(|s| {
        !policy::forbids_stale(s.headers())
            && s.age(ctx.now).saturating_sub(s.fresh_for()) < s.stale_if_error()
    });

    // For the store's fence: what the origin answers is not stored if what it addresses is
    // invalidated from now on (it may have read the data from before that write).
    let ticket = shared.store.fence().map(Fence::ticket);
    let result = inner.call(Request::from_parts(parts, body)).await;
    let res = match result {
        Ok(res) if res.status().is_server_error() && stale_for_error.is_some() => {
            Err(StaleIfError::Status(res.status()))
        }
        Ok(res) => Ok(res),
        Err(error) => match stale_for_error {
            Some(_) => Err(StaleIfError::Error),
            None => {
                // Those waiting try for themselves; a failure is not shared.
                finish(guard, Finish::NotStored);
                return Err(error);
            }
        },
    };
    let res = match res {
        Ok(res) => res,
        Err(why) => {
            finish(guard, Finish::NotStored);
            let stale = stale_for_error.expect("checked above");
            bump(&shared.counters.stale);
            tracing::debug!(key = %ctx.base, "serving stale on error");
            let found = Found {
                entry: Arc::clone(stale),
                key: ctx.base.clone(),
            };
            let outcome = Outcome::StaleIfError {
                stale_by: found.stale_by(ctx.now),
                status: match why {
                    StaleIfError::Status(status) => Some(status),
                    StaleIfError::Error => None,
                },
            };
            return Ok(serve(&found, ctx, outcome));
        }
    };
    let (mut rparts, rbody) = res.into_parts();

    if rparts.status == StatusCode::NOT_MODIFIED
        && let Some(stale) = stale
    {
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
            &policy_request,
            &mut refreshed,
            ctx.per_user,
            ctx.now,
            config,
        ) {
            Ok(freshness) => {
                bump(&shared.counters.revalidated);
                tracing::debug!(key = %ctx.base, "revalidated with 304");
                let key = variant_key(ctx, &refreshed.headers);
                let entry = entry_of(&refreshed, stale.body().clone(), &freshness, tags, ctx.now);
                let ttl = freshness.store_ttl(true, config.keep_stale_for);
                let entry = Arc::new(entry);
                let stored = store_entry(
                    ctx,
                    ticket,
                    &key,
                    &refreshed.headers,
                    Entry::clone(&entry),
                    ttl,
                )
                .await;
                finish(guard, Finish::Stored);
                let found = Found { entry, key };
                let outcome = Outcome::Forwarded {
                    fwd,
                    not_modified: true,
                    stored: if stored {
                        Stored::Yes
                    } else {
                        Stored::Unclaimed
                    },
                };
                return Ok(serve(&found, ctx, outcome));
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
                    key: ctx.base.clone(),
                };
                let _ = shared.store.delete(&found.key).await;
                finish(guard, Finish::NotStored);
                let outcome = Outcome::Forwarded {
                    fwd,
                    not_modified: true,
                    stored: Stored::No(reason),
                };
                return Ok(serve(&found, ctx, outcome));
            }
        }
    }

    let tags = take_tags(&mut rparts);
    let decision = if ctx.method == Method::HEAD {
        Err("head")
    } else if ctx.no_store {
        Err("no-store")
    } else if rparts.status == StatusCode::PARTIAL_CONTENT || rparts.status.is_informational() {
        // The forwarded request had no Range: a 206 is not a whole representation to keep.
        Err("status")
    } else {
        policy::decide(&policy_request, &mut rparts, ctx.per_user, ctx.now, config)
    };
    let too_large = rbody.size_hint().lower().gt(&config.max_body_size);
    let freshness = match decision {
        Ok(_) if too_large => Err("too-large"),
        other => other,
    };
    let freshness = match freshness {
        Ok(freshness) => freshness,
        Err(reason) => {
            finish(guard, Finish::NotStored);
            tracing::debug!(key = %ctx.base, reason, "response not stored");
            Outcome::Forwarded {
                fwd,
                not_modified: false,
                stored: Stored::No(reason),
            }
            .apply(&mut rparts.headers);
            return Ok(answer_uncached(ctx, rparts, rbody));
        }
    };

    let has_validators = rparts.headers.contains_key(header::ETAG)
        || rparts.headers.contains_key(header::LAST_MODIFIED);
    let ttl = freshness.store_ttl(has_validators, config.keep_stale_for);
    let key = variant_key(ctx, &rparts.headers);
    let template = entry_of(&rparts, Bytes::new(), &freshness, tags, ctx.now);
    let client_answer = client_precondition(ctx, &rparts);

    // The client gets no body (304 or 412), or there is none: read it here, bounded, and store
    // it before answering. An empty body in particular may never be polled to its end, which
    // is where a streamed body is stored. `stored` is said only of what the store kept.
    if client_answer != Precondition::Proceed || rbody.is_end_stream() {
        let stored = match read_bounded(rbody, config.max_body_size).await {
            Some(bytes) => {
                let entry = with_body(template, bytes.clone());
                let stored = store_entry(ctx, ticket, &key, &rparts.headers, entry, ttl).await;
                (stored, Some(bytes))
            }
            // Too long (or broken) to store.
            None => (false, None),
        };
        finish(
            guard,
            if stored.0 {
                Finish::Stored
            } else {
                Finish::NotStored
            },
        );
        Outcome::Forwarded {
            fwd,
            not_modified: false,
            stored: if stored.0 {
                Stored::Yes
            } else {
                Stored::Unclaimed
            },
        }
        .apply(&mut rparts.headers);
        return Ok(match (client_answer, stored.1) {
            (Precondition::Proceed, Some(bytes)) => {
                Response::from_parts(rparts, CacheBody::full(bytes))
            }
            (Precondition::Proceed, None) => Response::from_parts(rparts, CacheBody::empty()),
            (other, _) => short_answer(rparts, other),
        });
    }

    // RFC 9211 `stored`: claimed only when the length is known to fit; a body of unknown length
    // may still turn out too long to keep.
    Outcome::Forwarded {
        fwd,
        not_modified: false,
        stored: if rbody.size_hint().exact().is_some() {
            Stored::Yes
        } else {
            Stored::Unclaimed
        },
    }
    .apply(&mut rparts.headers);

    // The common case: stream the body to the client and store a copy at its end.
    let store = shared.store.clone();
    let counters = Arc::clone(&shared.counters);
    let marker = marker_for(ctx, &rparts.headers, ttl);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        finish(guard, Finish::NotStored);
        return Ok(Response::from_parts(rparts, CacheBody::stream(rbody)));
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
            fill(&store, &counters, ticket, &key, marker, entry, ttl).await;
            finish(guard, Finish::Stored);
        });
    });
    Ok(Response::from_parts(
        rparts,
        CacheBody::tee(rbody, config.max_body_size, on_complete),
    ))
}

/// Tells those waiting for this request's flight, if it leads one, how it ended.
fn finish(lead: Option<Lead>, how: Finish) {
    if let Some(lead) = lead {
        lead.finish(how);
    }
}

enum StaleIfError {
    Status(StatusCode),
    Error,
}

const FRESH_NOW: policy::Freshness = policy::Freshness {
    fresh_for: Duration::ZERO,
    initial_age: Duration::ZERO,
    stale_while_revalidate: Duration::ZERO,
    stale_if_error: Duration::ZERO,
};

fn entry_of(
    parts: &response::Parts,
    body: Bytes,
    freshness: &policy::Freshness,
    tags: Vec<String>,
    now: SystemTime,
) -> Entry {
    let mut headers = parts.headers.clone();
    headers.remove(header::AGE);
    headers.remove(HeaderName::from_static("cache-status"));
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

fn with_body(template: Entry, body: Bytes) -> Entry {
    template.with_body(body)
}

/// The names a response varies on, as this cache keys them.
fn vary_of<St>(ctx: &Ctx<St>, headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names = key::vary_names(headers).unwrap_or_default();
    if ctx.shared.config.encoding.is_none()
        && headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
        })
    {
        // No negotiator to key on: the raw header is the only safe key.
        names.push(header::ACCEPT_ENCODING);
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    }
    names
}

fn variant_key<St>(ctx: &Ctx<St>, headers: &HeaderMap) -> CacheKey {
    let names = vary_of(ctx, headers);
    if names.is_empty() {
        ctx.base.clone()
    } else {
        key::vary_key(ctx.base.clone(), &names, &ctx.client)
    }
}

/// The marker entry to store under the base key when the response varies on request headers.
fn marker_for<St>(ctx: &Ctx<St>, headers: &HeaderMap, _ttl: Duration) -> Option<(CacheKey, Entry)> {
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
    marker_headers.insert(
        HeaderName::from_static(VARY_MARKER),
        HeaderValue::from_str(&list).ok()?,
    );
    let marker = Entry::new(StatusCode::OK, marker_headers, Bytes::new()).with_stored_at(ctx.now);
    Some((ctx.base.clone(), marker))
}

async fn store_entry<St: CacheStore>(
    ctx: &Ctx<St>,
    ticket: Option<Ticket>,
    key: &CacheKey,
    headers: &HeaderMap,
    entry: Entry,
    ttl: Duration,
) -> bool {
    let marker = marker_for(ctx, headers, ttl);
    let shared = &ctx.shared;
    fill(
        &shared.store,
        &shared.counters,
        ticket,
        key,
        marker,
        entry,
        ttl,
    )
    .await
}

/// Puts `entry` (and its `Vary` marker) unless its resource or one of its tags was invalidated
/// since `ticket`: the origin may have read the old data before that write. Checked before the
/// put and again after it, undoing the put if an invalidation landed in between (the protocol
/// of `tower_edge_store::fence`).
async fn fill<St: CacheStore>(
    store: &St,
    counters: &stats::Counters,
    ticket: Option<Ticket>,
    key: &CacheKey,
    marker: Option<(CacheKey, Entry)>,
    entry: Entry,
    ttl: Duration,
) -> bool {
    let tags = entry.tags().to_vec();
    let len = entry.body().len() as u64;
    let put = async {
        let mut ok = true;
        if let Some((marker_key, marker)) = marker {
            ok &= store.put(&marker_key, marker, ttl).await.is_ok();
        }
        ok &= store.put(key, entry, ttl).await.is_ok();
        if ok { Ok(()) } else { Err(()) }
    };
    let undo = async {
        let _ = store.delete(key).await;
    };
    match fence::fill(store.fence(), ticket, key, &tags, put, undo).await {
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
        Filled::Failed(()) => {
            bump(&counters.store_errors);
            tracing::warn!(%key, "cache store put failed; response not stored");
            false
        }
    }
}

/// Tags from the `Cache-Tag` header and the [`CacheTags`] extension, removed from the response.
fn take_tags(parts: &mut response::Parts) -> Vec<String> {
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

/// The client's preconditions against the validators of a fresh 2xx response.
fn client_precondition<St>(ctx: &Ctx<St>, parts: &response::Parts) -> Precondition {
    if !parts.status.is_success() || !has_preconditions(&ctx.client) {
        return Precondition::Proceed;
    }
    let mut validators = Validators::from_headers(&parts.headers);
    // RFC 9111 §4.3.2: a cache evaluates If-Modified-Since against the stored response's
    // Last-Modified, or, when it has none, its Date. Only for that field: If-Unmodified-Since
    // is ignored without a modification date (RFC 9110 §13.1.4).
    if validators.last_modified().is_none()
        && ctx.client.contains_key(header::IF_MODIFIED_SINCE)
        && !ctx.client.contains_key(header::IF_UNMODIFIED_SINCE)
        && let Some(date) = parts
            .headers
            .get(header::DATE)
            .and_then(|v| crate::http::date::parse_http_date(v.as_bytes()))
    {
        validators = validators.with_last_modified(date);
    }
    evaluate(&ctx.method, &ctx.client, &validators, ctx.now)
}

/// A response that is not stored: passed through, with the client's conditionals answered.
fn answer_uncached<St, B>(
    ctx: &Ctx<St>,
    parts: response::Parts,
    body: B,
) -> Response<CacheBody<B>> {
    match client_precondition(ctx, &parts) {
        Precondition::Proceed => Response::from_parts(parts, CacheBody::stream(body)),
        other => short_answer(parts, other),
    }
}

/// 304 or 412 in place of `parts`' full response.
fn short_answer<B>(mut parts: response::Parts, outcome: Precondition) -> Response<CacheBody<B>> {
    match outcome {
        Precondition::NotModified => {
            crate::observe::validator("304");
            parts.status = StatusCode::NOT_MODIFIED;
            let cache_status: Vec<HeaderValue> = parts
                .headers
                .get_all("cache-status")
                .iter()
                .cloned()
                .collect();
            let age = parts.headers.remove(header::AGE);
            retain_not_modified_headers(&mut parts.headers);
            for value in cache_status {
                parts
                    .headers
                    .append(HeaderName::from_static("cache-status"), value);
            }
            if let Some(age) = age {
                parts.headers.insert(header::AGE, age);
            }
            Response::from_parts(parts, CacheBody::empty())
        }
        Precondition::PreconditionFailed => {
            crate::observe::validator("412");
            parts.status = StatusCode::PRECONDITION_FAILED;
            let keep: Vec<(HeaderName, HeaderValue)> = parts
                .headers
                .iter()
                .filter(|(n, _)| {
                    *n == header::ETAG
                        || *n == header::LAST_MODIFIED
                        || n.as_str() == "cache-status"
                })
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            parts.headers.clear();
            for (n, v) in keep {
                parts.headers.append(n, v);
            }
            parts
                .headers
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Response::from_parts(
                parts,
                CacheBody::full(Bytes::from_static(
                    crate::http::preconditions::PRECONDITION_FAILED_REASON.as_bytes(),
                )),
            )
        }
        Precondition::Proceed => Response::from_parts(parts, CacheBody::empty()),
    }
}

/// Builds the client's response from a stored entry.
fn serve<St, B>(found: &Found, ctx: &Ctx<St>, outcome: Outcome) -> Response<CacheBody<B>> {
    let entry = &found.entry;
    let mut res = Response::new(CacheBody::<B>::empty());
    *res.status_mut() = entry.status();
    *res.headers_mut() = entry.headers().clone();
    res.headers_mut()
        .insert(header::AGE, policy::seconds_value(found.age(ctx.now)));
    outcome.apply(res.headers_mut());
    let (mut parts, _) = res.into_parts();
    match client_precondition(ctx, &parts) {
        Precondition::Proceed => {}
        other => return short_answer(parts, other),
    }
    if ctx.method == Method::HEAD {
        parts.headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(entry.body().len() as u64),
        );
        return Response::from_parts(parts, CacheBody::empty());
    }
    // RFC 9110 §14: ranges of the stored body, with the same code as RangeLayer.
    if ctx.client.contains_key(header::RANGE) && serves_ranges(parts.status, &parts.headers) {
        let validators = Validators::from_headers(&parts.headers);
        let len = entry.body().len() as u64;
        match range::evaluate(
            &ctx.method,
            &ctx.client,
            len,
            &validators,
            ctx.now,
            &RangeLimits::new(),
        ) {
            Resolution::Full => {}
            Resolution::Partial(ranges) => {
                let (parts, chunks) = partial_parts(parts, entry.body(), &ranges);
                return Response::from_parts(parts, CacheBody::chunks(chunks));
            }
            Resolution::Unsatisfiable => {
                let (parts, body) = unsatisfiable_parts(parts, len);
                return Response::from_parts(parts, CacheBody::full(body));
            }
        }
    }
    Response::from_parts(parts, CacheBody::full(entry.body().clone()))
}

/// Reads a whole body of at most `max` bytes; `None` if longer, or if it fails or ends in
/// trailers.
async fn read_bounded<B: Body>(body: B, max: u64) -> Option<Bytes>
where
    B::Data: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let mut data = frame.ok()?.into_data().ok()?;
        if (out.len() + data.remaining()) as u64 > max {
            return None;
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            out.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }
    Some(out.freeze())
}

async fn drain<B: Body>(body: B) {
    let mut body = std::pin::pin!(body);
    while let Some(Ok(_)) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {}
}

/// RFC 9111 §4.4: after a successful unsafe request, the stored responses for its URL, and for
/// `Location` and `Content-Location` on the same origin, are invalid.
async fn invalidate_after_unsafe<St>(
    handle: &CacheHandle,
    origin: &str,
    uri: &Uri,
    headers: &HeaderMap,
    shared: &Shared<St>,
) {
    let mut resources = vec![key::resource(origin, uri, &shared.config.query)];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(target) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(target) = target.parse::<Uri>() else {
            continue;
        };
        let same_origin = match target.authority() {
            None => target.path().starts_with('/'),
            Some(authority) => {
                let scheme = target.scheme_str().unwrap_or("http");
                format!("{scheme}://{authority}").eq_ignore_ascii_case(origin)
            }
        };
        if same_origin {
            resources.push(key::resource(origin, &target, &shared.config.query));
        }
    }
    for resource in resources {
        if let Err(error) = handle.invalidate_resource(&resource).await {
            bump(&shared.counters.store_errors);
            tracing::warn!(%error, %resource, "invalidation after an unsafe request failed");
        }
    }
}
