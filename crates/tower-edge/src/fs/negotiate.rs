//! Choosing a precompressed sibling from `Accept-Encoding` (RFC 9110 §12.5.3).
//!
//! A small private reading of the header, enough to pick among the files that exist; the
//! compression layer's negotiation lives elsewhere and may replace it.

use http::{HeaderMap, header};

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

/// The client's weights for each coding, in thousandths (`q=0.5` is 500).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Accepted {
    weights: [u16; 3],
    // None when the client did not weigh identity (it is then acceptable, below any coding).
    identity: Option<u16>,
}

impl Accepted {
    pub(super) fn from_headers(headers: &HeaderMap) -> Self {
        let mut explicit: [Option<u16>; 3] = [None; 3];
        let mut identity = None;
        let mut star = None;
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for member in value.split(',') {
                let mut params = member.split(';');
                let coding = params.next().unwrap_or("").trim();
                if coding.is_empty() {
                    continue;
                }
                let mut q = Some(1000);
                for param in params {
                    if let Some((name, v)) = param.split_once('=') {
                        if name.trim().eq_ignore_ascii_case("q") {
                            q = parse_q(v.trim());
                        }
                    }
                }
                // A malformed weight makes the member meaningless: skip it.
                let Some(q) = q else { continue };
                let slot = match coding.to_ascii_lowercase().as_str() {
                    "br" => &mut explicit[0],
                    "zstd" => &mut explicit[1],
                    "gzip" | "x-gzip" => &mut explicit[2],
                    "identity" => &mut identity,
                    "*" => &mut star,
                    _ => continue,
                };
                *slot = Some(q);
            }
        }
        // §12.5.3: "*" matches any coding not listed; identity is acceptable unless excluded.
        let weights = explicit.map(|w| w.or(star).unwrap_or(0));
        let identity = identity.or(star.filter(|&q| q == 0));
        Self { weights, identity }
    }

    /// The coding to send among `available` (those whose sibling exists), or `None` for the
    /// identity file.
    pub(super) fn choose(&self, available: impl Iterator<Item = Encoding>) -> Option<Encoding> {
        let mut best: Option<(u16, Encoding)> = None;
        for enc in available {
            let w = self.weight(enc);
            // Strictly greater keeps the earlier (preferred) coding on ties.
            if w > 0 && best.is_none_or(|(bw, _)| w > bw) {
                best = Some((w, enc));
            }
        }
        // A precompressed file is smaller and costs nothing to produce: send it unless the
        // client weighs identity strictly higher.
        best.filter(|&(w, _)| self.identity.is_none_or(|i| w >= i))
            .map(|(_, e)| e)
    }

    /// Whether the client accepts `enc` at all.
    pub(super) fn accepts(&self, enc: Encoding) -> bool {
        self.weight(enc) > 0
    }

    fn weight(&self, enc: Encoding) -> u16 {
        match enc {
            Encoding::Brotli => self.weights[0],
            Encoding::Zstd => self.weights[1],
            Encoding::Gzip => self.weights[2],
        }
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac.bytes().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
        * 10u16.pow(3 - frac.len() as u32);
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

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
