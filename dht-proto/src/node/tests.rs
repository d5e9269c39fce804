//! Node tests on a small in-memory network (no sockets, virtual time).

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::*;
use crate::event::{CommandKind, Event, QueryOutcome, QueryStatus};
use crate::stats::MethodKind;
use crate::wire::encode::Writer;
use crate::wire::krpc::{AnnouncePeer, Body, GetPeers, Message, Ping, Query};

pub(crate) fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, (i / 250) as u8, (i % 250 + 1) as u8)),
        6881,
    )
}

pub(crate) fn seed(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    s
}

/// A tiny synchronous network: every datagram is delivered after `latency`.
pub(crate) struct Net<V = NoVerifier> {
    pub(crate) nodes: Vec<Node<V>>,
    pub(crate) alive: Vec<bool>,
    pub(crate) now: Instant,
    pub(crate) latency: Duration,
    /// Added to the latency of every datagram a node sends (zero unless a test sets it).
    pub(crate) extra_delay: Vec<Duration>,
    pub(crate) queue: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    pub(crate) events: Vec<(usize, Event)>,
    /// Every transmit, for determinism checks.
    pub(crate) trace: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

/// When [`Net`]s start.
pub(crate) const NET_START: Instant = Instant::from_secs(1000);

impl Net {
    pub(crate) fn new(n: usize, config: impl Fn(usize) -> Config) -> Self {
        Self::from_nodes(
            (0..n)
                .map(|i| Node::new(config(i), NET_START).unwrap())
                .collect(),
        )
    }
}

impl<V: Ed25519Verifier> Net<V> {
    /// A network of `nodes`, started at [`NET_START`].
    pub(crate) fn from_nodes(nodes: Vec<Node<V>>) -> Self {
        let n = nodes.len();
        let now = NET_START;
        Self {
            nodes,
            alive: vec![true; n],
            now,
            latency: Duration::from_millis(20),
            extra_delay: vec![Duration::ZERO; n],
            queue: VecDeque::new(),
            events: Vec::new(),
            trace: Vec::new(),
        }
    }

    pub(crate) fn index_of(&self, a: &SocketAddr) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| addr(i) == *a)
    }

    /// Drains every node's output into the queue and event list.
    pub(crate) fn drain(&mut self) {
        let mut buf = [0u8; 1500];
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit(self.now, &mut buf) {
                let data = buf[..t.len].to_vec();
                self.trace.push((addr(i), t.to, data.clone()));
                let extra = self.extra_delay.get(i).copied().unwrap_or_default();
                self.queue
                    .push_back((self.now + self.latency + extra, addr(i), t.to, data));
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events.push((i, e));
            }
        }
    }

    /// Advances to the next deadline or delivery and processes it. Returns false when idle.
    pub(crate) fn step(&mut self) -> bool {
        self.drain();
        // In sending order, which is delivery order unless `extra_delay` is set.
        let next_delivery = self.queue.iter().map(|q| q.0).min();
        let next_timer = self.nodes.iter().filter_map(Node::<V>::poll_timeout).min();
        let Some(next) = [next_delivery, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        while let Some(due) = self.queue.iter().position(|q| q.0 <= self.now) {
            let (_, from, to, data) = self.queue.remove(due).unwrap();
            if let Some(j) = self.index_of(&to) {
                if self.alive[j] {
                    let _ = self.nodes[j].handle_datagram(self.now, from, &data);
                }
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.nodes[i].handle_timeout(self.now);
            }
        }
        self.drain();
        true
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut steps = 0;
        while self.now < end && steps < 1_000_000 {
            let before = self.now;
            if !self.step() {
                break;
            }
            steps += 1;
            if self.now > end {
                self.now = before.max(end);
            }
        }
    }

    pub(crate) fn run_until_finished(&mut self, node: usize, q: QueryId) -> QueryOutcome {
        for _ in 0..200_000 {
            if let Some(o) = self.finished(node, q) {
                return o;
            }
            assert!(self.step(), "network idle before query finished");
        }
        panic!("query did not finish");
    }

    pub(crate) fn finished(&self, node: usize, q: QueryId) -> Option<QueryOutcome> {
        self.events.iter().find_map(|(i, e)| match e {
            Event::QueryFinished { query, outcome } if *i == node && *query == q => {
                Some(outcome.clone())
            }
            _ => None,
        })
    }

    pub(crate) fn bootstrap_all(&mut self) {
        let now = self.now;
        for i in 1..self.nodes.len() {
            self.nodes[i].bootstrap(now, [addr(0)]).unwrap();
        }
        self.run_for(Duration::from_secs(30));
    }

    pub(crate) fn peers_found(&self, node: usize, q: QueryId) -> Vec<SocketAddr> {
        self.events
            .iter()
            .filter_map(|(i, e)| match e {
                Event::PeersFound { query, peers } if *i == node && *query == q => {
                    Some(peers.clone())
                }
                _ => None,
            })
            .flatten()
            .collect()
    }
}

