//! [`Crawler`]: many [`Node`]s, one per id, driven as one, with the discovery strategy on top.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use hashbrown::HashMap;
use rand_core::RngCore;

use super::traverse::{Answer, Failure, Traverse, TraverseConfig};
use super::{Found, Harvester, HowFound, SendBudget, SendBudgetConfig, Throttled};
use crate::config::Config;
use crate::event::{CommandKind, Event, QueryId, QueryStatus, Scrape};
use crate::id::Id;
use crate::node::{Node, TransmitClass};
use crate::rng::{KeyedState, Rng};
use crate::time::Instant;

/// Settings of a [`Crawler`].
#[derive(Clone, Debug)]
pub struct CrawlerConfig {
    /// The template of each id's [`Node`]: its `id` and `seed` are replaced per node, and
    /// [`Config::report_queries`] is turned on (the passive harvest needs it).
    pub node: Config,
    /// The crawler's send budget: a global rate (default 500 queries per second) and at most
    /// one query per remote IP per second. Every query of every id goes through it; answers
    /// to other nodes' queries do not count.
    pub budget: SendBudgetConfig,
    /// Info-hashes remembered for de-duplication (default 1,000,000, about 64 MB; see
    /// [`SeenSet`](super::SeenSet)).
    pub seen_capacity: usize,
    /// `get_peers` lookups in flight at once (default 32; 0 runs none).
    pub max_lookups: usize,
    /// Lookups waiting behind them (default 100,000). At the cap, newly discovered
    /// info-hashes are reported without a lookup, and [`Crawler::lookup`] refuses.
    pub max_queued_lookups: usize,
    /// How long after an info-hash is discovered its lookup starts (default 30 s). An
    /// info-hash seen in a `get_peers` query is often about to be announced (an announce
    /// starts with a `get_peers` lookup): asked too early, the nodes have no peers yet.
    /// Lookups queued with [`Crawler::lookup`] start at once.
    pub lookup_delay: Duration,
    /// BEP 33: ask for the swarm's bloom filters in the lookups (default on), so that
    /// [`CrawlEvent::LookupDone`] carries seed and leecher estimates.
    pub scrape: bool,
    /// Ask the holders first (default on): an info-hash found in BEP 51 samples is stored by
    /// the node that sampled it, so its peers are first asked of that node with one
    /// `get_peers` (and of up to [`MAX_HOLDERS`] nodes whose samples also named it, whichever
    /// the per-IP budget lets go first), at once, instead of a lookup of a dozen queries 30 s
    /// later. Only when no holder has peers does the info-hash get a lookup. An
    /// `announce_peer` a crawler id receives names a peer itself: it is reported as
    /// [`CrawlEvent::Peers`] at once, whatever this says.
    pub ask_holders: bool,
    /// BEP 33 in the asks of holders (default off). A scrape answer is about 520 bytes
    /// longer than the query; nodes that cap what they send to addresses that never
    /// completed a round trip with them (ours: 3× the bytes received) drop such answers to a
    /// crawler id they do not know, and each dropped answer costs the ask's timeout. Off, the
    /// seed and leecher estimates come from the lookups only.
    pub scrape_holders: bool,
    /// How long an ask of a holder may go unanswered before the next holder of the same
    /// info-hash is asked too (default 2 s: up to one per-IP interval waiting for its turn,
    /// then a second for the answer). The first ask still counts if it is answered later; a
    /// node that drops the answer (a reflection limit, a full queue, a dead holder) then costs
    /// this instead of the whole query timeout.
    pub ask_hedge: Duration,
    /// Run the BEP 51 traversal (default on). Off, the crawler only harvests passively and
    /// looks up what it harvests.
    pub sample: bool,
    /// The traversal's settings.
    pub traverse: TraverseConfig,
    /// Events waiting for [`Crawler::poll_event`] (default 65,536; at least 1). At the cap
    /// new events are dropped and counted in [`CrawlStats::events_dropped`].
    pub max_pending_events: usize,
    /// Seed of every random choice (node seeds, sample targets, hash keys).
    pub seed: [u8; 32],
}

impl CrawlerConfig {
    /// The defaults, seeded with `seed` (adapters draw it from the operating system).
    pub fn new(seed: [u8; 32]) -> Self {
        let mut node = Config::new(seed);
        node.report_queries = true;
        Self {
            node,
            budget: SendBudgetConfig::default(),
            seen_capacity: 1_000_000,
            max_lookups: 32,
            max_queued_lookups: 100_000,
            lookup_delay: Duration::from_secs(30),
            scrape: true,
            ask_holders: true,
            scrape_holders: false,
            ask_hedge: Duration::from_secs(2),
            sample: true,
            traverse: TraverseConfig::default(),
            max_pending_events: 65_536,
            seed,
        }
    }
}

/// One datagram to send: its bytes are the first `len` of the buffer given to
/// [`Crawler::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct CrawlTransmit {
    /// Which id sends it: its position in the `ids` given to [`Crawler::new`] (each id has
    /// its own socket).
    pub local: usize,
    /// The destination.
    pub to: SocketAddr,
    /// How many bytes of the buffer to send.
    pub len: usize,
}

/// What a [`Crawler`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrawlEvent {
    /// An info-hash seen for the first time (as far as the dedupe memory reaches), and how.
    Discovered {
        /// The info-hash.
        info_hash: Id,
        /// How it was found.
        how: HowFound,
        /// The node whose query or answer carried it.
        from: SocketAddr,
    },
    /// Peers found for an info-hash by the crawler's `get_peers` lookup (may come several
    /// times per lookup; each peer once).
    Peers {
        /// The info-hash.
        info_hash: Id,
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// That lookup ended.
    LookupDone {
        /// The info-hash.
        info_hash: Id,
        /// Peers found in all.
        peers: usize,
        /// BEP 33 estimate of its seeds, when a node answered the scrape.
        seeds: Option<u32>,
        /// BEP 33 estimate of its other peers, when a node answered the scrape.
        leechers: Option<u32>,
    },
}

