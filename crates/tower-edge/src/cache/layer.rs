use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderMap, StatusCode, request::Parts};
use tower::Layer;
use tower_edge_store::{CacheStore, single_flight::Flights};

use super::{
    CacheHandle, ResponseCache, Shared,
    handle::{HandleInner, KeyRules},
    heads::Heads,
    key::{KeyOrigin, QueryPolicy},
    stats::Counters,
};
use crate::clock::{Clock, SharedClock};

type PartsFn<T> = Arc<dyn Fn(&Parts) -> T + Send + Sync>;
type StoreFilter = Arc<dyn Fn(StatusCode, &HeaderMap) -> bool + Send + Sync>;

/// Negotiates the content encoding a request will get: `"br"`, `"zstd"`, `"gzip"`, `"deflate"`
/// or `"identity"`.
pub type EncodingFn = Arc<dyn Fn(&HeaderMap) -> &'static str + Send + Sync>;

/// An RFC 9111 shared cache in front of the inner service.
///
/// See the [module docs](crate::cache) for what it stores, how it keys entries, and when it
/// buffers.
///
/// Clones share one cache: one store, one set of counters, one set of in-flight requests. Apply
/// the same layer (or clones of it) wherever the cache should be shared.
pub struct ResponseCacheLayer<St> {
    pub(super) shared: Arc<Shared<St>>,
}

impl<St> Clone for ResponseCacheLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) max_body_size: u64,
    pub(crate) heuristic: bool,
    pub(crate) cdn_cache_control: bool,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) keep_stale_for: Duration,
    pub(crate) coalesce_timeout: Duration,
    pub(crate) query: QueryPolicy,
    pub(crate) key_origin: KeyOrigin,
    pub(crate) key_prefix: String,
    pub(crate) key_fn: Option<PartsFn<Option<String>>>,
    pub(crate) per_user: Option<PartsFn<Option<String>>>,
    pub(crate) bypass: Option<PartsFn<bool>>,
    pub(crate) store_if: Option<StoreFilter>,
    pub(crate) encoding: Option<EncodingFn>,
    pub(crate) invalidate_on_unsafe: bool,
    pub(crate) store_cookie_requests: bool,
    pub(crate) store_set_cookie: bool,
    pub(crate) clock: SharedClock,
    pub(crate) cache_name: super::CacheName,
}

impl<St: CacheStore + Clone> ResponseCacheLayer<St> {
    /// A layer storing into `store`, with the defaults below.
    pub fn new(store: St) -> Self {
        Self::from_parts(
            store,
            Config {
                default_ttl: None,
                max_body_size: 8 * 1024 * 1024,
                heuristic: false,
                cdn_cache_control: false,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                keep_stale_for: Duration::from_secs(300),
                coalesce_timeout: Duration::from_secs(10),
                query: QueryPolicy::default(),
                key_origin: KeyOrigin::Request,
                key_prefix: String::new(),
                key_fn: None,
                per_user: None,
                bypass: None,
                store_if: None,
                encoding: default_encoding(),
                invalidate_on_unsafe: true,
                store_cookie_requests: false,
                store_set_cookie: false,
                clock: SharedClock::default(),
                cache_name: super::CacheName::default(),
            },
        )
    }

    fn from_parts(store: St, config: Config) -> Self {
        Self {
            shared: {
                let counters = Arc::new(Counters::default());
                let handle = HandleInner::new(&store, &counters, key_rules(&config));
                Arc::new(Shared {
                    store,
                    config,
                    flights: Arc::new(Flights::default()),
                    refreshes: Arc::new(Flights::default()),
                    counters,
                    handle,
                    heads: Heads::default(),
                })
            },
        }
    }

    /// A setter: a new configuration over the same cache. The store, the counters, the
    /// requests in flight and the handles' shared state carry over, so a [`CacheHandle`] taken
    /// before (from this layer, or from a preset it went into) stays live: it counts this
    /// layer's hits and invalidates with its latest key rules.
    fn configure(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.shared.config.clone();
        f(&mut config);
        let old = &self.shared;
        old.handle.set_rules(key_rules(&config));
        Self {
            shared: Arc::new(Shared {
                store: old.store.clone(),
                config,
                flights: Arc::clone(&old.flights),
                refreshes: Arc::clone(&old.refreshes),
                counters: Arc::clone(&old.counters),
                handle: Arc::clone(&old.handle),
                heads: Heads::default(),
            }),
        }
    }

