use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::*;

mod model;

use crate::test_rng::TestRng;

const MIN: Duration = Duration::from_secs(60);
const RTT: Duration = Duration::from_millis(50);

/// The plain BEP 5 table (k = 8 everywhere), which these tests reason about; the defaults add
/// larger far buckets, tested on their own below.
pub(super) fn plain() -> TableConfig {
    TableConfig {
        far_buckets: 0,
        far_bucket_size: 8,
        ..TableConfig::default()
    }
}

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// A distinct public IPv4 address per `n`.
fn addr(n: u32) -> SocketAddr {
    let [_, b, c, d] = n.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, b, c, d)), 6881)
}

/// A random id sharing exactly `depth` leading bits with `own`.
fn id_at(own: &Id, depth: usize, rng: &mut TestRng) -> Id {
    let sibling = own.with_bit(depth, !own.bit(depth));
    let id = Id::random_with_prefix(&sibling, depth + 1, rng);
    assert_eq!(own.common_prefix_len(&id), depth);
    id
}

fn table(own: Id) -> RoutingTable {
    RoutingTable::new(own, plain(), t(0))
}

/// Ids of the table's entries.
fn ids(table: &RoutingTable) -> BTreeSet<Id> {
    table.iter().map(|e| e.id()).collect()
}

fn cached(table: &RoutingTable, id: &Id) -> bool {
    table
        .buckets()
        .any(|b| b.replacements().any(|e| e.id() == *id))
}

/// The `n` nearest non-bad entries by sorting the whole table.
fn brute_closest(table: &RoutingTable, target: &Id, n: usize) -> Vec<(Id, SocketAddr)> {
    let mut all: Vec<(Id, SocketAddr)> = table
        .iter()
        .filter(|e| !e.is_bad(table.config()))
        .map(|e| (e.id(), e.addr()))
        .collect();
    all.sort_by_key(|(id, _)| id.distance(target));
    all.truncate(n);
    all
}

/// A table whose farthest bucket (depth 0) is full of verified nodes answered at
/// `t(0)`, `t(1)`, ..., `t(7)` and is no longer the own bucket; its cache is empty.
fn far_bucket_full(own: Id, rng: &mut TestRng) -> (RoutingTable, Vec<(Id, SocketAddr)>) {
    let mut table = table(own);
    let mut far = Vec::new();
    for i in 0..8u32 {
        let node = (id_at(&own, 0, rng), addr(i));
        assert_eq!(
            table.on_response(t(i.into()), node.0, node.1, RTT),
            InsertOutcome::Inserted
        );
        far.push(node);
    }
    // A near node splits the full own bucket.
    let near = id_at(&own, 1, rng);
    assert_eq!(
        table.on_response(t(8), near, addr(100), RTT),
        InsertOutcome::Inserted
    );
    assert_eq!(table.buckets().len(), 2);
    (table, far)
}

// ---- BEP 5 status rules ---------------------------------------------------------------------

#[test]
fn good_after_a_response_within_questionable_after() {
    let config = plain();
    let mut e = Entry::new(Id::MAX, addr(1), t(0));
    assert_eq!(
        e.status(t(0), &config),
        NodeStatus::Questionable,
        "never answered"
    );
    e.record_response(t(100), RTT);
    assert_eq!(e.status(t(100), &config), NodeStatus::Good);
    assert_eq!(
        e.status(t(100) + 15 * MIN - Duration::from_millis(1), &config),
        NodeStatus::Good
    );
    assert_eq!(
        e.status(t(100) + 15 * MIN, &config),
        NodeStatus::Questionable
    );
}

#[test]
fn good_after_a_query_only_if_it_ever_answered() {
    let config = plain();
    let mut never = Entry::new(Id::MAX, addr(1), t(0));
    never.record_query(t(10));
    assert_eq!(never.status(t(10), &config), NodeStatus::Questionable);

    let mut once = Entry::new(Id::MAX, addr(1), t(0));
    once.record_response(t(0), RTT);
    // Silent for an hour: questionable.
    assert_eq!(once.status(t(3600), &config), NodeStatus::Questionable);
    // It sends us a query: good again for 15 minutes, then questionable.
    once.record_query(t(3600));
    assert_eq!(once.status(t(3600), &config), NodeStatus::Good);
    assert_eq!(
        once.status(t(3600) + 15 * MIN - Duration::from_secs(1), &config),
        NodeStatus::Good
    );
    assert_eq!(
        once.status(t(3600) + 15 * MIN, &config),
        NodeStatus::Questionable
    );
}

#[test]
fn bad_after_max_failures_in_a_row() {
    let config = plain();
    assert_eq!(config.max_failures, 3);
    let mut e = Entry::new(Id::MAX, addr(1), t(0));
    e.record_response(t(0), RTT);
    e.record_failure();
    e.record_failure();
    assert_eq!(
        e.status(t(1), &config),
        NodeStatus::Good,
        "two failures are not enough"
    );
    // An answer resets the count: failures must be in a row.
    e.record_response(t(2), RTT);
    e.record_failure();
    e.record_failure();
    assert_ne!(e.status(t(3), &config), NodeStatus::Bad);
    e.record_failure();
    assert_eq!(e.status(t(3), &config), NodeStatus::Bad);
    // Bad does not wear off with time.
    assert_eq!(e.status(t(1_000_000), &config), NodeStatus::Bad);
}

