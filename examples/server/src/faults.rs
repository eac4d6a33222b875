//! Test scaffolding, not part of the example: failures injected into the data routes, for the
//! soak test (`tests/src/bin/soak.rs`) and failure tests. A copy of this server can delete this
//! file and its `pub mod faults;` line in `lib.rs`; nothing else refers to it.
//!
//! [`app_with_faults`] is [`app_with_store`](crate::app_with_store) with a middleware between
//! the edge stack and the handlers, so that what it injects reaches the cache as a failing
//! handler's answer would: a `503` the cache may cover with a stale copy (`stale-if-error`), or
//! a delay the cache's single-flight makes others wait on.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_edge::cache::CacheStore;

use crate::AppState;

/// The header that marks a failure [`Faults`] injected.
pub const FAULT_HEADER: &str = "x-fault";

/// Faults to inject into the data routes (`GET /api/products…` and `/articles/…`): a share of
/// requests fails with `503` (marked `x-fault: injected`, see [`FAULT_HEADER`], so a test can
/// tell them from 5xx the stack produced itself), another share is delayed, and an outage
/// ([`Faults::set_outage`]) fails them all.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Failures per thousand requests.
    pub fail_per_mille: u32,
    /// Delays per thousand requests.
    pub slow_per_mille: u32,
    /// How long a delayed request waits.
    pub slow_for: Duration,
    rng: Arc<AtomicU64>,
    outage: Arc<AtomicBool>,
}

impl Faults {
    /// Fails `fail_per_mille` and delays `slow_per_mille` of every thousand requests by
    /// `slow_for`, chosen by a generator seeded with `seed`.
    pub fn new(fail_per_mille: u32, slow_per_mille: u32, slow_for: Duration, seed: u64) -> Self {
        Self {
            fail_per_mille,
            slow_per_mille,
            slow_for,
            rng: Arc::new(AtomicU64::new(seed | 1)),
            outage: Arc::default(),
        }
    }

    /// Starts or ends an outage: while it lasts, every data request fails. Clones share it.
    pub fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::Relaxed);
    }

    /// A number in `0..1000` (xorshift; shared, so concurrent draws differ).
    fn draw(&self) -> u32 {
        let mut x = self.rng.load(Ordering::Relaxed);
        loop {
            let mut next = x;
            next ^= next << 13;
            next ^= next >> 7;
            next ^= next << 17;
            match self
                .rng
                .compare_exchange_weak(x, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return u32::try_from(next % 1000).expect("below 1000"),
                Err(current) => x = current,
            }
        }
    }
}

/// The example application with its cache in `store`, and `faults` injected into its data
/// routes.
pub fn app_with_faults<St: CacheStore + Clone>(
    state: AppState,
    store: St,
    faults: Faults,
) -> Router {
    let edge = crate::Edge::new(store, &state);
    // Innermost, inside the edge stack, so what it injects is what a failing handler would send.
    edge.around(
        crate::routes(state).layer(axum::middleware::from_fn(move |req, next| {
            inject(faults.clone(), req, next)
        })),
    )
}

async fn inject(faults: Faults, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let data_route = path.starts_with("/api/products") || path.starts_with("/articles/");
    if data_route && req.method() == http::Method::GET {
        let roll = faults.draw();
        if roll < faults.fail_per_mille || faults.outage.load(Ordering::Relaxed) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(FAULT_HEADER, "injected"), ("cache-control", "no-store")],
                "injected fault\n",
            )
                .into_response();
        }
        if roll < faults.fail_per_mille + faults.slow_per_mille {
            tokio::time::sleep(faults.slow_for).await;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;
    use tower_edge::cache::MokaStore;

    use super::{FAULT_HEADER, Faults, app_with_faults};
    use crate::{
        AppState,
        testing::{get, send},
    };

    #[tokio::test]
    async fn an_outage_fails_the_data_routes_only_and_says_so() {
        let faults = Faults::new(0, 0, Duration::ZERO, 1);
        let app = app_with_faults(AppState::new(), MokaStore::default(), faults.clone());
        assert_eq!(send(&app, get("/api/products/1")).await.0, StatusCode::OK);
        faults.set_outage(true);
        let (status, headers, _) = send(&app, get("/articles/validators")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[FAULT_HEADER], "injected");
        assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
        faults.set_outage(false);
        let (status, _, _) = send(&app, get("/articles/validators")).await;
        assert_eq!(status, StatusCode::OK);
    }
}
