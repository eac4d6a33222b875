//! [`Collected`]: the bounded buffer of body chunks every layer that reads a body keeps.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use http_body::Body;

/// The chunks of a body read so far, and their length: the one buffer kept by every part of
/// this crate that must see a body, or its start, before answering (the ETag's hash, Range's
/// slices, Compression's sniff, the cache's copy). Chunks are shared [`Bytes`], so collecting
/// copies nothing; only [`Collected::into_bytes`] of several chunks does, once.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    chunks: VecDeque<Bytes>,
    len: u64,
}

// Each layer uses some of it; with no layer feature on, none.
#[allow(dead_code)]
impl Collected {
    /// Keeps a data frame's bytes, and returns them (shared) for the caller to hash or send.
    pub(crate) fn push(&mut self, mut data: impl Buf) -> Bytes {
        let bytes = data.copy_to_bytes(data.remaining());
        self.len += bytes.len() as u64;
        if !bytes.is_empty() {
            self.chunks.push_back(bytes.clone());
        }
        bytes
    }

    /// The bytes kept so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The chunks kept so far, leaving this empty.
    pub(crate) fn take(&mut self) -> VecDeque<Bytes> {
        self.len = 0;
        std::mem::take(&mut self.chunks)
    }

    /// The chunks as one `Bytes`; a copy only when there are several.
    pub(crate) fn into_bytes(mut self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop_front().unwrap_or_default(),
            _ => {
                // Bounded by the caller's limit on what it collects.
                let mut out =
                    bytes::BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
                for chunk in self.chunks {
                    out.extend_from_slice(&chunk);
                }
                out.freeze()
            }
        }
    }

    /// Reads all of `body` if it holds at most `max` bytes: `None` when it is longer (reading
    /// stops at the first frame past `max`), fails, or ends in trailers.
    pub(crate) async fn read<B: Body>(body: B, max: u64) -> Option<Bytes> {
        let mut body = std::pin::pin!(body);
        let mut collected = Self::default();
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            collected.push(frame.ok()?.into_data().ok()?);
            if collected.len() > max {
                return None;
            }
        }
        Some(collected.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use http_body::Frame;

    use super::*;

    #[tokio::test]
    async fn reads_whole_bodies_within_the_bound_only() {
        let chunks = |parts: &[&'static str]| {
            let frames = parts
                .iter()
                .map(|p| {
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(p.as_bytes())))
                })
                .collect::<Vec<_>>();
            http_body_util::StreamBody::new(futures_util::stream::iter(frames))
        };
        assert_eq!(
            Collected::read(chunks(&["ab", "", "cd"]), 4).await.unwrap(),
            "abcd"
        );
        assert_eq!(Collected::read(chunks(&["abc"]), 3).await.unwrap(), "abc");
        assert_eq!(Collected::read(chunks(&[]), 0).await.unwrap(), "");
        assert!(Collected::read(chunks(&["ab", "cd"]), 3).await.is_none());
        let mut c = Collected::default();
        assert_eq!(c.push(Bytes::from_static(b"xy")), "xy");
        c.push(Bytes::new());
        assert_eq!((c.len(), c.take().len()), (2, 1));
        assert_eq!(c.len(), 0);
    }
}
