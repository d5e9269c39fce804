//! Output: outgoing messages. Requests (with their transactions) and errors are queued as
//! small descriptors and encoded in `poll_transmit`; responses are written when queued (by
//! [`write_reply`], once the guards have passed) and queued as bytes.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use rand_core::RngCore;

use super::reply::write_reply;
use super::{Disposition, Node, PutItem};
use crate::bep44::Ed25519Verifier;
use crate::error::{CommandError, DropReason};
use crate::id::{ID_LEN, Id};
use crate::server::bloom::Bloom;
use crate::server::peers::PeerSink;
use crate::server::tokens::Token;
use crate::small::SmallBytes;
use crate::stats::MethodKind;
use crate::time::Instant;
use crate::transaction::{Purpose, Txn};
use crate::wire::bencode::{self, Dict, Value};
use crate::wire::compact::{NODE4_LEN, NODE6_LEN, PEER4_LEN, PEER6_LEN, as_v4};
use crate::wire::encode::Writer;
use crate::wire::krpc::{
    AnnouncePeer, Body, Custom, FindNode, Get, GetPeers, KrpcError, Message, Ping, Put, Query,
    Response, SampleInfohashes,
};

/// A request we send.
#[derive(Clone, Debug)]
pub(crate) enum OutQuery {
    Ping,
    FindNode {
        target: Id,
    },
    GetPeers {
        info_hash: Id,
        /// BEP 33: ask for the swarm's bloom filters.
        scrape: bool,
    },
    AnnouncePeer {
        info_hash: Id,
        port: Option<u16>,
        token: SmallBytes,
    },
    SampleInfohashes {
        target: Id,
    },
    /// BEP 44 `get`.
    Get {
        target: Id,
    },
    /// BEP 44 `put` of an item, with the token the node gave.
    Put {
        token: SmallBytes,
        item: Box<PutItem>,
    },
    /// `args` is a dictionary validated and with our id merged in by [`with_id`].
    Custom {
        method: Vec<u8>,
        args: Vec<u8>,
    },
}

impl OutQuery {
    pub(crate) fn method(&self) -> MethodKind {
        match self {
            Self::Ping => MethodKind::Ping,
            Self::FindNode { .. } => MethodKind::FindNode,
            Self::GetPeers { .. } => MethodKind::GetPeers,
            Self::AnnouncePeer { .. } => MethodKind::AnnouncePeer,
            Self::SampleInfohashes { .. } => MethodKind::SampleInfohashes,
            Self::Get { .. } => MethodKind::Get,
            Self::Put { .. } => MethodKind::Put,
            Self::Custom { .. } => MethodKind::Other,
        }
    }
}

/// The typed parts of a response we send (the node id is added at encoding).
#[derive(Clone, Debug, Default)]
pub(crate) struct OutResponse {
    /// `nodes`, IPv4 contacts in compact form.
    pub(crate) nodes: CompactNodes<false>,
    /// `nodes6`, IPv6 contacts in compact form.
    pub(crate) nodes6: CompactNodes<true>,
    /// Which of `nodes` / `nodes6` the requester gets, even empty (BEP 5 replies to find_node
    /// and get_peers always carry `nodes`; an empty table gives an empty string).
    pub(crate) families: (bool, bool),
    /// `values`, the peers in wire form.
    pub(crate) values: CompactValues,
    pub(crate) token: Option<Token>,
    pub(crate) samples: Option<Vec<Id>>,
    /// BEP 51 `num` and `interval`, 32 bits each (a reply descriptor stays within the size
    /// the queue moves cheaply).
    pub(crate) num: Option<u32>,
    pub(crate) interval: Option<u32>,
    /// Boxed: two 256-byte filters would make every queued message large.
    pub(crate) scrape: Option<Box<(Bloom, Bloom)>>,
    /// BEP 44 `get`: the stored item, if any.
    pub(crate) item: Option<OutItem>,
    /// BEP 44 `get`: the stored sequence number when the value is left out.
    pub(crate) seq: Option<i64>,
}

