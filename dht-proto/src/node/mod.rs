//! [`Node`]: the one owner of protocol state.
//!
//! Calls go one way: `input.rs` (datagrams and timers in) dispatches to `serve.rs` (answering
//! queries) and `queries.rs` (responses, errors and timeouts of our queries, lookup steps,
//! maintenance); `commands.rs` (the public commands) starts queries through `queries.rs`; all of
//! them queue messages through `out.rs`, which encodes them in [`Node::poll_transmit`]. This
//! file holds the state, the getters, the outputs and the small helpers the others share.
//!
//! Inputs are [`Node::handle_datagram`] and [`Node::handle_timeout`]; outputs are
//! [`Node::poll_transmit`], [`Node::poll_event`] and [`Node::poll_timeout`]; commands
//! ([`Node::get_peers`], [`Node::announce_peer`], ...) return a [`QueryId`] whose end is reported
//! by exactly one [`Event::QueryFinished`]. See the crate docs for the run loop.

mod commands;
pub(crate) mod drive;
#[cfg(test)]
mod estimate_tests;
mod guard;
#[cfg(test)]
mod guard_tests;
mod input;
mod item;
#[cfg(test)]
mod item_tests;
#[cfg(test)]
mod maintenance_tests;
mod out;
#[cfg(test)]
mod prop_tests;
mod queries;
mod reply;
mod serve;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transmit_tests;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use rand_core::RngCore;

use crate::bep44::{Ed25519Verifier, NoVerifier};
use crate::config::Config;
use crate::error::{CommandError, ConfigError, DropReason};
use crate::estimate::{SizeEstimate, SizeEstimator};
use crate::event::{CommandKind, CustomHandle, Event, QueryId, QueryMetrics};
use crate::id::Id;
use crate::lookup::Lookup;
use crate::rng::{ReplyRng, Rng};
use crate::routing::{InsertOutcome, RoutingTable, RoutingTableView, TableConfig};
use crate::server::items::ItemStore;
use crate::server::peers::PeerStore;
use crate::server::tokens::Tokens;
use crate::small::SmallBytes;
use crate::stats::Stats;
use crate::time::Instant;
use crate::transaction::{Purpose, Transactions, Txn};
use crate::wire::compact::NodeInfo;

pub use item::{MutableItem, PutItem};
pub(crate) use out::Out;
use out::Sender;

/// Where an outgoing datagram goes; its bytes are in the buffer passed to
/// [`Node::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// The destination.
    pub to: SocketAddr,
    /// How many bytes of the buffer to send.
    pub len: usize,
}

/// What [`Node::handle_datagram`] did with a datagram. Informational: ignoring it is correct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Processed (answered, matched to a request, or handed to the application).
    Accepted,
    /// Dropped without effect, and counted in [`Stats`].
    Dropped(DropReason),
}

/// Which deadline [`Node::poll_timeout`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerKind {
    /// A request's short or full timeout.
    Request,
    /// Routing-table maintenance: pings of questionable nodes, bucket refreshes.
    Table,
    /// Token secret rotation.
    TokenRotation,
    /// Expiry of stored peers.
    PeerExpiry,
    /// A bootstrap retry after the table emptied.
    Bootstrap,
    /// Expiry of custom queries the application did not answer.
    CustomExpiry,
    /// Expiry of stored BEP 44 items.
    ItemExpiry,
}

/// Most bootstrap seed addresses remembered for re-bootstrapping.
const MAX_SEEDS: usize = 64;
/// What a queued datagram is, for [`Node::poll_transmit_if`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransmitClass {
    /// An answer or error to another node's query.
    Answer,
    /// A single request the application asked for (ping, `get_peers_from`,
    /// `sample_infohashes_from`, custom queries).
    Single,
    /// A request of the node's own: lookups, announces, table pings.
    Other,
}

