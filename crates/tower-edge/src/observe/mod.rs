//! What the layers tell the outside world: `tracing` fields on the request's span, and counters
//! through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! Every layer records its decision on the *current* span, which is the request's span when
//! the stack sits inside a tracing layer (tower-http's `TraceLayer`, say). `tracing` only keeps
//! fields a span declared when it was created, so create the request span with
//! [`request_span`], or declare the names in [`SPAN_FIELDS`] yourself.
//!
//! | field | set by | value |
//! |---|---|---|
//! | `edge.cache` | `ResponseCacheLayer` | its `Cache-Status` parameters: `hit; ttl=42`, `fwd=miss; stored`, … |
//! | `edge.cache_key` | `ResponseCacheLayer` | a 64-bit hash of the key, in hex (the key itself may hold user data) |
//! | `edge.encoding` | `CompressionLayer` | the coding sent (`br`, `gzip`, …) |
//! | `edge.bytes_in`, `edge.bytes_out` | `CompressionLayer` | body bytes before and after, at the body's end |
//! | `edge.validator` | `ETagLayer`, `LastModifiedLayer`, `ServeDir`, `ResponseCacheLayer` | `304` or `412` when they answered |
//! | `edge.range` | `RangeLayer`, `ServeDir`, `ResponseCacheLayer` | `206`, `206 multipart` or `416` |
//!
//! With feature `metrics`, the same decisions are counted: `tower_edge_cache_total{event}`,
//! `tower_edge_compression_total{encoding}`, `tower_edge_compression_bytes_in_total`,
//! `tower_edge_compression_bytes_out_total`, `tower_edge_validator_total{status}`,
//! `tower_edge_range_total{status}`. Without a recorder installed the facade does nothing.
//! Each layer registers a counter with the recorder the first time it counts there, and keeps
//! the handle, so that a count costs one atomic add. Install the recorder before the first
//! request: a layer that counted before then keeps counting into no recorder at all, and one
//! that first counted under a thread-local recorder keeps counting into that one, from every
//! thread.
//!
//! [`ObserveLayer`], outside the others, times every request to the end of its body:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tower_edge_request_duration_seconds` | histogram | `route` (template), `cache` ([`CACHE_LABELS`]), `status` ([`STATUS_LABELS`]) |
//! | `tower_edge_origin_duration_seconds` | histogram | `route`: the time a cache waited on the inner service, for the requests it forwarded |
//! | `tower_edge_cache_total` | counter | `event` |
//! | `tower_edge_compression_total` | counter | `encoding` |
//! | `tower_edge_compression_bytes_in_total`, `tower_edge_compression_bytes_out_total` | counter | |
//! | `tower_edge_validator_total`, `tower_edge_range_total` | counter | `status` |
//!
//! The stores' own metrics (operation durations, the Redis breaker, entries and bytes) are
//! `tower-edge-store`'s, under the same `tower_edge_` prefix. Give the exporter
//! [`DURATION_BUCKETS`] for the histograms.
//!
//! With [`ObserveLayer::slow_after`], requests slower than a threshold are logged once each,
//! with their route, cache outcome, and the time spent on the origin and the store.

use tracing::Span;

mod layer;
pub(crate) mod scope;

pub use self::layer::{
    CACHE_LABELS, DURATION_BUCKETS, Observe, ObserveBody, ObserveLayer, ResponseFuture,
    STATUS_LABELS,
};

/// The span fields the layers record (see the module docs).
pub const SPAN_FIELDS: [&str; 7] = [
    "edge.cache",
    "edge.cache_key",
    "edge.encoding",
    "edge.bytes_in",
    "edge.bytes_out",
    "edge.validator",
    "edge.range",
];

/// An `INFO` span for one request, with the method, the path, the route template (axum's
/// `MatchedPath`, feature `axum`, when the span is made inside the router) and every field the
/// layers record.
pub fn request_span<B>(request: &http::Request<B>) -> Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        route = layer::template(request),
        edge.cache = tracing::field::Empty,
        edge.cache_key = tracing::field::Empty,
        edge.encoding = tracing::field::Empty,
        edge.bytes_in = tracing::field::Empty,
        edge.bytes_out = tracing::field::Empty,
        edge.validator = tracing::field::Empty,
        edge.range = tracing::field::Empty,
    )
}

/// Records `value` under `field` on the current span.
#[allow(dead_code)] // unused in builds with no layer
pub(crate) fn record(field: &'static str, value: &str) {
    Span::current().record(field, value);
}