/// Counters and gauges of a [`Crawler`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrawlStats {
    /// Ids (nodes) run.
    pub ids: usize,
    /// Entries in all the ids' routing tables.
    pub contacts: usize,
    /// Queries sent, all ids and purposes together.
    pub queries_sent: u64,
    /// Times a query was held back by the send budget (a query may be held several times).
    pub queries_throttled: u64,
    /// `sample_infohashes` queries sent by the traversal.
    pub sample_queries: u64,
    /// Of those, answered with samples.
    pub sample_answers: u64,
    /// Of those, unanswered or answered without BEP 51.
    pub sample_failures: u64,
    /// Queries of the finished `get_peers` lookups.
    pub lookup_queries: u64,
    /// `get_peers` queries sent to a node whose samples named the info-hash
    /// ([`CrawlerConfig::ask_holders`]).
    pub holder_queries: u64,
    /// Info-hashes whose peers came from a holder, without a lookup.
    pub holder_hits: u64,
    /// Info-hashes no holder gave peers for, looked up instead.
    pub holder_misses: u64,
    /// Asks of holders that got no answer (timed out) or an error.
    pub holder_failures: u64,
    /// Asks of holders unanswered after [`CrawlerConfig::ask_hedge`] for which the next
    /// holder was asked too.
    pub holder_hedges: u64,
    /// Peers reported from `announce_peer` queries received.
    pub announced_peers: u64,
    /// Info-hashes discovered, all ways together.
    pub discovered: u64,
    /// Discovered in incoming `get_peers` queries.
    pub discovered_get_peers: u64,
    /// Discovered in incoming `announce_peer` queries.
    pub discovered_announce_peer: u64,
    /// Discovered in BEP 51 samples.
    pub discovered_sample: u64,
    /// Sightings of info-hashes already discovered.
    pub repeats: u64,
    /// Lookups running now.
    pub lookups_running: usize,
    /// Lookups waiting now.
    pub lookups_queued: usize,
    /// Lookups finished.
    pub lookups_done: u64,
    /// Lookups not queued because the queue was full.
    pub lookups_refused: u64,
    /// Info-hashes waiting for a holder to be asked, or being asked, now.
    pub holders_pending: usize,
    /// Remote nodes the traversal remembers.
    pub known_nodes: usize,
    /// `sample_infohashes` requests in flight now.
    pub samples_in_flight: usize,
    /// Nodes the traversal ignored because its table was full.
    pub nodes_dropped: u64,
    /// Nodes the traversal forgot after they failed to answer.
    pub nodes_forgotten: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
}

/// When and how a discovered info-hash's peers are looked for.
#[derive(Clone, Copy, Debug)]
enum Lookup {
    /// A lookup from `at` on.
    At(Instant),
    /// A lookup ahead of every other waiting one.
    First,
    /// Ask this holder first.
    Holder(SocketAddr),
}

/// Where a pending info-hash is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// In `delayed`, for its lookup.
    Delayed,
    /// In `queue`, for its lookup.
    Queued,
    /// Its lookup runs.
    Running,
    /// Its holders are asked.
    Holders,
}

/// A request of the traversal in flight.
#[derive(Clone, Copy, Debug)]
struct SampleRequest {
    local: usize,
    query: QueryId,
    addr: SocketAddr,
    answered: bool,
}

/// A `get_peers` search in flight: a lookup, or the ask of a holder.
#[derive(Clone, Copy, Debug)]
struct Running {
    local: usize,
    query: QueryId,
    info_hash: Id,
    peers: usize,
}

/// Most holders remembered per info-hash waiting for [`CrawlerConfig::ask_holders`]: the k
/// (8) nodes an announce reaches. The first nodes sampled name most info-hashes first; with
/// only a few holders each, the asks would queue at those nodes' addresses (one query a
/// second each) while the other holders stay idle. About 300 bytes per waiting info-hash.
pub const MAX_HOLDERS: usize = 8;
/// Queued info-hashes [`Crawler::pump`] looks at per call for one whose holder may be asked
/// now (the others go to the back of the queue).
const HOLDER_SCAN: usize = 32;

/// An info-hash whose holders are to be asked for its peers.
#[derive(Clone, Debug, Default)]
struct Holders {
    /// Not asked yet, in the order they were seen.
    untried: heapless::Vec<SocketAddr, MAX_HOLDERS>,
    /// Holders remembered in all (asked or not).
    seen: u8,
    /// Asks of them in flight.
    asking: u8,
    /// Another may be asked while some are in flight (an ask was unanswered for
    /// [`CrawlerConfig::ask_hedge`], or failed while another was in flight).
    hedge: bool,
}

/// Info-hashes whose holders the application waits for, at most (more wait in the queue).
const MAX_URGENT: usize = 1024;

/// Whether a holder of an info-hash may be asked now.
enum Ready {
    /// Yes, this one.
    Now(SocketAddr),
    /// Not before the per-IP budget allows.
    Wait,
    /// The entry is stale: the info-hash is done, or an ask of it is in flight.
    Gone,
}

/// How long work that could not start waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How often the traversal takes in the contacts of the ids' routing tables.
const TABLE_SCAN: Duration = Duration::from_secs(60);

