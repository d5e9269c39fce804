//! KRPC messages (BEP 5) with the keys of BEP 32, 33, 42, 43, 44 and 51, as typed borrowed
//! views.
//!
//! [`Message::decode`] validates a datagram in one pass and fills typed fields that borrow from
//! it; [`Message::encode`] writes a message straight into a caller's buffer with keys in
//! canonical order, no intermediate tree.
//!
//! ```
//! use dht_proto::wire::bencode::DecodeLimits;
//! use dht_proto::wire::krpc::{Body, Message, Ping, Query};
//!
//! let bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
//! let msg = Message::decode(bytes, &DecodeLimits::default()).unwrap();
//! let Body::Query(Query::Ping(Ping { id })) = msg.body else { panic!() };
//! assert_eq!(id.as_bytes(), b"abcdefghij0123456789");
//!
//! let mut buf = [0u8; 128];
//! let len = msg.encode(&mut buf).unwrap();
//! assert_eq!(&buf[..len], bytes);
//! ```
//!
//! # Decoding policy
//!
//! - Bencode grammar and limits as in [`bencode`](super::bencode). Dictionary keys may come in
//!   any order; encoding is always canonical.
//! - A key the decoder interprets that appears twice in the top-level, `a` or `r` dictionary
//!   is an error ([`DuplicateKey`]), in any order (in `a`: the keys the query's method uses).
//!   Other repeated keys follow the bencode rule: rejected when adjacent.
//! - Unknown keys are validated as bencode and skipped, at every level. A response's unknown
//!   keys stay readable through [`Response::extra`]; a query of an unknown method keeps its
//!   whole `a` dictionary in [`Custom::args`].
//! - A known key with a value of the wrong bencode type is an error
//!   ([`WrongType`]). For a known method only the keys that method uses are known in its `a`
//!   dictionary; `r` keys are known whatever the query was.
//! - `t` must be a string of 1 to [`MAX_TRANSACTION_ID_LEN`] bytes; `y` must be `q`, `r` or
//!   `e` ([`InvalidValue`] otherwise).
//! - `id`, `target` and `info_hash` must be exactly 20 bytes; `k` 32; `sig` 64; `BFsd` and
//!   `BFpe` 256; top-level `ip` 6 or 18.
//! - `samples` must be a whole multiple of 20 bytes: a trailing partial entry rejects the
//!   message. `nodes` and `nodes6` are read as their whole 26- or 38-byte entries and a
//!   trailing partial entry is ignored, as libtorrent does: some deployed nodes cut `nodes` at
//!   the first NUL byte, and their replies are otherwise valid.
//!   [`Nodes::malformed_tail`](super::compact::Nodes::malformed_tail) tells the ignored bytes.
//! - Every item of `values` must be a 6- or 18-byte string (BEP 32 allows mixing families).
//! - `port` in `announce_peer` must be in 1..=65535 unless `implied_port` is non-zero, in which
//!   case `port` may be absent or anything (it is then read as 0 unless it is in range).
//! - `want` items other than `n4` and `n6` (including non-strings) are ignored.
//! - Integer flags (`ro`, `implied_port`, `noseed`, `scrape`, `seed`) are true when non-zero.
//! - `e` is a list whose first item is the integer code and whose second, if present, the
//!   message string; further items are ignored.
//! - A mutable `put` carries `k`, `sig` and `seq` together or none of them.
//!
//! [`DuplicateKey`]: super::bencode::DecodeErrorKind::DuplicateKey
//! [`WrongType`]: super::bencode::DecodeErrorKind::WrongType
//! [`InvalidValue`]: super::bencode::DecodeErrorKind::InvalidValue

use core::net::SocketAddr;

use super::bencode::{DecodeError, DecodeLimits, Dict, List, Parser, Value};
pub use super::compact::Samples;
use super::compact::{Nodes, PEER6_LEN, Peers, encode_peer};
use super::encode::{InsufficientSize, Writer};
use crate::id::Id;
use decode::decode_message;
#[cfg(test)]
pub(crate) use decode::query_reference;
use encode::{write_args, write_response};

