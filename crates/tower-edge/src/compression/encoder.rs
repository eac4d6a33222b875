//! One compressor per response, driven synchronously over an in-memory sink.
//!
//! async-compression's `tokio::write` encoders write into any `AsyncWrite`; over a `Vec<u8>`
//! every call completes at once, which lets the body compress frame by frame inside its own
//! `poll_frame`, flushing (a sync flush: the client can decode everything so far) when the body
//! streams, and finishing the stream at its end.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use tokio::io::AsyncWrite;

use crate::http::accept_encoding::Coding;

/// The configured level of each codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Levels {
    pub(crate) gzip: i32,
    pub(crate) deflate: i32,
    pub(crate) br: i32,
    pub(crate) zstd: i32,
}

pub(crate) enum Encoder {
    #[cfg(feature = "compression-gzip")]
    Gzip(async_compression::tokio::write::GzipEncoder<Vec<u8>>),
    #[cfg(feature = "compression-deflate")]
    Deflate(async_compression::tokio::write::ZlibEncoder<Vec<u8>>),
    #[cfg(feature = "compression-br")]
    // Boxed: brotli's state is several times the others'.
    Br(Box<async_compression::tokio::write::BrotliEncoder<Vec<u8>>>),
    #[cfg(feature = "compression-zstd")]
    Zstd(async_compression::tokio::write::ZstdEncoder<Vec<u8>>),
}

macro_rules! each {
    ($self:expr, $enc:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "compression-gzip")]
            Encoder::Gzip($enc) => $body,
            #[cfg(feature = "compression-deflate")]
            Encoder::Deflate($enc) => $body,
            #[cfg(feature = "compression-br")]
            Encoder::Br($enc) => $body,
            #[cfg(feature = "compression-zstd")]
            Encoder::Zstd($enc) => $body,
        }
    };
}

/// Runs one `AsyncWrite` call that cannot be pending: the sink is a `Vec`.
fn ready<T>(poll: Poll<io::Result<T>>) -> io::Result<T> {
    match poll {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::Error::other("compressor unexpectedly pending")),
    }
}

impl Encoder {
    /// An encoder for `coding`, or `None` for identity or a codec this build lacks. With the
    /// body's length known, brotli and zstd size their windows and tables to it (as their
    /// one-shot APIs do), which spares most of a fresh encoder's allocation on small bodies.
    pub(crate) fn new(coding: Coding, levels: Levels, len: Option<u64>) -> Option<Self> {
        let _ = len;
        // Room for the output of a typical text body, so the sink does not regrow while the
        // encoder writes (a quarter of the input, capped).
        let sink =
            || Vec::with_capacity(len.map_or(8 * 1024, |n| (n / 4 + 256).min(64 * 1024)) as usize);
        #[cfg(any(
            feature = "compression-gzip",
            feature = "compression-deflate",
            feature = "compression-br",
            feature = "compression-zstd"
        ))]
        use async_compression::Level;
        let _ = levels;
        match coding {
            #[cfg(feature = "compression-gzip")]
            Coding::Gzip => Some(Self::Gzip(
                async_compression::tokio::write::GzipEncoder::with_quality(
                    sink(),
                    Level::Precise(levels.gzip),
                ),
            )),
            #[cfg(feature = "compression-deflate")]
            Coding::Deflate => Some(Self::Deflate(
                async_compression::tokio::write::ZlibEncoder::with_quality(
                    sink(),
                    Level::Precise(levels.deflate),
                ),
            )),
            #[cfg(feature = "compression-br")]
            Coding::Br => {
                let mut params = async_compression::brotli::EncoderParams::default()
                    .quality(Level::Precise(levels.br));
                if let Some(len) = len {
                    params = params.size_hint(usize::try_from(len).unwrap_or(usize::MAX));
                }
                Some(Self::Br(Box::new(
                    async_compression::tokio::write::BrotliEncoder::with_params(sink(), params),
                )))
            }
            #[cfg(feature = "compression-zstd")]
            Coding::Zstd => {
                use async_compression::zstd::CParameter;
                // The window a body of this length needs (zstd's own rule for a known source
                // size): 2^10 at least, and never more than the level's default.
                let params: Vec<CParameter> = match len {
                    Some(len) if len < (1 << 20) => {
                        let window =
                            (64 - len.max(1024).saturating_sub(1).leading_zeros()).clamp(10, 20);
                        vec![
                            CParameter::window_log(window),
                            CParameter::hash_log((window + 1).min(17)),
                            CParameter::chain_log(window.min(16)),
                        ]
                    }
                    _ => Vec::new(),
                };
                Some(Self::Zstd(
                    async_compression::tokio::write::ZstdEncoder::with_quality_and_params(
                        sink(),
                        Level::Precise(levels.zstd),
                        &params,
                    ),
                ))
            }
            _ => None,
        }
    }

    fn with_cx<T>(
        &mut self,
        f: impl FnOnce(Pin<&mut (dyn AsyncWrite + Unpin)>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let mut cx = Context::from_waker(Waker::noop());
        each!(self, enc => ready(f(Pin::new(enc as &mut (dyn AsyncWrite + Unpin)), &mut cx)))
    }

    /// Feeds `data` to the compressor.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.with_cx(|w, cx| w.poll_write(cx, data))?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "compressor took no bytes",
                ));
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// Flushes, so everything written so far can be decoded by the client.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.with_cx(|w, cx| w.poll_flush(cx))
    }

    /// Ends the compressed stream.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        self.with_cx(|w, cx| w.poll_shutdown(cx))
    }

    /// The compressed bytes produced since the last call.
    pub(crate) fn take(&mut self) -> Bytes {
        Bytes::from(each!(self, enc => std::mem::take(enc.get_mut())))
    }
}
