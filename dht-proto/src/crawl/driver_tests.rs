//! The [`Crawler`] against real nodes on a small virtual network, and against scripted
//! answers: discovery, intervals, the send budget, the caps.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use alloc::collections::{BTreeMap, BTreeSet};
use proptest::prelude::*;

use super::*;
use crate::config::Config;
use crate::node::Node;
use crate::time::Instant;
use crate::wire::compact::NodeInfo;
use crate::wire::krpc::Message;

fn remote_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8 + 1)), 6881)
}

fn crawler_addr(local: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 2, local as u8 + 1)), 6881)
}

fn hash(i: u32) -> Id {
    let mut b = [0x5a; 20];
    b[..4].copy_from_slice(&i.wrapping_mul(0x9e37_79b9).to_be_bytes());
    b[19] = i as u8;
    Id::new(b)
}

fn config(seed: u8) -> CrawlerConfig {
    let mut c = CrawlerConfig::new([seed; 32]);
    c.node = Config::local_testing([0; 32]);
    c
}

fn contains(data: &[u8], pattern: &[u8]) -> bool {
    data.windows(pattern.len()).any(|w| w == pattern)
}

fn is_query(data: &[u8]) -> bool {
    contains(data, b"1:y1:q")
}

fn is_sample_query(data: &[u8]) -> bool {
    contains(data, b"1:q17:sample_infohashes")
}

/// One datagram the crawler sent.
#[derive(Clone, Debug)]
struct Sent {
    at: Instant,
    to: SocketAddr,
    query: bool,
}

/// A crawler and real nodes on a network with a fixed 10 ms latency.
struct Harness {
    crawler: Crawler,
    remotes: Vec<Node>,
    now: Instant,
    queue: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    sent: Vec<Sent>,
    events: Vec<CrawlEvent>,
    /// Per remote: when it received `sample_infohashes` queries.
    sampled: BTreeMap<usize, Vec<Instant>>,
    buf: Vec<u8>,
}

impl Harness {
    fn new(remotes: usize, ids: u32, mut config: CrawlerConfig) -> Self {
        let now = Instant::ZERO;
        let mut nodes: Vec<Node> = (0..remotes)
            .map(|i| {
                let mut c = Config::local_testing([i as u8 + 1; 32]);
                c.report_queries = true;
                Node::new(c, now).unwrap()
            })
            .collect();
        let infos: Vec<NodeInfo> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeInfo {
                id: n.id(),
                addr: remote_addr(i),
            })
            .collect();
        for n in &mut nodes {
            let known = infos.iter().map(|i| (*i, Duration::from_millis(20)));
            n.import_answered_nodes(now, known);
        }
        config.node.address_policy = crate::AddressPolicy::ALLOW_ALL;
        let mut rng = crate::rng::Rng::new([9; 32]);
        let ids = spread_ids(ids, &mut rng);
        let mut crawler = Crawler::new(config, &ids, now);
        crawler.bootstrap(now, &[remote_addr(0)]);
        let mut h = Self {
            crawler,
            remotes: nodes,
            now,
            queue: VecDeque::new(),
            sent: Vec::new(),
            events: Vec::new(),
            sampled: BTreeMap::new(),
            buf: vec![0; 1500],
        };
        h.flush();
        h
    }

    fn flush(&mut self) {
        let now = self.now;
        let latency = Duration::from_millis(10);
        while let Some(t) = self.crawler.poll_transmit(now, &mut self.buf) {
            let data = self.buf[..t.len].to_vec();
            self.sent.push(Sent {
                at: now,
                to: t.to,
                query: is_query(&data),
            });
            self.queue
                .push_back((now + latency, crawler_addr(t.local), t.to, data));
        }
        while let Some(e) = self.crawler.poll_event() {
            self.events.push(e);
        }
        for (i, node) in self.remotes.iter_mut().enumerate() {
            while let Some(t) = node.poll_transmit(now, &mut self.buf) {
                let data = self.buf[..t.len].to_vec();
                self.queue
                    .push_back((now + latency, remote_addr(i), t.to, data));
            }
            while let Some(e) = node.poll_event() {
                if let Event::QueryReceived {
                    method: MethodKind::SampleInfohashes,
                    ..
                } = e
                {
                    self.sampled.entry(i).or_default().push(now);
                }
            }
        }
    }

    fn deliver(&mut self, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let now = self.now;
        if let Some(i) = (0..self.remotes.len()).find(|&i| remote_addr(i) == to) {
            let _ = self.remotes[i].handle_datagram(now, from, data);
        } else if let Some(local) = (0..self.crawler.len()).find(|&l| crawler_addr(l) == to) {
            self.crawler.handle_input(now, local, from, data);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut same = 0;
        loop {
            let mut next = self.queue.front().map(|q| q.0);
            let timers = self
                .remotes
                .iter()
                .filter_map(Node::poll_timeout)
                .chain(self.crawler.poll_timeout());
            for t in timers {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            let Some(next) = next.filter(|n| *n <= end) else {
                break;
            };
            if next <= self.now {
                same += 1;
                assert!(same < 10_000, "spinning at {:?}", self.now);
            } else {
                same = 0;
                self.now = next;
            }
            let now = self.now;
            while self.queue.front().is_some_and(|q| q.0 <= now) {
                let (_, from, to, data) = self.queue.pop_front().unwrap();
                self.deliver(from, to, &data);
            }
            for node in &mut self.remotes {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
            if self.crawler.poll_timeout().is_some_and(|t| t <= now) {
                self.crawler.handle_timeout(now);
            }
            self.flush();
        }
        self.now = end;
    }

    fn discovered(&self) -> Vec<(Id, HowFound)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CrawlEvent::Discovered { info_hash, how, .. } => Some((*info_hash, *how)),
                _ => None,
            })
            .collect()
    }
}

