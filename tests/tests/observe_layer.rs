//! `ObserveLayer`: request duration by route template, cache outcome and status, origin time on
//! the requests the cache forwarded, timing to the end of the body, and the slow-request log.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Body, extract::Path, routing::get};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{Service, ServiceExt};
use tower_edge::{cache::MokaStore, observe::ObserveLayer, stack::EdgeStack};
use tracing::field::{Field, Visit};
use tracing_subscriber::{Layer, layer::Context, prelude::*};

/// Runs `test` on a single-threaded runtime with a recorder of its own (tests in this binary
/// run in parallel; a global recorder would mix their samples).
fn with_recorder(test: impl AsyncFnOnce()) -> Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test()));
    snapshotter
}

/// Every histogram sample of each name, by its labels written `k=v,k=v` in sorted order. (A
/// snapshot takes the histograms' samples: take one, then read it.)
fn samples(snapshotter: &Snapshotter) -> HashMap<String, HashMap<String, usize>> {
    let mut out: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let mut labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        if let DebugValue::Histogram(samples) = value {
            *out.entry(key.key().name().to_owned())
                .or_default()
                .entry(labels.join(","))
                .or_default() += samples.len();
        }
    }
    out
}

/// The samples of the request duration histogram.
fn durations(snapshotter: &Snapshotter) -> HashMap<String, usize> {
    samples(snapshotter)
        .remove("tower_edge_request_duration_seconds")
        .unwrap_or_default()
}

async fn send(app: &Router, path: &str) -> (StatusCode, Bytes) {
    let req = Request::get(path)
        .header(header::HOST, "shop.test")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

fn catalogue() -> Router {
    Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>| async move {
                (
                    [(header::CACHE_CONTROL, "public, max-age=60")],
                    format!("item {id}"),
                )
            }),
        )
        .route("/private", get(|| async { "no cache-control" }))
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "gone") }),
        )
}

#[test]
fn durations_are_labelled_by_route_template_cache_outcome_and_status() {
    let snapshotter = with_recorder(async || {
        let app = catalogue()
            .layer(EdgeStack::new(MokaStore::default()))
            .layer(ObserveLayer::new());
        assert_eq!(send(&app, "/items/1").await.0, StatusCode::OK); // miss
        assert_eq!(send(&app, "/items/1").await.0, StatusCode::OK); // hit
        assert_eq!(send(&app, "/items/2").await.0, StatusCode::OK); // miss
        send(&app, "/private").await;
        send(&app, "/missing").await;
        send(&app, "/nowhere").await; // no route: the fallback, through the cache too
    });
    let mut all = samples(&snapshotter);
    let durations = all.remove("tower_edge_request_duration_seconds").unwrap();
    let expected: HashMap<String, usize> = [
        ("cache=miss,route=/items/{id},status=2xx", 2),
        ("cache=hit,route=/items/{id},status=2xx", 1),
        ("cache=miss,route=/private,status=2xx", 1),
        ("cache=miss,route=/missing,status=4xx", 1),
        ("cache=miss,route=unmatched,status=4xx", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(durations, expected, "raw paths never become labels");
    let origin = all.remove("tower_edge_origin_duration_seconds").unwrap();
    assert_eq!(
        origin.get("route=/items/{id}"),
        Some(&2),
        "{origin:?}: misses only"
    );
    assert_eq!(origin.get("route=/missing"), Some(&1));
}

#[test]
fn a_request_is_timed_to_the_end_of_its_body_or_until_it_is_dropped() {
    let snapshotter = with_recorder(async || {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let rx = Arc::new(Mutex::new(Some(rx)));
        let app = Router::new()
            .route(
                "/stream",
                get(move || {
                    let rx = rx.lock().unwrap().take().expect("one request");
                    async move {
                        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                            rx.recv().await.map(|chunk| (chunk, rx))
                        }))
                    }
                }),
            )
            .route(
                "/dropped",
                get(|| async {
                    Body::from_stream(
                        futures_util::stream::pending::<Result<Bytes, std::io::Error>>(),
                    )
                }),
            )
            .layer(ObserveLayer::new());
        let req = || Request::get("/stream").body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req()).await.unwrap();
        let mut body = res.into_body();
        tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "first"
        );
        drop(tx);
        assert!(body.frame().await.is_none());

        let res = app
            .clone()
            .oneshot(Request::get("/dropped").body(Body::empty()).unwrap())
            .await
            .unwrap();
        drop(res); // the client went away
    });
    let durations = durations(&snapshotter);
    assert_eq!(
        durations.get("cache=none,route=/stream,status=2xx"),
        Some(&1)
    );
    assert_eq!(
        durations.get("cache=none,route=/dropped,status=2xx"),
        Some(&1)
    );
}

