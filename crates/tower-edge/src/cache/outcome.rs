//! What the cache did with a request, as a type. The `Cache-Status` field (RFC 9211), the
//! `edge.cache` span field and the `tower_edge_cache_total` metric label are all derived from
//! one [`Outcome`]; nothing formats a status and parses it back.

use std::{fmt, time::Duration};

use http::{HeaderMap, StatusCode};

use super::stats::Counters;
use crate::http::cache_status::{CACHE_STATUS, CacheStatus};

/// Why a request went to the inner service (RFC 9211 §2.2 `fwd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fwd {
    /// Nothing was stored for it.
    Miss,
    /// Its own fields asked for the origin (`no-cache`, `Authorization`).
    Request,
    /// What was stored is stale: a revalidation or a fetch again.
    Stale,
}

impl Fwd {
    fn as_str(self) -> &'static str {
        match self {
            Self::Miss => "miss",
            Self::Request => "request",
            Self::Stale => "stale",
        }
    }
}

/// Whether a forwarded response was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The store kept it.
    Yes,
    /// No claim: it streams to the client while a copy is kept, or its put did not succeed.
    Unclaimed,
    /// Not kept, and why (the RFC 9211 `detail`).
    No(&'static str),
}

impl Stored {
    /// [`Yes`](Self::Yes) when the store kept it, else no claim: the reason it was not kept
    /// (a failed or fenced put) is in the logs and counters, not in `Cache-Status`.
    pub(crate) fn kept(stored: bool) -> Self {
        if stored { Self::Yes } else { Self::Unclaimed }
    }
}

/// What the cache did with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A fresh stored response, with the seconds it stays fresh.
    Hit { ttl: Duration },
    /// A stale stored response while one background refresh runs (RFC 5861).
    StaleWhileRevalidate { stale_by: Duration },
    /// A stale stored response the client said it takes (`max-stale`, RFC 9111 §5.2.1.2).
    StaleAccepted { stale_by: Duration },
    /// A stale stored response because the inner service failed (RFC 5861); with the status
    /// it failed with, if it answered.
    StaleIfError {
        stale_by: Duration,
        status: Option<StatusCode>,
    },
    /// The response another request's inner call stored.
    Collapsed { fwd: Fwd },
    /// The inner service's response; `not_modified` when it answered a revalidation with 304.
    Forwarded {
        fwd: Fwd,
        not_modified: bool,
        stored: Stored,
    },
    /// `only-if-cached` and nothing stored that may answer: 504 (RFC 9111 §5.2.1.7). `fwd`
    /// says why the request would have gone on: nothing stored, stale, or its own directives.
    OnlyIfCached { fwd: Fwd },
    /// Not looked up, not stored: the bypass predicate, an unkeyable host.
    Bypass,
}

/// The name a cache gives itself in `Cache-Status` (RFC 9211 §2), so that a response that
/// passed through several caches tells them apart: `tower-edge` by default; a proxy in front of
/// an application that caches too takes another (`edge-proxy`, `cdn-eu-1`).
///
/// ```
/// use tower_edge::cache::{CacheName, MokaStore, ResponseCacheLayer};
///
/// let layer = ResponseCacheLayer::new(MokaStore::default())
///     .cache_name(CacheName::new("edge-proxy").expect("a token"));
/// # let _ = layer;
/// assert!(CacheName::new("two words").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CacheName {
    /// The name and the separator of its parameters: `tower-edge; `.
    prefix: std::sync::Arc<str>,
}

impl CacheName {
    /// `name` if it is a structured-field token (RFC 8941 §3.3.4: a letter or `*`, then
    /// letters, digits and ``!#$%&'*+-.^_`|~:/``), as RFC 9211 asks of a cache's name.
    pub fn new(name: &str) -> Result<Self, InvalidCacheName> {
        let mut bytes = name.bytes();
        let first = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*');
        let rest = bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
        if !(first && rest) {
            return Err(InvalidCacheName {
                name: name.to_owned(),
            });
        }
        Ok(Self {
            prefix: format!("{name}; ").into(),
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.prefix.trim_end_matches("; ")
    }
}

impl Default for CacheName {
    fn default() -> Self {
        Self {
            prefix: std::sync::Arc::from("tower-edge; "),
        }
    }
}

impl fmt::Debug for CacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The error of [`CacheName::new`]: not a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCacheName {
    name: String,
}

impl fmt::Display for InvalidCacheName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cache name {:?} is not a token: a letter, then letters, digits or !#$%&'*+-.^_`|~:/",
            self.name
        )
    }
}

impl std::error::Error for InvalidCacheName {}

impl Outcome {
    /// The label of `tower_edge_cache_total`.
    fn event(self) -> &'static str {
        match self {
            Self::Hit { .. } => "hit",
            Self::StaleWhileRevalidate { .. }
            | Self::StaleAccepted { .. }
            | Self::StaleIfError { .. } => "stale",
            Self::Collapsed { fwd: Fwd::Stale } => "revalidate",
            Self::Collapsed { .. } => "collapsed",
            Self::Forwarded { fwd: Fwd::Miss, .. } | Self::OnlyIfCached { .. } => "miss",
            Self::Forwarded {
                fwd: Fwd::Stale, ..
            } => "revalidate",
            Self::Forwarded {
                fwd: Fwd::Request, ..
            } => "forward",
            Self::Bypass => "bypass",
        }
    }

    /// Appends this outcome's `Cache-Status` member under `name`, records it on the request
    /// span and counts it in `counters`' event family.
    pub(crate) fn apply(self, headers: &mut HeaderMap, counters: &Counters, name: &CacheName) {
        if let Some(value) = self.cache_status().header_value(&name.prefix) {
            headers.append(CACHE_STATUS.clone(), value);
        }
        self.count(headers, counters, name);
    }

    /// Counts and records the outcome of a response whose `Cache-Status` is already written
    /// (by [`apply`](Self::apply), or in a kept head).
    pub(crate) fn count(self, headers: &HeaderMap, counters: &Counters, name: &CacheName) {
        counters.events.count(self.event());
        crate::observe::scope::cache_outcome(self.event());
        // The span field is this cache's member's parameters, without its name; looked for
        // only when there is a span to record it on.
        let span = tracing::Span::current();
        if span.is_disabled() {
            return;
        }
        let prefix = &*name.prefix;
        let ours = headers
            .get_all(&CACHE_STATUS)
            .iter()
            .filter_map(|v| v.to_str().ok()?.strip_prefix(prefix))
            .next_back();
        if let Some(text) = ours {
            span.record("edge.cache", text);
        }
    }
}

