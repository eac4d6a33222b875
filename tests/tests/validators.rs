//! ETag and Last-Modified through the example server on a real socket.

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use tower_edge_tests::TestServer;

#[tokio::test]
async fn example_routes_answer_200_then_304_then_412() {
    let server = TestServer::start(tower_edge_example_server::app()).await;
    for path in [
        "/",
        "/api/products",
        "/api/products/7",
        "/articles/validators",
        "/api/stats",
    ] {
        let first = server.get(path, &[]).await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        assert!(!first.body().is_empty(), "{path}");
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();

        let again = server.get(path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body().is_empty(), "{path}");
        assert_eq!(again.headers()[header::ETAG], etag.as_str(), "{path}");
        assert!(
            again.headers().get(header::CONTENT_TYPE).is_none(),
            "{path}"
        );

        let stale = server.get(path, &[("if-match", "\"stale\"")]).await;
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED, "{path}");
        assert_eq!(stale.headers()[header::ETAG], etag.as_str(), "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn head_carries_the_get_etag_without_a_body() {
    let server = TestServer::start(tower_edge_example_server::app()).await;
    let get = server.get("/api/products", &[]).await;
    let head = server
        .send(
            Request::head("/api/products")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[header::ETAG], get.headers()[header::ETAG]);
    assert!(head.body().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn last_modified_revalidation_on_a_real_socket() {
    let server = TestServer::start(tower_edge_example_server::app()).await;
    let first = server.get("/articles/caching-at-the-edge", &[]).await;
    let lm = first.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_owned();
    let again = server
        .get(
            "/articles/caching-at-the-edge",
            &[("if-modified-since", &lm)],
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let older = server
        .get(
            "/articles/caching-at-the-edge",
            &[("if-unmodified-since", "Mon, 01 Jan 2024 00:00:00 GMT")],
        )
        .await;
    assert_eq!(older.status(), StatusCode::PRECONDITION_FAILED);
    server.stop().await;
}

#[tokio::test]
async fn lost_update_is_refused_on_a_real_socket() {
    let server = TestServer::start(tower_edge_example_server::app()).await;
    let tag = server.get("/api/products/5", &[]).await.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    let update = |if_match: &str| {
        Request::put("/api/products/5")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, if_match)
            .body(Full::new(Bytes::from_static(
                br#"{"name":"n","price_cents":5,"description":"d","stock":1}"#,
            )))
            .unwrap()
    };
    // Two clients read the same version; the first write wins, the second gets 412.
    assert_eq!(server.send(update(&tag)).await.status(), StatusCode::OK);
    let second = server.send(update(&tag)).await;
    assert_eq!(second.status(), StatusCode::PRECONDITION_FAILED);
    assert_ne!(second.headers()[header::ETAG], tag.as_str());
    server.stop().await;
}

#[tokio::test]
async fn garbage_conditionals_never_cause_a_5xx() {
    let server = TestServer::start(tower_edge_example_server::app()).await;
    let long = "\"x\",".repeat(2000);
    for (name, value) in [
        ("if-none-match", "garbage"),
        ("if-none-match", long.as_str()),
        ("if-match", "W/"),
        ("if-modified-since", "not a date"),
        ("if-unmodified-since", "Sun, 99 Nov 1994 08:49:37 GMT"),
        ("if-none-match", "\"unterminated"),
    ] {
        for path in ["/api/products", "/api/products/7", "/articles/validators"] {
            let res = server.get(path, &[(name, value)]).await;
            assert!(
                res.status().is_success() || res.status() == StatusCode::PRECONDITION_FAILED,
                "{path} {name}: {} gave {}",
                &value[..value.len().min(20)],
                res.status()
            );
        }
    }
    server.stop().await;
}
