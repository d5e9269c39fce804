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
//! - A known key that appears twice in the top-level, `a` or `r` dictionary is an error
//!   ([`DecodeErrorKind::DuplicateKey`]), in any order.
//! - Unknown keys are validated as bencode and skipped, at every level. A response's unknown
//!   keys stay readable through [`Response::extra`]; a query of an unknown method keeps its
//!   whole `a` dictionary in [`Custom::args`].
//! - A known key with a value of the wrong bencode type is an error
//!   ([`DecodeErrorKind::WrongType`]). For a known method only the keys that method uses are
//!   known in its `a` dictionary; `r` keys are known whatever the query was.
//! - `t` must be a string of 1 to [`MAX_TRANSACTION_ID_LEN`] bytes; `y` must be `q`, `r` or
//!   `e` ([`DecodeErrorKind::InvalidValue`] otherwise).
//! - `id`, `target` and `info_hash` must be exactly 20 bytes; `k` 32; `sig` 64; `BFsd` and
//!   `BFpe` 256; top-level `ip` 6 or 18.
//! - `nodes`, `nodes6` and `samples` must be whole multiples of 26, 38 and 20 bytes: a
//!   trailing partial entry rejects the message rather than being silently dropped.
//! - Every item of `values` must be a 6- or 18-byte string (BEP 32 allows mixing families).
//! - `port` in `announce_peer` must be in 1..=65535 unless `implied_port` is non-zero, in which
//!   case `port` may be absent or anything (it is then read as 0 unless it is in range).
//! - `want` items other than `n4` and `n6` (including non-strings) are ignored.
//! - Integer flags (`ro`, `implied_port`, `noseed`, `scrape`, `seed`) are true when non-zero.
//! - `e` is a list whose first item is the integer code and whose second, if present, the
//!   message string; further items are ignored.
//! - A mutable `put` carries `k`, `sig` and `seq` together or none of them.

use core::fmt;
use core::net::SocketAddr;

use super::bencode::{
    DecodeError, DecodeErrorKind, DecodeLimits, Dict, EscapedBytes, List, Parser, Value,
    read_string, read_value,
};
pub use super::compact::Samples;
use super::compact::{
    NODE4_LEN, NODE6_LEN, Nodes, PEER4_LEN, PEER6_LEN, Peers, as_v4, decode_peer, encode_node,
    encode_peer,
};
use super::encode::{InsufficientSize, Writer};
use crate::id::{ID_LEN, Id};

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
/// [`Writer`](super::encode::Writer) and [`bencode::decode`](super::bencode::decode)).
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

// ------------------------------------------------------------------------------------------
// Decoding
// ------------------------------------------------------------------------------------------

fn err(kind: DecodeErrorKind, offset: usize) -> DecodeError {
    DecodeError::new(kind, offset)
}

/// Marks key `bit` as seen; a second sighting is a duplicate.
fn mark(seen: &mut u32, bit: u32, key_offset: usize) -> Result<(), DecodeError> {
    if *seen & bit != 0 {
        return Err(err(DecodeErrorKind::DuplicateKey, key_offset));
    }
    *seen |= bit;
    Ok(())
}

/// Validates a value, then requires it to be a byte string.
fn bytes_at<'a>(
    p: &mut Parser<'a>,
    depth: usize,
    name: &'static str,
) -> Result<&'a [u8], DecodeError> {
    let start = p.offset();
    if matches!(p.peek(), Some(b'0'..=b'9')) {
        return p.string();
    }
    p.value(depth)?;
    Err(err(DecodeErrorKind::WrongType(name), start))
}

/// Validates a value, then requires it to be an integer.
fn int_at(p: &mut Parser<'_>, depth: usize, name: &'static str) -> Result<i64, DecodeError> {
    let start = p.offset();
    if p.peek() == Some(b'i') {
        return p.integer();
    }
    p.value(depth)?;
    Err(err(DecodeErrorKind::WrongType(name), start))
}

/// A byte string of exactly `N` bytes.
fn array_at<'a, const N: usize>(
    p: &mut Parser<'a>,
    depth: usize,
    name: &'static str,
) -> Result<&'a [u8; N], DecodeError> {
    let start = p.offset();
    let b = bytes_at(p, depth, name)?;
    b.try_into()
        .map_err(|_| err(DecodeErrorKind::InvalidValue(name), start))
}

