//! The product catalogue: a JSON API whose reads are cached and revalidated, and whose writes
//! are protected against lost updates and remove what they changed from the cache.
//!
//! | route                          | what it shows |
//! |--------------------------------|---------------|
//! | `GET /api/products`            | a ~10 KiB listing; `ETagLayer` hashes its body, a `Cache-Tag` lets writes remove it |
//! | `GET /api/products/{id}`       | `ETag` and `Last-Modified` from the record's version: 304 before serialising; memoized lookups |
//! | `PUT /api/products/{id}`       | `If-Match` required (428) and checked (412) under the write lock |
//! | `POST /api/products`           | 201 with `Location`; the cache drops the listing and the new URL |
//! | `DELETE /api/products/{id}`    | `If-Match` honoured |
//! | `GET /api/low-stock`           | `stale-while-revalidate`: a stale copy at once while one request recomputes it |
//! | `GET /api/stats`               | an expensive report with an early 304 from a version counter |

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use tower_edge::{
    cache::{CacheHandle, CacheTags},
    extract::{Preconditions, Unmet},
    http::{etag::EntityTag, preconditions::Validators},
};

use crate::{AppState, state::START};

/// A product in the catalogue.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Product {
    /// Identifier.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Price in cents.
    pub price_cents: u64,
    /// Free-text description.
    pub description: String,
    /// Units in stock.
    pub stock: u32,
}

/// What a client may change with `PUT /api/products/{id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct ProductUpdate {
    /// New display name.
    pub name: String,
    /// New price in cents.
    pub price_cents: u64,
    /// New description.
    pub description: String,
    /// New stock level.
    pub stock: u32,
}

/// A product as stored: its version and time of change are its validators.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    product: Product,
    version: u64,
    updated_at: SystemTime,
}

/// The tag of every cached response that lists products: a write removes them all with it.
const CATALOGUE_TAG: &str = "catalogue";

/// `Cache-Control` for the public, briefly cacheable routes: fresh for 30 s, and served stale
/// for up to 5 minutes when the handler fails (RFC 5861 §4).
const SHORT: &str = "public, max-age=30, stale-if-error=300";

/// `Cache-Control` of `/api/low-stock`: fresh for 10 s; for 60 s after that the cache answers
/// at once with the stale copy while one background request recomputes it (RFC 5861 §3).
/// Clients never wait for the scan, and see a list at most 70 s old.
const LOW_STOCK: &str = "public, max-age=10, stale-while-revalidate=60";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/products", get(list_products).post(create_product))
        .route(
            "/api/products/{id}",
            get(get_product).put(put_product).delete(delete_product),
        )
        .route("/api/low-stock", get(low_stock))
        .route("/api/stats", get(stats))
}

/// 40 products, each changed at its own fixed time.
pub(crate) fn sample() -> BTreeMap<u32, Record> {
    let adjectives = ["Sturdy", "Compact", "Deluxe", "Portable", "Heavy-duty"];
    let nouns = [
        "anvil", "kettle", "lantern", "compass", "toolbox", "hammock", "tent", "stove",
    ];
    (1..=40u32)
        .map(|id| {
            let name = format!(
                "{} {}",
                adjectives[id as usize % adjectives.len()],
                nouns[id as usize % nouns.len()]
            );
            let product = Product {
                id,
                description: format!(
                    "The {} is made for long trips and rough weather; item {id} of our \
                     outdoor range, tested for a decade of use.",
                    name.to_lowercase()
                ),
                name,
                price_cents: 999 + u64::from(id) * 250,
                stock: id * 3 % 17,
            };
            let record = Record {
                product,
                version: 1,
                updated_at: UNIX_EPOCH + START + Duration::from_secs(u64::from(id) * 3600),
            };
            (id, record)
        })
        .collect()
}

impl AppState {
    /// The product, through the memo: computed at most once per 30 s per product.
    async fn lookup(&self, id: u32) -> Option<Record> {
        let products = Arc::clone(&self.products);
        self.memo
            .get_or_compute(&id.to_string(), Duration::from_secs(30), || async move {
                let found = products
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .cloned();
                Ok::<_, std::convert::Infallible>(found)
            })
            .await
            .unwrap_or_else(|never| match never {})
    }

    /// Forgets the memoized product after a write.
    async fn forget(&self, id: u32) {
        if let Err(error) = self.memo.delete(&id.to_string()).await {
            tracing::warn!(%error, id, "could not forget a memoized product");
        }
    }
}

