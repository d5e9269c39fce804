//! The routing table against a reference model, under arbitrary operation sequences.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use proptest::prelude::*;
use rand_core::RngCore;

use super::{TestRng, brute_closest, cached, id_at};
use crate::id::Id;
use crate::routing::{Entry, InsertOutcome, NodeStatus, RejectReason, RoutingTable, TableConfig};
use crate::time::Instant;

#[derive(Clone, Debug)]
enum Op {
    Response {
        node: usize,
        alt: bool,
        rtt_ms: u16,
    },
    Query {
        node: usize,
        alt: bool,
    },
    Candidate {
        node: usize,
        alt: bool,
    },
    Failure {
        node: usize,
        alt: bool,
        with_id: bool,
    },
    Remove {
        node: usize,
    },
    Advance {
        ms: u32,
    },
    Tick,
    Import {
        nodes: Vec<usize>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0usize..64;
    // Only every third node ever shows up at its alternative address.
    let alt = |node: usize, alt: bool| alt && node % 3 == 0;
    let flag = any::<bool>;
    prop_oneof![
        6 => (node.clone(), flag(), any::<u16>())
            .prop_map(move |(node, a, rtt_ms)| Op::Response { node, alt: alt(node, a), rtt_ms }),
        2 => (node.clone(), flag())
            .prop_map(move |(node, a)| Op::Query { node, alt: alt(node, a) }),
        3 => (node.clone(), flag())
            .prop_map(move |(node, a)| Op::Candidate { node, alt: alt(node, a) }),
        3 => (node.clone(), flag(), flag())
            .prop_map(move |(node, a, with_id)| Op::Failure { node, alt: alt(node, a), with_id }),
        1 => node.clone().prop_map(|node| Op::Remove { node }),
        3 => (0u32..200_000).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Tick),
        1 => proptest::collection::vec(node, 0..8).prop_map(|nodes| Op::Import { nodes }),
    ]
}

/// What the model knows about one (id, address) pair, from the operations alone.
#[derive(Clone, Copy, Debug, Default)]
struct Facts {
    last_response: Option<Instant>,
    last_query: Option<Instant>,
    /// Failures since the last response.
    failures: u32,
}

struct Model {
    now: Instant,
    facts: BTreeMap<(Id, SocketAddr), Facts>,
    /// Pings the table asked for and that are neither answered nor failed.
    outstanding: BTreeMap<Id, Instant>,
}

/// The pool of nodes: ids at many depths around `own` (sometimes `own` itself), addresses from
/// a small set of IPs and ports so that they collide.
fn pool(own: &Id, seed: u64) -> Vec<(Id, SocketAddr, SocketAddr)> {
    let mut rng = TestRng(seed);
    (0..64)
        .map(|i| {
            let depth = (rng.next_u32() % 26) as usize;
            let id = if i == 63 {
                *own
            } else {
                id_at(own, depth, &mut rng)
            };
            let ip = rng.next_u32() % 40;
            let port = 6881 + (rng.next_u32() % 3) as u16;
            let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 2, 3, ip as u8)), port);
            let alt = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 2, 4, ip as u8)), port);
            (id, a, alt)
        })
        .collect()
}

fn table_config() -> impl Strategy<Value = TableConfig> {
    (
        1usize..=4,
        0usize..=3,
        0usize..=3,
        0usize..=4,
        any::<bool>(),
        1u8..=3,
    )
        .prop_map(
            |(k, cache, far_buckets, far_extra, one_per_ip, max_failures)| TableConfig {
                bucket_size: k,
                replacement_cache_size: cache,
                far_buckets,
                far_bucket_size: k + far_extra,
                one_node_per_ip: one_per_ip,
                max_failures,
                questionable_after: Duration::from_secs(60),
                refresh_interval: Duration::from_secs(90),
                verify_after: Duration::from_secs(5),
                ping_timeout: Duration::from_secs(5),
                ..super::plain()
            },
        )
}

fn all_records(table: &RoutingTable) -> Vec<&Entry> {
    table
        .iter()
        .chain(table.buckets().flat_map(|b| b.replacements()))
        .collect()
}

fn find_record<'a>(table: &'a RoutingTable, id: &Id) -> Option<&'a Entry> {
    all_records(table).into_iter().find(|e| e.id() == *id)
}