#[test]
fn an_unverified_node_is_bad_after_one_failure() {
    let config = plain();
    let mut e = Entry::new(Id::MAX, addr(1), t(0));
    e.record_failure();
    assert_eq!(e.status(t(0), &config), NodeStatus::Bad);
}

#[test]
fn table_status_follows_the_rules() {
    let own = Id::ZERO;
    let mut table = table(own);
    let id = Id::MAX;
    assert_eq!(table.on_query(t(0), id, addr(1)), InsertOutcome::Inserted);
    assert_eq!(table.status(t(0), &id), Some(NodeStatus::Questionable));
    assert_eq!(
        table.on_response(t(5), id, addr(1), RTT),
        InsertOutcome::Updated
    );
    assert_eq!(table.status(t(5), &id), Some(NodeStatus::Good));
    assert_eq!(
        table.status(t(5) + 15 * MIN, &id),
        Some(NodeStatus::Questionable)
    );
    assert_eq!(
        table.on_query(t(5) + 20 * MIN, id, addr(1)),
        InsertOutcome::Updated
    );
    assert_eq!(table.status(t(5) + 20 * MIN, &id), Some(NodeStatus::Good));
    for _ in 0..3 {
        table.on_failure(t(5) + 21 * MIN, Some(id), addr(1));
    }
    assert_eq!(table.status(t(5) + 21 * MIN, &id), Some(NodeStatus::Bad));
}

#[test]
fn rtt_is_smoothed() {
    let mut e = Entry::new(Id::MAX, addr(1), t(0));
    e.record_response(t(0), Duration::from_millis(80));
    assert_eq!(e.rtt(), Some(Duration::from_millis(80)));
    e.record_response(t(1), Duration::from_millis(160));
    // 7/8 * 80 + 1/8 * 160 = 90.
    assert_eq!(e.rtt(), Some(Duration::from_millis(90)));
}

#[test]
fn compact_fields_keep_their_edge_values() {
    // Timestamps are stored without `Option` (the latest instant means "none") and the round
    // trip in whole microseconds: an answer at that very instant still verifies the contact,
    // sub-microsecond parts are dropped, and a round trip too long to store saturates.
    let mut e = Entry::new(Id::MAX, addr(1), t(0));
    assert_eq!(
        (e.last_response(), e.last_query(), e.rtt()),
        (None, None, None)
    );
    e.record_query(Instant::MAX);
    e.record_response(Instant::MAX, Duration::from_nanos(1_500));
    assert!(e.is_verified());
    let just_before = Instant::from_millis(u64::MAX - 1);
    assert_eq!(e.last_response(), Some(just_before));
    assert_eq!(e.last_query(), Some(just_before));
    assert_eq!(e.rtt(), Some(Duration::from_micros(1)));
    let mut slow = Entry::new(Id::MAX, addr(2), t(0));
    slow.record_response(t(1), Duration::from_secs(10 * 3600));
    assert_eq!(
        slow.rtt(),
        Some(Duration::from_micros(u64::from(u32::MAX - 1)))
    );
    slow.record_failure();
    assert_eq!(slow.failures(), 1);
}

// ---- Shape and splitting -------------------------------------------------------------------

#[test]
fn the_own_bucket_splits_when_full() {
    let own = Id::ZERO;
    let mut rng = TestRng(1);
    let mut table = table(own);
    for i in 0..8 {
        let id = id_at(&own, 0, &mut rng);
        assert_eq!(
            table.on_response(t(0), id, addr(i), RTT),
            InsertOutcome::Inserted
        );
    }
    assert_eq!(table.buckets().len(), 1);
    // A ninth node in the far half: the bucket splits, but the far half is still full of good
    // nodes and no longer holds the own id, so the newcomer waits.
    let ninth = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.on_response(t(0), ninth, addr(8), RTT),
        InsertOutcome::Cached
    );
    let buckets: Vec<&Bucket> = table.buckets().collect();
    assert_eq!(buckets.len(), 2);
    assert_eq!((buckets[0].prefix_len(), buckets[0].len()), (1, 8));
    assert!(buckets[0].covers(&Id::MAX) && !buckets[0].covers(&own));
    assert_eq!((buckets[1].prefix_len(), buckets[1].len()), (1, 0));
    assert!(buckets[1].covers(&own));
    assert!(cached(&table, &ninth));
    // The near half has room.
    let near = id_at(&own, 1, &mut rng);
    assert_eq!(
        table.on_response(t(0), near, addr(9), RTT),
        InsertOutcome::Inserted
    );
    table.check_invariants().unwrap();
}

#[test]
fn nine_nodes_per_depth_give_one_bucket_per_depth() {
    let mut rng = TestRng(2);
    let own = Id::random(&mut rng);
    let mut table = table(own);
    let mut n = 0;
    for depth in 0..30 {
        for _ in 0..9 {
            let id = id_at(&own, depth, &mut rng);
            let _ = table.on_response(t(1), id, addr(n), RTT);
            n += 1;
        }
    }
    table.check_invariants().unwrap();
    // Each depth's ninth node split the own bucket, then waited in the far half's cache.
    assert_eq!(table.buckets().len(), 31);
    for (depth, bucket) in table.buckets().enumerate().take(30) {
        assert_eq!(bucket.len(), 8, "depth {depth}");
        assert_eq!(bucket.replacements().len(), 1, "depth {depth}");
        assert_eq!(bucket.prefix_len(), depth + 1);
    }
    assert_eq!(table.len(), 240);
}