fn local(i: usize) -> Config {
    Config::local_testing(seed(i))
}

fn encode(msg: &Message<'_>) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let n = msg.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

/// Sends one raw datagram to `node` and returns its answers.
/// Feeds one datagram and returns the answers (responses and errors) it produced, all of which
/// must go back to the sender. Queries the node sends on its own (e.g. a ping to verify the
/// sender before trusting it) are not answers and are left out.
fn exchange(node: &mut Node, now: Instant, from: SocketAddr, data: &[u8]) -> Vec<Vec<u8>> {
    let _ = node.handle_datagram(now, from, data);
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        let bytes = buf[..t.len].to_vec();
        if matches!(
            Message::decode(&bytes, &Default::default()).unwrap().body,
            Body::Query(_)
        ) {
            continue;
        }
        assert_eq!(t.to, from);
        out.push(bytes);
    }
    out
}

/// The datagram of query `q` in transaction `tid`, from a node that is not read-only.
fn query_datagram(tid: &[u8], q: Query<'_>) -> Vec<u8> {
    encode(&Message {
        transaction_id: tid,
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(q),
    })
}

pub(crate) fn ping_query(tid: &[u8], id: Id) -> Vec<u8> {
    query_datagram(tid, Query::Ping(Ping { id }))
}

#[test]
fn bootstrap_fills_tables() {
    let mut net = Net::new(30, local);
    net.bootstrap_all();
    for i in 1..30 {
        assert!(net.nodes[i].is_bootstrapped(), "node {i} not bootstrapped");
        assert!(
            net.nodes[i].table_len() >= 8,
            "node {i} has {} entries",
            net.nodes[i].table_len()
        );
    }
    assert!(net.nodes[0].table_len() >= 8);
    let bootstrapped = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Bootstrapped { .. }))
        .count();
    assert_eq!(bootstrapped, 29);
}

#[test]
fn announce_is_found_by_every_other_node() {
    let mut net = Net::new(25, local);
    net.bootstrap_all();
    let info_hash = Id::new([0x42; 20]);
    let now = net.now;
    let q = net.nodes[3]
        .announce_peer(now, info_hash, Some(5555))
        .unwrap();
    let outcome = net.run_until_finished(3, q);
    assert_eq!(outcome.status, QueryStatus::Completed);
    assert!(outcome.announced >= 1, "{outcome:?}");
    let expect = SocketAddr::new(addr(3).ip(), 5555);
    for i in 0..25 {
        if i == 3 {
            continue;
        }
        let now = net.now;
        let q = net.nodes[i].get_peers(now, info_hash).unwrap();
        let outcome = net.run_until_finished(i, q);
        assert_eq!(outcome.kind, CommandKind::GetPeers);
        let peers = net.peers_found(i, q);
        assert!(peers.contains(&expect), "node {i} found {peers:?}");
        assert!(outcome.metrics.time_to_first_peer.is_some());
    }
}

#[test]
fn implied_port_stores_the_source_port() {
    let mut net = Net::new(12, local);
    net.bootstrap_all();
    let info_hash = Id::new([0x17; 20]);
    let now = net.now;
    let q = net.nodes[5].announce_peer(now, info_hash, None).unwrap();
    let outcome = net.run_until_finished(5, q);
    assert!(outcome.announced >= 1);
    let now = net.now;
    let q = net.nodes[7].get_peers(now, info_hash).unwrap();
    net.run_until_finished(7, q);
    // The DHT socket's port (6881), not a port named in the message.
    assert!(net.peers_found(7, q).contains(&addr(5)));
}

fn get_token(node: &mut Node, now: Instant, from: SocketAddr, info_hash: Id) -> Vec<u8> {
    let q = encode(&Message {
        transaction_id: b"gp",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query::GetPeers(GetPeers {
            id: Id::new([9; 20]),
            info_hash,
            want: None,
            noseed: false,
            scrape: false,
        })),
    });
    let answers = exchange(node, now, from, &q);
    let msg = Message::decode(&answers[0], &Default::default()).unwrap();
    match msg.body {
        Body::Response(r) => r.token.unwrap().to_vec(),
        other => panic!("{other:?}"),
    }
}

