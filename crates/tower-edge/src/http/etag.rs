//! Entity tags: parsing, formatting and comparison (RFC 9110 §8.8.3).
//!
//! ```
//! use tower_edge::http::etag::{EntityTag, EntityTagList};
//!
//! let current: EntityTag = "\"v2\"".parse().unwrap();
//! let sent = EntityTagList::parse_bytes(b"W/\"v1\", W/\"v2\"");
//! assert!(sent.matches_weak(&current));
//! assert!(!sent.matches_strong(&current));
//! ```

use std::{fmt, str::FromStr};

use http::HeaderValue;

/// An entity tag: an opaque validator, strong or weak (RFC 9110 §8.8.3).
///
/// Equality (`==`) is exact: same weakness, same opaque bytes. Use [`EntityTag::strong_eq`] and
/// [`EntityTag::weak_eq`] for the two comparison functions of RFC 9110 §8.8.3.2.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    // The whole field value (`"xyz"` or `W/"xyz"`), kept ready to send: turning an EntityTag into
    // a header is a reference-count bump, not a format and an allocation.
    value: HeaderValue,
}

/// The error returned when a value is not a valid entity tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidEntityTag {
    _priv: (),
}

impl fmt::Display for InvalidEntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid entity tag")
    }
}

impl std::error::Error for InvalidEntityTag {}

impl EntityTag {
    /// A strong tag with the given opaque content (without quotes).
    ///
    /// Fails when `tag` holds a character an entity tag cannot carry (a quote, a space, a control
    /// character).
    pub fn strong(tag: &str) -> Result<Self, InvalidEntityTag> {
        Self::new(false, tag.as_bytes())
    }

    /// A weak tag with the given opaque content (without quotes).
    ///
    /// Fails when `tag` holds a character an entity tag cannot carry.
    pub fn weak(tag: &str) -> Result<Self, InvalidEntityTag> {
        Self::new(true, tag.as_bytes())
    }

    fn new(weak: bool, opaque: &[u8]) -> Result<Self, InvalidEntityTag> {
        if opaque.iter().all(|&b| is_etagc(b)) {
            Ok(Self::from_valid(weak, opaque))
        } else {
            Err(InvalidEntityTag { _priv: () })
        }
    }

    // `opaque` must hold only etagc bytes.
    pub(crate) fn from_valid(weak: bool, opaque: &[u8]) -> Self {
        // Exactly the length: `Bytes` takes a full `Vec` as it is, and allocates again for one
        // with room to spare.
        let mut buf = Vec::with_capacity(opaque.len() + 2 + if weak { 2 } else { 0 });
        if weak {
            buf.extend_from_slice(b"W/");
        }
        buf.push(b'"');
        buf.extend_from_slice(opaque);
        buf.push(b'"');
        let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(buf))
            .expect("etagc bytes are valid header value bytes");
        Self { weak, value }
    }

    /// Parses one entity tag, such as an `ETag` field value. Surrounding whitespace is allowed.
    pub fn parse(value: &[u8]) -> Result<Self, InvalidEntityTag> {
        let (weak, opaque) = Self::read(value)?;
        Ok(Self::from_valid(weak, opaque))
    }

    /// Whether `value` holds one valid tag, and its weakness and opaque content.
    fn read(value: &[u8]) -> Result<(bool, &[u8]), InvalidEntityTag> {
        // One tag, not a list: no list separators around it (the list reader skips them).
        let start = value
            .iter()
            .position(|&b| !is_ows(b))
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|&b| !is_ows(b))
            .map_or(start, |i| i + 1);
        let trimmed = &value[start..end];
        if !(trimmed.starts_with(b"\"") || trimmed.starts_with(b"W/")) || !trimmed.ends_with(b"\"")
        {
            return Err(InvalidEntityTag { _priv: () });
        }
        let mut members = Members::new(trimmed);
        match (members.next(), members.next()) {
            (Some(Member::Tag { weak, opaque }), None) => Ok((weak, opaque)),
            _ => Err(InvalidEntityTag { _priv: () }),
        }
    }

    /// Whether this is a weak tag (`W/"…"`).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque content, between the quotes. May hold non-ASCII bytes (RFC 9110 `obs-text`).
    pub fn tag(&self) -> &[u8] {
        let bytes = self.value.as_bytes();
        let start = if self.weak { 3 } else { 1 };
        &bytes[start..bytes.len() - 1]
    }

    /// Strong comparison: both tags are strong and their opaque contents are identical.
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.tag() == other.tag()
    }

    /// Weak comparison: the opaque contents are identical, whatever the weakness.
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.tag() == other.tag()
    }

    /// The same tag, marked weak.
    pub fn to_weak(&self) -> EntityTag {
        if self.weak {
            self.clone()
        } else {
            Self::from_valid(true, self.tag())
        }
    }

    /// The tag as a field value, ready for an `ETag` header.
    pub fn to_header_value(&self) -> HeaderValue {
        self.value.clone()
    }
}