/// BEP 5's status, written from the text against the model's facts.
fn model_status(f: &Facts, now: Instant, c: &TableConfig) -> NodeStatus {
    if f.failures >= u32::from(c.max_failures) {
        return NodeStatus::Bad;
    }
    let recent = |at: Option<Instant>| {
        at.is_some_and(|at| now.saturating_duration_since(at) < c.questionable_after)
    };
    if recent(f.last_response) || (f.last_response.is_some() && recent(f.last_query)) {
        NodeStatus::Good
    } else {
        NodeStatus::Questionable
    }
}

fn check_against_model(
    table: &RoutingTable,
    model: &Model,
    nodes: &[(Id, SocketAddr, SocketAddr)],
) {
    let config = table.config();
    table.check_invariants().unwrap();
    // Bounded memory.
    let bound: usize = table
        .buckets()
        .map(|b| b.capacity() + config.replacement_cache_size)
        .sum();
    assert!(
        table.len()
            + table
                .buckets()
                .map(|b| b.replacements().len())
                .sum::<usize>()
            <= bound
    );
    assert!(table.buckets().len() <= 160);
    // Every record is consistent with the history of its (id, address).
    for e in all_records(table) {
        let facts = model
            .facts
            .get(&(e.id(), e.addr()))
            .copied()
            .unwrap_or_default();
        assert!(e.added() <= model.now);
        if e.last_response().is_some() {
            assert_eq!(e.last_response(), facts.last_response, "{e:?}");
            assert_eq!(u32::from(e.failures()), facts.failures, "{e:?}");
            assert_eq!(
                e.status(model.now, config),
                model_status(&facts, model.now, config),
                "{e:?}"
            );
        } else {
            assert!(u32::from(e.failures()) <= facts.failures, "{e:?}");
        }
        if e.last_query().is_some() {
            assert_eq!(e.last_query(), facts.last_query, "{e:?}");
        }
    }
    // closest equals the brute-force answer.
    let mut out = Vec::new();
    let targets = nodes
        .iter()
        .map(|n| n.0)
        .step_by(9)
        .chain([table.own_id(), Id::MAX, Id::ZERO]);
    for target in targets {
        for k in [1, 3, 8, 100] {
            table.closest(&target, k, &mut out);
            assert_eq!(out, brute_closest(table, &target, k));
        }
    }
}

