//! CompressionLayer on a real socket: server-sent events arrive compressed and decodable one by
//! one, each before the next is sent.

use std::{io::Write, time::Duration};

use axum::{Router, body::Body, http::header, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tower_edge::compression::CompressionLayer;
use tower_edge_tests::TestServer;

/// An incremental decoder: compressed bytes in, the plain text decoded so far out.
enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Decoder {
    fn new(coding: &str) -> Self {
        match coding {
            "gzip" => Self::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
            "br" => Self::Br(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
            "zstd" => Self::Zstd(zstd::stream::write::Decoder::new(Vec::new()).unwrap()),
            other => panic!("{other}"),
        }
    }

    fn feed(&mut self, data: &[u8]) -> String {
        match self {
            Self::Gzip(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                String::from_utf8(d.get_ref().clone()).unwrap()
            }
            Self::Br(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                String::from_utf8(d.get_ref().clone()).unwrap()
            }
            Self::Zstd(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                String::from_utf8(d.get_ref().clone()).unwrap()
            }
        }
    }
}

fn events_app(rx: std::sync::Arc<tokio::sync::Mutex<Option<mpsc::Receiver<String>>>>) -> Router {
    Router::new()
        .route(
            "/events",
            get(move || {
                let rx = rx.clone();
                async move {
                    let rx = rx.lock().await.take().expect("one subscriber");
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        let event = rx.recv().await?;
                        Some((Ok::<_, std::io::Error>(Bytes::from(event)), rx))
                    });
                    (
                        [(header::CONTENT_TYPE, "text/event-stream")],
                        Body::from_stream(stream),
                    )
                }
            }),
        )
        .layer(CompressionLayer::new())
}

#[tokio::test]
async fn each_server_sent_event_arrives_compressed_before_the_next_is_sent() {
    for coding in ["gzip", "br", "zstd"] {
        let (tx, rx) = mpsc::channel::<String>(1);
        let server = TestServer::start(events_app(std::sync::Arc::new(tokio::sync::Mutex::new(
            Some(rx),
        ))))
        .await;
        let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/events")
            .header(header::HOST, "test")
            .header(header::ACCEPT_ENCODING, coding)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.headers()[header::CONTENT_ENCODING], coding);
        let mut body = res.into_body();
        let mut decoder = Decoder::new(coding);
        let mut expected = String::new();
        for i in 0..5 {
            let event =
                format!("id: {i}\ndata: {{\"tick\":{i},\"note\":\"event number {i}\"}}\n\n");
            expected.push_str(&event);
            tx.send(event).await.unwrap();
            // The event must be decodable from what has arrived, before the next one exists.
            let mut decoded = String::new();
            while decoded != expected {
                let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                    .await
                    .unwrap_or_else(|_| panic!("{coding}: event {i} never arrived (buffered?)"))
                    .expect("stream still open")
                    .unwrap();
                if let Ok(data) = frame.into_data() {
                    decoded = decoder.feed(&data);
                }
                assert!(expected.starts_with(&decoded), "{coding}: {decoded:?}");
            }
        }
        drop(tx);
        // The end of the stream finishes the compressed stream cleanly.
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                assert_eq!(decoder.feed(&data), expected);
            }
        }
        server.stop().await;
    }
}