impl fmt::Debug for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.value.as_bytes()))
    }
}

impl FromStr for EntityTag {
    type Err = InvalidEntityTag;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&HeaderValue> for EntityTag {
    type Error = InvalidEntityTag;

    fn try_from(value: &HeaderValue) -> Result<Self, Self::Error> {
        let (weak, opaque) = Self::read(value.as_bytes())?;
        // A value that is the tag and nothing else (as sent, usually) is shared, not copied:
        // the cache reads its stored `ETag` on every conditional request.
        let framing = if weak { 4 } else { 2 };
        if opaque.len() + framing == value.len() {
            return Ok(Self {
                weak,
                value: value.clone(),
            });
        }
        Ok(Self::from_valid(weak, opaque))
    }
}

impl From<EntityTag> for HeaderValue {
    fn from(tag: EntityTag) -> Self {
        tag.value
    }
}

/// A parsed `If-Match` or `If-None-Match` value: `*` or a list of entity tags.
///
/// Parsing is tolerant in the way RFC 9110 §5.6.1 asks of recipients: empty list members and
/// whitespace around commas are accepted. A member that is not an entity tag (say `abc` without
/// quotes) is skipped and counted in [`EntityTagList::invalid_members`]; it never matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityTagList {
    any: bool,
    tags: Vec<EntityTag>,
    invalid: usize,
}

impl EntityTagList {
    /// Parses one field value.
    pub fn parse_bytes(value: &[u8]) -> Self {
        let mut list = Self::default();
        list.extend(value);
        list
    }

    /// Parses every field line of a header, as one combined list (RFC 9110 §5.3).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut list = Self::default();
        for value in values {
            list.extend(value.as_bytes());
        }
        list
    }

    fn extend(&mut self, value: &[u8]) {
        for member in Members::new(value) {
            match member {
                Member::Any => self.any = true,
                Member::Tag { weak, opaque } => self.tags.push(EntityTag::from_valid(weak, opaque)),
                Member::Invalid => self.invalid += 1,
            }
        }
    }

    /// Whether the list is (or contains) `*`.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// The valid entity tags, in order.
    pub fn tags(&self) -> &[EntityTag] {
        &self.tags
    }

    /// How many members were not valid entity tags.
    pub fn invalid_members(&self) -> usize {
        self.invalid
    }

    /// Whether any tag in the list is strongly equal to `current` (`*` is not considered).
    pub fn matches_strong(&self, current: &EntityTag) -> bool {
        self.tags.iter().any(|t| t.strong_eq(current))
    }

    /// Whether any tag in the list is weakly equal to `current` (`*` is not considered).
    pub fn matches_weak(&self, current: &EntityTag) -> bool {
        self.tags.iter().any(|t| t.weak_eq(current))
    }
}

/// How two entity tags are compared (RFC 9110 §8.8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comparison {
    Strong,
    Weak,
}

/// What a field's list says about one current tag, computed without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListMatch {
    pub(crate) any: bool,
    pub(crate) matched: bool,
}

/// Scans every field line of an `If-Match` / `If-None-Match` header for `current`.
pub(crate) fn list_match<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
    current: Option<&EntityTag>,
    comparison: Comparison,
) -> ListMatch {
    let mut result = ListMatch {
        any: false,
        matched: false,
    };
    for value in values {
        for member in Members::new(value.as_bytes()) {
            match member {
                Member::Any => result.any = true,
                Member::Tag { weak, opaque } => {
                    if let Some(current) = current {
                        let equal = opaque == current.tag();
                        result.matched |= match comparison {
                            Comparison::Weak => equal,
                            Comparison::Strong => equal && !weak && !current.is_weak(),
                        };
                    }
                }
                Member::Invalid => {}
            }
        }
    }
    result
}

// etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3)
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One member of a comma-separated entity-tag list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Member<'a> {
    Any,
    Tag { weak: bool, opaque: &'a [u8] },
    Invalid,
}

