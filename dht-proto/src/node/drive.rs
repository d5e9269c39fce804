//! A whole-node driver for the `node` fuzz target and the node property test: feeds a
//! byte-described sequence of time steps and datagrams to one [`Node`] and checks its
//! invariants after every step.
//!
//! Input format: a sequence of records `step: u8`, `kind: u8`, `len: u16` (little endian), then
//! `len` bytes (fewer if the input ends). Each record:
//! - advances virtual time by `step²` milliseconds (zero repeats the time);
//! - runs the timers first when `kind` is odd;
//! - picks the source among eight addresses with `kind % 8` (IPv4, IPv6, IPv4-mapped, port 1,
//!   loopback, public);
//! - with `kind & 0x40`, wraps the bytes as the `r` dictionary of a response to the most recent
//!   query the node sent (right transaction id, right source), so that responses reach the
//!   lookup code instead of being dropped as unknown transactions;
//! - with `kind & 0x80` and a pending custom query, answers it with the bytes as the response.
//!
//! Checked after each record: every transmit fits the datagram limit and decodes with the
//! node's own decoder; every queue and table is within its cap; a query ends with at most one
//! `QueryFinished`; after `handle_timeout(now)` and a full drain, `poll_timeout()` is later
//! than `now` (a driver that sleeps until then never spins).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use crate::event::{CommandKind, CustomHandle, Event, QueryId};
use crate::wire::encode::Writer;
use crate::wire::krpc::{Body, Message};
use crate::{Config, Id, Instant, Node};

/// The eight source addresses a record can pick.
const SOURCES: [SocketAddr; 8] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 6881),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 6881),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), 1),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 6881),
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 65535),
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 6881),
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        6881,
    ),
    SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
        6881,
    ),
];

/// The configuration the driver runs: small caps so that the fuzzer reaches them.
pub(crate) fn config() -> Config {
    let mut config = Config::local_testing([7; 32]);
    config.ipv6 = true;
    config.report_queries = true;
    config.custom_queries = true;
    config.limits.max_pending_events = 64;
    config.limits.max_pending_transmits = 64;
    config.limits.max_in_flight = 32;
    config.limits.max_queries = 8;
    config.limits.max_candidates = 32;
    config.limits.max_info_hashes = 16;
    config.limits.max_peers_per_info_hash = 8;
    config.limits.max_stored_peers = 64;
    config.limits.max_pending_custom = 4;
    config
}

/// The most recent query the node sent: where, and its transaction id.
struct LastQuery {
    to: SocketAddr,
    tid: Vec<u8>,
}

/// What the driver remembers from the node's outputs.
#[derive(Default)]
struct Seen {
    /// The latest query sent, to aim responses at.
    last: Option<LastQuery>,
    /// A custom query waiting for the application's answer.
    custom: Option<CustomHandle>,
    /// Every query that has finished.
    finished: BTreeSet<QueryId>,
    /// Those of them that the driver started (not refreshes or bootstrap retries).
    own: BTreeSet<QueryId>,
}

