//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3).
//!
//! [`negotiate`] picks the content coding a response should use from the request's
//! `Accept-Encoding` and the server's order of preference. It is a pure function, so the response
//! cache can key stored variants on its answer rather than on the raw header.
//!
//! ```
//! use http::{HeaderMap, header};
//! use tower_edge::http::accept_encoding::{Coding, negotiate};
//!
//! let prefer = [Coding::Br, Coding::Zstd, Coding::Gzip];
//! let mut h = HeaderMap::new();
//! h.insert(header::ACCEPT_ENCODING, "gzip, deflate, br;q=0.9".parse().unwrap());
//! assert_eq!(negotiate(&h, &prefer), Ok(Coding::Gzip));
//! h.insert(header::ACCEPT_ENCODING, "GZIP , br".parse().unwrap());
//! assert_eq!(negotiate(&h, &prefer), Ok(Coding::Br)); // a tie goes to the server's order
//! h.insert(header::ACCEPT_ENCODING, "identity;q=0".parse().unwrap());
//! assert!(negotiate(&h, &prefer).is_err()); // nothing acceptable
//! ```
//!
//! Rules, in the RFC's terms: a coding's weight is its own `q`, else that of `*`, else 0 (not
//! acceptable). `identity` is acceptable unless excluded by `identity;q=0`, or by `*;q=0` without
//! an `identity` member; when the client does not weigh it, it ranks below every acceptable
//! coding. Without an `Accept-Encoding` field the answer is `identity` (the RFC allows any
//! coding, but a client that says nothing may not decode any). Members with a malformed weight
//! are ignored; unknown codings are ignored; names are case-insensitive (`x-gzip` is `gzip`).

use http::{HeaderMap, header};

/// A content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coding {
    /// No coding.
    Identity,
    /// `gzip` (RFC 1952).
    Gzip,
    /// `deflate` (zlib, RFC 1950).
    Deflate,
    /// `br` (RFC 7932).
    Br,
    /// `zstd` (RFC 8878).
    Zstd,
}

impl Coding {
    /// The token, as in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Br => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The coding a token names, case-insensitively.
    pub fn from_token(token: &str) -> Option<Self> {
        let t = token.trim();
        [
            ("identity", Self::Identity),
            ("gzip", Self::Gzip),
            ("x-gzip", Self::Gzip),
            ("deflate", Self::Deflate),
            ("br", Self::Br),
            ("zstd", Self::Zstd),
        ]
        .into_iter()
        .find(|(name, _)| t.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// No coding the server offers is acceptable, and `identity` is excluded: the case for
/// `406 Not Acceptable` (or for sending identity anyway, which §12.5.3 also allows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAcceptable;

/// The weights of one request's `Accept-Encoding`, in thousandths (`q=0.5` is 500).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    present: bool,
    explicit: [Option<u16>; 5],
    star: Option<u16>,
}

impl AcceptEncoding {
    /// Reads every `Accept-Encoding` field line.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut out = Self::default();
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            out.present = true;
            // Field values are ASCII; other bytes can only make a member unreadable.
            let Ok(value) = value.to_str() else { continue };
            for member in value.split(',') {
                let mut parts = member.split(';');
                let name = parts.next().unwrap_or("").trim();
                if name.is_empty() {
                    continue;
                }
                let mut weight = Some(1000);
                for param in parts {
                    let Some((key, v)) = param.split_once('=') else {
                        weight = None;
                        break;
                    };
                    if key.trim().eq_ignore_ascii_case("q") {
                        weight = parse_q(v.trim());
                    }
                }
                let Some(weight) = weight else { continue };
                if name == "*" {
                    out.star = Some(weight);
                } else if let Some(coding) = Coding::from_token(name) {
                    out.explicit[coding.index()] = Some(weight);
                }
            }
        }
        out
    }

    /// The weight of `coding` (for `identity`, 1 when acceptable by default).
    pub fn weight(&self, coding: Coding) -> u16 {
        if coding == Coding::Identity {
            return match (self.explicit[Coding::Identity.index()], self.star) {
                (Some(w), _) => w,
                (None, Some(0)) => 0,
                (None, _) => 1,
            };
        }
        self.explicit[coding.index()].or(self.star).unwrap_or(0)
    }

