//! Serving queries: tokens and the peer store.

pub mod bloom;
pub mod items;
pub mod peers;
pub mod tokens;