fn run_ops(own: Id, config: TableConfig, seed: u64, ops: &[Op]) {
    let nodes = pool(&own, seed);
    let mut rng = TestRng(seed ^ 0xabcdef);
    let mut table = RoutingTable::new(own, config, Instant::ZERO);
    let config = *table.config();
    let mut model = Model {
        now: Instant::ZERO,
        facts: BTreeMap::new(),
        outstanding: BTreeMap::new(),
    };
    let caps_equal = config.far_buckets == 0 || config.far_bucket_size == config.bucket_size;
    for op in ops {
        let now = model.now;
        let before: Vec<Entry> = table.iter().cloned().collect();
        let node_addr = |node: usize, alt: bool| {
            let (id, a, b) = nodes[node];
            (id, if alt { b } else { a })
        };
        // Which (id, address) pairs a failure report concerns, resolved like the table does.
        let mut failed: Vec<(Id, SocketAddr)> = Vec::new();
        match op.clone() {
            Op::Response { node, alt, rtt_ms } => {
                let (id, a) = node_addr(node, alt);
                let outcome = table.on_response(now, id, a, Duration::from_millis(rtt_ms.into()));
                let f = model.facts.entry((id, a)).or_default();
                f.last_response = Some(now);
                f.failures = 0;
                check_outcome(&table, &mut model, id, a, outcome, true);
                if outcome == InsertOutcome::Updated {
                    model.outstanding.remove(&id);
                }
                // Verified entries that are not bad leave only by split demotion.
                if caps_equal {
                    for e in before
                        .iter()
                        .filter(|e| e.is_verified() && !e.is_bad(&config))
                    {
                        assert!(table.contains(&e.id()), "{op:?} evicted {e:?}");
                    }
                }
            }
            Op::Query { node, alt } => {
                let (id, a) = node_addr(node, alt);
                let outcome = table.on_query(now, id, a);
                model.facts.entry((id, a)).or_default().last_query = Some(now);
                check_outcome(&table, &mut model, id, a, outcome, false);
                assert_kept(&before, &table, &config, op);
            }
            Op::Candidate { node, alt } => {
                let (id, a) = node_addr(node, alt);
                let outcome = table.add_candidate(now, id, a);
                check_outcome(&table, &mut model, id, a, outcome, false);
                assert_kept(&before, &table, &config, op);
            }
            Op::Import { nodes: list } => {
                let contacts: Vec<(Id, SocketAddr)> =
                    list.iter().map(|n| node_addr(*n, false)).collect();
                let taken = table.import(now, contacts.iter().copied());
                assert!(taken <= contacts.len());
                // One import can split (dropping a demoted entry) and then bring the same id
                // back as a new record, which may be pinged anew.
                for (id, _) in &contacts {
                    model.outstanding.remove(id);
                }
                // Imports may split, and a split may demote entries when far buckets are larger.
                if caps_equal {
                    assert_kept(&before, &table, &config, op);
                }
            }
            Op::Failure { node, alt, with_id } => {
                let (id, a) = node_addr(node, alt);
                if with_id {
                    if find_record(&table, &id).is_some_and(|e| e.addr() == a) {
                        failed.push((id, a));
                    }
                    table.on_failure(now, Some(id), a);
                } else {
                    match table.iter().find(|e| e.addr() == a) {
                        Some(e) => failed.push((e.id(), a)),
                        None => failed.extend(
                            table
                                .buckets()
                                .flat_map(|b| b.replacements())
                                .filter(|e| e.addr() == a)
                                .map(|e| (e.id(), a)),
                        ),
                    }
                    table.on_failure(now, None, a);
                }
                for (fid, fa) in &failed {
                    model.facts.entry((*fid, *fa)).or_default().failures += 1;
                    model.outstanding.remove(fid);
                }
                // Only the failing node can leave the table.
                for e in &before {
                    if !failed.iter().any(|(fid, _)| *fid == e.id()) && !e.is_bad(&config) {
                        assert!(table.contains(&e.id()), "{op:?} evicted {e:?}");
                    }
                }
            }
            Op::Remove { node } => {
                let id = nodes[node].0;
                let was = table.contains(&id) || find_record(&table, &id).is_some();
                assert_eq!(table.remove(&id), was);
                assert!(find_record(&table, &id).is_none());
            }
            Op::Advance { ms } => {
                model.now += Duration::from_millis(ms.into());
                assert_eq!(table.iter().cloned().collect::<Vec<_>>(), before);
            }
            Op::Tick => {
                // The full walk over every entry must ask for exactly the same pings as the
                // walk over due buckets only.
                let mut reference = table.clone();
                let mut expected = Vec::new();
                reference_pings_due(&mut reference, now, &mut expected);
                let mut pings = Vec::new();
                table.pings_due(now, &mut pings);
                assert_eq!(pings, expected, "pings_due skipped a due bucket");
                let entries = |t: &RoutingTable| t.iter().cloned().collect::<Vec<_>>();
                assert_eq!(entries(&table), entries(&reference));
                let mut seen = BTreeSet::new();
                for (id, a) in &pings {
                    assert!(seen.insert(*id), "ping asked twice in one call");
                    assert_eq!(
                        table.get(id).map(|e| e.addr()),
                        Some(*a),
                        "ping to a non-entry"
                    );
                    if let Some(sent) = model.outstanding.get(id) {
                        assert!(
                            now >= *sent + config.ping_timeout,
                            "ping {id} asked again too early"
                        );
                    }
                    model.outstanding.insert(*id, now);
                }
                let mut targets = Vec::new();
                table.refresh_targets(now, &mut rng, &mut targets);
                let buckets: BTreeSet<usize> = targets
                    .iter()
                    .map(|t| own.common_prefix_len(t).min(table.buckets().len() - 1))
                    .collect();
                assert_eq!(buckets.len(), targets.len(), "two targets for one bucket");
                if let Some(deadline) = table.next_deadline() {
                    assert!(deadline > now, "deadline {deadline} not after {now}");
                }
                assert_eq!(
                    table.iter().map(|e| e.id()).collect::<Vec<_>>(),
                    before.iter().map(|e| e.id()).collect::<Vec<_>>()
                );
            }
        }
        model.outstanding.retain(|id, _| table.contains(id));
        check_against_model(&table, &model, &nodes);
    }
}

