//! The example server on a real socket: every route the home page documents answers as it says,
//! the way `curl` would see it.

use http::{StatusCode, header};

mod common;
use common::get;
use tower_edge_example_server::{AppState, ROUTES, app_with_state};

#[tokio::test]
async fn every_documented_route_answers_on_a_real_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app_with_state(AppState::new().with_purge_token("t"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The home page links every route, and each answers 200.
    let (status, _, home) = get(addr, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let home = String::from_utf8(home.to_vec()).unwrap();
    for (path, _) in ROUTES {
        assert!(
            home.contains(&format!("href=\"{path}\"")),
            "{path} is not on the home page"
        );
        let (status, headers, body) = get(addr, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path}");
        assert!(
            headers.contains_key("cache-status"),
            "{path}: every answer says what the cache did"
        );
    }

    // What the page promises of the catalogue: compressed, cached, revalidated.
    let (_, headers, _) = get(addr, "/api/products", &[("accept-encoding", "br")]).await;
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, _) = get(
        addr,
        "/api/products",
        &[("accept-encoding", "br"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // The download resumes.
    let (status, headers, body) =
        get(addr, "/download/sample.bin", &[("range", "bytes=0-99")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body.len(), 100);
    assert!(
        headers[header::CONTENT_RANGE]
            .to_str()
            .unwrap()
            .starts_with("bytes 0-99/")
    );
    server.abort();
}
