//! `Cache-Status` (RFC 9211): one cache's member of the field, written from typed parameters.
//!
//! ```
//! use tower_edge::http::cache_status::CacheStatus;
//!
//! let hit = CacheStatus::hit().ttl(-3).detail("stale-while-revalidate");
//! assert_eq!(hit.to_string(), "hit; ttl=-3; detail=stale-while-revalidate");
//! let miss = CacheStatus::forward("miss").stored();
//! assert_eq!(miss.to_string(), "fwd=miss; stored");
//! assert_eq!(
//!     CacheStatus::forward("stale").fwd_status(304).stored().to_string(),
//!     "fwd=stale; fwd-status=304; stored"
//! );
//! ```

use std::fmt;

/// The parameters of one cache's `Cache-Status` member (RFC 9211 §2), after the cache's name.
///
/// They are written in one order: `hit`, `ttl`, `fwd`, `fwd-status`, `stored`, `collapsed`,
/// `detail`. A `detail` that is not a token is left out rather than quoted wrongly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStatus<'a> {
    hit: bool,
    ttl: Option<i64>,
    fwd: Option<&'a str>,
    fwd_status: Option<u16>,
    stored: bool,
    collapsed: bool,
    detail: Option<&'a str>,
}

impl<'a> CacheStatus<'a> {
    /// §2.1 `hit`: the response was answered from the cache.
    pub fn hit() -> Self {
        Self {
            hit: true,
            ..Self::default()
        }
    }

    /// §2.2 `fwd`: the request went on, and why (`miss`, `stale`, `request`, `bypass`, …).
    pub fn forward(why: &'a str) -> Self {
        Self {
            fwd: Some(why),
            ..Self::default()
        }
    }

    /// §2.2 `fwd` on a hit: a stale response served when the request that went on failed.
    #[must_use]
    pub fn fwd(mut self, why: &'a str) -> Self {
        self.fwd = Some(why);
        self
    }

    /// §2.3 `fwd-status`: the status the next hop answered with.
    #[must_use]
    pub fn fwd_status(mut self, status: u16) -> Self {
        self.fwd_status = Some(status);
        self
    }

    /// §2.4 `ttl`: seconds of freshness left, negative when stale.
    #[must_use]
    pub fn ttl(mut self, seconds: i64) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// §2.5 `stored`: the cache kept the response.
    #[must_use]
    pub fn stored(mut self) -> Self {
        self.stored = true;
        self
    }

    /// §2.6 `collapsed`: the request waited for another one's answer.
    #[must_use]
    pub fn collapsed(mut self) -> Self {
        self.collapsed = true;
        self
    }

    /// §2.8 `detail`: the cache's own reason, a token.
    #[must_use]
    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
}

impl fmt::Display for CacheStatus<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        let mut param = |f: &mut fmt::Formatter<'_>, text: fmt::Arguments<'_>| {
            let result = write!(f, "{sep}{text}");
            sep = "; ";
            result
        };
        if self.hit {
            param(f, format_args!("hit"))?;
        }
        if let Some(ttl) = self.ttl {
            param(f, format_args!("ttl={ttl}"))?;
        }
        if let Some(fwd) = self.fwd.filter(|t| is_token(t)) {
            param(f, format_args!("fwd={fwd}"))?;
        }
        if let Some(status) = self.fwd_status {
            param(f, format_args!("fwd-status={status}"))?;
        }
        if self.stored {
            param(f, format_args!("stored"))?;
        }
        if self.collapsed {
            param(f, format_args!("collapsed"))?;
        }
        if let Some(detail) = self.detail.filter(|t| is_token(t)) {
            param(f, format_args!("detail={detail}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_parameters_in_one_order_and_only_tokens() {
        let all = CacheStatus::hit()
            .ttl(-5)
            .fwd("stale")
            .fwd_status(502)
            .stored()
            .collapsed()
            .detail("stale-if-error");
        assert_eq!(
            all.to_string(),
            "hit; ttl=-5; fwd=stale; fwd-status=502; stored; collapsed; detail=stale-if-error"
        );
        assert_eq!(
            CacheStatus::forward("miss").collapsed().to_string(),
            "fwd=miss; collapsed"
        );
        assert_eq!(CacheStatus::hit().detail("not a token").to_string(), "hit");
        assert_eq!(CacheStatus::forward("").to_string(), "");
    }
}
