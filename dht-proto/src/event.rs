//! What a [`Node`](crate::Node) reports: [`Event`], [`QueryId`] and [`QueryOutcome`].

use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::id::Id;
use crate::stats::MethodKind;
use crate::wire::compact::NodeInfo;

/// Names one command of a node (a lookup, a ping, a custom query). Never reused by the node
/// that issued it: commands are numbered from 1 by a 64-bit counter, which no node can run out
/// of (a node that somehow did would refuse further commands rather than reuse a number).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId {
    /// The command's number: 1 for the node's first command, then counting up.
    serial: u64,
    /// Where the node keeps its state (slots are reused; serials are not).
    slot: u32,
}

impl QueryId {
    pub(crate) const fn new(serial: u64, slot: u32) -> Self {
        Self { serial, slot }
    }

    /// The command's number: unique per node for the node's lifetime.
    pub const fn as_u64(self) -> u64 {
        self.serial
    }

    pub(crate) fn slot(self) -> usize {
        self.slot as usize
    }
}

impl fmt::Debug for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryId({}:{})", self.serial, self.slot)
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "q{}", self.serial)
    }
}

/// Names a custom query waiting for the application's answer
/// ([`Node::respond`](crate::Node::respond), [`Node::respond_error`](crate::Node::respond_error)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustomHandle(pub(crate) u64);

/// What kind of command a [`QueryId`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandKind {
    /// [`Node::bootstrap`](crate::Node::bootstrap) (a `find_node` lookup of the own id).
    Bootstrap,
    /// A bucket refresh started by the node itself.
    Refresh,
    /// [`Node::ping`](crate::Node::ping).
    Ping,
    /// [`Node::find_node`](crate::Node::find_node).
    FindNode,
    /// [`Node::get_peers`](crate::Node::get_peers).
    GetPeers,
    /// [`Node::announce_peer`](crate::Node::announce_peer).
    AnnouncePeer,
    /// [`Node::sample_infohashes`](crate::Node::sample_infohashes).
    SampleInfohashes,
    /// [`Node::send_query`](crate::Node::send_query).
    Custom,
    /// [`Node::get_item`](crate::Node::get_item) (BEP 44).
    GetItem,
    /// [`Node::put_item`](crate::Node::put_item) (BEP 44).
    PutItem,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryStatus {
    /// The lookup converged (the closest live nodes answered) or the single request was answered.
    Completed,
    /// The lookup ran out of candidates before k of them answered (a small or unreachable
    /// network); `closest` holds what was found.
    Exhausted,
    /// The single request got no answer.
    TimedOut,
    /// The single request was answered with a KRPC error.
    Error {
        /// The KRPC error code.
        code: i64,
        /// The error message (lossy UTF-8).
        message: alloc::string::String,
    },
    /// [`Node::cancel`](crate::Node::cancel) ended it.
    Cancelled,
}

/// Measurements of one command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryMetrics {
    /// Requests sent (lookup requests plus announces).
    pub messages_sent: u32,
    /// Responses received.
    pub responses: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// The greatest hop count of a responding node (1 = a node taken from the table or a seed).
    pub hops: u32,
    /// Time from the command to the first peer found (get_peers and announce only).
    pub time_to_first_peer: Option<Duration>,
    /// Time from the command to its end.
    pub duration: Duration,
}

/// The result of a command, carried by [`Event::QueryFinished`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryOutcome {
    /// The command this ends.
    pub kind: CommandKind,
    /// How it ended.
    pub status: QueryStatus,
    /// The closest nodes that answered, nearest first (at most k per address family).
    pub closest: Vec<NodeInfo>,
    /// For announces: how many nodes accepted the announce.
    pub announced: usize,
    /// For single requests: the responder's node id.
    pub responder: Option<Id>,
    /// For single requests: the raw bencoded `r` dictionary of the response (custom queries
    /// read their results from it).
    pub response: Option<Vec<u8>>,
    /// Measurements.
    pub metrics: QueryMetrics,
    /// BEP 33, for [`Node::get_peers_scrape`](crate::Node::get_peers_scrape) lookups that got
    /// bloom filters: the estimated number of seeds (the union of all `BFsd` filters).
    pub seeds: Option<u32>,
    /// BEP 33: the estimated number of other peers (the union of all `BFpe` filters).
    pub leechers: Option<u32>,
}