/// A drained transmit queue with more room than this gives its memory back.
const IDLE_TRANSMITS: usize = 16;
/// Most distinct peers remembered per lookup for de-duplicating [`Event::PeersFound`].
const MAX_SEEN_PEERS: usize = 4096;
/// Reports of our external address kept for voting.
const MAX_IP_VOTES: usize = 16;
/// Addresses remembered as recently pinged to split the own bucket (each asked once).
pub(crate) const MAX_SPLIT_PINGS: usize = 64;
/// Distinct reporters needed before an external address is believed.
const IP_VOTES_NEEDED: usize = 3;
/// Shortest short timeout, whatever the measured round-trip times.
const MIN_SHORT_TIMEOUT: Duration = Duration::from_millis(100);

/// The state of one running command.
#[derive(Debug)]
pub(crate) struct QueryState {
    pub(crate) id: QueryId,
    pub(crate) kind: CommandKind,
    pub(crate) started: Instant,
    /// Per address family (0 = IPv4, 1 = IPv6).
    pub(crate) lookups: [Option<Lookup>; 2],
    /// Announce / single request phase: requests still pending.
    pub(crate) pending: usize,
    /// Announce phase started.
    pub(crate) storing: bool,
    pub(crate) announce_port: Option<u16>,
    /// BEP 44: the item a put command stores, or the salt a get command checks items with.
    pub(crate) item: Option<Box<PutItem>>,
    pub(crate) salt: Vec<u8>,
    pub(crate) metrics: QueryMetrics,
    pub(crate) announced: usize,
    pub(crate) seen_peers: Vec<SocketAddr>,
    /// BEP 33: `get_peers` queries ask for bloom filters, ORed here.
    pub(crate) scrape: bool,
    pub(crate) bf_seeds: Option<Box<crate::server::bloom::Bloom>>,
    pub(crate) bf_peers: Option<Box<crate::server::bloom::Bloom>>,
}

impl QueryState {
    fn new(id: QueryId, kind: CommandKind, started: Instant) -> Self {
        Self {
            id,
            kind,
            started,
            lookups: [None, None],
            pending: 0,
            storing: false,
            announce_port: None,
            item: None,
            salt: Vec::new(),
            metrics: QueryMetrics::default(),
            announced: 0,
            seen_peers: Vec::new(),
            scrape: false,
            bf_seeds: None,
            bf_peers: None,
        }
    }
}

/// A custom query waiting for the application's answer.
#[derive(Debug, Clone)]
pub(crate) struct PendingCustom {
    pub(crate) handle: CustomHandle,
    pub(crate) to: SocketAddr,
    pub(crate) tid: SmallBytes,
    pub(crate) expires: Instant,
}

/// Most emptied reply buffers of each kind kept for reuse (see [`Node::spare_nodes`] and
/// [`Node::spare_replies`]): a node keeps at most this many `max_reply`-byte buffers when idle
/// (5 KiB with the defaults); a burst beyond it allocates and frees its own.
pub(crate) const SPARE_BUFFERS: usize = 4;