#[test]
fn far_buckets_are_larger_and_overflow_is_demoted_on_split() {
    let own = Id::ZERO;
    let mut rng = TestRng(3);
    let config = TableConfig {
        far_buckets: 1,
        far_bucket_size: 16,
        ..plain()
    };
    let mut table = RoutingTable::new(own, config, t(0));
    // 4 far nodes and 12 depth-1 nodes fill the single bucket (capacity 16).
    let mut near = Vec::new();
    for i in 0..4 {
        assert_eq!(
            table.on_response(t(0), id_at(&own, 0, &mut rng), addr(i), RTT),
            InsertOutcome::Inserted
        );
    }
    for i in 0..12u32 {
        let id = id_at(&own, 1, &mut rng);
        let at = t(10 + u64::from(i));
        assert_eq!(
            table.on_response(at, id, addr(100 + i), RTT),
            InsertOutcome::Inserted
        );
        near.push(id);
    }
    assert_eq!(table.len(), 16);
    // The 17th splits it: bucket 0 keeps capacity 16, the new bucket 1 has 8 slots for 12
    // nodes, so the 4 least recently seen move to its replacement cache.
    let far = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.on_response(t(30), far, addr(200), RTT),
        InsertOutcome::Inserted
    );
    let buckets: Vec<&Bucket> = table.buckets().collect();
    assert_eq!(buckets.len(), 2);
    assert_eq!((buckets[0].capacity(), buckets[0].len()), (16, 5));
    assert_eq!((buckets[1].capacity(), buckets[1].len()), (8, 8));
    for (i, id) in near.iter().enumerate() {
        assert_eq!(table.contains(id), i >= 4, "near node {i}");
        assert_eq!(cached(&table, id), i < 4, "near node {i}");
    }
    table.check_invariants().unwrap();
}

#[test]
fn the_own_id_never_enters() {
    let own = Id::MAX;
    let mut table = table(own);
    let reject = InsertOutcome::Rejected(RejectReason::OwnId);
    assert_eq!(table.on_response(t(0), own, addr(1), RTT), reject);
    assert_eq!(table.on_query(t(0), own, addr(1)), reject);
    assert_eq!(table.add_candidate(t(0), own, addr(1)), reject);
    assert!(table.is_empty());
}

#[test]
fn the_address_policy_applies() {
    let mut table = table(Id::ZERO);
    let local = "127.0.0.1:6881".parse().unwrap();
    let reject = InsertOutcome::Rejected(RejectReason::AddressNotAllowed);
    assert_eq!(table.on_response(t(0), Id::MAX, local, RTT), reject);
    let config = TableConfig {
        address_policy: AddressPolicy::ALLOW_ALL,
        ..plain()
    };
    let mut table = RoutingTable::new(Id::ZERO, config, t(0));
    assert_eq!(
        table.on_response(t(0), Id::MAX, local, RTT),
        InsertOutcome::Inserted
    );
}

// ---- Addresses ----------------------------------------------------------------------------

#[test]
fn one_entry_per_ip_and_per_address() {
    let own = Id::ZERO;
    let mut rng = TestRng(4);
    let (a, b, c) = (
        id_at(&own, 0, &mut rng),
        id_at(&own, 0, &mut rng),
        id_at(&own, 1, &mut rng),
    );
    let first = addr(1);
    let same_ip = SocketAddr::new(first.ip(), 7000);

    let mut table = table(own);
    assert_eq!(
        table.on_response(t(0), a, first, RTT),
        InsertOutcome::Inserted
    );
    let ip = InsertOutcome::Rejected(RejectReason::IpInUse);
    let exact = InsertOutcome::Rejected(RejectReason::AddressInUse);
    assert_eq!(table.on_response(t(0), b, same_ip, RTT), ip);
    assert_eq!(table.on_response(t(0), c, first, RTT), exact);
    assert_eq!(table.len(), 1);

    let config = TableConfig {
        one_node_per_ip: false,
        ..plain()
    };
    let mut table = RoutingTable::new(own, config, t(0));
    assert_eq!(
        table.on_response(t(0), a, first, RTT),
        InsertOutcome::Inserted
    );
    assert_eq!(
        table.on_response(t(0), b, same_ip, RTT),
        InsertOutcome::Inserted
    );
    // The exact address stays unique even then.
    assert_eq!(table.on_response(t(0), c, first, RTT), exact);
    table.check_invariants().unwrap();
}

#[test]
fn a_bad_entry_gives_up_its_address() {
    let own = Id::ZERO;
    let mut rng = TestRng(5);
    let (old, new) = (id_at(&own, 0, &mut rng), id_at(&own, 1, &mut rng));
    let mut table = table(own);
    assert_eq!(
        table.on_response(t(0), old, addr(1), RTT),
        InsertOutcome::Inserted
    );
    for _ in 0..3 {
        table.on_failure(t(1), None, addr(1));
    }
    assert_eq!(table.status(t(1), &old), Some(NodeStatus::Bad));
    // The node at that address restarted with a new id.
    assert_eq!(
        table.on_response(t(2), new, addr(1), RTT),
        InsertOutcome::Inserted
    );
    assert!(!table.contains(&old));
    assert!(table.contains(&new));
    table.check_invariants().unwrap();
}