impl OutResponse {
    /// The whole reply to `to` in transaction `tid`, from `sender`: what the node's own
    /// writer (`reply::write_reply`) is checked against.
    #[cfg(any(test, debug_assertions))]
    pub(crate) fn message<'a>(
        &'a self,
        to: SocketAddr,
        tid: &'a [u8],
        sender: &'a Sender,
    ) -> Message<'a> {
        Message {
            transaction_id: tid,
            version: sender.version.as_ref().map(|v| v.as_slice()),
            ip: Some(to),
            read_only: false,
            body: Body::Response(self.wire(sender.id)),
        }
    }

    /// The response on the wire, from `id`.
    #[cfg(any(test, debug_assertions))]
    pub(crate) fn wire(&self, id: Id) -> Response<'_> {
        use crate::wire::compact::{Nodes, Peers};
        use crate::wire::krpc::Samples;
        let r = self;
        let mut resp = Response::new(id);
        if !r.nodes.is_empty() || r.families.0 {
            resp.nodes = Some(Nodes::Compact4(r.nodes.as_bytes()));
        }
        if !r.nodes6.is_empty() || r.families.1 {
            resp.nodes6 = Some(Nodes::Compact6(r.nodes6.as_bytes()));
        }
        if !r.values.is_empty() {
            let list = bencode::List::from_validated(r.values.as_bytes());
            resp.values = Some(Peers::Compact(list));
        }
        resp.token = r.token.as_ref().map(|t| t.as_bytes().as_slice());
        resp.samples = r.samples.as_deref().map(Samples::Slice);
        resp.num = r.num.map(i64::from);
        resp.interval = r.interval.map(i64::from);
        if let Some((seeds, peers)) = r.scrape.as_deref() {
            resp.bf_seeds = Some(seeds.as_bytes());
            resp.bf_peers = Some(peers.as_bytes());
        }
        resp.seq = r.seq;
        if let Some(item) = &r.item {
            resp.value = Some(&item.value);
            let signed = item.signed.as_deref();
            resp.key = signed.map(|s| &s.key);
            resp.signature = signed.map(|s| &s.signature);
            resp.seq = signed.map(|s| s.seq);
        }
        resp
    }

    /// The length of this response to `to` in transaction `tid` with `version`, computed from
    /// the fields' sizes (what [`Out::encode`] writes, without writing it: the reply's size is
    /// checked on every query, before it is queued).
    pub(crate) fn encoded_len(&self, to: SocketAddr, tid: &[u8], version: Option<&[u8]>) -> usize {
        // `d`, `2:ip` + address, `1:r` + the response, `1:t` + tid, `1:v` + version, `1:y1:r`,
        // `e`.
        1 + 4
            + str_len(peer_len(&to))
            + 3
            + self.response_len()
            + 3
            + str_len(tid.len())
            + version.map_or(0, |v| 3 + str_len(v.len()))
            + 6
            + 1
    }

    /// The length of the `r` dictionary [`OutResponse::wire`] describes.
    fn response_len(&self) -> usize {
        // A key and its value.
        let field = |key: &[u8], value: usize| str_len(key.len()) + value;
        // `d`, `e` and the id.
        let mut len = 2 + field(b"id", str_len(ID_LEN));
        if let Some((seeds, peers)) = self.scrape.as_deref() {
            len += field(b"BFpe", str_len(peers.as_bytes().len()));
            len += field(b"BFsd", str_len(seeds.as_bytes().len()));
        }
        if let Some(interval) = self.interval {
            len += field(b"interval", int_len(i64::from(interval)));
        }
        if !self.nodes.is_empty() || self.families.0 {
            len += field(b"nodes", str_len(self.nodes.as_bytes().len()));
        }
        if !self.nodes6.is_empty() || self.families.1 {
            len += field(b"nodes6", str_len(self.nodes6.as_bytes().len()));
        }
        if let Some(num) = self.num {
            len += field(b"num", int_len(i64::from(num)));
        }
        if let Some(samples) = &self.samples {
            len += field(b"samples", str_len(samples.len() * ID_LEN));
        }
        let seq = match &self.item {
            Some(item) => item.signed.as_deref().map(|s| s.seq),
            None => self.seq,
        };
        if let Some(seq) = seq {
            len += field(b"seq", int_len(seq));
        }
        if let Some(token) = &self.token {
            len += field(b"token", str_len(token.as_bytes().len()));
        }
        if let Some(item) = &self.item {
            if let Some(signed) = item.signed.as_deref() {
                len += field(b"k", str_len(signed.key.len()));
                len += field(b"sig", str_len(signed.signature.len()));
            }
            // Already bencoded: written verbatim.
            len += field(b"v", item.value.len());
        }
        if !self.values.is_empty() {
            // The list as it goes on the wire, `l` and `e` included.
            len += field(b"values", self.values.as_bytes().len());
        }
        len
    }

    /// The length by a dry-run encoding, to check [`OutResponse::encoded_len`] against.
    #[cfg(any(test, debug_assertions))]
    pub(crate) fn dry_run_len(
        &self,
        to: SocketAddr,
        tid: &[u8],
        id: Id,
        version: Option<&[u8]>,
    ) -> usize {
        Message {
            transaction_id: tid,
            version,
            ip: Some(to),
            read_only: false,
            body: Body::Response(self.wire(id)),
        }
        .encoded_len()
    }

    /// Drops at least `excess` bytes of list entries: values first, then samples, then
    /// `nodes6`, then `nodes` (never the token, the filters or an item). `false` when nothing
    /// is left to drop.
    pub(crate) fn trim(&mut self, excess: usize) -> bool {
        let cut = |len: usize, each: usize| len.saturating_sub(excess.div_ceil(each));
        if let Some(each) = self.values.first_cost() {
            self.values.truncate(cut(self.values.len(), each));
        } else if let Some(samples) = self.samples.as_mut().filter(|s| !s.is_empty()) {
            samples.truncate(cut(samples.len(), 20));
        } else if !self.nodes6.is_empty() {
            self.nodes6.truncate(cut(self.nodes6.len(), 38));
        } else if !self.nodes.is_empty() {
            self.nodes.truncate(cut(self.nodes.len(), 26));
        } else {
            return false;
        }
        true
    }
}

