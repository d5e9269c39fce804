//! Fetching a torrent's info dictionary from a peer: BEP 3 handshake, BEP 10 extension
//! protocol and BEP 9 `ut_metadata`, as a sans-IO state machine.
//!
//! A [`Fetch`] is the client side of one outgoing TCP connection. The caller connects, creates
//! the `Fetch`, and then drives it with three inputs and three outputs, like a
//! [`Node`](crate::Node):
//!
//! - [`Fetch::handle_input`] with every chunk of bytes read from the stream,
//!   [`Fetch::handle_eof`] when the peer closed it, [`Fetch::handle_timeout`] when the deadline
//!   of [`Fetch::poll_timeout`] has passed;
//! - after any input, write [`Fetch::pending_output`] to the stream and report how much went
//!   out with [`Fetch::consume_output`]; drain [`Fetch::poll_event`]; sleep until
//!   [`Fetch::poll_timeout`] or more bytes arrive.
//!
//! The fetch ends with exactly one [`FetchEvent::Metadata`] (the info dictionary, whose SHA-1
//! equals the info-hash) or one [`FetchEvent::Failed`]; then [`Fetch::is_finished`] is true, the
//! caller closes the connection, and further input is ignored.
//!
//! # What it speaks
//!
//! It sends the 68-byte handshake with the extension-protocol bit (reserved byte 5, `0x10`), and
//! after the peer's handshake (same info-hash, extension bit set) the extended handshake
//! `{m: {ut_metadata: 1}, reqq, v}`. From the peer's extended handshake it takes its
//! `ut_metadata` id, `metadata_size` and `reqq`, then requests the 16 KiB pieces, at most
//! [`FetchConfig::max_outstanding`] (and at most the peer's `reqq`) at a time; `data` messages
//! may come in any order. Requests from the peer are answered with `reject` (this side has no
//! metadata to give). Every other peer-wire message a client sends meanwhile (keep-alive,
//! choke, unchoke, interested, have, bitfield, request, piece, cancel, port, the fast
//! extension's messages, unknown ids, and extended messages other than `ut_metadata`) is
//! skipped without being buffered.
//!
//! # Limits
//!
//! Every length and time is capped by [`FetchConfig`]: the metadata size (10 MiB by default),
//! the length of any message, the time to complete both handshakes, the time between pieces,
//! and the whole fetch. Memory is at most the metadata size plus one extended message plus a
//! small output buffer, whatever the peer sends, and pieces are stored as they arrive (a peer
//! that announces 10 MiB and sends nothing costs a few KiB); no input can make it panic.
//!
//! # BitTorrent v2
//!
//! The metadata is verified against a v1 info-hash: SHA-1 of the info dictionary. A hybrid
//! torrent's v1 info-hash works as is (its info dictionary is the same). A v2-only swarm is
//! found in the DHT under the first 20 bytes of the SHA-256 info-hash; its info dictionary can
//! never match SHA-1, so such a fetch ends with [`FailReason::HashMismatch`] after downloading.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use bytes::{Buf as _, BufMut as _, BytesMut};

use crate::id::Id;
use crate::time::Instant;
use crate::wire::bencode::{self, DecodeLimits, Dict};
use crate::wire::encode::Writer;

pub mod msg;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Size of a metadata piece (BEP 9): every piece but the last is exactly this long.
pub const PIECE_LEN: usize = 16 * 1024;

/// The protocol string of the BEP 3 handshake, with its length byte.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// Length of the BEP 3 handshake.
pub const HANDSHAKE_LEN: usize = 68;

/// The message id this side assigns to `ut_metadata` in its extended handshake: the peer sends
/// its `ut_metadata` messages with this id.
pub const UT_METADATA_ID: u8 = 1;

/// Peer-wire message id of BEP 10 extended messages.
const MSG_EXTENDED: u8 = 20;

/// `ut_metadata` message types.
pub(crate) const UT_REQUEST: i64 = 0;
pub(crate) const UT_DATA: i64 = 1;
pub(crate) const UT_REJECT: i64 = 2;