#[test]
fn a_known_id_at_another_address_does_not_hijack_the_entry() {
    let own = Id::ZERO;
    let id = Id::MAX;
    let (home, other) = (addr(1), addr(2));
    let mut table = table(own);
    assert_eq!(
        table.on_response(t(0), id, home, RTT),
        InsertOutcome::Inserted
    );
    let mismatch = InsertOutcome::Rejected(RejectReason::AddressMismatch);
    assert_eq!(table.on_query(t(1), id, other), mismatch);
    assert_eq!(table.on_response(t(1), id, other, RTT), mismatch);
    assert_eq!(table.add_candidate(t(1), id, other), mismatch);
    // A failure at the other address does not count against the entry.
    table.on_failure(t(1), Some(id), other);
    assert_eq!(table.get(&id).unwrap().failures(), 0);
    assert_eq!(table.get(&id).unwrap().addr(), home);
    // Once the entry is bad, an answer from the new address moves it there.
    for _ in 0..3 {
        table.on_failure(t(2), Some(id), home);
    }
    assert_eq!(
        table.on_response(t(3), id, other, RTT),
        InsertOutcome::Updated
    );
    let entry = table.get(&id).unwrap();
    assert_eq!((entry.addr(), entry.failures()), (other, 0));
    assert_eq!(entry.status(t(3), table.config()), NodeStatus::Good);
    table.check_invariants().unwrap();
}

// ---- Replacement ------------------------------------------------------------------------------

#[test]
fn questionable_nodes_are_pinged_before_being_replaced() {
    let own = Id::ZERO;
    let mut rng = TestRng(6);
    let (mut table, far) = far_bucket_full(own, &mut rng);
    let now = t(20 * 60); // everybody in the far bucket is questionable now
    let (n1, n2) = (id_at(&own, 0, &mut rng), id_at(&own, 0, &mut rng));
    // The least recently seen questionable node (answered at t(0)) is to be pinged.
    let (id0, addr0) = far[0];
    let ping = InsertOutcome::PingFirst {
        id: id0,
        addr: addr0,
    };
    assert_eq!(table.on_response(now, n1, addr(50), RTT), ping);
    assert!(cached(&table, &n1) && !table.contains(&n1));
    // One ping at a time per bucket.
    assert_eq!(
        table.on_response(now + Duration::from_secs(1), n2, addr(51), RTT),
        InsertOutcome::Cached
    );
    let mut pings = Vec::new();
    table.pings_due(now + Duration::from_secs(1), &mut pings);
    assert_eq!(pings, []);
    // The ping fails; the node gets more chances (max_failures = 3), one ping at a time.
    let mut at = now + Duration::from_secs(5);
    for round in 0..3 {
        assert!(table.contains(&id0), "round {round}");
        if round > 0 {
            table.pings_due(at, &mut pings);
            assert_eq!(pings, [(id0, addr0)], "round {round}");
            pings.clear();
        }
        table.on_failure(at, Some(id0), addr0);
        at += Duration::from_secs(5);
    }
    // Bad now: the most recently seen replacement (n2) takes its place.
    assert!(!table.contains(&id0));
    assert!(table.contains(&n2));
    assert!(cached(&table, &n1));
    table.check_invariants().unwrap();
}

#[test]
fn a_questionable_node_that_answers_stays_and_the_next_one_is_pinged() {
    let own = Id::ZERO;
    let mut rng = TestRng(7);
    let (mut table, far) = far_bucket_full(own, &mut rng);
    let now = t(20 * 60);
    let newcomer = id_at(&own, 0, &mut rng);
    let first = InsertOutcome::PingFirst {
        id: far[0].0,
        addr: far[0].1,
    };
    assert_eq!(table.on_response(now, newcomer, addr(50), RTT), first);
    assert_eq!(
        table.on_response(now, far[0].0, far[0].1, RTT),
        InsertOutcome::Updated
    );
    assert_eq!(table.status(now, &far[0].0), Some(NodeStatus::Good));
    // BEP 5: then the next least recently seen questionable node is pinged.
    let mut pings = Vec::new();
    table.pings_due(now, &mut pings);
    assert_eq!(pings, [far[1]]);
    assert!(cached(&table, &newcomer));
}

#[test]
fn a_bucket_full_of_good_nodes_keeps_newcomers_waiting() {
    let own = Id::ZERO;
    let mut rng = TestRng(8);
    let (mut table, far) = far_bucket_full(own, &mut rng);
    let before = ids(&table);
    // Everybody answered within 15 minutes: no ping, the newcomer waits.
    let newcomer = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.on_response(t(60), newcomer, addr(50), RTT),
        InsertOutcome::Cached
    );
    assert_eq!(ids(&table), before);
    let mut pings = Vec::new();
    table.pings_due(t(60), &mut pings);
    assert_eq!(pings, []);
    // When they turn questionable, the table asks for the oldest one to be pinged.
    assert!(table.next_deadline().unwrap() <= t(15 * 60));
    table.pings_due(t(15 * 60), &mut pings);
    assert_eq!(pings, [far[0]]);
}

#[test]
fn bad_nodes_are_replaced_at_once() {
    let own = Id::ZERO;
    let mut rng = TestRng(9);
    let (mut table, far) = far_bucket_full(own, &mut rng);
    let (id0, addr0) = far[0];
    for _ in 0..3 {
        table.on_failure(t(10), Some(id0), addr0);
    }
    // Nobody waits, so the bad entry stays, but it is not handed out.
    assert!(table.contains(&id0));
    assert_eq!(table.status(t(10), &id0), Some(NodeStatus::Bad));
    let mut out = Vec::new();
    table.closest(&id0, 100, &mut out);
    assert!(out.iter().all(|(id, _)| *id != id0));
    assert_eq!(out.len(), 8);
    // Even a mere candidate takes a bad node's slot.
    let candidate = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.add_candidate(t(11), candidate, addr(60)),
        InsertOutcome::Inserted
    );
    assert!(!table.contains(&id0));
    assert!(table.contains(&candidate));
}