/// A crawler with two ids in a network of 40 in which 30 info-hashes are announced after
/// 30 s, run for `minutes` more.
fn crawl_announced(mut c: CrawlerConfig, minutes: u64) -> Harness {
    // Few lookups at once: in a network of 40 the per-address budget would hold back most
    // of the queries of 30 lookups in flight together (they all ask the same few nodes).
    c.max_lookups = 4;
    let mut h = Harness::new(40, 2, c);
    h.run_for(Duration::from_secs(30));
    for i in 0..30u32 {
        let now = h.now;
        let r = (i as usize * 7) % 40;
        h.remotes[r]
            .announce_peer(now, hash(i), Some(6881))
            .unwrap();
    }
    h.run_for(Duration::from_secs(minutes * 60));
    h
}

#[test]
fn the_crawler_finds_what_was_announced_and_honours_intervals() {
    let h = crawl_announced(config(1), 20);
    let found = h.discovered();
    for i in 0..30 {
        assert!(
            found.iter().any(|(ih, _)| *ih == hash(i)),
            "info-hash {i} not found"
        );
    }
    let unique: BTreeSet<Id> = found.iter().map(|f| f.0).collect();
    assert_eq!(unique.len(), found.len(), "each reported once");
    assert!(found.iter().any(|f| f.1 == HowFound::Sample));
    // Nodes answer with interval 300 s: never asked twice within it.
    let mut asked = 0;
    for times in h.sampled.values() {
        asked += times.len();
        for pair in times.windows(2) {
            let gap = pair[1].saturating_duration_since(pair[0]);
            assert!(gap >= Duration::from_secs(300), "asked again after {gap:?}");
        }
    }
    assert!(asked >= 40, "every node sampled: {asked}");
    // A lookup for each discovered info-hash, most with peers (in a network this small the
    // per-address budget holds back queries of lookups that ask the same few nodes at once).
    let done = |with_peers: bool| {
        h.events
            .iter()
            .filter(
                |e| matches!(e, CrawlEvent::LookupDone { peers, .. } if !with_peers || *peers > 0),
            )
            .count()
    };
    assert_eq!(done(false), found.len());
    assert!(
        done(true) * 3 >= found.len() * 2,
        "lookups with peers: {}",
        done(true)
    );
    let s = h.crawler.stats();
    assert_eq!(s.ids, 2);
    assert_eq!(s.discovered, unique.len() as u64);
    assert!(s.sample_answers > 0 && s.sample_queries >= s.sample_answers);
    assert_eq!(s.known_nodes, 40);
}

#[test]
fn every_query_goes_through_the_send_budget() {
    let mut c = config(2);
    c.budget.rate = 20;
    c.budget.burst = 5;
    let mut h = Harness::new(60, 3, c);
    for i in 0..40u32 {
        let now = h.now;
        assert!(h.crawler.lookup(now, hash(i)));
    }
    h.run_for(Duration::from_secs(120));
    let queries: Vec<&Sent> = h.sent.iter().filter(|s| s.query).collect();
    assert!(queries.len() > 200, "busy enough: {}", queries.len());
    for (i, q) in queries.iter().enumerate() {
        // Token bucket: within any second, at most burst + rate.
        let in_window = queries[i..]
            .iter()
            .take_while(|r| r.at < q.at + Duration::from_secs(1))
            .count();
        assert!(in_window <= 25, "{in_window} queries within a second");
    }
    // One query per remote address per second, all ids together.
    let mut last: BTreeMap<IpAddr, Instant> = BTreeMap::new();
    for q in &queries {
        if let Some(prev) = last.insert(q.to.ip(), q.at) {
            assert!(q.at >= prev + Duration::from_secs(1), "{} twice", q.to);
        }
    }
    let s = h.crawler.stats();
    assert_eq!(s.queries_sent, queries.len() as u64);
    assert!(s.queries_throttled > 0, "the budget held some back");
}

