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

/// An app, a path, the request's fields and the status expected.
type Case<'a> = (&'a Router, &'a str, Vec<(&'a str, &'a str)>, StatusCode);

/// Each layer and `ServeDir` counts its 304s, 412s, 206s, 416s and compressed responses through
/// handles it keeps: the second answer of each kind is counted as the first was.
#[tokio::test]
async fn every_layer_counts_its_answers_through_its_kept_handles() {
    use tower_edge::{
        compression::CompressionLayer, etag::ETagLayer, fs::ServeDir,
        last_modified::LastModifiedLayer, range::RangeLayer,
    };

    // A recorder of this thread alone (the runtime of a `#[tokio::test]` polls here), so that
    // the other test's global one does not see these counts, nor this one its.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let page = "<p>counted</p>".repeat(200);
    let handler = move || {
        let page = page.clone();
        async move {
            (
                [
                    (header::CONTENT_TYPE, "text/html"),
                    (header::LAST_MODIFIED, "Mon, 30 Nov 2026 10:00:00 GMT"),
                ],
                page,
            )
        }
    };
    let etag = Router::new()
        .route("/", get(handler.clone()))
        .layer(ETagLayer::new());
    let last_modified = Router::new()
        .route("/", get(handler.clone()))
        .layer(LastModifiedLayer::new());
    let range = Router::new()
        .route("/", get(handler.clone()))
        .layer(RangeLayer::new());
    let compression = Router::new()
        .route("/", get(handler))
        .layer(CompressionLayer::new());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "0123456789".repeat(100)).unwrap();
    // Served from memory on this thread after the first request, however long the test
    // takes: a file read from disk is answered on the blocking pool, which this thread's
    // recorder does not reach.
    let files = Router::new().fallback_service(
        ServeDir::new(dir.path()).cache_revalidate_interval(std::time::Duration::from_secs(3600)),
    );

    let send = |app: &Router, path: &str, headers: &[(&str, &str)]| {
        let mut req = Request::get(path).header(header::HOST, "t");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let app = app.clone();
        let req = req.body(Body::empty()).unwrap();
        async move {
            let res = app.oneshot(req).await.unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            res.into_body().collect().await.unwrap();
            (status, headers)
        }
    };

    let (_, h) = send(&etag, "/", &[]).await;
    let tag = h[header::ETAG].to_str().unwrap().to_owned();
    let (_, h) = send(&files, "/f.txt", &[]).await;
    let file_tag = h[header::ETAG].to_str().unwrap().to_owned();
    let since = "Mon, 30 Nov 2026 10:00:00 GMT";
    let earlier = "Sun, 29 Nov 2026 10:00:00 GMT";
    for _ in 0..2 {
        let cases: [Case<'_>; 13] = [
            (
                &etag,
                "/",
                vec![("if-none-match", &tag)],
                StatusCode::NOT_MODIFIED,
            ),
            (
                &etag,
                "/",
                vec![("if-match", "\"other\"")],
                StatusCode::PRECONDITION_FAILED,
            ),
            (
                &last_modified,
                "/",
                vec![("if-modified-since", since)],
                StatusCode::NOT_MODIFIED,
            ),
            (
                &last_modified,
                "/",
                vec![("if-unmodified-since", earlier)],
                StatusCode::PRECONDITION_FAILED,
            ),
            (
                &range,
                "/",
                vec![("range", "bytes=0-9")],
                StatusCode::PARTIAL_CONTENT,
            ),
            (
                &range,
                "/",
                vec![("range", "bytes=0-1,5-6")],
                StatusCode::PARTIAL_CONTENT,
            ),
            (
                &range,
                "/",
                vec![("range", "bytes=999999-")],
                StatusCode::RANGE_NOT_SATISFIABLE,
            ),
            (
                &compression,
                "/",
                vec![("accept-encoding", "gzip")],
                StatusCode::OK,
            ),
            (
                &files,
                "/f.txt",
                vec![("if-none-match", &file_tag)],
                StatusCode::NOT_MODIFIED,
            ),
            (
                &files,
                "/f.txt",
                vec![("if-match", "\"other\"")],
                StatusCode::PRECONDITION_FAILED,
            ),
            (
                &files,
                "/f.txt",
                vec![("range", "bytes=0-9")],
                StatusCode::PARTIAL_CONTENT,
            ),
            (
                &files,
                "/f.txt",
                vec![("range", "bytes=0-1,5-6")],
                StatusCode::PARTIAL_CONTENT,
            ),
            (
                &files,
                "/f.txt",
                vec![("range", "bytes=999999-")],
                StatusCode::RANGE_NOT_SATISFIABLE,
            ),
        ];
        for (app, path, headers, expected) in cases {
            let (status, _) = send(app, path, &headers).await;
            assert_eq!(status, expected, "{path} {headers:?}");
        }
    }

    let snapshot = snapshotter.snapshot().into_vec();
    let validator = |status| {
        counter(
            &snapshot,
            "tower_edge_validator_total",
            Some(("status", status)),
        )
    };
    // ETagLayer, LastModifiedLayer and ServeDir, twice each.
    assert_eq!(validator("304"), 6);
    assert_eq!(validator("412"), 6);
    let range = |status| {
        counter(
            &snapshot,
            "tower_edge_range_total",
            Some(("status", status)),
        )
    };
    // RangeLayer and ServeDir, twice each.
    assert_eq!(range("206"), 4);
    assert_eq!(range("206 multipart"), 4);
    assert_eq!(range("416"), 4);
    assert_eq!(
        counter(
            &snapshot,
            "tower_edge_compression_total",
            Some(("encoding", "gzip"))
        ),
        2
    );
}
