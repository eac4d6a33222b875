//! RFC 9110 primitives shared by every layer: plain functions and small types, no tower types.
//!
//! Every layer reads a header through the same function here, so the crate has one reading of
//! each RFC rule: [`etag`] for entity tags, [`date`] for HTTP dates, [`preconditions`] for the
//! order in which conditional requests are evaluated, and [`range`] for byte ranges.

pub mod accept_encoding;
pub mod cache_control;
pub mod date;
pub mod etag;
pub mod preconditions;
pub mod range;