/// Contacts of one family (IPv6 when `V6`) for a reply, in the compact form they go on the
/// wire in (26 bytes per IPv4 contact, 38 per IPv6 one): written once when chosen, copied as
/// is when the reply is encoded.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompactNodes<const V6: bool> {
    bytes: Vec<u8>,
}

impl<const V6: bool> CompactNodes<V6> {
    /// Bytes per contact.
    const SIZE: usize = if V6 { NODE6_LEN } else { NODE4_LEN };

    /// Appends a contact; one of the other family is left out (it has no place in this list
    /// on the wire).
    pub(crate) fn push(&mut self, id: &Id, addr: &SocketAddr) {
        match (as_v4(addr), V6) {
            (Some(a), false) => {
                let mut entry = [0u8; NODE4_LEN];
                let (id_bytes, rest) = entry.split_at_mut(ID_LEN);
                id_bytes.copy_from_slice(id.as_bytes());
                let (ip, port) = rest.split_at_mut(4);
                ip.copy_from_slice(&a.ip().octets());
                port.copy_from_slice(&a.port().to_be_bytes());
                self.bytes.extend_from_slice(&entry);
            }
            (None, true) => {
                let mut entry = [0u8; NODE6_LEN];
                let (id_bytes, rest) = entry.split_at_mut(ID_LEN);
                id_bytes.copy_from_slice(id.as_bytes());
                let (ip, port) = rest.split_at_mut(16);
                if let core::net::IpAddr::V6(v6) = addr.ip() {
                    ip.copy_from_slice(&v6.octets());
                }
                port.copy_from_slice(&addr.port().to_be_bytes());
                self.bytes.extend_from_slice(&entry);
            }
            _ => {}
        }
    }

    /// An empty list writing into `buffer` (emptied first), to reuse its allocation.
    pub(crate) fn with_buffer(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        Self { bytes: buffer }
    }

    /// Whether the list has a buffer to reuse.
    pub(crate) fn has_buffer(&self) -> bool {
        self.bytes.capacity() > 0
    }

    /// The list's buffer, to reuse.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    /// Room for `n` more contacts.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.bytes.reserve(n.saturating_mul(Self::SIZE));
    }

    /// Number of contacts.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() / Self::SIZE
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Keeps the first `n` contacts.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.bytes.truncate(n.saturating_mul(Self::SIZE));
    }

    /// The compact list.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The `values` of a reply in wire form: `l`, each peer as a 6- or 18-byte string with its
/// length prefix (an IPv4-mapped IPv6 address as 6 bytes), `e`; written once when chosen and
/// copied as is when the reply is written. Empty (no bytes at all) when there are none.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompactValues {
    bytes: Vec<u8>,
    count: usize,
}

impl CompactValues {
    /// Appends `addr`.
    #[cfg(test)]
    pub(crate) fn push(&mut self, addr: &SocketAddr) {
        PeerSink::push_peer(self, addr.ip(), addr.port());
    }