/// `RoutingTable::pings_due` as a walk over every entry of every bucket, ignoring the cached
/// deadlines.
fn reference_pings_due(table: &mut RoutingTable, now: Instant, out: &mut Vec<(Id, SocketAddr)>) {
    let config = table.config;
    for bucket in &mut table.buckets {
        for entry in &mut bucket.entries {
            if entry.ping_sent().is_some() && !entry.ping_pending(now, &config) {
                entry.set_ping_sent(None);
            }
            let verify_at = entry.added.saturating_add(config.verify_after);
            if !entry.is_verified()
                && entry.failures == 0
                && entry.ping_sent().is_none()
                && now >= verify_at
            {
                entry.set_ping_sent(Some(now));
                out.push((entry.id, entry.addr));
            }
        }
        if bucket.wants_verification() && !bucket.has_pending_ping(now, &config) {
            let pos = bucket.ping_candidate(now, &config);
            if let Some(entry) = pos.and_then(|p| bucket.entries.get_mut(p)) {
                entry.set_ping_sent(Some(now));
                out.push((entry.id, entry.addr));
            }
        }
    }
}

/// Entries that are not bad survive operations that only add unverified contacts.
fn assert_kept(before: &[Entry], table: &RoutingTable, config: &TableConfig, op: &Op) {
    for e in before.iter().filter(|e| !e.is_bad(config)) {
        assert!(table.contains(&e.id()), "{op:?} evicted {e:?}");
    }
}

fn check_outcome(
    table: &RoutingTable,
    model: &mut Model,
    id: Id,
    a: SocketAddr,
    outcome: InsertOutcome,
    response: bool,
) {
    let now = model.now;
    match outcome {
        InsertOutcome::Inserted | InsertOutcome::Updated => {
            let e = table.get(&id).expect("inserted node missing");
            assert_eq!(e.addr(), a);
            if response {
                assert_eq!(e.status(now, table.config()), NodeStatus::Good);
            }
        }
        InsertOutcome::Cached => {
            assert!(!table.contains(&id));
            assert!(cached(table, &id));
        }
        InsertOutcome::PingFirst { id: stale, addr } => {
            assert!(response, "only answers ask for pings");
            assert!(cached(table, &id));
            let e = table.get(&stale).expect("ping to a non-entry");
            assert_eq!(e.addr(), addr);
            assert_eq!(e.status(now, table.config()), NodeStatus::Questionable);
            assert!(
                table.bucket_of(&stale).unwrap().covers(&id),
                "ping in another bucket"
            );
            if let Some(sent) = model.outstanding.get(&stale) {
                assert!(
                    now >= *sent + table.config().ping_timeout,
                    "ping asked again too early"
                );
            }
            model.outstanding.insert(stale, now);
        }
        InsertOutcome::Rejected(RejectReason::OwnId) => assert_eq!(id, table.own_id()),
        InsertOutcome::Rejected(RejectReason::AddressMismatch) => {
            let known = find_record(table, &id).expect("mismatch with nothing");
            assert_ne!(known.addr(), a);
        }
        InsertOutcome::Rejected(RejectReason::AddressInUse) => {
            assert!(
                all_records(table)
                    .iter()
                    .any(|e| e.addr() == a && e.id() != id)
            );
        }
        InsertOutcome::Rejected(RejectReason::IpInUse) => {
            assert!(table.config().one_node_per_ip);
            assert!(
                all_records(table)
                    .iter()
                    .any(|e| e.addr().ip() == a.ip() && e.id() != id)
            );
        }
        InsertOutcome::Rejected(_) => {}
    }
    if id == table.own_id() {
        assert_eq!(outcome, InsertOutcome::Rejected(RejectReason::OwnId));
        assert!(!table.contains(&id) && !cached(table, &id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_reference_model(
        own in any::<[u8; 20]>(),
        config in table_config(),
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..100),
    ) {
        run_ops(Id::new(own), config, seed, &ops);
    }
}

#[test]
fn a_long_random_run_fills_deep_buckets() {
    // A longer sequence than the property test, with the default configuration.
    let mut rng = TestRng(19);
    let own = Id::random(&mut rng);
    let mut ops = Vec::new();
    for i in 0..600u32 {
        let node = (rng.next_u32() % 64) as usize;
        ops.push(match i % 10 {
            0..=4 => Op::Response {
                node,
                alt: false,
                rtt_ms: 30,
            },
            5 => Op::Failure {
                node,
                alt: false,
                with_id: i % 20 == 5,
            },
            6 => Op::Candidate {
                node,
                alt: node % 3 == 0,
            },
            7 => Op::Advance {
                ms: rng.next_u32() % 400_000,
            },
            8 => Op::Tick,
            _ => Op::Query { node, alt: false },
        });
    }
    let config = TableConfig {
        bucket_size: 2,
        ..super::plain()
    };
    run_ops(own, config, 19, &ops);
}
