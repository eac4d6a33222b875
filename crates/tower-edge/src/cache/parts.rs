//! Stored partial content (RFC 9111 §3.3 and §3.4): the byte spans of one representation that
//! `206` answers brought, kept as one entry until they add up to the whole.
//!
//! An entry of parts has status `206`, the header fields of the last part stored (without its
//! `Content-Range`), the spans' bytes one after another as its body, and a [`PARTS_HEADER`]
//! saying where each span starts and how long the representation is:
//! `tower-edge-parts: 1000; 0-99, 500-599`. Spans are kept sorted, apart, and never adjacent:
//! overlapping or touching spans are merged.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

use crate::http::{etag::EntityTag, range::ByteRange};

/// The internal header an entry of parts describes its spans in. Never sent to a client.
pub(crate) const PARTS_HEADER: &str = "tower-edge-parts";

/// The spans of one representation of `complete` bytes that the cache holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pieces {
    complete: u64,
    /// Sorted by offset; no two overlap or touch.
    spans: Vec<(u64, Bytes)>,
}

impl Pieces {
    /// One span: the body of a `206` for `range` of a representation of `complete` bytes.
    /// `None` when the body's length is not the range's.
    pub(crate) fn new(range: ByteRange, complete: u64, bytes: Bytes) -> Option<Self> {
        (bytes.len() as u64 == range.len() && range.last() < complete).then(|| Self {
            complete,
            spans: vec![(range.first(), bytes)],
        })
    }

    /// The length of the whole representation.
    pub(crate) fn complete(&self) -> u64 {
        self.complete
    }

