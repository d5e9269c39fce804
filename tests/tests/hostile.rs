//! One behaviour at a time: 10 % of the hosts misbehave in one way; honest lookups still
//! succeed, every honest node stays within its caps (checked after every step), and the
//! misbehaviour leaves the trace it should in the honest nodes' counters.

use core::time::Duration;

use dht_proto::{DropReason, Event, Id, Node};
use dht_tests::hostile::{BAIT_INFO_HASH, Behaviour, REPLAY_PORT};
use dht_tests::scenario::{self, BuildMode, Params, Report};
use dht_tests::sim::{Host, Sim};

fn params(seed: u64, b: Behaviour) -> Params {
    let mut p = Params::new(seed, 220);
    p.hostile = 0.1;
    p.behaviours = vec![b];
    p.build = BuildMode::Bootstrap {
        over: Duration::from_secs(20),
    };
    p.warmup = Duration::from_secs(60);
    p.announces = 20;
    p.lookups = 100;
    p.lookup_window = Duration::from_secs(30);
    p
}

/// Builds, announces and looks up; returns the simulation for inspection.
fn run(b: Behaviour, keep_events: bool) -> (Sim, Report) {
    let mut p = params(31, b);
    p.keep_events = keep_events;
    let (mut sim, mut report) = scenario::build_network(&p).unwrap();
    let targets = scenario::announce(&mut sim, &p, &mut report).unwrap();
    scenario::lookups(&mut sim, &p, &mut report, &targets).unwrap();
    let rate = report.success_rate();
    assert!(
        rate >= 0.99,
        "{}: success {:.1} %: {:#?}",
        b.name(),
        rate * 100.0,
        report.failures
    );
    assert_eq!(report.announces_ok, report.announces, "{}", b.name());
    (sim, report)
}

fn honest_sum(sim: &Sim, f: impl Fn(&Node) -> u64) -> u64 {
    sim.honest_hosts().filter_map(|h| sim.node(h)).map(f).sum()
}

#[test]
fn silent_hosts() {
    let (sim, _) = run(Behaviour::Silent, false);
    assert!(sim.counters.to_hostile > 0);
    assert!(honest_sum(&sim, |n| n.stats().timeouts) > 0);
}

#[test]
fn garbage_is_dropped_as_malformed() {
    let (sim, _) = run(Behaviour::Garbage, false);
    assert!(honest_sum(&sim, |n| n.stats().dropped(DropReason::Malformed)) > 0);
}

#[test]
fn wrong_ids_are_dropped() {
    let (sim, _) = run(Behaviour::WrongId, false);
    assert!(honest_sum(&sim, |n| n.stats().dropped(DropReason::WrongId)) > 0);
}

#[test]
fn fake_nodes_do_not_stall_lookups() {
    let (sim, _) = run(Behaviour::FakeNodes, false);
    assert!(sim.counters.to_hostile > 0);
}

#[test]
fn oversized_datagrams_are_dropped() {
    let (sim, _) = run(Behaviour::Oversized, false);
    assert!(honest_sum(&sim, |n| n.stats().dropped(DropReason::TooLarge)) > 0);
}

#[test]
fn spoofed_responses_match_nothing() {
    let (sim, _) = run(Behaviour::Spoofer, false);
    let unknown = honest_sum(&sim, |n| {
        n.stats().dropped(DropReason::UnknownTransaction)
            + n.stats().dropped(DropReason::WrongSource)
    });
    assert!(unknown > 0);
}

#[test]
fn replayed_tokens_are_refused() {
    let (mut sim, _) = run(Behaviour::TokenReplayer, true);
    // Give the replayers time to harvest and replay, including expired tokens (older than
    // 11 minutes), across the first bucket refreshes (15 minutes).
    sim.run_until_time(dht_proto::Instant::from_secs(20 * 60))
        .unwrap();
    let replays: u64 = (0..sim.hosts())
        .filter_map(|h| sim.hostile(h))
        .map(|x| x.replays)
        .sum();
    assert!(replays > 50, "only {replays} replays");
    // Refused with KRPC error 203.
    assert!(honest_sum(&sim, |n| n.stats().errors_sent(203)) > 0);
    // Nobody stores a replayed announce: no lookup of the bait finds a replayer's port.
    let bait = Id::new(BAIT_INFO_HASH);
    let askers: Vec<u32> = sim.honest_hosts().take(20).collect();
    for (i, h) in askers.into_iter().enumerate() {
        sim.get_peers(h, bait, i as u64, None).unwrap();
    }
    sim.run_until_watched_done(Duration::from_secs(300))
        .unwrap();
    let leaked: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::PeersFound { peers, .. } => Some(peers),
            _ => None,
        })
        .flatten()
        .filter(|p| p.port() == REPLAY_PORT)
        .collect();
    assert!(leaked.is_empty(), "replayed announces stored: {leaked:?}");
}

#[test]
fn every_host_kind_is_present() {
    let p = params(1, Behaviour::Silent);
    let (sim, r) = scenario::build_network(&p).unwrap();
    assert_eq!(r.hostile, 22);
    let hostile = (0..sim.hosts())
        .filter(|&h| matches!(sim.host(h), Some(Host::Hostile(..))))
        .count();
    assert_eq!(hostile, 22);
}