mod decode;
mod encode;

/// Longest transaction id accepted (`t`). Real clients use 2 to 8 bytes.
pub const MAX_TRANSACTION_ID_LEN: usize = 16;

/// KRPC error codes (BEP 5; BEP 44 adds 205–207, 301 and 302).
pub mod error_code {
    /// Generic error.
    pub const GENERIC: i64 = 201;
    /// Server error.
    pub const SERVER: i64 = 202;
    /// Protocol error: malformed packet, invalid arguments or bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
    /// BEP 44: the `v` value is too big.
    pub const VALUE_TOO_BIG: i64 = 205;
    /// BEP 44: invalid signature.
    pub const INVALID_SIGNATURE: i64 = 206;
    /// BEP 44: the salt is too big.
    pub const SALT_TOO_BIG: i64 = 207;
    /// BEP 44: the `cas` value does not match the stored sequence number.
    pub const CAS_MISMATCH: i64 = 301;
    /// BEP 44: the sequence number is lower than the stored one.
    pub const SEQ_TOO_LOW: i64 = 302;
}

/// One KRPC message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// `t`: the transaction id, echoed in the response.
    pub transaction_id: &'a [u8],
    /// `v`: the sender's client version, if given.
    pub version: Option<&'a [u8]>,
    /// BEP 42 top-level `ip`: the receiver's address as the sender sees it.
    pub ip: Option<SocketAddr>,
    /// BEP 43 `ro`: the sender is read-only and must not enter routing tables.
    pub read_only: bool,
    /// Query, response or error.
    pub body: Body<'a>,
}

/// The three kinds of KRPC message (`y` = `q`, `r`, `e`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// A query.
    Query(Query<'a>),
    /// A response.
    Response(Response<'a>),
    /// An error.
    Error(KrpcError<'a>),
}

/// A query, by method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Query<'a> {
    /// `ping` (BEP 5).
    Ping(Ping),
    /// `find_node` (BEP 5, `want` from BEP 32).
    FindNode(FindNode),
    /// `get_peers` (BEP 5, `want` from BEP 32, `noseed`/`scrape` from BEP 33).
    GetPeers(GetPeers),
    /// `announce_peer` (BEP 5, `seed` from BEP 33).
    AnnouncePeer(AnnouncePeer<'a>),
    /// `get` (BEP 44).
    Get(Get),
    /// `put` (BEP 44).
    Put(Put<'a>),
    /// `sample_infohashes` (BEP 51).
    SampleInfohashes(SampleInfohashes),
    /// Any other method.
    Custom(Custom<'a>),
}

/// `ping` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    /// The querying node.
    pub id: Id,
}

/// `find_node` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FindNode {
    /// The querying node.
    pub id: Id,
    /// The id sought.
    pub target: Id,
    /// BEP 32 address families wanted in the response.
    pub want: Option<Want>,
}

/// `get_peers` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetPeers {
    /// The querying node.
    pub id: Id,
    /// The torrent.
    pub info_hash: Id,
    /// BEP 32 address families wanted in the response.
    pub want: Option<Want>,
    /// BEP 33: prefer non-seeds in `values`.
    pub noseed: bool,
    /// BEP 33: include the `BFsd` / `BFpe` bloom filters.
    pub scrape: bool,
}

/// `announce_peer` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnouncePeer<'a> {
    /// The querying node.
    pub id: Id,
    /// The torrent.
    pub info_hash: Id,
    /// The peer's TCP port (0 when `implied_port` is set and no valid port was given).
    pub port: u16,
    /// Use the UDP source port instead of `port`.
    pub implied_port: bool,
    /// The token from an earlier `get_peers` response.
    pub token: &'a [u8],
    /// BEP 33: the announcing peer is a seed.
    pub seed: bool,
}

