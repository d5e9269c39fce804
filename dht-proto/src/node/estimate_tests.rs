//! The size estimate of a node driven by hand: which of a lookup's closest nodes it counts.

use alloc::vec::Vec;
use core::time::Duration;

use super::tests::{NET_START, addr, seed};
use super::*;
use crate::estimate::{SizeEstimate, SizeEstimator};
use crate::event::{Event, QueryStatus};
use crate::wire::krpc::{Body, Message};

/// The target of the lookups, and the ids of ten nodes around it at distances 1..=10 (in
/// units of 2^-8 of the id space), nearest first.
fn target_and_ring() -> (Id, Vec<NodeInfo>) {
    let target = Id::new([0; 20]);
    let ring = (1..=10u8)
        .map(|i| {
            let mut b = [0x5a; 20];
            b[0] = i;
            NodeInfo::new(Id::new(b), addr(usize::from(i) + 10))
        })
        .collect();
    (target, ring)
}

/// A `find_node` answer from `id` with transaction `tid`, listing `nodes`.
fn reply(tid: &[u8], id: Id, nodes: &[NodeInfo]) -> Vec<u8> {
    let mut compact = Vec::new();
    for n in nodes {
        let mut entry = [0u8; 38];
        let len = crate::wire::compact::encode_node(n, &mut entry);
        compact.extend_from_slice(&entry[..len]);
    }
    let mut r = b"d1:rd2:id20:".to_vec();
    r.extend_from_slice(id.as_bytes());
    r.extend_from_slice(alloc::format!("5:nodes{}:", compact.len()).as_bytes());
    r.extend_from_slice(&compact);
    r.extend_from_slice(alloc::format!("e1:t{}:", tid.len()).as_bytes());
    r.extend_from_slice(tid);
    r.extend_from_slice(b"1:y1:re");
    r
}

/// Runs a `find_node` of the ring's target through one router that lists the ring from
/// index `listed_from` on (the farthest ring node lists the whole ring). Every ring node
/// answers at once except `straggler` (an index into the ring), whose request is held back;
/// returns the node, the held request's transaction id, and the time.
fn lookup_with_a_straggler(straggler: usize, listed_from: usize) -> (Node, Vec<u8>, Instant) {
    let (target, ring) = target_and_ring();
    let mut now = NET_START;
    let mut node = Node::new(Config::local_testing(seed(1)), now).unwrap();
    let router = NodeInfo::new(Id::new([0xff; 20]), addr(2));
    let taken = node.import_answered_nodes(now, [(router, Duration::from_millis(20))]);
    assert_eq!(taken, 1);
    let q = node.find_node(now, target).unwrap();
    let mut held = None;
    let mut buf = [0u8; 1500];
    let mut finished = None;
    for _ in 0..100 {
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            let msg = Message::decode(&buf[..t.len], &Default::default()).unwrap();
            assert!(matches!(msg.body, Body::Query(_)));
            let tid = msg.transaction_id.to_vec();
            let answer = if t.to == router.addr {
                reply(&tid, router.id, &ring[listed_from..])
            } else {
                let i = ring.iter().position(|n| n.addr == t.to).unwrap();
                if i == straggler {
                    held = Some(tid);
                    continue;
                }
                let lists = if i + 1 == ring.len() { &ring[..] } else { &[] };
                reply(&tid, ring[i].id, lists)
            };
            let _ = node.handle_datagram(now, t.to, &answer);
        }
        while let Some(e) = node.poll_event() {
            if let Event::QueryFinished { query, outcome } = e {
                if query == q {
                    finished = Some(outcome);
                }
            }
        }
        if finished.is_some() {
            break;
        }
        now = node.poll_timeout().unwrap().max(now);
        node.handle_timeout(now);
    }
    let outcome = finished.expect("the lookup finishes");
    assert_eq!(outcome.status, QueryStatus::Completed);
    // The lookup did not wait for the straggler: it ended past its release time or short
    // timeout, without it.
    assert!(outcome.closest.iter().all(|n| n.id != ring[straggler].id));
    (node, held.expect("the straggler was asked"), now)
}

/// The estimate the node should report: one lookup whose live closest nodes are `live`.
fn expected(live: impl IntoIterator<Item = NodeInfo>) -> Option<SizeEstimate> {
    let (target, _) = target_and_ring();
    let mut e = SizeEstimator::new();
    e.add_lookup(&target, live.into_iter().map(|n| n.id));
    e.estimate()
}

/// A live node among a lookup's closest that answers after its short timeout, once the lookup
/// is over, still counts: the estimate waits for it. (Without it, the eighth-closest node
/// stands in for it and the network reads smaller than it is.)
#[test]
fn a_late_answer_among_the_closest_counts() {
    let (_, ring) = target_and_ring();
    let (mut node, tid, now) = lookup_with_a_straggler(1, 0);
    assert_eq!(
        node.size_estimate(),
        None,
        "the sample waits for the straggler"
    );
    let late = now + Duration::from_millis(100);
    let answer = reply(&tid, ring[1].id, &[]);
    assert_eq!(
        node.handle_datagram(late, ring[1].addr, &answer),
        Disposition::Accepted
    );
    let est = node
        .size_estimate()
        .expect("recorded once the straggler answered");
    assert_eq!(Some(est), expected(ring[..8].iter().copied()));
    assert_eq!(est.lookups, 1);
}

/// A straggler that never answers is left out once its request times out: the estimate then
/// rests on the eight closest nodes that did answer.
#[test]
fn a_straggler_that_times_out_is_left_out() {
    let (_, ring) = target_and_ring();
    let (mut node, _tid, mut now) = lookup_with_a_straggler(1, 0);
    assert_eq!(node.size_estimate(), None);
    let timeouts = node.stats().timeouts;
    while node.size_estimate().is_none() {
        let next = node.poll_timeout().unwrap();
        assert!(
            next <= now + node.config().query_timeout,
            "the request times out"
        );
        now = next.max(now);
        node.handle_timeout(now);
    }
    assert_eq!(node.stats().timeouts, timeouts + 1);
    let live = ring.iter().enumerate().filter(|(i, _)| *i != 1).take(8);
    assert_eq!(node.size_estimate(), expected(live.map(|(_, n)| *n)));
}

/// The same when the straggler was asked after the lookup had answers in hand: its request
/// carried a release time, and the lookup ended then, before its short timeout. The sample
/// still waits for it and counts it once it answers.
#[test]
fn a_released_straggler_among_the_closest_counts() {
    let (_, ring) = target_and_ring();
    let (mut node, tid, now) = lookup_with_a_straggler(1, 4);
    let short = node.short_timeout(Some(ring[1].id), &ring[1].addr);
    assert!(now < NET_START + short, "released before its short timeout");
    assert_eq!(node.size_estimate(), None, "the sample waits for it");
    let answer = reply(&tid, ring[1].id, &[]);
    assert_eq!(
        node.handle_datagram(now + Duration::from_millis(10), ring[1].addr, &answer),
        Disposition::Accepted
    );
    assert_eq!(node.size_estimate(), expected(ring[..8].iter().copied()));
}