    /// The coding to use among `offered` (most preferred first).
    pub fn negotiate(&self, offered: &[Coding]) -> Result<Coding, NotAcceptable> {
        if !self.present {
            return Ok(Coding::Identity);
        }
        let mut best: Option<(Coding, u16)> = None;
        for &coding in offered.iter().filter(|c| **c != Coding::Identity) {
            let w = self.weight(coding);
            if w > 0 && best.is_none_or(|(_, b)| w > b) {
                best = Some((coding, w));
            }
        }
        let identity = self.weight(Coding::Identity);
        match best {
            // An explicitly preferred identity wins over lower-weighted codings.
            Some((coding, w)) if w >= identity => Ok(coding),
            _ if identity > 0 => Ok(Coding::Identity),
            Some((coding, _)) => Ok(coding),
            None => Err(NotAcceptable),
        }
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// [`AcceptEncoding::negotiate`] on a request's headers.
pub fn negotiate(headers: &HeaderMap, offered: &[Coding]) -> Result<Coding, NotAcceptable> {
    AcceptEncoding::from_headers(headers).negotiate(offered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Coding; 4] = [Coding::Br, Coding::Zstd, Coding::Gzip, Coding::Deflate];

    fn pick(value: Option<&[u8]>) -> Result<Coding, NotAcceptable> {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(
                header::ACCEPT_ENCODING,
                http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        negotiate(&h, &ALL)
    }

    #[test]
    fn negotiation_table() {
        use Coding::*;
        let ok = |c| Ok(c);
        let table: &[(Option<&str>, Result<Coding, NotAcceptable>)] = &[
            (None, ok(Identity)),
            (Some(""), ok(Identity)),
            (Some("gzip"), ok(Gzip)),
            (Some("GZIP"), ok(Gzip)),
            (Some("x-gzip"), ok(Gzip)),
            (Some("gzip, deflate, br"), ok(Br)),
            (Some("gzip, deflate, br, zstd"), ok(Br)),
            (Some("zstd, gzip"), ok(Zstd)),
            (Some("deflate"), ok(Deflate)),
            (Some("br;q=0.5, gzip;q=0.8"), ok(Gzip)),
            (Some("br;q=1.0, gzip;q=1"), ok(Br)),
            (Some("br;q=0, gzip"), ok(Gzip)),
            (Some("br;q=0"), ok(Identity)),
            (Some("*"), ok(Br)),
            (Some("*;q=0.5, gzip"), ok(Gzip)),
            (Some("*;q=0"), Err(NotAcceptable)),
            (Some("*;q=0, identity"), ok(Identity)),
            (Some("*;q=0, gzip"), ok(Gzip)),
            (Some("identity;q=0"), Err(NotAcceptable)),
            (Some("identity;q=0, gzip"), ok(Gzip)),
            (Some("identity"), ok(Identity)),
            (Some("identity, gzip;q=0.5"), ok(Identity)),
            (Some("identity;q=0.5, gzip"), ok(Gzip)),
            (Some("compress, gzip"), ok(Gzip)),
            (Some("compress"), ok(Identity)),
            (Some("unknown;q=1, *;q=0.1"), ok(Br)),
            (Some(" ,, gzip ,"), ok(Gzip)),
            (Some("gzip;q=2"), ok(Identity)),
            (Some("gzip;q=-1"), ok(Identity)),
            (Some("gzip;q=0.0001"), ok(Identity)),
            (Some("gzip;q=abc, br"), ok(Br)),
            (Some("gzip;q"), ok(Identity)),
            (Some("gzip ; q = 0.5 , br;q=0.4"), ok(Gzip)),
            (Some("br;Q=0.9, zstd;q=0.9"), ok(Br)),
            (Some("zstd;q=0.9, br;q=0.91"), ok(Br)),
            (Some(";q=1"), ok(Identity)),
            (Some("*;q=1.000"), ok(Br)),
            (Some("*;q=1.0001"), ok(Identity)),
            (Some("gzip;level=9"), ok(Gzip)),
        ];
        for (value, expected) in table {
            assert_eq!(pick(value.map(str::as_bytes)), *expected, "{value:?}");
        }
        assert!(table.len() >= 30);
    }

    #[test]
    fn non_ascii_bytes_make_a_field_unreadable_not_a_panic() {
        assert_eq!(pick(Some(b"gzip, \xffbr")), Ok(Coding::Identity));
    }

    #[test]
    fn the_servers_order_breaks_ties() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, "gzip, br".parse().unwrap());
        assert_eq!(negotiate(&h, &[Coding::Gzip, Coding::Br]), Ok(Coding::Gzip));
        assert_eq!(negotiate(&h, &[Coding::Zstd]), Ok(Coding::Identity));
    }

    proptest! {
        #[test]
        fn never_panics_and_answers_within_the_offer(value in "[ -~]{0,60}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                h.insert(header::ACCEPT_ENCODING, v);
            }
            if let Ok(c) = negotiate(&h, &ALL) {
                prop_assert!(c == Coding::Identity || ALL.contains(&c));
            }
        }
    }
}
