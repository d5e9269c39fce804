//! [`Sim`]: many [`Node`]s and hostile hosts on one [`Net`], stepped through virtual time.
//!
//! Each [`Sim::step`] jumps to the next deadline — the earliest of the next delivery, the next
//! node timer (from `poll_timeout`, kept in a heap and re-read only for nodes touched in the
//! step) and the next scheduled action — delivers everything due, runs due timers, then drains
//! every touched node (`poll_transmit` into the network, `poll_event` into the trace) and
//! checks its invariants. Nothing sleeps and nothing touches a socket.

use core::cmp::Reverse;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::collections::{BinaryHeap, HashMap};

use dht_proto::wire::compact::NodeInfo;
use dht_proto::{
    CommandError, CommandKind, Config, Event, Id, Instant, Node, QueryId, QueryOutcome,
};

use crate::hostile::{Behaviour, Hostile, Outgoing};
use crate::invariants::{
    Checks, QueryLedger, Violation, check_caps, check_not_spinning, check_tables,
};
use crate::latency::LatencyModel;
use crate::net::{Datagram, LinkConfig, Net, host_addr, host_of};
use crate::rng::{SimRng, hash_words};
use crate::trace::Trace;

mod crawl;
pub use crawl::{CrawlHost, CrawlLoad};

/// How a simulation is set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed of every random choice.
    pub seed: u64,
    /// Round-trip times.
    pub latency: LatencyModel,
    /// Random link faults.
    pub link: LinkConfig,
    /// The template of every honest node's configuration (`seed` and `id` are filled per
    /// node; the address policy must accept `10.0.0.0/8`).
    pub node: Config,
    /// Invariants to check.
    pub checks: Checks,
    /// Keep this many trace records as text (0: none).
    pub trace_log: usize,
    /// Keep every event of every node in [`Sim::events`] (small simulations only).
    pub keep_events: bool,
    /// Steps at one virtual instant before the run is declared a livelock.
    pub max_steps_per_instant: u32,
}

impl SimConfig {
    /// Defaults for `seed`: default latency model, no faults, `Config::local_testing`, every
    /// check.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            latency: LatencyModel::default(),
            link: LinkConfig::default(),
            node: Config::local_testing([0; 32]),
            checks: Checks::ALL,
            trace_log: 0,
            keep_events: false,
            max_steps_per_instant: 10_000,
        }
    }
}

/// A failed simulation: a broken invariant or a livelock, with the seed to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    /// The seed of the run.
    pub seed: u64,
    /// What went wrong.
    pub violation: Violation,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (seed {}; replay with DHT_SIM_SEED={})",
            self.violation, self.seed, self.seed
        )
    }
}

impl core::error::Error for SimError {}

/// An honest host: a [`Node`] and the simulator's bookkeeping for it.
#[derive(Debug)]
pub struct Honest {
    /// The node.
    pub node: Node,
    /// 0 for a host's first node, then bumped at every restart, so query ids of different lives
    /// never collide.
    pub incarnation: u32,
    /// When this life started.
    pub started: Instant,
    /// When the simulator last called `bootstrap` on it.
    pub bootstrap_started: Option<Instant>,
    /// When `Event::Bootstrapped` arrived.
    pub bootstrapped_at: Option<Instant>,
    /// Excluded from random churn (routers, lookup originators).
    pub protected: bool,
    scheduled: Instant,
}

/// What lives at a host number.
#[derive(Debug)]
pub enum Host {
    /// A running honest node.
    Honest(Box<Honest>),
    /// A hostile host.
    Hostile(Box<Hostile>, Instant),
    /// Nothing any more (a node that left or died); others may still list its id.
    Down(Id),
    /// One id of the simulation's crawler ([`Sim::add_crawler`]): its index in the crawler.
    Crawl(usize),
}

/// A random-churn policy: what happens to a node picked by [`Action::Churn`].
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnPolicy {
    /// Share of churned nodes that restart at the same address with empty state.
    pub restart: f64,
    /// Share that come back at a new address (same id, empty state).
    pub new_address: f64,
    /// The rest leave for good and a brand-new node joins instead.
    /// Time between leaving and coming back.
    pub downtime: Duration,
}

impl Default for ChurnPolicy {
    fn default() -> Self {
        Self {
            restart: 0.4,
            new_address: 0.3,
            downtime: Duration::from_secs(30),
        }
    }
}