    /// A handle for invalidation and statistics outside a request. Paths given to it are taken
    /// relative to `origin` (`"https://example.com"`).
    pub fn handle(&self, origin: &str) -> CacheHandle {
        CacheHandle::new(&self.shared, origin.trim_end_matches('/').to_owned())
    }

    /// Which origin responses are keyed under, and so which origin a [`CacheHandle`]'s
    /// invalidations reach.
    ///
    /// By default ([`KeyOrigin::Request`]) keys carry the request's scheme and `Host`, and a
    /// handle addresses its own origin: `invalidate_prefix("/products")` from a request to
    /// `localhost` leaves what was stored for `127.0.0.1` alone, and an `https://` URL matches
    /// nothing behind a proxy that terminated TLS and forwarded `http`. A site reached under
    /// several names sets one origin for all ([`KeyOrigin::fixed`]), or none
    /// ([`KeyOrigin::None`]); then every handle reaches every copy.
    ///
    /// ```
    /// use tower_edge::cache::{KeyOrigin, MokaStore, ResponseCacheLayer};
    ///
    /// let layer = ResponseCacheLayer::new(MokaStore::default())
    ///     .key_origin(KeyOrigin::fixed("https://shop.example").expect("an origin"));
    /// // Any origin given to the handle stands for the fixed one.
    /// let handle = layer.handle("http://localhost:3000");
    /// # let _ = handle;
    /// ```
    #[must_use]
    pub fn key_origin(self, origin: KeyOrigin) -> Self {
        self.configure(|config| config.key_origin = origin)
    }

    /// A prefix for every key this layer stores and invalidates, before the URL in it
    /// (`GET v2:https://…`): applications (or versions of one) that share a store keep
    /// apart, and a handle of one never reaches the entries of another. `CACHE_KEY_PREFIX`, for
    /// Flask-Caching users.
    ///
    /// Defaults to none.
    #[must_use]
    pub fn key_prefix(self, prefix: &str) -> Self {
        let prefix = prefix.to_owned();
        self.configure(|config| config.key_prefix = prefix)
    }

    /// The name this cache gives itself in `Cache-Status` (see [`CacheName`](super::CacheName)).
    ///
    /// Defaults to `tower-edge`.
    #[must_use]
    pub fn cache_name(self, name: super::CacheName) -> Self {
        self.configure(|config| config.cache_name = name)
    }

    /// How long responses without `Cache-Control` freshness (`max-age`, `s-maxage`) or
    /// `Expires` stay fresh. A route can set its own with the [`DefaultTtl`](super::DefaultTtl)
    /// response extension.
    ///
    /// It applies to the status codes a cache may keep without explicit freshness (RFC 9110
    /// §15.1) that are not errors: 200, 203, 204, 300, 301 and 308, and to the 206 parts of a
    /// 200 (so ranges of an object sent without freshness are answered from the parts held);
    /// and only to bodies whose
    /// length is known before they are read, never to a stream (server-sent events, a page
    /// sent in pieces). A 404 or a stream is stored only when its response says so itself
    /// (`Cache-Control: max-age`) or through [`CacheTtl`](super::CacheTtl).
    ///
    /// Defaults to none: such responses are stored only with heuristic freshness, if enabled.
    #[must_use]
    pub fn default_ttl(self, ttl: Duration) -> Self {
        self.configure(|config| config.default_ttl = Some(ttl))
    }

