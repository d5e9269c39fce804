//! `coverage`: how much of what honest nodes announce the crawler discovers, how fast, at what
//! cost, and the load it puts on the busiest honest node.
//!
//! ```text
//! cargo run --release -p dht-tests --bin coverage -- --nodes 100000 --info-hashes 50000 --minutes 60 [--seed N]
//! ```
//!
//! Further options: `--ids N` (crawler ids, default 64), `--rate Q` (queries per second,
//! default 500), `--no-sample` (no BEP 51 traversal), `--no-lookups`.

use std::process::ExitCode;

use dht_tests::coverage::{CoverageParams, run};

const USAGE: &str = "usage: coverage [--nodes N] [--info-hashes N] [--minutes M] [--seed N] \
                     [--ids N] [--rate Q] [--no-sample] [--no-lookups]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut p = CoverageParams::new(1, 10_000, 5_000, 60);
    let mut minutes = 60u64;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--no-sample" => p.sample = false,
            "--no-lookups" => p.lookups = false,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                let value = it.next().and_then(|v| v.parse::<u64>().ok());
                let to_u32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                match (flag.as_str(), value) {
                    ("--nodes", Some(v)) => p.nodes = to_u32(v),
                    ("--info-hashes", Some(v)) => p.info_hashes = to_u32(v),
                    ("--minutes", Some(v)) => minutes = v.max(1),
                    ("--seed", Some(v)) => p.seed = v,
                    ("--ids", Some(v)) => p.ids = to_u32(v).max(1),
                    ("--rate", Some(v)) => p.rate = to_u32(v).max(1),
                    _ => {
                        eprintln!("{USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
        }
    }
    p.duration = core::time::Duration::from_secs(minutes * 60);
    match run(&p) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
