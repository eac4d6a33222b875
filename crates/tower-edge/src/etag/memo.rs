//! Digests of shared bodies, remembered so that a body sent again is not hashed again.
//!
//! A handler that serves the same bytes over and over (an asset embedded with
//! `include_bytes!`, a page or document rendered once and kept in a `Bytes`) hands the layer
//! the same memory every time. Hashing it again gives the same tag, at the cost of the whole
//! hash: about 6 µs for 10 KiB with SHA-256, as much as the rest of the response.
//!
//! # Why it is sound
//!
//! A remembered digest is kept with a clone of the body it was computed from. While that clone
//! lives, its memory is neither freed nor reused, and [`Bytes`] never changes bytes it points
//! to. So a body that starts at the same address, with the same length, as a remembered clone
//! is the same memory and the same content: its digest is the remembered one. (A body from
//! memory that changes underneath it, such as a file mapped while another process rewrites it,
//! already breaks `Bytes`' contract and the program's own reads of it.)
//!
//! # What it remembers, and the bound
//!
//! Only bodies that arrive as one chunk of at most [`MAX_REMEMBERED`] bytes and that something
//! else holds too ([`Bytes::is_unique`] false: static data, or a buffer the application keeps).
//! A body rendered into a buffer of its own for one response is unique and never remembered, so
//! such handlers pay one check per response and keep nothing alive. At most [`SLOTS`] bodies are
//! remembered per layer (direct-mapped: a new body takes its slot's place). A remembered body
//! keeps alive the whole buffer it is part of until its slot is taken: usually memory the
//! application keeps anyway, but for a slice of a larger buffer the application has let go, or
//! of a connection's read buffer (a body forwarded as it was received), that buffer stays until
//! then.

use std::sync::Mutex;

use bytes::Bytes;

use super::{Algorithm, hash::MAX_ENCODED};

/// How many digests one layer remembers.
pub(super) const SLOTS: usize = 32;

/// The longest body whose digest is remembered.
pub(super) const MAX_REMEMBERED: usize = 256 * 1024;

/// A base64url digest, as [`Hasher::finish`](super::hash::Hasher::finish) writes it.
#[derive(Clone, Copy)]
pub(super) struct Digest {
    pub(super) encoded: [u8; MAX_ENCODED],
    pub(super) len: usize,
}

impl Digest {
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.encoded[..self.len]
    }
}

struct Slot {
    /// Keeps the memory the digest names alive and unchanged.
    body: Bytes,
    algorithm: Algorithm,
    digest: Digest,
}

/// The remembered digests of one [`ETagLayer`](super::ETagLayer) and the services it makes.
pub(super) struct Digests {
    // One lock per slot: two responses contend only when their bodies share a slot.
    slots: Box<[Mutex<Option<Slot>>]>,
}

impl std::fmt::Debug for Digests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digests").finish_non_exhaustive()
    }
}

impl Default for Digests {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl Digests {
    /// Whether `body`'s digest may be remembered: shared memory, short enough.
    pub(super) fn eligible(body: &Bytes) -> bool {
        !body.is_empty() && body.len() <= MAX_REMEMBERED && !body.is_unique()
    }

    /// The digest remembered for this very memory, if any.
    pub(super) fn get(&self, body: &Bytes, algorithm: Algorithm) -> Option<Digest> {
        let slot = self.slot(body).lock().ok()?;
        let slot = slot.as_ref()?;
        (same_memory(&slot.body, body) && slot.algorithm == algorithm).then_some(slot.digest)
    }

    /// Remembers `digest` for `body`, in place of what its slot held.
    pub(super) fn remember(&self, body: &Bytes, algorithm: Algorithm, digest: Digest) {
        let replaced = match self.slot(body).lock() {
            Ok(mut slot) => slot.replace(Slot {
                body: body.clone(),
                algorithm,
                digest,
            }),
            Err(_) => return,
        };
        // Dropped outside the lock: it may free a large buffer.
        drop(replaced);
    }

    /// How many digests are remembered.
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.lock().is_ok_and(|slot| slot.is_some()))
            .count()
    }

    fn slot(&self, body: &Bytes) -> &Mutex<Option<Slot>> {
        // Bodies are at least 8-aligned in practice; the low bits say little.
        let address = body.as_ptr() as usize;
        let mixed = (address >> 4) ^ (address >> 12) ^ body.len();
        &self.slots[mixed % SLOTS]
    }
}

fn same_memory(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Digest {
        Digest {
            encoded: [byte; MAX_ENCODED],
            len: MAX_ENCODED,
        }
    }

    #[test]
    fn a_shared_body_is_found_by_its_memory_and_algorithm() {
        let digests = Digests::default();
        let kept = Bytes::from(vec![7u8; 100]);
        let sent = kept.clone();
        assert!(Digests::eligible(&sent));
        digests.remember(&sent, Algorithm::Sha256, digest(b'a'));
        assert_eq!(
            digests.get(&kept, Algorithm::Sha256).map(|d| d.encoded[0]),
            Some(b'a')
        );
        assert!(digests.get(&kept, Algorithm::Xxh3_128).is_none());
        // A slice of it starts at the same address but is other content.
        assert!(digests.get(&kept.slice(..50), Algorithm::Sha256).is_none());
        // Equal bytes elsewhere in memory are not looked up by content.
        let copy = Bytes::from(vec![7u8; 100]);
        assert!(digests.get(&copy, Algorithm::Sha256).is_none());
    }

    #[test]
    fn bodies_rendered_for_one_response_or_too_long_are_not_remembered() {
        assert!(!Digests::eligible(&Bytes::from(vec![1u8; 10])));
        assert!(!Digests::eligible(&Bytes::new()));
        let long = Bytes::from(vec![1u8; MAX_REMEMBERED + 1]);
        let _held = long.clone();
        assert!(!Digests::eligible(&long));
        assert!(Digests::eligible(&Bytes::from_static(b"embedded")));
    }

    #[test]
    fn memory_freed_and_reused_is_never_taken_for_the_remembered_body() {
        // The remembered clone keeps the first buffer alive, so a later allocation cannot land
        // at its address, whatever the allocator does.
        let digests = Digests::default();
        let first = Bytes::from(vec![1u8; 64]);
        let address = first.as_ptr();
        let held = first.clone();
        digests.remember(&held, Algorithm::Sha256, digest(b'x'));
        drop(first);
        drop(held);
        for _ in 0..100 {
            let other = Bytes::from(vec![2u8; 64]);
            assert_ne!(other.as_ptr(), address);
            let _keep = other.clone();
            assert!(digests.get(&other, Algorithm::Sha256).is_none());
        }
    }
}