/// Removes every listing from the cache after a write; the cache itself drops the written URL
/// (RFC 9111 §4.4).
async fn invalidate_listings(cache: &CacheHandle) {
    if let Err(error) = cache.invalidate_tag(CATALOGUE_TAG).await {
        tracing::warn!(%error, "could not invalidate the catalogue");
    }
}

fn tagged(mut res: Response) -> Response {
    res.extensions_mut()
        .insert(CacheTags(vec![CATALOGUE_TAG.to_owned()]));
    res
}

async fn list_products(State(state): State<AppState>) -> Response {
    let products = state.products.read().unwrap_or_else(|e| e.into_inner());
    let list: Vec<&Product> = products.values().map(|r| &r.product).collect();
    // The ETag comes from ETagLayer, which hashes this body.
    tagged(([(header::CACHE_CONTROL, SHORT)], Json(list)).into_response())
}

/// `GET /api/low-stock`: the ten products with the fewest units left, from a scan of the whole
/// catalogue, and when it ran.
async fn low_stock(State(state): State<AppState>) -> Response {
    let computed_at = state
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let products = state.products.read().unwrap_or_else(|e| e.into_inner());
    let mut low: Vec<&Product> = products.values().map(|r| &r.product).collect();
    low.sort_by_key(|p| (p.stock, p.id));
    low.truncate(10);
    let body = serde_json::json!({ "computed_at": computed_at, "products": low });
    // Tagged like the listing, so a write still shows at once; time alone goes by SWR.
    tagged(([(header::CACHE_CONTROL, LOW_STOCK)], Json(body)).into_response())
}

fn validators(record: &Record) -> Validators {
    let tag = EntityTag::strong(&format!("p{}-v{}", record.product.id, record.version))
        .expect("digits and letters are valid entity-tag characters");
    Validators::new()
        .with_etag(tag)
        .with_last_modified(record.updated_at)
}

async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<u32>,
    pre: Preconditions,
) -> Result<Response, Response> {
    // Memoized for 30 s; every write forgets the product.
    let record = state.lookup(id).await.ok_or_else(|| not_found(id))?;
    let current = validators(&record);
    // Answer 304 from the version alone: no serialisation, and ETagLayer leaves our tag alone.
    pre.check(&current).map_err(IntoResponse::into_response)?;
    Ok((
        current,
        [(header::CACHE_CONTROL, SHORT)],
        Json(record.product),
    )
        .into_response())
}

async fn put_product(
    State(state): State<AppState>,
    Path(id): Path<u32>,
    cache: CacheHandle,
    pre: Preconditions,
    Json(update): Json<ProductUpdate>,
) -> Response {
    let response = update_product(&state, id, &pre, update);
    if response.status().is_success() {
        state.forget(id).await;
        invalidate_listings(&cache).await;
    }
    response
}

fn update_product(
    state: &AppState,
    id: u32,
    pre: &Preconditions,
    update: ProductUpdate,
) -> Response {
    let mut products = state.products.write().unwrap_or_else(|e| e.into_inner());
    let Some(record) = products.get_mut(&id) else {
        return not_found(id);
    };
    // RFC 6585 §3: insist on a conditional update, so no client overwrites a change it never saw.
    if !pre.is_conditional() {
        return (
            StatusCode::PRECONDITION_REQUIRED,
            "precondition required: send If-Match with the ETag you last read\n",
        )
            .into_response();
    }
    // Checked under the write lock: the check and the write are atomic.
    if let Err(unmet) = pre.check(&validators(record)) {
        return unmet.into_response();
    }
    record.product = Product {
        id,
        name: update.name,
        price_cents: update.price_cents,
        description: update.description,
        stock: update.stock,
    };
    record.version += 1;
    record.updated_at = state.now();
    state.data_version.fetch_add(1, Ordering::Relaxed);
    (validators(record), Json(record.product.clone())).into_response()
}

