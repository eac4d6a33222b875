//! Whether a response may be stored, and for how long it is fresh: the layer's reading of
//! RFC 9111 §3 and §4.2, on top of [`crate::http::storability`] and [`crate::http::freshness`],
//! with what the RFC leaves to the cache: the stale windows of RFC 5861, `CDN-Cache-Control`
//! (RFC 9213), the layer's own TTL override and defaults, and refusing `Set-Cookie` and
//! responses to cookie-bearing requests unless they are marked shareable.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, header, response};

use super::{CacheTtl, DefaultTtl, layer::Config};
use crate::http::{
    cache_control::CacheControl,
    freshness::{self, Reader},
    storability::Exchange,
    vary::{self, Vary},
};

/// The response header that sets this cache's TTL in seconds, for this cache only. It is
/// removed before the response leaves the layer.
pub const TTL_HEADER: &str = "tower-edge-ttl";

/// The largest lifetime, age or stale window this cache works with (RFC 9111 §1.2.2).
pub(crate) const MAX_DELTA: Duration = freshness::MAX_DELTA;

/// How a storable response is to be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub(crate) fresh_for: Duration,
    pub(crate) initial_age: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
}

impl Freshness {
    /// How long the store should keep the entry: what is left of its fresh life and of the
    /// longer stale window after the age it arrived with, and at least `min_keep` when the
    /// response has validators (a stale entry with validators is still worth a conditional
    /// request).
    pub(crate) fn store_ttl(&self, has_validators: bool, min_keep: Duration) -> Duration {
        let mut ttl = self
            .fresh_for
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
            .saturating_sub(self.initial_age);
        if has_validators {
            ttl = ttl.max(min_keep);
        }
        ttl
    }
}

/// Why a response was not stored: the `detail` of its `Cache-Status`.
pub(crate) type NotStored = &'static str;

/// Decides storability and freshness of `res` as an answer to a `GET` with the fields
/// `request` (the forwarded request's), received at `now`.
///
/// `known_length` says whether the body's length is known before it is read: the default TTLs
/// never apply to a stream of unknown length (server-sent events, progressive pages).
pub(crate) fn decide(
    request: &HeaderMap,
    res: &mut response::Parts,
    per_user: bool,
    now: SystemTime,
    config: &Config,
    known_length: bool,
) -> Result<Freshness, NotStored> {
    // Our own override, read and removed whatever the outcome: it is for this cache only.
    let header_ttl = res
        .headers
        .remove(TTL_HEADER)
        .and_then(|v| v.to_str().ok().and_then(freshness::delta_seconds));
    let override_ttl = res
        .extensions
        .remove::<CacheTtl>()
        .map(|t| t.0)
        .or(header_ttl.map(Duration::from_secs))
        .map(|ttl| ttl.min(MAX_DELTA));

    // RFC 6265 cookies are per client: unless told otherwise (RFC 9111 §7.3 allows storing
    // them), this cache never replays them.
    if !config.store_set_cookie && res.headers.contains_key(header::SET_COOKIE) {
        return Err("set-cookie");
    }

    // RFC 9213: CDN-Cache-Control, when present and enabled, replaces Cache-Control (and
    // Expires) for this cache's decisions; the client still sees the original fields.
    let cdn = config.cdn_cache_control && res.headers.contains_key("cdn-cache-control");
    let without_expires;
    let (cc, headers) = if cdn {
        let mut headers = res.headers.clone();
        headers.remove(header::EXPIRES);
        without_expires = headers;
        let cc = CacheControl::parse(res.headers.get_all("cdn-cache-control"));
        (cc, &without_expires)
    } else {
        let cc = CacheControl::parse(res.headers.get_all(header::CACHE_CONTROL));
        (cc, &res.headers)
    };

    // With a user key every entry belongs to one user: the cache is private to them.
    let shared = !per_user;
    let exchange = Exchange {
        method: Method::GET,
        request,
        request_cc: CacheControl::parse(request.get_all(header::CACHE_CONTROL)),
        status: res.status,
        response: headers,
        response_cc: cc,
        shared,
        cache_extension: override_ttl.is_some(),
    };
    exchange.storable().map_err(|why| why.as_str())?;
    let cc = exchange.response_cc;
    // RFC 9111 §4.2.1 would keep it as stale; a cache may always decline to store, and a
    // response whose freshness cannot be read is better not kept at all than served stale
    // under this layer's stale windows.
    if let Some(name) = ["max-age", "s-maxage"]
        .into_iter()
        .find(|name| cc.has(name) && cc.seconds(name).is_none())
    {
        warn_invalid_freshness(name, cc.value(name));
        return Err("invalid-freshness");
    }
    if let Some(store_if) = &config.store_if
        && !store_if(res.status, &res.headers)
    {
        return Err("filtered");
    }

    let Some(vary) = super::key::vary_names(&res.headers) else {
        return Err("vary-star");
    };
    // Cookies personalize like credentials do: unless the response says it may be shared, or
    // is keyed by the cookie, keep it out of a cache shared between users.
    let shareable = cc.has("public") || cc.has("s-maxage") || vary.contains(&header::COOKIE);
    if shared && !config.store_cookie_requests && !shareable && request.contains_key(header::COOKIE)
    {
        return Err("cookie");
    }

    let mut reader = if shared {
        Reader::shared()
    } else {
        Reader::private()
    };
    if config.heuristic {
        reader = reader.heuristic(10, Duration::from_secs(24 * 3600));
    }
    // RFC 9111 §5.1: an Age that is not a number leaves the response's age unknown; it is
    // taken as already stale (unless this cache was told its own TTL).
    let age = freshness::age(headers, now, now);
    let initial_age = age.unwrap_or_default();
    let lifetime = reader.lifetime(res.status, &cc, headers, now);
    // §5.2.2.4: no-cache responses are stored, but never fresh without validation.
    let revalidate_always = cc.has("no-cache");
    let fresh_for = if let Some(ttl) = override_ttl {
        initial_age + ttl
    } else if age.is_none() || revalidate_always {
        initial_age
    } else if lifetime.is_explicit() {
        // §4.2: fresh while its age (which counts the `Age` it arrived with) is below its
        // lifetime. A response older than that on arrival is stale by the difference, and
        // its stale windows count from when it expired, not from when it arrived.
        lifetime.duration()
    } else {
        let default = res
            .extensions
            .get::<DefaultTtl>()
            .map(|d| d.0)
            .or(config.default_ttl)
            .filter(|_| known_length && default_ttl_applies(res.status));
        match default {
            Some(ttl) => initial_age + ttl.min(MAX_DELTA),
            None => lifetime.duration(),
        }
    };

    // RFC 9111 §4.2.4: must-revalidate, no-cache (and, for shared caches, proxy-revalidate)
    // forbid serving stale whatever the stale windows say; s-maxage forbids only the windows
    // this cache would grant on its own.
    let (swr, sie) = if freshness::forbids_stale(&cc, shared) {
        (Duration::ZERO, Duration::ZERO)
    } else {
        let by_default = freshness::may_serve_stale_by_default(&cc, shared);
        let window = |name: &str, default: Duration| {
            freshness::stale_window(&cc, name)
                .or(by_default.then_some(default))
                .unwrap_or_default()
                .min(MAX_DELTA)
        };
        (
            window("stale-while-revalidate", config.stale_while_revalidate),
            window("stale-if-error", config.stale_if_error),
        )
    };
    let freshness = Freshness {
        fresh_for,
        initial_age,
        stale_while_revalidate: swr,
        stale_if_error: sie,
    };
    let has_validators =
        res.headers.contains_key(header::ETAG) || res.headers.contains_key(header::LAST_MODIFIED);
    if freshness
        .store_ttl(has_validators, config.keep_stale_for)
        .is_zero()
    {
        return Err("not-fresh");
    }
    Ok(freshness)
}

