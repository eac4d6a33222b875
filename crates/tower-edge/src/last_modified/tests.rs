use std::{
    convert::Infallible,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header, header::HeaderName};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};

use super::LastModifiedLayer;
use crate::{clock::ManualClock, etag::ETagLayer, http::date::format_http_date};

const T0: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn clock() -> ManualClock {
    ManualClock::new(at(T0 + 3600))
}

fn request(method: Method, headers: &[(HeaderName, String)]) -> Request<()> {
    let mut req = Request::builder().method(method).uri("/");
    for (name, value) in headers {
        req = req.header(name, value.as_str());
    }
    req.body(()).unwrap()
}

fn with_last_modified(secs: u64) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::LAST_MODIFIED, format_http_date(at(secs)))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(b"article body")))
        .unwrap()
}

async fn call(layer: LastModifiedLayer, req: Request<()>, lm: Option<u64>) -> Response<Bytes> {
    let svc = layer.layer(service_fn(move |_req: Request<()>| async move {
        Ok::<_, Infallible>(match lm {
            Some(secs) => with_last_modified(secs),
            None => Response::new(Full::new(Bytes::from_static(b"no date"))),
        })
    }));
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

fn ims(secs: u64) -> (HeaderName, String) {
    (header::IF_MODIFIED_SINCE, format_http_date(at(secs)))
}

fn ius(secs: u64) -> (HeaderName, String) {
    (header::IF_UNMODIFIED_SINCE, format_http_date(at(secs)))
}

#[tokio::test]
async fn returns_304_when_not_modified_since() {
    let layer = LastModifiedLayer::new().clock(clock());
    let res = call(layer, request(Method::GET, &[ims(T0)]), Some(T0)).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert!(res.body().is_empty());
    assert!(res.headers().get(header::CONTENT_TYPE).is_none());
    assert_eq!(
        res.headers()[header::LAST_MODIFIED],
        format_http_date(at(T0)).as_str()
    );
}

#[tokio::test]
async fn returns_200_when_modified_since() {
    let layer = LastModifiedLayer::new().clock(clock());
    let res = call(layer, request(Method::HEAD, &[ims(T0 - 1)]), Some(T0)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn evaluates_if_modified_since_in_the_future() {
    // RFC 9110 §13.1.3 compares the date with Last-Modified whatever the clock says.
    let layer = LastModifiedLayer::new().clock(clock());
    let res = call(layer, request(Method::GET, &[ims(T0 + 7200)]), Some(T0)).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn ignores_if_modified_since_when_if_none_match_is_present() {
    let layer = LastModifiedLayer::new().clock(clock());
    let headers = [ims(T0), (header::IF_NONE_MATCH, "\"x\"".to_owned())];
    let res = call(layer, request(Method::GET, &headers), Some(T0)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn returns_412_when_modified_after_if_unmodified_since() {
    let layer = LastModifiedLayer::new().clock(clock());
    let res = call(layer, request(Method::GET, &[ius(T0 - 1)]), Some(T0)).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn garbage_dates_are_ignored() {
    for value in ["yesterday", "", "Sun, 06 Nov 1994 08:49:37 GMT, again"] {
        let layer = LastModifiedLayer::new().clock(clock());
        let headers = [
            (header::IF_MODIFIED_SINCE, value.to_owned()),
            (header::IF_UNMODIFIED_SINCE, value.to_owned()),
        ];
        let res = call(layer, request(Method::GET, &headers), Some(T0)).await;
        assert_eq!(res.status(), StatusCode::OK, "{value:?}");
    }
}

#[tokio::test]
async fn leaves_other_methods_alone() {
    let layer = LastModifiedLayer::new().clock(clock());
    let res = call(layer, request(Method::POST, &[ius(T0 - 1)]), Some(T0)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn stamps_last_modified_from_source() {
    let layer = LastModifiedLayer::new()
        .clock(clock())
        .source(|_: &http::response::Parts| Some(at(T0) + Duration::from_millis(700)));
    let res = call(layer, request(Method::GET, &[]), None).await;
    assert_eq!(
        res.headers()[header::LAST_MODIFIED],
        format_http_date(at(T0)).as_str()
    );
}

#[tokio::test]
async fn stamped_time_answers_if_modified_since() {
    let layer = LastModifiedLayer::new()
        .clock(clock())
        .source(|_: &http::response::Parts| Some(at(T0)));
    let res = call(layer, request(Method::GET, &[ims(T0)]), None).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn source_reads_response_extensions() {
    #[derive(Clone, Copy)]
    struct UpdatedAt(SystemTime);

    let layer = LastModifiedLayer::new()
        .clock(clock())
        .source(|parts: &http::response::Parts| parts.extensions.get::<UpdatedAt>().map(|u| u.0));
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        let mut res = Response::new(Full::new(Bytes::from_static(b"x")));
        res.extensions_mut().insert(UpdatedAt(at(T0 - 60)));
        Ok::<_, Infallible>(res)
    }));
    let res = svc.oneshot(request(Method::GET, &[])).await.unwrap();
    assert_eq!(
        res.headers()[header::LAST_MODIFIED],
        format_http_date(at(T0 - 60)).as_str()
    );
}

#[tokio::test]
async fn future_source_time_is_clamped_to_now() {
    let layer = LastModifiedLayer::new()
        .clock(clock())
        .source(|_: &http::response::Parts| Some(at(T0 + 999_999)));
    let res = call(layer, request(Method::GET, &[]), None).await;
    assert_eq!(
        res.headers()[header::LAST_MODIFIED],
        format_http_date(at(T0 + 3600)).as_str()
    );
}

#[tokio::test]
async fn keeps_handler_last_modified_over_source() {
    let layer = LastModifiedLayer::new()
        .clock(clock())
        .source(|_: &http::response::Parts| Some(at(1)));
    let res = call(layer, request(Method::GET, &[]), Some(T0)).await;
    assert_eq!(
        res.headers()[header::LAST_MODIFIED],
        format_http_date(at(T0)).as_str()
    );
}

/// Both stacking orders of ETagLayer and LastModifiedLayer must give the status the full
/// RFC 9110 §13.2.2 evaluation gives.
#[tokio::test]
async fn stacks_with_etag_layer_in_either_order() {
    let body = Bytes::from_static(b"shared representation");
    let probe = ETagLayer::new()
        .layer(service_fn({
            let body = body.clone();
            move |_req: Request<()>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            }
        }))
        .oneshot(request(Method::GET, &[]))
        .await
        .unwrap();
    let tag = probe.headers()[header::ETAG].to_str().unwrap().to_owned();

    let inm = |v: &str| (header::IF_NONE_MATCH, v.to_owned());
    let im = |v: &str| (header::IF_MATCH, v.to_owned());
    let cases: Vec<(Vec<(HeaderName, String)>, StatusCode)> = vec![
        (vec![], StatusCode::OK),
        (vec![ims(T0)], StatusCode::NOT_MODIFIED),
        (vec![ims(T0 - 1)], StatusCode::OK),
        (vec![inm(&tag)], StatusCode::NOT_MODIFIED),
        (vec![inm("\"other\""), ims(T0)], StatusCode::OK),
        (vec![inm(&tag), ims(T0 - 1)], StatusCode::NOT_MODIFIED),
        (vec![im(&tag), ius(T0 - 1)], StatusCode::OK),
        (vec![im("\"other\"")], StatusCode::PRECONDITION_FAILED),
        (vec![ius(T0 - 1)], StatusCode::PRECONDITION_FAILED),
        (vec![ius(T0), inm(&tag)], StatusCode::NOT_MODIFIED),
    ];

    let handler = service_fn(move |_req: Request<()>| {
        let body = body.clone();
        async move {
            let res = Response::builder()
                .header(header::LAST_MODIFIED, format_http_date(at(T0)))
                .body(Full::new(body))
                .unwrap();
            Ok::<_, Infallible>(res)
        }
    });
    for (headers, expected) in cases {
        let etag = ETagLayer::new();
        let lm = LastModifiedLayer::new().clock(clock());
        let etag_outside = etag.layer(lm.layer(handler.clone()));
        let res = etag_outside
            .oneshot(request(Method::GET, &headers))
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "ETag outside: {headers:?}");

        let etag = ETagLayer::new();
        let lm = LastModifiedLayer::new().clock(clock());
        let lm_outside = lm.layer(etag.layer(handler.clone()));
        let res = lm_outside
            .oneshot(request(Method::GET, &headers))
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "LastModified outside: {headers:?}");
    }
}

#[test]
fn header_value_for_dates_is_imf_fixdate() {
    let value = crate::http::date::http_date_value(at(T0));
    assert_eq!(
        value,
        HeaderValue::from_static("Tue, 14 Nov 2023 22:13:20 GMT")
    );
}
