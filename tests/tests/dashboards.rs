//! `examples/server/dashboards/`: every metric the Grafana dashboard queries is one the example
//! server really exports, on memory in front of Redis, after traffic that exercises each layer;
//! and the Prometheus configuration scrapes the path the server serves them at.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use axum::{Router, body::Body};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_edge_example_server::{AppState, app_on_redis, shared_store};
use tower_edge_tests::redis_server::RedisServer;

const DASHBOARD: &str = include_str!("../../examples/server/dashboards/grafana-tower-edge.json");
const PROMETHEUS: &str = include_str!("../../examples/server/dashboards/prometheus.yml");

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "shop.test");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if method != "GET" {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let body = if method == "PUT" {
        Body::from(r#"{"name":"Renamed","price_cents":100,"description":"d","stock":1}"#)
    } else {
        Body::empty()
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The metric families of a scrape, by their `# TYPE` lines.
fn families(scrape: &str) -> HashMap<String, String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// Every `tower_edge_*` name in the dashboard's queries.
fn queried(dashboard: &serde_json::Value, out: &mut BTreeSet<String>) {
    match dashboard {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "expr" {
                    let expr = value.as_str().expect("a query is text");
                    let mut rest = expr;
                    while let Some(at) = rest.find("tower_edge_") {
                        let name: String = rest[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        rest = &rest[at + name.len()..];
                        out.insert(name);
                    }
                } else {
                    queried(value, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queried(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Prefix("tower_edge_".to_owned()),
            &tower_edge::observe::DURATION_BUCKETS,
        )
        .unwrap()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let server = RedisServer::start();
    let url = server.url();
    let l2 = || {
        shared_store(Some(&url), None)
            .unwrap()
            .expect("a Redis store")
    };
    let app = app_on_redis(AppState::new().with_metrics(recorder.clone()), l2());
    // A second instance on the same Redis: its writes reach the first over the bus.
    let other = app_on_redis(AppState::new(), l2());

    let br = [("accept-encoding", "br")];
    send(&app, "GET", "/api/products", &br).await; // a miss, compressed
    let (_, headers, _) = send(&app, "GET", "/api/products/1", &[]).await;
    send(&app, "GET", "/api/products/1", &[]).await; // a hit
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, _) = send(&app, "GET", "/api/products/1", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = send(&app, "GET", "/api/products/1", &[("range", "bytes=0-3")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);

    // A write on the other instance, answered by the bus on this one (bounded wait).
    let (_, headers, _) = send(&other, "GET", "/api/products/2", &[]).await;
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, _) = send(&other, "PUT", "/api/products/2", &[("if-match", &etag)]).await;
    assert!(status.is_success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let (status, _, scrape) = send(&app, "GET", "/metrics", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let received = scrape
            .lines()
            .find_map(|l| l.strip_prefix("tower_edge_bus_received_total "))
            .is_some_and(|n| n.trim() != "0");
        // The Redis database's size is read in the background at each scrape.
        let sized = scrape.contains("tower_edge_redis_keys{");
        if received && sized {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the bus never delivered the write, or Redis was never sized:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let exported = families(&scrape);
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    queried(&dashboard, &mut names);
    assert!(names.len() >= 15, "{names:?}");
    let mut missing = Vec::new();
    for name in &names {
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (exported.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        if !exported.contains_key(family) {
            missing.push(name.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {:?}",
        exported.keys().collect::<BTreeSet<_>>()
    );
    // And the other way: what an operator watches first is on the dashboard.
    for family in [
        "tower_edge_request_duration_seconds",
        "tower_edge_origin_duration_seconds",
        "tower_edge_cache_total",
        "tower_edge_store_operation_duration_seconds",
        "tower_edge_redis_breaker_open",
        "tower_edge_bus_connected",
        "tower_edge_store_entries",
        "tower_edge_memo_total",
    ] {
        assert!(exported.contains_key(family), "{family} is not exported");
        assert!(
            names.iter().any(|n| n.starts_with(family)),
            "{family} is not on the dashboard"
        );
    }

    // Prometheus scrapes the path the server serves its metrics at.
    assert!(PROMETHEUS.contains("metrics_path: /metrics"));
    assert!(PROMETHEUS.contains("job_name: tower-edge"));
}