#[test]
fn the_lookup_queue_stops_at_its_cap_and_dedupes() {
    let mut c = config(3);
    c.max_lookups = 1;
    c.max_queued_lookups = 3;
    let mut rng = crate::rng::Rng::new([1; 32]);
    let ids = spread_ids(2, &mut rng);
    let now = Instant::ZERO;
    // No contacts: nothing can start, everything waits.
    let mut crawler = Crawler::new(c, &ids, now);
    assert!(crawler.lookup(now, hash(1)));
    assert!(crawler.lookup(now, hash(2)));
    assert!(crawler.lookup(now, hash(1)), "already queued");
    assert!(crawler.lookup(now, hash(3)));
    assert!(!crawler.lookup(now, hash(4)), "full");
    let s = crawler.stats();
    assert_eq!(
        (s.lookups_queued, s.lookups_running, s.lookups_refused),
        (3, 0, 1)
    );
    // Waiting for contacts does not spin: the retry is in the future.
    crawler.handle_timeout(now);
    assert!(crawler.poll_timeout().is_some_and(|t| t > now));
    // Off: every lookup is refused.
    let mut c = config(3);
    c.max_lookups = 0;
    let mut crawler = Crawler::new(c, &ids, now);
    assert!(!crawler.lookup(now, hash(1)));
}

/// Every event the crawler has waiting.
fn drain_events(crawler: &mut Crawler) -> Vec<CrawlEvent> {
    core::iter::from_fn(|| crawler.poll_event()).collect()
}

/// A `get_peers` query for `info_hash` from a node with id `id`.
fn get_peers_query(id: Id, info_hash: Id, tid: &[u8; 2]) -> Vec<u8> {
    let mut q = b"d1:ad2:id20:".to_vec();
    q.extend_from_slice(id.as_bytes());
    q.extend_from_slice(b"9:info_hash20:");
    q.extend_from_slice(info_hash.as_bytes());
    q.extend_from_slice(b"e1:q9:get_peers1:t2:");
    q.extend_from_slice(tid);
    q.extend_from_slice(b"1:y1:qe");
    q
}

#[test]
fn passive_harvest_reports_once_and_the_event_queue_is_capped() {
    let mut c = config(4);
    c.max_pending_events = 2;
    c.max_lookups = 0;
    c.sample = false;
    let mut rng = crate::rng::Rng::new([1; 32]);
    let ids = spread_ids(2, &mut rng);
    let now = Instant::ZERO;
    let mut crawler = Crawler::new(c, &ids, now);
    let from = remote_addr(5);
    for (i, local) in [(1, 0), (1, 1), (2, 1), (3, 0)] {
        let q = get_peers_query(Id::new([7; 20]), hash(i), b"aa");
        crawler.handle_input(now, local, from, &q);
    }
    let events = drain_events(&mut crawler);
    assert_eq!(
        events,
        [
            CrawlEvent::Discovered {
                info_hash: hash(1),
                how: HowFound::GetPeers,
                from
            },
            CrawlEvent::Discovered {
                info_hash: hash(2),
                how: HowFound::GetPeers,
                from
            },
        ]
    );
    let s = crawler.stats();
    assert_eq!((s.discovered, s.discovered_get_peers), (3, 3));
    assert_eq!((s.events_dropped, s.repeats), (1, 1));
    // The answers go out, outside the query budget.
    let mut buf = [0u8; 1500];
    let mut answers = 0;
    while let Some(t) = crawler.poll_transmit(now, &mut buf) {
        assert_eq!(t.to, from);
        assert!(!is_query(&buf[..t.len]));
        answers += 1;
    }
    assert_eq!(answers, 4);
    assert_eq!(crawler.stats().queries_sent, 0);
}

/// A `sample_infohashes` answer to `query` with `interval`, `num` and `samples`.
fn sample_answer(query: &[u8], id: Id, interval: i64, num: i64, samples: &[Id]) -> Vec<u8> {
    let limits = crate::wire::bencode::DecodeLimits::default();
    let msg = Message::decode(query, &limits).unwrap();
    let tid = msg.transaction_id.to_vec();
    let mut r = b"d1:rd2:id20:".to_vec();
    r.extend_from_slice(id.as_bytes());
    r.extend_from_slice(
        alloc::format!(
            "8:intervali{interval}e3:numi{num}e7:samples{}:",
            samples.len() * 20
        )
        .as_bytes(),
    );
    for s in samples {
        r.extend_from_slice(s.as_bytes());
    }
    r.extend_from_slice(alloc::format!("e1:t{}:", tid.len()).as_bytes());
    r.extend_from_slice(&tid);
    r.extend_from_slice(b"1:y1:re");
    r
}

/// A crawler with one id that knows one scripted node (it sent a `get_peers`), and that node.
fn scripted(config: CrawlerConfig) -> (Crawler, SocketAddr, Id) {
    let mut rng = crate::rng::Rng::new([1; 32]);
    let ids = spread_ids(1, &mut rng);
    let mut crawler = Crawler::new(config, &ids, Instant::ZERO);
    let remote = remote_addr(9);
    let remote_id = Id::new([0x42; 20]);
    let q = get_peers_query(remote_id, hash(100), b"zz");
    crawler.handle_input(Instant::ZERO, 0, remote, &q);
    (crawler, remote, remote_id)
}

