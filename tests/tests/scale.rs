//! Whole-network scenarios: a thousand nodes under loss and churn, a partition that heals,
//! and hostile hosts. Every step checks every honest node's invariants (caps, no spinning
//! timer, one `QueryFinished` per query); a lookup that never ends fails the run.
//!
//! `DHT_SIM_SEED=<n>` replays one seed; a failure prints the seed it failed with.

use core::time::Duration;

use dht_proto::Id;
use dht_tests::hostile::Behaviour;
use dht_tests::net::{LinkConfig, PartitionMode, host_addr};
use dht_tests::run_seeds;
use dht_tests::scenario::{self, BuildMode, Params, Report, Target};
use dht_tests::sim::{Action, Sim};

/// A thousand nodes in steady state: routing tables as a long-running network has them
/// (each node pinged a realistic sample of the others, see `build::seed_tables`).
fn thousand(seed: u64) -> Params {
    let mut p = Params::new(seed, 1000);
    p.build = BuildMode::Seeded;
    p.warmup = Duration::from_secs(60);
    p.announces = 200;
    p.lookups = 1000;
    p.lookup_window = Duration::from_secs(120);
    p
}

/// Checks success and announces; returns the trace digest.
fn check(r: &mut Report, min_success: f64) -> Result<u64, String> {
    let rate = r.success_rate();
    let table = r.table();
    println!("{table}");
    if rate < min_success {
        return Err(format!(
            "success {:.2} % < {:.2} %; failures: {:#?}",
            rate * 100.0,
            min_success * 100.0,
            r.failures
        ));
    }
    if r.announces_ok < r.announces {
        return Err(format!(
            "{} of {} announces stored nothing",
            r.announces - r.announces_ok,
            r.announces
        ));
    }
    Ok(r.digest)
}

#[test]
fn thousand_nodes_with_loss_and_churn() {
    run_seeds("thousand_nodes_with_loss_and_churn", &[1], |seed| {
        let mut p = thousand(seed);
        p.link = LinkConfig {
            loss: 0.05,
            ..LinkConfig::default()
        };
        p.churn = 0.10;
        p.joins = 10;
        let mut r = scenario::run(&p).map_err(|e| e.to_string())?;
        let digest = check(&mut r, 0.99)?;
        if r.churned < 90 {
            return Err(format!("only {} nodes churned", r.churned));
        }
        if r.joins_not_bootstrapped > 0 {
            return Err(format!(
                "{} joiners never bootstrapped",
                r.joins_not_bootstrapped
            ));
        }
        Ok(digest)
    });
}

/// The same, but every node joins through the protocol (bootstrap through three routers within
/// 30 s, then a minute of warm-up).
///
/// Regression: when a node refreshed only the far half of its table after `Bootstrapped`, the
/// average table held ~20 entries 90 s into the network's life (steady state: ~63) and some
/// lookups converged on a region whose nodes knew nothing closer. Seed 1: 989 of 999 lookups
/// succeeded (98.99 %); even without loss or churn 11 of 1,000 failed.
#[test]
fn thousand_bootstrapped_nodes_with_loss_and_churn() {
    run_seeds(
        "thousand_bootstrapped_nodes_with_loss_and_churn",
        &[1],
        |seed| {
            let mut p = thousand(seed);
            p.build = BuildMode::Bootstrap {
                over: Duration::from_secs(30),
            };
            p.link = LinkConfig {
                loss: 0.05,
                ..LinkConfig::default()
            };
            p.churn = 0.10;
            let mut r = scenario::run(&p).map_err(|e| e.to_string())?;
            check(&mut r, 0.99)
        },
    );
}

#[test]
fn ten_percent_hostile() {
    run_seeds("ten_percent_hostile", &[2], |seed| {
        let mut p = thousand(seed);
        p.hostile = 0.10;
        p.behaviours = Behaviour::ALL.to_vec();
        let mut r = scenario::run(&p).map_err(|e| e.to_string())?;
        // Caps of every honest node were checked after every step of the run.
        check(&mut r, 0.99)
    });
}

/// Lookups from `from` hosts for `targets`; returns how many found the announcer.
fn lookups_from(
    sim: &mut Sim,
    from: &[u32],
    targets: &[Target],
    n: usize,
) -> Result<(usize, usize), String> {
    sim.finished.clear();
    let mut started = 0;
    for i in 0..n {
        let h = from[sim.rng.index(from.len())];
        let t = targets[i % targets.len()];
        if sim.node(h).is_some()
            && sim
                .get_peers(h, t.info_hash, i as u64, Some(t.peer))
                .is_ok()
        {
            started += 1;
        }
        sim.run_for(Duration::from_millis(100))
            .map_err(|e| e.to_string())?;
    }
    sim.run_until_watched_done(Duration::from_secs(300))
        .map_err(|e| e.to_string())?;
    let ok = sim
        .finished
        .drain(..)
        .filter(|w| w.found_expected.is_some())
        .count();
    Ok((started, ok))
}

fn announce_from(sim: &mut Sim, hosts: &[u32], n: usize) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for i in 0..n {
        let h = hosts[sim.rng.index(hosts.len())];
        let info_hash = Id::new(sim.rng.bytes20());
        let port = 20_000 + i as u16;
        sim.announce(h, info_hash, Some(port), i as u64)
            .map_err(|e| e.to_string())?;
        let mut peer = host_addr(h);
        peer.set_port(port);
        targets.push(Target { info_hash, peer });
    }
    sim.run_until_watched_done(Duration::from_secs(300))
        .map_err(|e| e.to_string())?;
    sim.finished.clear();
    Ok(targets)
}

fn partition_scenario(seed: u64, mode: PartitionMode) -> Result<u64, String> {
    let mut p = Params::new(seed, 400);
    p.warmup = Duration::from_secs(60);
    let (mut sim, _) = scenario::build_network(&p).map_err(|e| e.to_string())?;
    let (a, b): (Vec<u32>, Vec<u32>) = sim.honest_hosts().partition(|h| h % 2 == 0);
    let before = announce_from(&mut sim, &b, 20)?;

    // Split: B's hosts form group 1.
    sim.net.partition(b.iter().copied(), 1, mode);
    // While split, a new announce from B must be invisible from A (its storers are all in B).
    let during = announce_from(&mut sim, &b, 20)?;
    let (started, ok) = lookups_from(&mut sim, &a, &during, 40)?;
    if started == 0 || ok > 0 {
        return Err(format!(
            "during the partition A found {ok} of {started} peers announced in B"
        ));
    }
    sim.run_for(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;

    // Heal, let the tables recover, then everything must be reachable again: the announces
    // from before, and new ones (clients re-announce periodically).
    let now = sim.now;
    sim.schedule(now, Action::Heal);
    sim.run_for(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    let after = announce_from(&mut sim, &b, 20)?;
    let all: Vec<Target> = before.iter().chain(after.iter()).copied().collect();
    let (started, ok) = lookups_from(&mut sim, &a, &all, 200)?;
    if (ok as f64) < 0.99 * started as f64 {
        return Err(format!(
            "after healing only {ok} of {started} lookups succeeded"
        ));
    }
    Ok(sim.trace.digest())
}

#[test]
fn partition_that_heals() {
    run_seeds("partition_that_heals", &[3], |seed| {
        partition_scenario(seed, PartitionMode::Drop)
    });
}

#[test]
fn partition_that_holds_and_releases_late_datagrams() {
    run_seeds("partition_that_holds", &[4], |seed| {
        partition_scenario(seed, PartitionMode::Hold)
    });
}
