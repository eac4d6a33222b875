//! Articles: HTML pages whose `Last-Modified` the preset's `LastModifiedLayer` stamps from
//! what the handler knows (a `Published` response extension), and whose `ETag` `ETagLayer`
//! hashes from the body.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};

use crate::{AppState, state::START};

/// An article of the sample data.
#[derive(Clone, Debug)]
pub(crate) struct Article {
    title: &'static str,
    body: &'static str,
    published: SystemTime,
}

/// A response extension: when the content was last changed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Published(pub(crate) SystemTime);

/// The `LastModifiedLayer` source: the time a handler attached as [`Published`].
pub(crate) fn published(parts: &http::response::Parts) -> Option<SystemTime> {
    parts.extensions.get::<Published>().map(|p| p.0)
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/articles/{slug}", get(article))
}

pub(crate) fn sample() -> BTreeMap<&'static str, Article> {
    [
        (
            "caching-at-the-edge",
            Article {
                title: "Caching at the edge",
                body: "A response that is fresh need not be computed again. A response that \
                       is stale but unchanged need not be sent again: the client revalidates \
                       and the server answers 304 Not Modified.",
                published: UNIX_EPOCH + START,
            },
        ),
        (
            "validators",
            Article {
                title: "Validators",
                body: "ETag and Last-Modified let a client ask 'has this changed?' instead \
                       of 'send it again'. If-Match and If-Unmodified-Since turn the same \
                       validators into protection against lost updates.",
                published: UNIX_EPOCH + START + Duration::from_secs(86_400),
            },
        ),
    ]
    .into_iter()
    .collect()
}

/// `GET /articles/{slug}`: cached for 5 minutes.
async fn article(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let Some(article) = state.articles.get(slug.as_str()) else {
        return (StatusCode::NOT_FOUND, "no such article\n").into_response();
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\
         </head><body><article><h1>{0}</h1><p>{1}</p></article></body></html>\n",
        article.title, article.body
    );
    let mut res = ([(header::CACHE_CONTROL, "public, max-age=300")], Html(html)).into_response();
    res.extensions_mut().insert(Published(article.published));
    res
}

#[cfg(test)]
mod tests {
    use http::{StatusCode, header};

    use crate::{
        app,
        testing::{get, send},
    };

    #[tokio::test]
    async fn article_gets_last_modified_from_layer() {
        let (status, headers, _) = send(&app(), get("/articles/validators")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::LAST_MODIFIED],
            "Thu, 02 Jan 2025 00:00:00 GMT"
        );
        assert!(headers.contains_key(header::ETAG));
        let (status, _, _) = send(&app(), get("/articles/nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