/// `POST /api/products`: creates a product; the cache drops the listing (by its tag) and the
/// new URL (by `Location`, RFC 9111 §4.4).
async fn create_product(
    State(state): State<AppState>,
    cache: CacheHandle,
    Json(new): Json<ProductUpdate>,
) -> Response {
    let record = {
        let mut products = state.products.write().unwrap_or_else(|e| e.into_inner());
        let id = products.keys().next_back().map_or(1, |last| last + 1);
        let record = Record {
            product: Product {
                id,
                name: new.name,
                price_cents: new.price_cents,
                description: new.description,
                stock: new.stock,
            },
            version: 1,
            updated_at: state.now(),
        };
        products.insert(id, record.clone());
        record
    };
    state.data_version.fetch_add(1, Ordering::Relaxed);
    invalidate_listings(&cache).await;
    let location = format!("/api/products/{}", record.product.id);
    (
        StatusCode::CREATED,
        validators(&record),
        [(header::LOCATION, location)],
        Json(record.product),
    )
        .into_response()
}

/// `DELETE /api/products/{id}`: deletes, honouring `If-Match`.
async fn delete_product(
    State(state): State<AppState>,
    Path(id): Path<u32>,
    cache: CacheHandle,
    pre: Preconditions,
) -> Response {
    {
        let mut products = state.products.write().unwrap_or_else(|e| e.into_inner());
        let Some(record) = products.get(&id) else {
            return not_found(id);
        };
        if let Err(unmet) = pre.check(&validators(record)) {
            return unmet.into_response();
        }
        products.remove(&id);
    }
    state.data_version.fetch_add(1, Ordering::Relaxed);
    state.forget(id).await;
    invalidate_listings(&cache).await;
    StatusCode::NO_CONTENT.into_response()
}

fn not_found(id: u32) -> Response {
    (StatusCode::NOT_FOUND, format!("no product with id {id}\n")).into_response()
}

#[derive(Serialize)]
struct Stats {
    data_version: u64,
    products: usize,
    total_stock: u64,
    mean_price_cents: u64,
}