#[test]
fn candidates_never_evict_and_never_push_out_verified_replacements() {
    let own = Id::ZERO;
    let mut rng = TestRng(10);
    let (mut table, _) = far_bucket_full(own, &mut rng);
    let before = ids(&table);
    let candidate = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.add_candidate(t(50), candidate, addr(60)),
        InsertOutcome::Cached
    );
    assert_eq!(
        table.on_query(t(50), id_at(&own, 0, &mut rng), addr(61)),
        InsertOutcome::Cached
    );
    assert_eq!(ids(&table), before);
    // Fill the replacement cache (8) with verified nodes; they push out the candidates.
    let mut waiting = Vec::new();
    for i in 0..8 {
        let id = id_at(&own, 0, &mut rng);
        let outcome = table.on_response(t(100 + i), id, addr(70 + i as u32), RTT);
        assert!(matches!(outcome, InsertOutcome::Cached), "{outcome:?}");
        waiting.push(id);
    }
    assert!(!cached(&table, &candidate));
    let another = id_at(&own, 0, &mut rng);
    let full = InsertOutcome::Rejected(RejectReason::BucketFull);
    assert_eq!(table.add_candidate(t(200), another, addr(90)), full);
    assert!(waiting.iter().all(|id| cached(&table, id)));
    // A newer verified node replaces the oldest verified replacement.
    let newer = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.on_response(t(300), newer, addr(91), RTT),
        InsertOutcome::Cached
    );
    assert!(cached(&table, &newer) && !cached(&table, &waiting[0]));
    assert_eq!(ids(&table), before);
    // Even when every entry is questionable, a candidate displaces nobody.
    let late = id_at(&own, 0, &mut rng);
    assert_eq!(table.add_candidate(t(20 * 60), late, addr(92)), full);
    assert_eq!(ids(&table), before);
    table.check_invariants().unwrap();
}

#[test]
fn verified_nodes_displace_unverified_ones() {
    let own = Id::ZERO;
    let mut rng = TestRng(11);
    let mut table = table(own);
    let mut unverified = Vec::new();
    for i in 0..8u32 {
        let id = id_at(&own, 0, &mut rng);
        assert_eq!(
            table.add_candidate(t(i.into()), id, addr(i)),
            InsertOutcome::Inserted
        );
        unverified.push(id);
    }
    // Candidates never split: a ninth waits.
    let ninth = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.add_candidate(t(9), ninth, addr(9)),
        InsertOutcome::Cached
    );
    assert_eq!(table.buckets().len(), 1);
    // A verified near node splits the own bucket.
    let near = id_at(&own, 1, &mut rng);
    assert_eq!(
        table.on_response(t(10), near, addr(10), RTT),
        InsertOutcome::Inserted
    );
    assert_eq!(table.buckets().len(), 2);
    // A verified far node takes the slot of the unverified one added first, which waits.
    let far = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.on_response(t(11), far, addr(11), RTT),
        InsertOutcome::Inserted
    );
    assert!(table.contains(&far));
    assert!(!table.contains(&unverified[0]) && cached(&table, &unverified[0]));
    // If it answers later, it competes again (and displaces the next unverified one).
    let back = table.on_response(t(12), unverified[0], addr(0), RTT);
    assert_eq!(back, InsertOutcome::Inserted);
    assert!(!table.contains(&unverified[1]));
    table.check_invariants().unwrap();
}

#[test]
fn replacement_cache_size_zero_drops_newcomers() {
    let own = Id::ZERO;
    let mut rng = TestRng(12);
    let config = TableConfig {
        replacement_cache_size: 0,
        ..plain()
    };
    let mut table = RoutingTable::new(own, config, t(0));
    for i in 0..8 {
        let _ = table.on_response(t(0), id_at(&own, 0, &mut rng), addr(i), RTT);
    }
    let _ = table.on_response(t(0), id_at(&own, 1, &mut rng), addr(8), RTT);
    let full = InsertOutcome::Rejected(RejectReason::BucketFull);
    assert_eq!(
        table.on_response(t(0), id_at(&own, 0, &mut rng), addr(9), RTT),
        full
    );
    assert_eq!(
        table
            .buckets()
            .map(|b| b.replacements().len())
            .sum::<usize>(),
        0
    );
}

#[test]
fn a_split_does_not_promote_a_replacement_holding_the_newcomers_address() {
    // Found by the property test: the split's refill promoted a waiting contact with the
    // newcomer's address, then the newcomer took the same address.
    let own = Id::ZERO;
    let mut rng = TestRng(20);
    let config = TableConfig {
        bucket_size: 2,
        one_node_per_ip: false,
        ..plain()
    };
    let mut table = RoutingTable::new(own, config, t(0));
    for i in 0..2 {
        let _ = table.on_response(t(0), id_at(&own, 0, &mut rng), addr(i), RTT);
    }
    let shared = addr(9);
    let waiting = id_at(&own, 1, &mut rng);
    assert_eq!(table.on_query(t(1), waiting, shared), InsertOutcome::Cached);
    let newcomer = id_at(&own, 1, &mut rng);
    assert_eq!(
        table.on_response(t(2), newcomer, shared, RTT),
        InsertOutcome::Inserted
    );
    assert!(!table.contains(&waiting));
    table.check_invariants().unwrap();
}