/// A byte string whose length is a multiple of `unit`.
fn chunks_at<'a>(
    p: &mut Parser<'a>,
    depth: usize,
    name: &'static str,
    unit: usize,
) -> Result<&'a [u8], DecodeError> {
    let start = p.offset();
    let b = bytes_at(p, depth, name)?;
    if b.len() % unit != 0 {
        return Err(err(DecodeErrorKind::InvalidValue(name), start));
    }
    Ok(b)
}

/// `values`: a list of 6- or 18-byte strings, validated in one pass.
fn peers_at<'a>(p: &mut Parser<'a>, depth: usize) -> Result<List<'a>, DecodeError> {
    const NAME: &str = "values";
    let start = p.offset();
    if p.peek() != Some(b'l') {
        p.value(depth)?;
        return Err(err(DecodeErrorKind::WrongType(NAME), start));
    }
    p.enter(depth + 1)?;
    loop {
        let item = p.offset();
        match p.peek() {
            Some(b'e') => {
                p.bump();
                return Ok(List::from_validated(p.since(start)));
            }
            Some(b'0'..=b'9') => {
                p.count_element()?;
                let s = p.string()?;
                if s.len() != PEER4_LEN && s.len() != PEER6_LEN {
                    return Err(err(DecodeErrorKind::InvalidValue(NAME), item));
                }
            }
            None => return Err(p.error(DecodeErrorKind::UnexpectedEnd)),
            Some(_) => {
                p.count_element()?;
                p.value(depth + 1)?;
                return Err(err(DecodeErrorKind::WrongType(NAME), item));
            }
        }
    }
}

fn id_at(p: &mut Parser<'_>, depth: usize, name: &'static str) -> Result<Id, DecodeError> {
    array_at::<ID_LEN>(p, depth, name).map(|b| Id::new(*b))
}

/// The `r` dictionary, parsed in the same pass as its validation.
fn response_at<'a>(p: &mut Parser<'a>) -> Result<Response<'a>, DecodeError> {
    const D: usize = 2;
    let start = p.offset();
    if p.peek() != Some(b'd') {
        p.value(1)?;
        return Err(err(DecodeErrorKind::WrongType("r"), start));
    }
    p.enter(D)?;
    let mut r = Response::new(Id::ZERO);
    let (mut seen, mut prev, mut unknown) = (0u32, None, false);
    loop {
        let key_at = p.offset();
        let Some(key) = p.key(&mut prev)? else {
            break;
        };
        let bit = match key {
            b"id" => {
                r.id = id_at(p, D, "id")?;
                1
            }
            b"nodes" => {
                r.nodes = Some(Nodes::Compact4(chunks_at(p, D, "nodes", NODE4_LEN)?));
                1 << 1
            }
            b"nodes6" => {
                r.nodes6 = Some(Nodes::Compact6(chunks_at(p, D, "nodes6", NODE6_LEN)?));
                1 << 2
            }
            b"values" => {
                r.values = Some(Peers::Compact(peers_at(p, D)?));
                1 << 3
            }
            b"token" => {
                r.token = Some(bytes_at(p, D, "token")?);
                1 << 4
            }
            b"samples" => {
                r.samples = Some(Samples::Compact(chunks_at(p, D, "samples", ID_LEN)?));
                1 << 5
            }
            b"num" => {
                r.num = Some(int_at(p, D, "num")?);
                1 << 6
            }
            b"interval" => {
                r.interval = Some(int_at(p, D, "interval")?);
                1 << 7
            }
            b"v" => {
                let v = p.offset();
                p.value(D)?;
                r.value = Some(p.since(v));
                1 << 8
            }
            b"k" => {
                r.key = Some(array_at(p, D, "k")?);
                1 << 9
            }
            b"sig" => {
                r.signature = Some(array_at(p, D, "sig")?);
                1 << 10
            }
            b"seq" => {
                r.seq = Some(int_at(p, D, "seq")?);
                1 << 11
            }
            b"BFsd" => {
                r.bf_seeds = Some(array_at(p, D, "BFsd")?);
                1 << 12
            }
            b"BFpe" => {
                r.bf_peers = Some(array_at(p, D, "BFpe")?);
                1 << 13
            }
            _ => {
                p.value(D)?;
                unknown = true;
                0
            }
        };
        if bit != 0 {
            mark(&mut seen, bit, key_at)?;
        }
    }
    if seen & 1 == 0 {
        return Err(err(DecodeErrorKind::MissingKey("id"), start));
    }
    if unknown {
        r.extra = Some(Dict::from_validated(p.since(start)));
    }
    Ok(r)
}