/// Output beyond which requests from the peer are no longer answered with `reject` (a peer that
/// sends requests but never reads cannot grow the output buffer).
const MAX_OUTPUT_FOR_REJECTS: usize = 4096;

/// Longest client name (`v`) kept from the peer's extended handshake.
const MAX_CLIENT_LEN: usize = 64;

/// Limits and identity of a [`Fetch`]. Every field has a default ([`FetchConfig::default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchConfig {
    /// Our peer id in the handshake. Default: `-DP0001-` followed by zeros; set a random one
    /// per process.
    pub peer_id: [u8; 20],
    /// Client name sent as `v` in the extended handshake (at most 64 bytes are sent).
    pub client: &'static str,
    /// Largest `metadata_size` accepted (default 10 MiB): a peer announcing more fails with
    /// [`FailReason::MetadataTooLarge`] before anything is allocated.
    pub max_metadata_size: usize,
    /// Longest peer-wire message accepted, any type (default 1 MiB: a bitfield of 8 million
    /// pieces). Only extended messages are buffered, and they must also fit in
    /// `PIECE_LEN + 1 KiB` or [`FetchConfig::max_extended_len`], whichever is larger.
    pub max_message_len: usize,
    /// Longest extended message buffered (default 64 KiB; never less than a `data` message of
    /// a full piece needs).
    pub max_extended_len: usize,
    /// Time from [`Fetch::new`] to the peer's extended handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Longest wait for the next piece while requests are outstanding (default 10 s).
    pub piece_timeout: Duration,
    /// Longest whole fetch (default 60 s).
    pub total_timeout: Duration,
    /// Most piece requests outstanding at once (default 16; also capped by the peer's `reqq`).
    pub max_outstanding: u32,
}

impl Default for FetchConfig {
    fn default() -> Self {
        let mut peer_id = [0u8; 20];
        for (dst, src) in peer_id.iter_mut().zip(b"-DP0001-") {
            *dst = *src;
        }
        Self {
            peer_id,
            client: "dht-proto 0.1",
            max_metadata_size: 10 * 1024 * 1024,
            max_message_len: 1024 * 1024,
            max_extended_len: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            piece_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_outstanding: 16,
        }
    }
}

impl FetchConfig {
    /// Longest extended message this configuration buffers.
    fn extended_cap(&self) -> usize {
        // A `data` message: id, ext id, the dictionary (< 100 bytes), a full piece.
        self.max_extended_len
            .max(PIECE_LEN + 1024)
            .min(self.max_message_len.max(PIECE_LEN + 1024))
    }
}

/// Which time limit of a [`FetchConfig`] ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// [`FetchConfig::handshake_timeout`].
    Handshake,
    /// [`FetchConfig::piece_timeout`].
    Piece,
    /// [`FetchConfig::total_timeout`].
    Total,
}

/// Why a [`Fetch`] failed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailReason {
    /// The first bytes are not the BitTorrent handshake.
    NotBitTorrent,
    /// The peer's handshake names another info-hash.
    WrongInfoHash,
    /// The peer does not set the extension-protocol bit (BEP 10).
    NoExtensionProtocol,
    /// The peer's extended handshake offers no `ut_metadata` (or turns it off later).
    NoUtMetadata,
    /// The peer offers `ut_metadata` without a usable `metadata_size` (missing, zero or
    /// negative).
    NoMetadataSize,
    /// The peer announces more metadata than [`FetchConfig::max_metadata_size`].
    MetadataTooLarge {
        /// The announced size.
        size: u64,
    },
    /// The peer rejected a piece request: it does not have the metadata.
    Rejected {
        /// The piece.
        piece: u32,
    },
    /// The pieces put together do not hash to the info-hash.
    HashMismatch,
    /// A message longer than the configured caps.
    MessageTooLong {
        /// Its announced length.
        len: u64,
    },
    /// A message that breaks the protocol; the text names the fault.
    Malformed(&'static str),
    /// A time limit ran out.
    Timeout(TimeoutKind),
    /// The peer closed the connection first.
    Closed,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBitTorrent => f.write_str("not a BitTorrent handshake"),
            Self::WrongInfoHash => f.write_str("the peer's handshake names another info-hash"),
            Self::NoExtensionProtocol => {
                f.write_str("the peer does not support the extension protocol (BEP 10)")
            }
            Self::NoUtMetadata => f.write_str("the peer does not offer ut_metadata (BEP 9)"),
            Self::NoMetadataSize => f.write_str("the peer announces no usable metadata_size"),
            Self::MetadataTooLarge { size } => {
                write!(
                    f,
                    "the peer announces {size} bytes of metadata, over the cap"
                )
            }
            Self::Rejected { piece } => {
                write!(f, "the peer rejected the request for piece {piece}")
            }
            Self::HashMismatch => f.write_str("the metadata does not match the info-hash"),
            Self::MessageTooLong { len } => write!(f, "a {len}-byte message, over the cap"),
            Self::Malformed(what) => write!(f, "protocol violation: {what}"),
            Self::Timeout(TimeoutKind::Handshake) => f.write_str("timed out in the handshake"),
            Self::Timeout(TimeoutKind::Piece) => f.write_str("timed out waiting for a piece"),
            Self::Timeout(TimeoutKind::Total) => f.write_str("the whole fetch timed out"),
            Self::Closed => f.write_str("the peer closed the connection"),
        }
    }
}

