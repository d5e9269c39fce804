//! The wire codec: bencode, KRPC messages and compact node/peer formats.
//!
//! Pure functions over byte slices, no state. Decoding yields borrowed views into the input (no
//! allocation, no copying); encoding writes into a caller's buffer. The module is public so that
//! applications can build and read their own messages with it.

pub mod bencode;
pub mod compact;
pub mod encode;
pub mod krpc;
