use std::{
    collections::VecDeque,
    fmt,
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use tokio::task::JoinHandle;

/// The body of a [`ServeDir`](super::ServeDir) or [`ServeFile`](super::ServeFile) response: bytes
/// from the hot-file cache, a file streamed from disk, or the not-found service's body.
///
/// A file is read in chunks of at most the configured chunk size (256 KiB by default), one chunk
/// at a time on tokio's blocking pool, and only when the previous one has been taken: however
/// large the file, one response holds at most one chunk. The file is closed when the body ends
/// or is dropped.
pub struct FileBody {
    kind: Kind,
}

enum Kind {
    Empty,
    // The empty body of a 304: no length stated (see `no_content`).
    NoContent,
    Bytes(VecDeque<Bytes>),
    // One chunk, until it is sent: a file from the hot cache, or one range of it, without a
    // queue to allocate.
    One(Option<Bytes>),
    File(FileStream),
    Other(UnsyncBoxBody<Bytes, io::Error>),
}

/// A piece of a file response: framing held in memory, or a span of the file.
#[derive(Debug)]
pub(super) enum Segment {
    Bytes(Bytes),
    File { offset: u64, len: u64 },
}

struct FileStream {
    // Bytes read ahead of the first poll (see `prefetch`), sent before the segments.
    ready: VecDeque<Bytes>,
    segments: VecDeque<Segment>,
    // The file, when no read is in flight; while one is, the blocking task owns it.
    file: Option<File>,
    reading: Option<JoinHandle<(File, io::Result<Bytes>)>>,
    chunk_size: usize,
    remaining: u64,
}

/// An empty body: what a layer outside builds for an answer of its own, such as tower-http's
/// `TimeoutLayer` for its `408`.
impl Default for FileBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl FileBody {
    pub(super) fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// The empty body of a `304`, its length unstated (see `EdgeBody::no_content`).
    pub(super) fn no_content() -> Self {
        Self {
            kind: Kind::NoContent,
        }
    }

    pub(super) fn bytes(chunks: VecDeque<Bytes>) -> Self {
        Self {
            kind: Kind::Bytes(chunks),
        }
    }

    /// One chunk of memory: a file from the hot cache, or one range of it.
    pub(super) fn one(bytes: Bytes) -> Self {
        Self {
            kind: Kind::One(Some(bytes)),
        }
    }

    pub(super) fn file(file: File, segments: VecDeque<Segment>, chunk_size: usize) -> Self {
        let remaining = segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File { len, .. } => *len,
            })
            .sum();
        Self {
            kind: Kind::File(FileStream {
                ready: VecDeque::new(),
                segments,
                file: Some(file),
                reading: None,
                chunk_size: chunk_size.max(1),
                remaining,
            }),
        }
    }

    /// Reads the first chunk of the file now, on the calling (blocking) thread, so the response
    /// head and the first bytes leave together: one trip to the blocking pool instead of two,
    /// and a small range is written in one go. Holds at most one chunk, like any other read.
    pub(super) fn prefetch(&mut self) {
        let Kind::File(stream) = &mut self.kind else {
            return;
        };
        while let Some(Segment::Bytes(_)) = stream.segments.front() {
            if let Some(Segment::Bytes(b)) = stream.segments.pop_front() {
                stream.ready.push_back(b);
            }
        }
        let (Some(Segment::File { offset, len }), Some(file)) =
            (stream.segments.front_mut(), stream.file.as_ref())
        else {
            return;
        };
        let n = (*len).min(stream.chunk_size as u64);
        // On failure nothing is consumed: the streaming path meets the error and reports it.
        if let Ok(bytes) = read_span(file, *offset, n) {
            *offset += n;
            *len -= n;
            if *len == 0 {
                stream.segments.pop_front();
            }
            stream.ready.push_back(bytes);
        }
    }

    pub(super) fn other(body: UnsyncBoxBody<Bytes, io::Error>) -> Self {
        Self {
            kind: Kind::Other(body),
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.kind {
            Kind::Empty | Kind::NoContent => Poll::Ready(None),
            Kind::Bytes(chunks) => Poll::Ready(chunks.pop_front().map(|b| Ok(Frame::data(b)))),
            Kind::One(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::File(stream) => stream.poll_next(cx).map(|o| o.map(|r| r.map(Frame::data))),
            Kind::Other(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty | Kind::NoContent => true,
            Kind::Bytes(chunks) => chunks.is_empty(),
            Kind::One(bytes) => bytes.is_none(),
            Kind::File(stream) => {
                stream.ready.is_empty() && stream.segments.is_empty() && stream.reading.is_none()
            }
            Kind::Other(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::NoContent => SizeHint::new(),
            Kind::Bytes(chunks) => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
            Kind::One(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File(stream) => SizeHint::with_exact(stream.remaining),
            Kind::Other(body) => body.size_hint(),
        }
    }
}

impl FileStream {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if let Some(bytes) = self.ready.pop_front() {
            self.remaining -= bytes.len() as u64;
            if self.ready.is_empty() && self.segments.is_empty() {
                self.file = None;
            }
            return Poll::Ready(Some(Ok(bytes)));
        }
        if let Some(reading) = &mut self.reading {
            let joined = ready!(Pin::new(reading).poll(cx));
            self.reading = None;
            let (file, result) = match joined {
                Ok(pair) => pair,
                Err(e) => {
                    self.segments.clear();
                    return Poll::Ready(Some(Err(io::Error::other(e))));
                }
            };
            self.file = Some(file);
            return Poll::Ready(Some(match result {
                Ok(bytes) => {
                    self.remaining -= bytes.len() as u64;
                    Ok(bytes)
                }
                Err(e) => {
                    // Stop here: the client must see a broken body, never wrong bytes.
                    self.segments.clear();
                    self.file = None;
                    Err(e)
                }
            }));
        }
        let Some(segment) = self.segments.front_mut() else {
            // Close the file as soon as the last byte is out.
            self.file = None;
            return Poll::Ready(None);
        };
        match segment {
            Segment::Bytes(_) => {
                let Some(Segment::Bytes(bytes)) = self.segments.pop_front() else {
                    unreachable!("front is Bytes")
                };
                self.remaining -= bytes.len() as u64;
                Poll::Ready(Some(Ok(bytes)))
            }
            Segment::File { offset, len } => {
                let n = (*len).min(self.chunk_size as u64);
                let at = *offset;
                *offset += n;
                *len -= n;
                if *len == 0 {
                    self.segments.pop_front();
                }
                let Some(file) = self.file.take() else {
                    return Poll::Ready(Some(Err(io::Error::other("file already closed"))));
                };
                self.reading = Some(tokio::task::spawn_blocking(move || {
                    let result = read_span(&file, at, n);
                    (file, result)
                }));
                self.poll_next(cx)
            }
        }
    }
}

/// Reads exactly `n` bytes at `offset`; a file that shrank meanwhile is an error.
fn read_span(mut file: &File, offset: u64, n: u64) -> io::Result<Bytes> {
    let n = usize::try_from(n).map_err(io::Error::other)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = BytesMut::zeroed(n);
    file.read_exact(&mut buf)?;
    Ok(buf.freeze())
}

impl fmt::Debug for FileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "Empty",
            Kind::NoContent => "NoContent",
            Kind::Bytes(_) | Kind::One(_) => "Bytes",
            Kind::File(_) => "File",
            Kind::Other(_) => "Other",
        };
        f.debug_struct("FileBody").field("kind", &kind).finish()
    }
}