/// What a [`Fetch`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// The peer's extended handshake arrived and offers the metadata.
    Handshake {
        /// The peer id from its BEP 3 handshake.
        peer_id: [u8; 20],
        /// Its client name (`v`), at most 64 bytes, if it sent one.
        client: Option<Vec<u8>>,
        /// The announced metadata size.
        metadata_size: u64,
    },
    /// The verified info dictionary: its SHA-1 is `info_hash`. The fetch is finished.
    Metadata {
        /// The info-hash the fetch was for.
        info_hash: Id,
        /// The bencoded info dictionary, byte for byte as the peer sent it.
        info: Vec<u8>,
    },
    /// The fetch failed. It is finished.
    Failed {
        /// Why.
        reason: FailReason,
    },
}

/// What the reader waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    /// The 68-byte handshake.
    Handshake,
    /// A length prefix and a message id.
    Header,
    /// The rest of an extended message of this total length (id included).
    Extended(usize),
    /// Bytes of a message to skip.
    Skip(usize),
    /// Nothing more: the fetch is finished.
    Done,
}

/// The download, once the peer's extended handshake told its size.
#[derive(Debug)]
struct Download {
    /// The peer's id for `ut_metadata` messages we send.
    peer_ut_metadata: u8,
    size: usize,
    /// Per piece: the bytes once received (allocated as they arrive, so memory follows what
    /// the peer actually sent, not what it announced).
    pieces: Vec<Option<Vec<u8>>>,
    /// Per piece: requested yet.
    requested: Vec<bool>,
    received_count: usize,
    next_request: usize,
    outstanding: u32,
    window: u32,
}

impl Download {
    fn pieces(&self) -> usize {
        self.pieces.len()
    }
}

/// One metadata fetch over one connection. See the [module docs](self).
#[derive(Debug)]
pub struct Fetch {
    info_hash: Id,
    config: FetchConfig,
    reading: Reading,
    input: BytesMut,
    output: BytesMut,
    events: VecDeque<FetchEvent>,
    peer_id: [u8; 20],
    download: Option<Download>,
    started: Instant,
    now: Instant,
    /// Deadline for the next piece, while requests are outstanding.
    piece_deadline: Option<Instant>,
}

impl Fetch {
    /// A fetch of `info_hash`'s metadata over a connection that has just been established at
    /// `now`. Our handshake is already in [`Fetch::pending_output`].
    pub fn new(info_hash: Id, config: FetchConfig, now: Instant) -> Self {
        let mut output = BytesMut::with_capacity(HANDSHAKE_LEN + 64);
        output.put_slice(PROTOCOL);
        // Reserved bytes: only the extension-protocol bit.
        output.put_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
        output.put_slice(info_hash.as_bytes());
        output.put_slice(&config.peer_id);
        Self {
            info_hash,
            config,
            reading: Reading::Handshake,
            input: BytesMut::new(),
            output,
            events: VecDeque::new(),
            peer_id: [0; 20],
            download: None,
            started: now,
            now,
            piece_deadline: None,
        }
    }

