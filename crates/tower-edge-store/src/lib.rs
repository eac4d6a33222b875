//! Storage backends for the `tower-edge` response cache.
//!
//! This crate is the stable extension point of `tower-edge`: the `CacheStore` trait and its
//! in-memory and Redis backends live here so that users who only want validators or compression
//! compile neither moka nor redis. It has no public items yet; the response cache brings them.
