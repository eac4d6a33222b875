//! Header values written into a buffer on the stack, then copied once into the value: one
//! allocation where `format!` and `HeaderValue::try_from(String)` take several (the `String`,
//! its growth, and the shared buffer `Bytes` makes of a `Vec` whose capacity exceeds its
//! length). Text and integers are written directly, without the formatting machinery, which
//! costs more than the rest of writing a cache hit's `Age` and `Cache-Status` together.

use http::HeaderValue;

/// Room for any value this crate writes per request (`Age`, `Cache-Status`); longer ones fall
/// back to the heap.
const INLINE: usize = 128;

/// A header value being written. Text past the inline room moves it to the heap, so nothing
/// written is ever cut short.
pub(crate) struct ValueBuf {
    inline: [u8; INLINE],
    len: usize,
    spilled: Option<Vec<u8>>,
}

impl ValueBuf {
    pub(crate) fn new() -> Self {
        Self {
            inline: [0; INLINE],
            len: 0,
            spilled: None,
        }
    }

    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        self.bytes(text.as_bytes())
    }

    /// An integer in decimal, with a `-` when negative.
    pub(crate) fn int(&mut self, n: i64) -> &mut Self {
        if n < 0 {
            self.bytes(b"-");
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.bytes(&digits[at..])
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        if let Some(spilled) = &mut self.spilled {
            spilled.extend_from_slice(bytes);
            return self;
        }
        let end = self.len + bytes.len();
        if let Some(slot) = self.inline.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        } else {
            let mut spilled = self.inline[..self.len].to_vec();
            spilled.extend_from_slice(bytes);
            self.spilled = Some(spilled);
        }
        self
    }

    /// The value written, or `None` if it is not a valid header value.
    pub(crate) fn finish(&self) -> Option<HeaderValue> {
        match &self.spilled {
            Some(spilled) => HeaderValue::from_bytes(spilled).ok(),
            None => HeaderValue::from_bytes(&self.inline[..self.len]).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_display_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            42,
            599,
            1_000_000,
            -1,
            -3600,
            i64::MAX,
            i64::MIN,
        ] {
            let value = ValueBuf::new().int(n).finish().unwrap();
            assert_eq!(value, n.to_string().as_str(), "{n}");
        }
    }

    #[test]
    fn short_and_long_values_are_written_whole() {
        let value = ValueBuf::new()
            .text("tower-edge; ")
            .text("hit; ttl=")
            .int(5)
            .finish();
        assert_eq!(value.unwrap(), "tower-edge; hit; ttl=5");
        let long = "x".repeat(300);
        let value = ValueBuf::new().text("a").text(&long).int(7).finish();
        assert_eq!(value.unwrap(), format!("a{long}7").as_str());
        assert!(ValueBuf::new().text("bad\n").finish().is_none());
    }
}