fn decode_message<'a>(input: &'a [u8], limits: &DecodeLimits) -> Result<Message<'a>, DecodeError> {
    let mut p = Parser::new(input, limits);
    match p.peek() {
        Some(b'd') => p.enter(1)?,
        Some(_) => {
            p.value(0)?;
            return Err(err(DecodeErrorKind::WrongType("message"), 0));
        }
        None => return Err(p.error(DecodeErrorKind::UnexpectedEnd)),
    }
    let mut t = None;
    let mut y = None;
    let mut q = None;
    let mut a = None;
    let mut r = None;
    let mut e = None;
    let mut version = None;
    let mut ip = None;
    let mut read_only = false;
    let (mut seen, mut prev) = (0u32, None);
    loop {
        let key_at = p.offset();
        let Some(key) = p.key(&mut prev)? else {
            break;
        };
        let at = p.offset();
        let bit = match key {
            b"t" => {
                t = Some((bytes_at(&mut p, 1, "t")?, at));
                1
            }
            b"y" => {
                y = Some((bytes_at(&mut p, 1, "y")?, at));
                1 << 1
            }
            b"q" => {
                q = Some(bytes_at(&mut p, 1, "q")?);
                1 << 2
            }
            b"a" => {
                match p.value(1)? {
                    Value::Dict(d) => a = Some((d, at)),
                    _ => return Err(err(DecodeErrorKind::WrongType("a"), at)),
                }
                1 << 3
            }
            b"r" => {
                r = Some(response_at(&mut p)?);
                1 << 4
            }
            b"e" => {
                match p.value(1)? {
                    Value::List(l) => e = Some((l, at)),
                    _ => return Err(err(DecodeErrorKind::WrongType("e"), at)),
                }
                1 << 5
            }
            b"v" => {
                version = Some(bytes_at(&mut p, 1, "v")?);
                1 << 6
            }
            b"ip" => {
                let b = bytes_at(&mut p, 1, "ip")?;
                ip = Some(decode_peer(b).ok_or(err(DecodeErrorKind::InvalidValue("ip"), at))?);
                1 << 7
            }
            b"ro" => {
                read_only = int_at(&mut p, 1, "ro")? != 0;
                1 << 8
            }
            _ => {
                p.value(1)?;
                0
            }
        };
        if bit != 0 {
            mark(&mut seen, bit, key_at)?;
        }
    }
    p.finish()?;

    let (transaction_id, t_at) = t.ok_or(err(DecodeErrorKind::MissingKey("t"), 0))?;
    if !(1..=MAX_TRANSACTION_ID_LEN).contains(&transaction_id.len()) {
        return Err(err(DecodeErrorKind::InvalidValue("t"), t_at));
    }
    let (y, y_at) = y.ok_or(err(DecodeErrorKind::MissingKey("y"), 0))?;
    let body = match y {
        b"q" => {
            let method = q.ok_or(err(DecodeErrorKind::MissingKey("q"), 0))?;
            let (args, a_at) = a.ok_or(err(DecodeErrorKind::MissingKey("a"), 0))?;
            Body::Query(query_from_args(method, args, a_at)?)
        }
        b"r" => Body::Response(r.ok_or(err(DecodeErrorKind::MissingKey("r"), 0))?),
        b"e" => {
            let (list, e_at) = e.ok_or(err(DecodeErrorKind::MissingKey("e"), 0))?;
            Body::Error(error_from_list(list, e_at)?)
        }
        _ => return Err(err(DecodeErrorKind::InvalidValue("y"), y_at)),
    };
    Ok(Message {
        transaction_id,
        version,
        ip,
        read_only,
        body,
    })
}

