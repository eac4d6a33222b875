//! The home page: every route, greeting in the client's language, cached once per language.

use axum::{
    Router,
    http::header,
    response::{Html, IntoResponse, Response},
    routing::get,
};

use crate::AppState;

/// The routes the index page lists: (path, description).
pub const ROUTES: &[(&str, &str)] = &[
    (
        "/api/products",
        "JSON catalogue; strong ETag from a SHA-256 of the body (ETagLayer)",
    ),
    (
        "/api/products/7",
        "one product; ETag and Last-Modified from its version, 304 before serialising",
    ),
    (
        "/api/low-stock",
        "stale-while-revalidate: once stale, served at once while one request recomputes it",
    ),
    (
        "/articles/validators",
        "HTML article; Last-Modified stamped by LastModifiedLayer",
    ),
    (
        "/api/stats",
        "expensive report; early 304 from a version counter (Preconditions extractor)",
    ),
    ("/cache/stats", "the response cache's counters (JSON)"),
    (
        "/dashboard",
        "live page: hit ratio, request rate, p50/p99 by cache outcome, store health (from /metrics)",
    ),
    (
        "/events",
        "server-sent events, compressed and flushed one by one (CompressionLayer)",
    ),
    ("/healthz", "liveness"),
    (
        "/download/sample.bin",
        "a 2 MiB download: Range and If-Range to resume it, Content-Disposition (ServeDir)",
    ),
    (
        "/static/hello.txt",
        "a static file through ServeDir: Range, If-Range, ETag, Last-Modified",
    ),
    (
        "/static/app.3f2a9c1b.css",
        "a hashed asset: immutable for a year, gzip sibling for clients that accept it",
    ),
    ("/static/docs/", "a directory's index.html"),
];

/// The languages the home page speaks, and its greeting in each.
const GREETINGS: [(&str, &str); 3] = [
    ("en", "Every route answers conditional requests."),
    ("fr", "Chaque route répond aux requêtes conditionnelles."),
    ("de", "Jede Route beantwortet bedingte Anfragen."),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/", get(index))
}

/// The first language of `Accept-Language` the page speaks (weights ignored: browsers list
/// languages in order), else English.
fn language(headers: &http::HeaderMap) -> &'static str {
    let wanted = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    wanted
        .split(',')
        .filter_map(|item| item.split(';').next())
        .map(|tag| {
            tag.trim()
                .split('-')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        })
        .find_map(|tag| GREETINGS.iter().find(|(l, _)| *l == tag).map(|(l, _)| *l))
        .unwrap_or("en")
}

/// `GET /`: the route list, greeting in the client's language. Cached per language: the
/// response varies on `Accept-Language`, so the cache keeps one entry per value.
async fn index(headers: http::HeaderMap) -> Response {
    let lang = language(&headers);
    let greeting = GREETINGS
        .iter()
        .find(|(l, _)| *l == lang)
        .map_or(GREETINGS[0].1, |(_, g)| *g);
    let mut html = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <title>tower-edge example</title></head><body>\n<h1>tower-edge example server</h1>\n\
         <p>{greeting} Try <code>curl -i</code> with <code>If-None-Match</code> set to the \
         <code>ETag</code> you got.</p>\n<ul>\n"
    );
    for (path, what) in ROUTES {
        html.push_str(&format!(
            "<li><a href=\"{path}\"><code>{path}</code></a>: {what}</li>\n"
        ));
    }
    html.push_str(
        "<li><code>POST /api/products</code>: create a product (201 with Location)</li>\n\
         <li><code>PUT /api/products/{id}</code>: update with <code>If-Match</code>; \
         412 when your copy is stale</li>\n\
         <li><code>DELETE /api/products/{id}</code>: delete (If-Match honoured)</li>\n\
         <li><code>POST /cache/purge?tag=catalogue</code>: purge a tag, or everything without \
         one; needs <code>Authorization: Bearer &lt;PURGE_TOKEN&gt;</code></li>\n\
         <li><code>GET /metrics</code>: Prometheus metrics (when the server installed a recorder)</li>\n\
         </ul>\n</body></html>\n",
    );
    (
        [
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::VARY, "accept-language"),
            (header::CONTENT_LANGUAGE, lang),
        ],
        Html(html),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, StatusCode, header};

    use super::ROUTES;
    use crate::{
        app,
        testing::{cache_status, get, send},
    };

    #[tokio::test]
    async fn index_links_every_route() {
        let (status, headers, body) = send(&app(), get("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains_key(header::ETAG));
        let html = String::from_utf8(body).unwrap();
        for (path, _) in ROUTES {
            assert!(html.contains(&format!("href=\"{path}\"")), "{path}");
        }
    }

    #[tokio::test]
    async fn the_home_page_is_cached_per_language() {
        let app = app();
        let home = |lang: &str| {
            Request::get("/")
                .header(header::ACCEPT_LANGUAGE, lang)
                .body(Body::empty())
                .unwrap()
        };
        let (_, h, fr) = send(&app, home("fr-CH, fr;q=0.9, en;q=0.8")).await;
        assert_eq!(h[header::CONTENT_LANGUAGE], "fr");
        assert!(
            String::from_utf8(fr.clone())
                .unwrap()
                .contains("Chaque route")
        );
        let (_, h, de) = send(&app, home("de")).await;
        assert_eq!(h[header::CONTENT_LANGUAGE], "de");
        assert!(
            cache_status(&h).contains("fwd=miss"),
            "another language, another entry"
        );
        let (_, h, fr_again) = send(&app, home("fr-CH, fr;q=0.9, en;q=0.8")).await;
        assert!(cache_status(&h).starts_with("tower-edge; hit"));
        assert_eq!(fr, fr_again);
        assert_ne!(fr, de);
    }
}
