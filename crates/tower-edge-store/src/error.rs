use std::{error::Error as StdError, fmt};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a store operation failed.
///
/// The response cache treats every store error as a miss: it is counted and logged, and the
/// request goes on to the inner service. The questions below let a caller tell the kinds apart.
pub struct StoreError {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    source: Option<BoxError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Timeout,
    Unavailable,
    Corrupt,
    Backend,
    Unsupported,
}

impl StoreError {
    fn new(kind: Kind, source: Option<BoxError>) -> Self {
        Self {
            inner: Box::new(Inner { kind, source }),
        }
    }

    /// The operation did not finish within its time limit.
    pub fn timeout() -> Self {
        Self::new(Kind::Timeout, None)
    }

    /// The backend cannot be reached (connection refused, pool exhausted, circuit open).
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::new(Kind::Unavailable, Some(source.into()))
    }

    /// A stored value could not be decoded.
    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        Self::new(Kind::Corrupt, Some(source.into()))
    }

    /// Any other failure reported by the backend.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Self::new(Kind::Backend, Some(source.into()))
    }

    /// The store does not offer this operation (`what` names it), such as counters on a
    /// third-party backend that has not implemented them.
    pub fn unsupported(what: &'static str) -> Self {
        Self::new(Kind::Unsupported, Some(what.into()))
    }

    /// Whether the store does not offer the operation.
    pub fn is_unsupported(&self) -> bool {
        self.inner.kind == Kind::Unsupported
    }

    /// Whether the operation timed out.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == Kind::Timeout
    }

    /// Whether the backend could not be reached.
    pub fn is_unavailable(&self) -> bool {
        self.inner.kind == Kind::Unavailable
    }

    /// Whether a stored value was corrupt or of an unknown version.
    pub fn is_corrupt(&self) -> bool {
        self.inner.kind == Kind::Corrupt
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StoreError");
        d.field("kind", &self.inner.kind);
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.inner.kind {
            Kind::Timeout => "cache store operation timed out",
            Kind::Unavailable => "cache store unavailable",
            Kind::Corrupt => "corrupt cache entry",
            Kind::Backend => "cache store error",
            Kind::Unsupported => "operation not supported by this cache store",
        })
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| &**e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_answer_their_questions_and_chain_the_source() {
        let e = StoreError::unavailable("connection refused");
        assert!(e.is_unavailable() && !e.is_timeout() && !e.is_corrupt());
        assert_eq!(e.to_string(), "cache store unavailable");
        assert_eq!(e.source().unwrap().to_string(), "connection refused");
        assert!(StoreError::timeout().is_timeout());
        assert!(StoreError::timeout().source().is_none());
        assert!(StoreError::corrupt("bad").is_corrupt());
        let e = StoreError::unsupported("incr");
        assert!(e.is_unsupported() && !e.is_corrupt());
        assert_eq!(e.source().unwrap().to_string(), "incr");
    }
}