/// The `sample_infohashes` queries the crawler sends to `to` until `end`, answered with
/// `answer` (interval, num, samples); returns when they were sent.
fn drive_scripted(
    crawler: &mut Crawler,
    to: SocketAddr,
    id: Id,
    end: Instant,
    answer: (i64, i64, &[Id]),
) -> Vec<Instant> {
    let mut now = Instant::ZERO;
    let mut buf = [0u8; 1500];
    let mut asked = Vec::new();
    while now <= end {
        crawler.handle_timeout(now);
        while let Some(t) = crawler.poll_transmit(now, &mut buf) {
            let data = buf[..t.len].to_vec();
            if t.to == to && is_sample_query(&data) {
                asked.push(now);
                let r = sample_answer(&data, id, answer.0, answer.1, answer.2);
                crawler.handle_input(now, t.local, to, &r);
            }
        }
        match crawler.poll_timeout() {
            Some(t) if t > now => now = t.min(end.saturating_add(Duration::from_millis(1))),
            _ => now = now.saturating_add(Duration::from_millis(1)),
        }
    }
    asked
}

#[test]
fn the_interval_of_each_answer_is_honoured() {
    let mut c = config(5);
    c.max_lookups = 0;
    let (mut crawler, remote, id) = scripted(c);
    let end = Instant::from_secs(3 * 3600);
    let asked = drive_scripted(&mut crawler, remote, id, end, (900, 50, &[hash(1)]));
    assert!(asked.len() >= 4, "asked {asked:?}");
    assert_eq!(asked[0], Instant::ZERO);
    // The first revisit is spread over up to twice the interval, the others come at once.
    let gaps: Vec<u64> = asked
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]).as_secs())
        .collect();
    assert!(gaps.iter().all(|g| *g >= 900), "{gaps:?}");
    assert!(gaps[0] <= 1800, "{gaps:?}");
    assert!(
        gaps[1..].iter().all(|g| *g <= 901),
        "rich node revisited when allowed: {gaps:?}"
    );
    let s = crawler.stats();
    assert_eq!(s.discovered_sample, 1);
}

#[test]
fn a_hostile_interval_is_cut_to_the_maximum() {
    let mut c = config(6);
    c.max_lookups = 0;
    c.traverse.max_interval = Duration::from_secs(1000);
    let (mut crawler, remote, id) = scripted(c);
    let end = Instant::from_secs(10_000);
    let asked = drive_scripted(&mut crawler, remote, id, end, (i64::MAX, i64::MAX, &[]));
    let gaps: Vec<u64> = asked
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]).as_secs())
        .collect();
    assert!(asked.len() >= 4, "{asked:?}");
    assert!(gaps.iter().all(|g| (1000..=2001).contains(g)), "{gaps:?}");
}

#[test]
fn sampling_can_be_turned_off() {
    let mut c = config(7);
    c.sample = false;
    let (mut crawler, remote, id) = scripted(c);
    let asked = drive_scripted(
        &mut crawler,
        remote,
        id,
        Instant::from_secs(600),
        (1, 1, &[]),
    );
    assert!(asked.is_empty());
    assert_eq!(crawler.stats().known_nodes, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_datagram_on_any_socket_is_safe(
        local in 0usize..4,
        data in proptest::collection::vec(any::<u8>(), 0..300),
        port in 1u16..,
    ) {
        let mut crawler = Crawler::new(config(8), &[Id::new([1; 20]), Id::new([0x80; 20])], Instant::ZERO);
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), port);
        crawler.handle_input(Instant::from_millis(5), local, from, &data);
        let mut buf = [0u8; 1500];
        while crawler.poll_transmit(Instant::from_millis(5), &mut buf).is_some() {}
        while crawler.poll_event().is_some() {}
        crawler.handle_timeout(Instant::from_secs(1));
        prop_assert!(crawler.poll_timeout().is_some());
    }
}

#[test]
fn a_scrape_lookup_estimates_the_swarm() {
    let mut net = crate::testnet::Testnet::new(30);
    let info_hash = hash(77);
    for i in 0..10 {
        let q = net
            .command(i, |node, now| {
                node.announce_peer(now, info_hash, Some(6881))
            })
            .unwrap();
        net.run_until_finished(i, q);
    }
    let q = net
        .command(20, |node, now| node.get_peers_scrape(now, info_hash))
        .unwrap();
    let scrape = net.run_until_finished(20, q).unwrap().scrape.unwrap();
    assert_eq!(scrape.seeds, 0);
    assert!((9..=11).contains(&scrape.leechers), "{scrape:?}");
    // Without scrape, no estimate.
    let q = net
        .command(21, |node, now| node.get_peers(now, info_hash))
        .unwrap();
    assert_eq!(net.run_until_finished(21, q).unwrap().scrape, None);
}

