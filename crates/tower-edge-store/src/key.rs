use std::fmt::{self, Write as _};

/// The key of one stored response: a *resource* (what invalidation by URL or prefix addresses)
/// and a *variant* (the negotiated encoding, the request's values of the headers named in `Vary`,
/// and whatever a user key function adds).
///
/// The key is readable, so an operator can find it in `redis-cli`:
///
/// ```
/// use tower_edge_store::CacheKey;
///
/// let key = CacheKey::new("GET https://example.com/api/items?page=2")
///     .with_variant("enc", "br")
///     .with_variant("accept-language", "fr");
/// assert_eq!(key.to_string(), "GET https://example.com/api/items?page=2|enc=br&accept-language=fr");
/// ```
///
/// `|` in the resource and `%`, `&`, `=`, `|` and non-printable bytes in variant parts are
/// percent-encoded, so two different keys never print the same.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    resource: String,
    variant: String,
}

impl CacheKey {
    /// A key for `resource`, with no variant parts yet.
    pub fn new(resource: &str) -> Self {
        Self::from_string(resource.to_owned())
    }

    /// [`CacheKey::new`] taking ownership: no copy when `resource` needs no escaping.
    pub fn from_string(resource: String) -> Self {
        if !resource.contains(|c: char| c == '|' || c.is_control()) {
            return Self {
                resource,
                variant: String::new(),
            };
        }
        let mut escaped = String::with_capacity(resource.len());
        for c in resource.chars() {
            match c {
                '|' => escaped.push_str("%7C"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(escaped, "%{b:02X}");
                    }
                }
                c => escaped.push(c),
            }
        }
        Self {
            resource: escaped,
            variant: String::new(),
        }
    }

    /// Adds a `name=value` part to the variant.
    #[must_use]
    pub fn with_variant(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        let value = value.as_ref();
        // Room for the part unescaped, the usual case: one allocation, not a few growths.
        self.variant.reserve(name.len() + value.len() + 2);
        if !self.variant.is_empty() {
            self.variant.push('&');
        }
        escape_part(&mut self.variant, name.as_bytes());
        self.variant.push('=');
        escape_part(&mut self.variant, value);
        self
    }

    /// A key from parts already escaped (as [`CacheKey::resource`] and [`CacheKey::variant`]
    /// return them), for keys that travel as text.
    pub fn from_escaped(resource: &str, variant: &str) -> Self {
        Self {
            resource: resource.to_owned(),
            variant: variant.to_owned(),
        }
    }

    /// The resource part, as escaped.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The variant part, as escaped (empty when there is none).
    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// The prefix every variant of `resource` starts with in a key's printed form: what a
    /// backend scans for in [`CacheStore::delete_resource`](crate::CacheStore::delete_resource).
    pub fn resource_prefix(resource: &str) -> String {
        let mut key = Self::new(resource).resource;
        key.push('|');
        key
    }

    /// The escaped form of a resource prefix: what a backend scans for in
    /// [`CacheStore::delete_prefix`](crate::CacheStore::delete_prefix).
    pub fn escape_prefix(prefix: &str) -> String {
        Self::new(prefix).resource
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.resource, self.variant)
    }
}

fn escape_part(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let plain =
        |b: u8| b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'=' | b'|') || b == b' ';
    let mut rest = bytes;
    while !rest.is_empty() {
        // Runs of plain bytes are copied whole; they are ASCII, so always a `str`.
        let run = rest.iter().position(|&b| !plain(b)).unwrap_or(rest.len());
        if let Ok(text) = std::str::from_utf8(&rest[..run]) {
            out.push_str(text);
        }
        let Some((&b, tail)) = rest[run..].split_first() else {
            break;
        };
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn separators_inside_parts_are_escaped() {
        let a = CacheKey::new("r").with_variant("a", "1&b=2");
        let b = CacheKey::new("r")
            .with_variant("a", "1")
            .with_variant("b", "2");
        assert_ne!(a.to_string(), b.to_string());
        assert_eq!(a.variant(), "a=1%26b%3D2");
        assert_eq!(CacheKey::new("a|b").resource(), "a%7Cb");
        assert_eq!(CacheKey::new("a\nb").resource(), "a%0Ab");
    }

    #[test]
    fn binary_header_values_are_percent_encoded() {
        let key = CacheKey::new("r").with_variant("x", [0xff, b'%', b' ']);
        assert_eq!(key.variant(), "x=%FF%25 ");
    }

    proptest! {
        #[test]
        fn different_variants_print_differently(
            a in proptest::collection::vec((".{0,8}", proptest::collection::vec(any::<u8>(), 0..8)), 0..4),
            b in proptest::collection::vec((".{0,8}", proptest::collection::vec(any::<u8>(), 0..8)), 0..4),
        ) {
            let build = |parts: &Vec<(String, Vec<u8>)>| {
                parts.iter().fold(CacheKey::new("r"), |k, (n, v)| k.with_variant(n, v))
            };
            let (ka, kb) = (build(&a), build(&b));
            if a != b && !a.is_empty() && !b.is_empty() {
                prop_assert_ne!(ka.to_string(), kb.to_string());
            }
            prop_assert!(!ka.to_string()[2..].contains('|'));
        }
    }
}
