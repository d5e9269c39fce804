//! `floods`: the network-scale floods at full size, printing what they cost.
//!
//! ```text
//! cargo run --release -p dht-tests --bin floods -- [--nodes N] [--sources N] [--datagrams N]
//! ```
//!
//! A reflection flood (by default 100,000 spoofed sources, 1,000,000 datagrams over 100 s
//! at the nodes holding 200 announces, half of them from 100 victims of a sustained flood)
//! while 1,000 honest lookups run, then a store-eviction
//! flood (5 hosts for 2 minutes) followed by lookups of every announce, on a network of
//! 10,000 nodes. `cargo test` runs a smaller version of each (`tests/tests/hostile.rs`). Exit
//! code 1 when honest lookups fail (below 99 % during the reflection flood, 95 % after the
//! store flood); the amplification is printed.

use core::time::Duration;
use std::process::ExitCode;

use dht_tests::floods::{self, ReflectionFlood, StoreFlood};
use dht_tests::invariants::Checks;
use dht_tests::scenario::{BuildMode, Params};

const USAGE: &str = "\
usage: floods [--nodes N] [--sources N] [--datagrams N] [--seed S]

  --nodes N       honest nodes (default 10000)
  --sources N     spoofed source addresses of the reflection flood (default 100000)
  --datagrams N   spoofed datagrams (default 1000000)
  --seed S        seed (default 1)";

fn main() -> ExitCode {
    let mut nodes = 10_000u32;
    let mut sources = 100_000u32;
    let mut datagrams = 1_000_000u64;
    let mut seed = 1u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().map(String::as_str);
        let ok = match (a.as_str(), value) {
            ("--nodes", Some(v)) => v.parse().map(|v| nodes = v).is_ok(),
            ("--sources", Some(v)) => v.parse().map(|v| sources = v).is_ok(),
            ("--datagrams", Some(v)) => v.parse().map(|v| datagrams = v).is_ok(),
            ("--seed", Some(v)) => v.parse().map(|v| seed = v).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let network = |seed| {
        let mut p = Params::new(seed, nodes);
        p.build = BuildMode::Seeded;
        p.warmup = Duration::from_secs(30);
        p.announces = 200;
        if nodes > 5_000 {
            p.checks = Checks::CHEAP;
        }
        p
    };
    let f = ReflectionFlood {
        network: network(seed),
        sources,
        sustained: 100,
        datagrams,
        over: Duration::from_secs(100),
        lookups: 1_000,
    };
    println!(
        "reflection flood: {nodes} nodes, {sources} spoofed sources, {datagrams} datagrams \
         over {:?}, {} honest lookups",
        f.over, f.lookups
    );
    let mut failed = false;
    match floods::reflection_flood(&f) {
        Ok(r) => {
            println!("{}", r.lines().join("\n"));
            failed |= r.success() < 0.99;
        }
        Err(e) => {
            println!("failed: {e}");
            failed = true;
        }
    }
    let f = StoreFlood {
        network: network(seed + 1),
        flooders: 5,
        over: Duration::from_secs(120),
    };
    println!(
        "\nstore-eviction flood: {nodes} nodes, {} flooders for {:?} at the storers of {} \
         announces",
        f.flooders, f.over, f.network.announces
    );
    match floods::store_flood(&f) {
        Ok(r) => {
            println!("{}", r.lines().join("\n"));
            failed |= r.success() < 0.95;
        }
        Err(e) => {
            println!("failed: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