impl Outcome {
    /// The `Cache-Status` parameters (RFC 9211 §2) of this outcome.
    fn cache_status(self) -> CacheStatus<'static> {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        match self {
            Self::Hit { ttl } => CacheStatus::hit().ttl(secs(ttl)),
            Self::StaleWhileRevalidate { stale_by } => CacheStatus::hit()
                .ttl(-secs(stale_by))
                .detail("stale-while-revalidate"),
            Self::StaleAccepted { stale_by } => {
                CacheStatus::hit().ttl(-secs(stale_by)).detail("max-stale")
            }
            Self::StaleIfError { stale_by, status } => {
                let hit = CacheStatus::hit().ttl(-secs(stale_by)).fwd("stale");
                match status {
                    Some(status) => hit.fwd_status(status.as_u16()),
                    None => hit,
                }
                .detail("stale-if-error")
            }
            Self::Collapsed { fwd } => CacheStatus::forward(fwd.as_str()).collapsed(),
            Self::Forwarded {
                fwd,
                not_modified,
                stored,
            } => {
                let mut status = CacheStatus::forward(fwd.as_str());
                if not_modified {
                    status = status.fwd_status(304);
                }
                match stored {
                    Stored::Yes => status.stored(),
                    Stored::Unclaimed => status,
                    Stored::No(why) => status.detail(why),
                }
            }
            Self::OnlyIfCached { fwd } => {
                CacheStatus::forward(fwd.as_str()).detail("only-if-cached")
            }
            Self::Bypass => CacheStatus::forward("bypass"),
        }
    }
}

/// The parameters of the `Cache-Status` member, after the cache's name.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cache_status().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc_9211_parameters() {
        let secs = Duration::from_secs;
        for (outcome, text, event) in [
            (Outcome::Hit { ttl: secs(59) }, "hit; ttl=59", "hit"),
            (
                Outcome::StaleWhileRevalidate { stale_by: secs(3) },
                "hit; ttl=-3; detail=stale-while-revalidate",
                "stale",
            ),
            (
                Outcome::StaleIfError {
                    stale_by: secs(5),
                    status: Some(StatusCode::BAD_GATEWAY),
                },
                "hit; ttl=-5; fwd=stale; fwd-status=502; detail=stale-if-error",
                "stale",
            ),
            (
                Outcome::StaleIfError {
                    stale_by: secs(5),
                    status: None,
                },
                "hit; ttl=-5; fwd=stale; detail=stale-if-error",
                "stale",
            ),
            (
                Outcome::Collapsed { fwd: Fwd::Miss },
                "fwd=miss; collapsed",
                "collapsed",
            ),
            (
                Outcome::Collapsed { fwd: Fwd::Stale },
                "fwd=stale; collapsed",
                "revalidate",
            ),
            (
                Outcome::Forwarded {
                    fwd: Fwd::Miss,
                    not_modified: false,
                    stored: Stored::Yes,
                },
                "fwd=miss; stored",
                "miss",
            ),
            (
                Outcome::Forwarded {
                    fwd: Fwd::Stale,
                    not_modified: true,
                    stored: Stored::Yes,
                },
                "fwd=stale; fwd-status=304; stored",
                "revalidate",
            ),
            (
                Outcome::Forwarded {
                    fwd: Fwd::Request,
                    not_modified: false,
                    stored: Stored::No("authorization"),
                },
                "fwd=request; detail=authorization",
                "forward",
            ),
            (
                Outcome::Forwarded {
                    fwd: Fwd::Miss,
                    not_modified: false,
                    stored: Stored::Unclaimed,
                },
                "fwd=miss",
                "miss",
            ),
            (
                Outcome::OnlyIfCached { fwd: Fwd::Miss },
                "fwd=miss; detail=only-if-cached",
                "miss",
            ),
            (
                Outcome::OnlyIfCached { fwd: Fwd::Stale },
                "fwd=stale; detail=only-if-cached",
                "miss",
            ),
            (
                Outcome::StaleAccepted { stale_by: secs(4) },
                "hit; ttl=-4; detail=max-stale",
                "stale",
            ),
            (Outcome::Bypass, "fwd=bypass", "bypass"),
        ] {
            assert_eq!(outcome.to_string(), text);
            assert_eq!(outcome.event(), event, "{text}");
            let mut headers = HeaderMap::new();
            outcome.apply(&mut headers, &Counters::default(), &CacheName::default());
            assert_eq!(
                headers["cache-status"],
                format!("tower-edge; {text}").as_str()
            );
            let mut named = HeaderMap::new();
            let name = CacheName::new("edge-proxy").unwrap();
            outcome.apply(&mut named, &Counters::default(), &name);
            assert_eq!(
                named["cache-status"],
                format!("edge-proxy; {text}").as_str()
            );
        }
    }
}