/// [`crawl_announced`] with the holders asked first or not.
fn crawl_holders(ask_holders: bool, minutes: u64) -> Harness {
    let mut c = config(6);
    c.ask_holders = ask_holders;
    crawl_announced(c, minutes)
}

#[test]
fn sampled_info_hashes_are_asked_of_their_holders_first() {
    let h = crawl_holders(true, 10);
    let s = h.crawler.stats();
    assert!(s.discovered_sample >= 5, "found by samples: {s:?}");
    // Every info-hash found in samples got its peers from a holder, at once.
    assert!(s.holder_queries >= s.discovered_sample);
    // (and so did any found passively that a sample named before its lookup started).
    let asked = s.holder_hits + s.holder_misses;
    assert!(
        asked >= s.discovered_sample && asked <= s.discovered,
        "{s:?}"
    );
    assert!(s.holder_hits * 10 >= s.discovered_sample * 9, "{s:?}");
    let sampled: Vec<Id> = h
        .discovered()
        .into_iter()
        .filter(|(_, how)| *how == HowFound::Sample)
        .map(|(ih, _)| ih)
        .collect();
    for ih in &sampled {
        let peers = h.events.iter().any(|e| {
            matches!(e, CrawlEvent::Peers { info_hash, peers }
                if info_hash == ih && !peers.is_empty())
        });
        assert!(peers, "no peers reported for {ih}");
    }
    assert_eq!(s.holders_pending, 0, "nothing left waiting");
    // About one query per info-hash found by samples where a lookup costs about a dozen.
    let without = crawl_holders(false, 10).crawler.stats();
    assert_eq!(without.holder_queries, 0);
    let lookup_cost = |s: &CrawlStats| s.lookup_queries + s.holder_queries;
    assert!(s.holder_queries <= s.discovered_sample * 2, "{s:?}");
    assert!(
        lookup_cost(&s) * 3 < lookup_cost(&without) * 2,
        "with holders {} queries, without {}",
        lookup_cost(&s),
        lookup_cost(&without)
    );
}

#[test]
fn a_holder_without_peers_leads_to_the_next_holder_then_a_lookup() {
    let mut c = config(7);
    c.sample = true;
    let (mut crawler, remote, remote_id) = scripted(c);
    // A second scripted holder, known from its own query.
    let second = remote_addr(10);
    let q = get_peers_query(Id::new([0x43; 20]), hash(101), b"yy");
    crawler.handle_input(Instant::ZERO, 0, second, &q);
    let mut buf = [0u8; 1500];
    let mut now = Instant::ZERO;
    let mut asked: Vec<SocketAddr> = Vec::new();
    let mut lookups = 0;
    let target = hash(500);
    while now < Instant::from_secs(20) {
        crawler.handle_timeout(now);
        while let Some(t) = crawler.poll_transmit(now, &mut buf) {
            let data = buf[..t.len].to_vec();
            if is_sample_query(&data) {
                // Both nodes sample the same info-hash.
                let id = if t.to == remote {
                    remote_id
                } else {
                    Id::new([0x43; 20])
                };
                let r = sample_answer(&data, id, 3600, 1, &[target]);
                crawler.handle_input(now, t.local, t.to, &r);
            } else if contains(&data, b"9:get_peers") && contains(&data, target.as_bytes()) {
                if t.to == remote || t.to == second {
                    asked.push(t.to);
                    // The holder answers without `values` (its peers expired).
                    let msg = Message::decode(&data, &Default::default()).unwrap();
                    let tid = msg.transaction_id.to_vec();
                    let id = if t.to == remote {
                        remote_id
                    } else {
                        Id::new([0x43; 20])
                    };
                    let mut r = b"d1:rd2:id20:".to_vec();
                    r.extend_from_slice(id.as_bytes());
                    r.extend_from_slice(b"5:nodes0:5:token2:tke1:t");
                    r.extend_from_slice(alloc::format!("{}:", tid.len()).as_bytes());
                    r.extend_from_slice(&tid);
                    r.extend_from_slice(b"1:y1:re");
                    crawler.handle_input(now, t.local, t.to, &r);
                } else {
                    lookups += 1;
                }
            }
        }
        match crawler.poll_timeout() {
            Some(t) if t > now => now = t.min(Instant::from_secs(20)),
            _ => now = now.saturating_add(Duration::from_millis(1)),
        }
    }
    // Each holder once; then the lookup asks the nodes it knows (the same two) and ends.
    assert_eq!(asked.len(), 4, "{asked:?}");
    let mut first_two = asked[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, [remote, second], "each holder asked once");
    assert_eq!(lookups, 0, "no other node is known");
    let s = crawler.stats();
    assert_eq!(
        (s.holder_queries, s.holder_hits, s.holder_misses),
        (2, 0, 1)
    );
    assert_eq!(s.lookups_done, 1, "{s:?}");
    assert_eq!(s.holders_pending, 0);
}

