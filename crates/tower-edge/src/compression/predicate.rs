//! What gets compressed: a policy over the response head.

use http::{HeaderMap, header, response::Parts};

/// Decides, from a response's head, whether its type is worth compressing.
///
/// The layer applies its own rules first (status, `Content-Encoding`, `no-transform`, minimum
/// size); a predicate only judges the representation. Closures `Fn(&Parts) -> bool` are
/// predicates, and [`Predicate::and`] combines two.
pub trait Predicate: Clone + Send + Sync + 'static {
    /// Whether to compress this response.
    fn should_compress(&self, parts: &Parts) -> bool;

    /// Both `self` and `other` must agree.
    fn and<P: Predicate>(self, other: P) -> And<Self, P>
    where
        Self: Sized,
    {
        And(self, other)
    }
}

impl<F> Predicate for F
where
    F: Fn(&Parts) -> bool + Clone + Send + Sync + 'static,
{
    fn should_compress(&self, parts: &Parts) -> bool {
        self(parts)
    }
}

/// Two predicates that must both agree.
#[derive(Clone, Copy, Debug)]
pub struct And<A, B>(A, B);

impl<A: Predicate, B: Predicate> Predicate for And<A, B> {
    fn should_compress(&self, parts: &Parts) -> bool {
        self.0.should_compress(parts) && self.1.should_compress(parts)
    }
}

/// An allow-list of media types: the default predicate.
///
/// By default: `text/*`, JSON and every `+json` type, `application/x-ndjson`, JavaScript, XML
/// and every `+xml` type (SVG among them), WebAssembly, and the font formats that are not
/// compressed already (`font/ttf`, `font/otf`, `application/vnd.ms-fontobject`). Never, even if
/// listed: images other than SVG, audio, video, archives and already-compressed fonts
/// (`woff`, `woff2`), whose bytes do not shrink. A response without `Content-Type` is left alone.
#[derive(Clone, Debug)]
pub struct MimeAllowList {
    extra: Vec<String>,
    defaults: bool,
}

impl Default for MimeAllowList {
    fn default() -> Self {
        Self {
            extra: Vec::new(),
            defaults: true,
        }
    }
}

const DEFAULT_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/wasm",
    "application/vnd.ms-fontobject",
    "font/ttf",
    "font/otf",
    "image/svg+xml",
    "image/x-icon",
];

/// Already compressed, or not worth it: never compressed, whatever the list says.
fn never(essence: &str) -> bool {
    let (kind, sub) = essence.split_once('/').unwrap_or((essence, ""));
    match kind {
        "image" => sub != "svg+xml" && sub != "x-icon",
        "audio" | "video" => true,
        "font" => sub == "woff" || sub == "woff2",
        "application" => matches!(
            sub,
            "zip"
                | "gzip"
                | "x-gzip"
                | "zstd"
                | "x-bzip2"
                | "x-xz"
                | "x-7z-compressed"
                | "x-rar-compressed"
                | "vnd.rar"
                | "pdf"
                | "octet-stream"
                | "font-woff"
                | "font-woff2"
        ),
        _ => false,
    }
}

/// The media type without parameters, lowercased (`text/html; charset=utf-8` → `text/html`).
pub(crate) fn essence(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

impl MimeAllowList {
    /// The default list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list, for building one's own from scratch with [`MimeAllowList::with`].
    pub fn empty() -> Self {
        Self {
            extra: Vec::new(),
            defaults: false,
        }
    }

    /// Also allows `media_type` (`"application/x-yaml"`), or a whole kind (`"model/*"`).
    #[must_use]
    pub fn with(mut self, media_type: &str) -> Self {
        self.extra.push(media_type.to_ascii_lowercase());
        self
    }

    /// Whether the list allows this media type essence.
    pub fn allows(&self, essence: &str) -> bool {
        if never(essence) {
            return false;
        }
        let listed = |t: &str| {
            t == essence
                || t.strip_suffix("/*")
                    .is_some_and(|kind| essence.split('/').next() == Some(kind))
        };
        if self.extra.iter().any(|t| listed(t)) {
            return true;
        }
        self.defaults
            && (essence.starts_with("text/")
                || DEFAULT_TYPES.contains(&essence)
                || essence.ends_with("+json")
                || essence.ends_with("+xml"))
    }
}

impl Predicate for MimeAllowList {
    fn should_compress(&self, parts: &Parts) -> bool {
        essence(&parts.headers).is_some_and(|e| self.allows(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list() {
        let list = MimeAllowList::new();
        for yes in [
            "text/html",
            "text/css",
            "text/event-stream",
            "application/json",
            "application/problem+json",
            "application/x-ndjson",
            "application/javascript",
            "application/atom+xml",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
        ] {
            assert!(list.allows(yes), "{yes}");
        }
        for no in [
            "image/png",
            "image/jpeg",
            "video/mp4",
            "audio/ogg",
            "application/zip",
            "application/gzip",
            "font/woff2",
            "application/octet-stream",
            "application/x-yaml",
        ] {
            assert!(!list.allows(no), "{no}");
        }
    }

    #[test]
    fn the_list_extends_but_never_overrides_the_never_list() {
        let list = MimeAllowList::new()
            .with("application/x-yaml")
            .with("model/*");
        assert!(list.allows("application/x-yaml"));
        assert!(list.allows("model/gltf+json"));
        assert!(!MimeAllowList::new().with("image/*").allows("image/png"));
        let only = MimeAllowList::empty().with("text/csv");
        assert!(only.allows("text/csv"));
        assert!(!only.allows("text/html"));
    }
}
