//! Faults of the core found by the simulator, each pinned by a test with a named seed.
//!
//! A test here that is `#[ignore]`d fails today; its comment names the fault. Remove the
//! `#[ignore]` once the fault is fixed.

use core::time::Duration;

use dht_proto::{Config, Instant, Node};
use dht_tests::latency::LatencyModel;
use dht_tests::sim::{Sim, SimConfig};

/// Runs the timers of a node with no contacts for `horizon`; returns the instant at which
/// `poll_timeout` stopped moving forward, if it did.
fn spins_at(config: Config, horizon: Instant) -> Option<Instant> {
    let mut node = Node::new(config, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    while now < horizon {
        let t = node.poll_timeout()?;
        if t <= now && now > Instant::ZERO {
            return Some(now);
        }
        now = now.max(t);
        node.handle_timeout(now);
    }
    None
}

/// Fault: a spinning timer 15 minutes after start.
///
/// `Node::next_timer` includes `RoutingTable::next_deadline` of both tables, which includes
/// each bucket's `next_refresh` (creation + `bucket_refresh_interval`). But
/// `Node::table_maintenance` calls `refresh_targets` (the only thing that advances
/// `next_refresh`) only when the node is bootstrapped and that table is non-empty. So a node
/// that is not bootstrapped, or whose IPv6 table is empty (every IPv4-only node), has
/// `poll_timeout() == creation + 15 min` forever once that instant passes: a driver calling
/// `handle_timeout` at each deadline spins. Every simulated node hits it at t = 900 s.
#[test]
#[ignore = "core fault: refresh deadline of an unrefreshed table never advances (spins at 900 s)"]
fn lone_node_timer_does_not_spin_at_the_first_refresh() {
    for ipv6 in [true, false] {
        let mut c = Config::local_testing([1; 32]);
        c.ipv6 = ipv6;
        assert_eq!(
            spins_at(c, Instant::from_secs(3_600)),
            None,
            "ipv6 = {ipv6}"
        );
    }
}

/// The same fault in a simulated network (seed 1): two nodes, one bootstrapped through the
/// other, run for 20 virtual minutes; the simulator's spin check fails at 900 s.
#[test]
#[ignore = "core fault: refresh deadline of an unrefreshed table never advances (spins at 900 s)"]
fn two_nodes_run_past_the_first_refresh_seed_1() {
    let mut c = SimConfig::new(1);
    c.latency = LatencyModel::constant(Duration::from_millis(50));
    let mut s = Sim::new(c);
    s.add_nodes(2);
    s.routers = vec![0];
    s.start_bootstrap(1);
    if let Err(e) = s.run_for(Duration::from_secs(20 * 60)) {
        panic!("{e}");
    }
}

/// The fault is specific: below 15 minutes a lone node's timers always move forward.
#[test]
fn lone_node_timer_moves_forward_before_the_first_refresh() {
    let c = Config::local_testing([1; 32]);
    assert_eq!(spins_at(c, Instant::from_secs(899)), None);
}

/// Fault: a restarted node cannot restore its saved table.
///
/// `Node::export_nodes` documents its output as what to pass to `Node::import_nodes` at the
/// next start, but imported contacts are unverified and the routing table never splits a bucket
/// for an unverified contact: a fresh table keeps one bucket of them (8 entries, 8 more in the
/// replacement cache). Seed 1: a node of a 300-node steady-state network exports 65 contacts;
/// the same id restarted and given them keeps 8. (The same limit makes `add_node(addr,
/// Some(id))` useless for building large simulated networks; the simulator pings instead.)
#[test]
#[ignore = "core fault: import_nodes keeps one bucket of a saved table"]
fn restarted_node_restores_its_saved_table_seed_1() {
    use dht_tests::scenario::{self, BuildMode, Params};
    let mut p = Params::new(1, 300);
    p.build = BuildMode::Seeded;
    p.warmup = Duration::from_secs(30);
    let (sim, _) = scenario::build_network(&p).unwrap();
    let old = sim.node(10).unwrap();
    let saved = old.export_nodes();
    assert!(saved.len() >= 40, "only {} contacts exported", saved.len());
    let mut config = old.config().clone();
    config.id = Some(old.id());
    let now = sim.now;
    let mut fresh = Node::new(config, now).unwrap();
    fresh.import_nodes(now, saved.iter().copied());
    assert!(
        fresh.table_len() * 2 >= saved.len(),
        "restored {} of {} saved contacts",
        fresh.table_len(),
        saved.len()
    );
}