/// BEP 44 `get` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Get {
    /// The querying node.
    pub id: Id,
    /// SHA-1 of the item (immutable) or of its key and salt (mutable).
    pub target: Id,
    /// Only send the value if its sequence number is greater than this.
    pub seq: Option<i64>,
    /// BEP 32 address families wanted in the response.
    pub want: Option<Want>,
}

/// BEP 44 `put` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Put<'a> {
    /// The querying node.
    pub id: Id,
    /// The token from an earlier `get` response.
    pub token: &'a [u8],
    /// The raw bencoded `v`, exactly as received (what is hashed and signed). When encoding it
    /// must be one bencoded value; it is written verbatim.
    pub value: &'a [u8],
    /// Mutable items: the ed25519 public key.
    pub key: Option<&'a [u8; 32]>,
    /// Mutable items: the ed25519 signature.
    pub signature: Option<&'a [u8; 64]>,
    /// Mutable items: the sequence number.
    pub seq: Option<i64>,
    /// Mutable items: compare-and-swap on this sequence number.
    pub cas: Option<i64>,
    /// Mutable items: the salt.
    pub salt: Option<&'a [u8]>,
}

/// BEP 51 `sample_infohashes` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleInfohashes {
    /// The querying node.
    pub id: Id,
    /// Where in the key space to return `nodes` from.
    pub target: Id,
    /// BEP 32 address families wanted in the response.
    pub want: Option<Want>,
}

/// A query whose method this crate does not interpret.
///
/// Decoding keeps the whole `a` dictionary in `args` and its `id` (when it is a 20-byte
/// string) in `id`. Encoding writes the entries of `args`; when `id` is `Some`, any `id` entry
/// of `args` is left out and `id` is written in its canonical place instead, so a node can
/// send an application's dictionary under its own id. Entries are written in the order of
/// `args`: build it in canonical order (for example with
/// [`Writer`] and [`bencode::decode`](super::bencode::decode)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Custom<'a> {
    /// The method name (`q`).
    pub method: &'a [u8],
    /// The whole `a` dictionary.
    pub args: Dict<'a>,
    /// The querying node's id, written in place of any `id` in `args`.
    pub id: Option<Id>,
}

/// BEP 32 `want`: which address families of nodes a query asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Want {
    /// `n4`: include `nodes`.
    pub v4: bool,
    /// `n6`: include `nodes6`.
    pub v6: bool,
}

/// A response: every key the supported BEPs define, all optional but `id`.
///
/// Build one with [`Response::new`] and set the fields the query calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The responding node.
    pub id: Id,
    /// Compact IPv4 nodes close to the target.
    pub nodes: Option<Nodes<'a>>,
    /// BEP 32: compact IPv6 nodes close to the target.
    pub nodes6: Option<Nodes<'a>>,
    /// `get_peers`: peers of the torrent.
    pub values: Option<Peers<'a>>,
    /// `get_peers` / `get`: write token for a later `announce_peer` / `put`.
    pub token: Option<&'a [u8]>,
    /// BEP 51: sampled info-hashes.
    pub samples: Option<Samples<'a>>,
    /// BEP 51: number of info-hashes the node stores.
    pub num: Option<i64>,
    /// BEP 51: seconds before the sample changes.
    pub interval: Option<i64>,
    /// BEP 44: the raw bencoded item `v`, written verbatim (must be one bencoded value).
    pub value: Option<&'a [u8]>,
    /// BEP 44: the item's public key.
    pub key: Option<&'a [u8; 32]>,
    /// BEP 44: the item's signature.
    pub signature: Option<&'a [u8; 64]>,
    /// BEP 44: the item's sequence number.
    pub seq: Option<i64>,
    /// BEP 33: bloom filter of the seeds.
    pub bf_seeds: Option<&'a [u8; 256]>,
    /// BEP 33: bloom filter of the peers.
    pub bf_peers: Option<&'a [u8; 256]>,
    /// Keys this type does not know.
    ///
    /// Decoding sets it to the whole `r` dictionary when that holds a key this type does not
    /// know, so applications can read it with [`Dict::get`]. Encoding writes the entries of
    /// `extra` whose keys are not among the fields above, merged into canonical position (if
    /// `extra` is itself in canonical order): this is how an application answers a custom query
    /// with its own dictionary.
    pub extra: Option<Dict<'a>>,
}