    /// The peers held.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The list as it goes on the wire (nothing when empty).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The wire size of the first peer, `6:` and 6 bytes or `18:` and 18.
    fn first_cost(&self) -> Option<usize> {
        self.bytes.get(1).map(entry_len)
    }

    /// Keeps the first `n` peers.
    pub(crate) fn truncate(&mut self, n: usize) {
        if n >= self.count {
            return;
        }
        if n == 0 {
            *self = Self::default();
            return;
        }
        // Entries delimit themselves from the start: walk past `n` of them.
        let mut end = 1;
        for _ in 0..n {
            end += self.bytes.get(end).map_or(0, entry_len);
        }
        self.bytes.truncate(end);
        self.bytes.push(b'e');
        self.count = n;
    }
}

impl PeerSink for CompactValues {
    fn reserve_peers(&mut self, n: usize) {
        // IPv4 sizes: an IPv6 list grows once more at most.
        self.bytes.reserve(2 + n * (PEER4_LEN + 2));
    }

    fn push_peer(&mut self, ip: core::net::IpAddr, port: u16) {
        // Written field by field: through `encode_peer` (a `SocketAddr` and a scratch buffer
        // per peer) a get_peers reply with 100 values cost 7,400 instructions more.
        let [p0, p1] = port.to_be_bytes();
        // The closing `e` moves behind the new entry; an empty list opens first.
        if self.bytes.pop().is_none() {
            self.bytes.push(b'l');
        }
        // An IPv4-mapped IPv6 address goes as IPv4 (`IpAddr::to_canonical` does the same but
        // copies the address: 250 instructions more for a reply with 200 values).
        let v4 = match ip {
            core::net::IpAddr::V4(v4) => Some(v4),
            core::net::IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        if let Some(v4) = v4 {
            let [a, b, c, d] = v4.octets();
            self.bytes
                .extend_from_slice(&[b'6', b':', a, b, c, d, p0, p1]);
        } else if let core::net::IpAddr::V6(v6) = ip {
            self.bytes.extend_from_slice(b"18:");
            self.bytes.extend_from_slice(&v6.octets());
            self.bytes.extend_from_slice(&[p0, p1]);
        }
        self.bytes.push(b'e');
        self.count += 1;
    }

    fn peer_count(&self) -> usize {
        self.count
    }
}

/// The wire size of a `values` entry from the first byte of its prefix: `6:` and 6 bytes, or
/// `18:` and 18.
fn entry_len(prefix: &u8) -> usize {
    if *prefix == b'6' {
        PEER4_LEN + 2
    } else {
        PEER6_LEN + 3
    }
}

/// A stored BEP 44 item in a `get` response.
#[derive(Clone, Debug)]
pub(crate) struct OutItem {
    /// The value, shared with the store (a reply does not copy it).
    pub(crate) value: Arc<[u8]>,
    /// A mutable item's key, signature and sequence number (boxed: 104 bytes a queued reply
    /// would otherwise carry for every immutable item too).
    pub(crate) signed: Option<Box<Signed>>,
}

/// What a mutable item's `get` reply adds to the value.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    pub(crate) key: [u8; 32],
    pub(crate) signature: [u8; 64],
    pub(crate) seq: i64,
}

#[derive(Clone, Debug)]
pub(crate) enum OutBody {
    Query(OutQuery),
    /// A response encoded when it was queued, in the first `len` bytes of `bytes` (a buffer
    /// of [`Limits::max_reply`](crate::Limits::max_reply) bytes, reused once sent).
    Encoded {
        bytes: Vec<u8>,
        len: usize,
    },
    Error {
        code: i64,
        message: &'static [u8],
    },
    /// A complete `r` dictionary supplied by the application, validated and with our id
    /// merged in by [`with_id`].
    CustomResponse(Vec<u8>),
    CustomError {
        code: i64,
        message: Vec<u8>,
    },
}

/// One queued outgoing message.
#[derive(Clone, Debug)]
pub(crate) struct Out {
    pub(crate) to: SocketAddr,
    pub(crate) tid: SmallBytes,
    pub(crate) body: OutBody,
}

/// What every message we send carries besides its body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sender {
    /// Our node id.
    pub(crate) id: Id,
    /// The `v` key, if any.
    pub(crate) version: Option<[u8; 4]>,
    /// BEP 43: `ro` is set in our queries.
    pub(crate) read_only: bool,
}

