//! The deterministic network simulator for `dht-proto`.
//!
//! Thousands of [`dht_proto::Node`]s and hostile hosts exchange datagrams over a seeded,
//! I/O-free [`net::Net`] while virtual time jumps from deadline to deadline
//! ([`sim::Sim::step`]). Nothing sleeps and nothing touches a socket, so 100,000 nodes run in
//! one process, and every run is a pure function of its seed: two runs with the same seed end
//! with the same [`trace::Trace`] digest.
//!
//! - [`net`]: delivery heap, [`latency`] model, loss, duplication, reordering, partitions and
//!   [`rules`];
//! - [`sim`]: hosts, stepping, churn, watched queries; [`invariants`] checked after every step;
//! - [`hostile`]: misbehaving hosts built on the simulator's own [`bencode`];
//! - [`floods`]: network-scale floods (spoofed reflection, store eviction) and what they cost;
//! - [`build`]: building a large steady-state network quickly;
//! - [`coverage`]: the crawler's coverage of announced info-hashes, behind the `coverage` binary;
//! - [`scenario`]: the measurement scenario behind the `sim` binary and the scale tests;
//! - [`stats`]: percentiles and tables;
//! - [`torrents`] and [`seeder`]: generated torrents and a TCP peer serving their metadata
//!   (BEP 9/10) on loopback, for the crawler's benchmark and end-to-end tests.
//!
//! `DHT_SIM_SEED=<n>` replays one seed in every scenario test ([`seeds`]).

pub mod bencode;
pub mod build;
pub mod coverage;
pub mod estimate;
pub mod floods;
pub mod hostile;
pub mod invariants;
pub mod latency;
pub mod net;
pub mod rng;
pub mod rules;
pub mod scenario;
pub mod seeder;
pub mod sim;
pub mod stats;
pub mod torrents;
pub mod trace;

/// The seeds a scenario test runs: `DHT_SIM_SEED=<n>` replays one seed, `DHT_SIM_SEEDS=<n>`
/// sweeps `n` consecutive seeds from the first default, otherwise `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    if let Some(s) = std::env::var("DHT_SIM_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return vec![s];
    }
    if let Some(n) = std::env::var("DHT_SIM_SEEDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        let first = defaults.first().copied().unwrap_or(1);
        return (first..first.saturating_add(n)).collect();
    }
    defaults.to_vec()
}

/// Runs `scenario` for every seed of [`seeds`]. The scenario returns the digest of its trace;
/// with `DHT_SIM_CHECK_DETERMINISM=1` each seed runs twice and the digests must be equal (every
/// `cargo test` runs a mixed scenario twice regardless: `tests/determinism.rs`). On
/// the first failure, panics with the seed and how to replay it.
///
/// # Panics
///
/// When the scenario fails for a seed, or two runs of a seed differ.
pub fn run_seeds<E: core::fmt::Display>(
    name: &str,
    defaults: &[u64],
    mut scenario: impl FnMut(u64) -> Result<u64, E>,
) {
    let twice = std::env::var("DHT_SIM_CHECK_DETERMINISM").is_ok_and(|v| v != "0");
    for seed in seeds(defaults) {
        let replay = format!("replay: DHT_SIM_SEED={seed} cargo test -p dht-tests {name}");
        let first = match scenario(seed) {
            Ok(d) => d,
            Err(e) => panic!("{name} failed with seed {seed}: {e}\n{replay}"),
        };
        if twice {
            match scenario(seed) {
                Ok(d) if d == first => {}
                Ok(d) => panic!(
                    "{name} is not deterministic with seed {seed}: digest {first:016x} then \
                     {d:016x}\n{replay}"
                ),
                Err(e) => panic!("{name} failed on its second run with seed {seed}: {e}\n{replay}"),
            }
        }
    }
}
