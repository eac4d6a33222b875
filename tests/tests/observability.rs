//! Every layer records its decision on the request span and counts it through `metrics`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Body, http::header, routing::get};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceExt;
use tower_edge::{cache::MokaStore, observe::request_span, stack::EdgeStack};
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

/// Collects every field recorded on any span, by name (last value wins).
#[derive(Clone, Default)]
struct Fields(Arc<Mutex<HashMap<String, String>>>);

struct Collect<'a>(&'a Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        let text = text.trim_matches('"').to_owned();
        self.0
            .0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), text);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0
            .0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Fields {
    fn on_record(&self, _: &span::Id, values: &span::Record<'_>, _: Context<'_, S>) {
        values.record(&mut Collect(self));
    }
}

fn counter(
    snapshot: &[(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    name: &str,
    label: Option<(&str, &str)>,
) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == name)
        .filter(|(key, _, _, _)| {
            label.is_none_or(|(k, v)| key.key().labels().any(|l| l.key() == k && l.value() == v))
        })
        .map(|(_, _, _, value)| match *value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn decisions_become_span_fields_and_counters() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");
    let fields = Fields::default();
    let _guard = tracing_subscriber::registry()
        .with(fields.clone())
        .set_default();

    let page = "<p>observed</p>".repeat(200);
    let app = Router::new()
        .route(
            "/",
            get(move || async move {
                (
                    [
                        (header::CACHE_CONTROL, "public, max-age=60"),
                        (header::CONTENT_TYPE, "text/html"),
                    ],
                    page,
                )
            }),
        )
        .layer(EdgeStack::new(MokaStore::default()));
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let app = app.clone();
        async move {
            let mut req = Request::get("/").header(header::HOST, "t");
            for (n, v) in headers {
                req = req.header(n, v);
            }
            let req = req.body(Body::empty()).unwrap();
            let span = request_span(&req);
            let res = tracing::Instrument::instrument(app.oneshot(req), span.clone())
                .await
                .unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            let _entered = span.enter();
            res.into_body().collect().await.unwrap();
            drop(_entered);
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            (status, headers)
        }
    };

    let (_, h) = send(vec![("accept-encoding", "gzip")]).await;
    {
        let f = fields.0.lock().unwrap();
        assert_eq!(f["edge.encoding"], "gzip");
        assert_eq!(f["edge.bytes_in"], "3000");
        assert!(f["edge.bytes_out"].parse::<u64>().unwrap() < 3000);
        assert!(
            f["edge.cache"].starts_with("fwd=miss"),
            "{:?}",
            f["edge.cache"]
        );
        assert_eq!(f["edge.cache_key"].len(), 16);
    }
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    let (status, _) = send(vec![
        ("accept-encoding", "gzip"),
        ("if-none-match", Box::leak(etag.into_boxed_str())),
    ])
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(fields.0.lock().unwrap()["edge.cache"].starts_with("hit"));
    // A precondition the stack answers (here the cache, from the fresh response's tag).
    let (status, _) = send(vec![
        ("accept-encoding", "identity"),
        ("cache-control", "no-cache"),
        ("if-match", "\"nope\""),
    ])
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(fields.0.lock().unwrap()["edge.validator"], "412");

    let snapshot = snapshotter.snapshot().into_vec();
    assert!(counter(&snapshot, "tower_edge_cache_total", Some(("event", "miss"))) >= 1);
    assert!(counter(&snapshot, "tower_edge_cache_total", Some(("event", "hit"))) >= 1);
    assert_eq!(
        counter(
            &snapshot,
            "tower_edge_compression_total",
            Some(("encoding", "gzip"))
        ),
        1
    );
    assert_eq!(
        counter(&snapshot, "tower_edge_compression_bytes_in_total", None),
        3000
    );
    assert!(
        counter(
            &snapshot,
            "tower_edge_validator_total",
            Some(("status", "412"))
        ) >= 1
    );
}
