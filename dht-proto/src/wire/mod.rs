//! The wire codec: bencode, KRPC messages and compact node/peer formats.
//!
//! Pure functions over byte slices, no state. Decoding yields borrowed views into the input (no
//! allocation, no copying); encoding writes into a caller's buffer. The module is public so that
//! applications can build and read their own messages with it.
//!
//! - [`bencode`]: the validating decoder, [`Value`](bencode::Value) views and
//!   [`DecodeLimits`](bencode::DecodeLimits); strictness rules (key order, duplicates) are in
//!   its docs.
//! - [`encode`]: [`Writer`](encode::Writer) over `&mut [u8]`, returning
//!   [`InsufficientSize`](encode::InsufficientSize) instead of panicking.
//! - [`krpc`]: typed [`Message`](krpc::Message) views of every BEP 5/32/33/42/43/44/51 message
//!   and the decoding policy for messages from real clients.
//! - [`compact`]: compact node info (26 / 38 bytes) and peer info (6 / 18 bytes).

pub mod bencode;
pub mod compact;
pub mod encode;
pub mod krpc;

#[cfg(test)]
mod krpc_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