#[test]
fn an_address_freed_in_one_bucket_lets_a_replacement_in_another_bucket_in() {
    // Found by the property test: displacing an entry freed its address, but the replacement
    // waiting for that address sat in another bucket and was not promoted.
    let own = Id::ZERO;
    let mut rng = TestRng(21);
    let config = TableConfig {
        bucket_size: 2,
        one_node_per_ip: false,
        ..plain()
    };
    let mut table = RoutingTable::new(own, config, t(0));
    let shared = addr(9);
    let b = id_at(&own, 10, &mut rng);
    assert_eq!(
        table.on_response(t(0), id_at(&own, 0, &mut rng), addr(1), RTT),
        InsertOutcome::Inserted
    );
    assert_eq!(
        table.on_response(t(0), b, addr(2), RTT),
        InsertOutcome::Inserted
    );
    // C waits for a slot; D, imported, takes the same address in the own bucket.
    let c = id_at(&own, 3, &mut rng);
    assert_eq!(table.add_candidate(t(1), c, shared), InsertOutcome::Cached);
    let d = id_at(&own, 10, &mut rng);
    assert_eq!(table.import(t(1), [(d, shared)]), 1);
    assert!(table.contains(&d) && !table.contains(&c));
    // Split down to depth 11: C waits in the (empty) bucket 3, as D holds its address.
    assert_eq!(
        table.on_response(t(2), id_at(&own, 11, &mut rng), addr(3), RTT),
        InsertOutcome::Inserted
    );
    assert_eq!(table.buckets().len(), 12);
    assert!(table.buckets().nth(3).unwrap().is_empty());
    // A verified node displaces D from bucket 10: the address is free, C gets bucket 3.
    assert_eq!(
        table.on_response(t(3), id_at(&own, 10, &mut rng), addr(4), RTT),
        InsertOutcome::Inserted
    );
    assert!(!table.contains(&d));
    assert!(table.contains(&c));
    table.check_invariants().unwrap();
}

#[test]
fn remove_promotes_a_replacement() {
    let own = Id::ZERO;
    let mut rng = TestRng(13);
    let (mut table, far) = far_bucket_full(own, &mut rng);
    let waiting = id_at(&own, 0, &mut rng);
    assert_eq!(
        table.on_response(t(30), waiting, addr(40), RTT),
        InsertOutcome::Cached
    );
    assert!(table.remove(&far[3].0));
    assert!(!table.contains(&far[3].0));
    assert!(table.contains(&waiting));
    assert!(!table.remove(&far[3].0));
    assert_eq!(table.len(), 9);
    table.check_invariants().unwrap();
}

// ---- Pings, refresh, deadlines ----------------------------------------------------------------

#[test]
fn unverified_entries_get_one_verification_ping() {
    let own = Id::ZERO;
    let mut table = table(own);
    let id = Id::MAX;
    let config = *table.config();
    assert_eq!(config.verify_after, Duration::from_secs(10));
    assert_eq!(
        table.add_candidate(t(0), id, addr(1)),
        InsertOutcome::Inserted
    );
    let mut pings = Vec::new();
    table.pings_due(t(0), &mut pings);
    assert_eq!(pings, [], "a lookup may contact it first");
    assert_eq!(table.next_deadline(), Some(t(10)));
    table.pings_due(t(10), &mut pings);
    assert_eq!(pings, [(id, addr(1))]);
    pings.clear();
    table.pings_due(t(11), &mut pings);
    assert_eq!(pings, [], "asked for once");
    assert_eq!(table.next_deadline(), Some(t(20)));
    // Never reported: asked for again after ping_timeout.
    table.pings_due(t(20), &mut pings);
    assert_eq!(pings, [(id, addr(1))]);
    pings.clear();
    // It fails: a contact nobody vouched for is dropped at once.
    table.on_failure(t(25), Some(id), addr(1));
    assert!(table.is_empty());
    // Another one answers first: no ping at all.
    assert_eq!(
        table.add_candidate(t(30), id, addr(1)),
        InsertOutcome::Inserted
    );
    assert_eq!(
        table.on_response(t(31), id, addr(1), RTT),
        InsertOutcome::Updated
    );
    table.pings_due(t(100), &mut pings);
    assert_eq!(pings, []);
}