    /// Which responses may be stored, among those RFC 9111 lets this cache store: `f` gets the
    /// status and header fields, and a `false` keeps the response out (`Cache-Status:
    /// fwd=miss; detail=filtered`). It can only narrow what is stored, never store what the
    /// RFC forbids.
    ///
    /// Defaults to storing whatever the RFC allows.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_edge::cache::{MokaStore, ResponseCacheLayer};
    ///
    /// // Only complete successes, never a fallback's 404 even with explicit freshness.
    /// let layer = ResponseCacheLayer::new(MokaStore::default())
    ///     .store_if(|status, _headers| status == StatusCode::OK);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn store_if<F>(self, f: F) -> Self
    where
        F: Fn(StatusCode, &HeaderMap) -> bool + Send + Sync + 'static,
    {
        self.configure(|config| config.store_if = Some(Arc::new(f)))
    }

    /// The largest body stored. Longer bodies stream through to the client and are not stored;
    /// the layer never holds more than this of one response.
    ///
    /// Defaults to 8 MiB.
    #[must_use]
    pub fn max_body_size(self, bytes: u64) -> Self {
        self.configure(|config| config.max_body_size = bytes)
    }

    /// Whether a response to a request that carries `Cookie` may be stored when the response
    /// does not say it is shareable.
    ///
    /// By default (`false`) such a response is stored only when it has `Cache-Control: public`
    /// or `s-maxage`, or names `Cookie` in `Vary`: an application that personalizes a page by
    /// cookie and forgets `Vary: Cookie` would otherwise have the first visitor's page served
    /// to everyone. This is the rule RFC 9111 §3.5 sets for `Authorization`, applied to
    /// cookies; `Cache-Status` says `detail=cookie` when it applies. Requests with cookies are
    /// still answered from entries stored for requests without them. With
    /// [`ResponseCacheLayer::per_user`], entries are per user and this rule does not apply to
    /// users it names.
    #[must_use]
    pub fn store_cookie_requests(self, enabled: bool) -> Self {
        self.configure(|config| config.store_cookie_requests = enabled)
    }

    /// Whether a response with `Set-Cookie` may be stored, as RFC 9111 §7.3 allows: the
    /// field does not inhibit caching, and a stored response with it is served, cookie and
    /// all, to whoever asks next. Turn it on only in front of an origin that marks such
    /// responses `private` or `no-store` when the cookie is personal.
    ///
    /// Defaults to `false`: a response that sets a cookie is never stored (`Cache-Status` says
    /// `detail=set-cookie`).
    #[must_use]
    pub fn store_set_cookie(self, enabled: bool) -> Self {
        self.configure(|config| config.store_set_cookie = enabled)
    }