/// Logs, once per process, a response's freshness directive that is not delta-seconds.
fn warn_invalid_freshness(name: &str, value: Option<&str>) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            directive = name,
            value = value.unwrap_or(""),
            "a response's Cache-Control freshness is not a number of seconds (RFC 9111 \
             §1.2.2); it is not stored (logged once)"
        );
    }
}

/// Whether the default TTLs ([`Config::default_ttl`], the `DefaultTtl` extension) may give
/// `status` a freshness its response did not state: the codes RFC 9110 §15.1 lets a cache keep
/// without explicit freshness, errors excepted (a 404 or 410 kept for the default TTL would
/// hide a resource created meanwhile). A `206` is a part of a `200` (RFC 9110 §15.3.7, also
/// heuristically cacheable): its part is fresh for as long as the whole would be, so ranges of
/// an object sent without freshness (an object store's) are answered from the parts held.
fn default_ttl_applies(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 203 | 204 | 206 | 300 | 301 | 308)
}

/// Whether a stored response must not be served stale (RFC 9111 §4.2.4), as a shared cache
/// reads its stored `Cache-Control`.
pub(crate) fn forbids_stale(headers: &HeaderMap) -> bool {
    freshness::forbids_stale(
        &CacheControl::parse(headers.get_all(header::CACHE_CONTROL)),
        true,
    )
}

/// Updates stored headers from a `304` (RFC 9111 §4.3.4): every field the 304 carries replaces
/// the stored one, except the framing fields, which describe the stored body.
pub(crate) fn merge_not_modified(stored: &mut HeaderMap, fresh: &HeaderMap) {
    const KEEP: [header::HeaderName; 4] = [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
        header::CONTENT_RANGE,
    ];
    // RFC 9110 §15.4.5: a 304 carries the Vary its 200 would. A layer below the cache that
    // varies only the 200 (compression adds `accept-encoding` to what it compresses) would
    // otherwise take names out of the stored Vary, and later hits would under-state it to
    // downstream caches. So the stored response keeps every name it varied on.
    let vary_before = Vary::of(stored);
    let mut replaced: Vec<&header::HeaderName> = Vec::new();
    for (name, value) in fresh {
        if KEEP.contains(name) {
            continue;
        }
        if !replaced.contains(&name) {
            stored.remove(name);
            replaced.push(name);
        }
        stored.append(name.clone(), value.clone());
    }
    if fresh.contains_key(header::VARY)
        && let Some(names) = vary_before.names()
    {
        for name in names {
            vary::add(stored, name.clone());
        }
    }
}

/// A `HeaderValue` with the seconds of `d`, for `Age`.
pub(crate) fn seconds_value(d: Duration) -> HeaderValue {
    freshness::age_header(d)
}
