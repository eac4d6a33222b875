//! RFC 9110 primitives shared by every layer: plain functions and small types, no tower types.
//!
//! Every layer reads a header through the same function here, so the crate has one reading of
//! each RFC rule: [`etag`] for entity tags, [`date`] for HTTP dates, [`preconditions`] for the
//! order in which conditional requests are evaluated, [`range`] for byte ranges, and, for
//! RFC 9111 on top of the one [`cache_control`] parser, [`storability`] (may a response be
//! stored, and why not), [`freshness`] (lifetime, age, heuristics, stale permission) and
//! [`invalidation`] (what an unsafe request invalidates), and
//! [`vary`] for the fields a representation was chosen on, and [`cache_status`] for the
//! `Cache-Status` field of RFC 9211.

pub mod accept_encoding;
pub mod cache_control;
pub mod cache_status;
pub mod date;
pub mod etag;
pub(crate) mod fields;
pub mod freshness;
pub mod invalidation;
pub mod preconditions;
pub mod range;
pub(crate) mod responses;
pub mod storability;
pub(crate) mod value;
pub mod vary;