    /// Heuristic freshness (RFC 9111 §4.2.2): 10% of the time since `Last-Modified` for
    /// responses with no explicit freshness.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn heuristic_freshness(self, enabled: bool) -> Self {
        self.configure(|config| config.heuristic = enabled)
    }

    /// Reads `CDN-Cache-Control` (RFC 9213) in place of `Cache-Control` and `Expires` when a
    /// response has it. The field is passed on to the client unchanged.
    ///
    /// Defaults to `false`.
    #[must_use]
    pub fn cdn_cache_control(self, enabled: bool) -> Self {
        self.configure(|config| config.cdn_cache_control = enabled)
    }

    /// How long a stale entry may be served while one background request refreshes it, for
    /// responses without a `stale-while-revalidate` directive (RFC 5861).
    ///
    /// Defaults to zero.
    #[must_use]
    pub fn stale_while_revalidate(self, window: Duration) -> Self {
        self.configure(|config| config.stale_while_revalidate = window)
    }

    /// How long a stale entry may be served when the inner service fails (an error or a 5xx),
    /// for responses without a `stale-if-error` directive (RFC 5861).
    ///
    /// Defaults to zero.
    #[must_use]
    pub fn stale_if_error(self, window: Duration) -> Self {
        self.configure(|config| config.stale_if_error = window)
    }

    /// How long entries with validators (`ETag`, `Last-Modified`) are kept after going stale, so
    /// they can be revalidated with a conditional request instead of fetched again.
    ///
    /// Defaults to 5 minutes.
    #[must_use]
    pub fn keep_stale_for(self, duration: Duration) -> Self {
        self.configure(|config| config.keep_stale_for = duration)
    }

    /// How long a miss's inner call may run before one more of the misses waiting on it makes
    /// its own (and one more after each further period; the others wait for whichever call
    /// ends first, as nginx's `proxy_cache_lock_age` lets one more request through). Also how
    /// long the store's lock against other instances lasts, and so the longest another
    /// instance waits for this one's entry before fetching itself.
    ///
    /// Defaults to 10 seconds.
    #[must_use]
    pub fn coalesce_timeout(self, timeout: Duration) -> Self {
        self.configure(|config| config.coalesce_timeout = timeout)
    }

    /// Only these query parameters take part in the key; the others are ignored.
    ///
    /// Defaults to every parameter.
    #[must_use]
    pub fn query_allow<I, T>(self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.configure(|config| {
            config.query.allow = Some(names.into_iter().map(Into::into).collect());
        })
    }

    /// These query parameters (tracking ones, say) do not take part in the key.
    ///
    /// Defaults to none.
    #[must_use]
    pub fn query_deny<I, T>(self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.configure(|config| {
            config.query.deny = names.into_iter().map(Into::into).collect();
        })
    }

    /// Adds a part to every key, from the request: a language, a tenant. Returning `None` adds
    /// nothing.
    ///
    /// Defaults to none.
    #[must_use]
    pub fn key<F>(self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.configure(|config| {
            config.key_fn = Some(Arc::new(f));
        })
    }

    /// Caches per user: `f` names the request's user (say, from a verified session), and
    /// that user's entries are kept apart from everyone else's. For such requests, `private`
    /// responses and requests with `Authorization` are cached too (RFC 9111 §3.5 forbids this
    /// only to caches shared between users). Requests for which `f` returns `None` are treated
    /// as anonymous. Responses with `Set-Cookie` are never stored.
    ///
    /// Defaults to none: `private` responses are not stored; requests with `Authorization` are
    /// never answered from the cache, and their answers are stored only when they say
    /// `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3.5).
    #[must_use]
    pub fn per_user<F>(self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.configure(|config| {
            config.per_user = Some(Arc::new(f));
        })
    }

    /// Requests for which `f` returns `true` go straight to the inner service.
    ///
    /// Defaults to none.
    #[must_use]
    pub fn bypass<F>(self, f: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.configure(|config| {
            config.bypass = Some(Arc::new(f));
        })
    }

    /// The content-coding negotiation of the compression layer below, so responses that vary on
    /// `Accept-Encoding` are keyed by the *negotiated* encoding rather than the raw header.
    /// `None` keys them by the raw header value (correct, but one entry per distinct header).
    ///
    /// Defaults to none (the raw header).
    #[must_use]
    pub fn encoding(self, f: Option<EncodingFn>) -> Self {
        self.configure(|config| config.encoding = f)
    }

    /// Removes the stored variants of a URL after a successful unsafe request to it, and of its
    /// `Location` and `Content-Location` on the same origin (RFC 9111 §4.4).
    ///
    /// Defaults to `true`.
    #[must_use]
    pub fn invalidate_on_unsafe(self, enabled: bool) -> Self {
        self.configure(|config| config.invalidate_on_unsafe = enabled)
    }

    /// The clock used for ages and freshness.
    ///
    /// It is the same trait the store crate reads (`tower_edge_store::clock`): give a
    /// `Tiered` store (`Tiered::clock`) and `Memo` (`Memo::clock`) the same clock, so that a
    /// test that moves time moves it for all of them.
    ///
    /// Defaults to [`SystemClock`](crate::clock::SystemClock).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        self.configure(|config| config.clock = SharedClock::new(clock))
    }
}

fn key_rules(config: &Config) -> KeyRules {
    KeyRules {
        query: config.query.clone(),
        origin: config.key_origin.clone(),
        prefix: config.key_prefix.clone(),
    }
}

fn default_encoding() -> Option<EncodingFn> {
    None
}

impl<St> fmt::Debug for ResponseCacheLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("default_ttl", &self.shared.config.default_ttl)
            .field("max_body_size", &self.shared.config.max_body_size)
            .finish_non_exhaustive()
    }
}

impl<S, St> Layer<S> for ResponseCacheLayer<St> {
    type Service = ResponseCache<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCache {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}
