//! The peer store (to be written).