fn announce(
    node: &mut Node,
    now: Instant,
    from: SocketAddr,
    info_hash: Id,
    token: &[u8],
) -> Vec<Vec<u8>> {
    let q = encode(&Message {
        transaction_id: b"an",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query::AnnouncePeer(AnnouncePeer {
            id: Id::new([9; 20]),
            info_hash,
            port: 4000,
            implied_port: false,
            token,
            seed: false,
        })),
    });
    exchange(node, now, from, &q)
}

fn is_error(datagram: &[u8], code: i64) -> bool {
    matches!(Message::decode(datagram, &Default::default()).unwrap().body, Body::Error(e) if e.code == code)
}

#[test]
fn announce_with_wrong_or_expired_token_is_refused() {
    let now = Instant::from_secs(10);
    let mut node = Node::new(local(1), now).unwrap();
    let me = addr(7);
    let other = addr(8);
    let ih = Id::new([1; 20]);
    let token = get_token(&mut node, now, me, ih);
    // A token issued to another address.
    let answers = announce(&mut node, now, other, ih, &token);
    assert!(
        is_error(&answers[0], 203),
        "{}",
        Message::decode(&answers[0], &Default::default()).unwrap()
    );
    // A made-up token.
    let answers = announce(&mut node, now, me, ih, b"12345678");
    assert!(is_error(&answers[0], 203));
    assert_eq!(node.stored_info_hashes(), 0);
    // Expired: two rotations later.
    let later = now + node.config().token_rotation * 2 + Duration::from_secs(1);
    node.handle_timeout(now + node.config().token_rotation);
    node.handle_timeout(later);
    let answers = announce(&mut node, later, me, ih, &token);
    assert!(
        is_error(&answers[0], 203),
        "{}",
        Message::decode(&answers[0], &Default::default()).unwrap()
    );
    assert_eq!(node.stored_info_hashes(), 0);
    // A fresh token works.
    let token = get_token(&mut node, later, me, ih);
    let answers = announce(&mut node, later, me, ih, &token);
    assert!(!is_error(&answers[0], 203));
    assert_eq!(node.stored_info_hashes(), 1);
}