/// Something scheduled to happen at a virtual instant.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Kill one random unprotected honest node and apply the churn policy.
    Churn,
    /// Kill this host.
    Kill(u32),
    /// Restart this host's node with empty state (same id) and bootstrap it.
    Restart(u32, Id),
    /// Start a node with this id at a new address and bootstrap it.
    Rejoin(Id),
    /// Start a brand-new node and bootstrap it.
    Join,
    /// Bootstrap this host's node through the routers.
    Bootstrap(u32),
    /// Give this host's node the hosts listed for it in [`Sim::contacts`]: imported at once,
    /// or pinged eight every 200 ms (their answers enter its routing table).
    Contact(u32),
    /// Heal the network's partitions.
    Heal,
}

/// How a node takes the contacts of its [`Action::Contact`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactHow {
    /// `Node::import_nodes`, all at once.
    Import,
    /// `Node::add_node(now, addr, None)` (a ping each), a batch at a time.
    Ping,
}

/// A query the simulator records results for.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The host that runs it.
    pub host: u32,
    /// Its id.
    pub query: QueryId,
    /// What the scenario calls it (e.g. the index of the info-hash).
    pub tag: u64,
    /// The lookup's target or info-hash.
    pub target: Option<Id>,
    /// When it started.
    pub started: Instant,
    /// The peer the scenario hopes to find.
    pub expect: Option<SocketAddr>,
    /// When the expected peer was first reported.
    pub found_expected: Option<Instant>,
    /// When the first peer was reported.
    pub first_peer: Option<Instant>,
    /// Distinct peers reported.
    pub peers: usize,
    /// When it finished, and how.
    pub finished: Option<(Instant, QueryOutcome)>,
}

/// Counters of the simulator itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Steps taken.
    pub steps: u64,
    /// Datagrams handed to honest nodes.
    pub to_honest: u64,
    /// Datagrams handed to hostile hosts.
    pub to_hostile: u64,
    /// Datagrams that arrived at a down host.
    pub to_down: u64,
    /// `handle_timeout` calls.
    pub timeouts: u64,
    /// Events drained.
    pub events: u64,
    /// Churn actions done.
    pub churned: u64,
    /// Bytes sent by honest nodes.
    pub honest_bytes: u64,
    /// Datagrams sent by honest nodes.
    pub honest_datagrams: u64,
}

/// The simulation.
#[derive(Debug)]
pub struct Sim {
    /// Virtual time.
    pub now: Instant,
    /// The network.
    pub net: Net,
    /// The configuration.
    pub config: SimConfig,
    hosts: Vec<Host>,
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    actions: BinaryHeap<Reverse<(Instant, u64)>>,
    action_list: HashMap<u64, Action>,
    action_seq: u64,
    touched: Vec<u32>,
    marks: Vec<u8>,
    /// Random source of the scenario (kept apart from the network's).
    pub rng: SimRng,
    /// The trace digest.
    pub trace: Trace,
    ledger: QueryLedger,
    watched: HashMap<(u32, u32, u64), Watched>,
    /// Watched queries that finished, in finishing order.
    pub finished: Vec<Watched>,
    /// Every event, when `keep_events` is set.
    pub events: Vec<(Instant, u32, Event)>,
    /// Bootstrap times of nodes started by [`Sim::join`] and churn (time from start to
    /// `Bootstrapped`).
    pub bootstrap_times: Vec<(u32, Duration)>,
    /// Hosts that bootstrap into the network when they (re)start.
    pub routers: Vec<u32>,
    /// The churn policy.
    pub churn: ChurnPolicy,
    /// Restarts per host (a node's incarnation number).
    lives: HashMap<u32, u32>,
    /// Hosts each node imports or pings at its [`Action::Contact`].
    pub contacts: HashMap<u32, (ContactHow, Vec<u32>)>,
    /// Counters.
    pub counters: SimCounters,
    same_instant: u32,
    buf: Vec<u8>,
    scratch_events: Vec<Event>,
    scratch_out: Vec<Outgoing>,
    crawl: Option<Box<CrawlHost>>,
}

/// Contacts a node pings per [`Action::Contact`], and the pause between batches: a burst of
/// a hundred pings would grow the node's queues (and memory) for good.
const CONTACT_BATCH: usize = 8;
const CONTACT_PACE: Duration = Duration::from_millis(200);

const MARK_TOUCHED: u8 = 1;
const MARK_TIMED: u8 = 2;