/// A BitTorrent mainline DHT node: the whole protocol state, driven by the caller.
///
/// Every method takes `now`; nothing reads a clock. Time may repeat; if it goes backwards the
/// node uses the latest value it has seen. No input can make it panic, and every table and
/// queue is bounded by [`Limits`](crate::Limits).
#[derive(Debug)]
pub struct Node<V = NoVerifier> {
    pub(crate) config: Config,
    pub(crate) id: Id,
    pub(crate) now: Instant,
    pub(crate) rng: Rng,
    /// Per-reply choices (peers in `get_peers` replies, BEP 51 samples) and the per-source
    /// table's eviction samples: cheap draws that need not come from the main generator.
    pub(crate) choices: ReplyRng,
    pub(crate) tables: [RoutingTable; 2],
    pub(crate) tokens: Tokens,
    pub(crate) token_rotate_at: Instant,
    pub(crate) peers: PeerStore,
    /// BEP 44 items stored for others.
    pub(crate) items: ItemStore,
    /// Checks BEP 44 signatures; without one, mutable items are neither stored nor verified.
    pub(crate) verifier: Option<V>,
    pub(crate) txns: Transactions,
    pub(crate) queries: Vec<Option<QueryState>>,
    pub(crate) query_count: usize,
    /// The serial number of the next command ([`QueryId`]s are never reused).
    pub(crate) next_query: u64,
    pub(crate) transmits: VecDeque<Out>,
    /// Emptied `nodes` buffers of sent replies, reused by the next replies instead of
    /// allocating one per reply (at most [`SPARE_BUFFERS`]).
    pub(crate) spare_nodes: Vec<Vec<u8>>,
    /// Buffers of sent encoded replies, reused likewise (at most [`SPARE_BUFFERS`]).
    pub(crate) spare_replies: Vec<Vec<u8>>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) events_lost: u64,
    pub(crate) stats: Stats,
    pub(crate) seeds: Vec<SocketAddr>,
    pub(crate) bootstrapped: bool,
    pub(crate) bootstrap_query: Option<QueryId>,
    pub(crate) bootstrap_retry_at: Option<Instant>,
    pub(crate) bootstrap_backoff: Duration,
    pub(crate) table_was_empty: bool,
    pub(crate) custom: Vec<PendingCustom>,
    pub(crate) next_custom: u64,
    pub(crate) ip_votes: VecDeque<(IpAddr, SocketAddr)>,
    /// Recently pinged candidates of the own bucket (see `MAX_SPLIT_PINGS`).
    pub(crate) split_pings: VecDeque<SocketAddr>,
    pub(crate) external: Option<SocketAddr>,
    /// Smoothed round-trip time over all responses.
    pub(crate) srtt: Option<Duration>,
    /// Network-size estimators (IPv4, IPv6), fed by converged lookups.
    pub(crate) size: [SizeEstimator; 2],
    /// Scratch space reused by maintenance.
    pub(crate) scratch_ids: Vec<Id>,
    pub(crate) scratch_pings: Vec<(Id, SocketAddr)>,
    /// Per-source budgets, the reflection rule, the reply and table-ping budgets.
    pub(crate) guard: guard::Guard,
}

impl Node {
    /// A node with `config`, started at `now`, without an ed25519 verifier: it refuses to store
    /// BEP 44 mutable items (error 202) and reports those it finds unverified (see
    /// [`Node::with_ed25519_verifier`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the configuration is invalid (see [`Config::validate`]).
    pub fn new(config: Config, now: Instant) -> Result<Self, ConfigError> {
        Self::build(config, now, None)
    }
}

impl<V: Ed25519Verifier> Node<V> {
    /// A node with `config`, started at `now`, that checks BEP 44 signatures with `verifier`:
    /// it stores mutable items for others and verifies those it finds.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the configuration is invalid (see [`Config::validate`]).
    pub fn with_ed25519_verifier(
        config: Config,
        now: Instant,
        verifier: V,
    ) -> Result<Self, ConfigError> {
        Self::build(config, now, Some(verifier))
    }