/// Iterates the members of `#( "*" / entity-tag )`, skipping empty members (RFC 9110 §5.6.1) and
/// resynchronising at the next comma after a malformed member.
#[derive(Debug)]
pub(crate) struct Members<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Members<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    fn skip_ows(&mut self) {
        while self.pos < self.input.len() && is_ows(self.input[self.pos]) {
            self.pos += 1;
        }
    }

    // After a member: only OWS, then a comma or the end, may follow.
    fn finish(&mut self, member: Member<'a>) -> Member<'a> {
        self.skip_ows();
        match self.input.get(self.pos) {
            None => member,
            Some(b',') => member,
            Some(_) => self.invalid(),
        }
    }

    fn invalid(&mut self) -> Member<'a> {
        match self.input[self.pos..].iter().position(|&b| b == b',') {
            Some(off) => self.pos += off,
            None => self.pos = self.input.len(),
        }
        Member::Invalid
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        let input = self.input;
        while self.pos < input.len() && (is_ows(input[self.pos]) || input[self.pos] == b',') {
            self.pos += 1;
        }
        if self.pos >= input.len() {
            return None;
        }
        if input[self.pos] == b'*' {
            self.pos += 1;
            return Some(self.finish(Member::Any));
        }
        let weak = input[self.pos..].starts_with(b"W/");
        if weak {
            self.pos += 2;
        }
        if input.get(self.pos) != Some(&b'"') {
            return Some(self.invalid());
        }
        let start = self.pos + 1;
        let Some(len) = input[start..].iter().position(|&b| b == b'"') else {
            self.pos = input.len();
            return Some(Member::Invalid);
        };
        let opaque = &input[start..start + len];
        self.pos = start + len + 1;
        if !opaque.iter().all(|&b| is_etagc(b)) {
            return Some(self.invalid());
        }
        Some(self.finish(Member::Tag { weak, opaque }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(s: &str) -> Vec<Member<'_>> {
        Members::new(s.as_bytes()).collect()
    }

    #[test]
    fn parses_strong_and_weak_tags() {
        let strong: EntityTag = "\"abc\"".parse().unwrap();
        assert!(!strong.is_weak());
        assert_eq!(strong.tag(), b"abc");
        let weak: EntityTag = "W/\"abc\"".parse().unwrap();
        assert!(weak.is_weak());
        assert_eq!(weak.to_string(), "W/\"abc\"");
    }

    #[test]
    fn one_tag_is_not_a_list() {
        // Found by the `etag_list` fuzz target: list separators around a single tag were skipped.
        for bad in ["W/\"x\",", ",\"x\"", "\"x\" ,", "\"a\", \"b\"", "\nW/\"\""] {
            assert!(bad.parse::<EntityTag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn accepts_empty_opaque_tag() {
        let tag: EntityTag = "\"\"".parse().unwrap();
        assert_eq!(tag.tag(), b"");
    }

    #[test]
    fn accepts_surrounding_whitespace() {
        let tag: EntityTag = " \t\"x\" ".parse().unwrap();
        assert_eq!(tag.to_string(), "\"x\"");
    }

    #[test]
    fn rejects_malformed_single_tags() {
        for bad in [
            "",
            "abc",
            "\"abc",
            "abc\"",
            "w/\"abc\"",
            "W/ \"abc\"",
            "\"a b\"",
            "\"a\"b",
            "\"a\" \"b\"",
            "\"a\",\"b\"",
            "*",
            "W/",
            "\"\"\"",
        ] {
            assert!(
                bad.parse::<EntityTag>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_bad_characters_in_constructors() {
        assert!(EntityTag::strong("a\"b").is_err());
        assert!(EntityTag::strong("a b").is_err());
        assert!(EntityTag::weak("a\u{7f}").is_err());
        assert!(EntityTag::strong("ok-tag_1.2").is_ok());
    }

    #[test]
    fn compares_per_rfc_9110_table() {
        // RFC 9110 §8.8.3.2, the four rows of the example table.
        let w1: EntityTag = "W/\"1\"".parse().unwrap();
        let w2: EntityTag = "W/\"2\"".parse().unwrap();
        let s1: EntityTag = "\"1\"".parse().unwrap();
        assert!(!w1.strong_eq(&w1) && w1.weak_eq(&w1));
        assert!(!w1.strong_eq(&w2) && !w1.weak_eq(&w2));
        assert!(!w1.strong_eq(&s1) && w1.weak_eq(&s1));
        assert!(s1.strong_eq(&s1) && s1.weak_eq(&s1));
    }

    #[test]
    fn comma_inside_quotes_belongs_to_the_tag() {
        assert_eq!(
            members("\"a,b\", \"c\""),
            vec![
                Member::Tag {
                    weak: false,
                    opaque: b"a,b"
                },
                Member::Tag {
                    weak: false,
                    opaque: b"c"
                }
            ]
        );
    }

    #[test]
    fn list_skips_empty_members_and_odd_whitespace() {
        let list = EntityTagList::parse_bytes(b" ,, \t\"a\" ,\tW/\"b\",, ");
        assert_eq!(list.tags().len(), 2);
        assert_eq!(list.invalid_members(), 0);
        assert!(!list.is_any());
    }

    #[test]
    fn list_recovers_after_malformed_member() {
        let list =
            EntityTagList::parse_bytes(b"abc, \"ok\", \"bad tag\", W/\"weak\", \"unterminated");
        let tags: Vec<String> = list.tags().iter().map(ToString::to_string).collect();
        assert_eq!(tags, ["\"ok\"", "W/\"weak\""]);
        assert_eq!(list.invalid_members(), 3);
    }

    #[test]
    fn list_recognises_star() {
        assert!(EntityTagList::parse_bytes(b"*").is_any());
        assert!(EntityTagList::parse_bytes(b" * ").is_any());
        assert!(!EntityTagList::parse_bytes(b"*x").is_any());
    }

    #[test]
    fn list_combines_field_lines() {
        let a = HeaderValue::from_static("\"a\"");
        let b = HeaderValue::from_static("W/\"b\"");
        let list = EntityTagList::parse([&a, &b]);
        assert_eq!(list.tags().len(), 2);
    }

    #[test]
    fn a_tag_read_from_a_field_keeps_its_value_or_trims_it() {
        for (field, weak, tag) in [
            ("\"abc\"", false, "abc"),
            ("W/\"abc\"", true, "abc"),
            ("  \"abc\"\t", false, "abc"),
            ("W/\"\"", true, ""),
        ] {
            let read = EntityTag::try_from(&HeaderValue::from_static(field)).unwrap();
            assert_eq!(
                (read.is_weak(), read.tag()),
                (weak, tag.as_bytes()),
                "{field:?}"
            );
            assert_eq!(read.to_header_value(), field.trim(), "{field:?}");
            assert_eq!(read, EntityTag::parse(field.as_bytes()).unwrap());
        }
        for bad in ["abc", "\"a\" \"b\"", "W/abc", "\"a\"b\"", ""] {
            assert!(
                EntityTag::try_from(&HeaderValue::from_static(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn list_match_respects_comparison() {
        let current: EntityTag = "\"v\"".parse().unwrap();
        let weak_sent = HeaderValue::from_static("W/\"v\"");
        assert!(list_match([&weak_sent], Some(&current), Comparison::Weak).matched);
        assert!(!list_match([&weak_sent], Some(&current), Comparison::Strong).matched);
        assert!(!list_match([&weak_sent], None, Comparison::Weak).matched);
    }

    #[test]
    fn accepts_obs_text() {
        let value = HeaderValue::from_bytes(b"\"caf\xc3\xa9\"").unwrap();
        let tag = EntityTag::try_from(&value).unwrap();
        assert_eq!(tag.tag(), "café".as_bytes());
    }

    fn tag_strategy() -> impl Strategy<Value = (bool, Vec<u8>)> {
        let etagc = prop_oneof![Just(0x21u8), 0x23u8..=0x7e, 0x80u8..=0xff];
        (any::<bool>(), proptest::collection::vec(etagc, 0..40))
    }

    proptest! {
        #[test]
        fn list_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let list = EntityTagList::parse_bytes(&input);
            prop_assert!(list.tags().len() + list.invalid_members() <= input.len());
        }

        #[test]
        fn single_tags_round_trip((weak, opaque) in tag_strategy()) {
            let tag = EntityTag::from_valid(weak, &opaque);
            let parsed = EntityTag::try_from(&tag.to_header_value()).unwrap();
            prop_assert_eq!(&parsed, &tag);
            prop_assert_eq!(parsed.tag(), &opaque[..]);
        }

        #[test]
        fn lists_round_trip(
            tags in proptest::collection::vec(tag_strategy(), 0..8),
            sep in prop_oneof![Just(","), Just(", "), Just(" ,\t"), Just(",,")],
        ) {
            let tags: Vec<EntityTag> =
                tags.iter().map(|(w, o)| EntityTag::from_valid(*w, o)).collect();
            let mut joined = Vec::new();
            for (i, tag) in tags.iter().enumerate() {
                if i > 0 {
                    joined.extend_from_slice(sep.as_bytes());
                }
                joined.extend_from_slice(tag.to_header_value().as_bytes());
            }
            let list = EntityTagList::parse_bytes(&joined);
            prop_assert_eq!(list.tags(), &tags[..]);
            prop_assert_eq!(list.invalid_members(), 0);
        }

        // Model: weak comparison is equality of the opaque parts; strong also needs both strong.
        #[test]
        fn comparisons_agree_with_model(a in tag_strategy(), b in tag_strategy()) {
            let ta = EntityTag::from_valid(a.0, &a.1);
            let tb = EntityTag::from_valid(b.0, &b.1);
            prop_assert_eq!(ta.weak_eq(&tb), a.1 == b.1);
            prop_assert_eq!(ta.strong_eq(&tb), a.1 == b.1 && !a.0 && !b.0);
        }
    }
}
