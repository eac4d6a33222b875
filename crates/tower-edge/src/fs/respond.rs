//! Building the response for one representation: preconditions, ranges, headers, body.

use std::{collections::VecDeque, fs::File, sync::Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use super::{
    body::{FileBody, Segment},
    cache::Rep,
    meta,
    serve_dir::Config,
};
use crate::http::responses::Short;
use crate::http::{
    fields::Asks,
    preconditions::{Precondition, Validators, evaluate},
    range::{self, ByteRange, Multipart, Resolution},
};

/// Where the bytes come from.
pub(super) enum Source {
    Bytes(Bytes),
    File(File),
}

/// The heads of a cached representation's full `200` and its `304`, built once per
/// configuration and cloned after: building them field by field (each name hashed into a new
/// map, then a 304's fields picked out of the 200's) costs more than the rest of answering
/// from memory. Ranges, 412 and 416 are built as they come.
#[derive(Debug, Default)]
pub(super) struct KeptHeads(Mutex<Option<Kept>>);

#[derive(Debug)]
struct Kept {
    /// The [`Config::id`] they were built under.
    config: u64,
    full: HeaderMap,
    not_modified: HeaderMap,
}

impl KeptHeads {
    fn get(&self, config: u64, not_modified: bool) -> Option<HeaderMap> {
        let kept = self.0.lock().ok()?;
        let kept = kept.as_ref().filter(|k| k.config == config)?;
        Some(if not_modified {
            kept.not_modified.clone()
        } else {
            kept.full.clone()
        })
    }

    fn keep(&self, config: u64, full: &HeaderMap) {
        let mut not_modified = full.clone();
        crate::http::preconditions::retain_not_modified_headers(&mut not_modified);
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some(Kept {
                config,
                full: full.clone(),
                not_modified,
            });
        }
    }
}

pub(super) struct Request<'a> {
    pub(super) method: &'a Method,
    pub(super) headers: &'a HeaderMap,
}

pub(super) fn respond(
    config: &Config,
    request: &Request<'_>,
    rep: &Rep,
    name: &str,
    content_type: &HeaderValue,
    source: Source,
    kept: Option<&KeptHeads>,
) -> Response<FileBody> {
    let now = config.clock.now();
    let mut validators = Validators::new().with_etag(rep.etag.clone());
    if config.last_modified
        && let Some(modified) = rep.modified
    {
        validators = validators.with_last_modified(modified);
    }
    // RFC 9110 §13.2.2: preconditions first, then (step 5) the range. A request with neither
    // (most of them) is told so by one pass over its field names.
    let asks = Asks::of(request.headers);
    let precondition = if asks.conditional {
        evaluate(request.method, request.headers, &validators)
    } else {
        Precondition::Proceed
    };
    let len = rep.version.len;
    let head = request.method == Method::HEAD;
    // A 304, or the whole file with no range asked: from the kept heads, if any.
    let plain = matches!(precondition, Precondition::Proceed) && !asks.range;
    let kept = kept.filter(|_| plain || matches!(precondition, Precondition::NotModified));
    if let Some(headers) = kept.and_then(|k| k.get(config.id, !plain)) {
        if !plain {
            config.counts.validator("304");
            return with(StatusCode::NOT_MODIFIED, headers, FileBody::no_content());
        }
        let body = match source {
            _ if head || len == 0 => FileBody::empty(),
            // The hot cache's bytes are the whole file: sent as they are.
            Source::Bytes(bytes) if bytes.len() as u64 == len => FileBody::one(bytes),
            source => body(config, source, vec![whole(len)]),
        };
        return with(StatusCode::OK, headers, body);
    }
    let mut headers = HeaderMap::with_capacity(10);
    headers.insert(header::CONTENT_TYPE, content_type.clone());
    // What `validators.write_headers` would write, from values made once per file version.
    headers.insert(header::ETAG, rep.etag.to_header_value());
    if config.last_modified
        && let Some(value) = &rep.modified_value
    {
        headers.insert(header::LAST_MODIFIED, value.clone());
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let cache_control = if config.immutable_hashed_names && meta::is_hashed_name(name) {
        Some(HeaderValue::from_static(
            "public, max-age=31536000, immutable",
        ))
    } else {
        config.cache_control.clone()
    };
    if let Some(cc) = cache_control {
        headers.insert(header::CACHE_CONTROL, cc);
    }
    if config.any_precompressed() {
        // RFC 9110 §12.5.5: the representation chosen depends on Accept-Encoding.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(encoding) = rep.encoding {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
    }
    if config.attachment {
        headers.insert(header::CONTENT_DISPOSITION, meta::attachment(name));
    }

    match precondition {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            if let Some(kept) = kept {
                // Kept with the full head, which the 304's is made from.
                let mut full = headers.clone();
                full.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                kept.keep(config.id, &full);
            }
            return short(Short::NotModified, headers, config);
        }
        Precondition::PreconditionFailed => {
            return short(Short::PreconditionFailed, headers, config);
        }
    }

    let resolution = range::evaluate(
        request.method,
        request.headers,
        len,
        &validators,
        now,
        &config.limits,
    );
    match resolution {
        Resolution::Full => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            if let Some(kept) = kept.filter(|_| plain) {
                kept.keep(config.id, &headers);
            }
            let body = if head || len == 0 {
                FileBody::empty()
            } else {
                body(config, source, vec![whole(len)])
            };
            with(StatusCode::OK, headers, body)
        }
        Resolution::Unsatisfiable => {
            config.counts.range("416");
            short(
                Short::RangeNotSatisfiable { complete: len },
                headers,
                config,
            )
        }
        Resolution::Partial(ranges) => {
            config.counts.range(if ranges.len() == 1 {
                "206"
            } else {
                "206 multipart"
            });
            let segments = if let [range] = ranges.as_slice() {
                headers.insert(header::CONTENT_RANGE, range.content_range(len));
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(range.len()));
                vec![Piece::Range(*range)]
            } else {
                let multipart = Multipart::new(Some(content_type.clone()), len);
                headers.insert(header::CONTENT_TYPE, multipart.content_type());
                headers.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(multipart.body_len(&ranges)),
                );
                let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
                for range in &ranges {
                    pieces.push(Piece::Framing(multipart.part_header(*range)));
                    pieces.push(Piece::Range(*range));
                }
                pieces.push(Piece::Framing(multipart.closing()));
                pieces
            };
            with(
                StatusCode::PARTIAL_CONTENT,
                headers,
                body(config, source, segments),
            )
        }
    }
}