/// A KRPC error (`y` = `e`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KrpcError<'a> {
    /// The code, see [`error_code`].
    pub code: i64,
    /// The human-readable message.
    pub message: &'a [u8],
}

impl Response<'_> {
    /// A response with only an `id`.
    pub const fn new(id: Id) -> Self {
        Self {
            id,
            nodes: None,
            nodes6: None,
            values: None,
            token: None,
            samples: None,
            num: None,
            interval: None,
            value: None,
            key: None,
            signature: None,
            seq: None,
            bf_seeds: None,
            bf_peers: None,
            extra: None,
        }
    }
}

impl<'a> Query<'a> {
    /// The querying node's id (`None` for a custom query without a valid `id`).
    pub fn id(&self) -> Option<Id> {
        Some(match self {
            Self::Ping(q) => q.id,
            Self::FindNode(q) => q.id,
            Self::GetPeers(q) => q.id,
            Self::AnnouncePeer(q) => q.id,
            Self::Get(q) => q.id,
            Self::Put(q) => q.id,
            Self::SampleInfohashes(q) => q.id,
            Self::Custom(q) => return q.id,
        })
    }

    /// The method name, as sent in `q`.
    pub fn method(&self) -> &'a [u8] {
        match self {
            Self::Ping(_) => b"ping",
            Self::FindNode(_) => b"find_node",
            Self::GetPeers(_) => b"get_peers",
            Self::AnnouncePeer(_) => b"announce_peer",
            Self::Get(_) => b"get",
            Self::Put(_) => b"put",
            Self::SampleInfohashes(_) => b"sample_infohashes",
            Self::Custom(q) => q.method,
        }
    }

    /// The id the query is about: `target` or `info_hash`. For a custom query, its `target` or
    /// `info_hash` argument when that is 20 bytes (so a node can answer unknown methods with
    /// close nodes, as libtorrent does for forward compatibility).
    pub fn target(&self) -> Option<Id> {
        match self {
            Self::Ping(_) | Self::Put(_) => None,
            Self::FindNode(q) => Some(q.target),
            Self::GetPeers(q) => Some(q.info_hash),
            Self::AnnouncePeer(q) => Some(q.info_hash),
            Self::Get(q) => Some(q.target),
            Self::SampleInfohashes(q) => Some(q.target),
            Self::Custom(q) => [b"target".as_slice(), b"info_hash"]
                .into_iter()
                .find_map(|k| q.args.get(k)?.as_bytes().and_then(Id::from_slice)),
        }
    }

    /// BEP 32 `want`, for the methods that carry it (and custom queries that have one).
    pub fn want(&self) -> Option<Want> {
        match self {
            Self::FindNode(q) => q.want,
            Self::GetPeers(q) => q.want,
            Self::Get(q) => q.want,
            Self::SampleInfohashes(q) => q.want,
            Self::Custom(q) => q.args.get(b"want")?.as_list().map(Want::from_list),
            Self::Ping(_) | Self::AnnouncePeer(_) | Self::Put(_) => None,
        }
    }
}

impl Want {
    /// Both address families.
    pub const BOTH: Self = Self { v4: true, v6: true };

    fn from_list(list: List<'_>) -> Self {
        let mut want = Self::default();
        for item in list {
            match item.as_bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
        want
    }
}

impl<'a> Message<'a> {
    /// Decodes one datagram.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for malformed bencode, input beyond `limits`, or a message that breaks
    /// the policy in the [module docs](self).
    pub fn decode(input: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        decode_message(input, limits)
    }

