use std::{
    future::poll_fn,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::{Buf, Bytes};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
    request, response,
};
use http_body::Body;
use tower::Service;
use tower_edge_store::{
    CacheKey, CacheStore, Entry, Holder,
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
use crate::collected::Collected;
use crate::http::responses::Short;
use crate::http::{
    cache_control::CacheControl,
    cache_status::CACHE_STATUS,
    fields::Asks,
    freshness::Demand,
    preconditions::{NOT_MODIFIED_HEADERS, Precondition, Validators, evaluate},
    range::{self, ByteRange, RangeLimits, Resolution},
};
use crate::range::{partial_parts, serves_ranges, unsatisfiable_parts};

// One phase a file; the state machine of a request stays here.
mod answer;
mod fill;
mod forward;
mod invalidate;
mod lookup;
mod partial;
mod revalidate;

use self::{
    answer::*, fill::*, forward::forward, invalidate::*, lookup::*, partial::*, revalidate::*,
};

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
        let (parts, body) = req.into_parts();
        let mut start = start(&self.shared, parts);
        // A store that answers without waiting (in memory) answers a fresh hit here: a ready
        // future, with no boxed state machine and no clone of the inner service.
        if let Start::Lookup(lookup) = &mut start
            && !lookup.no_cache
            && !lookup.authorized
        {
            lookup.probed = probe_now(&lookup.ctx);
            if let Some(Ok(found)) = &lookup.probed
                && let Some(res) = fresh_hit(found, &lookup.ctx)
            {
                return ResponseFuture::ready(res);
            }
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(Box::pin(handle(inner, start, body)))
    }
}

/// The header a marker entry lists a resource's `Vary` names in. A marker is stored under the
/// key without `Vary` parts; the response itself under the key with them.
// A static name, not text: text is parsed into a name on every lookup.
static VARY_MARKER: HeaderName = HeaderName::from_static("tower-edge-vary");

/// Bodies of a known length up to this many bytes (and `max_body_size`) are read whole and
/// stored before the client is answered, so that their `Cache-Status` says `stored` only when
/// the store kept them. In-process handlers send such bodies in one frame, so this costs a miss
/// nothing but the store's put; longer ones stream.
const STORE_BEFORE_ANSWER: u64 = 64 * 1024;

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
    /// Which of the fields the cache acts on `client` holds.
    asks: Asks,
    base: CacheKey,
    per_user: bool,
    no_store: bool,
    /// What the request's own directives ask of a stored response (RFC 9111 §5.2.1).
    demand: Demand,
    /// §5.2.1.7: answer from the cache or not at all.
    only_if_cached: bool,
}

/// A request as `call` leaves it, its key built and (from a store that answers at once)
/// looked up: what [`handle`] goes on from.
// The large variant is the common one (every GET and HEAD); boxing it would cost the hit path
// an allocation to save stack space that is given back as soon as `call` returns.
#[allow(clippy::large_enum_variant)]
enum Start<St> {
    /// Neither GET nor HEAD: passed on; a success invalidates (RFC 9111 §4.4).
    Unsafe {
        shared: Arc<Shared<St>>,
        parts: request::Parts,
        handle: CacheHandle,
        /// The request's own origin, and the one its keys carry.
        own: String,
        origin: String,
        keyed: bool,
    },
    /// Not answered from the cache: no key, or the layer's bypass.
    Bypass(request::Parts, Arc<Shared<St>>),
    /// A GET or HEAD to look up.
    // Not boxed: this is the hit path, and a box would be one allocation per request for an
    // enum that lives on the stack until the miss path moves it into its (boxed) future.
    Lookup(Lookup<St>),
}

/// A GET or HEAD on its way through the cache.
struct Lookup<St> {
    ctx: Ctx<St>,
    parts: request::Parts,
    /// The request asks for a validated answer (`no-cache`).
    no_cache: bool,
    /// It carries credentials and no per-user key: never answered from shared entries.
    authorized: bool,
    /// The store's answer if it gave one without waiting ([`probe_now`]).
    probed: Option<Result<Found, CacheKey>>,
}