fn error_from_list<'a>(list: List<'a>, at: usize) -> Result<KrpcError<'a>, DecodeError> {
    let mut items = list.iter();
    let code = items
        .next()
        .ok_or(err(DecodeErrorKind::InvalidValue("e"), at))?
        .as_int()
        .ok_or(err(DecodeErrorKind::WrongType("e"), at))?;
    let message = match items.next() {
        None => b"".as_slice(),
        Some(Value::Bytes(b)) => b,
        Some(_) => return Err(err(DecodeErrorKind::WrongType("e"), at)),
    };
    Ok(KrpcError { code, message })
}

/// Bits of the query argument keys.
mod arg {
    pub(super) const ID: u32 = 1;
    pub(super) const TARGET: u32 = 1 << 1;
    pub(super) const INFO_HASH: u32 = 1 << 2;
    pub(super) const PORT: u32 = 1 << 3;
    pub(super) const IMPLIED_PORT: u32 = 1 << 4;
    pub(super) const TOKEN: u32 = 1 << 5;
    pub(super) const WANT: u32 = 1 << 6;
    pub(super) const NOSEED: u32 = 1 << 7;
    pub(super) const SCRAPE: u32 = 1 << 8;
    pub(super) const SEED: u32 = 1 << 9;
    pub(super) const SEQ: u32 = 1 << 10;
    pub(super) const CAS: u32 = 1 << 11;
    pub(super) const SALT: u32 = 1 << 12;
    pub(super) const K: u32 = 1 << 13;
    pub(super) const SIG: u32 = 1 << 14;
    pub(super) const V: u32 = 1 << 15;
}

/// The arguments a known method may carry, read from a validated `a` dictionary.
#[derive(Default)]
struct Args<'a> {
    seen: u32,
    id: Option<Id>,
    target: Option<Id>,
    info_hash: Option<Id>,
    port: Option<(i64, usize)>,
    implied_port: bool,
    token: Option<&'a [u8]>,
    want: Option<Want>,
    noseed: bool,
    scrape: bool,
    seed: bool,
    seq: Option<i64>,
    cas: Option<i64>,
    salt: Option<&'a [u8]>,
    k: Option<&'a [u8; 32]>,
    sig: Option<&'a [u8; 64]>,
    v: Option<&'a [u8]>,
}

fn key_bit(key: &[u8]) -> (u32, &'static str) {
    match key {
        b"id" => (arg::ID, "id"),
        b"target" => (arg::TARGET, "target"),
        b"info_hash" => (arg::INFO_HASH, "info_hash"),
        b"port" => (arg::PORT, "port"),
        b"implied_port" => (arg::IMPLIED_PORT, "implied_port"),
        b"token" => (arg::TOKEN, "token"),
        b"want" => (arg::WANT, "want"),
        b"noseed" => (arg::NOSEED, "noseed"),
        b"scrape" => (arg::SCRAPE, "scrape"),
        b"seed" => (arg::SEED, "seed"),
        b"seq" => (arg::SEQ, "seq"),
        b"cas" => (arg::CAS, "cas"),
        b"salt" => (arg::SALT, "salt"),
        b"k" => (arg::K, "k"),
        b"sig" => (arg::SIG, "sig"),
        b"v" => (arg::V, "v"),
        _ => (0, ""),
    }
}

