//! The simulator's mechanics with real nodes: exact timing, rules, corruption, duplicates,
//! dead hosts, failure reporting.

use core::time::Duration;

use dht_proto::{DropReason, Event, Id, Instant, QueryStatus};
use dht_tests::latency::LatencyModel;
use dht_tests::net::{LinkConfig, host_addr};
use dht_tests::rules::{Selector, SimpleRule, Verdict};
use dht_tests::sim::{Sim, SimConfig};

fn sim(seed: u64, latency: LatencyModel) -> Sim {
    let mut c = SimConfig::new(seed);
    c.latency = latency;
    c.keep_events = true;
    Sim::new(c)
}

/// `n` nodes bootstrapped through node 0 over ten seconds, then a minute of settling.
fn network(seed: u64, n: u32, latency: LatencyModel, link: LinkConfig) -> Sim {
    let mut s = sim(seed, latency);
    s.net.link = link;
    s.add_nodes(n);
    s.routers = vec![0];
    s.protect(0, true);
    for h in 1..n {
        let at = Instant::from_millis(s.rng.below(10_000));
        s.schedule(at, dht_tests::sim::Action::Bootstrap(h));
    }
    s.run_for(Duration::from_secs(70)).unwrap();
    s
}

fn finished(s: &Sim, host: u32) -> Vec<(Instant, dht_proto::QueryOutcome)> {
    s.events
        .iter()
        .filter(|(_, h, _)| *h == host)
        .filter_map(|(t, _, e)| match e {
            Event::QueryFinished { outcome, .. } => Some((*t, outcome.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ping_takes_exactly_one_round_trip() {
    // Constant 100 ms RTT, no jitter: the request arrives after 50 ms, the answer 50 ms later.
    let mut s = sim(1, LatencyModel::constant(Duration::from_millis(100)));
    s.add_nodes(2);
    s.run_for(Duration::from_secs(1)).unwrap();
    let t0 = s.now;
    let now = s.now;
    let q = s.node_mut(1).unwrap().ping(now, host_addr(0)).unwrap();
    s.run_for(Duration::from_secs(1)).unwrap();
    let (at, outcome) = s
        .events
        .iter()
        .find_map(|(t, h, e)| match e {
            Event::QueryFinished { query, outcome } if *h == 1 && *query == q => {
                Some((*t, outcome.clone()))
            }
            _ => None,
        })
        .expect("ping finished");
    assert_eq!(outcome.status, QueryStatus::Completed);
    assert_eq!(outcome.responder, s.node(0).map(|n| n.id()));
    assert_eq!(at, t0 + Duration::from_millis(100));
}

#[test]
fn ping_to_a_dead_host_times_out_after_the_query_timeout() {
    let mut s = sim(2, LatencyModel::constant(Duration::from_millis(100)));
    s.add_nodes(2);
    s.kill(0);
    let t0 = s.now;
    let q = s.node_mut(1).unwrap().ping(t0, host_addr(0)).unwrap();
    s.run_for(Duration::from_secs(30)).unwrap();
    let (at, outcome) = finished(&s, 1).into_iter().next().expect("ping finished");
    assert_eq!(outcome.status, QueryStatus::TimedOut);
    let timeout = s.node(1).unwrap().config().query_timeout;
    assert_eq!(at, t0 + timeout, "{q:?}");
    assert_eq!(s.counters.to_down, 1);
}

#[test]
fn a_rule_dropping_every_announce_leaves_nothing_stored() {
    let mut s = network(3, 40, LatencyModel::default(), LinkConfig::default());
    s.net.add_rule(SimpleRule::new(
        Selector::any()
            .of_kind(b'q')
            .containing(b"13:announce_peer"),
        Verdict::Drop,
    ));
    let info_hash = Id::new([0x5a; 20]);
    s.announce(5, info_hash, Some(7777), 0).unwrap();
    s.run_until_watched_done(Duration::from_secs(120)).unwrap();
    let w = s.finished.pop().unwrap();
    let outcome = w.finished.unwrap().1;
    assert_eq!(outcome.announced, 0);
    let dropped = s.net.counters.dropped_by_rule;
    assert!(dropped >= 1, "no announce_peer was sent");
    let mut peer = host_addr(5);
    peer.set_port(7777);
    s.get_peers(9, info_hash, 1, Some(peer)).unwrap();
    s.run_until_watched_done(Duration::from_secs(120)).unwrap();
    let w = s.finished.pop().unwrap();
    assert_eq!(w.peers, 0);
    assert!(w.found_expected.is_none());
}

#[test]
fn corrupted_datagrams_are_counted_and_lookups_still_end() {
    let mut s = network(4, 40, LatencyModel::default(), LinkConfig::default());
    s.net
        .add_rule(SimpleRule::new(Selector::any(), Verdict::Corrupt(8)).with_probability(0.2));
    for i in 0..20u32 {
        let target = Id::new(s.rng.bytes20());
        s.find_node(1 + i, target, u64::from(i)).unwrap();
    }
    s.run_until_watched_done(Duration::from_secs(120)).unwrap();
    assert_eq!(s.finished.len(), 20);
    let malformed: u64 = s
        .honest_hosts()
        .filter_map(|h| s.node(h))
        .map(|n| n.stats().dropped(DropReason::Malformed))
        .sum();
    assert!(malformed > 0);
    assert!(s.net.counters.altered_by_rule > 0);
}

#[test]
fn duplicated_and_reordered_datagrams_finish_each_query_once() {
    // Checks::ALL (the default) fails the run on a second QueryFinished for any query.
    let link = LinkConfig {
        duplicate: 0.3,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(400),
        ..LinkConfig::default()
    };
    let mut s = network(5, 50, LatencyModel::default(), link);
    for i in 0..30u32 {
        let target = Id::new(s.rng.bytes20());
        s.find_node(1 + i, target, u64::from(i)).unwrap();
    }
    s.run_until_watched_done(Duration::from_secs(120)).unwrap();
    assert_eq!(s.finished.len(), 30);
    assert!(s.net.counters.duplicated > 0);
    assert!(s.net.counters.reordered > 0);
    for w in &s.finished {
        let n = s
            .events
            .iter()
            .filter(|(_, h, e)| {
                *h == w.host && matches!(e, Event::QueryFinished { query, .. } if *query == w.query)
            })
            .count();
        assert_eq!(n, 1);
    }
}

#[test]
fn a_deadline_missed_names_the_seed() {
    let mut s = sim(77, LatencyModel::default());
    s.add_nodes(1);
    let deadline = s.now + Duration::from_secs(5);
    let err = s
        .run_until("the impossible", deadline, |_| false)
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("the impossible"), "{text}");
    assert!(text.contains("DHT_SIM_SEED=77"), "{text}");
}

#[test]
fn bootstrap_through_the_simulator_fills_tables() {
    let s = network(6, 60, LatencyModel::default(), LinkConfig::default());
    for h in 1..60 {
        let x = s.honest(h).unwrap();
        assert!(x.node.is_bootstrapped(), "host {h}");
        assert!(x.node.table_len() >= 8, "host {h}: {}", x.node.table_len());
    }
    assert_eq!(s.bootstrap_times.len(), 59);
}
