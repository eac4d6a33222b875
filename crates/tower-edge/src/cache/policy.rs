//! Whether a response may be stored, and for how long it is fresh (RFC 9111 §3, §4.2).
//!
//! Storability, `s-maxage` / `max-age` / `Expires` / `Age`, `no-store`, `private`, `no-cache`,
//! `Authorization` and heuristic freshness come from the `http-cache-semantics` crate, so this
//! layer does not carry its own reading of RFC 9111 for them. Decided here: what that crate
//! leaves to its user (the stale windows of RFC 5861, `CDN-Cache-Control` of RFC 9213, the
//! layer's own TTL override and defaults, and refusing `Set-Cookie` outright).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header, response};
use http_cache_semantics::{CacheOptions, CachePolicy, RequestLike};

use super::{CacheTtl, DefaultTtl, layer::Config};
use crate::http::cache_control::CacheControl;

/// The response header that sets this cache's TTL in seconds, for this cache only. It is
/// removed before the response leaves the layer.
pub const TTL_HEADER: &str = "tower-edge-ttl";

/// The largest lifetime, age or stale window this cache works with: 2^31 seconds, which RFC 9111
/// §1.2.2 asks caches to use for any larger delta-seconds. Larger values (from `Age`, `max-age`,
/// the TTL header or the layer's options) are clamped to it, so sums of them and times computed
/// from them cannot overflow.
pub(crate) const MAX_DELTA: Duration = Duration::from_secs(1 << 31);

/// How a storable response is to be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub(crate) fresh_for: Duration,
    pub(crate) initial_age: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
}

impl Freshness {
    /// How long the store should keep the entry: fresh life plus the longer stale window, and
    /// at least `min_keep` when the response has validators (a stale entry with validators is
    /// still worth a conditional request).
    pub(crate) fn store_ttl(&self, has_validators: bool, min_keep: Duration) -> Duration {
        let mut ttl = self.fresh_for.saturating_sub(self.initial_age)
            + self.stale_while_revalidate.max(self.stale_if_error);
        if has_validators {
            ttl = ttl.max(min_keep);
        }
        ttl
    }
}

/// Why a response was not stored: the `detail` of its `Cache-Status`.
pub(crate) type NotStored = &'static str;

/// Decides storability and freshness of `res` as an answer to `req` (the forwarded request).
pub(crate) fn decide<R: RequestLike>(
    req: &R,
    res: &mut response::Parts,
    per_user: bool,
    now: SystemTime,
    config: &Config,
) -> Result<Freshness, NotStored> {
    // Our own override, read and removed whatever the outcome: it is for this cache only.
    let header_ttl = res
        .headers
        .remove(TTL_HEADER)
        .and_then(|v| delta_seconds(v.as_bytes()));
    let override_ttl = res
        .extensions
        .remove::<CacheTtl>()
        .map(|t| t.0)
        .or(header_ttl.map(Duration::from_secs));

    // RFC 6265 cookies are per client: a shared cache never replays them.
    if res.headers.contains_key(header::SET_COOKIE) {
        return Err("set-cookie");
    }

    // RFC 9213: CDN-Cache-Control, when present and enabled, replaces Cache-Control (and
    // Expires) for this cache's decisions; the client still sees the original fields.
    let cdn = config.cdn_cache_control && res.headers.contains_key("cdn-cache-control");
    let mut policy_headers;
    let headers: &HeaderMap = if cdn {
        policy_headers = res.headers.clone();
        policy_headers.remove(header::CACHE_CONTROL);
        policy_headers.remove(header::EXPIRES);
        for value in res.headers.get_all("cdn-cache-control") {
            policy_headers.append(header::CACHE_CONTROL, value.clone());
        }
        &policy_headers
    } else {
        &res.headers
    };
    let cc = CacheControl::parse(headers.get_all(header::CACHE_CONTROL));

    let options = CacheOptions {
        // With a user key every entry belongs to one user, so `private` responses may be kept.
        shared: !per_user,
        cache_heuristic: if config.heuristic { 0.1 } else { 0.0 },
        immutable_min_time_to_live: Duration::from_secs(24 * 3600),
        ignore_cargo_cult: false,
    };
    let policy_res = PolicyResponse {
        status: res.status,
        headers,
    };
    let policy = CachePolicy::new_options(req, &policy_res, now, options);
    if !policy.is_storable() {
        return Err(if cc.has("no-store") {
            "no-store"
        } else if cc.has("private") {
            "private"
        } else if req.headers().contains_key(header::AUTHORIZATION) {
            "authorization"
        } else {
            "not-storable"
        });
    }
    let Some(vary) = super::key::vary_names(&res.headers) else {
        return Err("vary-star");
    };
    // Cookies personalize like credentials do: unless the response says it may be shared, or
    // is keyed by the cookie, keep it out of a cache shared between users.
    let shareable = cc.has("public") || cc.has("s-maxage") || vary.contains(&header::COOKIE);
    if !per_user
        && !config.store_cookie_requests
        && !shareable
        && req.headers().contains_key(header::COOKIE)
    {
        return Err("cookie");
    }

    let initial_age = policy.age(now).min(MAX_DELTA);
    let explicit =
        cc.has("max-age") || cc.has("s-maxage") || (!cdn && headers.contains_key(header::EXPIRES));
    let revalidate_always = cc.has("no-cache");
    let ttl = if let Some(ttl) = override_ttl {
        ttl
    } else if !explicit && !revalidate_always {
        let default = res
            .extensions
            .get::<DefaultTtl>()
            .map(|d| d.0)
            .or(config.default_ttl);
        default.unwrap_or_else(|| policy.time_to_live(now))
    } else {
        policy.time_to_live(now)
    };
    let fresh_for = initial_age + ttl.min(MAX_DELTA);

    // RFC 9111 §4.2.4: must-revalidate (and, for shared caches, proxy-revalidate and no-cache)
    // forbid serving stale, whatever the stale windows say.
    let no_stale = cc.has("must-revalidate") || cc.has("proxy-revalidate") || revalidate_always;
    let (swr, sie) = if no_stale {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (
            cc.duration("stale-while-revalidate")
                .unwrap_or(config.stale_while_revalidate)
                .min(MAX_DELTA),
            cc.duration("stale-if-error")
                .unwrap_or(config.stale_if_error)
                .min(MAX_DELTA),
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

/// Whether a stored response must not be served stale (RFC 9111 §4.2.4).
pub(crate) fn forbids_stale(headers: &HeaderMap) -> bool {
    let cc = CacheControl::parse(headers.get_all(header::CACHE_CONTROL));
    cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("no-cache")
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
}

struct PolicyResponse<'a> {
    status: http::StatusCode,
    headers: &'a HeaderMap,
}

impl http_cache_semantics::ResponseLike for PolicyResponse<'_> {
    fn status(&self) -> http::StatusCode {
        self.status
    }

    fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

/// delta-seconds (RFC 9111 §1.2.2): digits, optionally surrounded by whitespace; too large a
/// value saturates.
fn delta_seconds(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        std::str::from_utf8(digits)
            .ok()?
            .parse::<u64>()
            .unwrap_or(u64::MAX),
    )
}

/// A `HeaderValue` with the seconds of `d`, for `Age`.
pub(crate) fn seconds_value(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs())
}