/// `GET /api/stats`: answers 304 from the data's version before computing anything.
async fn stats(State(state): State<AppState>, pre: Preconditions) -> Result<Response, Unmet> {
    let version = state.data_version.load(Ordering::Relaxed);
    let current = Validators::new().with_etag(
        EntityTag::strong(&format!("stats-{version}")).expect("valid entity-tag characters"),
    );
    pre.check(&current)?;
    // The expensive part, skipped on a 304.
    let products = state.products.read().unwrap_or_else(|e| e.into_inner());
    let total_stock = products.values().map(|r| u64::from(r.product.stock)).sum();
    let sum: u64 = products.values().map(|r| r.product.price_cents).sum();
    let stats = Stats {
        data_version: version,
        products: products.len(),
        total_stock,
        mean_price_cents: sum / products.len().max(1) as u64,
    };
    Ok((current, [(header::CACHE_CONTROL, "no-cache")], Json(stats)).into_response())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, StatusCode, header};

    use crate::{
        app,
        testing::{cache_status, get, put, send},
    };

    #[tokio::test]
    async fn catalogue_is_about_ten_kib_and_revalidates() {
        let app = app();
        let (status, headers, body) = send(&app, get("/api/products")).await;
        assert_eq!(status, StatusCode::OK);
        assert!((6_000..16_000).contains(&body.len()), "{}", body.len());
        let etag = headers[header::ETAG].to_str().unwrap();
        let req = Request::get("/api/products").header(header::IF_NONE_MATCH, etag);
        let (status, _, body) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn product_has_version_validators() {
        let (status, headers, _) = send(&app(), get("/api/products/7")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ETAG], "\"p7-v1\"");
        assert_eq!(
            headers[header::LAST_MODIFIED],
            "Wed, 01 Jan 2025 07:00:00 GMT"
        );
    }

    #[tokio::test]
    async fn product_answers_if_modified_since() {
        let req = Request::get("/api/products/7")
            .header(header::IF_MODIFIED_SINCE, "Wed, 01 Jan 2025 07:00:00 GMT");
        let (status, _, _) = send(&app(), req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn put_requires_and_checks_if_match() {
        let app = app();
        let (status, _, _) = send(&app, put(3, None)).await;
        assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
        let (status, headers, _) = send(&app, put(3, Some("\"p3-v1\""))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ETAG], "\"p3-v2\"");
        // The same stale tag again: the write is refused and the data is unchanged.
        let (status, headers, _) = send(&app, put(3, Some("\"p3-v1\""))).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(headers[header::ETAG], "\"p3-v2\"");
        let (_, headers, _) = send(&app, get("/api/products/3")).await;
        assert_eq!(headers[header::ETAG], "\"p3-v2\"");
    }

    #[tokio::test]
    async fn stats_answers_304_until_data_changes() {
        let app = app();
        let req = Request::get("/api/stats").header(header::IF_NONE_MATCH, "\"stats-1\"");
        let (status, _, _) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        send(&app, put(1, Some("*"))).await;
        let req = Request::get("/api/stats").header(header::IF_NONE_MATCH, "\"stats-1\"");
        let (status, headers, _) = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ETAG], "\"stats-2\"");
    }

    #[tokio::test]
    async fn catalogue_comes_from_the_cache_until_a_put_changes_a_product() {
        let app = app();
        let (_, headers, _) = send(&app, get("/api/products")).await;
        assert_eq!(cache_status(&headers), "tower-edge; fwd=miss; stored");
        let (_, headers, first) = send(&app, get("/api/products")).await;
        assert!(cache_status(&headers).starts_with("tower-edge; hit"));
        assert!(!headers.contains_key("cache-tag"));
        // The product itself is cached too, and the PUT removes it with the listing.
        send(&app, get("/api/products/4")).await;
        let (status, _, _) = send(&app, put(4, Some("\"p4-v1\""))).await;
        assert_eq!(status, StatusCode::OK);
        let (_, headers, after) = send(&app, get("/api/products")).await;
        assert!(cache_status(&headers).contains("fwd=miss"), "{headers:?}");
        assert_ne!(first, after);
        let (_, headers, body) = send(&app, get("/api/products/4")).await;
        assert!(cache_status(&headers).contains("fwd=miss"));
        assert!(String::from_utf8(body).unwrap().contains("Renamed"));
    }

    #[tokio::test]
    async fn a_write_removes_the_low_stock_list_at_once() {
        let app = app();
        let (_, headers, _) = send(&app, get("/api/low-stock")).await;
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=10, stale-while-revalidate=60"
        );
        let (_, headers, _) = send(&app, get("/api/low-stock")).await;
        assert!(cache_status(&headers).starts_with("tower-edge; hit"));
        // Product 17 has 0 units; restocked, it leaves the list without waiting for SWR.
        let (_, _, before) = send(&app, get("/api/low-stock")).await;
        assert!(String::from_utf8_lossy(&before).contains("\"id\":17"));
        let restock = Request::put("/api/products/17")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, "*")
            .body(Body::from(
                r#"{"name":"Anvil","price_cents":1,"description":"d","stock":500}"#,
            ))
            .unwrap();
        assert_eq!(send(&app, restock).await.0, StatusCode::OK);
        let (_, headers, after) = send(&app, get("/api/low-stock")).await;
        assert!(cache_status(&headers).contains("fwd=miss"), "{headers:?}");
        assert!(!String::from_utf8_lossy(&after).contains("\"id\":17"));
    }

    #[tokio::test]
    async fn catalogue_is_cached_per_coding() {
        let app = app();
        let req = |coding: &str| {
            Request::get("/api/products")
                .header(header::ACCEPT_ENCODING, coding)
                .body(Body::empty())
                .unwrap()
        };
        let (_, h, br) = send(&app, req("br, gzip")).await;
        assert_eq!(h[header::CONTENT_ENCODING], "br");
        let (_, h, gz) = send(&app, req("gzip")).await;
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert!(
            cache_status(&h).contains("fwd=miss"),
            "another coding is another entry"
        );
        let (_, h, br_again) = send(&app, req("gzip;q=0.5, br")).await;
        assert!(cache_status(&h).starts_with("tower-edge; hit"));
        assert_eq!(h[header::CONTENT_ENCODING], "br");
        assert_eq!(br, br_again);
        assert_ne!(br, gz);
    }

    #[tokio::test]
    async fn products_are_created_memoized_and_deleted() {
        let app = app();
        let body = r#"{"name":"Rope","price_cents":500,"description":"50 m","stock":9}"#;
        let create = Request::post("/api/products")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let (status, h, _) = send(&app, create).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(h[header::LOCATION], "/api/products/41");
        let (status, h, _) = send(&app, get("/api/products/41")).await;
        assert_eq!(status, StatusCode::OK);
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        let stale = Request::delete("/api/products/41")
            .header(header::IF_MATCH, "\"p41-v0\"")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, stale).await.0, StatusCode::PRECONDITION_FAILED);
        let delete = Request::delete("/api/products/41")
            .header(header::IF_MATCH, etag)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, delete).await.0, StatusCode::NO_CONTENT);
        // Gone from the store, the memo and the cache alike.
        let (status, _, _) = send(&app, get("/api/products/41")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
