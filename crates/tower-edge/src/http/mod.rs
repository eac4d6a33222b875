//! RFC 9110 primitives shared by every layer: plain functions and small types, no tower types.
//!
//! Every layer reads a header through the same function here, so the crate has one reading of
//! each RFC rule: [`etag`] for entity tags, [`date`] for HTTP dates, [`preconditions`] for the
//! order in which conditional requests are evaluated, [`range`] for byte ranges, and, for
//! RFC 9111 on top of the one [`cache_control`] parser, [`storability`] (may a response be
//! stored, and why not) and [`freshness`] (lifetime, age, heuristics, stale permission), and
//! [`vary`] for the fields a representation was chosen on.

pub mod accept_encoding;
pub mod cache_control;
pub mod date;
pub mod etag;
pub mod freshness;
pub mod preconditions;
pub mod range;
pub mod storability;
pub mod vary;