enum Piece {
    Framing(Bytes),
    Range(ByteRange),
}

fn whole(len: u64) -> Piece {
    Piece::Range(ByteRange::new(0, len - 1))
}

fn body(config: &Config, source: Source, pieces: Vec<Piece>) -> FileBody {
    match source {
        // Slices of the cached bytes: no copy. One range (the whole file, or a single range)
        // is one slice, with no queue to allocate.
        Source::Bytes(bytes) => {
            let slice = |r: &ByteRange| bytes.slice(r.first() as usize..=r.last() as usize);
            if let [Piece::Range(r)] = pieces.as_slice() {
                return FileBody::one(slice(r));
            }
            FileBody::bytes(
                pieces
                    .into_iter()
                    .map(|p| match p {
                        Piece::Framing(b) => b,
                        Piece::Range(r) => slice(&r),
                    })
                    .collect(),
            )
        }
        Source::File(file) => {
            let segments: VecDeque<Segment> = pieces
                .into_iter()
                .map(|p| match p {
                    Piece::Framing(b) => Segment::Bytes(b),
                    Piece::Range(r) => Segment::File {
                        offset: r.first(),
                        len: r.len(),
                    },
                })
                .collect();
            FileBody::file(file, segments, config.chunk_size)
        }
    }
}

/// The 304, 412 or 416 in place of the file whose header fields are `headers`.
fn short(answer: Short, mut headers: HeaderMap, config: &Config) -> Response<FileBody> {
    let (status, body) = answer.head(&mut headers, &config.counts);
    let body = if status == StatusCode::NOT_MODIFIED {
        FileBody::no_content()
    } else if body.is_empty() {
        FileBody::empty()
    } else {
        FileBody::bytes([body].into())
    };
    with(status, headers, body)
}

fn with(status: StatusCode, headers: HeaderMap, body: FileBody) -> Response<FileBody> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// A short plain-text answer (400, 404, 405, 412, 416) that no cache keeps as the file.
pub(super) fn text(
    status: StatusCode,
    mut headers: HeaderMap,
    reason: &'static str,
) -> Response<FileBody> {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(reason.len()));
    with(
        status,
        headers,
        FileBody::bytes([Bytes::from_static(reason.as_bytes())].into()),
    )
}

pub(super) fn method_not_allowed() -> Response<FileBody> {
    let mut h = HeaderMap::new();
    // RFC 9110 §15.5.6: a 405 lists the methods the resource supports.
    h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        h,
        "method not allowed: files are served to GET and HEAD only\n",
    )
}

pub(super) fn redirect(location: HeaderValue) -> Response<FileBody> {
    let mut h = HeaderMap::new();
    h.insert(header::LOCATION, location);
    // 307 rather than a permanent redirect: a directory may become a file later, and browsers
    // keep permanent redirects for good.
    text(
        StatusCode::TEMPORARY_REDIRECT,
        h,
        "redirecting to the directory, with a trailing slash\n",
    )
}
