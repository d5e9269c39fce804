//! The messages of the other side: what a peer that has the metadata sends, and a reader of
//! what a [`Fetch`](super::Fetch) sends. For test peers, simulators and fuzzing; a `Fetch`
//! needs none of it.

use alloc::vec::Vec;

use bytes::{BufMut as _, BytesMut};

use super::{HANDSHAKE_LEN, MSG_EXTENDED, PROTOCOL, UT_DATA, UT_REJECT, UT_REQUEST};
use crate::id::Id;
use crate::wire::bencode::{self, DecodeLimits};
use crate::wire::encode::Writer;

/// The BEP 3 handshake for `info_hash` with the extension-protocol bit set when `extensions`.
pub fn handshake(info_hash: &Id, peer_id: &[u8; 20], extensions: bool) -> [u8; HANDSHAKE_LEN] {
    let mut out = [0u8; HANDSHAKE_LEN];
    let reserved = [0, 0, 0, 0, 0, if extensions { 0x10 } else { 0 }, 0, 0];
    let parts: [&[u8]; 4] = [PROTOCOL, &reserved, info_hash.as_bytes(), peer_id];
    for (dst, src) in out.iter_mut().zip(parts.into_iter().flatten()) {
        *dst = *src;
    }
    out
}

/// A BEP 10 extended message: length prefix, id 20, `ext_id`, `payload`.
pub fn extended(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(payload.len() + 6);
    super::write_extended(&mut out, ext_id, payload);
    out.to_vec()
}

/// An extended handshake offering `ut_metadata` under `ut_metadata_id` (0: not offered) with
/// `metadata_size` (`None`: left out).
pub fn extended_handshake(ut_metadata_id: u8, metadata_size: Option<i64>) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let mut w = Writer::new(&mut buf);
    w.begin_dict();
    w.bytes(b"m");
    w.begin_dict();
    w.bytes(b"ut_metadata");
    w.int(i64::from(ut_metadata_id));
    w.end();
    if let Some(size) = metadata_size {
        w.bytes(b"metadata_size");
        w.int(size);
    }
    w.bytes(b"v");
    w.bytes(b"test peer");
    w.end();
    let len = w.finish().unwrap_or_default();
    extended(0, buf.get(..len).unwrap_or_default())
}

/// A `ut_metadata` `data` message for `piece` carrying `bytes`, sent with the fetcher's id
/// for `ut_metadata` (`ext_id`).
pub fn data(ext_id: u8, piece: u32, total_size: usize, bytes: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 96];
    let mut w = Writer::new(&mut buf);
    w.begin_dict();
    w.bytes(b"msg_type");
    w.int(UT_DATA);
    w.bytes(b"piece");
    w.int(i64::from(piece));
    w.bytes(b"total_size");
    w.int(i64::try_from(total_size).unwrap_or(i64::MAX));
    w.end();
    let len = w.finish().unwrap_or_default();
    let mut payload = Vec::with_capacity(len + bytes.len());
    payload.extend_from_slice(buf.get(..len).unwrap_or_default());
    payload.extend_from_slice(bytes);
    extended(ext_id, &payload)
}

/// A `ut_metadata` `reject` message for `piece`.
pub fn reject(ext_id: u8, piece: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    super::write_ut_message(&mut out, ext_id, UT_REJECT, piece as usize);
    out.to_vec()
}

/// A `ut_metadata` `request` message for `piece`.
pub fn request(ext_id: u8, piece: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    super::write_ut_message(&mut out, ext_id, UT_REQUEST, piece as usize);
    out.to_vec()
}

/// A plain peer-wire message: length prefix, `id`, `payload`.
pub fn message(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(payload.len() + 5);
    out.put_u32(u32::try_from(payload.len() + 1).unwrap_or(u32::MAX));
    out.put_u8(id);
    out.put_slice(payload);
    out.to_vec()
}

/// What a fetcher sent, as a seeding peer reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// The BEP 3 handshake: info-hash and whether the extension bit is set.
    Handshake {
        /// The info-hash.
        info_hash: [u8; 20],
        /// Reserved byte 5 has `0x10`.
        extensions: bool,
    },
    /// An extended handshake; `ut_metadata` is the id the fetcher wants `ut_metadata` messages
    /// sent with.
    ExtendedHandshake {
        /// `m.ut_metadata`, if present.
        ut_metadata: Option<i64>,
    },
    /// A `ut_metadata` message (`msg_type`, `piece`) sent with extended id `ext_id`.
    UtMetadata {
        /// The extended id it was sent with.
        ext_id: u8,
        /// `msg_type`.
        msg_type: i64,
        /// `piece`.
        piece: i64,
    },
    /// Any other message (its id).
    Other(u8),
}

/// Splits bytes a fetcher wrote into messages, starting with the handshake. Returns the
/// messages and how many bytes they used (a partial message at the end is left).
pub fn read_sent(mut bytes: &[u8], expect_handshake: bool) -> (Vec<Sent>, usize) {
    let total = bytes.len();
    let mut out = Vec::new();
    if expect_handshake {
        let (Some(hs), Some(rest)) = (bytes.get(..HANDSHAKE_LEN), bytes.get(HANDSHAKE_LEN..))
        else {
            return (out, 0);
        };
        let mut info_hash = [0u8; 20];
        for (d, s) in info_hash.iter_mut().zip(hs.get(28..48).unwrap_or_default()) {
            *d = *s;
        }
        let extensions = hs.get(25).is_some_and(|b| b & 0x10 != 0);
        out.push(Sent::Handshake {
            info_hash,
            extensions,
        });
        bytes = rest;
    }
    let limits = DecodeLimits::default();
    while let Some(prefix) = bytes.first_chunk::<4>() {
        let len = u32::from_be_bytes(*prefix) as usize;
        let Some(body) = bytes.get(4..4 + len) else {
            break;
        };
        bytes = bytes.get(4 + len..).unwrap_or_default();
        match body.split_first() {
            None => {}
            Some((&MSG_EXTENDED, rest)) => {
                let Some((&ext_id, payload)) = rest.split_first() else {
                    continue;
                };
                let dict = bencode::decode_prefix(payload, &limits)
                    .ok()
                    .and_then(|(v, _)| v.as_dict());
                let int = |k: &[u8]| dict.and_then(|d| d.get(k)).and_then(|v| v.as_int());
                if ext_id == 0 {
                    let ut_metadata = dict
                        .and_then(|d| d.get(b"m"))
                        .and_then(|m| m.as_dict())
                        .and_then(|m| m.get(b"ut_metadata"))
                        .and_then(|v| v.as_int());
                    out.push(Sent::ExtendedHandshake { ut_metadata });
                } else {
                    out.push(Sent::UtMetadata {
                        ext_id,
                        msg_type: int(b"msg_type").unwrap_or(-1),
                        piece: int(b"piece").unwrap_or(-1),
                    });
                }
            }
            Some((&id, _)) => out.push(Sent::Other(id)),
        }
    }
    (out, total - bytes.len())
}
