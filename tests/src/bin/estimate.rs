//! `estimate`: how close nodes' network-size estimates come to the real size.
//!
//! ```text
//! cargo run --release -p dht-tests --bin estimate -- --nodes 100000 --seeds 3 --probes 20
//! ```

use std::process::ExitCode;

use dht_tests::estimate::{LOOKUPS, measure, summary};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut nodes = 10_000u32;
    let mut seeds = 3u64;
    let mut probes = 20u32;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--nodes", Some(v)) => nodes = u32::try_from(v).unwrap_or(u32::MAX),
            ("--seeds", Some(v)) => seeds = v,
            ("--probes", Some(v)) => probes = u32::try_from(v).unwrap_or(u32::MAX),
            _ => {
                eprintln!("usage: estimate [--nodes N] [--seeds S] [--probes P]");
                return ExitCode::from(2);
            }
        }
    }
    let mut all = Vec::new();
    for seed in 1..=seeds {
        let wall = std::time::Instant::now();
        match measure(nodes, seed, probes) {
            Ok(p) => {
                let (mean, rms, max, within) = summary(&p);
                println!(
                    "{nodes} nodes, seed {seed}: {} probes after {LOOKUPS} lookups: mean {:+.1} %, \
                     rms {:.1} %, worst {:.1} %, {:.0} % within ±10 % ({:.0} s)",
                    p.len(),
                    mean * 100.0,
                    rms * 100.0,
                    max * 100.0,
                    within * 100.0,
                    wall.elapsed().as_secs_f64()
                );
                all.extend(p);
            }
            Err(e) => {
                eprintln!("seed {seed}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (mean, rms, max, within) = summary(&all);
    println!(
        "all {} probes: mean {:+.1} %, rms {:.1} %, worst {:.1} %, {:.0} % within ±10 %; \
         stated standard error {:.1} %",
        all.len(),
        mean * 100.0,
        rms * 100.0,
        max * 100.0,
        within * 100.0,
        all.first().map_or(0.0, |p| p.stated_error * 100.0)
    );
    ExitCode::SUCCESS
}
