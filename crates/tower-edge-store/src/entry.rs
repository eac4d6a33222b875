use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A stored response: status, headers, body, and what the cache needs to judge its freshness.
///
/// Times are kept as given; the cache layer decides freshness with its own clock. Entries cross
/// process boundaries through [`Entry::encode`] and [`Entry::decode`].
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    stored_at: SystemTime,
    initial_age: Duration,
    fresh_for: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
    tags: Vec<String>,
}

impl Entry {
    /// An entry stored now, fresh for no time, with no stale windows and no tags.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
            stored_at: SystemTime::now(),
            initial_age: Duration::ZERO,
            fresh_for: Duration::ZERO,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            tags: Vec::new(),
        }
    }

    /// When the response was stored (RFC 9111 §4.2.3's `response_time`).
    #[must_use]
    pub fn with_stored_at(mut self, at: SystemTime) -> Self {
        self.stored_at = at;
        self
    }

    /// The age the response already had when stored (from its `Age` header and transit).
    #[must_use]
    pub fn with_initial_age(mut self, age: Duration) -> Self {
        self.initial_age = age;
        self
    }

    /// The freshness lifetime (RFC 9111 §4.2.1).
    #[must_use]
    pub fn with_fresh_for(mut self, lifetime: Duration) -> Self {
        self.fresh_for = lifetime;
        self
    }

    /// How long after going stale the entry may be served while one refresh runs (RFC 5861).
    #[must_use]
    pub fn with_stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = window;
        self
    }

    /// How long after going stale the entry may be served when the origin fails (RFC 5861).
    #[must_use]
    pub fn with_stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// The same entry with another body.
    #[must_use]
    pub fn with_body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// Tags for invalidation by tag (surrogate keys).
    #[must_use]
    pub fn with_tags(mut self, tags: Vec<String>) -> Self {
        self.tags = tags;
        self
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Replaces the stored headers (after a revalidation, RFC 9111 §4.3.4).
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The response body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// When the response was stored.
    pub fn stored_at(&self) -> SystemTime {
        self.stored_at
    }

    /// The age the response had when stored.
    pub fn initial_age(&self) -> Duration {
        self.initial_age
    }

    /// The freshness lifetime.
    pub fn fresh_for(&self) -> Duration {
        self.fresh_for
    }

    /// The stale-while-revalidate window.
    pub fn stale_while_revalidate(&self) -> Duration {
        self.stale_while_revalidate
    }

    /// The stale-if-error window.
    pub fn stale_if_error(&self) -> Duration {
        self.stale_if_error
    }

    /// The invalidation tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The entry's current age at `now` (RFC 9111 §4.2.3): its initial age plus its time in
    /// the store. A clock that went backwards counts as no time.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age
            .saturating_add(now.duration_since(self.stored_at).unwrap_or_default())
    }

    /// Approximate memory held by the entry, in bytes: body, headers, tags, and fixed overhead.
    pub fn weight(&self) -> usize {
        const OVERHEAD: usize = 160;
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        let tags: usize = self.tags.iter().map(|t| t.len() + 24).sum();
        OVERHEAD + self.body.len() + headers + tags
    }

    /// The current codec version, the first byte of every encoded entry.
    pub const CODEC_VERSION: u8 = 1;

    /// Encodes the entry: one version byte, then the fields in postcard, a compact serde format.
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireV1 {
            status: self.status.as_u16(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
            body: self.body.clone(),
            stored_at_ns: nanos(
                self.stored_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            initial_age_ns: nanos(self.initial_age),
            fresh_for_ns: nanos(self.fresh_for),
            stale_while_revalidate_ns: nanos(self.stale_while_revalidate),
            stale_if_error_ns: nanos(self.stale_if_error),
            tags: self.tags.clone(),
        };
        let mut out = Vec::with_capacity(self.weight());
        out.push(Self::CODEC_VERSION);
        postcard::to_io(&wire, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Decodes what [`Entry::encode`] wrote. An unknown version, trailing bytes, or any field that
    /// is not a valid status, header name or header value is an error
    /// ([`StoreError::is_corrupt`]), never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| StoreError::corrupt("empty cache entry"))?;
        if version != Self::CODEC_VERSION {
            return Err(StoreError::corrupt(format!(
                "unknown cache entry version {version}"
            )));
        }
        let (wire, left): (WireV1, &[u8]) =
            postcard::take_from_bytes(rest).map_err(StoreError::corrupt)?;
        if !left.is_empty() {
            return Err(StoreError::corrupt("trailing bytes after cache entry"));
        }
        let status = StatusCode::from_u16(wire.status).map_err(StoreError::corrupt)?;
        let mut headers = HeaderMap::with_capacity(wire.headers.len());
        for (name, value) in wire.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(StoreError::corrupt)?;
            let value = HeaderValue::from_maybe_shared(value).map_err(StoreError::corrupt)?;
            headers.append(name, value);
        }
        let since_epoch = Duration::from_nanos(wire.stored_at_ns);
        Ok(Self {
            status,
            headers,
            body: wire.body,
            stored_at: UNIX_EPOCH
                .checked_add(since_epoch)
                .ok_or_else(|| StoreError::corrupt("stored_at out of range"))?,
            initial_age: Duration::from_nanos(wire.initial_age_ns),
            fresh_for: Duration::from_nanos(wire.fresh_for_ns),
            stale_while_revalidate: Duration::from_nanos(wire.stale_while_revalidate_ns),
            stale_if_error: Duration::from_nanos(wire.stale_if_error_ns),
            tags: wire.tags,
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Version 1 of the stored form. A change of fields is a new struct and a new version byte.
#[derive(Serialize, Deserialize)]
struct WireV1 {
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: Bytes,
    stored_at_ns: u64,
    initial_age_ns: u64,
    fresh_for_ns: u64,
    stale_while_revalidate_ns: u64,
    stale_if_error_ns: u64,
    tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.append(
            http::header::VARY,
            HeaderValue::from_static("accept-encoding"),
        );
        headers.append(
            http::header::VARY,
            HeaderValue::from_static("accept-language"),
        );
        Entry::new(StatusCode::OK, headers, Bytes::from_static(b"{\"id\":1}"))
            .with_stored_at(UNIX_EPOCH + Duration::from_nanos(1_735_689_600_123))
            .with_initial_age(Duration::from_secs(3))
            .with_fresh_for(Duration::from_secs(60))
            .with_stale_while_revalidate(Duration::from_secs(30))
            .with_stale_if_error(Duration::from_secs(600))
            .with_tags(vec!["product:7".into(), "catalogue".into()])
    }

    #[test]
    fn round_trips_every_field() {
        let entry = sample();
        let bytes = entry.encode();
        assert_eq!(bytes[0], Entry::CODEC_VERSION);
        assert_eq!(Entry::decode(&bytes).unwrap(), entry);
    }

    #[test]
    fn unknown_version_is_corrupt() {
        let mut bytes = sample().encode();
        bytes[0] = 2;
        assert!(Entry::decode(&bytes).unwrap_err().is_corrupt());
        assert!(Entry::decode(&[]).unwrap_err().is_corrupt());
    }

    #[test]
    fn truncated_or_padded_values_are_corrupt() {
        let bytes = sample().encode();
        for len in 1..bytes.len() {
            assert!(Entry::decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut padded = bytes;
        padded.push(0);
        assert!(Entry::decode(&padded).unwrap_err().is_corrupt());
    }

    #[test]
    fn invalid_header_bytes_are_corrupt() {
        let wire = WireV1 {
            status: 200,
            headers: vec![("bad name".into(), Bytes::from_static(b"v"))],
            body: Bytes::new(),
            stored_at_ns: 0,
            initial_age_ns: 0,
            fresh_for_ns: 0,
            stale_while_revalidate_ns: 0,
            stale_if_error_ns: 0,
            tags: Vec::new(),
        };
        let mut bytes = vec![Entry::CODEC_VERSION];
        bytes.extend(postcard::to_stdvec(&wire).unwrap());
        assert!(Entry::decode(&bytes).unwrap_err().is_corrupt());
    }

    #[test]
    fn age_counts_time_in_store_plus_initial_age() {
        let entry = sample();
        let later = entry.stored_at() + Duration::from_secs(10);
        assert_eq!(entry.age(later), Duration::from_secs(13));
        // A clock behind the store time counts as no time stored.
        assert_eq!(entry.age(UNIX_EPOCH), Duration::from_secs(3));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Entry::decode(&bytes);
        }

        #[test]
        fn flipping_any_byte_never_panics(index in 0usize..512, value in any::<u8>()) {
            let mut bytes = sample().encode();
            let i = index % bytes.len();
            bytes[i] = value;
            let _ = Entry::decode(&bytes);
        }

        #[test]
        fn bodies_round_trip(body in proptest::collection::vec(any::<u8>(), 0..4096), status in 100u16..600) {
            let entry = Entry::new(StatusCode::from_u16(status).unwrap(), HeaderMap::new(), Bytes::from(body));
            prop_assert_eq!(Entry::decode(&entry.encode()).unwrap(), entry);
        }
    }
}