/// The handles of one counter family, `name{label}` over a fixed set of label values, each
/// registered with the recorder on its first count and kept. On a hot path the facade's
/// registration (a key built, hashed and looked up, then dropped) costs several times the count
/// itself; a layer keeps one of these so that each count is one atomic add.
///
/// The handles belong to the recorder installed when each was first used: install it before
/// the first request. A clone starts with no handles.
#[allow(dead_code)] // unused in builds with no layer
pub(crate) struct CounterFamily<const N: usize> {
    #[allow(dead_code)] // without `metrics`, nothing is counted
    name: &'static str,
    #[allow(dead_code)]
    label: &'static str,
    #[allow(dead_code)]
    values: [&'static str; N],
    #[cfg(feature = "metrics")]
    cells: [std::sync::OnceLock<metrics::Counter>; N],
}

#[allow(dead_code)] // unused in builds with no layer
impl<const N: usize> CounterFamily<N> {
    pub(crate) const fn new(
        name: &'static str,
        label: &'static str,
        values: [&'static str; N],
    ) -> Self {
        Self {
            name,
            label,
            values,
            #[cfg(feature = "metrics")]
            cells: [const { std::sync::OnceLock::new() }; N],
        }
    }

    /// Counts one event labelled `value` (one of the family's values; any other is counted
    /// through the facade directly).
    #[allow(unused_variables, dead_code)]
    pub(crate) fn count(&self, value: &'static str) {
        #[cfg(feature = "metrics")]
        match self.values.iter().position(|v| *v == value) {
            Some(at) => self.cells[at]
                .get_or_init(|| metrics::counter!(self.name, self.label => value))
                .increment(1),
            None => metrics::counter!(self.name, self.label => value).increment(1),
        }
    }
}

impl<const N: usize> Clone for CounterFamily<N> {
    fn clone(&self) -> Self {
        Self::new(self.name, self.label, self.values)
    }
}

impl<const N: usize> std::fmt::Debug for CounterFamily<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterFamily")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Adds `n` to the counter `name`.
#[allow(unused_variables, dead_code)] // used by the compression layer only
pub(crate) fn add(name: &'static str, n: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name).increment(n);
}

/// The counters a layer counts its answers in, with their kept handles (see [`CounterFamily`]):
/// one of these per layer or service (and `ServeDir`), shared by its clones.
#[derive(Clone, Debug)]
#[allow(dead_code)] // each layer counts in some of them
pub(crate) struct Counts {
    /// `tower_edge_validator_total{status}`: a `304` or `412` in place of the response.
    pub(crate) validators: CounterFamily<2>,
    /// `tower_edge_range_total{status}`: a `206` (one part or several) or a `416`.
    pub(crate) ranges: CounterFamily<3>,
    /// `tower_edge_compression_total{encoding}`: a response compressed.
    pub(crate) encodings: CounterFamily<4>,
}

#[allow(dead_code)] // unused in builds with no layer
impl Counts {
    pub(crate) const fn new() -> Self {
        Self {
            validators: CounterFamily::new("tower_edge_validator_total", "status", ["304", "412"]),
            ranges: CounterFamily::new(
                "tower_edge_range_total",
                "status",
                ["206", "206 multipart", "416"],
            ),
            encodings: CounterFamily::new(
                "tower_edge_compression_total",
                "encoding",
                ["br", "gzip", "zstd", "deflate"],
            ),
        }
    }

    /// A validator answered `status` (`304` or `412`) in place of the response: on the
    /// request's span and in `tower_edge_validator_total`.
    pub(crate) fn validator(&self, status: &'static str) {
        record("edge.validator", status);
        self.validators.count(status);
    }

    /// A range answer, `status` (`206`, `206 multipart` or `416`): on the request's span and in
    /// `tower_edge_range_total`.
    pub(crate) fn range(&self, status: &'static str) {
        record("edge.range", status);
        self.ranges.count(status);
    }
}

impl Default for Counts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_spans_declare_every_field() {
        let span = request_span(&http::Request::get("/x").body(()).unwrap());
        // A disabled span (no subscriber) has no metadata; the declaration is what matters.
        if let Some(meta) = span.metadata() {
            for field in SPAN_FIELDS {
                assert!(meta.fields().field(field).is_some(), "{field}");
            }
        }
    }
}