/// A crawler: one [`Node`] per id (each on its own socket), the passive harvest of the
/// info-hashes in their incoming queries, the BEP 51 traversal of the key space, a
/// `get_peers` lookup per new info-hash, and one [`SendBudget`] for all their queries. Driven
/// like a [`Node`]: feed [`Crawler::handle_input`] and [`Crawler::handle_timeout`], drain
/// [`Crawler::poll_transmit`] and [`Crawler::poll_event`], sleep until
/// [`Crawler::poll_timeout`]. See the [module docs](super) for the strategy.
#[derive(Debug)]
pub struct Crawler {
    config: CrawlerConfig,
    ids: Vec<Id>,
    nodes: Vec<Node>,
    rng: Rng,
    harvester: Harvester,
    budget: SendBudget,
    traverse: Traverse,
    samples: Vec<SampleRequest>,
    /// Lookups that may start, in order.
    queue: VecDeque<Id>,
    /// Lookups of discovered info-hashes waiting for [`CrawlerConfig::lookup_delay`], in
    /// order of their start times.
    delayed: VecDeque<(Instant, Id)>,
    running: Vec<Running>,
    /// The info-hashes being worked on, and where each is; entries of `queue` and `delayed`
    /// whose info-hash has moved on (to another place in the queue, to its holders) are
    /// skipped when they come up.
    pending: HashMap<Id, Stage, KeyedState>,
    /// Info-hashes waiting in `queue` or `delayed` (their stale entries not counted).
    waiting: usize,
    /// Info-hashes whose holders are to be asked ([`CrawlerConfig::ask_holders`]).
    holders: HashMap<Id, Holders, KeyedState>,
    /// Those of them waiting for an ask, in order.
    holder_queue: VecDeque<Id>,
    /// Those of them the application waits for ([`Crawler::lookup`]), asked first.
    holder_urgent: VecDeque<Id>,
    /// Asks in flight.
    asking: Vec<Running>,
    /// When each ask in flight may be hedged ([`CrawlerConfig::ask_hedge`]), in that order
    /// (entries of asks that ended are skipped when they come up).
    hedges: VecDeque<(Instant, usize, QueryId)>,
    events: VecDeque<CrawlEvent>,
    stats: CrawlStats,
    /// Round-robin start of [`Crawler::poll_transmit`].
    next_local: usize,
    /// Per id: everything it had queued was held back by the budget until this instant, when
    /// it had this many datagrams queued. [`Crawler::poll_transmit`] passes over it until then
    /// unless it queued more meanwhile (a held-back query is not asked about again and again).
    held: Vec<Option<(Instant, usize)>>,
    /// When a held-back query may go.
    wake: Option<Instant>,
    /// Queries wait for the global rate: start no new work.
    backlog: bool,
    /// Work that failed to start waits until then.
    lookup_retry: Option<Instant>,
    sample_retry: Option<Instant>,
    /// When work that waits (for the budget, a due node, a retry) may start.
    pump_at: Option<Instant>,
    /// Bootstrap contacts for the other ids, once the first has joined.
    contacts: Vec<SocketAddr>,
    next_table_scan: Instant,
    /// Counts sample requests, to vary their targets.
    sample_serial: u64,
    scratch: Vec<Found>,
    now: Instant,
}

impl Crawler {
    /// One [`Node`] per id; `local` index = position in `ids`. Ids that would make an invalid
    /// node configuration are run with the template's defaults instead (the template is
    /// validated by the caller; see [`Config::validate`]).
    pub fn new(config: CrawlerConfig, ids: &[Id], now: Instant) -> Self {
        let mut rng = Rng::new(config.seed);
        let mut nodes = Vec::with_capacity(ids.len());
        for id in ids {
            let mut node_config = config.node.clone();
            node_config.id = Some(*id);
            node_config.report_queries = true;
            rng.fill_bytes(&mut node_config.seed);
            let node = match Node::new(node_config, now) {
                Ok(node) => node,
                Err(_) => {
                    let mut fallback = Config::new([0; 32]);
                    fallback.id = Some(*id);
                    fallback.report_queries = true;
                    rng.fill_bytes(&mut fallback.seed);
                    match Node::new(fallback, now) {
                        Ok(node) => node,
                        Err(_) => continue,
                    }
                }
            };
            nodes.push(node);
        }
        let harvester = Harvester::new(config.seen_capacity, &mut rng);
        let budget = SendBudget::new(config.budget, now, &mut rng);
        let mut key = [0; 16];
        rng.fill_bytes(&mut key);
        let traverse = Traverse::new(config.traverse, key);
        rng.fill_bytes(&mut key);
        let pending = HashMap::with_hasher(KeyedState::new(key));
        rng.fill_bytes(&mut key);
        let holders = HashMap::with_hasher(KeyedState::new(key));
        Self {
            ids: nodes.iter().map(Node::id).collect(),
            nodes,
            rng,
            harvester,
            budget,
            traverse,
            samples: Vec::new(),
            queue: VecDeque::new(),
            delayed: VecDeque::new(),
            running: Vec::new(),
            pending,
            waiting: 0,
            holders,
            holder_queue: VecDeque::new(),
            holder_urgent: VecDeque::new(),
            asking: Vec::new(),
            hedges: VecDeque::new(),
            events: VecDeque::new(),
            stats: CrawlStats::default(),
            next_local: 0,
            held: Vec::new(),
            wake: None,
            backlog: false,
            lookup_retry: None,
            sample_retry: None,
            pump_at: None,
            contacts: Vec::new(),
            next_table_scan: now.saturating_add(TABLE_SCAN),
            sample_serial: 0,
            scratch: Vec::new(),
            now,
            config,
        }
    }

    /// The number of ids (nodes).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the crawler runs no id at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node of id `local`: its stats, and its contacts for state files.
    pub fn node(&self, local: usize) -> Option<&Node> {
        self.nodes.get(local)
    }

    /// The settings.
    pub fn config(&self) -> &CrawlerConfig {
        &self.config
    }

    /// Joins the network through `contacts`: the first id bootstraps from them, the others
    /// from what it learned once it has joined (so that their first queries go to many
    /// addresses, not all to the few contacts, which the per-IP budget would hold back). With
    /// the traversal on, the contacts are also asked for samples at once: the crawl does not
    /// wait for the ids to join (their queries yield to the samples' reservations).
    pub fn bootstrap(&mut self, now: Instant, contacts: &[SocketAddr]) {
        let now = self.advance(now);
        self.contacts = contacts.to_vec();
        if self.config.sample {
            // Sampling starts at once, with the contacts: their ids are not known yet, so each
            // gets a random one until an answer that lists the node gives its own.
            for addr in contacts {
                let id = Id::random(&mut self.rng);
                self.traverse.learn(now, id, *addr);
            }
        }
        if let Some(first) = self.nodes.first_mut() {
            let _ = first.bootstrap(now, contacts.iter().copied());
        }
        if let Some(first) = self.nodes.first() {
            if first.is_bootstrapped() {
                self.bootstrap_others(now);
            }
        }
        self.drain(now, 0);
        self.pump(now);
    }