/// Something the application may want to know. Drain with
/// [`Node::poll_event`](crate::Node::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Peers for a `get_peers` or announce lookup, as they arrive. May repeat for one query;
    /// a peer is reported at most once per query.
    PeersFound {
        /// The lookup.
        query: QueryId,
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// BEP 51 samples of info-hashes from one node, as they arrive.
    SamplesFound {
        /// The lookup.
        query: QueryId,
        /// The node that sent them.
        from: SocketAddr,
        /// The sampled info-hashes.
        samples: Vec<Id>,
        /// The number of info-hashes that node says it stores.
        num: Option<i64>,
        /// BEP 51 `interval`: the seconds that node asks us to wait before sampling it again.
        interval: Option<i64>,
        /// The contacts of that response (closest to the target in that node's table), of the
        /// response's address family; empty for lookups of other kinds.
        nodes: Vec<NodeInfo>,
    },
    /// A BEP 44 item found by a [`Node::get_item`](crate::Node::get_item) lookup, as it
    /// arrives. Immutable items are reported only if their SHA-1 is the target; mutable items
    /// only if their key and salt hash to the target, and `verified` says whether the
    /// signature was checked (it is, when a verifier is installed; a bad one is dropped).
    ItemFound {
        /// The lookup.
        query: QueryId,
        /// The node that sent it.
        from: SocketAddr,
        /// The bencoded value.
        value: Vec<u8>,
        /// Mutable items: the public key.
        key: Option<[u8; 32]>,
        /// Mutable items: the signature.
        signature: Option<[u8; 64]>,
        /// Mutable items: the sequence number.
        seq: Option<i64>,
        /// Whether the item was checked against the target (and the signature, for mutable
        /// items).
        verified: bool,
    },
    /// A command ended. Exactly one per [`QueryId`].
    QueryFinished {
        /// The command.
        query: QueryId,
        /// Its result.
        outcome: QueryOutcome,
    },
    /// The first bootstrap lookup completed with a non-empty routing table.
    Bootstrapped {
        /// Routing-table entries at that moment.
        nodes: usize,
    },
    /// The routing table lost its last entry; the node re-bootstraps with back-off.
    RoutingTableEmpty,
    /// Several nodes agree on our external address (BEP 42 `ip` key).
    ExternalAddress {
        /// The address others see.
        addr: SocketAddr,
        /// How many distinct nodes reported it.
        reported_by: usize,
    },
    /// A query arrived (only with [`Config::report_queries`](crate::Config::report_queries)).
    QueryReceived {
        /// Its source.
        from: SocketAddr,
        /// The sender's node id.
        id: Id,
        /// Its method.
        method: MethodKind,
        /// The info-hash (`get_peers`, `announce_peer`) or target (`find_node`, `get`,
        /// `sample_infohashes`), if any.
        target: Option<Id>,
        /// For `announce_peer`: the announced port (the source port with `implied_port`).
        announced_port: Option<u16>,
    },
    /// A query with an unknown method, for the application to answer with
    /// [`Node::respond`](crate::Node::respond) or [`Node::respond_error`](crate::Node::respond_error)
    /// (only with [`Config::custom_queries`](crate::Config::custom_queries)).
    CustomQuery {
        /// Pass it back to answer.
        handle: CustomHandle,
        /// The source.
        from: SocketAddr,
        /// The method name.
        method: Vec<u8>,
        /// The raw bencoded `a` dictionary.
        args: Vec<u8>,
    },
    /// The event queue overflowed and `count` events were lost.
    EventsDropped {
        /// How many.
        count: u64,
    },
}