#[test]
fn response_from_wrong_address_is_ignored() {
    let now = Instant::from_secs(10);
    let mut node = Node::new(local(1), now).unwrap();
    let q = node.ping(now, addr(2)).unwrap();
    let mut buf = [0u8; 1500];
    let t = node.poll_transmit(now, &mut buf).unwrap();
    let sent = Message::decode(&buf[..t.len], &Default::default()).unwrap();
    let tid = sent.transaction_id.to_vec();
    let mut resp = crate::wire::krpc::Response::new(Id::new([5; 20]));
    resp.token = None;
    let answer = encode(&Message {
        transaction_id: &tid,
        version: None,
        ip: None,
        read_only: false,
        body: Body::Response(resp),
    });
    assert_eq!(
        node.handle_datagram(now, addr(3), &answer),
        Disposition::Dropped(DropReason::WrongSource)
    );
    assert_eq!(node.stats().dropped(DropReason::WrongSource), 1);
    assert!(node.is_running(q));
    // A forged transaction id from the right address is unknown.
    let mut forged = tid;
    *forged.last_mut().unwrap() ^= 0xff;
    let bad = encode(&Message {
        transaction_id: &forged,
        version: None,
        ip: None,
        read_only: false,
        body: Body::Response(crate::wire::krpc::Response::new(Id::new([5; 20]))),
    });
    assert_eq!(
        node.handle_datagram(now, addr(2), &bad),
        Disposition::Dropped(DropReason::UnknownTransaction)
    );
    // The right one is accepted and finishes the ping.
    assert_eq!(
        node.handle_datagram(now, addr(2), &answer),
        Disposition::Accepted
    );
    assert!(!node.is_running(q));
    match node.poll_event() {
        Some(Event::QueryFinished { query, outcome }) => {
            assert_eq!(query, q);
            assert_eq!(outcome.status, QueryStatus::Completed);
            assert_eq!(outcome.responder, Some(Id::new([5; 20])));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn silent_node_times_out_and_is_marked_failed() {
    let mut net = Net::new(3, local);
    net.bootstrap_all();
    let dead_id = net.nodes[2].id();
    net.alive[2] = false;
    assert!(net.nodes[1].routing_table().contains(&dead_id));
    let now = net.now;
    let q = net.nodes[1].ping(now, addr(2)).unwrap();
    let outcome = net.run_until_finished(1, q);
    assert_eq!(outcome.status, QueryStatus::TimedOut);
    assert!(net.nodes[1].stats().timeouts >= 1);
    let entry = net.nodes[1]
        .routing_table()
        .get(&dead_id)
        .map(|e| e.failures());
    assert!(
        entry.is_none_or(|f| f >= 1),
        "failure recorded or entry removed"
    );
}

#[test]
fn read_only_node_gets_answers_but_never_enters_tables() {
    let mut net = Net::new(10, |i| {
        let mut c = local(i);
        c.read_only = i == 9;
        c
    });
    net.bootstrap_all();
    let ro_id = net.nodes[9].id();
    assert!(
        net.nodes[9].is_bootstrapped(),
        "a read-only node can still look up"
    );
    for i in 0..9 {
        assert!(
            !net.nodes[i].routing_table().contains(&ro_id),
            "node {i} added the read-only node"
        );
    }
    let now = net.now;
    let q = net.nodes[9].get_peers(now, Id::new([3; 20])).unwrap();
    let outcome = net.run_until_finished(9, q);
    assert!(outcome.metrics.responses > 0);
    // It answers nothing.
    let answers = exchange(
        &mut net.nodes[9],
        now,
        addr(1),
        &ping_query(b"aa", Id::new([4; 20])),
    );
    assert!(answers.is_empty());
    assert_eq!(net.nodes[9].stats().dropped(DropReason::ReadOnly), 1);
}

#[test]
fn custom_query_round_trips() {
    let mut net = Net::new(2, |i| {
        let mut c = local(i);
        c.custom_queries = true;
        c
    });
    let now = net.now;
    let mut args = [0u8; 64];
    let mut w = Writer::new(&mut args);
    w.begin_dict();
    w.bytes(b"x");
    w.int(42);
    w.end();
    let len = w.finish().unwrap();
    let q = net.nodes[0]
        .send_query(now, addr(1), b"echo", &args[..len])
        .unwrap();
    net.drain();
    net.step();
    let (handle, got_args) = net
        .events
        .iter()
        .find_map(|(i, e)| match e {
            Event::CustomQuery {
                handle,
                method,
                args,
                from,
            } if *i == 1 => {
                assert_eq!(method, b"echo");
                assert_eq!(*from, addr(0));
                Some((*handle, args.clone()))
            }
            _ => None,
        })
        .expect("custom query event");
    // The node added its id in canonical position.
    let mut expect = b"d2:id20:".to_vec();
    expect.extend_from_slice(net.nodes[0].id().as_bytes());
    expect.extend_from_slice(b"1:xi42ee");
    assert_eq!(got_args, expect);
    net.nodes[1].respond(handle, b"d5:helloi7ee").unwrap();
    assert_eq!(
        net.nodes[1].respond(handle, b"de"),
        Err(CommandError::UnknownQuery)
    );
    let outcome = net.run_until_finished(0, q);
    assert_eq!(outcome.status, QueryStatus::Completed);
    let body = outcome.response.unwrap();
    assert!(body.windows(9).any(|w| w == b"5:helloi7"), "{body:?}");
}

#[test]
fn unknown_method_gets_204_without_custom_queries() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(local(1), now).unwrap();
    let mut q = b"d1:ad2:id20:".to_vec();
    q.extend_from_slice(&[7; 20]);
    q.extend_from_slice(b"e1:q3:foo1:t2:xy1:y1:qe");
    let answers = exchange(&mut node, now, addr(2), &q);
    assert!(is_error(&answers[0], 204));
    assert_eq!(node.stats().queries_received.get(MethodKind::Other), 1);
}

#[test]
fn malformed_query_gets_203() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(local(1), now).unwrap();
    // A ping whose id is 3 bytes.
    let answers = exchange(
        &mut node,
        now,
        addr(2),
        b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe",
    );
    assert_eq!(answers.len(), 1);
    assert!(is_error(&answers[0], 203));
    assert_eq!(node.stats().dropped(DropReason::Malformed), 1);
    // Garbage gets nothing.
    assert!(exchange(&mut node, now, addr(2), b"\x00\x01garbage").is_empty());
}

#[test]
fn query_received_reports_what_arrived() {
    let mut config = local(1);
    config.report_queries = true;
    let now = Instant::from_secs(1);
    let mut node = Node::new(config, now).unwrap();
    let ih = Id::new([0xab; 20]);
    let token = get_token(&mut node, now, addr(2), ih);
    let _ = announce(&mut node, now, addr(2), ih, &token);
    let events: Vec<Event> = core::iter::from_fn(|| node.poll_event()).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    match &events[0] {
        Event::QueryReceived {
            from,
            id,
            method,
            target,
            announced_port,
        } => {
            assert_eq!(*from, addr(2));
            assert_eq!(*id, Id::new([9; 20]));
            assert_eq!(*method, MethodKind::GetPeers);
            assert_eq!(*target, Some(ih));
            assert_eq!(*announced_port, None);
        }
        other => panic!("{other:?}"),
    }
    match &events[1] {
        Event::QueryReceived {
            method,
            announced_port,
            ..
        } => {
            assert_eq!(*method, MethodKind::AnnouncePeer);
            assert_eq!(*announced_port, Some(4000));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut net = Net::new(15, local);
        net.bootstrap_all();
        let now = net.now;
        let q = net.nodes[4]
            .announce_peer(now, Id::new([8; 20]), Some(1234))
            .unwrap();
        net.run_until_finished(4, q);
        let q = net.nodes[9].get_peers(net.now, Id::new([8; 20])).unwrap();
        net.run_until_finished(9, q);
        (net.trace, net.events)
    };
    let (t1, e1) = run();
    let (t2, e2) = run();
    assert!(t1.len() > 100);
    assert_eq!(t1, t2);
    assert_eq!(e1, e2);
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut node = Node::new(local(1), Instant::from_secs(100)).unwrap();
    node.handle_timeout(Instant::from_secs(50));
    let _ = node.ping(Instant::from_secs(10), addr(2)).unwrap();
    let deadline = node.poll_timeout().unwrap();
    assert!(deadline > Instant::from_secs(100));
}

#[test]
fn event_queue_overflow_is_reported() {
    let mut config = local(1);
    config.report_queries = true;
    config.limits.max_pending_events = 4;
    let now = Instant::from_secs(1);
    let mut node = Node::new(config, now).unwrap();
    for i in 0..10u8 {
        let _ = exchange(
            &mut node,
            now,
            addr(2),
            &ping_query(&[i], Id::new([i + 1; 20])),
        );
    }
    let events: Vec<Event> = core::iter::from_fn(|| node.poll_event()).collect();
    assert_eq!(events.len(), 5);
    assert_eq!(events[4], Event::EventsDropped { count: 6 });
    assert_eq!(node.stats().events_dropped, 6);
}

#[test]
fn query_cap_is_enforced() {
    let mut config = local(1);
    config.limits.max_queries = 2;
    let now = Instant::from_secs(1);
    let mut node = Node::new(config, now).unwrap();
    node.ping(now, addr(2)).unwrap();
    node.ping(now, addr(3)).unwrap();
    assert_eq!(node.ping(now, addr(4)), Err(CommandError::TooManyQueries));
    assert_eq!(node.get_peers(now, Id::ZERO), Err(CommandError::NoContacts));
}

/// Regression (found by the node property test): before bootstrap, a bucket's refresh deadline
/// that came due stayed in the past, so `poll_timeout` kept returning it and a driver spun.
#[test]
fn refresh_deadline_moves_on_before_bootstrap() {
    let start = Instant::from_secs(1);
    let mut node = Node::new(local(3), start).unwrap();
    node.add_node(start, addr(40), Some(Id::new([0x40; 20])))
        .unwrap();
    let later = start + node.config().bucket_refresh_interval + Duration::from_secs(18);
    node.handle_timeout(later);
    let mut buf = [0u8; 1500];
    while node.poll_transmit(later, &mut buf).is_some() {}
    while node.poll_event().is_some() {}
    let next = node.poll_timeout().expect("a node always has some timer");
    assert!(next > later, "poll_timeout {next} is not after {later}");
}

/// BEP 42 enforcement: a public address whose id does not match it is answered but kept out of
/// the table; a matching id from the same kind of address gets in; without enforcement both do.
#[test]
fn enforce_node_id_keeps_mismatched_ids_out_of_the_table() {
    let now = Instant::from_secs(1);
    let public_a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(21, 75, 31, 124)), 6881);
    let public_b = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(65, 23, 51, 170)), 6881);
    let mut rng = Rng::new([5; 32]);
    let good = crate::bep42::generate_id(public_b.ip(), 0x56, &mut rng);
    let mut bad = crate::bep42::generate_id(public_a.ip(), 0x56, &mut rng);
    bad = bad.with_bit(0, !bad.bit(0));
    assert!(!crate::bep42::id_is_acceptable(&bad, public_a.ip()));
    for enforce in [true, false] {
        let mut config = local(9);
        config.enforce_node_id = enforce;
        let mut node = Node::new(config, now).unwrap();
        let answers = exchange(&mut node, now, public_a, &ping_query(b"p1", bad));
        assert_eq!(answers.len(), 1, "answered either way");
        let _ = exchange(&mut node, now, public_b, &ping_query(b"p2", good));
        assert_eq!(node.routing_table().contains(&bad), !enforce);
        assert!(node.routing_table().contains(&good));
    }
}

