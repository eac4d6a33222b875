//! Header values written with `format_args!` into a buffer on the stack, then copied once into
//! the value: one allocation where `format!` and `HeaderValue::try_from(String)` take several
//! (the `String`, its growth, and the shared buffer `Bytes` makes of a `Vec` whose capacity
//! exceeds its length). On the hit path of the cache, that is most of what a hit allocates.

use std::fmt::{self, Write};

use http::HeaderValue;

/// Room for any value this crate writes per request (`Age`, `Cache-Status`); longer ones fall
/// back to a `String`.
const INLINE: usize = 128;

struct Inline {
    buf: [u8; INLINE],
    len: usize,
}

impl Write for Inline {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The header value `args` writes, or `None` if it is not a valid header value.
pub(crate) fn formatted(args: fmt::Arguments<'_>) -> Option<HeaderValue> {
    let mut inline = Inline {
        buf: [0; INLINE],
        len: 0,
    };
    if inline.write_fmt(args).is_ok() {
        return HeaderValue::from_bytes(&inline.buf[..inline.len]).ok();
    }
    HeaderValue::try_from(fmt::format(args)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_values_are_written_whole() {
        assert_eq!(formatted(format_args!("{}", 42u64)).unwrap(), "42");
        assert_eq!(
            formatted(format_args!("tower-edge; {}", "hit; ttl=5")).unwrap(),
            "tower-edge; hit; ttl=5"
        );
        let long = "x".repeat(300);
        assert_eq!(formatted(format_args!("a{long}")).unwrap().len(), 301);
        assert!(formatted(format_args!("bad\n")).is_none());
    }
}