impl<'a> Args<'a> {
    /// Reads the keys in `mask` from the validated dictionary `args` found at offset `at`.
    fn read(args: Dict<'a>, at: usize, mask: u32) -> Result<Self, DecodeError> {
        let raw = args.raw();
        let mut out = Self::default();
        let mut rest = raw.get(1..).unwrap_or_default();
        while let Some((key, after_key)) = read_string(rest) {
            let Some((value, after)) = read_value(after_key) else {
                break;
            };
            let key_at = at + raw.len() - rest.len();
            let value_at = at + raw.len() - after_key.len();
            let value_raw = after_key.get(..after_key.len() - after.len());
            rest = after;
            let (bit, name) = key_bit(key);
            if bit & mask == 0 {
                continue;
            }
            mark(&mut out.seen, bit, key_at)?;
            let wrong = err(DecodeErrorKind::WrongType(name), value_at);
            let invalid = err(DecodeErrorKind::InvalidValue(name), value_at);
            let id = || {
                let b = value.as_bytes().ok_or(wrong)?;
                Id::from_slice(b).ok_or(invalid)
            };
            let int = || value.as_int().ok_or(wrong);
            let bytes = || value.as_bytes().ok_or(wrong);
            match bit {
                arg::ID => out.id = Some(id()?),
                arg::TARGET => out.target = Some(id()?),
                arg::INFO_HASH => out.info_hash = Some(id()?),
                arg::PORT => out.port = Some((int()?, value_at)),
                arg::IMPLIED_PORT => out.implied_port = int()? != 0,
                arg::TOKEN => out.token = Some(bytes()?),
                arg::WANT => out.want = Some(Want::from_list(value.as_list().ok_or(wrong)?)),
                arg::NOSEED => out.noseed = int()? != 0,
                arg::SCRAPE => out.scrape = int()? != 0,
                arg::SEED => out.seed = int()? != 0,
                arg::SEQ => out.seq = Some(int()?),
                arg::CAS => out.cas = Some(int()?),
                arg::SALT => out.salt = Some(bytes()?),
                arg::K => out.k = Some(bytes()?.try_into().map_err(|_| invalid)?),
                arg::SIG => out.sig = Some(bytes()?.try_into().map_err(|_| invalid)?),
                arg::V => out.v = value_raw,
                _ => {}
            }
        }
        Ok(out)
    }
}

fn query_from_args<'a>(
    method: &'a [u8],
    args: Dict<'a>,
    at: usize,
) -> Result<Query<'a>, DecodeError> {
    use arg::*;
    let missing = |name| err(DecodeErrorKind::MissingKey(name), at);
    let mask = match method {
        b"ping" => ID,
        b"find_node" | b"sample_infohashes" => ID | TARGET | WANT,
        b"get_peers" => ID | INFO_HASH | WANT | NOSEED | SCRAPE,
        b"announce_peer" => ID | INFO_HASH | PORT | IMPLIED_PORT | TOKEN | SEED,
        b"get" => ID | TARGET | SEQ | WANT,
        b"put" => ID | TOKEN | V | K | SIG | SEQ | CAS | SALT,
        _ => {
            let id = args.get(b"id").and_then(|v| Id::from_slice(v.as_bytes()?));
            return Ok(Query::Custom(Custom { method, args, id }));
        }
    };
    let a = Args::read(args, at, mask)?;
    let id = a.id.ok_or(missing("id"))?;
    Ok(match method {
        b"ping" => Query::Ping(Ping { id }),
        b"find_node" => Query::FindNode(FindNode {
            id,
            target: a.target.ok_or(missing("target"))?,
            want: a.want,
        }),
        b"sample_infohashes" => Query::SampleInfohashes(SampleInfohashes {
            id,
            target: a.target.ok_or(missing("target"))?,
            want: a.want,
        }),
        b"get_peers" => Query::GetPeers(GetPeers {
            id,
            info_hash: a.info_hash.ok_or(missing("info_hash"))?,
            want: a.want,
            noseed: a.noseed,
            scrape: a.scrape,
        }),
        b"announce_peer" => {
            let info_hash = a.info_hash.ok_or(missing("info_hash"))?;
            let token = a.token.ok_or(missing("token"))?;
            let port = match a.port {
                Some((p, _)) if (1..=65535).contains(&p) => p as u16,
                Some((p, _)) if a.implied_port => u16::try_from(p).unwrap_or(0),
                None if a.implied_port => 0,
                Some((_, p_at)) => return Err(err(DecodeErrorKind::InvalidValue("port"), p_at)),
                None => return Err(missing("port")),
            };
            Query::AnnouncePeer(AnnouncePeer {
                id,
                info_hash,
                port,
                implied_port: a.implied_port,
                token,
                seed: a.seed,
            })
        }
        b"get" => Query::Get(Get {
            id,
            target: a.target.ok_or(missing("target"))?,
            seq: a.seq,
            want: a.want,
        }),
        _ => {
            // put
            let mutable = a.seen & (K | SIG | SEQ);
            if mutable != 0 && mutable != K | SIG | SEQ {
                let absent = if a.k.is_none() {
                    "k"
                } else if a.sig.is_none() {
                    "sig"
                } else {
                    "seq"
                };
                return Err(missing(absent));
            }
            Query::Put(Put {
                id,
                token: a.token.ok_or(missing("token"))?,
                value: a.v.ok_or(missing("v"))?,
                key: a.k,
                signature: a.sig,
                seq: a.seq,
                cas: a.cas,
                salt: a.salt,
            })
        }
    })
}