#[test]
fn query_metrics_show_progress_while_running_and_vanish_after() {
    let mut net = Net::new(6, local);
    net.bootstrap_all();
    let now = net.now;
    let q = net.nodes[2].find_node(now, Id::new([3; 20])).unwrap();
    net.drain();
    let sent = net.nodes[2]
        .query_metrics(q)
        .expect("running")
        .messages_sent;
    assert!(sent >= 1, "the lookup has sent its first requests");
    net.run_until_finished(2, q);
    assert!(net.nodes[2].query_metrics(q).is_none());
}

/// The per-entry sizes `Limits` documents for its worst-case memory are not optimistic.
#[test]
fn limits_docs_match_the_real_entry_sizes() {
    use core::mem::size_of;
    assert!(size_of::<Txn>() + 48 <= 160, "max_in_flight doc");
    assert!(size_of::<QueryState>() <= 512, "max_queries doc");
    assert!(
        size_of::<crate::lookup::Candidate>() <= 112,
        "max_queries doc"
    );
    assert!(size_of::<Out>() <= 160, "max_pending_transmits doc");
    assert!(size_of::<Event>() <= 192, "max_pending_events doc");
    assert!(size_of::<PendingCustom>() <= 96, "max_pending_custom doc");
}

/// A `find_node` reply whose `nodes` is cut mid-entry (as some deployed nodes send): the whole
/// entries are queried next, and the reply is counted in `Stats::truncated_nodes`.
#[test]
fn truncated_nodes_reply_is_used() {
    let now = Instant::from_secs(10);
    let mut node = Node::new(local(1), now).unwrap();
    let q = node.bootstrap(now, [addr(2)]).unwrap();
    let mut buf = [0u8; 1500];
    let t = node.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(t.to, addr(2));
    let sent = Message::decode(&buf[..t.len], &Default::default()).unwrap();
    let tid = sent.transaction_id.to_vec();
    let mut nodes = Vec::new();
    for (i, fill) in [(3usize, 0x33u8), (4, 0x44)] {
        let mut entry = [0u8; 38];
        let len = crate::wire::compact::encode_node(
            &NodeInfo::new(Id::new([fill; 20]), addr(i)),
            &mut entry,
        );
        assert_eq!(len, 26);
        nodes.extend_from_slice(&entry[..len]);
    }
    nodes.extend_from_slice(&[0x55; 11]);
    let mut reply = b"d1:rd2:id20:".to_vec();
    reply.extend_from_slice(&[0x22; 20]);
    reply.extend_from_slice(alloc::format!("5:nodes{}:", nodes.len()).as_bytes());
    reply.extend_from_slice(&nodes);
    reply.extend_from_slice(alloc::format!("e1:t{}:", tid.len()).as_bytes());
    reply.extend_from_slice(&tid);
    reply.extend_from_slice(b"1:y1:re");
    assert_eq!(
        node.handle_datagram(now, addr(2), &reply),
        Disposition::Accepted
    );
    assert_eq!(node.stats().truncated_nodes, 1);
    let mut next = Vec::new();
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        next.push(t.to);
    }
    assert!(
        next.contains(&addr(3)) && next.contains(&addr(4)),
        "{next:?}"
    );
    assert!(node.is_running(q));
}