/// Runs one input; panics (through `assert!`) only when the node breaks an invariant.
pub(crate) fn drive(data: &[u8]) {
    let config = config();
    let limits = config.limits.clone();
    let mut now = Instant::from_millis(1_000);
    let Ok(mut node) = Node::new(config, now) else {
        return;
    };
    let mut started: BTreeSet<QueryId> = BTreeSet::new();
    let mut seen = Seen::default();
    let seeds = SOURCES.iter().take(2).copied();
    started.extend(node.bootstrap(now, seeds).ok());
    started.extend(node.get_peers(now, Id::new([0x55; 20])).ok());
    started.extend(node.announce_peer(now, Id::new([0x66; 20]), None).ok());
    let mut buf = alloc::vec![0u8; 1500];
    let mut rest = data;
    while let [step, kind, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(u64::from(*step) * u64::from(*step));
        if kind & 1 == 1 {
            node.handle_timeout(now);
        }
        let from = SOURCES
            .get(usize::from(kind % 8))
            .copied()
            .unwrap_or(SOURCES[0]);
        if kind & 0x80 != 0 {
            if let Some(handle) = seen.custom.take() {
                let _ = node.respond(handle, bytes);
            }
        } else if kind & 0x40 != 0 {
            if let Some(q) = &seen.last {
                let wrapped = wrap_response(&q.tid, bytes);
                let _ = node.handle_datagram(now, q.to, &wrapped);
            }
        } else {
            let _ = node.handle_datagram(now, from, bytes);
        }
        drain(&mut node, now, &mut buf, &limits, &mut seen);
        check_caps(&node, &limits);
        node.handle_timeout(now);
        drain(&mut node, now, &mut buf, &limits, &mut seen);
        check_caps(&node, &limits);
        if let Some(t) = node.poll_timeout() {
            assert!(
                t > now,
                "timer would spin: {t} <= {now}: {:?}",
                node.next_timer()
            );
        }
        // Keep the node busy: restart lookups that ended.
        if node.running_queries() == 0 {
            let target = Id::new([*step; 20]);
            started.extend(node.find_node(now, target).ok());
        }
        if kind & 0x20 != 0 {
            started.extend(node.ping(now, from).ok());
        }
    }
    // Commands end once: those finished are a subset of those started.
    assert!(
        seen.own.is_subset(&started),
        "a QueryFinished for a query never started"
    );
}

/// `d1:r<body>1:t<tid>1:y1:re`: a response datagram around an arbitrary `r` value.
fn wrap_response(tid: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = alloc::vec![0u8; body.len() + tid.len() + 32];
    let mut w = Writer::new(&mut out);
    w.begin_dict();
    w.bytes(b"r");
    w.raw(body);
    w.bytes(b"t");
    w.bytes(tid);
    w.bytes(b"y");
    w.bytes(b"r");
    w.end();
    match w.finish() {
        Ok(n) => {
            out.truncate(n);
            out
        }
        Err(_) => Vec::new(),
    }
}

/// Takes every transmit and event, checking each.
fn drain(
    node: &mut Node,
    now: Instant,
    buf: &mut [u8],
    limits: &crate::config::Limits,
    seen: &mut Seen,
) {
    while let Some(t) = node.poll_transmit(now, buf) {
        assert!(t.len <= limits.max_datagram, "oversized transmit");
        let sent = buf.get(..t.len).unwrap_or(&[]);
        let msg = Message::decode(sent, &limits.decode);
        assert!(
            msg.is_ok(),
            "the node sent a datagram it cannot decode: {msg:?}"
        );
        if let Ok(Message {
            transaction_id,
            body: Body::Query(_),
            ..
        }) = msg
        {
            seen.last = Some(LastQuery {
                to: t.to,
                tid: transaction_id.to_vec(),
            });
        }
    }
    while let Some(event) = node.poll_event() {
        match event {
            Event::QueryFinished { query, outcome } => {
                assert!(
                    seen.finished.insert(query),
                    "two QueryFinished for {query:?}"
                );
                // Refreshes and bootstrap retries are the node's own; the rest must be ours.
                if !matches!(outcome.kind, CommandKind::Refresh | CommandKind::Bootstrap) {
                    seen.own.insert(query);
                }
            }
            Event::CustomQuery { handle, .. } => seen.custom = Some(handle),
            _ => {}
        }
    }
}

/// Every queue and table within its cap.
fn check_caps(node: &Node, limits: &crate::config::Limits) {
    assert_eq!(node.pending_transmits(), 0);
    assert_eq!(node.pending_events(), 0);
    assert!(node.in_flight() <= limits.max_in_flight);
    assert!(node.running_queries() <= limits.max_queries);
    assert!(node.stored_info_hashes() <= limits.max_info_hashes);
    assert!(node.stored_peers() <= limits.max_stored_peers);
}