    /// How many bytes are held.
    pub(crate) fn held(&self) -> u64 {
        self.spans.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Reads the spans back from a stored entry's header and body; `None` if they do not
    /// describe it exactly (a corrupt or foreign entry, never served).
    pub(crate) fn from_stored(headers: &HeaderMap, body: &Bytes) -> Option<Self> {
        let value = headers.get(PARTS_HEADER)?.to_str().ok()?;
        let (complete, list) = value.split_once(';')?;
        let complete: u64 = complete.trim().parse().ok()?;
        let mut spans = Vec::new();
        let mut at = 0usize;
        let mut end_of_last = None;
        for span in list.split(',') {
            let (first, last) = span.trim().split_once('-')?;
            let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
            if first > last || last >= complete || end_of_last.is_some_and(|end| first <= end) {
                return None;
            }
            let len = usize::try_from(last - first + 1).ok()?;
            let bytes = body.get(at..at.checked_add(len)?)?;
            spans.push((first, body.slice_ref(bytes)));
            at += len;
            end_of_last = Some(last + 1);
        }
        (at == body.len() && !spans.is_empty()).then_some(Self { complete, spans })
    }

    /// The header value and body to store these spans as.
    pub(crate) fn to_stored(&self) -> (HeaderValue, Bytes) {
        let list = self
            .spans
            .iter()
            .map(|(first, bytes)| format!("{first}-{}", first + bytes.len() as u64 - 1))
            .collect::<Vec<_>>()
            .join(", ");
        let value = HeaderValue::try_from(format!("{}; {list}", self.complete))
            .expect("digits and ASCII punctuation");
        let body = match self.spans.as_slice() {
            [(_, only)] => only.clone(),
            spans => {
                let mut body = BytesMut::with_capacity(self.held() as usize);
                for (_, bytes) in spans {
                    body.extend_from_slice(bytes);
                }
                body.freeze()
            }
        };
        (value, body)
    }

    /// Adds the spans of `other`, a part of the same representation (RFC 9111 §3.4: the caller
    /// has checked their strong validators match). Where they overlap, `other`'s bytes win.
    /// `None` when the two do not describe representations of one length.
    pub(crate) fn combine(self, other: Self) -> Option<Self> {
        if self.complete != other.complete {
            return None;
        }
        let mut all: Vec<(u64, Bytes)> = other.spans;
        all.extend(self.spans);
        // Stable: on equal offsets, `other`'s span comes first and wins the overlap.
        all.sort_by_key(|(first, _)| *first);
        let mut spans: Vec<(u64, Bytes)> = Vec::with_capacity(all.len());
        for (first, bytes) in all {
            let end = first + bytes.len() as u64;
            match spans.last_mut() {
                Some((last_first, last)) if first <= *last_first + last.len() as u64 => {
                    let last_end = *last_first + last.len() as u64;
                    if end > last_end {
                        let mut joined = BytesMut::with_capacity((end - *last_first) as usize);
                        joined.extend_from_slice(last);
                        joined.extend_from_slice(&bytes[(last_end - first) as usize..]);
                        *last = joined.freeze();
                    }
                }
                _ => spans.push((first, bytes)),
            }
        }
        Some(Self {
            complete: self.complete,
            spans,
        })
    }

    /// The bytes of `range`, when one held span contains all of it (§3.3: a stored incomplete
    /// response answers only a range wholly within it).
    pub(crate) fn slice(&self, range: ByteRange) -> Option<Bytes> {
        let (first, bytes) = self
            .spans
            .iter()
            .take_while(|(first, _)| *first <= range.first())
            .last()?;
        let start = range.first() - first;
        let end = start + range.len();
        (end <= bytes.len() as u64).then(|| bytes.slice(start as usize..end as usize))
    }

    /// The whole representation, once the spans cover it.
    pub(crate) fn whole(&self) -> Option<Bytes> {
        match self.spans.as_slice() {
            [(0, bytes)] if bytes.len() as u64 == self.complete => Some(bytes.clone()),
            _ => None,
        }
    }
}

/// Whether two sets of header fields carry the same strong entity tag (RFC 9110 §8.8.3.2): the
/// validator RFC 9111 §3.4 asks for before parts are combined. Without a strong tag on both,
/// parts are never combined; a new part replaces what was held.
pub(crate) fn same_strong_etag(a: &HeaderMap, b: &HeaderMap) -> bool {
    let tag = |headers: &HeaderMap| {
        headers
            .get(http::header::ETAG)
            .and_then(|v| EntityTag::try_from(v).ok())
            .filter(|t| !t.is_weak())
    };
    matches!((tag(a), tag(b)), (Some(a), Some(b)) if a.strong_eq(&b))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn piece(first: u64, text: &str, complete: u64) -> Pieces {
        let range = ByteRange::new(first, first + text.len() as u64 - 1);
        Pieces::new(range, complete, Bytes::copy_from_slice(text.as_bytes())).unwrap()
    }

    fn round_trip(p: &Pieces) -> Pieces {
        let (value, body) = p.to_stored();
        let mut headers = HeaderMap::new();
        headers.insert(PARTS_HEADER, value);
        Pieces::from_stored(&headers, &body).unwrap()
    }

    #[test]
    fn a_part_must_be_as_long_as_its_range() {
        assert!(Pieces::new(ByteRange::new(0, 3), 10, Bytes::from_static(b"abc")).is_none());
        assert!(Pieces::new(ByteRange::new(8, 10), 10, Bytes::from_static(b"abc")).is_none());
    }

    #[test]
    fn combines_apart_overlapping_and_touching_spans() {
        let text = "0123456789";
        let p = piece(0, "012", 10).combine(piece(7, "789", 10)).unwrap();
        assert_eq!(p.spans.len(), 2);
        assert_eq!(p.whole(), None);
        assert_eq!(p.slice(ByteRange::new(8, 9)).unwrap(), "89");
        assert_eq!(p.slice(ByteRange::new(2, 3)), None);
        // Touching: 3..=4 joins 0..=2.
        let p = p.combine(piece(3, "34", 10)).unwrap();
        assert_eq!(p.spans.len(), 2);
        assert_eq!(p.slice(ByteRange::new(1, 4)).unwrap(), "1234");
        // Overlapping both sides closes the gap.
        let p = p.combine(piece(4, "4567", 10)).unwrap();
        assert_eq!(p.whole().unwrap(), text);
        assert_eq!(round_trip(&p), p);
    }

    #[test]
    fn parts_of_different_lengths_do_not_combine() {
        assert!(piece(0, "ab", 10).combine(piece(2, "cd", 11)).is_none());
    }

    #[test]
    fn stored_spans_that_do_not_describe_the_body_are_refused() {
        let body = Bytes::from_static(b"abcdef");
        for value in [
            "10; 0-2, 6-9", // one byte more than the body
            "10; 0-5, 3-8", // overlapping
            "10; 6-8, 0-2", // out of order
            "10; 0-2, 3-5", // touching spans are stored merged
            "5; 0-5",       // past the end
            "10; 0-6",      // longer than the body
            "10;",          // no span
            "x; 0-5",       // no length
            "10; 0-2, 3-x", // garbage
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(PARTS_HEADER, HeaderValue::from_static(value));
            assert_eq!(Pieces::from_stored(&headers, &body), None, "{value:?}");
        }
    }

    #[test]
    fn only_strong_equal_tags_allow_combining() {
        let with = |tag: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::ETAG, HeaderValue::from_static(tag));
            h
        };
        assert!(same_strong_etag(&with("\"a\""), &with("\"a\"")));
        assert!(!same_strong_etag(&with("\"a\""), &with("\"b\"")));
        assert!(!same_strong_etag(&with("W/\"a\""), &with("W/\"a\"")));
        assert!(!same_strong_etag(&with("\"a\""), &HeaderMap::new()));
        assert!(!same_strong_etag(&HeaderMap::new(), &HeaderMap::new()));
    }

    proptest! {
        /// Any parts of one text, combined in any order, hold exactly the bytes of the text
        /// they cover, and survive being stored.
        #[test]
        fn combined_parts_hold_the_text(
            text in "[a-z]{1,40}",
            cuts in proptest::collection::vec((0usize..40, 1usize..20), 1..8),
        ) {
            let complete = text.len() as u64;
            let mut held: Option<Pieces> = None;
            let mut covered = vec![false; text.len()];
            for (start, len) in cuts {
                let start = start % text.len();
                let end = (start + len).min(text.len());
                covered[start..end].iter_mut().for_each(|c| *c = true);
                let p = piece(start as u64, &text[start..end], complete);
                held = Some(match held {
                    None => p,
                    Some(h) => h.combine(p).unwrap(),
                });
            }
            let held = round_trip(&held.unwrap());
            for (i, covered) in covered.iter().enumerate() {
                let one = held.slice(ByteRange::new(i as u64, i as u64));
                if *covered {
                    prop_assert_eq!(one.unwrap(), &text[i..=i]);
                } else {
                    prop_assert!(one.is_none());
                }
            }
            prop_assert_eq!(held.whole().is_some(), covered.iter().all(|c| *c));
            prop_assert_eq!(held.held() as usize, covered.iter().filter(|c| **c).count());
        }
    }
}