#[test]
fn query_ids_are_never_reused_past_u32() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(local(1), now).unwrap();
    let peer = addr(2);
    // As if four billion commands had run: the 32-bit counter of old would wrap here.
    node.next_query = u64::from(u32::MAX) - 1;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let q = node.ping(now, peer).unwrap();
        node.cancel(q).unwrap();
        seen.push(q);
    }
    // One slot reused four times, four distinct ids, counting on past 2^32.
    let serials: Vec<u64> = seen.iter().map(|q| q.as_u64()).collect();
    let first = u64::from(u32::MAX) - 1;
    assert_eq!(serials, [first, first + 1, first + 2, first + 3]);
    assert!(seen.iter().all(|q| q.slot() == seen[0].slot()));
    assert!(!node.is_running(seen[0]));
    assert_eq!(node.cancel(seen[0]), Err(CommandError::UnknownQuery));
}

#[test]
fn query_ids_run_out_by_refusing_commands() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(local(1), now).unwrap();
    node.next_query = u64::MAX;
    assert_eq!(node.ping(now, addr(2)), Err(CommandError::TooManyQueries));
}

/// A node that knows a single contact, whose first lookup request is lost, asks it again after
/// the timeout and completes instead of giving up.
#[test]
fn a_lookup_through_one_contact_survives_one_lost_datagram() {
    let mut net = Net::new(2, local);
    let now = net.now;
    let contact = NodeInfo {
        id: net.nodes[0].id(),
        addr: addr(0),
    };
    let taken = net.nodes[1].import_answered_nodes(now, [(contact, Duration::from_millis(20))]);
    assert_eq!(taken, 1);
    let q = net.nodes[1].find_node(now, Id::new([0x42; 20])).unwrap();
    net.drain();
    let lost = net.queue.pop_front().expect("the lookup's first request");
    assert_eq!(lost.2, addr(0));
    assert!(net.queue.is_empty());
    let outcome = net.run_until_finished(1, q);
    assert_eq!(outcome.metrics.responses, 1, "{outcome:?}");
    assert_eq!(outcome.metrics.timeouts, 1);
    assert_eq!(outcome.metrics.messages_sent, 2);
    assert_eq!(outcome.closest.len(), 1);
}

