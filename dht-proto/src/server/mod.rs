//! Serving queries: tokens and the peer store.

pub mod peers;
pub mod tokens;