#[test]
fn refresh_targets_fall_inside_stale_buckets() {
    let mut rng = TestRng(14);
    let own = Id::random(&mut rng);
    // No replacement caches, so waiting nodes do not ask for pings when entries age; every
    // due bucket at once (staggering has its own test).
    let config = TableConfig {
        replacement_cache_size: 0,
        refreshes_at_once: 64,
        ..plain()
    };
    let mut table = RoutingTable::new(own, config, t(0));
    let mut n = 0;
    for depth in 0..5 {
        for _ in 0..9 {
            let _ = table.on_response(t(0), id_at(&own, depth, &mut rng), addr(n), RTT);
            n += 1;
        }
    }
    assert_eq!(table.buckets().len(), 6);
    let mut targets = Vec::new();
    table.refresh_targets(
        t(15 * 60) - Duration::from_millis(1),
        &mut rng,
        &mut targets,
    );
    assert_eq!(targets, []);
    // Bucket 2 changes at 5 minutes: an entry answers.
    let in_two = table
        .buckets()
        .nth(2)
        .unwrap()
        .entries()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        table.on_response(t(300), in_two.id(), in_two.addr(), RTT),
        InsertOutcome::Updated
    );
    assert_eq!(table.buckets().nth(2).unwrap().last_changed(), t(300));
    table.refresh_targets(t(15 * 60), &mut rng, &mut targets);
    let depths: Vec<usize> = targets
        .iter()
        .map(|target| own.common_prefix_len(target).min(5))
        .collect();
    assert_eq!(depths, [0, 1, 3, 4, 5]);
    for target in &targets {
        let bucket = table.bucket_of(target).unwrap();
        assert!(bucket.covers(target));
    }
    // Marked as refreshing: not again until touched or another interval passes.
    targets.clear();
    table.refresh_targets(t(15 * 60 + 1), &mut rng, &mut targets);
    assert_eq!(targets, []);
    assert_eq!(table.next_deadline(), Some(t(20 * 60)));
    table.refresh_targets(t(20 * 60), &mut rng, &mut targets);
    assert_eq!(targets.len(), 1);
    assert_eq!(own.common_prefix_len(&targets[0]), 2);
    targets.clear();
    table.refresh_targets(t(30 * 60), &mut rng, &mut targets);
    assert_eq!(targets.len(), 5);
}

/// Buckets that all came due together are refreshed `refreshes_at_once` at a time,
/// `refresh_stagger` apart, each once; a bucket that changes meanwhile is not refreshed.
#[test]
fn due_buckets_are_refreshed_a_few_at_a_time() {
    let mut rng = TestRng(16);
    let own = Id::random(&mut rng);
    let config = TableConfig {
        replacement_cache_size: 0,
        ..plain()
    };
    assert_eq!(config.refreshes_at_once, 2);
    assert_eq!(config.refresh_stagger, Duration::from_secs(5));
    let mut table = RoutingTable::new(own, config, t(0));
    let mut n = 0;
    for depth in 0..7 {
        for _ in 0..9 {
            let _ = table.on_response(t(0), id_at(&own, depth, &mut rng), addr(n), RTT);
            n += 1;
        }
    }
    let buckets = table.buckets().len();
    assert_eq!(buckets, 8);
    let due = t(15 * 60);
    let mut targets = Vec::new();
    table.refresh_targets(due, &mut rng, &mut targets);
    let depth = |id: &Id| own.common_prefix_len(id).min(buckets - 1);
    assert_eq!(targets.iter().map(depth).collect::<Vec<_>>(), [0, 1]);
    // The next two, 5 s later, not before.
    assert_eq!(table.next_deadline(), Some(due + Duration::from_secs(5)));
    targets.clear();
    table.refresh_targets(due + Duration::from_secs(4), &mut rng, &mut targets);
    assert_eq!(targets, []);
    // Bucket 3 hears from an entry meanwhile: it is not due any more.
    let in_three = table
        .buckets()
        .nth(3)
        .unwrap()
        .entries()
        .next()
        .unwrap()
        .clone();
    let _ = table.on_response(
        due + Duration::from_secs(4),
        in_three.id(),
        in_three.addr(),
        RTT,
    );
    let mut seen = Vec::new();
    let mut now = due;
    for _ in 0..10 {
        now += Duration::from_secs(5);
        targets.clear();
        table.refresh_targets(now, &mut rng, &mut targets);
        assert!(targets.len() <= 2);
        seen.extend(targets.iter().map(depth));
    }
    assert_eq!(seen, [2, 4, 5, 6, 7]);
    assert!(table.next_deadline().unwrap() > now);
}

#[test]
fn refresh_targets_are_random_within_the_range() {
    let mut rng = TestRng(15);
    let own = Id::random(&mut rng);
    let mut table = table(own);
    for i in 0..9 {
        let _ = table.on_response(t(0), id_at(&own, 0, &mut rng), addr(i), RTT);
    }
    let mut seen = BTreeSet::new();
    for round in 1..=20u64 {
        let mut targets = Vec::new();
        table.refresh_targets(t(round * 15 * 60), &mut rng, &mut targets);
        assert_eq!(targets.len(), 2);
        assert_eq!(own.common_prefix_len(&targets[0]), 0);
        assert!(own.common_prefix_len(&targets[1]) >= 1);
        seen.extend(targets);
    }
    assert_eq!(seen.len(), 40, "targets repeat");
}

#[test]
fn an_empty_table_has_only_the_refresh_deadline() {
    let table = table(Id::ZERO);
    assert_eq!(table.next_deadline(), Some(t(15 * 60)));
}

// ---- closest -------------------------------------------------------------------------------

#[test]
fn closest_matches_brute_force_on_a_deep_table() {
    let mut rng = TestRng(16);
    let own = Id::random(&mut rng);
    let mut table = table(own);
    let mut n = 0;
    for depth in 0..24 {
        for _ in 0..12 {
            let _ = table.on_response(t(0), id_at(&own, depth, &mut rng), addr(n), RTT);
            n += 1;
        }
    }
    // Some bad entries, which must be skipped.
    let some: Vec<(Id, SocketAddr)> = table
        .iter()
        .step_by(7)
        .map(|e| (e.id(), e.addr()))
        .collect();
    for (id, a) in some {
        for _ in 0..3 {
            table.on_failure(t(1), Some(id), a);
        }
    }
    let mut out = Vec::new();
    let mut targets: Vec<Id> = (0..200).map(|_| Id::random(&mut rng)).collect();
    targets.extend((0..30).map(|d| id_at(&own, d, &mut rng)));
    targets.push(own);
    targets.extend(table.iter().map(|e| e.id()).take(20));
    for target in &targets {
        for k in [0, 1, 3, 8, 20, 1000] {
            table.closest(target, k, &mut out);
            assert_eq!(
                out,
                brute_closest(&table, target, k),
                "target {target} n {k}"
            );
        }
    }
}