#[test]
fn an_announce_names_its_peer_at_once() {
    let mut c = config(8);
    c.sample = false;
    let mut rng = crate::rng::Rng::new([1; 32]);
    let ids = spread_ids(1, &mut rng);
    let now = Instant::ZERO;
    let mut crawler = Crawler::new(c, &ids, now);
    let from = remote_addr(3);
    let peer_id = Id::new([9; 20]);
    let info_hash = hash(9);
    let mut buf = [0u8; 1500];
    // A get_peers for the token, then the announce with it.
    crawler.handle_input(now, 0, from, &get_peers_query(peer_id, info_hash, b"g1"));
    let t = crawler.poll_transmit(now, &mut buf).unwrap();
    let reply = Message::decode(&buf[..t.len], &Default::default()).unwrap();
    let crate::wire::krpc::Body::Response(r) = reply.body else {
        panic!("{reply}")
    };
    let token = r.token.unwrap().to_vec();
    let mut q = b"d1:ad2:id20:".to_vec();
    q.extend_from_slice(peer_id.as_bytes());
    q.extend_from_slice(b"9:info_hash20:");
    q.extend_from_slice(info_hash.as_bytes());
    q.extend_from_slice(b"4:porti7777e5:token");
    q.extend_from_slice(alloc::format!("{}:", token.len()).as_bytes());
    q.extend_from_slice(&token);
    q.extend_from_slice(b"e1:q13:announce_peer1:t2:a11:y1:qe");
    crawler.handle_input(now, 0, from, &q);
    let events = drain_events(&mut crawler);
    assert_eq!(
        events,
        [
            CrawlEvent::Discovered {
                info_hash,
                how: HowFound::GetPeers,
                from
            },
            CrawlEvent::Peers {
                info_hash,
                peers: vec![SocketAddr::new(from.ip(), 7777)]
            },
        ]
    );
    assert_eq!(crawler.stats().announced_peers, 1);
}

#[test]
fn a_waiting_lookup_moves_to_a_holder_or_to_the_front() {
    let mut c = config(9);
    c.sample = true;
    let (mut crawler, remote, remote_id) = scripted(c);
    let mut buf = [0u8; 1500];
    let passive = hash(600);
    let wanted = hash(601);
    // Both found in get_peers queries: their lookups wait 30 s.
    for (ih, tid) in [(passive, b"p1"), (wanted, b"p2")] {
        let q = get_peers_query(Id::new([0x50; 20]), ih, tid);
        crawler.handle_input(Instant::ZERO, 0, remote_addr(20), &q);
    }
    // (and that of the info-hash the scripted node asked for)
    assert_eq!(crawler.stats().lookups_queued, 3);
    // The application wants the peers of one now: its lookup starts at once.
    let now = Instant::from_millis(5);
    assert!(crawler.lookup(now, wanted));
    let mut first_asked: Vec<(Id, Instant)> = Vec::new();
    let mut now = now;
    while now < Instant::from_secs(10) {
        crawler.handle_timeout(now);
        while let Some(t) = crawler.poll_transmit(now, &mut buf) {
            let data = buf[..t.len].to_vec();
            if is_sample_query(&data) && t.to == remote {
                // The node samples the other one: it holds its peers.
                let r = sample_answer(&data, remote_id, 3600, 1, &[passive]);
                crawler.handle_input(now, t.local, t.to, &r);
            }
            for ih in [passive, wanted] {
                if contains(&data, b"9:get_peers")
                    && contains(&data, ih.as_bytes())
                    && !first_asked.iter().any(|(h, _)| *h == ih)
                {
                    first_asked.push((ih, now));
                }
            }
        }
        match crawler.poll_timeout() {
            Some(t) if t > now => now = t.min(Instant::from_secs(10)),
            _ => now = now.saturating_add(Duration::from_millis(1)),
        }
    }
    let asked = |ih: Id| first_asked.iter().find(|(h, _)| *h == ih).map(|(_, t)| *t);
    // (within the per-IP budget: the only node known was asked something at the start)
    assert!(
        asked(wanted).is_some_and(|t| t < Instant::from_secs(2)),
        "{first_asked:?}"
    );
    assert!(
        asked(passive).is_some_and(|t| t < Instant::from_secs(5)),
        "{first_asked:?}"
    );
    let s = crawler.stats();
    assert_eq!(s.holder_queries, 1, "{s:?}");
    // Left waiting: the scripted node's info-hash (its 30 s are not over); no stale entry.
    assert_eq!(s.lookups_queued, 1, "{s:?}");
}