    /// Encodes the message into `buf`; returns the length written.
    ///
    /// # Errors
    ///
    /// [`InsufficientSize`] when `buf` is shorter than [`Message::encoded_len`].
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        let mut w = Writer::new(buf);
        self.write(&mut w);
        w.finish()
    }

    /// The length [`Message::encode`] needs.
    pub fn encoded_len(&self) -> usize {
        let mut w = Writer::new(&mut []);
        self.write(&mut w);
        w.len()
    }

    /// Writes the message with `w` (to embed it, or to write several into one buffer).
    pub fn write(&self, w: &mut Writer<'_>) {
        w.begin_dict();
        match &self.body {
            Body::Query(q) => {
                w.bytes(b"a");
                write_args(q, w);
            }
            Body::Error(e) => {
                w.bytes(b"e");
                w.begin_list();
                w.int(e.code);
                w.bytes(e.message);
                w.end();
            }
            Body::Response(_) => {}
        }
        if let Some(ip) = &self.ip {
            w.bytes(b"ip");
            let mut buf = [0u8; PEER6_LEN];
            let n = encode_peer(ip, &mut buf);
            w.bytes(buf.get(..n).unwrap_or_default());
        }
        if let Body::Query(q) = &self.body {
            w.bytes(b"q");
            w.bytes(q.method());
        }
        if let Body::Response(r) = &self.body {
            w.bytes(b"r");
            write_response(r, w);
        }
        if self.read_only {
            w.bytes(b"ro");
            w.int(1);
        }
        w.bytes(b"t");
        w.bytes(self.transaction_id);
        if let Some(v) = self.version {
            w.bytes(b"v");
            w.bytes(v);
        }
        w.bytes(b"y");
        w.bytes(match self.body {
            Body::Query(_) => b"q",
            Body::Response(_) => b"r",
            Body::Error(_) => b"e",
        });
        w.end();
    }
}

/// Best effort for replying with error 203 to garbage: the `t` and `y` of a datagram that
/// [`Message::decode`] rejected, if they can be found.
///
/// Reads the top-level dictionary up to the first malformed byte; returns the transaction id
/// (when it is a string of 1 to [`MAX_TRANSACTION_ID_LEN`] bytes) and the first byte of `y`.
pub fn peek_transaction<'a>(input: &'a [u8], limits: &DecodeLimits) -> Option<(&'a [u8], u8)> {
    let mut p = Parser::new(input, limits);
    if p.peek() != Some(b'd') {
        return None;
    }
    p.enter(1).ok()?;
    let (mut t, mut y) = (None, None);
    let mut prev = None;
    while t.is_none() || y.is_none() {
        let Ok(Some(key)) = p.key(&mut prev) else {
            break;
        };
        let Ok(value) = p.value(1) else {
            break;
        };
        match (key, value) {
            (b"t", Value::Bytes(b)) => t = Some(b),
            (b"y", Value::Bytes(b)) => y = b.first().copied(),
            _ => {}
        }
    }
    let t = t.filter(|t| (1..=MAX_TRANSACTION_ID_LEN).contains(&t.len()))?;
    Some((t, y?))
}

/// Writes the bytes a BEP 44 mutable item's signature covers: `4:salt<len>:<salt>` when `salt`
/// is non-empty, then `3:seqi<seq>e1:v` and the raw bencoded `value`.
///
/// # Errors
///
/// [`InsufficientSize`] when `buf` is too small.
pub fn mutable_signing_buffer(
    salt: Option<&[u8]>,
    seq: i64,
    value: &[u8],
    buf: &mut [u8],
) -> Result<usize, InsufficientSize> {
    let mut w = Writer::new(buf);
    if let Some(salt) = salt.filter(|s| !s.is_empty()) {
        w.bytes(b"salt");
        w.bytes(salt);
    }
    w.bytes(b"seq");
    w.int(seq);
    w.bytes(b"v");
    w.raw(value);
    w.finish()
}