impl Sim {
    /// An empty simulation at virtual time 0.
    pub fn new(config: SimConfig) -> Self {
        let mut rng = SimRng::new(config.seed);
        let net_seed = rng.next_u64();
        let trace = if config.trace_log > 0 {
            Trace::with_log(config.trace_log)
        } else {
            Trace::new()
        };
        let buf = vec![0u8; config.node.limits.max_datagram.max(1500)];
        Self {
            now: Instant::ZERO,
            net: Net::new(net_seed, config.latency.clone(), config.link.clone()),
            config,
            hosts: Vec::new(),
            timers: BinaryHeap::new(),
            actions: BinaryHeap::new(),
            action_list: HashMap::new(),
            action_seq: 0,
            touched: Vec::new(),
            marks: Vec::new(),
            rng,
            trace,
            ledger: QueryLedger::new(),
            watched: HashMap::new(),
            finished: Vec::new(),
            events: Vec::new(),
            bootstrap_times: Vec::new(),
            routers: Vec::new(),
            churn: ChurnPolicy::default(),
            contacts: HashMap::new(),
            lives: HashMap::new(),
            counters: SimCounters::default(),
            same_instant: 0,
            buf,
            scratch_events: Vec::new(),
            scratch_out: Vec::new(),
            crawl: None,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    // ---- Hosts ---------------------------------------------------------------------------

    /// Host numbers allocated so far (`0..hosts()`).
    pub fn hosts(&self) -> u32 {
        self.hosts.len() as u32
    }

    /// What lives at `h`.
    pub fn host(&self, h: u32) -> Option<&Host> {
        self.hosts.get(h as usize)
    }

    /// The honest node at `h`, if one runs there.
    pub fn node(&self, h: u32) -> Option<&Node> {
        match self.hosts.get(h as usize) {
            Some(Host::Honest(x)) => Some(&x.node),
            _ => None,
        }
    }

    /// The honest host at `h`.
    pub fn honest(&self, h: u32) -> Option<&Honest> {
        match self.hosts.get(h as usize) {
            Some(Host::Honest(x)) => Some(x),
            _ => None,
        }
    }

    /// The honest node at `h`, mutably; `h` is drained at the next step.
    pub fn node_mut(&mut self, h: u32) -> Option<&mut Node> {
        self.touch(h);
        match self.hosts.get_mut(h as usize) {
            Some(Host::Honest(x)) => Some(&mut x.node),
            _ => None,
        }
    }

    /// The hostile host at `h`.
    pub fn hostile(&self, h: u32) -> Option<&Hostile> {
        match self.hosts.get(h as usize) {
            Some(Host::Hostile(x, _)) => Some(x),
            _ => None,
        }
    }

    /// The hostile host at `h`, to steer it.
    pub fn hostile_mut(&mut self, h: u32) -> Option<&mut Hostile> {
        match self.hosts.get_mut(h as usize)? {
            Host::Hostile(x, _) => Some(x),
            _ => None,
        }
    }

    /// Hosts running an honest node.
    pub fn honest_hosts(&self) -> impl Iterator<Item = u32> + '_ {
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| matches!(h, Host::Honest(_)))
            .map(|(i, _)| i as u32)
    }