// ------------------------------------------------------------------------------------------
// Encoding
// ------------------------------------------------------------------------------------------

fn write_want(w: &mut Writer<'_>, want: Option<Want>) {
    if let Some(want) = want {
        w.bytes(b"want");
        w.begin_list();
        if want.v4 {
            w.bytes(b"n4");
        }
        if want.v6 {
            w.bytes(b"n6");
        }
        w.end();
    }
}

fn write_flag(w: &mut Writer<'_>, key: &[u8], on: bool) {
    if on {
        w.bytes(key);
        w.int(1);
    }
}

fn write_opt_int(w: &mut Writer<'_>, key: &[u8], v: Option<i64>) {
    if let Some(v) = v {
        w.bytes(key);
        w.int(v);
    }
}

fn write_opt_bytes(w: &mut Writer<'_>, key: &[u8], v: Option<&[u8]>) {
    if let Some(v) = v {
        w.bytes(key);
        w.bytes(v);
    }
}

fn write_id(w: &mut Writer<'_>, key: &[u8], id: &Id) {
    w.bytes(key);
    w.bytes(id.as_bytes());
}

fn write_args(q: &Query<'_>, w: &mut Writer<'_>) {
    if let Query::Custom(c) = q {
        write_custom_args(c, w);
        return;
    }
    w.begin_dict();
    match q {
        Query::Ping(p) => write_id(w, b"id", &p.id),
        Query::FindNode(f) => {
            write_id(w, b"id", &f.id);
            write_id(w, b"target", &f.target);
            write_want(w, f.want);
        }
        Query::GetPeers(g) => {
            write_id(w, b"id", &g.id);
            write_id(w, b"info_hash", &g.info_hash);
            write_flag(w, b"noseed", g.noseed);
            write_flag(w, b"scrape", g.scrape);
            write_want(w, g.want);
        }
        Query::AnnouncePeer(a) => {
            write_id(w, b"id", &a.id);
            write_flag(w, b"implied_port", a.implied_port);
            write_id(w, b"info_hash", &a.info_hash);
            w.bytes(b"port");
            w.int(i64::from(a.port));
            write_flag(w, b"seed", a.seed);
            w.bytes(b"token");
            w.bytes(a.token);
        }
        Query::Get(g) => {
            write_id(w, b"id", &g.id);
            write_opt_int(w, b"seq", g.seq);
            write_id(w, b"target", &g.target);
            write_want(w, g.want);
        }
        Query::Put(p) => {
            write_opt_int(w, b"cas", p.cas);
            write_id(w, b"id", &p.id);
            write_opt_bytes(w, b"k", p.key.map(|k| k.as_slice()));
            write_opt_bytes(w, b"salt", p.salt);
            write_opt_int(w, b"seq", p.seq);
            write_opt_bytes(w, b"sig", p.signature.map(|s| s.as_slice()));
            w.bytes(b"token");
            w.bytes(p.token);
            w.bytes(b"v");
            w.raw(p.value);
        }
        Query::SampleInfohashes(s) => {
            write_id(w, b"id", &s.id);
            write_id(w, b"target", &s.target);
            write_want(w, s.want);
        }
        Query::Custom(_) => {}
    }
    w.end();
}

