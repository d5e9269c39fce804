//! Measuring [`Node::size_estimate`](dht_proto::Node::size_estimate) on a simulated network:
//! a network of known size is built and warmed up, then each probe node runs 16 `find_node`
//! lookups of random targets (so the estimator's window holds exactly those) and its
//! estimate is compared with the number of live nodes.

use core::time::Duration;

use dht_proto::Id;

use crate::scenario::{BuildMode, Params, build_network};
use crate::sim::SimError;

/// Lookups each probe runs before its estimate is read.
pub const LOOKUPS: usize = 16;

/// One probe node's estimate.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The host.
    pub host: u32,
    /// Its estimate of the network size.
    pub estimate: u64,
    /// Live honest nodes in the network.
    pub actual: usize,
    /// The estimator's own standard error (relative).
    pub stated_error: f64,
}

impl Probe {
    /// (estimate − actual) / actual.
    pub fn error(&self) -> f64 {
        (self.estimate as f64 - self.actual as f64) / self.actual as f64
    }
}

/// Builds a `nodes`-node network (seeded tables, 60 s warm-up) with `seed` and reads the
/// estimate of `probes` nodes spread over it, each after [`LOOKUPS`] lookups.
///
/// # Errors
///
/// A simulation failure (an invariant broken, a query that never ended).
pub fn measure(nodes: u32, seed: u64, probes: u32) -> Result<Vec<Probe>, SimError> {
    let mut p = Params::new(seed, nodes);
    p.build = BuildMode::Seeded;
    p.warmup = Duration::from_secs(60);
    let (mut sim, _report) = build_network(&p)?;
    let actual = sim.honest_count();
    let mut out = Vec::new();
    let hosts: Vec<u32> = sim.honest_hosts().collect();
    let step = (hosts.len() / probes.max(1) as usize).max(1);
    for (n, &h) in hosts.iter().step_by(step).take(probes as usize).enumerate() {
        for i in 0..LOOKUPS {
            let mut target = [0u8; 20];
            sim.rng.fill(&mut target);
            let _ = sim.find_node(h, Id::new(target), (n * LOOKUPS + i) as u64);
        }
        sim.run_until_watched_done(Duration::from_secs(120))?;
        // A lookup with stragglers among its closest nodes is recorded once they answered or
        // timed out: give them the full query timeout.
        sim.run_for(p.node.query_timeout)?;
        if let Some(e) = sim.node(h).and_then(|node| node.size_estimate()) {
            out.push(Probe {
                host: h,
                estimate: e.nodes,
                actual,
                stated_error: e.relative_error,
            });
        }
    }
    Ok(out)
}

/// Mean error, root-mean-square error, largest absolute error, and the share within ±10 %.
pub fn summary(probes: &[Probe]) -> (f64, f64, f64, f64) {
    let n = probes.len().max(1) as f64;
    let errors: Vec<f64> = probes.iter().map(Probe::error).collect();
    let mean = errors.iter().sum::<f64>() / n;
    let rms = (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    let max = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let within = errors.iter().filter(|e| e.abs() <= 0.10).count() as f64 / n;
    (mean, rms, max, within)
}
