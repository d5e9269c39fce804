//! [`Testnet`]: N in-memory nodes on a deterministic virtual network, for applications' own
//! tests.
//!
//! No socket, no clock, no OS randomness: datagrams are queued and delivered after a fixed
//! latency, virtual time jumps from one delivery or deadline to the next, and every node's seed
//! derives from the testnet's seed, so a run is a pure function of its inputs and finishes in
//! milliseconds.
//!
//! ```
//! use dht_proto::Id;
//! use dht_proto::testnet::Testnet;
//!
//! let mut net = Testnet::new(20); // 20 nodes, all bootstrapped
//! let info_hash = Id::new([7; 20]);
//! let q = net.command(3, |node, now| node.announce_peer(now, info_hash, Some(6881)))?;
//! assert!(net.run_until_finished(3, q).unwrap().announced > 0);
//!
//! let q = net.command(15, |node, now| node.get_peers(now, info_hash))?;
//! net.run_until_finished(15, q);
//! let announcer = net.addr(3);
//! assert!(net.peers_found(15, q).iter().any(|p| p.ip() == announcer.ip() && p.port() == 6881));
//! # Ok::<(), dht_proto::CommandError>(())
//! ```

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use crate::config::Config;
use crate::event::{Event, QueryId, QueryOutcome};
use crate::node::Node;
use crate::time::Instant;

/// Events kept for [`Testnet::take_events`]; older ones are dropped past this.
pub const MAX_KEPT_EVENTS: usize = 100_000;

/// Datagrams in flight at once; more are dropped (and counted), as a congested link would.
pub const MAX_IN_FLIGHT: usize = 1_000_000;

/// Virtual time [`Testnet::run_until_finished`] waits at most.
pub const QUERY_LIMIT: Duration = Duration::from_secs(600);

/// N nodes on a virtual network (see the [module](self) docs).
#[derive(Debug)]
pub struct Testnet {
    nodes: Vec<Node>,
    alive: Vec<bool>,
    now: Instant,
    latency: Duration,
    /// (delivery time, from, to, datagram), in delivery order (the latency is constant).
    queue: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    events: VecDeque<(usize, Event)>,
    dropped_datagrams: u64,
    dropped_events: u64,
    buf: Vec<u8>,
}

/// The address of node `i`: 10.0.0.0 + i + 1, port 6881 (one address per node).
pub fn addr(i: usize) -> SocketAddr {
    let n = u32::try_from(i).unwrap_or(u32::MAX - 1).saturating_add(1);
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 | (n & 0x00ff_ffff))),
        6881,
    )
}

/// Node `i`'s 32-byte seed for testnet `seed`.
fn node_seed(seed: u64, i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    let (a, b) = s.split_at_mut(8);
    a.copy_from_slice(&seed.to_le_bytes());
    if let Some(b) = b.get_mut(..8) {
        b.copy_from_slice(&(i as u64).wrapping_add(1).to_le_bytes());
    }
    s
}

impl Testnet {
    /// `n` nodes with [`Config::local_testing`], every one bootstrapped through node 0.
    pub fn new(n: usize) -> Self {
        Self::with_config(n, 0, |_, seed| Config::local_testing(seed))
    }

    /// `n` nodes whose configuration `config(i, seed)` gives (keep `seed` in it: it makes node
    /// `i` reproducible), every one bootstrapped through node 0. `seed` varies the whole
    /// network: node ids, transaction ids, tokens.
    ///
    /// # Panics
    ///
    /// If a configuration is invalid (a test setup error).
    #[allow(clippy::panic)]
    pub fn with_config(n: usize, seed: u64, config: impl Fn(usize, [u8; 32]) -> Config) -> Self {
        let now = Instant::from_secs(1);
        let nodes: Vec<Node> = (0..n)
            .map(|i| match Node::new(config(i, node_seed(seed, i)), now) {
                Ok(node) => node,
                Err(e) => panic!("testnet node {i}: {e}"),
            })
            .collect();
        let mut net = Self {
            alive: vec![true; nodes.len()],
            nodes,
            now,
            latency: Duration::from_millis(10),
            queue: VecDeque::new(),
            events: VecDeque::new(),
            dropped_datagrams: 0,
            dropped_events: 0,
            buf: vec![0; 1500],
        };
        net.bootstrap_all();
        net
    }