/// Writes the entries of `extra` except those `skip` rejects, dropping a key equal to the one
/// before it, and calling `before(key, w)` ahead of each entry written (and once with `None`
/// at the end) so that the caller can merge its own keys in.
fn merge_entries(
    w: &mut Writer<'_>,
    extra: Option<Dict<'_>>,
    skip: impl Fn(&[u8]) -> bool,
    mut before: impl FnMut(Option<&[u8]>, &mut Writer<'_>),
) {
    let raw = extra.map(|d| d.raw()).unwrap_or_default();
    let mut rest = raw.get(1..).unwrap_or_default();
    let mut last: Option<&[u8]> = None;
    while let Some((key, after_key)) = read_string(rest) {
        let Some((_, after)) = read_value(after_key) else {
            break;
        };
        let value = after_key.get(..after_key.len() - after.len());
        rest = after;
        if skip(key) || last == Some(key) {
            continue;
        }
        last = Some(key);
        before(Some(key), w);
        w.bytes(key);
        w.raw(value.unwrap_or_default());
    }
    before(None, w);
}

fn write_custom_args(c: &Custom<'_>, w: &mut Writer<'_>) {
    let Some(id) = c.id else {
        w.raw(c.args.raw());
        return;
    };
    w.begin_dict();
    let mut pending = true;
    merge_entries(
        w,
        Some(c.args),
        |k| k == b"id",
        |key, w| {
            if pending && key.is_none_or(|k| k > b"id".as_slice()) {
                write_id(w, b"id", &id);
                pending = false;
            }
        },
    );
    w.end();
}

/// The keys of [`Response`], in canonical order.
const RESPONSE_KEYS: [&[u8]; 14] = [
    b"BFpe",
    b"BFsd",
    b"id",
    b"interval",
    b"k",
    b"nodes",
    b"nodes6",
    b"num",
    b"samples",
    b"seq",
    b"sig",
    b"token",
    b"v",
    b"values",
];

fn write_response(r: &Response<'_>, w: &mut Writer<'_>) {
    w.begin_dict();
    let mut next = 0;
    merge_entries(
        w,
        r.extra,
        |k| RESPONSE_KEYS.contains(&k),
        |key, w| {
            while let Some(k) = RESPONSE_KEYS.get(next) {
                if key.is_some_and(|key| key < *k) {
                    break;
                }
                write_response_field(r, next, w);
                next += 1;
            }
        },
    );
    w.end();
}

fn write_response_field(r: &Response<'_>, index: usize, w: &mut Writer<'_>) {
    match index {
        0 => write_opt_bytes(w, b"BFpe", r.bf_peers.map(|b| b.as_slice())),
        1 => write_opt_bytes(w, b"BFsd", r.bf_seeds.map(|b| b.as_slice())),
        2 => write_id(w, b"id", &r.id),
        3 => write_opt_int(w, b"interval", r.interval),
        4 => write_opt_bytes(w, b"k", r.key.map(|k| k.as_slice())),
        5 => write_nodes(w, b"nodes", r.nodes, false),
        6 => write_nodes(w, b"nodes6", r.nodes6, true),
        7 => write_opt_int(w, b"num", r.num),
        8 => write_samples(w, r.samples),
        9 => write_opt_int(w, b"seq", r.seq),
        10 => write_opt_bytes(w, b"sig", r.signature.map(|s| s.as_slice())),
        11 => write_opt_bytes(w, b"token", r.token),
        12 => {
            if let Some(v) = r.value {
                w.bytes(b"v");
                w.raw(v);
            }
        }
        13 => write_peers(w, r.values),
        _ => {}
    }
}

fn write_nodes(w: &mut Writer<'_>, key: &[u8], nodes: Option<Nodes<'_>>, v6: bool) {
    let Some(nodes) = nodes else {
        return;
    };
    w.bytes(key);
    let size = if v6 { NODE6_LEN } else { NODE4_LEN };
    match (nodes, v6) {
        (Nodes::Compact4(b), false) | (Nodes::Compact6(b), true) => {
            w.bytes(b.get(..b.len() / size * size).unwrap_or_default());
        }
        _ => {
            let wanted = |n: &super::compact::NodeInfo| as_v4(&n.addr).is_some() != v6;
            let count = nodes.iter().filter(wanted).count();
            w.length_prefix(count * size);
            let mut buf = [0u8; NODE6_LEN];
            for node in nodes.iter().filter(wanted) {
                let n = encode_node(&node, &mut buf);
                w.raw(buf.get(..n).unwrap_or_default());
            }
        }
    }
}

fn write_peers(w: &mut Writer<'_>, peers: Option<Peers<'_>>) {
    let Some(peers) = peers else {
        return;
    };
    w.bytes(b"values");
    w.begin_list();
    let mut buf = [0u8; PEER6_LEN];
    for peer in peers.iter() {
        let n = encode_peer(&peer, &mut buf);
        w.bytes(buf.get(..n).unwrap_or_default());
    }
    w.end();
}

fn write_samples(w: &mut Writer<'_>, samples: Option<Samples<'_>>) {
    let Some(samples) = samples else {
        return;
    };
    w.bytes(b"samples");
    match samples {
        Samples::Compact(b) => w.bytes(b.get(..b.len() / ID_LEN * ID_LEN).unwrap_or_default()),
        Samples::Slice(ids) => {
            w.length_prefix(ids.len() * ID_LEN);
            for id in ids {
                w.raw(id.as_bytes());
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Display
// ------------------------------------------------------------------------------------------

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Display for Message<'_> {
    /// One line: kind, transaction id in hex, then the interesting fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.body {
            Body::Query(_) => 'q',
            Body::Response(_) => 'r',
            Body::Error(_) => 'e',
        };
        write!(f, "{kind} t={}", Hex(self.transaction_id))?;
        match &self.body {
            Body::Query(q) => {
                write!(f, " {}", EscapedBytes(q.method()))?;
                if let Some(id) = q.id() {
                    write!(f, " id={id}")?;
                }
                if let Some(target) = q.target() {
                    write!(f, " target={target}")?;
                }
                if let Some(want) = q.want() {
                    write!(
                        f,
                        " want={}{}",
                        if want.v4 { "4" } else { "" },
                        if want.v6 { "6" } else { "" }
                    )?;
                }
                match q {
                    Query::AnnouncePeer(a) => {
                        write!(f, " port={} token={}", a.port, Hex(a.token))?;
                        if a.implied_port {
                            f.write_str(" implied_port")?;
                        }
                        if a.seed {
                            f.write_str(" seed")?;
                        }
                    }
                    Query::Get(g) => {
                        if let Some(seq) = g.seq {
                            write!(f, " seq={seq}")?;
                        }
                    }
                    Query::Put(p) => {
                        write!(f, " token={} v={}B", Hex(p.token), p.value.len())?;
                        if let Some(seq) = p.seq {
                            write!(f, " seq={seq}")?;
                        }
                        if let Some(k) = p.key {
                            write!(f, " k={}", Hex(k))?;
                        }
                    }
                    Query::GetPeers(g) => {
                        if g.noseed {
                            f.write_str(" noseed")?;
                        }
                        if g.scrape {
                            f.write_str(" scrape")?;
                        }
                    }
                    _ => {}
                }
            }
            Body::Response(r) => {
                write!(f, " id={}", r.id)?;
                if let Some(n) = r.nodes {
                    write!(f, " nodes={}", n.len())?;
                }
                if let Some(n) = r.nodes6 {
                    write!(f, " nodes6={}", n.len())?;
                }
                if let Some(v) = r.values {
                    write!(f, " values={}", v.len())?;
                }
                if let Some(t) = r.token {
                    write!(f, " token={}", Hex(t))?;
                }
                if let Some(s) = r.samples {
                    write!(f, " samples={}", s.len())?;
                }
                if let Some(n) = r.num {
                    write!(f, " num={n}")?;
                }
                if let Some(i) = r.interval {
                    write!(f, " interval={i}")?;
                }
                if let Some(v) = r.value {
                    write!(f, " v={}B", v.len())?;
                }
                if let Some(seq) = r.seq {
                    write!(f, " seq={seq}")?;
                }
                if r.bf_seeds.is_some() || r.bf_peers.is_some() {
                    f.write_str(" bloom")?;
                }
            }
            Body::Error(e) => write!(f, " {} {}", e.code, EscapedBytes(e.message))?,
        }
        if let Some(ip) = self.ip {
            write!(f, " ip={ip}")?;
        }
        if let Some(v) = self.version {
            write!(f, " v={}", EscapedBytes(v))?;
        }
        if self.read_only {
            f.write_str(" ro")?;
        }
        Ok(())
    }
}