#[test]
fn the_sample_waits_for_the_body() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let app = Router::new()
                .route(
                    "/slowly",
                    get(|| async {
                        Body::from_stream(futures_util::stream::iter([
                            Ok::<_, std::io::Error>(Bytes::from_static(b"a")),
                            Ok(Bytes::from_static(b"b")),
                        ]))
                    }),
                )
                .layer(ObserveLayer::new());
            let res = app
                .oneshot(Request::get("/slowly").body(Body::empty()).unwrap())
                .await
                .unwrap();
            let mut body = res.into_body();
            body.frame().await.unwrap().unwrap();
            assert!(
                durations(&snapshotter).is_empty(),
                "nothing recorded while the body is under way"
            );
            while body.frame().await.is_some() {}
            assert_eq!(
                durations(&snapshotter).get("cache=none,route=/slowly,status=2xx"),
                Some(&1)
            );
        });
    });
}

#[test]
fn templates_past_the_bound_share_one_label_and_failures_are_labelled_error() {
    let snapshotter = with_recorder(async || {
        let app = catalogue().layer(ObserveLayer::new().max_routes(1));
        send(&app, "/items/1").await;
        send(&app, "/private").await;
        send(&app, "/missing").await;

        let mut failing = tower::Layer::layer(
            &ObserveLayer::new(),
            tower::service_fn(|_: Request<Body>| async {
                Err::<http::Response<Body>, _>(std::io::Error::other("refused"))
            }),
        );
        let failed = failing
            .ready()
            .await
            .unwrap()
            .call(Request::get("/").body(Body::empty()).unwrap())
            .await;
        assert!(failed.is_err());
    });
    let durations = durations(&snapshotter);
    assert_eq!(
        durations.get("cache=none,route=/items/{id},status=2xx"),
        Some(&1)
    );
    assert_eq!(durations.get("cache=none,route=other,status=2xx"), Some(&1));
    assert_eq!(durations.get("cache=none,route=other,status=4xx"), Some(&1));
    assert_eq!(
        durations.get("cache=none,route=unmatched,status=error"),
        Some(&1)
    );
}

/// The events of target `tower_edge::slow`, each as its fields.
#[derive(Clone, Default)]
struct SlowLog(Arc<Mutex<Vec<HashMap<String, String>>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: tracing::Subscriber> Layer<S> for SlowLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "tower_edge::slow" {
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

#[test]
fn requests_over_the_threshold_are_logged_once_with_their_route_outcome_and_times() {
    let log = SlowLog::default();
    let _guard = tracing_subscriber::registry()
        .with(log.clone())
        .set_default();
    with_recorder(async || {
        // A threshold every request passes, to see what each line says.
        let app = catalogue()
            .layer(EdgeStack::new(MokaStore::default()))
            .layer(ObserveLayer::new().slow_after(Duration::ZERO));
        send(&app, "/items/7?x=1").await; // miss
        send(&app, "/items/7?x=1").await; // hit
        // One nobody passes.
        let quiet = catalogue().layer(ObserveLayer::new().slow_after(Duration::from_secs(3600)));
        send(&quiet, "/items/8").await;
    });
    let lines = log.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (miss, hit) = (&lines[0], &lines[1]);
    assert_eq!(miss["message"], "slow request");
    assert_eq!(miss["route"], "/items/{id}");
    assert_eq!(miss["path"], "/items/7", "the path, without the query");
    assert_eq!(miss["method"], "GET");
    assert_eq!(miss["status"], "2xx");
    assert_eq!(miss["cache"], "miss");
    assert!(miss["origin_ms"].parse::<f64>().unwrap() > 0.0, "{miss:?}");
    assert!(miss["store_ms"].parse::<f64>().unwrap() > 0.0, "{miss:?}");
    assert!(miss["total_ms"].parse::<f64>().unwrap() >= miss["origin_ms"].parse::<f64>().unwrap());
    assert_eq!(hit["cache"], "hit");
    assert_eq!(
        hit["origin_ms"].parse::<f64>().unwrap(),
        0.0,
        "a hit never reaches the origin"
    );
}
