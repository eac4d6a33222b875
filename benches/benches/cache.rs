//! ResponseCacheLayer in process, without sockets: a hit, and the preset's hit, against the bare
//! handler returning the same bytes; and the preset's hit observed (`ObserveLayer` with a
//! Prometheus recorder keeping its histograms and counters), for what metrics cost a hit.
//!
//! ```text
//! cargo bench -p tower-edge-benches --bench cache
//! ```

use std::hint::black_box;

use axum::{Router, body::Body, http::header};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_edge_benches::{bare_app, cache_hit_app, observed_preset_app, preset_app};

async fn roundtrip(app: Router) -> usize {
    let req = Request::get("/data")
        .header(header::HOST, "bench")
        .body(Body::empty())
        .expect("valid request");
    let res = app.oneshot(req).await.expect("infallible router");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The state set once, as `axum::serve` sets it; without it axum would build each route's
    // service again per request.
    let bare = bare_app().with_state(());
    let cached = cache_hit_app().with_state(());
    let preset = preset_app().with_state(());
    let observed = observed_preset_app().with_state(());
    // The recorder of this thread, on which the runtime runs, installed before the first
    // request (the layers keep the handles they get then).
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Prefix("tower_edge_".to_owned()),
            &tower_edge::observe::DURATION_BUCKETS,
        )
        .expect("valid buckets")
        .build_recorder();
    let upkeep = recorder.handle();
    // Fill the caches, and let the store writes spawned at the bodies' ends run.
    rt.block_on(async {
        roundtrip(cached.clone()).await;
        roundtrip(preset.clone()).await;
        tokio::task::yield_now().await;
    });
    let mut group = c.benchmark_group("cache-10KiB");
    group.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(roundtrip(bare.clone()).await) });
    });
    group.bench_function("hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(roundtrip(cached.clone()).await) });
    });
    group.bench_function("preset-hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(roundtrip(preset.clone()).await) });
    });
    {
        let _recording = metrics::set_default_local_recorder(&recorder);
        rt.block_on(async {
            roundtrip(observed.clone()).await;
            tokio::task::yield_now().await;
        });
        let mut n = 0u32;
        group.bench_function("preset-hit-observed", |b| {
            b.to_async(&rt).iter(|| {
                // The exporter's upkeep, which an installed recorder runs every few seconds:
                // here every 64 Ki requests, so that samples do not pile up.
                n = n.wrapping_add(1);
                if n.is_multiple_of(65_536) {
                    upkeep.run_upkeep();
                }
                async { black_box(roundtrip(observed.clone()).await) }
            });
        });
        let rendered = upkeep.render();
        assert!(
            rendered.contains("tower_edge_request_duration_seconds_bucket"),
            "the histograms were kept"
        );
    }
    group.finish();
}

criterion_group!(benches, cache);
criterion_main!(benches);
