//! Server-sent events: a stream the compression layer compresses and flushes event by event,
//! and the cache leaves alone (`no-store`).

use std::time::Duration;

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// `GET /events`: five server-sent events, one a second. Compressed like any text, and flushed
/// per event, so each one reaches the client when it is sent.
async fn events() -> Response {
    let ticks = futures_util::stream::unfold(0u32, |n| async move {
        if n == 5 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let event = format!("id: {n}\nevent: tick\ndata: {{\"tick\":{n}}}\n\n");
        Some((Ok::<_, std::convert::Infallible>(event), n + 1))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(ticks),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::app;

    #[tokio::test(start_paused = true)]
    async fn events_arrive_compressed() {
        let req = Request::get("/events")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let res = app().oneshot(req).await.unwrap();
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert_eq!(text.matches("event: tick").count(), 5);
        assert!(text.ends_with("data: {\"tick\":4}\n\n"));
    }
}
