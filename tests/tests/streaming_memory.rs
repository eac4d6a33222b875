//! A 64 MiB streamed body through ETagLayer never holds more than one chunk (or the bound).

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, ServiceExt, service_fn};
use tower_edge::etag::ETagLayer;

const TOTAL: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Counts bytes it has produced; the test counts bytes it has received, and the difference is
/// what sits inside the layer.
#[derive(Clone, Default)]
struct Meter {
    produced: Arc<AtomicU64>,
}

enum Hint {
    Unknown,
    Exact(u64),
}

struct CountingBody {
    meter: Meter,
    left: u64,
    hint: Hint,
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK as u64);
        self.left -= n;
        self.meter.produced.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0x5a; n as usize])))))
    }

    fn size_hint(&self) -> SizeHint {
        match self.hint {
            Hint::Unknown => SizeHint::default(),
            Hint::Exact(n) => SizeHint::with_exact(n),
        }
    }
}

/// Drains the layer's body, returning (bytes received, most bytes held inside the layer).
async fn drain(layer: ETagLayer, hint: fn() -> Hint) -> (u64, u64, bool) {
    let meter = Meter::default();
    let m = meter.clone();
    let svc = layer.layer(service_fn(move |_req: Request<()>| {
        let meter = m.clone();
        async move {
            Ok::<_, Infallible>(Response::new(CountingBody {
                meter,
                left: TOTAL,
                hint: hint(),
            }))
        }
    }));
    let res = svc
        .oneshot(Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let has_etag = res.headers().contains_key(header::ETAG);
    let mut body = std::pin::pin!(res.into_body());
    let mut received = 0u64;
    let mut peak = meter.produced.load(Ordering::SeqCst);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
        }
        let held = meter.produced.load(Ordering::SeqCst) - received;
        peak = peak.max(held);
    }
    (received, peak, has_etag)
}

#[tokio::test]
async fn unknown_length_streams_with_one_chunk_in_flight() {
    let (received, peak, has_etag) = drain(ETagLayer::new(), || Hint::Unknown).await;
    assert_eq!(received, TOTAL);
    assert!(!has_etag);
    assert!(peak <= CHUNK as u64, "held {peak} bytes");
}

#[tokio::test]
async fn known_length_over_the_bound_streams_with_one_chunk_in_flight() {
    let (received, peak, has_etag) = drain(ETagLayer::new(), || Hint::Exact(TOTAL)).await;
    assert_eq!(received, TOTAL);
    assert!(!has_etag);
    assert!(peak <= CHUNK as u64, "held {peak} bytes");
}

#[tokio::test]
async fn understated_length_holds_at_most_the_bound() {
    let bound = 1024 * 1024;
    let (received, peak, has_etag) =
        drain(ETagLayer::new().max_body_size(bound), || Hint::Exact(1000)).await;
    assert_eq!(received, TOTAL);
    assert!(!has_etag);
    // Reading stops at the first chunk past the bound.
    assert!(peak <= bound + CHUNK as u64, "held {peak} bytes");
    assert!(peak < TOTAL / 32, "held {peak} bytes");
}
