//! Validators and preconditions (RFC 9110 §8.8, §13) through the example server on a real socket.

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use tower_edge_example_server::{ROUTES, app};
use tower_edge_tests::{TestServer, send_h2};

fn etag_of(res: &http::Response<Bytes>) -> String {
    res.headers()
        .get(header::ETAG)
        .expect("an ETag on the 200")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

#[tokio::test]
async fn every_get_route_answers_200_then_304_then_412() {
    let server = TestServer::start(app()).await;
    // The cache's counters change with every request, so their tag does too.
    // The event stream has no length to hash.
    for (path, _) in ROUTES
        .iter()
        .filter(|(p, _)| *p != "/cache/stats" && *p != "/events")
    {
        let first = server.get(path, &[]).await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        assert!(!first.body().is_empty(), "{path}");
        let etag = etag_of(&first);

        let again = server.get(path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body().is_empty(), "{path}: a 304 has no body");
        // RFC 9110 §15.4.5: the 304 carries the validator the 200 would have.
        assert_eq!(again.headers()[header::ETAG], etag.as_str(), "{path}");
        assert!(
            !again.headers().contains_key(header::CONTENT_TYPE),
            "{path}"
        );

        let stale = server.get(path, &[("if-match", "\"stale\"")]).await;
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED, "{path}");
        assert_eq!(stale.headers()[header::ETAG], etag.as_str(), "{path}");
    }
    server.stop().await;
}

