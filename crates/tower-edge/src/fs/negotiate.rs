//! Choosing a precompressed sibling from `Accept-Encoding` (RFC 9110 §12.5.3).
//!
//! The weights come from [`crate::http::accept_encoding`]; this module only maps them onto the
//! siblings that exist on disk.

use http::HeaderMap;

use crate::http::accept_encoding::{AcceptEncoding, Coding, NotAcceptable};

/// A content coding this server may find a precompressed sibling for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Encoding {
    Brotli,
    Zstd,
    Gzip,
}

impl Encoding {
    /// In order of preference when the client weighs them equally: smallest output first.
    pub(super) const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub(super) fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of the sibling.
    pub(super) fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }
}

/// A request's `Accept-Encoding`, read once through [`crate::http::accept_encoding`], the
/// crate's one reading of RFC 9110 §12.5.3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Accepted(AcceptEncoding);

impl Encoding {
    fn coding(self) -> Coding {
        match self {
            Encoding::Brotli => Coding::Br,
            Encoding::Zstd => Coding::Zstd,
            Encoding::Gzip => Coding::Gzip,
        }
    }
}

impl Accepted {
    pub(super) fn from_headers(headers: &HeaderMap) -> Self {
        Self(AcceptEncoding::from_headers(headers))
    }

    /// The coding to send among `available` (those whose sibling exists, most preferred
    /// first), or `None` for the identity file. A precompressed file is smaller and costs
    /// nothing to produce: it is sent unless the client weighs identity strictly higher.
    pub(super) fn choose(&self, available: impl Iterator<Item = Encoding>) -> Option<Encoding> {
        let available: Vec<Encoding> = available.collect();
        let offered: Vec<Coding> = available.iter().map(|e| e.coding()).collect();
        match self.0.negotiate(&offered) {
            Ok(coding) => available.into_iter().find(|e| e.coding() == coding),
            // Identity excluded and no sibling acceptable: the identity file anyway (§12.5.3
            // allows it), rather than a 406 for a static file.
            Err(NotAcceptable) => None,
        }
    }

    /// Whether the client accepts `enc` at all.
    pub(super) fn accepts(&self, enc: Encoding) -> bool {
        self.0.weight(enc.coding()) > 0
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, header};

    use super::*;

    fn accepted(value: &str) -> Accepted {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        Accepted::from_headers(&h)
    }

    fn choose(value: &str, available: &[Encoding]) -> Option<Encoding> {
        accepted(value).choose(available.iter().copied())
    }

    use Encoding::{Brotli, Gzip, Zstd};

    #[test]
    fn prefers_brotli_then_zstd_then_gzip_at_equal_weight() {
        assert_eq!(choose("gzip, br, zstd", &Encoding::ALL), Some(Brotli));
        assert_eq!(choose("gzip, zstd", &Encoding::ALL), Some(Zstd));
        assert_eq!(choose("gzip, br", &[Gzip]), Some(Gzip));
    }

    #[test]
    fn follows_q_values() {
        assert_eq!(choose("br;q=0.5, gzip;q=0.8", &Encoding::ALL), Some(Gzip));
        assert_eq!(choose("br;q=0, gzip", &[Brotli]), None);
        assert_eq!(choose("*;q=0.3, br;q=0.2", &Encoding::ALL), Some(Zstd));
        assert_eq!(choose("identity;q=1, br;q=0.5", &Encoding::ALL), None);
    }

    #[test]
    fn sends_identity_when_nothing_matches() {
        assert_eq!(choose("", &Encoding::ALL), None);
        assert_eq!(choose("deflate", &Encoding::ALL), None);
        assert_eq!(choose("br", &[Gzip]), None);
        assert_eq!(HeaderMap::new().len(), 0);
        assert_eq!(
            Accepted::from_headers(&HeaderMap::new()).choose(Encoding::ALL.into_iter()),
            None
        );
    }

    #[test]
    fn ignores_malformed_weights() {
        assert_eq!(choose("br;q=2, gzip;q=0.1", &Encoding::ALL), Some(Gzip));
        assert_eq!(choose("br;q=0.0001", &Encoding::ALL), None);
        assert_eq!(choose("BR;Q=1.000", &Encoding::ALL), Some(Brotli));
        assert!(accepted("x-gzip").accepts(Gzip));
    }
}