#[test]
fn a_lookup_asked_for_moves_its_holder_ask_to_the_front() {
    let mut c = config(10);
    c.sample = true;
    let (mut crawler, remote, remote_id) = scripted(c);
    let samples: Vec<Id> = (700..720).map(hash).collect();
    let wanted = samples[19];
    let mut buf = [0u8; 1500];
    let mut now = Instant::ZERO;
    let mut asks: Vec<Id> = Vec::new();
    let mut asked_for = false;
    while now < Instant::from_secs(6) {
        crawler.handle_timeout(now);
        while let Some(t) = crawler.poll_transmit(now, &mut buf) {
            let data = buf[..t.len].to_vec();
            if is_sample_query(&data) && t.to == remote {
                // One node holds all 20; the per-IP budget lets one ask a second go to it.
                let r = sample_answer(&data, remote_id, 3600, 20, &samples);
                crawler.handle_input(now, t.local, t.to, &r);
            } else if t.to == remote && contains(&data, b"9:get_peers") {
                if let Some(ih) = samples.iter().find(|ih| contains(&data, ih.as_bytes())) {
                    asks.push(*ih);
                }
            }
        }
        if !asks.is_empty() && !asked_for {
            // The application waits for the last one's peers.
            asked_for = true;
            assert!(crawler.lookup(now, wanted));
        }
        match crawler.poll_timeout() {
            Some(t) if t > now => now = t.min(Instant::from_secs(6)),
            _ => now = now.saturating_add(Duration::from_millis(1)),
        }
    }
    assert!(asks.len() >= 3, "{asks:?}");
    // One ask per address waits in the queue ahead of time: the wanted one comes right after
    // it, not 19th.
    assert_ne!(asks[0], wanted);
    let at = asks.iter().position(|ih| *ih == wanted);
    assert!(at.is_some_and(|i| i <= 2), "asked at {at:?}: {asks:?}");
    assert_eq!(asks.iter().filter(|ih| **ih == wanted).count(), 1);
}

/// An answer to the `get_peers` `query` from `id`, with one peer when `peer` is given.
fn peers_answer(query: &[u8], id: Id, peer: Option<SocketAddr>) -> Vec<u8> {
    let msg = Message::decode(query, &Default::default()).unwrap();
    let tid = msg.transaction_id.to_vec();
    let mut r = b"d1:rd2:id20:".to_vec();
    r.extend_from_slice(id.as_bytes());
    r.extend_from_slice(b"5:nodes0:5:token2:tk");
    if let Some(SocketAddr::V4(p)) = peer {
        r.extend_from_slice(b"6:valuesl6:");
        r.extend_from_slice(&p.ip().octets());
        r.extend_from_slice(&p.port().to_be_bytes());
        r.push(b'e');
    }
    r.extend_from_slice(b"e1:t");
    r.extend_from_slice(alloc::format!("{}:", tid.len()).as_bytes());
    r.extend_from_slice(&tid);
    r.extend_from_slice(b"1:y1:re");
    r
}

/// One ask of a holder the crawler sent.
#[derive(Clone, Copy, Debug)]
struct Ask {
    at: Instant,
    holder: usize,
    info_hash: Id,
}

/// A one-id crawler and `holders` scripted nodes (known from a query each) that all sample
/// every one of `samples`; `answers(holder, ask number)` says whether the holder answers an
/// ask (with a peer) or drops it. Runs until `end`; returns the asks and the crawler.
fn scripted_holders(
    config: CrawlerConfig,
    holders: usize,
    samples: &[Id],
    end: Instant,
    answers: impl Fn(usize, usize) -> bool,
) -> (Vec<Ask>, Crawler) {
    let mut rng = crate::rng::Rng::new([1; 32]);
    let ids = spread_ids(1, &mut rng);
    let mut crawler = Crawler::new(config, &ids, Instant::ZERO);
    let addr = |i: usize| remote_addr(20 + i);
    let id = |i: usize| Id::new([0x60 + i as u8; 20]);
    for i in 0..holders {
        let q = get_peers_query(id(i), hash(900 + i as u32), b"zz");
        crawler.handle_input(Instant::ZERO, 0, addr(i), &q);
    }
    let mut buf = [0u8; 1500];
    let mut now = Instant::ZERO;
    let mut asks: Vec<Ask> = Vec::new();
    while now < end {
        crawler.handle_timeout(now);
        while let Some(t) = crawler.poll_transmit(now, &mut buf) {
            let data = buf[..t.len].to_vec();
            let Some(holder) = (0..holders).find(|i| addr(*i) == t.to) else {
                continue;
            };
            if is_sample_query(&data) {
                let r = sample_answer(&data, id(holder), 3600, samples.len() as i64, samples);
                crawler.handle_input(now, t.local, t.to, &r);
            } else if contains(&data, b"9:get_peers") {
                let Some(ih) = samples.iter().find(|ih| contains(&data, ih.as_bytes())) else {
                    continue;
                };
                let n = asks.iter().filter(|a| a.holder == holder).count();
                asks.push(Ask {
                    at: now,
                    holder,
                    info_hash: *ih,
                });
                if answers(holder, n) {
                    let peer = SocketAddr::from(([10, 9, 9, 9], 5000));
                    let r = peers_answer(&data, id(holder), Some(peer));
                    crawler.handle_input(now, t.local, t.to, &r);
                }
            }
        }
        match crawler.poll_timeout() {
            Some(t) if t > now => now = t.min(end),
            _ => now = now.saturating_add(Duration::from_millis(1)),
        }
    }
    (asks, crawler)
}