/// Contacts handed over as answered are verified entries at once, with their round trip,
/// and cost no datagram.
#[test]
fn answered_contacts_enter_as_verified_entries() {
    let mut node = Node::new(local(1), NET_START).unwrap();
    let contacts = (2..12).map(|i| {
        let id = Node::new(local(i), NET_START).unwrap().id();
        (
            NodeInfo { id, addr: addr(i) },
            Duration::from_millis(10 * i as u64),
        )
    });
    let own = (
        NodeInfo {
            id: node.id(),
            addr: addr(1),
        },
        Duration::from_millis(5),
    );
    let taken = node.import_answered_nodes(NET_START, contacts.chain([own]));
    assert_eq!(taken, 10, "the own id is refused");
    let table = node.routing_table();
    assert_eq!(table.len(), 10);
    for e in table.iter() {
        assert!(e.is_verified());
        assert_eq!(e.last_response(), Some(NET_START));
        let i = (2..12).find(|&i| addr(i) == e.addr()).unwrap();
        assert_eq!(e.rtt(), Some(Duration::from_millis(10 * i as u64)));
    }
    let mut buf = [0u8; 1500];
    assert!(node.poll_transmit(NET_START, &mut buf).is_none());
}

/// The short timeout is capped by `Config::short_timeout`, unless the node's own round trips
/// are longer: a node on a slow link would otherwise give up on every request.
#[test]
fn a_slow_link_raises_the_short_timeout_cap() {
    let mut node = Node::new(local(1), NET_START).unwrap();
    let cap = node.config().short_timeout;
    let stranger = addr(7);
    assert_eq!(node.short_timeout(None, &stranger), cap);
    node.record_rtt(Duration::from_millis(60));
    assert_eq!(
        node.short_timeout(None, &stranger),
        Duration::from_millis(170).min(cap)
    );
    for _ in 0..64 {
        node.record_rtt(Duration::from_secs(2));
    }
    let slow = node.short_timeout(None, &stranger);
    assert!(slow > Duration::from_millis(2_900), "{slow:?}");
    assert!(slow <= node.config().query_timeout);
}