    fn build(config: Config, now: Instant, verifier: Option<V>) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(config.seed);
        let id = match config.id {
            Some(id) => id,
            None => Id::random(&mut rng),
        };
        let table_config = TableConfig::from_config(&config);
        let tables = [
            RoutingTable::new(id, table_config, now),
            RoutingTable::new(id, table_config, now),
        ];
        let tokens = Tokens::new(&mut rng);
        let mut peers_key = [0u8; 16];
        rng.fill_bytes(&mut peers_key);
        let peers = PeerStore::from_config(&config, peers_key);
        let mut items_key = [0u8; 16];
        rng.fill_bytes(&mut items_key);
        let items = ItemStore::from_config(&config, items_key);
        let mut guard_key = [0u8; 16];
        rng.fill_bytes(&mut guard_key);
        let guard = guard::Guard::new(&config, now, guard_key);
        let choices = ReplyRng::new(config.seed);
        Ok(Self {
            guard,
            token_rotate_at: now + config.token_rotation,
            txns: Transactions::new(config.limits.max_in_flight),
            bootstrap_backoff: config.bootstrap_backoff_min,
            config,
            id,
            now,
            rng,
            choices,
            tables,
            tokens,
            peers,
            items,
            verifier,
            queries: Vec::new(),
            query_count: 0,
            next_query: 1,
            transmits: VecDeque::new(),
            spare_nodes: Vec::new(),
            spare_replies: Vec::new(),
            events: VecDeque::new(),
            events_lost: 0,
            stats: Stats::default(),
            seeds: Vec::new(),
            bootstrapped: false,
            bootstrap_query: None,
            bootstrap_retry_at: None,
            table_was_empty: true,
            custom: Vec::new(),
            next_custom: 1,
            ip_votes: VecDeque::new(),
            split_pings: VecDeque::new(),
            external: None,
            srtt: None,
            size: [SizeEstimator::new(), SizeEstimator::new()],
            scratch_ids: Vec::new(),
            scratch_pings: Vec::new(),
        })
    }

    // ---- Getters ----------------------------------------------------------------------------

    /// How many nodes the IPv4 DHT has, estimated from the closest nodes of this node's
    /// recent converged lookups (see [`estimate`](crate::estimate)); `None` before the first.
    /// Every lookup counts: bootstrap, refreshes, and the application's own.
    pub fn size_estimate(&self) -> Option<SizeEstimate> {
        self.size.first().and_then(SizeEstimator::estimate)
    }

    /// [`Node::size_estimate`] for the IPv6 DHT.
    pub fn size_estimate_v6(&self) -> Option<SizeEstimate> {
        self.size.get(1).and_then(SizeEstimator::estimate)
    }

    /// This node's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The routing table of an address family (0 = IPv4, anything else = IPv6).
    pub(crate) fn table(&self, fam: usize) -> &RoutingTable {
        let [v4, v6] = &self.tables;
        if fam == 0 { v4 } else { v6 }
    }

    /// Mutable access to the routing table of an address family.
    pub(crate) fn table_mut(&mut self, fam: usize) -> &mut RoutingTable {
        let [v4, v6] = &mut self.tables;
        if fam == 0 { v4 } else { v6 }
    }

    /// Turns [`Event::QueryReceived`] on or off while running (see
    /// [`Config::report_queries`]).
    pub fn set_report_queries(&mut self, on: bool) {
        self.config.report_queries = on;
    }

    /// BEP 44 items this node stores for others.
    pub fn stored_items(&self) -> usize {
        self.items.len()
    }

    /// Replaces the ed25519 verifier (see [`Node::with_ed25519_verifier`]).
    pub fn set_ed25519_verifier(&mut self, verifier: V) {
        self.verifier = Some(verifier);
    }

    /// The IPv4 routing table.
    pub fn routing_table(&self) -> RoutingTableView<'_> {
        RoutingTableView::new(self.table(0))
    }

    /// The IPv6 routing table (BEP 32).
    pub fn routing_table_v6(&self) -> RoutingTableView<'_> {
        RoutingTableView::new(self.table(1))
    }

    /// Entries in both routing tables.
    pub fn table_len(&self) -> usize {
        self.tables.iter().map(RoutingTable::len).sum()
    }

    /// Bytes of BEP 44 values and salts stored for others (what
    /// [`Limits::max_item_bytes`](crate::Limits::max_item_bytes) caps).
    pub fn stored_item_bytes(&self) -> usize {
        self.items.bytes()
    }

    /// Approximate heap bytes held by the stores of announced peers and BEP 44 items.
    pub fn store_memory_usage(&self) -> usize {
        self.peers
            .memory_usage()
            .saturating_add(self.items.memory_usage())
    }

    /// Peers stored from the announces this node received, over all info-hashes.
    pub fn stored_peers(&self) -> usize {
        self.peers.peer_count()
    }

    /// Info-hashes with stored peers.
    pub fn stored_info_hashes(&self) -> usize {
        self.peers.info_hash_count()
    }

    /// Whether the first bootstrap has completed.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    /// Whether `query` is still running.
    pub fn is_running(&self, query: QueryId) -> bool {
        self.query(query).is_some()
    }

    /// The progress of a running command so far (messages sent, responses, timeouts, hops),
    /// for progress displays; `None` once it has finished. Durations count whole milliseconds,
    /// like [`Instant`].
    pub fn query_metrics(&self, query: QueryId) -> Option<&QueryMetrics> {
        self.query(query).map(|q| &q.metrics)
    }

    /// Commands running now.
    pub fn running_queries(&self) -> usize {
        self.query_count
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.txns.len()
    }

    /// Outgoing messages waiting for [`Node::poll_transmit`].
    pub fn pending_transmits(&self) -> usize {
        self.transmits.len()
    }

    /// Events waiting for [`Node::poll_event`].
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Whether our id complies with BEP 42 for our external address: `None` until
    /// [`Event::ExternalAddress`] has reported one. Nodes that enforce BEP 42 keep a
    /// non-compliant node out of their tables; to comply, restart with
    /// [`Config::id`] set to [`bep42::generate_id`](crate::bep42::generate_id) of that address.
    pub fn id_is_secure(&self) -> Option<bool> {
        self.external_address()
            .map(|a| crate::bep42::id_is_acceptable(&self.id, a.ip()))
    }

    /// Whether a node may enter the routing table under [`Config::enforce_node_id`].
    pub(crate) fn admits_id(&self, id: &Id, addr: &SocketAddr) -> bool {
        !self.config.enforce_node_id || crate::bep42::id_is_acceptable(id, addr.ip())
    }

    /// Our external address, once [`Event::ExternalAddress`] has reported it.
    pub fn external_address(&self) -> Option<SocketAddr> {
        self.external
    }

    /// The routing-table contents worth saving, good entries first, for
    /// [`Node::import_nodes`] at the next start.
    pub fn export_nodes(&self) -> Vec<NodeInfo> {
        self.tables
            .iter()
            .flat_map(RoutingTable::export)
            .map(|(id, addr)| NodeInfo { id, addr })
            .collect()
    }

    /// Adds saved contacts as unverified candidates; they are checked before being trusted.
    /// Returns how many were taken.
    pub fn import_nodes(
        &mut self,
        now: Instant,
        nodes: impl IntoIterator<Item = NodeInfo>,
    ) -> usize {
        let now = self.advance(now);
        let mut taken = 0;
        for n in nodes {
            let addr = normalize(n.addr);
            if n.id == self.id || !self.accepts(&addr) {
                continue;
            }
            let fam = family(&addr);
            taken += self
                .table_mut(fam)
                .import(now, core::iter::once((n.id, addr)));
        }
        self.note_table_size();
        taken
    }

    /// Adds contacts that answered one of this node's queries just now, each with its
    /// round-trip time, as verified entries (exactly as if each answer had just arrived):
    /// for a table saved moments before a restart, or a simulator that builds a steady-state
    /// network without sending every verification ping. Contacts of unknown standing belong in
    /// [`Node::import_nodes`], which checks them first. Returns how many entered the table or
    /// a replacement cache.
    pub fn import_answered_nodes(
        &mut self,
        now: Instant,
        nodes: impl IntoIterator<Item = (NodeInfo, Duration)>,
    ) -> usize {
        let now = self.advance(now);
        let mut taken = 0;
        for (n, rtt) in nodes {
            let addr = normalize(n.addr);
            if n.id == self.id || !self.accepts(&addr) {
                continue;
            }
            let fam = family(&addr);
            self.record_rtt(rtt);
            let outcome = self.table_mut(fam).on_response(now, n.id, addr, rtt);
            if !matches!(outcome, InsertOutcome::Rejected(_)) {
                taken += 1;
            }
            self.handle_insert(now, outcome);
        }
        self.note_table_size();
        taken
    }

    // ---- Outputs ----------------------------------------------------------------------------

    /// The next datagram to send, encoded into `buf`.
    ///
    /// The contract: `buf` must hold at least
    /// [`Limits::max_datagram`](crate::Limits::max_datagram) bytes, and the node never
    /// produces a longer datagram. With a shorter buffer nothing is taken from the queue: the
    /// call returns `None`, leaves [`Node::pending_transmits`] as it was and counts
    /// [`Stats::transmit_buffer_too_small`], so a wrong buffer shows at once rather than as
    /// the loss of large messages. Content the application supplies (custom queries and
    /// answers, BEP 44 items) is refused by its command when its message would not fit
    /// `max_datagram`; a message the node builds itself that would not (possible only with a
    /// `max_datagram` below the 1280-byte reply budget) is discarded and counted in
    /// [`Stats::transmits_too_large`].
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let _ = self.advance(now);
        if self.transmits.is_empty() {
            self.release_transmits();
            return None;
        }
        let Some(buf) = buf.get_mut(..self.config.limits.max_datagram) else {
            self.stats.transmit_buffer_too_small =
                self.stats.transmit_buffer_too_small.saturating_add(1);
            return None;
        };
        let sender = self.sender();
        // Encoded (or, for a reply, copied) where it is queued, its buffer kept, then dropped.
        while let Some(out) = self.transmits.front_mut() {
            let encoded = out.encode(&sender, buf);
            let to = out.to;
            Self::recycle(&mut self.spare_replies, out);
            let _ = self.transmits.pop_front();
            match encoded {
                Some(len) => {
                    self.stats.datagrams_sent = self.stats.datagrams_sent.saturating_add(1);
                    self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(len as u64);
                    return Some(Transmit { to, len });
                }
                None => {
                    self.stats.transmits_too_large =
                        self.stats.transmits_too_large.saturating_add(1);
                }
            }
        }
        None
    }

    /// Gives back the memory of a drained transmit queue that a burst had grown (a node
    /// refreshing all its buckets at once queues hundreds of requests, then idles for minutes).
    fn release_transmits(&mut self) {
        if self.transmits.capacity() > IDLE_TRANSMITS {
            self.transmits.shrink_to_fit();
        }
    }

    /// Keeps the buffer of a sent encoded reply for the next reply.
    fn recycle(spare_replies: &mut Vec<Vec<u8>>, out: &mut Out) {
        if let out::OutBody::Encoded { bytes, .. } = &mut out.body {
            out::keep_spare(spare_replies, core::mem::take(bytes));
        }
    }

    /// Datagrams queued for [`Node::poll_transmit`].
    pub(crate) fn queued_transmits(&self) -> usize {
        self.transmits.len()
    }

    /// [`Node::poll_transmit`] for a caller that budgets queries (the crawler): the first
    /// queued datagram that `allow(destination, class)` accepts, skipping (and keeping in
    /// order) those it refuses. Queries whose request has already ended (timed out while held
    /// back) are discarded unsent. `allow` is called for candidates in queue order until one
    /// is accepted.
    pub(crate) fn poll_transmit_if(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        mut allow: impl FnMut(SocketAddr, TransmitClass) -> bool,
    ) -> Option<Transmit> {
        let _ = self.advance(now);
        if self.transmits.is_empty() {
            self.release_transmits();
            return None;
        }
        let Some(buf) = buf.get_mut(..self.config.limits.max_datagram) else {
            self.stats.transmit_buffer_too_small =
                self.stats.transmit_buffer_too_small.saturating_add(1);
            return None;
        };
        let txns = &self.txns;
        self.transmits.retain(|o| {
            !matches!(o.body, out::OutBody::Query(_)) || txns.get(o.tid.as_slice()).is_some()
        });
        let sender = self.sender();
        loop {
            let txns = &self.txns;
            let pos = self.transmits.iter().position(|o| {
                let class = match o.body {
                    out::OutBody::Query(_) => match txns.get(o.tid.as_slice()) {
                        Some(Txn {
                            purpose: Purpose::Single { .. },
                            ..
                        }) => TransmitClass::Single,
                        _ => TransmitClass::Other,
                    },
                    _ => TransmitClass::Answer,
                };
                allow(o.to, class)
            })?;
            let mut out = self.transmits.remove(pos)?;
            let encoded = out.encode(&sender, buf);
            Self::recycle(&mut self.spare_replies, &mut out);
            match encoded {
                Some(len) => {
                    self.stats.datagrams_sent = self.stats.datagrams_sent.saturating_add(1);
                    self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(len as u64);
                    return Some(Transmit { to: out.to, len });
                }
                None => {
                    self.stats.transmits_too_large =
                        self.stats.transmits_too_large.saturating_add(1);
                }
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if self.events_lost > 0 {
            let count = core::mem::take(&mut self.events_lost);
            return Some(Event::EventsDropped { count });
        }
        None
    }

    /// When [`Node::handle_timeout`] must next be called; `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(t, _)| t)
    }

    /// The deadline [`Node::poll_timeout`] returns, and what it is for.
    pub fn next_timer(&self) -> Option<(Instant, TimerKind)> {
        let candidates = [
            (self.txns.next_deadline(), TimerKind::Request),
            (self.table(0).next_deadline(), TimerKind::Table),
            (self.table(1).next_deadline(), TimerKind::Table),
            (Some(self.token_rotate_at), TimerKind::TokenRotation),
            (self.peers.next_expiry(), TimerKind::PeerExpiry),
            (self.items.next_expiry(), TimerKind::ItemExpiry),
            (self.bootstrap_retry_at, TimerKind::Bootstrap),
            (
                self.custom.iter().map(|c| c.expires).min(),
                TimerKind::CustomExpiry,
            ),
        ];
        candidates
            .into_iter()
            .filter_map(|(t, k)| t.map(|t| (t, k)))
            .min_by_key(|(t, _)| *t)
    }

    // ---- Internals shared by the submodules -------------------------------------------------

    /// Clamps time so that it never goes backwards.
    pub(crate) fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    /// Whether `addr` (already normalized) is acceptable as a contact.
    pub(crate) fn accepts(&self, addr: &SocketAddr) -> bool {
        (addr.is_ipv4() || self.config.ipv6) && self.config.address_policy.allows(addr)
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.limits.max_pending_events {
            self.events_lost = self.events_lost.saturating_add(1);
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
        } else {
            self.events.push_back(event);
        }
    }

    /// What every message we send carries besides its body.
    pub(crate) fn sender(&self) -> Sender {
        Sender {
            id: self.id,
            version: self.config.client_version,
            read_only: self.config.read_only,
        }
    }

    /// Whether `out` encodes within [`Limits::max_datagram`](crate::Limits::max_datagram).
    pub(crate) fn fits_datagram(&self, out: &Out) -> bool {
        out.encoded_len(&self.sender()) <= self.config.limits.max_datagram
    }

    /// Room for one more outgoing message.
    pub(crate) fn can_queue(&self) -> bool {
        self.transmits.len() < self.config.limits.max_pending_transmits
    }

    /// Room for one more request (transaction and transmit).
    pub(crate) fn can_send(&self) -> bool {
        self.can_queue() && !self.txns.is_full()
    }

    pub(crate) fn query(&self, id: QueryId) -> Option<&QueryState> {
        self.queries.get(id.slot())?.as_ref().filter(|q| q.id == id)
    }

    pub(crate) fn query_mut(&mut self, id: QueryId) -> Option<&mut QueryState> {
        self.queries
            .get_mut(id.slot())?
            .as_mut()
            .filter(|q| q.id == id)
    }

    /// Registers a new command, or refuses at the cap.
    pub(crate) fn new_query(
        &mut self,
        now: Instant,
        kind: CommandKind,
    ) -> Result<QueryId, CommandError> {
        if self.query_count >= self.config.limits.max_queries {
            return Err(CommandError::TooManyQueries);
        }
        let slot = match self.queries.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.queries.push(None);
                self.queries.len() - 1
            }
        };
        let serial = self.next_query;
        let (Some(next), Ok(slot32)) = (serial.checked_add(1), u32::try_from(slot)) else {
            return Err(CommandError::TooManyQueries);
        };
        self.next_query = next;
        let id = QueryId::new(serial, slot32);
        if let Some(s) = self.queries.get_mut(slot) {
            *s = Some(QueryState::new(id, kind, now));
            self.query_count += 1;
        }
        Ok(id)
    }

    pub(crate) fn take_query(&mut self, id: QueryId) -> Option<QueryState> {
        let slot = self.queries.get_mut(id.slot())?;
        if slot.as_ref().is_some_and(|q| q.id == id) {
            self.query_count -= 1;
            slot.take()
        } else {
            None
        }
    }

    /// The round-trip estimate for a node, if any.
    pub(crate) fn rtt_of(&self, id: Option<Id>, addr: &SocketAddr) -> Option<Duration> {
        let fam = family(addr);
        id.and_then(|id| self.table(fam).get(&id))
            .and_then(|e| e.rtt())
            .or(self.srtt)
    }

    /// The short timeout of a request to this node: a few round trips, within bounds.
    ///
    /// The cap is [`Config::short_timeout`], raised to 1.5 times the node's own smoothed
    /// round trip: a node on a slow link (every answer takes seconds) would otherwise give up
    /// on every request and end its lookups on the first answer.
    pub(crate) fn short_timeout(&self, id: Option<Id>, addr: &SocketAddr) -> Duration {
        let own = self
            .srtt
            .map_or(Duration::ZERO, |s| s.saturating_mul(3) / 2);
        let cap = self
            .config
            .short_timeout
            .max(own)
            .min(self.config.query_timeout);
        match self.rtt_of(id, addr) {
            Some(rtt) => (rtt.saturating_mul(2) + Duration::from_millis(50))
                .clamp(MIN_SHORT_TIMEOUT.min(cap), cap),
            None => cap,
        }
    }

    pub(crate) fn record_rtt(&mut self, rtt: Duration) {
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(s) => (s.saturating_mul(7) + rtt) / 8,
        });
    }

    /// Emits [`Event::RoutingTableEmpty`] when the tables just emptied, and schedules a
    /// re-bootstrap.
    pub(crate) fn note_table_size(&mut self) {
        // Empty, or (checked only while already in that state, so the scan is rare) holding
        // nothing but bad entries: kept, in case they come back, but useless for lookups.
        let empty = self.table_len() == 0 || (self.table_was_empty && !self.has_live_entries());
        self.set_table_empty(empty);
    }

    /// Whether some routing-table entry is not bad (BEP 5: repeated failures).
    fn has_live_entries(&self) -> bool {
        self.tables.iter().any(|t| {
            let config = t.config();
            t.iter().any(|e| !e.is_bad(config))
        })
    }

    fn set_table_empty(&mut self, empty: bool) {
        if empty && !self.table_was_empty {
            self.push_event(Event::RoutingTableEmpty);
            if self.bootstrap_retry_at.is_none()
                && self.bootstrap_query.is_none()
                && !self.seeds.is_empty()
            {
                self.bootstrap_retry_at = Some(self.now + self.bootstrap_backoff);
            }
        }
        self.table_was_empty = empty;
    }

    /// Counts a report of our external address and announces it once enough nodes agree.
    pub(crate) fn vote_external(&mut self, reporter: SocketAddr, addr: SocketAddr) {
        let reporter_ip = reporter.ip();
        if self
            .ip_votes
            .iter()
            .any(|(r, a)| *r == reporter_ip && *a == addr)
        {
            return;
        }
        self.ip_votes.retain(|(r, _)| *r != reporter_ip);
        if self.ip_votes.len() >= MAX_IP_VOTES {
            self.ip_votes.pop_front();
        }
        self.ip_votes.push_back((reporter_ip, addr));
        let count = self.ip_votes.iter().filter(|(_, a)| *a == addr).count();
        if count >= IP_VOTES_NEEDED && self.external != Some(addr) {
            self.external = Some(addr);
            self.push_event(Event::ExternalAddress {
                addr,
                reported_by: count,
            });
        }
    }

    /// Sends the ping a full bucket asked for.
    pub(crate) fn handle_insert(&mut self, now: Instant, outcome: InsertOutcome) {
        if let InsertOutcome::PingFirst { id, addr } = outcome {
            if self.send_table_ping(now, Some(id), addr).is_err() {
                let fam = family(&addr);
                self.table_mut(fam).on_failure(now, Some(id), addr);
            }
        }
    }

    /// Counts a dropped datagram.
    pub(crate) fn dropped(&mut self, reason: DropReason) -> Disposition {
        self.stats.drop(reason);
        Disposition::Dropped(reason)
    }

    pub(crate) fn new_custom_handle(&mut self) -> CustomHandle {
        let h = CustomHandle(self.next_custom);
        self.next_custom = self.next_custom.wrapping_add(1);
        h
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses.
pub(crate) fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// 0 for IPv4, 1 for IPv6.
pub(crate) fn family(addr: &SocketAddr) -> usize {
    usize::from(addr.is_ipv6())
}