    /// Number of running honest nodes.
    pub fn honest_count(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| matches!(h, Host::Honest(_)))
            .count()
    }

    /// Marks `h` protected from random churn (or not).
    pub fn protect(&mut self, h: u32, protected: bool) {
        if let Some(Host::Honest(x)) = self.hosts.get_mut(h as usize) {
            x.protected = protected;
        }
    }

    /// A node configuration from the template with a fresh seed.
    pub fn node_config(&mut self, id: Option<Id>) -> Config {
        let mut c = self.config.node.clone();
        c.seed = self.rng.seed32();
        c.id = id;
        c
    }

    fn touch(&mut self, h: u32) {
        let i = h as usize;
        if self.marks.len() <= i {
            self.marks.resize(i + 1, 0);
        }
        if let Some(m) = self.marks.get_mut(i) {
            if *m & MARK_TOUCHED == 0 {
                *m |= MARK_TOUCHED;
                self.touched.push(h);
            }
        }
    }

    fn new_host(&mut self, host: Host) -> u32 {
        let h = self.hosts.len() as u32;
        self.hosts.push(host);
        h
    }

    fn honest_host(&self, config: Config) -> Box<Honest> {
        let node = Node::new(config, self.now).unwrap_or_else(|e| {
            panic!("invalid node configuration: {e}");
        });
        Box::new(Honest {
            node,
            incarnation: 0,
            started: self.now,
            bootstrap_started: None,
            bootstrapped_at: None,
            protected: false,
            scheduled: Instant::MAX,
        })
    }

    /// Starts an honest node at a new host; returns its host number.
    pub fn add_node(&mut self, id: Option<Id>) -> u32 {
        let config = self.node_config(id);
        let honest = self.honest_host(config);
        let h = self.new_host(Host::Honest(honest));
        self.touch(h);
        h
    }

    /// Starts `n` honest nodes; returns the first host number.
    pub fn add_nodes(&mut self, n: u32) -> u32 {
        let first = self.hosts();
        for _ in 0..n {
            self.add_node(None);
        }
        first
    }

    /// Starts a hostile host with a random id.
    pub fn add_hostile(&mut self, behaviour: Behaviour) -> u32 {
        let id = self.rng.bytes20();
        let seed = self.rng.next_u64();
        let h = self.hosts();
        let hostile = Hostile::new(behaviour, h, id, seed);
        let first_tick = hostile
            .tick_interval()
            .map_or(Instant::MAX, |d| self.now + d);
        self.new_host(Host::Hostile(Box::new(hostile), first_tick));
        if first_tick != Instant::MAX {
            self.timers.push(Reverse((first_tick, h)));
        }
        h
    }

    /// The id at host `h`: a node's, a hostile host's claimed id, or a dead node's last id.
    pub fn id_of(&self, h: u32) -> Option<Id> {
        match self.hosts.get(h as usize)? {
            Host::Honest(x) => Some(x.node.id()),
            Host::Hostile(x, _) => Some(Id::new(x.id)),
            Host::Down(id) => Some(*id),
            Host::Crawl(local) => self.crawl.as_ref()?.crawler.node(*local).map(Node::id),
        }
    }

    /// Kills host `h`: its node is dropped, datagrams to it vanish, others keep listing it.
    pub fn kill(&mut self, h: u32) {
        if let Some(slot) = self.hosts.get_mut(h as usize) {
            if let Host::Honest(x) = slot {
                let id = x.node.id();
                self.watched.retain(|k, _| k.0 != h);
                *slot = Host::Down(id);
            } else if let Host::Hostile(x, _) = slot {
                *slot = Host::Down(Id::new(x.id));
            }
        }
        self.trace.note(self.now, &format!("kill h{h}"));
    }

    /// Random live routers to bootstrap from.
    fn bootstrap_seeds(&mut self, exclude: u32) -> Vec<SocketAddr> {
        let mut seeds: Vec<SocketAddr> = self
            .routers
            .iter()
            .copied()
            .filter(|&r| r != exclude && self.node(r).is_some())
            .map(host_addr)
            .collect();
        if seeds.is_empty() {
            // No router alive: a random live node stands in.
            for _ in 0..64 {
                let r = self.rng.below(u64::from(self.hosts())) as u32;
                if r != exclude && self.node(r).is_some() {
                    seeds.push(host_addr(r));
                    break;
                }
            }
        }
        seeds
    }

    /// Starts a brand-new node, bootstraps it through the routers, and records how long it
    /// takes to become bootstrapped.
    pub fn join(&mut self, id: Option<Id>) -> u32 {
        let h = self.add_node(id);
        self.start_bootstrap(h);
        h
    }

    /// Bootstraps the node at `h` through the routers (or a random live node).
    pub fn start_bootstrap(&mut self, h: u32) {
        let seeds = self.bootstrap_seeds(h);
        let now = self.now;
        self.touch(h);
        if let Some(Host::Honest(x)) = self.hosts.get_mut(h as usize) {
            x.bootstrap_started.get_or_insert(now);
            let _ = x.node.bootstrap(now, seeds);
        }
    }

    /// Has hostile host `h` introduce itself: a `find_node` for its own id to `count` random
    /// hosts, so that honest nodes see it and may list it.
    pub fn hostile_hello(&mut self, h: u32, count: usize) {
        let n = u64::from(self.hosts());
        let targets: Vec<SocketAddr> = (0..count)
            .map(|_| host_addr(self.rng.below(n) as u32))
            .filter(|a| *a != host_addr(h))
            .collect();
        let mut out = core::mem::take(&mut self.scratch_out);
        if let Some(Host::Hostile(x, _)) = self.hosts.get_mut(h as usize) {
            x.hello(&targets, &mut out);
        }
        self.send_hostile(h, &mut out);
        self.scratch_out = out;
    }

    /// Restarts host `h` with an empty node of id `id`, and bootstraps it.
    pub fn restart(&mut self, h: u32, id: Id) {
        let config = self.node_config(Some(id));
        let mut honest = self.honest_host(config);
        let lives = self.lives.entry(h).or_insert(0);
        *lives += 1;
        honest.incarnation = *lives;
        if let Some(slot) = self.hosts.get_mut(h as usize) {
            *slot = Host::Honest(honest);
        }
        self.trace.note(self.now, &format!("restart h{h}"));
        self.touch(h);
        self.start_bootstrap(h);
    }

    // ---- Commands on watched queries -------------------------------------------------------

    fn watch(
        &mut self,
        h: u32,
        q: QueryId,
        tag: u64,
        target: Option<Id>,
        expect: Option<SocketAddr>,
    ) {
        let inc = self.honest(h).map_or(0, |x| x.incarnation);
        self.watched.insert(
            (h, inc, q.as_u64()),
            Watched {
                host: h,
                query: q,
                tag,
                target,
                started: self.now,
                expect,
                found_expected: None,
                first_peer: None,
                peers: 0,
                finished: None,
            },
        );
    }

    /// Starts a watched `get_peers` on `h`; `expect` is the peer the scenario hopes to find.
    ///
    /// # Errors
    ///
    /// The node's [`CommandError`]; [`CommandError::UnknownQuery`] when no node runs at `h`.
    pub fn get_peers(
        &mut self,
        h: u32,
        info_hash: Id,
        tag: u64,
        expect: Option<SocketAddr>,
    ) -> Result<QueryId, CommandError> {
        let now = self.now;
        let q = self
            .node_mut(h)
            .ok_or(CommandError::UnknownQuery)?
            .get_peers(now, info_hash)?;
        self.watch(h, q, tag, Some(info_hash), expect);
        Ok(q)
    }

    /// Starts a watched announce on `h`.
    ///
    /// # Errors
    ///
    /// As [`Sim::get_peers`].
    pub fn announce(
        &mut self,
        h: u32,
        info_hash: Id,
        port: Option<u16>,
        tag: u64,
    ) -> Result<QueryId, CommandError> {
        let now = self.now;
        let q = self
            .node_mut(h)
            .ok_or(CommandError::UnknownQuery)?
            .announce_peer(now, info_hash, port)?;
        self.watch(h, q, tag, Some(info_hash), None);
        Ok(q)
    }

    /// Starts a watched `find_node` on `h`.
    ///
    /// # Errors
    ///
    /// As [`Sim::get_peers`].
    pub fn find_node(&mut self, h: u32, target: Id, tag: u64) -> Result<QueryId, CommandError> {
        let now = self.now;
        let q = self
            .node_mut(h)
            .ok_or(CommandError::UnknownQuery)?
            .find_node(now, target)?;
        self.watch(h, q, tag, Some(target), None);
        Ok(q)
    }

    /// Watched queries still running.
    pub fn watched_running(&self) -> usize {
        self.watched.len()
    }

    // ---- Scheduled actions ---------------------------------------------------------------

    /// Schedules `action` at `at`.
    pub fn schedule(&mut self, at: Instant, action: Action) {
        self.action_seq += 1;
        self.action_list.insert(self.action_seq, action);
        self.actions.push(Reverse((at, self.action_seq)));
    }

    /// Schedules `count` [`Action::Churn`]s at uniformly random instants in `[from, to)`.
    pub fn schedule_churn(&mut self, from: Instant, to: Instant, count: usize) {
        let span = to.as_millis().saturating_sub(from.as_millis()).max(1);
        for _ in 0..count {
            let at = Instant::from_millis(from.as_millis() + self.rng.below(span));
            self.schedule(at, Action::Churn);
        }
    }

    fn run_action(&mut self, action: Action) {
        match action {
            Action::Kill(h) => self.kill(h),
            Action::Restart(h, id) => self.restart(h, id),
            Action::Rejoin(id) => {
                self.join(Some(id));
            }
            Action::Join => {
                self.join(None);
            }
            Action::Bootstrap(h) => self.start_bootstrap(h),
            Action::Contact(h) => {
                let Some((how, mut contacts)) = self.contacts.remove(&h) else {
                    return;
                };
                let now = self.now;
                match how {
                    ContactHow::Import => {
                        let infos: Vec<NodeInfo> = contacts
                            .iter()
                            .filter_map(|&c| {
                                self.id_of(c).map(|id| NodeInfo {
                                    id,
                                    addr: host_addr(c),
                                })
                            })
                            .collect();
                        if let Some(node) = self.node_mut(h) {
                            node.import_nodes(now, infos);
                        }
                    }
                    ContactHow::Ping => {
                        let batch: Vec<u32> = contacts
                            .drain(contacts.len().saturating_sub(CONTACT_BATCH)..)
                            .collect();
                        if let Some(node) = self.node_mut(h) {
                            for c in batch {
                                let _ = node.add_node(now, host_addr(c), None);
                            }
                        }
                        if !contacts.is_empty() {
                            self.contacts.insert(h, (how, contacts));
                            self.schedule(now + CONTACT_PACE, Action::Contact(h));
                        }
                    }
                }
            }
            Action::Heal => self.net.heal(self.now),
            Action::Churn => {
                let n = self.hosts();
                for _ in 0..256 {
                    let h = self.rng.below(u64::from(n)) as u32;
                    let Some(x) = self.honest(h) else { continue };
                    if x.protected {
                        continue;
                    }
                    let id = x.node.id();
                    self.counters.churned += 1;
                    self.kill(h);
                    let back = self.now + self.churn.downtime;
                    let r = self.rng.unit();
                    if r < self.churn.restart {
                        self.schedule(back, Action::Restart(h, id));
                    } else if r < self.churn.restart + self.churn.new_address {
                        self.schedule(back, Action::Rejoin(id));
                    } else {
                        self.schedule(back, Action::Join);
                    }
                    break;
                }
            }
        }
    }

    // ---- Stepping ------------------------------------------------------------------------

    fn peek_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, h))) = self.timers.peek() {
            let valid = match self.hosts.get(h as usize) {
                Some(Host::Honest(x)) => x.scheduled == t,
                Some(Host::Hostile(_, at)) => *at == t,
                Some(Host::Crawl(_)) => self.crawl.as_ref().is_some_and(|c| c.scheduled == t),
                _ => false,
            };
            if valid {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// The next instant something happens.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let a = self.net.next_delivery();
        let b = self.peek_timer();
        let c = self.actions.peek().map(|r| r.0.0);
        [a, b, c].into_iter().flatten().min()
    }

    fn fail(&self, host: u32, what: String) -> SimError {
        SimError {
            seed: self.config.seed,
            violation: Violation {
                now: self.now,
                host,
                what,
            },
        }
    }

    /// One step: flush pending commands, jump to the next deadline, deliver, run timers and
    /// actions, drain, check. Returns `false` when nothing is left to happen.
    ///
    /// # Errors
    ///
    /// A broken invariant or a livelock (too many steps at one instant).
    pub fn step(&mut self) -> Result<bool, SimError> {
        self.flush()?;
        let Some(next) = self.next_deadline() else {
            return Ok(false);
        };
        self.advance_to(next)?;
        self.process_due()?;
        Ok(true)
    }

    fn advance_to(&mut self, next: Instant) -> Result<(), SimError> {
        if next > self.now {
            self.now = next;
            self.same_instant = 0;
        } else {
            self.same_instant += 1;
            if self.same_instant > self.config.max_steps_per_instant {
                return Err(self.fail(
                    u32::MAX,
                    format!(
                        "livelock: {} steps at {} without time advancing",
                        self.same_instant, self.now
                    ),
                ));
            }
        }
        Ok(())
    }

    fn process_due(&mut self) -> Result<(), SimError> {
        self.counters.steps += 1;
        let now = self.now;
        while let Some(&Reverse((t, seq))) = self.actions.peek() {
            if t > now {
                break;
            }
            self.actions.pop();
            if let Some(a) = self.action_list.remove(&seq) {
                self.run_action(a);
            }
        }
        while let Some(d) = self.net.pop_due(now) {
            self.deliver(d);
        }
        while let Some(&Reverse((t, h))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            self.fire(h, t);
        }
        self.flush()
    }

    fn deliver(&mut self, d: Datagram) {
        let now = self.now;
        match self.hosts.get_mut(d.receiver as usize) {
            Some(Host::Honest(x)) => {
                let _ = x.node.handle_datagram(now, d.from, &d.data);
                self.counters.to_honest += 1;
                self.touch(d.receiver);
            }
            Some(Host::Hostile(x, _)) => {
                self.counters.to_hostile += 1;
                let mut out = core::mem::take(&mut self.scratch_out);
                x.on_datagram(now, d.from, &d.data, &mut out);
                self.send_hostile(d.receiver, &mut out);
                self.scratch_out = out;
            }
            Some(Host::Crawl(local)) => {
                let local = *local;
                self.crawl_input(local, d.from, &d.data);
            }
            _ => self.counters.to_down += 1,
        }
        self.net.recycle(d.data);
    }

    fn send_hostile(&mut self, sender: u32, out: &mut Vec<Outgoing>) {
        for o in out.drain(..) {
            self.net.send(self.now, sender, o.from, o.to, o.data);
        }
    }

    fn fire(&mut self, h: u32, t: Instant) {
        let now = self.now;
        let n = self.hosts();
        match self.hosts.get_mut(h as usize) {
            Some(Host::Honest(x)) if x.scheduled == t => {
                x.scheduled = Instant::MAX;
                x.node.handle_timeout(now);
                self.counters.timeouts += 1;
                self.touch(h);
                if let Some(m) = self.marks.get_mut(h as usize) {
                    *m |= MARK_TIMED;
                }
            }
            Some(Host::Crawl(_)) => self.crawl_timeout(t),
            Some(Host::Hostile(_, at)) if *at == t => {
                let targets: Vec<SocketAddr> = (0..4)
                    .map(|_| host_addr(self.rng.below(u64::from(n)) as u32))
                    .collect();
                let mut out = core::mem::take(&mut self.scratch_out);
                if let Some(Host::Hostile(x, at)) = self.hosts.get_mut(h as usize) {
                    x.on_tick(now, &targets, &mut out);
                    *at = x.tick_interval().map_or(Instant::MAX, |d| now + d);
                    if *at != Instant::MAX {
                        self.timers.push(Reverse((*at, h)));
                    }
                }
                self.send_hostile(h, &mut out);
                self.scratch_out = out;
            }
            _ => {}
        }
    }

    /// Drains every touched node: transmits into the network, events into the trace; checks
    /// invariants; reschedules timers.
    fn flush(&mut self) -> Result<(), SimError> {
        let mut i = 0;
        while let Some(&h) = self.touched.get(i) {
            i += 1;
            let mark = self.marks.get(h as usize).copied().unwrap_or(0);
            if let Some(m) = self.marks.get_mut(h as usize) {
                *m = 0;
            }
            self.flush_host(h, mark & MARK_TIMED != 0)?;
        }
        self.touched.clear();
        Ok(())
    }

    fn flush_host(&mut self, h: u32, timed: bool) -> Result<(), SimError> {
        let now = self.now;
        let checks = self.config.checks;
        if let Some(Host::Crawl(_)) = self.hosts.get(h as usize) {
            self.crawl_flush();
            return Ok(());
        }
        let Some(Host::Honest(x)) = self.hosts.get_mut(h as usize) else {
            return Ok(());
        };
        if checks.caps {
            if let Err(what) = check_caps(&x.node) {
                return Err(self.fail(h, what));
            }
        }
        if checks.tables {
            if let Err(what) = check_tables(&x.node) {
                return Err(self.fail(h, what));
            }
        }
        let from = host_addr(h);
        let before = (x.node.stats().datagrams_sent, x.node.stats().bytes_sent);
        let (mut count, mut bytes) = (0u64, 0u64);
        while let Some(t) = x.node.poll_transmit(now, &mut self.buf) {
            let Some(data) = self.buf.get(..t.len) else {
                break;
            };
            count += 1;
            bytes += t.len as u64;
            self.trace.transmit(now, h, &from, &t.to, data);
            let mut packet = self.net.buffer();
            packet.extend_from_slice(data);
            self.net.send(now, h, from, t.to, packet);
        }
        self.counters.honest_datagrams += count;
        self.counters.honest_bytes += bytes;
        if checks.counters {
            let after = (x.node.stats().datagrams_sent, x.node.stats().bytes_sent);
            if after != (before.0 + count, before.1 + bytes) {
                let what = format!(
                    "stats: datagrams/bytes sent went {before:?} -> {after:?} but {count} \
                     datagrams of {bytes} bytes were polled"
                );
                return Err(self.fail(h, what));
            }
        }
        let mut events = core::mem::take(&mut self.scratch_events);
        while let Some(e) = x.node.poll_event() {
            events.push(e);
        }
        let timer = x.node.next_timer();
        let next = timer.map_or(Instant::MAX, |(t, _)| t);
        if checks.spin && timed {
            if let Err(what) = check_not_spinning(timer, now) {
                self.scratch_events = events;
                return Err(self.fail(h, what));
            }
        }
        if next != x.scheduled {
            x.scheduled = next;
            if next != Instant::MAX {
                self.timers.push(Reverse((next, h)));
            }
        }
        let result = events.drain(..).try_for_each(|e| self.on_event(h, e));
        self.scratch_events = events;
        result
    }

    fn on_event(&mut self, h: u32, e: Event) -> Result<(), SimError> {
        let now = self.now;
        self.counters.events += 1;
        self.trace.event(now, h, &e);
        let Some(Host::Honest(x)) = self.hosts.get_mut(h as usize) else {
            return Ok(());
        };
        let inc = x.incarnation;
        match &e {
            Event::Bootstrapped { .. } if x.bootstrapped_at.is_none() => {
                x.bootstrapped_at = Some(now);
                let since = x.bootstrap_started.unwrap_or(x.started);
                let took = now.saturating_duration_since(since);
                self.bootstrap_times.push((h, took));
            }
            Event::PeersFound { query, peers } => {
                if let Some(w) = self.watched.get_mut(&(h, inc, query.as_u64())) {
                    w.first_peer.get_or_insert(now);
                    w.peers += peers.len();
                    if w.found_expected.is_none() && w.expect.is_some_and(|p| peers.contains(&p)) {
                        w.found_expected = Some(now);
                    }
                }
            }
            Event::QueryFinished { query, outcome } => {
                let key = (h, inc, query.as_u64());
                let watched = self.watched.remove(&key);
                if self.config.checks.every_query || watched.is_some() {
                    if let Err(what) = self.ledger.finished(h, inc, *query, &x.node) {
                        return Err(self.fail(h, what));
                    }
                }
                if let Some(mut w) = watched {
                    w.finished = Some((now, outcome.clone()));
                    self.finished.push(w);
                }
            }
            _ => {}
        }
        if self.config.keep_events {
            self.events.push((now, h, e));
        }
        Ok(())
    }

    // ---- Running -------------------------------------------------------------------------

    /// Steps until virtual time reaches `now + d` (events at exactly that instant included).
    ///
    /// # Errors
    ///
    /// As [`Sim::step`].
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        let end = self.now + d;
        self.run_until_time(end)
    }

    /// Steps until virtual time reaches `end`.
    ///
    /// # Errors
    ///
    /// As [`Sim::step`].
    pub fn run_until_time(&mut self, end: Instant) -> Result<(), SimError> {
        loop {
            self.flush()?;
            match self.next_deadline() {
                Some(next) if next <= end => {
                    self.advance_to(next)?;
                    self.process_due()?;
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
        Ok(())
    }

    /// Steps until `done(self)` holds, failing if virtual time passes `deadline` first.
    ///
    /// # Errors
    ///
    /// As [`Sim::step`], and a violation naming `what` when the deadline passes.
    pub fn run_until(
        &mut self,
        what: &str,
        deadline: Instant,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<(), SimError> {
        loop {
            self.flush()?;
            if done(self) {
                return Ok(());
            }
            match self.next_deadline() {
                Some(next) if next <= deadline => {
                    self.advance_to(next)?;
                    self.process_due()?;
                }
                _ => {
                    self.now = self.now.max(deadline);
                    return Err(self.fail(u32::MAX, format!("{what}: not done by {deadline}")));
                }
            }
        }
    }

    /// Runs until every watched query finished, within `limit` of virtual time (a lookup that
    /// never ends is a bug).
    ///
    /// # Errors
    ///
    /// As [`Sim::run_until`].
    pub fn run_until_watched_done(&mut self, limit: Duration) -> Result<(), SimError> {
        let deadline = self.now + limit;
        self.run_until("watched queries finished", deadline, |s| {
            s.watched.is_empty()
        })
    }

    /// Bytes of memory in use by the whole process (from `/proc/self/statm`), if readable.
    pub fn process_memory() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(resident * 4096)
    }

    /// CPU time (user + system) used by the process so far (from `/proc/self/stat`), if
    /// readable. On a shared machine it measures the simulation better than wall time.
    pub fn process_cpu_time() -> Option<Duration> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let mut fields = rest.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        // Clock ticks of 1/100 s on Linux.
        Some(Duration::from_millis((utime + stime) * 10))
    }

    /// The stable RTT between two hosts.
    pub fn rtt(&self, a: u32, b: u32) -> Duration {
        self.net.rtt(a, b)
    }

    /// Seed for something named `tag` in this run.
    pub fn derive(&self, tag: u64) -> u64 {
        hash_words(&[self.config.seed, tag])
    }
}

/// The honest host behind `addr`, if the address belongs to the simulation.
pub fn host_at(sim: &Sim, addr: &SocketAddr) -> Option<u32> {
    host_of(addr).filter(|h| *h < sim.hosts())
}

/// Whether an outcome's command kind is a lookup.
pub fn is_lookup(kind: CommandKind) -> bool {
    !matches!(kind, CommandKind::Ping | CommandKind::Custom)
}