impl Out {
    /// Encodes into `buf`; `None` if it does not fit.
    pub(crate) fn encode(&self, sender: &Sender, buf: &mut [u8]) -> Option<usize> {
        if let OutBody::Encoded { bytes, len } = &self.body {
            let encoded = bytes.get(..*len)?;
            buf.get_mut(..*len)?.copy_from_slice(encoded);
            return Some(*len);
        }
        self.message(sender).encode(buf).ok()
    }

    /// The length [`Out::encode`] needs.
    pub(crate) fn encoded_len(&self, sender: &Sender) -> usize {
        if let OutBody::Encoded { len, .. } = &self.body {
            return *len;
        }
        self.message(sender).encoded_len()
    }

    /// The message, borrowing its contents from the descriptor (an encoded response is bytes
    /// already: see [`Out::encode`]).
    fn message<'a>(&'a self, sender: &'a Sender) -> Message<'a> {
        let id = sender.id;
        let version = sender.version.as_ref().map(|v| v.as_slice());
        let mut msg = Message {
            transaction_id: self.tid.as_slice(),
            version,
            ip: None,
            read_only: false,
            body: Body::Error(KrpcError {
                code: 0,
                message: b"",
            }),
        };
        match &self.body {
            OutBody::Query(q) => {
                msg.read_only = sender.read_only;
                msg.body = Body::Query(match q {
                    OutQuery::Ping => Query::Ping(Ping { id }),
                    OutQuery::FindNode { target } => Query::FindNode(FindNode {
                        id,
                        target: *target,
                        want: None,
                    }),
                    OutQuery::GetPeers { info_hash, scrape } => Query::GetPeers(GetPeers {
                        id,
                        info_hash: *info_hash,
                        want: None,
                        noseed: false,
                        scrape: *scrape,
                    }),
                    OutQuery::AnnouncePeer {
                        info_hash,
                        port,
                        token,
                    } => {
                        Query::AnnouncePeer(AnnouncePeer {
                            id,
                            info_hash: *info_hash,
                            // With implied_port the port is ignored; send a valid one anyway.
                            port: port.unwrap_or(1),
                            implied_port: port.is_none(),
                            token: token.as_slice(),
                            seed: false,
                        })
                    }
                    OutQuery::SampleInfohashes { target } => {
                        Query::SampleInfohashes(SampleInfohashes {
                            id,
                            target: *target,
                            want: None,
                        })
                    }
                    OutQuery::Get { target } => Query::Get(Get {
                        id,
                        target: *target,
                        seq: None,
                        want: None,
                    }),
                    OutQuery::Put { token, item } => Query::Put(match item.as_ref() {
                        PutItem::Immutable(value) => Put {
                            id,
                            token: token.as_slice(),
                            value,
                            key: None,
                            signature: None,
                            seq: None,
                            cas: None,
                            salt: None,
                        },
                        PutItem::Mutable(m) => Put {
                            id,
                            token: token.as_slice(),
                            value: &m.value,
                            key: Some(&m.key),
                            signature: Some(&m.signature),
                            seq: Some(m.seq),
                            cas: m.cas,
                            salt: (!m.salt.is_empty()).then_some(m.salt.as_slice()),
                        },
                    }),
                    // `args` already holds our id in its canonical place.
                    OutQuery::Custom { method, args } => Query::Custom(Custom {
                        method,
                        args: Dict::from_validated(args),
                        id: None,
                    }),
                });
            }
            // Never built: `encode` and `encoded_len` copy and count the bytes.
            OutBody::Encoded { .. } => {}
            OutBody::Error { code, message } => {
                msg.body = Body::Error(KrpcError {
                    code: *code,
                    message,
                });
            }
            OutBody::CustomError { code, message } => {
                msg.body = Body::Error(KrpcError {
                    code: *code,
                    message,
                });
            }
            OutBody::CustomResponse(body) => {
                msg.ip = Some(self.to);
                msg.body = Body::Response(Response {
                    extra: Some(Dict::from_validated(body)),
                    ..Response::new(id)
                });
            }
        }
        msg
    }
}

