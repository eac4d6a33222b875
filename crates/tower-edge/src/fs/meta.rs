//! What a file's name and metadata say about its response: type, validators, caching,
//! disposition.

use std::{
    fs::Metadata,
    time::{SystemTime, UNIX_EPOCH},
};

use http::HeaderValue;

use super::path::percent_encode;
use crate::http::etag::EntityTag;

/// The identity of one version of a file: what the metadata ETag is made of, and what the hot
/// cache compares to notice a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Version {
    pub(super) len: u64,
    pub(super) modified_nanos: u128,
    pub(super) inode: u64,
    pub(super) device: u64,
}

impl Version {
    pub(super) fn of(meta: &Metadata) -> Self {
        let modified_nanos = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let (inode, device) = inode_and_device(meta);
        Self {
            len: meta.len(),
            modified_nanos,
            inode,
            device,
        }
    }

    /// A strong tag from size, modification time (nanoseconds) and inode: any write that
    /// changes the bytes changes the size or the mtime, and a file replaced by rename gets a new
    /// inode.
    pub(super) fn etag(&self) -> EntityTag {
        let text = format!("{:x}-{:x}-{:x}", self.len, self.modified_nanos, self.inode);
        EntityTag::strong(&text).expect("hex digits and dashes are etagc")
    }
}

#[cfg(unix)]
fn inode_and_device(meta: &Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.ino(), meta.dev())
}

#[cfg(not(unix))]
fn inode_and_device(_meta: &Metadata) -> (u64, u64) {
    (0, 0)
}

/// A strong tag from the file's bytes (XXH3-128, hex).
pub(super) fn content_etag(hash: u128) -> EntityTag {
    EntityTag::strong(&format!("{hash:032x}")).expect("hex digits are etagc")
}

/// The modification time, when the platform has one and it is after the epoch.
pub(super) fn modified(meta: &Metadata) -> Option<SystemTime> {
    meta.modified().ok().filter(|t| *t > UNIX_EPOCH)
}

/// The `Content-Type` for a file name: from its extension, with `charset=utf-8` for text, and
/// `application/octet-stream` when unknown.
pub(super) fn content_type(name: &str) -> HeaderValue {
    let Some(mime) = mime_guess::from_path(name).first() else {
        return HeaderValue::from_static("application/octet-stream");
    };
    let essence = mime.essence_str();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "image/svg+xml"
                | "application/manifest+json"
                | "application/ld+json"
        );
    let value = if textual && mime.get_param("charset").is_none() {
        format!("{essence}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::try_from(value)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// Whether a file name carries a content hash, as bundlers write them: a dot-separated segment
/// of at least eight hexadecimal digits that is neither the first nor the extension
/// (`app.3f2a9c1b.css`). Such a name never changes content, so it may be cached for good.
pub(super) fn is_hashed_name(name: &str) -> bool {
    let segments: Vec<&str> = name.split('.').collect();
    segments.len() >= 3
        && segments[1..segments.len() - 1]
            .iter()
            .any(|s| s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Content-Disposition: attachment` with the file name in both forms of RFC 6266 §4.3: an
/// ASCII `filename=` fallback (non-ASCII, quotes, backslashes and controls replaced with `_`)
/// and `filename*=UTF-8''…` percent-encoded as RFC 8187 (formerly 5987) asks.
pub(super) fn attachment(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let value = if fallback == name {
        format!("attachment; filename=\"{fallback}\"")
    } else {
        format!(
            "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
            percent_encode(name)
        )
    };
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_adds_charset_for_text() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("data.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type("photo.png"), "image/png");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn recognises_hashed_asset_names() {
        assert!(is_hashed_name("app.3f2a9c1b.css"));
        assert!(is_hashed_name("chunk.vendor.0123456789abcdef.js"));
        assert!(!is_hashed_name("app.css"));
        assert!(!is_hashed_name("3f2a9c1b.css"));
        assert!(!is_hashed_name("app.3f2a9c1.css"));
        assert!(!is_hashed_name("app.3f2a9c1g.css"));
        assert!(!is_hashed_name("app.css.3f2a9c1b"));
    }

    #[test]
    fn attachment_names_are_encoded_safely() {
        assert_eq!(
            attachment("report.pdf"),
            "attachment; filename=\"report.pdf\""
        );
        assert_eq!(
            attachment("résumé \"final\".pdf"),
            "attachment; filename=\"r_sum_ _final_.pdf\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
    }
}