    fn bootstrap_others(&mut self, now: Instant) {
        let known = self
            .nodes
            .first()
            .map(Node::export_nodes)
            .unwrap_or_default();
        let contacts = core::mem::take(&mut self.contacts);
        for local in 1..self.nodes.len() {
            if let Some(node) = self.nodes.get_mut(local) {
                node.import_nodes(now, known.iter().copied());
                let _ = node.bootstrap(now, contacts.iter().copied());
            }
            self.drain(now, local);
        }
    }

    /// A datagram that arrived on the socket of id `local`.
    pub fn handle_input(&mut self, now: Instant, local: usize, from: SocketAddr, datagram: &[u8]) {
        let now = self.advance(now);
        let Some(node) = self.nodes.get_mut(local) else {
            return;
        };
        let _ = node.handle_datagram(now, from, datagram);
        self.drain(now, local);
        self.pump(now);
    }

    /// The next datagram to send, encoded into `buf` (at least
    /// [`Limits::max_datagram`](crate::Limits::max_datagram) bytes). Answers go at once;
    /// queries only as the send budget allows: when it holds them back this returns `None`
    /// and [`Crawler::poll_timeout`] says when to try again.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<CrawlTransmit> {
        let now = self.advance(now);
        let n = self.nodes.len();
        self.held.resize(n, None);
        let mut wake: Option<Instant> = None;
        let mut global: Option<Instant> = None;
        for step in 0..n {
            let local = (self.next_local + step) % n;
            let Some(node) = self.nodes.get_mut(local) else {
                continue;
            };
            let queued = node.queued_transmits();
            if queued == 0 {
                continue;
            }
            if let Some(Some((until, len))) = self.held.get(local) {
                if now < *until && queued == *len {
                    wake = Some(wake.map_or(*until, |w| w.min(*until)));
                    continue;
                }
            }
            let budget = &mut self.budget;
            let mut node_wake: Option<Instant> = None;
            let transmit = node.poll_transmit_if(now, buf, |to, class| {
                // Answers go at once; the crawler's own requests (asks, samples) reserve
                // their address and go before the nodes' lookups and pings to it.
                let sent = match (class, global) {
                    (TransmitClass::Answer, _) => return true,
                    (_, Some(until)) => Err(Throttled::Global { until }),
                    (TransmitClass::Single, None) => budget.try_send(now, to.ip()),
                    (TransmitClass::Other, None) => budget.try_send_unreserved(now, to.ip()),
                };
                let until = match sent {
                    Ok(()) => return true,
                    Err(Throttled::Global { until }) => {
                        global = Some(until);
                        until
                    }
                    Err(Throttled::PerIp { until }) => until,
                    Err(Throttled::TooManyIps) => now.saturating_add(RETRY),
                };
                node_wake = Some(node_wake.map_or(until, |w| w.min(until)));
                false
            });
            if let Some(t) = transmit {
                if let Some(h) = self.held.get_mut(local) {
                    *h = None;
                }
                self.next_local = (local + 1) % n;
                return Some(CrawlTransmit {
                    local,
                    to: t.to,
                    len: t.len,
                });
            }
            if let Some(until) = node_wake {
                wake = Some(wake.map_or(until, |w| w.min(until)));
                let len = node.queued_transmits();
                if let Some(h) = self.held.get_mut(local) {
                    *h = (len > 0).then_some((until, len));
                }
            }
        }
        self.wake = wake;
        self.backlog = global.is_some();
        None
    }

    /// When [`Crawler::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.nodes.iter().filter_map(Node::poll_timeout).min();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.wake);
        consider(self.pump_at);
        if self.config.sample {
            consider(Some(self.next_table_scan));
        }
        next
    }

    /// Runs the timers that are due at `now`, and starts the work that may start.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        for local in 0..self.nodes.len() {
            let Some(node) = self.nodes.get_mut(local) else {
                continue;
            };
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
                self.drain(now, local);
            }
        }
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
        }
        if now >= self.next_table_scan {
            self.next_table_scan = now.saturating_add(TABLE_SCAN);
            self.learn_tables(now);
        }
        self.pump(now);
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CrawlEvent> {
        self.events.pop_front()
    }

    /// Queues a `get_peers` lookup for `info_hash` (e.g. to resume pending work after a
    /// restart, or because the application waits for its peers) ahead of the lookups of newly
    /// discovered info-hashes. Returns false when the queue is full; true when queued or
    /// already queued or running (or its holders are being asked).
    pub fn lookup(&mut self, now: Instant, info_hash: Id) -> bool {
        let now = self.advance(now);
        let queued = self.enqueue(info_hash, Lookup::First);
        self.pump(now);
        queued
    }

    /// Counters and gauges.
    pub fn stats(&self) -> CrawlStats {
        let mut s = self.stats;
        s.ids = self.nodes.len();
        s.contacts = self.nodes.iter().map(Node::table_len).sum();
        s.queries_sent = self.budget.sent();
        s.queries_throttled = self.budget.throttled();
        s.lookups_running = self.running.len();
        s.lookups_queued = self.waiting;
        s.holders_pending = self.holders.len();
        s.known_nodes = self.traverse.len();
        s.samples_in_flight = self.traverse.in_flight();
        s.nodes_dropped = self.traverse.dropped;
        s.nodes_forgotten = self.traverse.forgotten;
        s.repeats = self.harvester.repeats();
        s
    }

    // ---- Internals --------------------------------------------------------------------------

    fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn push(&mut self, event: CrawlEvent) {
        if self.events.len() >= self.config.max_pending_events.max(1) {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
        } else {
            self.events.push_back(event);
        }
    }

    /// Queues a lookup, or the asks of a holder, unless the queue is full. An info-hash
    /// already pending moves ahead when that is asked for: a waiting lookup to the front of
    /// the queue ([`Lookup::First`]), or to its holders once one is known.
    fn enqueue(&mut self, info_hash: Id, how: Lookup) -> bool {
        let stage = self.pending.get(&info_hash).copied();
        if let Some(stage) = stage {
            match (stage, how) {
                (Stage::Delayed, Lookup::First) => {
                    self.set_stage(info_hash, Some(Stage::Queued));
                    self.queue.push_front(info_hash);
                }
                (Stage::Delayed | Stage::Queued, Lookup::Holder(holder))
                    if self.config.ask_holders =>
                {
                    self.set_stage(info_hash, Some(Stage::Holders));
                    self.new_holders(info_hash, holder);
                }
                (Stage::Holders, Lookup::Holder(holder)) => self.add_holder(&info_hash, holder),
                (Stage::Holders, Lookup::First)
                    if self.holder_urgent.len() < MAX_URGENT
                        && !self.holder_urgent.contains(&info_hash) =>
                {
                    self.holder_urgent.push_back(info_hash);
                }
                _ => {}
            }
            return true;
        }
        let queued = self.waiting + self.holders.len();
        if self.config.max_lookups == 0 || queued >= self.config.max_queued_lookups {
            self.stats.lookups_refused = self.stats.lookups_refused.saturating_add(1);
            return false;
        }
        match how {
            Lookup::At(at) if at > self.now => {
                self.set_stage(info_hash, Some(Stage::Delayed));
                self.delayed.push_back((at, info_hash));
            }
            Lookup::At(_) => {
                self.set_stage(info_hash, Some(Stage::Queued));
                self.queue.push_back(info_hash);
            }
            Lookup::First => {
                self.set_stage(info_hash, Some(Stage::Queued));
                self.queue.push_front(info_hash);
            }
            Lookup::Holder(holder) => {
                self.set_stage(info_hash, Some(Stage::Holders));
                self.new_holders(info_hash, holder);
            }
        }
        true
    }

    /// Moves a pending info-hash to `stage` (`None`: done), keeping [`Crawler::waiting`].
    fn set_stage(&mut self, info_hash: Id, stage: Option<Stage>) {
        let waits = |s: Option<Stage>| matches!(s, Some(Stage::Delayed | Stage::Queued));
        let old = match stage {
            Some(stage) => self.pending.insert(info_hash, stage),
            None => self.pending.remove(&info_hash),
        };
        if waits(old) {
            self.waiting = self.waiting.saturating_sub(1);
        }
        if waits(stage) {
            self.waiting += 1;
        }
    }

    fn new_holders(&mut self, info_hash: Id, holder: SocketAddr) {
        let mut h = Holders::default();
        let _ = h.untried.push(holder);
        h.seen = 1;
        self.holders.insert(info_hash, h);
        self.holder_queue.push_back(info_hash);
    }

    /// Remembers another holder of an info-hash whose holders are to be asked.
    fn add_holder(&mut self, info_hash: &Id, holder: SocketAddr) {
        if let Some(h) = self.holders.get_mut(info_hash) {
            let known = h.untried.iter().any(|a| a.ip() == holder.ip());
            if !known && usize::from(h.seen) < MAX_HOLDERS {
                h.seen += 1;
                let _ = h.untried.push(holder);
            }
        }
    }

    /// The id closest to `target` (the one whose neighbourhood it is in).
    fn closest_local(&self, target: &Id) -> Option<usize> {
        self.ids
            .iter()
            .enumerate()
            .min_by_key(|(_, id)| id.distance(target))
            .map(|(i, _)| i)
    }

    /// Takes in the events of node `local`.
    fn drain(&mut self, now: Instant, local: usize) {
        while let Some(event) = self.nodes.get_mut(local).and_then(Node::poll_event) {
            self.on_event(now, local, event);
        }
    }

    fn on_event(&mut self, now: Instant, local: usize, event: Event) {
        let mut found = core::mem::take(&mut self.scratch);
        found.clear();
        self.harvester.observe(&event, &mut found);
        let from = match &event {
            Event::QueryReceived { from, .. } | Event::SamplesFound { from, .. } => Some(*from),
            _ => None,
        };
        if let Some(from) = from {
            for f in &found {
                self.discovered(*f, from);
            }
        }
        self.scratch = found;
        if let Event::SamplesFound { from, samples, .. } = &event {
            if self.config.ask_holders && !self.pending.is_empty() {
                // A node that samples an info-hash waiting for its lookup (or for its
                // holders) holds its peers: ask it.
                for info_hash in samples {
                    if self.pending.contains_key(info_hash) {
                        let _ = self.enqueue(*info_hash, Lookup::Holder(*from));
                    }
                }
            }
        }
        match event {
            Event::QueryReceived {
                from,
                id,
                method: crate::stats::MethodKind::AnnouncePeer,
                target: Some(info_hash),
                announced_port: Some(port),
            } => {
                // The announcer is a peer: no need to look for it.
                if port != 0 {
                    self.stats.announced_peers = self.stats.announced_peers.saturating_add(1);
                    self.push(CrawlEvent::Peers {
                        info_hash,
                        peers: alloc::vec![SocketAddr::new(from.ip(), port)],
                    });
                }
                if self.config.sample {
                    self.traverse.learn(now, id, from);
                }
            }
            Event::QueryReceived { from, id, .. } if self.config.sample => {
                self.traverse.learn(now, id, from);
            }
            Event::SamplesFound {
                query,
                from,
                samples,
                num,
                interval,
                nodes,
            } => {
                if let Some(req) = self
                    .samples
                    .iter_mut()
                    .find(|r| r.local == local && r.query == query)
                {
                    req.answered = true;
                    self.stats.sample_answers = self.stats.sample_answers.saturating_add(1);
                    let answer = Answer {
                        samples: samples.len(),
                        num,
                        interval,
                    };
                    let spread = self.rng.next_u32();
                    self.traverse.on_answer(now, from, answer, spread);
                }
                if self.config.sample {
                    for n in nodes {
                        self.traverse.learn(now, n.id, n.addr);
                    }
                }
            }
            Event::PeersFound { query, peers } => {
                // An ask of a holder's, or a lookup's: the same bookkeeping.
                let search = self
                    .asking
                    .iter_mut()
                    .chain(self.running.iter_mut())
                    .find(|r| r.local == local && r.query == query);
                if let Some(search) = search {
                    search.peers = search.peers.saturating_add(peers.len());
                    let info_hash = search.info_hash;
                    self.push(CrawlEvent::Peers { info_hash, peers });
                }
            }
            Event::QueryFinished { query, outcome } => {
                if let Some(pos) = self
                    .asking
                    .iter()
                    .position(|a| a.local == local && a.query == query)
                {
                    let ask = self.asking.swap_remove(pos);
                    if outcome.status != QueryStatus::Completed {
                        self.stats.holder_failures = self.stats.holder_failures.saturating_add(1);
                    }
                    self.holder_answered(ask.info_hash, ask.peers, outcome.scrape);
                } else if let Some(pos) = self
                    .samples
                    .iter()
                    .position(|r| r.local == local && r.query == query)
                {
                    let req = self.samples.swap_remove(pos);
                    if !req.answered {
                        self.stats.sample_failures = self.stats.sample_failures.saturating_add(1);
                        let failure = match outcome.status {
                            QueryStatus::TimedOut | QueryStatus::Cancelled => Failure::Timeout,
                            _ => Failure::Unsupported,
                        };
                        self.traverse.on_failure(now, req.addr, failure);
                    }
                } else if let Some(pos) = self
                    .running
                    .iter()
                    .position(|r| r.local == local && r.query == query)
                {
                    let run = self.running.swap_remove(pos);
                    self.set_stage(run.info_hash, None);
                    self.stats.lookups_done = self.stats.lookups_done.saturating_add(1);
                    self.stats.lookup_queries = self
                        .stats
                        .lookup_queries
                        .saturating_add(u64::from(outcome.metrics.messages_sent));
                    self.push(CrawlEvent::LookupDone {
                        info_hash: run.info_hash,
                        peers: run.peers,
                        seeds: outcome.scrape.map(|s| u32::from(s.seeds)),
                        leechers: outcome.scrape.map(|s| u32::from(s.leechers)),
                    });
                } else if local == 0
                    && matches!(outcome.kind, CommandKind::Bootstrap)
                    && !self.contacts.is_empty()
                    && self.nodes.first().is_some_and(Node::is_bootstrapped)
                {
                    self.bootstrap_others(now);
                }
            }
            Event::Bootstrapped { .. } if self.config.sample => {
                self.learn_table(now, local);
            }
            _ => {}
        }
    }

    fn discovered(&mut self, found: Found, from: SocketAddr) {
        let s = &mut self.stats;
        s.discovered = s.discovered.saturating_add(1);
        let by = match found.how {
            HowFound::GetPeers => &mut s.discovered_get_peers,
            HowFound::AnnouncePeer => &mut s.discovered_announce_peer,
            HowFound::Sample => &mut s.discovered_sample,
        };
        *by = by.saturating_add(1);
        self.push(CrawlEvent::Discovered {
            info_hash: found.info_hash,
            how: found.how,
            from,
        });
        let how = if found.how == HowFound::Sample && self.config.ask_holders {
            Lookup::Holder(from)
        } else {
            Lookup::At(self.now.saturating_add(self.config.lookup_delay))
        };
        let _ = self.enqueue(found.info_hash, how);
    }

    /// An ask of a holder ended: peers end the work on the info-hash; without, the next holder
    /// is asked, or the info-hash is looked up when none is left.
    fn holder_answered(&mut self, info_hash: Id, peers: usize, scrape: Option<Scrape>) {
        let Some(h) = self.holders.get_mut(&info_hash) else {
            return;
        };
        h.asking = h.asking.saturating_sub(1);
        let untried = !h.untried.is_empty();
        let in_flight = h.asking > 0;
        if peers > 0 {
            self.holders.remove(&info_hash);
            self.set_stage(info_hash, None);
            self.stats.holder_hits = self.stats.holder_hits.saturating_add(1);
            self.push(CrawlEvent::LookupDone {
                info_hash,
                peers,
                seeds: scrape.map(|s| u32::from(s.seeds)),
                leechers: scrape.map(|s| u32::from(s.leechers)),
            });
            return;
        }
        if untried {
            // The next holder, even while another ask is in flight.
            h.hedge = true;
            self.holder_queue.push_front(info_hash);
        } else if in_flight {
            // A hedged ask is still out: it decides.
        } else {
            // No holder had peers (they expired, or the samples were stale): a lookup.
            self.holders.remove(&info_hash);
            self.stats.holder_misses = self.stats.holder_misses.saturating_add(1);
            self.set_stage(info_hash, Some(Stage::Queued));
            self.queue.push_back(info_hash);
        }
    }

    /// The traversal takes in the contacts of every id's routing table.
    fn learn_tables(&mut self, now: Instant) {
        if self.config.sample {
            for local in 0..self.nodes.len() {
                self.learn_table(now, local);
            }
        }
    }

    fn learn_table(&mut self, now: Instant, local: usize) {
        let Some(node) = self.nodes.get(local) else {
            return;
        };
        for entry in node.export_nodes() {
            self.traverse.learn(now, entry.id, entry.addr);
        }
    }

    /// Starts the samples and lookups that may start: no more than the budget can send now.
    /// Sets when to try again if work is left waiting for time (not for answers).
    fn pump(&mut self, now: Instant) {
        self.pump_at = None;
        if self.nodes.is_empty() {
            return;
        }
        if self.backlog {
            // Queries wait for the global rate: new work only adds to them.
            let at = self.budget.next_token(now);
            self.pump_at = Some(at.max(now.saturating_add(Duration::from_millis(1))));
            return;
        }
        while let Some(&(at, info_hash)) = self.delayed.front() {
            if at > now {
                break;
            }
            self.delayed.pop_front();
            if self.pending.get(&info_hash) == Some(&Stage::Delayed) {
                self.set_stage(info_hash, Some(Stage::Queued));
                self.queue.push_back(info_hash);
            }
        }
        self.hedge_due(now);
        let mut room = u64::from(self.budget.available(now));
        let mut lookups_open = self.lookup_retry.is_none_or(|t| t <= now);
        let mut samples_open = self.config.sample && self.sample_retry.is_none_or(|t| t <= now);
        let mut holders_open = !self.holder_queue.is_empty() || !self.holder_urgent.is_empty();
        let mut holder_wait: Option<Instant> = None;
        let mut scan = HOLDER_SCAN.min(self.holder_queue.len());
        // Take turns: an ask of a holder, a lookup, a sample, while the budget lasts.
        while room > 0 && (lookups_open || samples_open || holders_open) {
            if holders_open {
                match self.start_ask(now, &mut scan, &mut holder_wait) {
                    Some(cost) => room = room.saturating_sub(cost),
                    None => holders_open = false,
                }
            }
            if lookups_open && room > 0 {
                match self.start_lookup(now) {
                    Some(cost) => room = room.saturating_sub(cost),
                    None => lookups_open = false,
                }
            }
            if samples_open && room > 0 {
                match self.start_sample(now) {
                    Some(cost) => room = room.saturating_sub(cost),
                    None => samples_open = false,
                }
            }
        }
        let lookups_wait = !self.queue.is_empty() && self.running.len() < self.config.max_lookups;
        let samples_wait =
            self.config.sample && self.traverse.in_flight() < self.traverse.config().max_in_flight;
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a: Instant| a.min(t)));
        if room == 0 && (lookups_wait || samples_wait) {
            // The budget is spent: try again when the next query's worth has come back.
            consider(self.budget.next_token(now));
        }
        if lookups_wait {
            if let Some(t) = self.lookup_retry {
                consider(t);
            }
        }
        if let Some(&(t, _)) = self.delayed.front() {
            consider(t);
        }
        if let Some(t) = holder_wait {
            consider(t);
        }
        if let Some(&(t, _, _)) = self.hedges.front() {
            consider(t);
        }
        if room == 0 && holders_open {
            consider(self.budget.next_token(now));
        }
        if samples_wait {
            if let Some(due) = self.traverse.next_due() {
                consider(self.sample_retry.map_or(due, |r| r.max(due)));
            }
        }
        // Never now: what could start now has started.
        self.pump_at = at.map(|t| t.max(now.saturating_add(Duration::from_millis(1))));
    }

    /// Asks unanswered for [`CrawlerConfig::ask_hedge`]: their info-hashes' next holders
    /// may be asked too, first.
    fn hedge_due(&mut self, now: Instant) {
        while let Some(&(due, local, query)) = self.hedges.front() {
            if due > now {
                break;
            }
            self.hedges.pop_front();
            let Some(ask) = self
                .asking
                .iter()
                .find(|a| a.local == local && a.query == query)
            else {
                continue;
            };
            let info_hash = ask.info_hash;
            if let Some(h) = self.holders.get_mut(&info_hash) {
                if !h.untried.is_empty() && !h.hedge {
                    h.hedge = true;
                    self.holder_queue.push_front(info_hash);
                    self.stats.holder_hedges = self.stats.holder_hedges.saturating_add(1);
                }
            }
        }
    }

    /// Asks a holder of the next queued info-hash whose holder's address the per-IP budget
    /// lets go now (see [`Crawler::next_ready_holder`]). Returns 1, or `None` when none can go.
    fn start_ask(
        &mut self,
        now: Instant,
        scan: &mut usize,
        wait: &mut Option<Instant>,
    ) -> Option<u64> {
        loop {
            let (info_hash, holder) = self.next_ready_holder(now, scan, wait)?;
            let scrape = self.config.scrape_holders;
            // The id nearest the info-hash, or the next one whose queues have room.
            let first = self.closest_local(&info_hash).unwrap_or(0);
            let n = self.nodes.len();
            let mut result = Err(crate::error::CommandError::Busy);
            let mut local = first;
            for step in 0..n {
                local = (first + step) % n;
                let Some(node) = self.nodes.get_mut(local) else {
                    continue;
                };
                result = node.get_peers_from(now, holder, info_hash, scrape);
                if !matches!(result, Err(crate::error::CommandError::Busy)) {
                    break;
                }
            }
            match result {
                Ok(query) => {
                    self.budget.reserve(now, holder.ip());
                    if let Some(h) = self.holders.get_mut(&info_hash) {
                        h.asking = h.asking.saturating_add(1);
                        h.hedge = false;
                    }
                    let due = now.saturating_add(self.config.ask_hedge);
                    self.hedges.push_back((due, local, query));
                    self.asking.push(Running {
                        local,
                        query,
                        info_hash,
                        peers: 0,
                    });
                    self.stats.holder_queries = self.stats.holder_queries.saturating_add(1);
                    return Some(1);
                }
                Err(crate::error::CommandError::AddressRejected) => {
                    // Not a holder we may ask: try the next one, or look it up.
                    self.holder_answered(info_hash, 0, None);
                }
                Err(_) => {
                    // Every id is busy: the holder stays for later.
                    if let Some(h) = self.holders.get_mut(&info_hash) {
                        let _ = h.untried.push(holder);
                    }
                    self.holder_queue.push_front(info_hash);
                    *wait = Some(now.saturating_add(RETRY));
                    return None;
                }
            }
        }
    }

    /// The next info-hash with a holder whose address the per-IP budget lets go now, and that
    /// holder (taken off its untried list). The ones the application waits for come first, in
    /// order (those that must wait keep their place); then the others, at most `scan` of them
    /// (counting down; those that must wait go to the back of the queue). `wait` notes when
    /// the first of those that must wait may go.
    fn next_ready_holder(
        &mut self,
        now: Instant,
        scan: &mut usize,
        wait: &mut Option<Instant>,
    ) -> Option<(Id, SocketAddr)> {
        let mut i = 0;
        let mut looked = 0;
        while looked < HOLDER_SCAN {
            let Some(&info_hash) = self.holder_urgent.get(i) else {
                break;
            };
            looked += 1;
            match self.ready_holder(now, &info_hash, wait) {
                Ready::Gone => {
                    self.holder_urgent.remove(i);
                }
                Ready::Wait => i += 1,
                Ready::Now(holder) => {
                    self.holder_urgent.remove(i);
                    return Some((info_hash, holder));
                }
            }
        }
        while *scan > 0 {
            *scan -= 1;
            let info_hash = self.holder_queue.pop_front()?;
            match self.ready_holder(now, &info_hash, wait) {
                Ready::Gone => {}
                Ready::Wait => self.holder_queue.push_back(info_hash),
                Ready::Now(holder) => return Some((info_hash, holder)),
            }
        }
        None
    }

    /// Whether a holder of `info_hash` may be asked now (and which, taken off its list).
    fn ready_holder(&mut self, now: Instant, info_hash: &Id, wait: &mut Option<Instant>) -> Ready {
        let Some(h) = self.holders.get_mut(info_hash) else {
            return Ready::Gone;
        };
        if (h.asking > 0 && !h.hedge) || h.untried.is_empty() {
            // The ask in flight decides what comes next.
            return Ready::Gone;
        }
        let budget = &self.budget;
        // An address ready now first; else, of those without a query of ours waiting for
        // them, the one free soonest: the ask then waits in the node's queue, ahead of the
        // nodes' own queries to it.
        let pos = h
            .untried
            .iter()
            .position(|a| budget.ip_ready_at(now, a.ip()).is_none())
            .or_else(|| {
                h.untried
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| !budget.is_reserved(now, a.ip()))
                    .min_by_key(|(_, a)| budget.ip_ready_at(now, a.ip()))
                    .map(|(i, _)| i)
            });
        match pos {
            Some(pos) => Ready::Now(h.untried.remove(pos)),
            None => {
                let first = h
                    .untried
                    .iter()
                    .filter_map(|a| budget.ip_ready_at(now, a.ip()))
                    .min();
                if let Some(t) = first {
                    *wait = Some(wait.map_or(t, |w| w.min(t)));
                }
                Ready::Wait
            }
        }
    }

    /// Starts the next queued lookup; returns the queries it sends at once, or `None` when
    /// none can start.
    fn start_lookup(&mut self, now: Instant) -> Option<u64> {
        if self.running.len() >= self.config.max_lookups {
            return None;
        }
        // Entries of info-hashes that moved on are skipped.
        while let Some(front) = self.queue.front() {
            if self.pending.get(front) == Some(&Stage::Queued) {
                break;
            }
            self.queue.pop_front();
        }
        let info_hash = *self.queue.front()?;
        let local = self.closest_local(&info_hash)?;
        let node = self.nodes.get_mut(local)?;
        let started = if self.config.scrape {
            node.get_peers_scrape(now, info_hash)
        } else {
            node.get_peers(now, info_hash)
        };
        let alpha = node.config().alpha as u64;
        match started {
            Ok(query) => {
                self.queue.pop_front();
                self.set_stage(info_hash, Some(Stage::Running));
                self.lookup_retry = None;
                self.running.push(Running {
                    local,
                    query,
                    info_hash,
                    peers: 0,
                });
                self.drain(now, local);
                Some(alpha.max(1))
            }
            Err(_) => {
                self.lookup_retry = Some(now.saturating_add(RETRY));
                None
            }
        }
    }

    /// Sends the next due `sample_infohashes` request; returns 1, or `None` when none can go.
    fn start_sample(&mut self, now: Instant) -> Option<u64> {
        let (addr, id) = self.traverse.take_due(now)?;
        if let Some(at) = self.budget.ip_ready_at(now, addr.ip()) {
            // Its address had a query less than the per-IP interval ago: come back then
            // rather than hold a request back.
            self.traverse.put_back(at, addr);
            return Some(0);
        }
        let Some(local) = self.closest_local(&id) else {
            self.traverse.put_back(now.saturating_add(RETRY), addr);
            return None;
        };
        // Mostly the node's own neighbourhood (its answer lists its closest contacts, which
        // is how the traversal reaches every node), sometimes a random region.
        self.sample_serial = self.sample_serial.wrapping_add(1);
        let target = if self.sample_serial % 4 == 0 {
            Id::random(&mut self.rng)
        } else {
            let mut bytes = Id::random(&mut self.rng).to_bytes();
            for (b, own) in bytes.iter_mut().zip(id.to_bytes()).take(4) {
                *b = own;
            }
            Id::new(bytes)
        };
        let Some(node) = self.nodes.get_mut(local) else {
            self.traverse.put_back(now.saturating_add(RETRY), addr);
            return None;
        };
        match node.sample_infohashes_from(now, addr, target) {
            Ok(query) => {
                self.budget.reserve(now, addr.ip());
                self.sample_retry = None;
                self.samples.push(SampleRequest {
                    local,
                    query,
                    addr,
                    answered: false,
                });
                self.stats.sample_queries = self.stats.sample_queries.saturating_add(1);
                Some(1)
            }
            Err(crate::error::CommandError::AddressRejected) => {
                self.traverse.on_failure(now, addr, Failure::Unsupported);
                Some(0)
            }
            Err(_) => {
                self.traverse.put_back(now.saturating_add(RETRY), addr);
                self.sample_retry = Some(now.saturating_add(RETRY));
                None
            }
        }
    }
}
