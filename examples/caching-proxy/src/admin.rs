//! The operator's side: [`Purge`] removes stored responses by URL, prefix, tag or all at
//! once, and [`Admin`] serves it, with `/metrics`, on a listener of its own behind a bearer
//! token.

use std::{fmt, sync::Arc};

use axum::{
    Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use tower_edge::cache::{CacheHandle, ResponseCacheLayer};
use tower_edge_store::{CacheStore, StoreError};

use crate::ConfigError;

/// Removes what the proxy stored, whichever upstream it came from; with a shared cache, from
/// Redis and from every instance's memory (through the invalidation bus).
///
/// URLs are the ones clients ask the proxy for: `http://` (the proxy's listener speaks plain
/// HTTP; `https://` is taken to mean the same), then the `Host` clients send (with its port
/// if they send one: `media.example` and `media.example:8080` are stored apart), then the path
/// and query. Host names compare regardless of case.
#[derive(Clone)]
pub struct Purge {
    handle: CacheHandle,
    record_metrics: Arc<dyn Fn() + Send + Sync>,
    bus: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl fmt::Debug for Purge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Purge").finish_non_exhaustive()
    }
}

/// Why a purge did nothing.
#[derive(Debug)]
pub enum PurgeError {
    /// The URL is not `http://host/path`: the message says what is wrong.
    BadUrl(String),
    /// The store failed (Redis unreachable, say). What is held in this instance's memory is
    /// gone; a store with a shared tier keeps the invalidation and carries it out there when
    /// it answers again, before it reads from it.
    Store(StoreError),
}

impl fmt::Display for PurgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(message) => f.write_str(message),
            Self::Store(error) => write!(
                f,
                "the cache's store failed: {error}; the purge is kept and carried out when it \
                 answers again"
            ),
        }
    }
}

impl std::error::Error for PurgeError {}

impl From<StoreError> for PurgeError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl Purge {
    pub(crate) fn new<St: CacheStore + Clone>(
        store: St,
        bus: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    ) -> Self {
        // A layer of the proxy's default key rules over the same store: its handle addresses
        // what every site's layer stored.
        let handle = ResponseCacheLayer::new(store.clone()).handle("http://localhost");
        Self {
            handle,
            record_metrics: Arc::new(move || store.record_metrics()),
            bus,
        }
    }

    /// With a shared cache, whether this instance is subscribed to the invalidation bus (it
    /// connects in the background when the proxy starts, and again after Redis comes back);
    /// `None` for a cache in memory only.
    pub fn bus_connected(&self) -> Option<bool> {
        self.bus.as_ref().map(|connected| connected())
    }

    /// Removes every stored variant of `url` (`http://host/path?query`); returns how many
    /// entries went.
    pub async fn url(&self, url: &str) -> Result<u64, PurgeError> {
        self.under_both_schemes(
            url,
            |handle, path| async move { handle.invalidate(&path).await },
        )
        .await
    }

    /// Removes every stored URL that starts with `url_prefix` (`http://host/videos/`).
    pub async fn prefix(&self, url_prefix: &str) -> Result<u64, PurgeError> {
        self.under_both_schemes(url_prefix, |handle, path| async move {
            handle.invalidate_prefix(&path).await
        })
        .await
    }

    /// Runs `purge` with a handle for each origin `url`'s responses can be stored under, and
    /// the path of `url`; adds up what they removed.
    async fn under_both_schemes<F, Fut>(&self, url: &str, purge: F) -> Result<u64, PurgeError>
    where
        F: Fn(CacheHandle, String) -> Fut,
        Fut: std::future::Future<Output = Result<u64, StoreError>>,
    {
        let (authority, path) = split(url)?;
        let mut removed = 0;
        for origin in origins(&authority) {
            removed += purge(self.handle.clone().with_origin(&origin), path.clone()).await?;
        }
        Ok(removed)
    }

    /// Removes every response the upstream sent with this tag in `Cache-Tag` or
    /// `Surrogate-Key`.
    pub async fn tag(&self, tag: &str) -> Result<u64, PurgeError> {
        if tag.is_empty() || tag.contains(char::is_whitespace) {
            return Err(PurgeError::BadUrl(format!(
                "tag {tag:?}: expected one tag, without spaces"
            )));
        }
        Ok(self.handle.invalidate_tag(tag).await?)
    }

    /// Removes everything.
    pub async fn all(&self) -> Result<(), PurgeError> {
        Ok(self.handle.purge().await?)
    }

    /// Sets the store's gauges (entries, bytes, Redis health) in the `metrics` recorder.
    pub fn record_metrics(&self) {
        (self.record_metrics)();
    }
}

/// Both origins a host's responses can be stored under: `http://` as clients ask this
/// listener, and `https://` for a request in absolute form that named that scheme.
fn origins(authority: &str) -> [String; 2] {
    [
        format!("http://{authority}"),
        format!("https://{authority}"),
    ]
}