/// Ids that share their first 64 bits (distances the walk's 64-bit prefix cannot tell apart)
/// still come out nearest first.
#[test]
fn closest_orders_ids_sharing_their_first_64_bits() {
    let mut rng = TestRng(18);
    let own = Id::random(&mut rng);
    let mut table = table(own);
    let mut n = 0;
    for depth in (0..4).chain(60..110) {
        for _ in 0..3 {
            let _ = table.on_response(t(0), id_at(&own, depth, &mut rng), addr(n), RTT);
            n += 1;
        }
    }
    let mut out = Vec::new();
    let mut targets: Vec<Id> = (60..120).map(|d| id_at(&own, d, &mut rng)).collect();
    targets.push(own);
    targets.extend((0..20).map(|_| Id::random(&mut rng)));
    for target in &targets {
        for k in [1, 2, 8, 20] {
            table.closest(target, k, &mut out);
            assert_eq!(
                out,
                brute_closest(&table, target, k),
                "target {target} n {k}"
            );
        }
    }
}

#[test]
fn closest_entries_filters_and_clears() {
    let own = Id::ZERO;
    let mut rng = TestRng(17);
    let (mut table, far) = far_bucket_full(own, &mut rng);
    let _ = table.on_query(t(10), id_at(&own, 2, &mut rng), addr(77));
    let mut out = Vec::new();
    table.closest_entries(&Id::MAX, 100, |e| e.is_verified(), &mut out);
    assert_eq!(out.len(), 9);
    assert!(
        out.windows(2)
            .all(|w| w[0].id().distance(&Id::MAX) < w[1].id().distance(&Id::MAX))
    );
    table.closest_entries(&Id::MAX, 2, |_| true, &mut out);
    assert_eq!(out.len(), 2);
    let config = *table.config();
    let now = t(20 * 60);
    table.closest_entries(
        &Id::MAX,
        8,
        |e| e.status(now, &config) == NodeStatus::Good,
        &mut out,
    );
    assert_eq!(out, [] as [&Entry; 0]);
    assert!(far.iter().all(|(id, _)| table.contains(id)));
}

// ---- export / import ----------------------------------------------------------------------------

#[test]
fn export_import_round_trip() {
    let mut rng = TestRng(18);
    let own = Id::random(&mut rng);
    let mut a = table(own);
    let mut n = 0;
    for depth in 0..12 {
        for _ in 0..10 {
            let id = id_at(&own, depth, &mut rng);
            let _ = a.on_response(t(u64::from(n)), id, addr(n), RTT);
            n += 1;
        }
    }
    let _ = a.add_candidate(t(500), id_at(&own, 20, &mut rng), addr(999));
    let saved = a.export();
    // Entries and verified replacements, newest answer first, never-answered last.
    let expected: BTreeSet<Id> = a
        .iter()
        .chain(a.buckets().flat_map(|b| b.replacements()))
        .filter(|e| !e.is_bad(a.config()) && (e.is_verified() || a.contains(&e.id())))
        .map(|e| e.id())
        .collect();
    assert_eq!(
        saved.iter().map(|(id, _)| *id).collect::<BTreeSet<_>>(),
        expected
    );
    let answered: Vec<Option<Instant>> = saved
        .iter()
        .map(|(id, _)| {
            let e = a.get(id);
            let r = a
                .buckets()
                .flat_map(|b| b.replacements())
                .find(|e| e.id() == *id);
            e.or(r).unwrap().last_response()
        })
        .collect();
    assert!(
        answered
            .windows(2)
            .all(|w| w[0] >= w[1] || w[0].is_some() && w[1].is_none())
    );
    assert_eq!(answered.last(), Some(&None));

    let mut b = RoutingTable::new(own, plain(), t(1000));
    let taken = b.import(t(1000), saved.iter().copied());
    assert_eq!(taken, saved.len());
    b.check_invariants().unwrap();
    // Imported contacts are candidates to verify, not trusted entries.
    assert!(b.iter().all(|e| !e.is_verified()));
    // Imported contacts restore the table's shape.
    let lens = |t: &RoutingTable| t.buckets().map(Bucket::len).collect::<Vec<_>>();
    assert_eq!(lens(&b), lens(&a));
    // As they answer, they become verified entries.
    for (id, addr) in &saved {
        let _ = b.on_response(t(1001), *id, *addr, RTT);
    }
    b.check_invariants().unwrap();
    assert_eq!(lens(&b), lens(&a));
    assert!(b.iter().all(|e| e.is_verified()));
    // And a second export has the same contacts.
    let again: BTreeSet<Id> = b.export().into_iter().map(|(id, _)| id).collect();
    assert_eq!(again, saved.iter().map(|(id, _)| *id).collect());
}

#[test]
fn entry_size_is_as_documented() {
    // The module documentation quotes 96 bytes per entry and a 24-byte address key: most of
    // a node's memory is its table, so a field that grows them fails here.
    assert_eq!(size_of::<Entry>(), 96);
    assert_eq!(size_of::<AddrKey>(), 24);
}
