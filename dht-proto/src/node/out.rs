//! Outgoing messages, queued as small descriptors and encoded only in `poll_transmit`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Node, PutItem};
use crate::id::Id;
use crate::server::bloom::Bloom;
use crate::server::tokens::Token;
use crate::small::SmallBytes;
use crate::stats::MethodKind;
use crate::wire::bencode::{self, Value};
use crate::wire::compact::{NodeInfo, Nodes, Peers};
use crate::wire::krpc::{
    AnnouncePeer, Body, Custom, FindNode, Get, GetPeers, KrpcError, Message, Ping, Put, Query,
    Response, SampleInfohashes, Samples,
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
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) nodes6: Vec<NodeInfo>,
    /// Which of `nodes` / `nodes6` the requester gets, even empty (BEP 5 replies to find_node
    /// and get_peers always carry `nodes`; an empty table gives an empty string).
    pub(crate) families: (bool, bool),
    pub(crate) values: Vec<SocketAddr>,
    pub(crate) token: Option<Token>,
    pub(crate) samples: Option<Vec<Id>>,
    pub(crate) num: Option<i64>,
    pub(crate) interval: Option<i64>,
    /// Boxed: two 256-byte filters would make every queued message large.
    pub(crate) scrape: Option<Box<(Bloom, Bloom)>>,
    /// BEP 44 `get`: the stored item, if any.
    pub(crate) item: Option<Box<OutItem>>,
    /// BEP 44 `get`: the stored sequence number when the value is left out.
    pub(crate) seq: Option<i64>,
}

impl OutResponse {
    /// The response on the wire, from `id`.
    pub(crate) fn wire(&self, id: Id) -> Response<'_> {
        let r = self;
        let mut resp = Response::new(id);
        if !r.nodes.is_empty() || r.families.0 {
            resp.nodes = Some(Nodes::Slice(&r.nodes));
        }
        if !r.nodes6.is_empty() || r.families.1 {
            resp.nodes6 = Some(Nodes::Slice(&r.nodes6));
        }
        if !r.values.is_empty() {
            resp.values = Some(Peers::Slice(&r.values));
        }
        resp.token = r.token.as_ref().map(|t| t.as_bytes().as_slice());
        resp.samples = r.samples.as_deref().map(Samples::Slice);
        resp.num = r.num;
        resp.interval = r.interval;
        if let Some((seeds, peers)) = r.scrape.as_deref() {
            resp.bf_seeds = Some(seeds.as_bytes());
            resp.bf_peers = Some(peers.as_bytes());
        }
        resp.seq = r.seq;
        if let Some(item) = r.item.as_deref() {
            resp.value = Some(&item.value);
            resp.key = item.key.as_ref();
            resp.signature = item.signature.as_ref();
            resp.seq = item.seq;
        }
        resp
    }

    /// The length of this response to `to` in transaction `tid`, from `id` with `version`.
    pub(crate) fn encoded_len(
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
        if let Some(&first) = self.values.first() {
            let each = crate::server::peers::Family::of(first.ip()).value_cost();
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

/// A stored BEP 44 item in a `get` response.
#[derive(Clone, Debug)]
pub(crate) struct OutItem {
    pub(crate) value: Vec<u8>,
    pub(crate) key: Option<[u8; 32]>,
    pub(crate) signature: Option<[u8; 64]>,
    pub(crate) seq: Option<i64>,
}

#[derive(Clone, Debug)]
pub(crate) enum OutBody {
    Query(OutQuery),
    Response(OutResponse),
    Error {
        code: i64,
        message: &'static [u8],
    },
    /// A complete `r` dictionary supplied by the application (id already merged in).
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

impl Out {
    /// Encodes into `buf`; `None` if it does not fit (or, impossibly, cannot be encoded).
    pub(crate) fn encode(&self, node: &Node, buf: &mut [u8]) -> Option<usize> {
        let id = node.id;
        let version = node.config.client_version.as_ref().map(|v| v.as_slice());
        let limits = node.config.limits.decode;
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
        let custom_args;
        match &self.body {
            OutBody::Query(q) => {
                msg.read_only = node.config.read_only;
                msg.body = Body::Query(match q {
                    OutQuery::Ping => Query::Ping(Ping { id }),
                    OutQuery::FindNode { target } => Query::FindNode(FindNode {
                        id,
                        target: *target,
                        want: None,
                    }),
                    OutQuery::GetPeers { info_hash } => Query::GetPeers(GetPeers {
                        id,
                        info_hash: *info_hash,
                        want: None,
                        noseed: false,
                        scrape: false,
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
                    OutQuery::Custom { method, args } => {
                        custom_args = bencode::decode(args, &limits).ok()?;
                        let Value::Dict(args) = custom_args else {
                            return None;
                        };
                        Query::Custom(Custom {
                            method,
                            args,
                            id: Some(id),
                        })
                    }
                });
                msg.encode(buf).ok()
            }
            OutBody::Response(r) => {
                msg.ip = Some(self.to);
                msg.body = Body::Response(r.wire(id));
                msg.encode(buf).ok()
            }
            OutBody::Error { code, message } => {
                msg.body = Body::Error(KrpcError {
                    code: *code,
                    message,
                });
                msg.encode(buf).ok()
            }
            OutBody::CustomError { code, message } => {
                msg.body = Body::Error(KrpcError {
                    code: *code,
                    message,
                });
                msg.encode(buf).ok()
            }
            OutBody::CustomResponse(body) => {
                msg.ip = Some(self.to);
                let decoded = bencode::decode(body, &limits).ok()?;
                let Value::Dict(dict) = decoded else {
                    return None;
                };
                msg.body = Body::Response(Response {
                    extra: Some(dict),
                    ..Response::new(id)
                });
                msg.encode(buf).ok()
            }
        }
    }
}
