//! `sim`: runs the measurement scenario on a simulated network and prints one table.
//!
//! ```text
//! cargo run --release -p dht-tests --bin sim -- --nodes 100000 --lookups 1000 --loss 5% --dead 20%
//! ```

use core::time::Duration;
use std::process::ExitCode;

use dht_tests::hostile::Behaviour;
use dht_tests::invariants::Checks;
use dht_tests::scenario::{BuildMode, LookupRecord, Params, SeedHow, run};

const USAGE: &str = "\
usage: sim [options]

network
  --nodes N              hosts, honest and hostile (default 10000)
  --hostile F            share of hostile hosts, all behaviours in turn (default 0)
  --build MODE           seeded (tables sampled from the population) or bootstrap
                         (every node joins through the routers); default: seeded above
                         5000 nodes, else bootstrap
  --seed-mode MODE       how seeded tables are filled: answered (verified entries at once, as
                         if each contact had just answered a ping; no datagrams), import
                         (Node::import_nodes, then the nodes verify with a ping each) or
                         ping (a ping to each contact); default answered
  --warmup S             seconds of virtual time after building (default 60)
  --dead F               share of honest nodes killed after warm-up (default 0)
  --loss F               datagram loss (default 0)
  --dup F                datagram duplication (default 0)
  --reorder F            share of datagrams delayed by up to 300 ms (default 0)
  --rtt MS               median RTT in ms (default 100)
workload
  --announces N          info-hashes announced (default 200)
  --lookups N            get_peers lookups (default 1000)
  --window S             seconds over which lookups start (default 60)
  --churn F              share of nodes churned during the lookups (default 0)
  --joins N              nodes joining during the lookups (default 20)
  --minutes M            total virtual minutes (default 10)
node configuration
  --alpha N  --k N  --far-buckets N  --far-bucket-size N
  --short-timeout MS  --query-timeout MS
other
  --seed S               seed (default: DHT_SIM_SEED or 1)
  --checks all|cheap     invariants (default: cheap above 5000 nodes)
  --markdown             print the table as Markdown
  --lookup-log FILE      write one line per finished lookup: host, its own median RTT (ms),
                         completion (ms), requests, hops, responses, timeouts, found (0/1)

Shares (F) are fractions (0.05) or percentages (5%).";

fn fraction(v: &str) -> Result<f64, String> {
    let (num, scale) = match v.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (v, 1.0),
    };
    let f: f64 = num.parse().map_err(|_| format!("not a number: {v}"))?;
    let f = f / scale;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("not a share between 0 and 1: {v}"))
    }
}

fn number<T: core::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("not a number: {v}"))
}

struct Cli {
    params: Params,
    markdown: bool,
    lookup_log: Option<String>,
}