    /// Every node but the first joins through node 0; a second round lets the early joiners
    /// learn the later ones. Runs until every bootstrap has finished.
    fn bootstrap_all(&mut self) {
        let seed = addr(0);
        for _round in 0..2 {
            let mut running = Vec::new();
            for i in 1..self.nodes.len() {
                if let Ok(q) = self.command(i, |node, now| node.bootstrap(now, [seed])) {
                    running.push((i, q));
                }
            }
            for (i, q) in running {
                self.run_until_finished(i, q);
            }
        }
        self.events.clear();
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the testnet has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        addr(i)
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i)
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Datagrams dropped because [`MAX_IN_FLIGHT`] were queued, and events dropped past
    /// [`MAX_KEPT_EVENTS`].
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_datagrams, self.dropped_events)
    }

    /// Runs a command on node `i` at the current time (`net.command(0, |node, now|
    /// node.find_node(now, target))`).
    ///
    /// # Panics
    ///
    /// If `i` is not a node of the testnet.
    #[allow(clippy::panic)]
    pub fn command<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(i) else {
            panic!("no node {i} in a testnet of {}", self.nodes.len())
        };
        let r = f(node, now);
        self.drain();
        r
    }

    /// Stops delivering datagrams to node `i` (and from it: it goes silent), or resumes.
    pub fn set_alive(&mut self, i: usize, alive: bool) {
        if let Some(a) = self.alive.get_mut(i) {
            *a = alive;
        }
    }

    /// Collects every node's datagrams and events.
    fn drain(&mut self) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let from = addr(i);
            while let Some(t) = node.poll_transmit(self.now, &mut self.buf) {
                if self.queue.len() >= MAX_IN_FLIGHT {
                    self.dropped_datagrams += 1;
                    continue;
                }
                let data = self.buf.get(..t.len).unwrap_or_default().to_vec();
                self.queue
                    .push_back((self.now + self.latency, from, t.to, data));
            }
            while let Some(e) = node.poll_event() {
                if self.events.len() >= MAX_KEPT_EVENTS {
                    self.events.pop_front();
                    self.dropped_events += 1;
                }
                self.events.push_back((i, e));
            }
        }
    }

    /// Advances to the next delivery or deadline and handles it. Returns false when nothing is
    /// left to happen.
    pub fn step(&mut self) -> bool {
        self.drain();
        let next_delivery = self.queue.front().map(|q| q.0);
        let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
        let Some(next) = [next_delivery, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        while self.queue.front().is_some_and(|q| q.0 <= self.now) {
            let Some((_, from, to, data)) = self.queue.pop_front() else {
                break;
            };
            let Some(j) = self.index_of(&to) else {
                continue;
            };
            let alive = |k: usize| self.alive.get(k).copied().unwrap_or(false);
            if alive(j) && self.index_of(&from).is_none_or(alive) {
                if let Some(node) = self.nodes.get_mut(j) {
                    let _ = node.handle_datagram(self.now, from, &data);
                }
            }
        }
        for node in &mut self.nodes {
            if node.poll_timeout().is_some_and(|t| t <= self.now) {
                node.handle_timeout(self.now);
            }
        }
        self.drain();
        true
    }

    fn index_of(&self, a: &SocketAddr) -> Option<usize> {
        let IpAddr::V4(ip) = a.ip() else {
            return None;
        };
        let n = u32::from(ip).checked_sub(0x0a00_0000)?.checked_sub(1)?;
        let i = usize::try_from(n).ok()?;
        (i < self.nodes.len() && a.port() == 6881).then_some(i)
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let next = [
                self.queue.front().map(|q| q.0),
                self.nodes.iter().filter_map(Node::poll_timeout).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => {
                    self.now = end;
                    break;
                }
            }
        }
    }

    /// Runs until node `i`'s query `q` ends and returns its outcome; `None` if it has not ended
    /// after [`QUERY_LIMIT`] of virtual time (or ended before this call and its event was
    /// taken).
    pub fn run_until_finished(&mut self, i: usize, q: QueryId) -> Option<QueryOutcome> {
        let end = self.now + QUERY_LIMIT;
        loop {
            if let Some(o) = self.finished(i, q) {
                return Some(o);
            }
            if self.now >= end || !self.step() {
                return self.finished(i, q);
            }
        }
    }

    fn finished(&self, i: usize, q: QueryId) -> Option<QueryOutcome> {
        self.events.iter().find_map(|(n, e)| match e {
            Event::QueryFinished { query, outcome } if *n == i && *query == q => {
                Some(outcome.clone())
            }
            _ => None,
        })
    }

    /// Every peer node `i`'s query `q` has reported so far ([`Event::PeersFound`]).
    pub fn peers_found(&self, i: usize, q: QueryId) -> Vec<SocketAddr> {
        self.events
            .iter()
            .filter_map(|(n, e)| match e {
                Event::PeersFound { query, peers } if *n == i && *query == q => Some(peers),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// Takes the events of every node so far, with the index of the node that emitted each.
    pub fn take_events(&mut self) -> Vec<(usize, Event)> {
        self.events.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn lookups_and_determinism() {
        let run = || {
            let mut net = Testnet::with_config(30, 5, |_, s| Config::local_testing(s));
            assert!((0..30).all(|i| net.node(i).unwrap().table_len() > 0));
            let target = net.node(17).unwrap().id();
            let q = net.command(2, |n, now| n.find_node(now, target)).unwrap();
            let o = net.run_until_finished(2, q).unwrap();
            assert!(o.closest.iter().any(|c| c.id == target));
            (net.now(), net.node(9).unwrap().id())
        };
        assert_eq!(run(), run());
        assert_eq!(net_addr_roundtrip(), Some(41));
    }

    fn net_addr_roundtrip() -> Option<usize> {
        let net = Testnet::with_config(50, 1, |_, s| Config::local_testing(s));
        net.index_of(&addr(41))
    }

    #[test]
    fn a_silent_node_times_out() {
        let mut net = Testnet::new(5);
        net.set_alive(4, false);
        let to = net.addr(4);
        let q = net.command(1, |n, now| n.ping(now, to)).unwrap();
        let o = net.run_until_finished(1, q).unwrap();
        assert_eq!(o.status, crate::event::QueryStatus::TimedOut);
        let info_hash = Id::new([1; 20]);
        let q = net
            .command(0, |n, now| n.get_peers(now, info_hash))
            .unwrap();
        assert!(net.run_until_finished(0, q).is_some());
        assert!(!net.take_events().is_empty());
        assert_eq!(net.dropped(), (0, 0));
    }
}
