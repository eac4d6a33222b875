use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

/// The function [`ETagLayer`](super::ETagLayer) hashes bodies with.
///
/// Both give a tag that changes whenever the body does, for all practical purposes; they differ
/// in cost and in what an adversary can do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, base64url-encoded (43 characters). Collision resistant: nobody can craft two
    /// bodies with one tag. About 1.6 GiB/s with the SHA extensions of current x86 and ARM CPUs,
    /// so roughly 6 µs for a 10 KiB body.
    #[default]
    Sha256,
    /// XXH3 with a 128-bit result, base64url-encoded (22 characters). Not collision resistant
    /// against someone who chooses body content on purpose, but an accidental collision is as
    /// unlikely as with SHA-256's first 128 bits, and it runs at memory speed (several tens of
    /// GiB/s): for servers where hashing dominates the cost of a response.
    Xxh3_128,
}

/// Incremental state for one body.
#[derive(Clone)]
pub(super) enum Hasher {
    Sha256(Sha256),
    // Boxed: XXH3's streaming state is a few hundred bytes, more than a future should carry
    // inline for the default algorithm's sake.
    Xxh3(Box<Xxh3>),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Sha256(_) => "Sha256",
            Self::Xxh3(_) => "Xxh3_128",
        };
        f.debug_tuple("Hasher").field(&name).finish()
    }
}

/// The longest encoded tag: 32 bytes of SHA-256 in unpadded base64.
pub(super) const MAX_ENCODED: usize = 43;

impl Hasher {
    pub(super) fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
            Algorithm::Xxh3_128 => Self::Xxh3(Box::new(Xxh3::new())),
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Xxh3(h) => h.update(data),
        }
    }

    /// Writes the base64url digest into `out` and returns its length.
    pub(super) fn finish(&mut self, out: &mut [u8; MAX_ENCODED]) -> usize {
        let written = match self {
            Self::Sha256(h) => URL_SAFE_NO_PAD.encode_slice(std::mem::take(h).finalize(), out),
            Self::Xxh3(h) => URL_SAFE_NO_PAD.encode_slice(h.digest128().to_be_bytes(), out),
        };
        written.expect("a 32-byte digest fits in 43 base64 characters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(algorithm: Algorithm, chunks: &[&[u8]]) -> String {
        let mut hasher = Hasher::new(algorithm);
        for chunk in chunks {
            hasher.update(chunk);
        }
        let mut out = [0u8; MAX_ENCODED];
        let n = hasher.finish(&mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn sha256_matches_the_known_digest_of_abc() {
        // FIPS 180-2 test vector: SHA-256("abc") = ba7816bf…f20015ad.
        assert_eq!(
            tag(Algorithm::Sha256, &[b"abc"]),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn xxh3_tag_is_22_characters_and_matches_the_one_shot_function() {
        let body = b"hello, world";
        let expected = URL_SAFE_NO_PAD.encode(xxhash_rust::xxh3::xxh3_128(body).to_be_bytes());
        assert_eq!(tag(Algorithm::Xxh3_128, &[body]), expected);
        assert_eq!(expected.len(), 22);
    }

    #[test]
    fn chunking_does_not_change_the_tag() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for algorithm in [Algorithm::Sha256, Algorithm::Xxh3_128] {
            let whole = tag(algorithm, &[&body]);
            let pieces: Vec<&[u8]> = body.chunks(777).collect();
            assert_eq!(tag(algorithm, &pieces), whole, "{algorithm:?}");
            assert_ne!(tag(algorithm, &[&body[1..]]), whole, "{algorithm:?}");
        }
    }
}