#[test]
fn an_unanswered_ask_is_hedged_on_the_next_holder() {
    let mut c = config(11);
    c.sample = true;
    let target = hash(950);
    // Holder 0 drops every ask; holder 1 answers.
    let (asks, crawler) =
        scripted_holders(c.clone(), 2, &[target], Instant::from_secs(10), |h, _| {
            h == 1
        });
    assert_eq!(asks.len(), 2, "{asks:?}");
    let (first, second) = (asks[0], asks[1]);
    assert_ne!(first.holder, second.holder);
    assert_eq!((first.info_hash, second.info_hash), (target, target));
    // The first ask was created with the sample's answer at 0 s and went when its address
    // was free again (1 s); the next holder is asked once it was unanswered for `ask_hedge`
    // (2 s), not after the whole query timeout (5 s).
    assert_eq!(first.at, Instant::from_secs(1), "{asks:?}");
    assert!(
        second.at >= Instant::ZERO + c.ask_hedge
            && second.at < Instant::ZERO + c.ask_hedge + Duration::from_millis(100),
        "{asks:?}"
    );
    let s = crawler.stats();
    assert_eq!(
        (s.holder_queries, s.holder_hits, s.holder_hedges),
        (2, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.holders_pending, 0, "{s:?}");
    // The dropped ask timed out in the end; it changed nothing.
    assert_eq!(
        (s.holder_failures, s.holder_misses, s.lookups_done),
        (1, 0, 0),
        "{s:?}"
    );

    // Without a hedge (a hedge later than the query timeout), the next holder waits for the
    // timeout.
    c.ask_hedge = Duration::from_secs(60);
    let (asks, _) = scripted_holders(c, 2, &[target], Instant::from_secs(10), |h, _| h == 1);
    assert_eq!(asks.len(), 2, "{asks:?}");
    assert!(asks[1].at >= Instant::from_secs(5), "{asks:?}");
}

#[test]
fn asks_spread_over_every_holder_remembered() {
    let mut c = config(12);
    c.sample = true;
    // Six nodes hold the same 24 info-hashes: four asks each at one a second, where the
    // first nodes alone would take six each.
    let samples: Vec<Id> = (960..984).map(hash).collect();
    let (asks, crawler) = scripted_holders(c, 6, &samples, Instant::from_secs(10), |_, _| true);
    assert_eq!(asks.len(), samples.len(), "one ask each: {asks:?}");
    for holder in 0..6 {
        let n = asks.iter().filter(|a| a.holder == holder).count();
        assert!(
            (3..=5).contains(&n),
            "holder {holder} asked {n} times: {asks:?}"
        );
    }
    let mut asked: Vec<Id> = asks.iter().map(|a| a.info_hash).collect();
    asked.sort();
    asked.dedup();
    assert_eq!(asked.len(), samples.len());
    let last = asks.iter().map(|a| a.at).max().unwrap();
    assert!(last <= Instant::from_secs(5), "{asks:?}");
    let s = crawler.stats();
    assert_eq!((s.holder_hits, s.holders_pending), (24, 0), "{s:?}");
}

#[test]
fn sampling_starts_with_the_contacts() {
    let mut rng = crate::rng::Rng::new([1; 32]);
    let ids = spread_ids(1, &mut rng);
    let mut c = config(13);
    c.node.address_policy = crate::AddressPolicy::ALLOW_ALL;
    let mut crawler = Crawler::new(c.clone(), &ids, Instant::ZERO);
    let contacts = [remote_addr(30), remote_addr(31)];
    crawler.bootstrap(Instant::ZERO, &contacts);
    let mut buf = [0u8; 1500];
    let mut sampled = Vec::new();
    while let Some(t) = crawler.poll_transmit(Instant::ZERO, &mut buf) {
        if is_sample_query(&buf[..t.len]) {
            sampled.push(t.to);
        }
    }
    // Both contacts are asked for samples at once, before anything is known of them (their
    // ids included), and before the id has joined.
    sampled.sort();
    assert_eq!(sampled, contacts);
    assert!(!crawler.node(0).unwrap().is_bootstrapped());
    assert_eq!(crawler.stats().sample_queries, 2);

    // Without the traversal, nothing is sampled.
    c.sample = false;
    let mut crawler = Crawler::new(c, &ids, Instant::ZERO);
    crawler.bootstrap(Instant::ZERO, &contacts);
    while let Some(t) = crawler.poll_transmit(Instant::ZERO, &mut buf) {
        assert!(!is_sample_query(&buf[..t.len]));
    }
}