/// RFC 9110 §8.6: a 304 carries no `Content-Length` unless it is the 200's length. Over HTTP/2
/// nothing strips a stated `0` on the way out, so every layer's 304 (the cache, `ETagLayer`,
/// `LastModifiedLayer`, the extractor, `ServeFile`, `ServeDir`) must leave the length unstated.
#[tokio::test]
async fn no_304_over_http2_states_a_content_length() {
    let server = TestServer::start(app()).await;
    let h2_get = |path: &str, inm: Option<&str>| {
        let mut req = Request::get(format!("http://{}{path}", server.addr()));
        if let Some(tag) = inm {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        send_h2(
            server.addr(),
            req.body(Full::new(Bytes::new())).expect("valid request"),
        )
    };
    for (path, _) in ROUTES
        .iter()
        .filter(|(p, _)| *p != "/cache/stats" && *p != "/events")
    {
        let first = h2_get(path, None).await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        assert_eq!(first.version(), http::Version::HTTP_2, "{path}");
        let etag = etag_of(&first);
        // Twice: the first may be answered by the route's own layer, the second by the cache.
        for _ in 0..2 {
            let again = h2_get(path, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(
                again.headers().get(header::CONTENT_LENGTH),
                None,
                "{path}: {:?}",
                again.headers()
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_weak_if_none_match_matches_and_a_weak_if_match_does_not() {
    let server = TestServer::start(app()).await;
    let etag = etag_of(&server.get("/api/products", &[]).await);
    let weak = format!("W/{etag}");
    let res = server
        .get("/api/products", &[("if-none-match", &weak)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // RFC 9110 §13.1.1: If-Match uses the strong comparison, which a weak tag never passes.
    let res = server.get("/api/products", &[("if-match", &weak)]).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let res = server.get("/api/products", &[("if-match", &etag)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn lists_and_star_are_honoured() {
    let server = TestServer::start(app()).await;
    let etag = etag_of(&server.get("/api/products", &[]).await);
    let list = format!("\"other\", {etag} , W/\"x\"");
    let res = server
        .get("/api/products", &[("if-none-match", &list)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = server.get("/api/products", &[("if-none-match", "*")]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = server.get("/api/products", &[("if-match", "*")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn head_gets_the_same_etag_as_get_and_revalidates() {
    let server = TestServer::start(app()).await;
    let etag = etag_of(&server.get("/api/products", &[]).await);
    let head = |extra: Option<&str>| {
        let mut req = Request::head("/api/products");
        if let Some(tag) = extra {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        req.body(Full::new(Bytes::new())).unwrap()
    };
    let res = server.send(head(None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ETAG], etag.as_str());
    assert!(res.body().is_empty());
    let res = server.send(head(Some(&etag))).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    server.stop().await;
}

#[tokio::test]
async fn last_modified_revalidates_with_if_modified_since() {
    let server = TestServer::start(app()).await;
    let first = server.get("/articles/validators", &[]).await;
    let date = first.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_owned();
    let res = server
        .get("/articles/validators", &[("if-modified-since", &date)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()[header::LAST_MODIFIED], date.as_str());
    // An earlier date: the article changed since, so the client gets it.
    let res = server
        .get(
            "/articles/validators",
            &[("if-modified-since", "Wed, 01 Jan 2020 00:00:00 GMT")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since, here a non-matching tag.
    let res = server
        .get(
            "/articles/validators",
            &[("if-modified-since", &date), ("if-none-match", "\"nope\"")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // If-Unmodified-Since before the change: 412.
    let res = server
        .get(
            "/articles/validators",
            &[("if-unmodified-since", "Wed, 01 Jan 2020 00:00:00 GMT")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    server.stop().await;
}

fn put(server: &TestServer, id: u32, if_match: Option<&str>, name: &str) -> Request<Full<Bytes>> {
    let mut req = Request::put(format!("/api/products/{id}"))
        .header(header::HOST, server.addr().to_string())
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(tag) = if_match {
        req = req.header(header::IF_MATCH, tag);
    }
    let body = format!(r#"{{"name":"{name}","price_cents":100,"description":"d","stock":1}}"#);
    req.body(Full::new(Bytes::from(body))).unwrap()
}

#[tokio::test]
async fn a_lost_update_is_refused_with_412() {
    let server = TestServer::start(app()).await;
    let read = server.get("/api/products/5", &[]).await;
    let etag = etag_of(&read);

    // Two clients read the same version; the first write wins…
    let first = server.send(put(&server, 5, Some(&etag), "first")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let new_etag = etag_of(&first);
    assert_ne!(new_etag, etag);
    // …and the second, based on the old version, is refused instead of overwriting it.
    let second = server.send(put(&server, 5, Some(&etag), "second")).await;
    assert_eq!(second.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(second.headers()[header::ETAG], new_etag.as_str());

    let now = server.get("/api/products/5", &[]).await;
    let body: serde_json::Value = serde_json::from_slice(now.body()).unwrap();
    assert_eq!(body["name"], "first");
    // A write without any precondition is asked for one (RFC 6585 §3).
    let blind = server.send(put(&server, 5, None, "blind")).await;
    assert_eq!(blind.status(), StatusCode::PRECONDITION_REQUIRED);
    server.stop().await;
}

#[tokio::test]
async fn garbage_conditional_headers_never_cause_a_server_error() {
    let server = TestServer::start(app()).await;
    let garbage: &[&[u8]] = &[
        b"",
        b",",
        b"\"unterminated",
        b"W/",
        b"W/\"",
        b"no-quotes",
        b"\"a\"\"b\"",
        b"*, \"a\"",
        b"\x7f\x01",
        b"\xff\xfe",
        b"Mon, 99 Foo 2024 99:99:99 GMT",
        b"Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        b"9999999999999999999999",
    ];
    let names = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ];
    // The event stream takes seconds by design; the other routes cover every layer.
    for (path, _) in ROUTES.iter().filter(|(p, _)| *p != "/events") {
        for name in &names {
            for value in garbage {
                let Ok(value) = HeaderValue::from_bytes(value) else {
                    continue;
                };
                let req = Request::get(*path)
                    .header(name, value.clone())
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let res = server.send(req).await;
                let status = res.status();
                assert!(
                    !status.is_server_error(),
                    "{path} {name}: {value:?} gave {status}"
                );
                // RFC 9110 §13.1.1: an If-Match that cannot match anything fails; an invalid
                // If-None-Match or date is ignored and the full response is sent.
                if *name == header::IF_MATCH {
                    assert!(
                        status == StatusCode::PRECONDITION_FAILED || status == StatusCode::OK,
                        "{path} If-Match {value:?} gave {status}"
                    );
                } else if *name == header::IF_NONE_MATCH && value.as_bytes().starts_with(b"*") {
                    // A list that contains `*` is read as `*` (see EntityTagList::is_any).
                    assert_eq!(status, StatusCode::NOT_MODIFIED, "{path} {name}: {value:?}");
                } else {
                    assert_eq!(status, StatusCode::OK, "{path} {name}: {value:?}");
                }
            }
        }
    }
    server.stop().await;
}