    /// The info-hash being fetched.
    pub fn info_hash(&self) -> Id {
        self.info_hash
    }

    /// Whether the fetch has ended (its last event is [`FetchEvent::Metadata`] or
    /// [`FetchEvent::Failed`]).
    pub fn is_finished(&self) -> bool {
        self.reading == Reading::Done
    }

    /// Bytes to write to the stream, oldest first.
    pub fn pending_output(&self) -> &[u8] {
        &self.output
    }

    /// Drops the first `n` bytes of [`Fetch::pending_output`], which have been written.
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.output.len());
        self.output.advance(n);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<FetchEvent> {
        self.events.pop_front()
    }

    /// When [`Fetch::handle_timeout`] must run next, or `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let mut t = self.started.saturating_add(self.config.total_timeout);
        if self.download.is_none() {
            t = t.min(self.started.saturating_add(self.config.handshake_timeout));
        }
        if let Some(p) = self.piece_deadline {
            t = t.min(p);
        }
        Some(t)
    }

    /// Runs the time limits at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_clock(now);
        if self.is_finished() {
            return;
        }
        let now = self.now;
        if now >= self.started.saturating_add(self.config.total_timeout) {
            self.fail(FailReason::Timeout(TimeoutKind::Total));
        } else if self.download.is_none()
            && now >= self.started.saturating_add(self.config.handshake_timeout)
        {
            self.fail(FailReason::Timeout(TimeoutKind::Handshake));
        } else if self.piece_deadline.is_some_and(|p| now >= p) {
            self.fail(FailReason::Timeout(TimeoutKind::Piece));
        }
    }

    /// The peer closed its side of the connection.
    pub fn handle_eof(&mut self, now: Instant) {
        self.advance_clock(now);
        if !self.is_finished() {
            self.fail(FailReason::Closed);
        }
    }

    /// Bytes read from the stream at `now`, any amount (a partial message waits for the rest).
    pub fn handle_input(&mut self, now: Instant, mut data: &[u8]) {
        self.advance_clock(now);
        // Time limits first: a peer that trickles bytes cannot outlive them.
        self.handle_timeout(self.now);
        while !data.is_empty() {
            let need = match self.reading {
                Reading::Done => return,
                Reading::Skip(left) => {
                    let n = left.min(data.len());
                    data = data.get(n..).unwrap_or_default();
                    self.reading = match left - n {
                        0 => Reading::Header,
                        rest => Reading::Skip(rest),
                    };
                    continue;
                }
                Reading::Handshake => HANDSHAKE_LEN,
                // Length prefix and id; a keep-alive is complete after the prefix.
                Reading::Header if self.input.len() >= 4 => 5,
                Reading::Header => 4,
                Reading::Extended(len) => 4 + len,
            };
            let take = need.saturating_sub(self.input.len()).min(data.len());
            let (chunk, rest) = data.split_at_checked(take).unwrap_or((data, &[]));
            self.input.extend_from_slice(chunk);
            data = rest;
            if self.input.len() >= need {
                self.on_buffered();
            }
        }
    }

    fn advance_clock(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn fail(&mut self, reason: FailReason) {
        self.finish(FetchEvent::Failed { reason });
    }

    fn finish(&mut self, event: FetchEvent) {
        if self.is_finished() {
            return;
        }
        self.reading = Reading::Done;
        self.input = BytesMut::new();
        self.download = None;
        self.piece_deadline = None;
        self.events.push_back(event);
    }

    /// The input buffer holds what `reading` waited for.
    fn on_buffered(&mut self) {
        match self.reading {
            Reading::Handshake => {
                let hs = self.input.split();
                self.on_handshake(&hs);
            }
            Reading::Header => {
                let len = self
                    .input
                    .first_chunk::<4>()
                    .map_or(0, |b| u64::from(u32::from_be_bytes(*b)));
                if len == 0 {
                    // Keep-alive.
                    self.input.clear();
                    return;
                }
                if self.input.len() < 5 {
                    // The id has not arrived yet.
                    return;
                }
                let id = self.input.get(4).copied().unwrap_or_default();
                self.input.clear();
                self.on_header(len, id);
            }
            Reading::Extended(_) => {
                let msg = self.input.split().freeze();
                // Length prefix, message id 20, then the extended id and payload.
                let body = msg.get(5..).unwrap_or_default();
                self.reading = Reading::Header;
                self.on_extended(body);
            }
            Reading::Skip(_) | Reading::Done => {}
        }
    }

    fn on_handshake(&mut self, hs: &[u8]) {
        let (Some(protocol), Some(reserved), Some(info_hash), Some(peer_id)) =
            (hs.get(..20), hs.get(20..28), hs.get(28..48), hs.get(48..68))
        else {
            return self.fail(FailReason::NotBitTorrent);
        };
        if protocol != PROTOCOL {
            return self.fail(FailReason::NotBitTorrent);
        }
        if info_hash != self.info_hash.as_bytes() {
            return self.fail(FailReason::WrongInfoHash);
        }
        if reserved.get(5).is_none_or(|b| b & 0x10 == 0) {
            return self.fail(FailReason::NoExtensionProtocol);
        }
        for (dst, src) in self.peer_id.iter_mut().zip(peer_id) {
            *dst = *src;
        }
        self.reading = Reading::Header;
        self.send_extended_handshake();
    }

    fn on_header(&mut self, len: u64, id: u8) {
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > self.config.max_message_len {
            return self.fail(FailReason::MessageTooLong { len });
        }
        // Fixed-length messages must have their length.
        let fixed = match id {
            // choke, unchoke, interested, not interested; have all, have none (BEP 6)
            0..=3 | 14 | 15 => Some(1),
            // have, suggest, allowed fast
            4 | 13 | 17 => Some(5),
            // request, cancel, reject request
            6 | 8 | 16 => Some(13),
            // port (BEP 5)
            9 => Some(3),
            _ => None,
        };
        if fixed.is_some_and(|f| f != len_usize) {
            return self.fail(FailReason::Malformed(
                "a fixed-length message of the wrong length",
            ));
        }
        if id == MSG_EXTENDED {
            if len_usize > self.config.extended_cap() {
                return self.fail(FailReason::MessageTooLong { len });
            }
            if len_usize < 2 {
                return self.fail(FailReason::Malformed("an empty extended message"));
            }
            // Keep the header: the body is read after it.
            self.input.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
            self.input.put_u8(id);
            self.reading = Reading::Extended(len_usize);
        } else {
            // Everything else is parsed no further: skip the payload.
            self.reading = match len_usize - 1 {
                0 => Reading::Header,
                rest => Reading::Skip(rest),
            };
        }
    }

    fn on_extended(&mut self, body: &[u8]) {
        let Some((&ext_id, payload)) = body.split_first() else {
            return self.fail(FailReason::Malformed("an empty extended message"));
        };
        if ext_id == 0 {
            self.on_extended_handshake(payload);
        } else if ext_id == UT_METADATA_ID {
            self.on_ut_metadata(payload);
        }
        // Any other extension: ignored.
    }

    fn on_extended_handshake(&mut self, payload: &[u8]) {
        let limits = DecodeLimits::new(8, 1024, 4096);
        let Some(dict) = bencode::decode(payload, &limits)
            .ok()
            .and_then(|v| v.as_dict())
        else {
            return self.fail(FailReason::Malformed(
                "the extended handshake is not a dictionary",
            ));
        };
        let ut_metadata = dict
            .get(b"m")
            .and_then(|m| m.as_dict())
            .and_then(|m| m.get(b"ut_metadata"))
            .and_then(|v| v.as_int());
        if let Some(download) = &mut self.download {
            // A later handshake: only a change of the ut_metadata id matters (BEP 10: `m` is
            // additive, 0 turns an extension off).
            match ut_metadata.map(u8::try_from) {
                Some(Ok(0)) => self.fail(FailReason::NoUtMetadata),
                Some(Ok(id)) => download.peer_ut_metadata = id,
                Some(Err(_)) => self.fail(FailReason::Malformed("ut_metadata id out of range")),
                None => {}
            }
            return;
        }
        let peer_ut_metadata = match ut_metadata.map(u8::try_from) {
            None | Some(Ok(0)) => return self.fail(FailReason::NoUtMetadata),
            Some(Ok(id)) => id,
            Some(Err(_)) => {
                return self.fail(FailReason::Malformed("ut_metadata id out of range"));
            }
        };
        let size = match dict.get(b"metadata_size").and_then(|v| v.as_int()) {
            Some(size) if size > 0 => size.unsigned_abs(),
            _ => return self.fail(FailReason::NoMetadataSize),
        };
        let Ok(size_usize) = usize::try_from(size) else {
            return self.fail(FailReason::MetadataTooLarge { size });
        };
        if size_usize > self.config.max_metadata_size {
            return self.fail(FailReason::MetadataTooLarge { size });
        }
        let client = dict
            .get(b"v")
            .and_then(|v| v.as_bytes())
            .map(|v| v.get(..MAX_CLIENT_LEN).unwrap_or(v).to_vec());
        let reqq = reqq(&dict);
        let window = self.config.max_outstanding.clamp(1, reqq.max(1));
        let pieces = size_usize.div_ceil(PIECE_LEN);
        self.download = Some(Download {
            peer_ut_metadata,
            size: size_usize,
            pieces: vec![None; pieces],
            requested: vec![false; pieces],
            received_count: 0,
            next_request: 0,
            outstanding: 0,
            window,
        });
        self.events.push_back(FetchEvent::Handshake {
            peer_id: self.peer_id,
            client,
            metadata_size: size,
        });
        self.send_requests();
    }

    fn on_ut_metadata(&mut self, payload: &[u8]) {
        let limits = DecodeLimits::new(2, 16, 64);
        let Ok((value, trailer)) = bencode::decode_prefix(payload, &limits) else {
            return self.fail(FailReason::Malformed(
                "a ut_metadata message is not bencode",
            ));
        };
        let Some(dict) = value.as_dict() else {
            return self.fail(FailReason::Malformed(
                "a ut_metadata message is not a dictionary",
            ));
        };
        let msg_type = dict.get(b"msg_type").and_then(|v| v.as_int());
        let piece = dict
            .get(b"piece")
            .and_then(|v| v.as_int())
            .and_then(|p| u32::try_from(p).ok());
        match (msg_type, piece) {
            (Some(UT_REQUEST), Some(piece)) => self.reject(piece),
            (Some(UT_DATA), Some(piece)) => {
                let total = dict.get(b"total_size").and_then(|v| v.as_int());
                self.on_data(piece, total, trailer);
            }
            (Some(UT_REJECT), Some(piece)) => {
                let requested = self.download.as_ref().is_some_and(|d| {
                    usize::try_from(piece)
                        .ok()
                        .and_then(|i| d.requested.get(i))
                        .is_some_and(|r| *r)
                });
                if requested {
                    self.fail(FailReason::Rejected { piece });
                }
            }
            (Some(UT_REQUEST | UT_DATA | UT_REJECT), None) => {
                self.fail(FailReason::Malformed(
                    "a ut_metadata message without a piece",
                ));
            }
            // Unknown message types are ignored (BEP 9).
            _ => {}
        }
    }

    fn on_data(&mut self, piece: u32, total: Option<i64>, bytes: &[u8]) {
        let now = self.now;
        let piece_timeout = self.config.piece_timeout;
        let Some(d) = &mut self.download else {
            return self.fail(FailReason::Malformed("metadata data before the handshake"));
        };
        if total.is_some_and(|t| usize::try_from(t).ok() != Some(d.size)) {
            return self.fail(FailReason::Malformed(
                "total_size differs from metadata_size",
            ));
        }
        let index = usize::try_from(piece).unwrap_or(usize::MAX);
        let requested = d.requested.get(index).is_some_and(|r| *r);
        let Some(slot @ None) = d.pieces.get_mut(index).filter(|_| requested) else {
            return self.fail(FailReason::Malformed(
                "a metadata piece that was not requested",
            ));
        };
        let start = index.saturating_mul(PIECE_LEN);
        let expected = d.size.saturating_sub(start).min(PIECE_LEN);
        if bytes.len() != expected {
            return self.fail(FailReason::Malformed(
                "a metadata piece of the wrong length",
            ));
        }
        *slot = Some(bytes.to_vec());
        d.received_count += 1;
        d.outstanding = d.outstanding.saturating_sub(1);
        self.piece_deadline = (d.outstanding > 0).then(|| now.saturating_add(piece_timeout));
        if d.received_count == d.pieces() {
            let mut info = Vec::with_capacity(d.size);
            for piece in core::mem::take(&mut d.pieces).into_iter().flatten() {
                info.extend_from_slice(&piece);
            }
            let digest = sha1_smol::Sha1::from(&info).digest().bytes();
            if digest == *self.info_hash.as_bytes() {
                let info_hash = self.info_hash;
                self.finish(FetchEvent::Metadata { info_hash, info });
            } else {
                self.fail(FailReason::HashMismatch);
            }
        } else {
            self.send_requests();
        }
    }

    /// Requests pieces until the window is full.
    fn send_requests(&mut self) {
        let Some(d) = &mut self.download else {
            return;
        };
        let mut sent = false;
        while d.outstanding < d.window && d.next_request < d.pieces() {
            let piece = d.next_request;
            d.next_request += 1;
            if let Some(r) = d.requested.get_mut(piece) {
                *r = true;
            }
            d.outstanding += 1;
            let peer_id = d.peer_ut_metadata;
            write_ut_message(&mut self.output, peer_id, UT_REQUEST, piece);
            sent = true;
        }
        if sent && self.piece_deadline.is_none() {
            self.piece_deadline = Some(self.now.saturating_add(self.config.piece_timeout));
        }
    }

    /// Answers a request from the peer: this side has no metadata to give.
    fn reject(&mut self, piece: u32) {
        let Some(d) = &self.download else {
            // Before its extended handshake we do not know the peer's id for ut_metadata.
            return;
        };
        if self.output.len() < MAX_OUTPUT_FOR_REJECTS {
            let piece = usize::try_from(piece).unwrap_or(usize::MAX);
            write_ut_message(&mut self.output, d.peer_ut_metadata, UT_REJECT, piece);
        }
    }

    fn send_extended_handshake(&mut self) {
        let mut buf = [0u8; 160];
        let client = self.config.client.as_bytes();
        let client = client.get(..MAX_CLIENT_LEN).unwrap_or(client);
        let mut w = Writer::new(&mut buf);
        w.begin_dict();
        w.bytes(b"m");
        w.begin_dict();
        w.bytes(b"ut_metadata");
        w.int(i64::from(UT_METADATA_ID));
        w.end();
        w.bytes(b"reqq");
        w.int(i64::from(self.config.max_outstanding));
        w.bytes(b"v");
        w.bytes(client);
        w.end();
        if let Ok(len) = w.finish() {
            write_extended(&mut self.output, 0, buf.get(..len).unwrap_or_default());
        }
    }
}

/// The peer's `reqq`, or 250 (libtorrent's default, BEP 10) when absent or nonsense.
fn reqq(dict: &Dict<'_>) -> u32 {
    dict.get(b"reqq")
        .and_then(|v| v.as_int())
        .and_then(|r| u32::try_from(r).ok())
        .filter(|r| *r > 0)
        .unwrap_or(250)
}

/// Appends an extended message: length prefix, id 20, extended id, payload.
pub(crate) fn write_extended(out: &mut BytesMut, ext_id: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len() + 2).unwrap_or(u32::MAX);
    out.put_u32(len);
    out.put_u8(MSG_EXTENDED);
    out.put_u8(ext_id);
    out.put_slice(payload);
}

/// Appends a `ut_metadata` request or reject for `piece`.
pub(crate) fn write_ut_message(out: &mut BytesMut, ext_id: u8, msg_type: i64, piece: usize) {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.begin_dict();
    w.bytes(b"msg_type");
    w.int(msg_type);
    w.bytes(b"piece");
    w.int(i64::try_from(piece).unwrap_or(i64::MAX));
    w.end();
    if let Ok(len) = w.finish() {
        write_extended(out, ext_id, buf.get(..len).unwrap_or_default());
    }
}