impl<V: Ed25519Verifier> Node<V> {
    /// Queues a KRPC error, or counts it dropped when the transmit queue is full.
    pub(crate) fn queue_error(
        &mut self,
        to: SocketAddr,
        tid: SmallBytes,
        code: i64,
        message: &'static [u8],
    ) {
        let len = Message {
            transaction_id: tid.as_slice(),
            version: self.config.client_version.as_ref().map(|v| v.as_slice()),
            ip: None,
            read_only: false,
            body: Body::Error(KrpcError { code, message }),
        }
        .encoded_len();
        if let Err(reason) = self.admit_reply(self.now, to, len) {
            self.stats.drop(reason);
            return;
        }
        if self.can_queue() {
            self.stats.error_sent(code);
            self.transmits.push_back(Out {
                to,
                tid,
                body: OutBody::Error { code, message },
            });
        } else {
            self.stats.drop(DropReason::TransmitQueueFull);
        }
    }

    /// Queues a response, trimmed to [`Limits::max_reply`](crate::Limits::max_reply) (see
    /// [`OutResponse::trim`]) and charged to the reflection rule and the upload budget; the
    /// query is dropped when the transmit queue is full or a guard refuses. The reply is
    /// encoded here, once its guards have passed, and queued as bytes.
    pub(crate) fn queue_response(
        &mut self,
        to: SocketAddr,
        tid: SmallBytes,
        mut body: OutResponse,
    ) -> Disposition {
        if !self.can_queue() {
            return self.dropped(DropReason::TransmitQueueFull);
        }
        let budget = self.config.limits.max_reply;
        let allowance = self.reply_allowance(self.now, to);
        let mut bytes = self.spare_replies.pop().unwrap_or_default();
        if bytes.len() < budget {
            bytes.resize(budget, 0);
        }
        let sender = self.sender();
        let write = |body: &OutResponse, bytes: &mut Vec<u8>| {
            let buf = bytes.get_mut(..budget)?;
            write_reply(body, to, tid.as_slice(), &sender, buf)
        };
        // A reply goes within the budget, so when the guards allow a whole budget's worth it
        // is written at once: a reply over the budget fails to write and is trimmed below.
        let mut encoded = None;
        if allowance.check(budget).is_ok() {
            encoded = write(&body, &mut bytes);
        }
        if encoded.is_none() {
            // Over the budget, or near a guard's limit: the exact length decides.
            let version = sender.version.as_ref().map(|v| v.as_slice());
            let mut len = body.encoded_len(to, tid.as_slice(), version);
            while len > budget {
                if !body.trim(len - budget) {
                    self.recycle_bytes(bytes);
                    return self.dropped(DropReason::ReplyTooLarge);
                }
                len = body.encoded_len(to, tid.as_slice(), version);
            }
            if let Err(reason) = allowance.check(len) {
                self.recycle_bytes(bytes);
                return self.dropped(reason);
            }
            encoded = write(&body, &mut bytes);
        }
        #[cfg(debug_assertions)]
        {
            let version = sender.version.as_ref().map(|v| v.as_slice());
            let exact = body.encoded_len(to, tid.as_slice(), version);
            debug_assert_eq!(encoded, Some(exact));
            debug_assert_eq!(
                exact,
                body.dry_run_len(to, tid.as_slice(), self.id, version)
            );
            // The node's writer and the codec agree on every reply.
            let mut codec = alloc::vec![0u8; budget];
            let n = body
                .message(to, tid.as_slice(), &sender)
                .encode(&mut codec)
                .ok();
            debug_assert_eq!(n, encoded);
            debug_assert_eq!(codec.get(..exact), bytes.get(..exact));
        }
        self.recycle_nodes(&mut body);
        let Some(len) = encoded else {
            // Unreachable: the length was checked against the budget above.
            self.recycle_bytes(bytes);
            return self.dropped(DropReason::ReplyTooLarge);
        };
        self.charge_reply(self.now, &allowance, len);
        self.stats.responses_sent = self.stats.responses_sent.saturating_add(1);
        self.transmits.push_back(Out {
            to,
            tid,
            body: OutBody::Encoded { bytes, len },
        });
        Disposition::Accepted
    }

    /// Keeps the `nodes` buffer of a reply that is done with for the next replies.
    fn recycle_nodes(&mut self, body: &mut OutResponse) {
        if body.nodes.has_buffer() {
            keep_spare(
                &mut self.spare_nodes,
                core::mem::take(&mut body.nodes).into_buffer(),
            );
        }
    }

