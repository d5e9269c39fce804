//! Serving queries: write tokens, the peer store (with BEP 33 scrape filters) and BEP 44 items.

pub mod bloom;
pub mod items;
pub mod peers;
mod sources;
pub mod tokens;