/// A dead node among the k closest, learned after the lookup has seen a few answers: its
/// request carries the lookup's release time (about one of its round trips), and once the
/// others have answered the lookup ends then, without it, rather than after its short timeout.
#[test]
fn a_dead_node_among_the_closest_holds_the_end_only_until_the_release_time() {
    let rtt = Duration::from_millis(40);
    let mut net = Net::new(14, local);
    let now = net.now;
    let ids: Vec<Id> = net.nodes.iter().map(Node::id).collect();
    let info = |i: usize| NodeInfo {
        id: ids[i],
        addr: addr(i),
    };
    let target = Id::new([0x42; 20]);
    // Node 0 knows 1, 2 and 3 only; 3 (the slowest to answer) knows 4..14, the others
    // each other. The nearest of 4..14 to the target is dead.
    for (i, knows) in [(0, 1..4), (1, 1..4), (2, 1..4), (3, 4..14)] {
        let contacts: Vec<(NodeInfo, Duration)> =
            knows.filter(|&j| j != i).map(|j| (info(j), rtt)).collect();
        net.nodes[i].import_answered_nodes(now, contacts);
    }
    let dead = (4..14).min_by_key(|&i| ids[i].distance(&target)).unwrap();
    net.alive[dead] = false;
    net.extra_delay[3] = Duration::from_millis(20);
    let short = net.nodes[0].short_timeout(Some(ids[dead]), &addr(dead));
    let q = net.nodes[0].find_node(now, target).unwrap();
    let outcome = net.run_until_finished(0, q);
    let closest: Vec<Id> = outcome.closest.iter().map(|n| n.id).collect();
    assert!(!closest.contains(&ids[dead]), "{closest:?}");
    assert_eq!(closest.len(), 8);
    // Node 3's answer comes at 60 ms and the last round asks 4..14 then; with the release
    // time the lookup ends one round trip (at least 50 ms) after that, not a short timeout.
    let took = outcome.metrics.duration;
    let third = rtt + Duration::from_millis(20);
    assert!(took < third + short, "{took:?} against {short:?}");
    assert!(
        took <= third + Duration::from_millis(50) + Duration::from_millis(1),
        "{took:?}"
    );
}

/// The samples of a `sample_infohashes` reply from `node` to `from` (transaction id `tid`),
/// and the reply's `num` and `interval`.
#[track_caller]
fn sample_reply(
    node: &mut Node,
    now: Instant,
    from: SocketAddr,
    tid: &[u8],
) -> (Vec<Id>, Option<i64>, Option<i64>) {
    use crate::wire::krpc::SampleInfohashes;
    let q = query_datagram(
        tid,
        Query::SampleInfohashes(SampleInfohashes {
            id: Id::new([9; 20]),
            target: Id::new([7; 20]),
            want: None,
        }),
    );
    let answers = exchange(node, now, from, &q);
    assert_eq!(answers.len(), 1);
    let msg = Message::decode(&answers[0], &Default::default()).unwrap();
    match msg.body {
        Body::Response(r) => (r.samples.unwrap().iter().collect(), r.num, r.interval),
        other => panic!("{other:?}"),
    }
}

/// BEP 51: replies within the announced `interval` share one sample (a reply with less room
/// gets a prefix of it); after the interval, a new one is drawn.
#[test]
fn sample_infohashes_replies_share_one_sample_per_interval() {
    let now = Instant::from_secs(1000);
    let mut node = Node::new(local(0), now).unwrap();
    let stored = 300u32;
    for i in 0..stored {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(&i.to_be_bytes());
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 6881);
        let _ = node.peers.announce(now, Id::new(h), peer, false);
    }
    let (first, num, interval) = sample_reply(&mut node, now, addr(1), b"s1");
    assert_eq!(num, Some(i64::from(stored)));
    assert_eq!(interval, Some(300));
    assert!(first.len() >= 40, "{}", first.len());
    let mut sorted = first.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), first.len(), "distinct");
    assert!(first.iter().all(|h| node.peers.contains(h)));
    // Another requester within the interval: the same sample.
    let later = now + Duration::from_secs(299);
    let (second, _, _) = sample_reply(&mut node, later, addr(2), b"s2");
    assert_eq!(second, first);
    // An IPv6 requester (its address takes 12 more bytes in `ip`) with a longer transaction
    // id leaves room for fewer: a prefix of the same sample.
    let v6 = SocketAddr::new(IpAddr::V6(core::net::Ipv6Addr::LOCALHOST), 6881);
    let (shorter, _, _) = sample_reply(&mut node, later, v6, &[b'x'; 16]);
    assert!(shorter.len() < first.len());
    assert_eq!(shorter[..], first[..shorter.len()]);
    // The interval has passed: a new draw.
    let (third, _, _) = sample_reply(&mut node, now + Duration::from_secs(300), addr(4), b"s3");
    assert_eq!(third.len(), first.len());
    assert_ne!(third, first);
    assert!(third.iter().all(|h| node.peers.contains(h)));
}