/// The lowercased `host[:port]` (as keys hold it) and `/path?query` of an absolute URL.
fn split(url: &str) -> Result<(String, String), PurgeError> {
    let bad = |why: &str| PurgeError::BadUrl(format!("URL {url:?}: {why}"));
    let uri: Uri = url
        .parse()
        .map_err(|_| bad("not a URL; expected http://host/path"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("expected http://host/path"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Ok((authority.as_str().to_ascii_lowercase(), path.to_owned()))
}

/// The admin listener's routes: `POST /purge` and `GET /metrics`, all behind
/// `Authorization: Bearer <token>`.
///
/// - `POST /purge?url=http://host/path` removes one URL's variants,
///   `?prefix=http://host/dir/` every URL under it, `?tag=T` every response tagged `T` by the
///   upstream (`Cache-Tag` or `Surrogate-Key`), and `?all=true` everything. It answers `200`
///   with `{"purged":"url","removed":N}` (no count for `all`), `400` with a reason for a
///   request that names none or several, or a bad URL, and `503` when the store fails.
/// - `GET /metrics`: the process's metrics in the Prometheus text format, when a recorder is
///   given ([`Admin::metrics`]). Purges count in `tower_edge_purge_total{what, outcome}`
///   (`what`: `url`, `prefix`, `tag`, `all`; `outcome`: `done`, `refused`, `failed`).
///
/// A request without the token, or with another, gets `401` and changes nothing.
#[derive(Clone)]
pub struct Admin {
    purge: Purge,
    token: Arc<str>,
    metrics: Option<PrometheusHandle>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("token", &"(set)")
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// The admin routes over `purge`, for holders of `token` (at least 16 characters, since it
    /// guards removing everything the cache holds).
    pub fn new(purge: Purge, token: &str) -> Result<Self, ConfigError> {
        Self::check_token(token)?;
        Ok(Self {
            purge,
            token: Arc::from(token),
            metrics: None,
        })
    }

    /// Whether `token` may guard the admin routes: at least 16 characters, no spaces.
    pub fn check_token(token: &str) -> Result<(), ConfigError> {
        if token.chars().count() < 16 || token.contains(char::is_whitespace) {
            return Err(ConfigError(
                "the admin token (ADMIN_TOKEN) must be at least 16 characters, without spaces"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Serves this recorder's metrics at `GET /metrics`.
    #[must_use]
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// The routes, to serve on the admin address.
    pub fn router(self) -> Router {
        let token = Arc::clone(&self.token);
        Router::new()
            .route("/purge", post(purge))
            .route("/metrics", get(metrics))
            .with_state(self)
            .layer(middleware::from_fn(move |req, next| {
                authorize(Arc::clone(&token), req, next)
            }))
    }
}

async fn authorize(token: Arc<str>, req: axum::extract::Request, next: Next) -> Response {
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start());
    let reason = match given {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => return next.run(req).await,
        Some(_) => "the bearer token does not match ADMIN_TOKEN\n",
        None => "a bearer token is required: Authorization: Bearer <ADMIN_TOKEN>\n",
    };
    let mut res = (StatusCode::UNAUTHORIZED, reason).into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tower-edge proxy admin\""),
    );
    res
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same(given: &[u8], token: &[u8]) -> bool {
    given.len() == token.len() && given.iter().zip(token).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[derive(Debug, Default, Deserialize)]
struct PurgeParams {
    url: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    all: Option<bool>,
}

async fn purge(
    State(admin): State<Admin>,
    query: Result<Query<PurgeParams>, QueryRejection>,
) -> Response {
    let params = match query {
        Ok(Query(params)) => params,
        Err(rejection) => {
            return bad_request(&format!(
                "{}: use url=, prefix=, tag= or all=true",
                rejection.body_text()
            ));
        }
    };
    let all = params.all == Some(true);
    let named = [
        params.url.is_some(),
        params.prefix.is_some(),
        params.tag.is_some(),
        all,
    ];
    if named.iter().filter(|&&n| n).count() != 1 {
        return bad_request(
            "name exactly one of url=http://host/path, prefix=http://host/dir/, tag=T, all=true",
        );
    }
    let purge = &admin.purge;
    let (what, result) = if let Some(url) = &params.url {
        ("url", purge.url(url).await.map(Some))
    } else if let Some(prefix) = &params.prefix {
        ("prefix", purge.prefix(prefix).await.map(Some))
    } else if let Some(tag) = &params.tag {
        ("tag", purge.tag(tag).await.map(Some))
    } else {
        ("all", purge.all().await.map(|()| None))
    };
    let outcome = match &result {
        Ok(_) => "done",
        Err(PurgeError::BadUrl(_)) => "refused",
        Err(PurgeError::Store(_)) => "failed",
    };
    metrics::counter!("tower_edge_purge_total", "what" => what, "outcome" => outcome).increment(1);
    match result {
        Ok(removed) => {
            tracing::info!(what, ?removed, "purged");
            let body = match removed {
                Some(n) => format!("{{\"purged\":\"{what}\",\"removed\":{n}}}\n"),
                None => format!("{{\"purged\":\"{what}\"}}\n"),
            };
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(PurgeError::BadUrl(message)) => bad_request(&message),
        Err(error @ PurgeError::Store(_)) => {
            tracing::warn!(%error, what, "purge failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response()
        }
    }
}

fn bad_request(reason: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
}

async fn metrics(State(admin): State<Admin>, _headers: HeaderMap) -> Response {
    let Some(handle) = &admin.metrics else {
        return (StatusCode::NOT_FOUND, "no metrics recorder is installed\n").into_response();
    };
    admin.purge.record_metrics();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls_into_origin_and_path() {
        let (authority, path) = split("http://Media.example:8080/a/b?c=1").unwrap();
        assert_eq!(authority, "media.example:8080");
        assert_eq!(path, "/a/b?c=1");
        assert_eq!(split("https://h").unwrap(), ("h".into(), "/".into()));
        for bad in ["/relative", "ftp://h/x", "not a url", "http:///x"] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same(b"", b"0123456789abcdef"));
    }
}
