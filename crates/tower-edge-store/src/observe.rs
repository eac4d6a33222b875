//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`; without
//! it every function here does nothing). The names, all under `tower_edge_`, are listed on
//! [`CacheStore::record_metrics`](crate::CacheStore::record_metrics).

use std::time::Duration;

/// One operation of a remote store: `tower_edge_store_operation_duration_seconds{backend, op,
/// result}`. Memory stores are not timed: their operations cost about what timing them would.
#[allow(unused_variables, dead_code)] // used by the Redis backend only
pub(crate) fn store_operation(backend: &'static str, op: &'static str, took: Duration, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        "tower_edge_store_operation_duration_seconds",
        "backend" => backend,
        "op" => op,
        "result" => if ok { "ok" } else { "error" },
    )
    .record(took.as_secs_f64());
}

/// One event of a `Memo`: `tower_edge_memo_total{namespace, event}`.
#[allow(unused_variables, dead_code)] // used by `memo` only
pub(crate) fn memo(namespace: &str, event: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_edge_memo_total",
        "namespace" => namespace.to_owned(),
        "event" => event,
    )
    .increment(1);
}

/// Adds one to the counter `name`.
#[allow(dead_code)] // used by the Redis backend only
pub(crate) fn count(name: &'static str) {
    count_by(name, 1);
}

/// Adds `n` to the counter `name` (0 makes it exist).
#[allow(unused_variables, dead_code)] // used by the Redis backend only
pub(crate) fn count_by(name: &'static str, n: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name).increment(n);
}

/// Sets the gauge `name{backend}`.
#[allow(unused_variables, dead_code)]
pub(crate) fn gauge(name: &'static str, backend: &'static str, value: f64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(name, "backend" => backend).set(value);
}

/// Sets the counter `name` to `total` (a total the store keeps itself).
#[allow(unused_variables, dead_code)]
pub(crate) fn total(name: &'static str, total: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name).absolute(total);
}