    /// Keeps an unsent reply's buffer for the next replies.
    fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        keep_spare(&mut self.spare_replies, bytes);
    }

    pub(crate) fn send_table_ping(
        &mut self,
        now: Instant,
        id: Option<Id>,
        addr: SocketAddr,
    ) -> Result<(), CommandError> {
        self.send_request(now, id, addr, OutQuery::Ping, Purpose::TablePing)
    }

    /// Opens a transaction and queues the request.
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        id: Option<Id>,
        to: SocketAddr,
        query: OutQuery,
        purpose: Purpose,
    ) -> Result<(), CommandError> {
        self.send_request_releasing(now, id, to, query, purpose, None)
    }

    /// [`Self::send_request`] with a release time: a lookup request that is not answered
    /// within `release` (when it is shorter than the short timeout) reports
    /// [`Expired::Released`](crate::transaction::Expired::Released) first.
    pub(crate) fn send_request_releasing(
        &mut self,
        now: Instant,
        id: Option<Id>,
        to: SocketAddr,
        query: OutQuery,
        purpose: Purpose,
        release: Option<Duration>,
    ) -> Result<(), CommandError> {
        if !self.can_send() {
            return Err(CommandError::Busy);
        }
        let short = self.short_timeout(id, &to);
        let method = query.method();
        let txn = Txn {
            nonce: self.rng.next_u32(),
            to,
            node_id: id,
            sent_at: now,
            short_deadline: now + short,
            deadline: now + self.config.query_timeout.max(short),
            slow: false,
            // Whole ms, at least 1 (0 means none). Release times come from answer times kept
            // as u16 ms, so they fit; one not before the short timeout is dropped by
            // `Transactions::open`.
            release_ms: release.map_or(0, |r| {
                u16::try_from(r.as_millis()).unwrap_or(u16::MAX).max(1)
            }),
            purpose,
        };
        let tid = self.txns.open(txn).ok_or(CommandError::Busy)?;
        let tid = SmallBytes::new(&tid).ok_or(CommandError::Busy)?;
        self.stats.queries_sent.bump(method);
        self.transmits.push_back(Out {
            to,
            tid,
            body: OutBody::Query(query),
        });
        Ok(())
    }
}

/// Keeps `buffer` in `pool` for reuse, unless the pool already holds
/// [`SPARE_BUFFERS`](super::SPARE_BUFFERS).
#[inline]
pub(crate) fn keep_spare(pool: &mut Vec<Vec<u8>>, buffer: Vec<u8>) {
    if pool.len() < super::SPARE_BUFFERS {
        pool.push(buffer);
    }
}

/// Length of the compact form of `addr`.
fn peer_len(addr: &SocketAddr) -> usize {
    if as_v4(addr).is_some() {
        PEER4_LEN
    } else {
        PEER6_LEN
    }
}

/// Length of a bencoded byte string of `n` bytes: `<n>:` and the bytes.
fn str_len(n: usize) -> usize {
    decimal_len(n as u64) + 1 + n
}

/// Length of a bencoded integer, `i<v>e`.
fn int_len(v: i64) -> usize {
    2 + usize::from(v < 0) + decimal_len(v.unsigned_abs())
}

/// Decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    // Lengths in a reply are short: a few comparisons rather than a logarithm.
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => n.checked_ilog10().map_or(1, |d| d as usize + 1),
    }
}

/// `dict` (a bencoded dictionary) with `id` set to `id`, keys in canonical order; `None` if
/// `dict` is not a dictionary.
pub(crate) fn with_id(dict: &[u8], id: &Id, limits: &bencode::DecodeLimits) -> Option<Vec<u8>> {
    let Value::Dict(d) = bencode::decode(dict, limits).ok()? else {
        return None;
    };
    let mut entries: Vec<(&[u8], Value<'_>)> = d.iter().filter(|(k, _)| *k != b"id").collect();
    // Stable sort, then keep the first of duplicate keys (the decoder is lenient about them).
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.dedup_by(|later, first| later.0 == first.0);
    let mut buf = alloc::vec![0u8; dict.len() + 32];
    let mut w = Writer::new(&mut buf);
    w.begin_dict();
    let mut id_written = false;
    for (k, _) in &entries {
        if !id_written && *k > b"id".as_slice() {
            w.bytes(b"id");
            w.bytes(id.as_bytes());
            id_written = true;
        }
        w.bytes(k);
        w.raw(d.get_raw(k)?);
    }
    if !id_written {
        w.bytes(b"id");
        w.bytes(id.as_bytes());
    }
    w.end();
    let len = w.finish().ok()?;
    buf.truncate(len);
    Some(buf)
}
