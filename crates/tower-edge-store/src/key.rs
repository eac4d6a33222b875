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
// One string, `resource|variant`, and where the resource ends: a key is built on every lookup,
// and one allocation is half the cost of two. The derived comparisons take `split` too, so two
// keys are equal exactly when both parts are, even for parts given to `from_escaped` with a `|`
// in the resource (which `new` would have escaped).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    text: String,
    split: usize,
}

impl CacheKey {
    /// A key for `resource`, with no variant parts yet.
    pub fn new(resource: &str) -> Self {
        Self::from_string(resource.to_owned())
    }

    /// [`CacheKey::new`] taking ownership: no copy when `resource` needs no escaping (and, if
    /// it has the capacity, no allocation for the variant parts added after).
    pub fn from_string(resource: String) -> Self {
        let mut text = if needs_escape(&resource) {
            escape_resource(&resource)
        } else {
            resource
        };
        let split = text.len();
        text.push('|');
        Self { text, split }
    }

    /// Adds a `name=value` part to the variant.
    #[must_use]
    pub fn with_variant(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        let value = value.as_ref();
        // Room for the part unescaped, the usual case: one allocation, not a few growths.
        self.text.reserve(name.len() + value.len() + 2);
        if self.text.len() > self.split + 1 {
            self.text.push('&');
        }
        // A name is text already: when plain, as names usually are, it needs no check.
        if all_plain(name.as_bytes()) {
            self.text.push_str(name);
        } else {
            escape_part(&mut self.text, name.as_bytes());
        }
        self.text.push('=');
        escape_part(&mut self.text, value);
        self
    }

    /// A key from parts already escaped (as [`CacheKey::resource`] and [`CacheKey::variant`]
    /// return them), for keys that travel as text.
    pub fn from_escaped(resource: &str, variant: &str) -> Self {
        let mut text = String::with_capacity(resource.len() + 1 + variant.len());
        text.push_str(resource);
        text.push('|');
        text.push_str(variant);
        Self {
            text,
            split: resource.len(),
        }
    }

    /// The resource part, as escaped.
    pub fn resource(&self) -> &str {
        &self.text[..self.split]
    }

    /// The variant part, as escaped (empty when there is none).
    pub fn variant(&self) -> &str {
        &self.text[self.split + 1..]
    }

    /// The printed form, `resource|variant`, as [`Display`](fmt::Display) writes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The prefix every variant of `resource` starts with in a key's printed form: what a
    /// backend scans for in [`CacheStore::delete_resource`](crate::CacheStore::delete_resource).
    pub fn resource_prefix(resource: &str) -> String {
        let mut key = Self::new(resource).text;
        key.truncate(key.len() - 1);
        key.push('|');
        key
    }

    /// The escaped form of a resource prefix: what a backend scans for in
    /// [`CacheStore::delete_prefix`](crate::CacheStore::delete_prefix).
    pub fn escape_prefix(prefix: &str) -> String {
        let mut key = Self::new(prefix).text;
        key.truncate(key.len() - 1);
        key
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("resource", &self.resource())
            .field("variant", &self.variant())
            .finish()
    }
}

/// Whether a resource holds `|` or a control character. Bytes are checked without stopping at
/// the first match, which the compiler turns into wide compares; only text that is not ASCII
/// is walked again by characters, for the C1 controls (U+0080 to U+009F).
fn needs_escape(resource: &str) -> bool {
    let ascii_hit = resource
        .bytes()
        .fold(false, |hit, b| hit | (b == b'|') | (b < 0x20) | (b == 0x7f));
    ascii_hit || (!resource.is_ascii() && resource.chars().any(char::is_control))
}

fn escape_resource(resource: &str) -> String {
    let mut escaped = String::with_capacity(resource.len() + 8);
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
    escaped
}

/// A byte a variant part holds as it is: printable ASCII or a space, other than the separators
/// and `%`.
fn plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// [`plain`] by value: variant names and values are short, and checked on every lookup.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0u8;
    loop {
        table[b as usize] =
            b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'=' | b'|') || b == b' ';
        if b == u8::MAX {
            break table;
        }
        b += 1;
    }
};

/// Whether every byte is [`plain`].
fn all_plain(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| plain(b))
}

fn escape_part(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // The usual part (an encoding name, a header value) is plain whole: copied in one go.
    if all_plain(bytes)
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        out.push_str(text);
        return;
    }
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
    fn a_byte_is_plain_when_it_is_printable_ascii_or_a_space_and_no_separator() {
        for b in 0..=u8::MAX {
            let printable = (0x21..=0x7e).contains(&b) || b == b' ';
            let separator = b"%&=|".contains(&b);
            assert_eq!(plain(b), printable && !separator, "byte {b:#04x}");
            let part = CacheKey::new("r").with_variant("n", [b]);
            assert_eq!(part.variant().len() == 3, plain(b), "byte {b:#04x}");
        }
    }

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
    fn the_printed_form_is_the_parts_joined() {
        let key = CacheKey::new("GET http://a/x|y").with_variant("enc", "br");
        assert_eq!(key.as_str(), "GET http://a/x%7Cy|enc=br");
        assert_eq!(key.to_string(), key.as_str());
        assert_eq!(
            (key.resource(), key.variant()),
            ("GET http://a/x%7Cy", "enc=br")
        );
        assert_eq!(CacheKey::from_escaped(key.resource(), key.variant()), key);
        assert_eq!(CacheKey::new("r").variant(), "");
        assert_eq!(CacheKey::new("r").as_str(), "r|");
        assert_eq!(CacheKey::resource_prefix("a|b"), "a%7Cb|");
        assert_eq!(CacheKey::escape_prefix("a|b"), "a%7Cb");
        assert_eq!(
            format!("{:?}", CacheKey::new("r").with_variant("a", "1")),
            r#"CacheKey { resource: "r", variant: "a=1" }"#
        );
        // Where the resource ends is part of the key, even with a `|` in an escaped resource.
        assert_ne!(
            CacheKey::from_escaped("a|b", ""),
            CacheKey::from_escaped("a", "b")
        );
        assert_eq!(CacheKey::from_escaped("a|b", "").resource(), "a|b");
        // Equal parts, equal keys, however they were built.
        assert_eq!(
            CacheKey::new("r")
                .with_variant("a", "1")
                .with_variant("b", "2"),
            CacheKey::from_escaped("r", "a=1&b=2")
        );
    }

    #[test]
    fn every_control_character_is_escaped_in_a_resource() {
        // C0, DEL and C1 (U+0085 is two bytes in UTF-8), and `|` anywhere.
        for (raw, escaped) in [
            ("a\u{0}b", "a%00b"),
            ("a\u{1f}b", "a%1Fb"),
            ("a\u{7f}b", "a%7Fb"),
            ("a\u{85}b", "a%C2%85b"),
            ("|", "%7C"),
            ("é|", "é%7C"),
        ] {
            assert_eq!(CacheKey::new(raw).resource(), escaped, "{raw:?}");
        }
        // Other text outside ASCII is kept as it is.
        assert_eq!(CacheKey::new("/café").resource(), "/café");
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
