//! Every run is a pure function of its seed: the same seed twice gives the same trace digest
//! (every datagram sent and every event, with times and hosts), another seed another one.

use core::time::Duration;

use dht_tests::hostile::Behaviour;
use dht_tests::net::LinkConfig;
use dht_tests::run_seeds;
use dht_tests::scenario::{self, BuildMode, Params};
use dht_tests::sim::{Sim, SimConfig};

/// Everything at once, small: loss, duplication, reordering, churn, joins, hostile hosts.
fn mixed(seed: u64) -> Params {
    let mut p = Params::new(seed, 150);
    p.hostile = 0.1;
    p.behaviours = Behaviour::ALL.to_vec();
    p.build = BuildMode::Bootstrap {
        over: Duration::from_secs(10),
    };
    p.warmup = Duration::from_secs(20);
    p.dead = 0.05;
    p.link = LinkConfig {
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(200),
    };
    p.announces = 10;
    p.lookups = 40;
    p.lookup_window = Duration::from_secs(20);
    p.churn = 0.1;
    p.joins = 3;
    p
}

#[test]
fn same_seed_same_trace() {
    run_seeds("same_seed_same_trace", &[11, 12], |seed| {
        let p = mixed(seed);
        let a = scenario::run(&p).map_err(|e| e.to_string())?;
        let b = scenario::run(&p).map_err(|e| e.to_string())?;
        if a.digest != b.digest || a.steps != b.steps || a.datagrams != b.datagrams {
            return Err(format!(
                "runs diverged: digest {:x} vs {:x}, steps {} vs {}, datagrams {} vs {}",
                a.digest, b.digest, a.steps, b.steps, a.datagrams, b.datagrams
            ));
        }
        if a.lookups_ok != b.lookups_ok || a.churned != b.churned {
            return Err("same digest but different results".to_string());
        }
        Ok::<u64, String>(a.digest)
    });
}

#[test]
fn different_seeds_different_traces() {
    let a = scenario::run(&mixed(21)).unwrap();
    let b = scenario::run(&mixed(22)).unwrap();
    assert_ne!(a.digest, b.digest);
}

#[test]
fn trace_logs_of_equal_runs_are_equal_line_by_line() {
    // The text log is how a divergence is located; it must itself be deterministic.
    let run = || {
        let mut c = SimConfig::new(5);
        c.trace_log = 2_000;
        let mut s = Sim::new(c);
        s.add_nodes(20);
        s.routers = vec![0];
        for h in 1..20 {
            s.start_bootstrap(h);
        }
        s.run_for(Duration::from_secs(20)).unwrap();
        s.trace.log().unwrap().to_vec()
    };
    let (a, b) = (run(), run());
    assert!(a.len() > 100);
    assert_eq!(a, b);
}