/// The synchronous start of a request: its origin, its key and what its headers ask.
fn start<St: CacheStore + Clone>(shared: &Arc<Shared<St>>, mut parts: request::Parts) -> Start<St> {
    let config = &shared.config;
    let now = config.clock.now();
    // A request whose host cannot be keyed without ambiguity neither reads, stores nor
    // invalidates; its handle addresses a reserved name no valid request shares a key with.
    let origin_of = |parts: &request::Parts| config.key_origin.of(parts);

    if parts.method != Method::GET && parts.method != Method::HEAD {
        let keyed_origin = origin_of(&parts);
        let keyed = keyed_origin.is_some();
        let origin = keyed_origin.unwrap_or_else(|| key::UNKEYABLE_ORIGIN.to_owned());
        let handle = CacheHandle::new(shared, origin.clone());
        parts.extensions.insert(handle.clone());
        bump(&shared.counters.bypassed);
        let own = match config.key_origin {
            key::KeyOrigin::Request => origin.clone(),
            _ => key::origin(&parts).unwrap_or_default(),
        };
        return Start::Unsafe {
            shared: Arc::clone(shared),
            parts,
            handle,
            own,
            origin: format!("{}{origin}", config.key_prefix),
            keyed,
        };
    }

    let user = config.per_user.as_ref().and_then(|f| f(&parts));
    let asks = Asks::of(&parts.headers);
    // The resource, written with its origin in one buffer: `None` for a host that cannot be
    // keyed, or a request the layer's bypass takes.
    let resource = key::request_resource(
        &config.key_prefix,
        &config.key_origin,
        &parts,
        &config.query,
    )
    .filter(|_| !config.bypass.as_ref().is_some_and(|f| f(&parts)));
    // A request with credentials is never answered from entries shared between users: the
    // origin may answer it for that user alone. Its answer is stored only when RFC 9111 §3.5
    // allows (`public`, `s-maxage`, `must-revalidate`), which `policy::decide` checks.
    let authorized = asks.authorization && user.is_none();
    let Some(resource) = resource else {
        bump(&shared.counters.bypassed);
        let origin = origin_of(&parts).unwrap_or_else(|| key::UNKEYABLE_ORIGIN.to_owned());
        parts.extensions.insert(CacheHandle::new(shared, origin));
        return Start::Bypass(parts, Arc::clone(shared));
    };

    let request_cc = if asks.cache_control {
        CacheControl::parse(parts.headers.get_all(header::CACHE_CONTROL))
    } else {
        CacheControl::default()
    };
    // RFC 9111 §5.2.1.4 and §5.4: the client wants a validated answer, not a stored one.
    let no_cache = request_cc.has("no-cache")
        || (asks.pragma
            && request_cc.is_empty()
            && parts
                .headers
                .get_all(header::PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache")));
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
        shared: Arc::clone(shared),
        now,
        method: parts.method.clone(),
        client: std::mem::take(&mut parts.headers),
        asks,
        base,
        per_user: user.is_some(),
        no_store: request_cc.has("no-store"),
        demand: Demand::of(&request_cc),
        only_if_cached: request_cc.has("only-if-cached"),
    };
    Start::Lookup(Lookup {
        ctx,
        parts,
        no_cache,
        authorized,
        probed: None,
    })
}

async fn handle<S, St, ReqB, ResB>(
    mut inner: S,
    start: Start<St>,
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
    let begun = match start {
        Start::Unsafe {
            shared,
            parts,
            handle,
            own,
            origin,
            keyed,
        } => {
            let is_unsafe = !matches!(parts.method, Method::OPTIONS | Method::TRACE);
            let uri = parts.uri.clone();
            let res = inner.call(Request::from_parts(parts, body)).await?;
            let status = res.status();
            if is_unsafe
                && keyed
                && shared.config.invalidate_on_unsafe
                && (status.is_success() || status.is_redirection())
            {
                let invalidate =
                    invalidate_after_unsafe(&handle, &own, &origin, &uri, res.headers(), &shared);
                crate::observe::scope::store(invalidate).await;
            }
            return Ok(res.map(CacheBody::stream));
        }
        Start::Bypass(parts, shared) => {
            let mut res = inner.call(Request::from_parts(parts, body)).await?;
            Outcome::Bypass.apply(
                res.headers_mut(),
                &shared.counters,
                &shared.config.cache_name,
            );
            return Ok(res.map(CacheBody::stream));
        }
        Start::Lookup(begun) => begun,
    };
    let Lookup {
        ctx,
        parts,
        no_cache,
        authorized,
        probed,
    } = begun;
    let shared = &ctx.shared;
    let config = &shared.config;

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
    // The key this request's own entry would have: known from the lookup, and only copied on
    // a miss.
    let flight_key = if no_cache {
        ctx.base.clone()
    } else {
        let probed = match probed {
            Some(probed) => probed,
            None => probe(&ctx).await,
        };
        let flight_key = match probed {
            Ok(found) => return answer_from(found, &ctx, inner, parts, body).await,
            Err(key) => key,
        };
        // RFC 9111 §3.3: a range wholly within parts stored from earlier ranges.
        if let Some(res) = answer_from_parts(&ctx, &flight_key).await {
            return Ok(res);
        }
        if ctx.only_if_cached {
            return Ok(only_if_cached(Fwd::Miss, &ctx.shared));
        }
        flight_key
    };
    bump(&shared.counters.misses);
    let fwd = if no_cache { Fwd::Request } else { Fwd::Miss };
    // A range goes to the origin as it is, without joining the flight of the whole: another
    // range's answer seldom serves it, and queueing ranges behind one another would make a
    // download's readers wait for each other's parts.
    if ctx.method == Method::GET && ctx.asks.range {
        return Box::pin(forward(&ctx, &mut inner, parts, body, None, None, fwd)).await;
    }
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
            Locked::Held(holder) => lead.hold(&shared.store, holder),
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
    if let Some(res) = fresh_hit(&found, ctx) {
        return Ok(res);
    }
    let (age, lifetime) = (found.age(ctx.now), found.entry.fresh_for());
    // Fresh, but the request's `max-age` or `min-fresh` refuses it: validate, and let nothing
    // stale stand in (RFC 9211 `fwd=request`).
    let refused = ctx.demand.refuses_fresh(age, lifetime);
    let stale_by = found.stale_by(ctx.now);
    let may_serve_stale = !refused && !policy::forbids_stale(found.entry.headers());
    if may_serve_stale && ctx.demand.takes_stale(age, stale_by) {
        // RFC 9111 §5.2.1.2: the client takes it stale.
        bump(&shared.counters.stale);
        return Ok(serve(&found, ctx, Outcome::StaleAccepted { stale_by }));
    }
    if ctx.only_if_cached && !(may_serve_stale && stale_by < found.entry.stale_while_revalidate()) {
        // RFC 9111 §5.2.1.7: what is stored does not do, and the origin is not to be asked.
        let fwd = if refused { Fwd::Request } else { Fwd::Stale };
        return Ok(only_if_cached(fwd, shared));
    }
    if may_serve_stale && stale_by < found.entry.stale_while_revalidate() {
        bump(&shared.counters.stale);
        tracing::debug!(key = %found.key(ctx), stale_by = ?stale_by, "serving stale while revalidating");
        // One background refresh per key; everyone else is served the stale entry meanwhile.
        if let Some(guard) = shared.refreshes.try_lead(&found.key(ctx).to_string())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let refresh_ctx = Ctx {
                shared: Arc::clone(shared),
                now: ctx.now,
                method: Method::GET,
                client: ctx.client.clone(),
                asks: ctx.asks,
                base: ctx.base.clone(),
                per_user: ctx.per_user,
                no_store: false,
                demand: Demand::default(),
                only_if_cached: false,
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
        if refused { Fwd::Request } else { Fwd::Stale },
    ))
    .await
}

/// The answer to a request that found `found` fresh enough for it (RFC 9111 §4.2), if it is.
fn fresh_hit<St, B>(found: &Found, ctx: &Ctx<St>) -> Option<Response<CacheBody<B>>> {
    let (age, lifetime) = (found.age(ctx.now), found.entry.fresh_for());
    if !ctx.demand.takes_fresh(age, lifetime) {
        return None;
    }
    bump(&ctx.shared.counters.hits);
    tracing::trace!(key = %found.key(ctx), "cache hit");
    let ttl = lifetime.saturating_sub(age);
    Some(serve(found, ctx, Outcome::Hit { ttl }))
}

/// The `504` of RFC 9111 §5.2.1.7: `only-if-cached`, and nothing stored that may answer.
fn only_if_cached<B, St>(fwd: Fwd, shared: &Shared<St>) -> Response<CacheBody<B>> {
    let mut res = Response::new(CacheBody::empty());
    *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    Outcome::OnlyIfCached { fwd }.apply(
        res.headers_mut(),
        &shared.counters,
        &shared.config.cache_name,
    );
    res
}
