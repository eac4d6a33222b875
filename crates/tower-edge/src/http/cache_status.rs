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

use http::HeaderName;

/// The field's name, made once: a name made from text is checked on every use, and the cache
/// writes and reads this field on every hit.
#[allow(dead_code)] // unused when no layer feature is on
pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

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

impl CacheStatus<'_> {
    /// Writes the parameters, in RFC 9211's order, to `out`: the one place that decides what
    /// the field says, for [`Display`](fmt::Display) and for the header value alike.
    fn write_params<W: Params>(&self, out: &mut W) -> fmt::Result {
        let mut sep = "";
        let mut next = |out: &mut W, name: &str| {
            out.text(sep)?;
            sep = "; ";
            out.text(name)
        };
        if self.hit {
            next(out, "hit")?;
        }
        if let Some(ttl) = self.ttl {
            next(out, "ttl=")?;
            out.int(ttl)?;
        }
        if let Some(fwd) = self.fwd.filter(|t| is_token(t)) {
            next(out, "fwd=")?;
            out.text(fwd)?;
        }
        if let Some(status) = self.fwd_status {
            next(out, "fwd-status=")?;
            out.int(i64::from(status))?;
        }
        if self.stored {
            next(out, "stored")?;
        }
        if self.collapsed {
            next(out, "collapsed")?;
        }
        if let Some(detail) = self.detail.filter(|t| is_token(t)) {
            next(out, "detail=")?;
            out.text(detail)?;
        }
        Ok(())
    }

    /// The field's value for a cache named `prefix` (its name and `"; "`), written without the
    /// formatting machinery: this runs on every hit. `None` if the name makes it invalid.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))] // the cache is what writes it
    pub(crate) fn header_value(&self, prefix: &str) -> Option<http::HeaderValue> {
        let mut value = crate::http::value::ValueBuf::new();
        value.text(prefix);
        self.write_params(&mut value).ok()?;
        value.finish()
    }
}

/// Where [`CacheStatus::write_params`] writes.
trait Params {
    fn text(&mut self, text: &str) -> fmt::Result;
    fn int(&mut self, n: i64) -> fmt::Result;
}

impl Params for fmt::Formatter<'_> {
    fn text(&mut self, text: &str) -> fmt::Result {
        self.write_str(text)
    }

    fn int(&mut self, n: i64) -> fmt::Result {
        // Not `Display::fmt(&n, self)`, which would apply the caller's flags (`{:+}`, widths)
        // to the number alone.
        write!(self, "{n}")
    }
}

impl Params for crate::http::value::ValueBuf {
    fn text(&mut self, text: &str) -> fmt::Result {
        Self::text(self, text);
        Ok(())
    }

    fn int(&mut self, n: i64) -> fmt::Result {
        Self::int(self, n);
        Ok(())
    }
}

impl fmt::Display for CacheStatus<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_params(f)
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

    #[test]
    fn the_header_value_says_what_display_says_after_the_caches_name() {
        let statuses = [
            CacheStatus::hit().ttl(0),
            CacheStatus::hit().ttl(3599),
            CacheStatus::hit()
                .ttl(i64::MIN)
                .fwd("stale")
                .fwd_status(503),
            CacheStatus::forward("miss").stored().detail("x"),
            CacheStatus::forward("bypass"),
        ];
        for status in statuses {
            let value = status.header_value("tower-edge; ").unwrap();
            assert_eq!(value, format!("tower-edge; {status}").as_str());
        }
        assert!(CacheStatus::hit().header_value("bad\r\n; ").is_none());
        // Format flags do not reach the numbers.
        assert_eq!(format!("{:+}", CacheStatus::hit().ttl(5)), "hit; ttl=5");
    }
}