fn parse(args: &[String]) -> Result<Cli, String> {
    let seed = std::env::var("DHT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut p = Params::new(seed, 10_000);
    p.announces = 200;
    p.lookups = 1000;
    p.joins = 20;
    p.duration = Duration::from_secs(600);
    let mut build = None;
    let mut checks = None;
    let mut markdown = false;
    let mut lookup_log = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--markdown" {
            markdown = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .as_str();
        match flag.as_str() {
            "--nodes" => p.nodes = number(v)?,
            "--hostile" => p.hostile = fraction(v)?,
            "--build" => {
                build = Some(match v {
                    "seeded" => BuildMode::Seeded,
                    "bootstrap" => BuildMode::Bootstrap {
                        over: Duration::from_secs(30),
                    },
                    _ => return Err(format!("unknown build mode: {v}")),
                });
            }
            "--seed-mode" => {
                p.seed_mode = match v {
                    "answered" => SeedHow::Answered,
                    "import" => SeedHow::Import,
                    "ping" => SeedHow::Ping,
                    _ => return Err(format!("unknown seed mode: {v}")),
                };
            }
            "--warmup" => p.warmup = Duration::from_secs(number(v)?),
            "--dead" => p.dead = fraction(v)?,
            "--loss" => p.link.loss = fraction(v)?,
            "--dup" => p.link.duplicate = fraction(v)?,
            "--reorder" => {
                p.link.reorder = fraction(v)?;
                p.link.reorder_delay = Duration::from_millis(300);
            }
            "--rtt" => p.latency.median_rtt = Duration::from_millis(number(v)?),
            "--announces" => p.announces = number(v)?,
            "--lookups" => p.lookups = number(v)?,
            "--window" => p.lookup_window = Duration::from_secs(number(v)?),
            "--churn" => p.churn = fraction(v)?,
            "--joins" => p.joins = number(v)?,
            "--minutes" => p.duration = Duration::from_secs_f64(number::<f64>(v)? * 60.0),
            "--alpha" => p.node.alpha = number(v)?,
            "--k" => {
                p.node.bucket_size = number(v)?;
                p.node.far_bucket_size = p.node.far_bucket_size.max(p.node.bucket_size);
            }
            "--far-buckets" => p.node.far_buckets = number(v)?,
            "--far-bucket-size" => p.node.far_bucket_size = number(v)?,
            "--short-timeout" => p.node.short_timeout = Duration::from_millis(number(v)?),
            "--query-timeout" => p.node.query_timeout = Duration::from_millis(number(v)?),
            "--seed" => p.seed = number(v)?,
            "--lookup-log" => lookup_log = Some(v.to_string()),
            "--checks" => {
                checks = Some(match v {
                    "all" => Checks::ALL,
                    "cheap" => Checks::CHEAP,
                    _ => return Err(format!("unknown checks: {v}")),
                });
            }
            _ => return Err(format!("unknown option: {flag}")),
        }
    }
    let large = p.nodes > 5_000;
    p.build = build.unwrap_or(if large {
        BuildMode::Seeded
    } else {
        BuildMode::Bootstrap {
            over: Duration::from_secs(30),
        }
    });
    p.checks = checks.unwrap_or(if large { Checks::CHEAP } else { Checks::ALL });
    p.behaviours = Behaviour::ALL.to_vec();
    p.node.validate().map_err(|e| e.to_string())?;
    Ok(Cli {
        params: p,
        markdown,
        lookup_log,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let p = &cli.params;
    println!(
        "sim: {} nodes ({:.0} % hostile), {:?}, loss {:.1} %, dead {:.0} %, churn {:.0} %, \
         {} announces, {} lookups, {} joins, {} virtual min, seed {}",
        p.nodes,
        p.hostile * 100.0,
        p.build,
        p.link.loss * 100.0,
        p.dead * 100.0,
        p.churn * 100.0,
        p.announces,
        p.lookups,
        p.joins,
        p.duration.as_secs_f64() / 60.0,
        p.seed
    );
    println!(
        "node: alpha {}, k {}, far buckets {} of {}, short timeout {:?}, query timeout {:?}",
        p.node.alpha,
        p.node.bucket_size,
        p.node.far_buckets,
        p.node.far_bucket_size,
        p.node.short_timeout,
        p.node.query_timeout
    );
    match run(p) {
        Ok(mut report) => {
            let table = report.table();
            if let Some(path) = &cli.lookup_log {
                if let Err(e) = write_log(path, &report.records) {
                    eprintln!("cannot write {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if cli.markdown {
                print!("{}", table.to_markdown());
            } else {
                print!("{table}");
            }
            for f in &report.failures {
                println!("failed: {f}");
            }
            let phases: Vec<String> = report
                .phases
                .iter()
                .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
                .collect();
            println!("wall time by phase: {}", phases.join(", "));
            println!("trace digest {:016x}", report.digest);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("simulation failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `--lookup-log`: one line per finished lookup.
fn write_log(path: &str, records: &[LookupRecord]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in records {
        writeln!(
            out,
            "{} {:.1} {:.1} {} {} {} {} {}",
            r.host,
            r.own_rtt_ms,
            r.completion_ms,
            r.messages,
            r.hops,
            r.responses,
            r.timeouts,
            u8::from(r.found)
        )?;
    }
    out.flush()
}
