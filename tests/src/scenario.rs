//! The measurement scenario behind the `sim` binary and the scale tests.
//!
//! 1. **Build**: `nodes` hosts (a `hostile` share of them misbehaving), three of them routers.
//!    Either every node bootstraps through the routers at a random moment of a window
//!    ([`BuildMode::Bootstrap`], realistic, for thousands of nodes), or every routing table is
//!    seeded with a realistic sample of the population ([`BuildMode::Seeded`], see
//!    [`build`](crate::build), for 100,000 nodes). Then the network runs for `warmup`.
//! 2. **Dead entries**: a `dead` share of the honest nodes is killed; others still list them.
//! 3. **Announces**: `announces` random nodes each announce a fresh info-hash on its own port.
//! 4. **Lookups**: `lookups` random nodes each look up a random announced info-hash, spread
//!    over `lookup_window`, while a `churn` share of the nodes leaves, restarts or moves, and
//!    `joins` new nodes bootstrap. A lookup succeeds when the announcer's address is among
//!    the peers found. Lookups whose own node left are counted apart.
//! 5. **Joiners' lookups**: each joined node runs one lookup, proving it usable.
//! 6. The network runs on until `duration` of virtual time, for traffic measurements.

use core::net::SocketAddr;
use core::time::Duration;

use dht_proto::{Config, Id, Instant};

use crate::build::{SeedMode, kill_fraction, seed_tables};
use crate::hostile::Behaviour;
use crate::invariants::Checks;
use crate::latency::LatencyModel;
use crate::net::{LinkConfig, host_addr};
use crate::sim::{Action, Sim, SimConfig, SimError, Watched};
use crate::stats::{Samples, Table, fmt_opt};

/// How the network is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildMode {
    /// Every node bootstraps through the routers at a random instant within `over`.
    Bootstrap {
        /// The window.
        over: Duration,
    },
    /// Every routing table is seeded with a sample of the population.
    Seeded,
}

/// How [`BuildMode::Seeded`] hands each node its contacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedHow {
    /// `Node::import_answered_nodes`: verified entries at once, no datagram (as if each
    /// contact had just answered a ping).
    Answered,
    /// `Node::import_nodes` (the node verifies them with a ping each).
    Import,
    /// `Node::add_node(addr, None)` (a ping each; the answers enter the table).
    Ping,
}

/// Everything the scenario takes.
#[derive(Clone, Debug)]
pub struct Params {
    /// The seed.
    pub seed: u64,
    /// Hosts (honest and hostile).
    pub nodes: u32,
    /// Share of hosts that are hostile.
    pub hostile: f64,
    /// Behaviours of hostile hosts, used in turn.
    pub behaviours: Vec<Behaviour>,
    /// How the network is built.
    pub build: BuildMode,
    /// How seeded contacts are handed over.
    pub seed_mode: SeedHow,
    /// Virtual time the network runs after being built.
    pub warmup: Duration,
    /// Share of honest nodes killed after warm-up (dead table entries).
    pub dead: f64,
    /// Random link faults.
    pub link: LinkConfig,
    /// Round-trip times.
    pub latency: LatencyModel,
    /// Info-hashes announced.
    pub announces: u32,
    /// `get_peers` lookups.
    pub lookups: u32,
    /// Lookups start evenly spread over this window.
    pub lookup_window: Duration,
    /// Share of honest nodes churned during the lookup window.
    pub churn: f64,
    /// Nodes that join during the lookup window.
    pub joins: u32,
    /// Total virtual time of the run.
    pub duration: Duration,
    /// Template configuration of honest nodes.
    pub node: Config,
    /// Invariants checked.
    pub checks: Checks,
    /// A lookup still running this long after its start is a bug.
    pub lookup_limit: Duration,
    /// Keep every event in [`Sim::events`] (small networks only).
    pub keep_events: bool,
}

impl Params {
    /// A small default network of `nodes` nodes bootstrapped through the protocol.
    pub fn new(seed: u64, nodes: u32) -> Self {
        Self {
            seed,
            nodes,
            hostile: 0.0,
            behaviours: Behaviour::ALL.to_vec(),
            build: BuildMode::Bootstrap {
                over: Duration::from_secs(30),
            },
            seed_mode: SeedHow::Answered,
            warmup: Duration::from_secs(60),
            dead: 0.0,
            link: LinkConfig::default(),
            latency: LatencyModel::default(),
            announces: 20,
            lookups: 100,
            lookup_window: Duration::from_secs(60),
            churn: 0.0,
            joins: 0,
            duration: Duration::ZERO,
            node: Config::local_testing([0; 32]),
            checks: Checks::ALL,
            lookup_limit: Duration::from_secs(300),
            keep_events: false,
        }
    }
}

/// One finished lookup, for analysis of the tail (`sim --lookup-log`).
#[derive(Clone, Debug, Default)]
pub struct LookupRecord {
    /// The issuing host.
    pub host: u32,
    /// The issuing host's own median RTT, ms.
    pub own_rtt_ms: f64,
    /// Time to completion, ms.
    pub completion_ms: f64,
    /// Requests sent.
    pub messages: u32,
    /// Hops.
    pub hops: u32,
    /// Responses received.
    pub responses: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Whether the announcer was found.
    pub found: bool,
}

/// What the scenario measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Honest nodes at the start.
    pub honest: usize,
    /// Hostile hosts.
    pub hostile: usize,
    /// Nodes killed as dead entries.
    pub dead: usize,
    /// Nodes churned during the lookups.
    pub churned: u64,
    /// Median RTT of the latency model.
    pub median_rtt: Duration,
    /// Announces that stored at one node at least, of those started.
    pub announces_ok: usize,
    /// Announces started.
    pub announces: usize,
    /// Lookups started.
    pub lookups: usize,
    /// Lookups that found the announcer.
    pub lookups_ok: usize,
    /// Lookups lost because their own node left.
    pub lookups_aborted: usize,
    /// Time to the announcer's address, in ms (successful lookups).
    pub first_peer_ms: Samples,
    /// Time to completion, in ms.
    pub completion_ms: Samples,
    /// Time to completion in multiples of the issuing host's own median RTT (its access link
    /// slows every one of its requests alike).
    pub completion_own_rtts: Samples,
    /// The issuing host's own median RTT, in ms, one sample per finished lookup: with the
    /// completion times it tells how much of the tail the issuers' access links explain.
    pub issuer_rtt_ms: Samples,
    /// One record per finished lookup, in the order they finished.
    pub records: Vec<LookupRecord>,
    /// Requests sent per lookup.
    pub messages: Samples,
    /// Hops per lookup.
    pub hops: Samples,
    /// Time from `bootstrap` to `Bootstrapped` of joining nodes, in ms.
    pub join_bootstrap_ms: Samples,
    /// Joiners that never bootstrapped.
    pub joins_not_bootstrapped: usize,
    /// Joiners' own lookups: started, succeeded.
    pub join_lookups: (usize, usize),
    /// Bytes sent per honest node per minute, after warm-up.
    pub bytes_per_node_minute: f64,
    /// Resident memory per honest node, bytes (process growth while building / nodes).
    pub memory_per_node: Option<f64>,
    /// Wall time of building (table seeding or bootstrap).
    pub wall_build: Duration,
    /// Wall time of the whole run.
    pub wall_total: Duration,
    /// CPU time of the whole run (the machine may be shared).
    pub cpu_total: Option<Duration>,
    /// Virtual time of the whole run.
    pub virtual_total: Duration,
    /// Simulator steps.
    pub steps: u64,
    /// Datagrams sent by honest nodes.
    pub datagrams: u64,
    /// The trace digest.
    pub digest: u64,
    /// A few failed lookups, for diagnosis.
    pub failures: Vec<String>,
    /// CPU time of the process when the run started.
    pub cpu_at_start: Option<Duration>,
    /// Wall time of each phase.
    pub phases: Vec<(&'static str, Duration)>,
    /// End of the warm-up (traffic is measured from here).
    pub warm_end: Instant,
    /// Bytes honest nodes had sent by the end of the warm-up.
    pub bytes_at_warm: u64,
}

impl Report {
    /// Successful share of the lookups that could finish (their node stayed).
    pub fn success_rate(&self) -> f64 {
        let n = self.lookups.saturating_sub(self.lookups_aborted);
        if n == 0 {
            return 0.0;
        }
        self.lookups_ok as f64 / n as f64
    }

    /// The table the `sim` binary prints.
    pub fn table(&mut self) -> Table {
        let rtt_ms = self.median_rtt.as_secs_f64() * 1000.0;
        let mut t = Table::new(["metric", "median", "p90", "p99", "unit"]);
        t.row([
            "lookup success".to_string(),
            format!("{:.2} %", 100.0 * self.success_rate()),
            String::new(),
            String::new(),
            format!(
                "{} of {} ({} aborted: their node left)",
                self.lookups_ok, self.lookups, self.lookups_aborted
            ),
        ]);
        let mut time_rows = |name: &str, s: &mut Samples| {
            let sum = s.summary();
            t.row([
                format!("{name} (ms)"),
                fmt_opt(sum.median, 0),
                fmt_opt(sum.p90, 0),
                fmt_opt(sum.p99, 0),
                "ms".to_string(),
            ]);
            let x = |v: Option<f64>| fmt_opt(v.map(|v| v / rtt_ms.max(1e-9)), 2);
            t.row([
                format!("{name} (RTTs)"),
                x(sum.median),
                x(sum.p90),
                x(sum.p99),
                format!("× median RTT {rtt_ms:.0} ms"),
            ]);
        };
        time_rows("time to first peer", &mut self.first_peer_ms);
        time_rows("time to completion", &mut self.completion_ms);
        let own = self.completion_own_rtts.summary();
        t.row([
            "time to completion (own RTTs)".to_string(),
            fmt_opt(own.median, 2),
            fmt_opt(own.p90, 2),
            fmt_opt(own.p99, 2),
            "× the issuing host's own median RTT".to_string(),
        ]);
        let issuer = self.issuer_rtt_ms.summary();
        let x = |v: Option<f64>| fmt_opt(v.map(|v| v / rtt_ms.max(1e-9)), 2);
        t.row([
            "issuer's own median RTT".to_string(),
            x(issuer.median),
            x(issuer.p90),
            x(issuer.p99),
            format!("× median RTT {rtt_ms:.0} ms, one per finished lookup"),
        ]);
        let mut count_row = |name: &str, s: &mut Samples, unit: &str| {
            let sum = s.summary();
            t.row([
                name.to_string(),
                fmt_opt(sum.median, 0),
                fmt_opt(sum.p90, 0),
                fmt_opt(sum.p99, 0),
                format!("{unit}, mean {}", fmt_opt(sum.mean, 1)),
            ]);
        };
        count_row("messages per lookup", &mut self.messages, "requests");
        count_row("hops per lookup", &mut self.hops, "hops");
        let sum = self.join_bootstrap_ms.summary();
        t.row([
            "join to Bootstrapped (ms)".to_string(),
            fmt_opt(sum.median, 0),
            fmt_opt(sum.p90, 0),
            fmt_opt(sum.p99, 0),
            format!(
                "{} joined, {} never bootstrapped; their lookups {}/{} ok",
                sum.count + self.joins_not_bootstrapped,
                self.joins_not_bootstrapped,
                self.join_lookups.1,
                self.join_lookups.0
            ),
        ]);
        let plain = |t: &mut Table, name: &str, v: String, unit: &str| {
            t.row([
                name.to_string(),
                v,
                String::new(),
                String::new(),
                unit.to_string(),
            ]);
        };
        plain(
            &mut t,
            "announces stored",
            format!("{}/{}", self.announces_ok, self.announces),
            "announces with ≥ 1 node accepting",
        );
        plain(
            &mut t,
            "bytes sent per node per minute",
            format!("{:.0}", self.bytes_per_node_minute),
            "bytes (after warm-up)",
        );
        plain(
            &mut t,
            "memory per node",
            self.memory_per_node
                .map_or("-".to_string(), |m| format!("{:.1}", m / 1024.0)),
            "KiB (RSS growth while building / nodes)",
        );
        plain(
            &mut t,
            "wall time",
            format!("{:.1}", self.wall_total.as_secs_f64()),
            &format!("s (building {:.1} s)", self.wall_build.as_secs_f64()),
        );
        plain(
            &mut t,
            "CPU time",
            self.cpu_total
                .map_or("-".to_string(), |c| format!("{:.1}", c.as_secs_f64())),
            "s (user + system; the machine may be shared)",
        );
        let speed = self.virtual_total.as_secs_f64() / self.wall_total.as_secs_f64().max(1e-9);
        plain(
            &mut t,
            "virtual / wall speed",
            format!("{speed:.1}"),
            &format!("× ({:.0} s virtual)", self.virtual_total.as_secs_f64()),
        );
        plain(
            &mut t,
            "network",
            format!("{}", self.honest),
            &format!(
                "honest nodes; {} hostile, {} killed as dead entries, {} churned; {} steps, {} datagrams",
                self.hostile, self.dead, self.churned, self.steps, self.datagrams
            ),
        );
        t
    }
}

/// An announced info-hash and the peer its announcer stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The info-hash.
    pub info_hash: Id,
    /// The announcer's address with the announced port.
    pub peer: SocketAddr,
}

/// A random live honest host (not a router when `avoid_routers`).
pub fn pick_live(sim: &mut Sim, avoid_routers: bool) -> Option<u32> {
    let n = u64::from(sim.hosts());
    for _ in 0..1000 {
        let h = sim.rng.below(n) as u32;
        if sim.node(h).is_some() && !(avoid_routers && sim.routers.contains(&h)) {
            return Some(h);
        }
    }
    sim.honest_hosts().next()
}

/// Phase 1 and 2: builds the network, warms it up and kills the dead share.
///
/// # Errors
///
/// A broken invariant or a livelock.
pub fn build_network(p: &Params) -> Result<(Sim, Report), SimError> {
    let wall = std::time::Instant::now();
    let rss0 = Sim::process_memory();
    let mut config = SimConfig::new(p.seed);
    config.latency = p.latency.clone();
    config.link = p.link.clone();
    config.node = p.node.clone();
    config.checks = p.checks;
    config.keep_events = p.keep_events;
    let mut sim = Sim::new(config);
    let mut report = Report {
        seed: p.seed,
        cpu_at_start: Sim::process_cpu_time(),
        ..Report::default()
    };
    let hostile = ((f64::from(p.nodes) * p.hostile).round() as u32).min(p.nodes.saturating_sub(3));
    let honest = p.nodes - hostile;
    sim.add_nodes(honest);
    for i in 0..hostile {
        let b = p.behaviours[i as usize % p.behaviours.len().max(1)];
        sim.add_hostile(b);
    }
    report.honest = honest as usize;
    report.hostile = hostile as usize;
    sim.routers = (0..honest.min(3)).collect();
    for r in sim.routers.clone() {
        sim.protect(r, true);
    }
    report.phases.push(("create", wall.elapsed()));
    match p.build {
        BuildMode::Seeded => {
            let spread = Duration::from_secs(10);
            let t = std::time::Instant::now();
            let mode = match p.seed_mode {
                SeedHow::Answered => SeedMode::Answered,
                SeedHow::Import => SeedMode::Import { spread },
                SeedHow::Ping => SeedMode::Ping { spread },
            };
            seed_tables(&mut sim, 2, mode);
            report.phases.push(("plan contacts", t.elapsed()));
            let t = std::time::Instant::now();
            // Imported entries are verified `2 × query_timeout` after the import.
            let settle = p.node.query_timeout.saturating_mul(2) + Duration::from_secs(10);
            if mode != SeedMode::Answered {
                sim.run_for(spread + settle)?;
            }
            report.phases.push(("fill tables", t.elapsed()));
        }
        BuildMode::Bootstrap { over } => {
            // The routers know each other.
            let now = sim.now;
            let routers = sim.routers.clone();
            for &r in &routers {
                for &o in &routers {
                    if r != o {
                        let id = sim.id_of(o);
                        if let Some(node) = sim.node_mut(r) {
                            let _ = node.add_node(now, host_addr(o), id);
                        }
                    }
                }
            }
            let span = over.as_millis().max(1) as u64;
            for h in 0..honest {
                let at = Instant::from_millis(sim.rng.below(span));
                sim.schedule(at, Action::Bootstrap(h));
            }
            for h in honest..honest + hostile {
                sim.hostile_hello(h, 16);
            }
            sim.run_for(over)?;
        }
    }
    report.memory_per_node = match (rss0, Sim::process_memory()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / f64::from(honest.max(1))),
        _ => None,
    };
    report.wall_build = wall.elapsed();
    let t = std::time::Instant::now();
    sim.run_for(p.warmup)?;
    report.phases.push(("warm-up", t.elapsed()));
    report.warm_end = sim.now;
    report.bytes_at_warm = sim.counters.honest_bytes;
    report.dead = kill_fraction(&mut sim, p.dead).len();
    report.median_rtt = sim
        .net
        .latency
        .sampled_median(sim.net.seed(), sim.hosts(), 20_000);
    Ok((sim, report))
}

/// Phase 3: announces, spread over ten seconds; returns what was announced.
///
/// # Errors
///
/// A broken invariant, a livelock or an announce that never ends.
pub fn announce(sim: &mut Sim, p: &Params, report: &mut Report) -> Result<Vec<Target>, SimError> {
    let mut targets = Vec::new();
    let spacing = Duration::from_millis(10_000 / u64::from(p.announces.max(1)));
    for i in 0..p.announces {
        let Some(h) = pick_live(sim, false) else {
            break;
        };
        let info_hash = Id::new(sim.rng.bytes20());
        let port = 10_000 + (i % 50_000) as u16;
        if sim.announce(h, info_hash, Some(port), u64::from(i)).is_ok() {
            let mut peer = host_addr(h);
            peer.set_port(port);
            targets.push(Target { info_hash, peer });
        }
        sim.run_for(spacing)?;
    }
    report.announces = targets.len();
    sim.run_until_watched_done(p.lookup_limit)?;
    report.announces_ok = sim
        .finished
        .drain(..)
        .filter(|w| w.finished.as_ref().is_some_and(|(_, o)| o.announced > 0))
        .count();
    Ok(targets)
}

/// Phase 4: lookups under churn, with joins; returns the joined hosts.
///
/// # Errors
///
/// A broken invariant, a livelock or a lookup that never ends.
pub fn lookups(
    sim: &mut Sim,
    p: &Params,
    report: &mut Report,
    targets: &[Target],
) -> Result<Vec<u32>, SimError> {
    let start = sim.now;
    let window_end = start + p.lookup_window;
    let churn = (sim.honest_count() as f64 * p.churn).round() as usize;
    sim.schedule_churn(start, window_end, churn);
    let events = u64::from(p.lookups.max(1));
    let step = Duration::from_millis(p.lookup_window.as_millis() as u64 / events);
    let join_every = if p.joins > 0 {
        p.lookups.max(1) / p.joins.min(p.lookups.max(1))
    } else {
        u32::MAX
    };
    let mut joiners = Vec::new();
    let started = report.lookups;
    let finished_before = sim.finished.len();
    for i in 0..p.lookups.max(p.joins) {
        if i < p.lookups && !targets.is_empty() {
            let t = targets[sim.rng.index(targets.len())];
            if let Some(h) = pick_live(sim, true) {
                if sim
                    .get_peers(h, t.info_hash, u64::from(i), Some(t.peer))
                    .is_ok()
                {
                    report.lookups += 1;
                }
            }
        }
        if joiners.len() < p.joins as usize && (i % join_every == 0 || i >= p.lookups) {
            let h = sim.join(None);
            sim.protect(h, true);
            joiners.push(h);
        }
        sim.run_for(step)?;
    }
    sim.run_until_watched_done(p.lookup_limit)?;
    let finished = sim.finished.len() - finished_before;
    report.lookups_aborted += (report.lookups - started).saturating_sub(finished);
    let hosts = sim.hosts();
    for w in sim.finished.drain(..) {
        let own = sim
            .net
            .latency
            .host_median(sim.net.seed(), w.host, hosts, 101);
        record_lookup(report, &w, own);
    }
    report.churned = sim.counters.churned;
    Ok(joiners)
}

/// Phase 5: records the joiners' bootstrap times and has each run one lookup.
///
/// # Errors
///
/// A broken invariant, a livelock or a lookup that never ends.
pub fn joiner_lookups(
    sim: &mut Sim,
    p: &Params,
    report: &mut Report,
    targets: &[Target],
    joiners: &[u32],
) -> Result<(), SimError> {
    sim.run_for(Duration::from_secs(10))?;
    for &h in joiners {
        match sim
            .honest(h)
            .and_then(|x| x.bootstrapped_at.zip(x.bootstrap_started))
        {
            Some((done, began)) => report
                .join_bootstrap_ms
                .push(done.saturating_duration_since(began).as_secs_f64() * 1000.0),
            None => report.joins_not_bootstrapped += 1,
        }
        if targets.is_empty() {
            continue;
        }
        let t = targets[sim.rng.index(targets.len())];
        if sim
            .get_peers(h, t.info_hash, u64::MAX, Some(t.peer))
            .is_ok()
        {
            report.join_lookups.0 += 1;
        }
    }
    sim.run_until_watched_done(p.lookup_limit)?;
    report.join_lookups.1 = sim
        .finished
        .drain(..)
        .filter(|w| w.found_expected.is_some())
        .count();
    Ok(())
}

/// Phase 6: runs on until `p.duration` and fills in the traffic and timing figures.
///
/// # Errors
///
/// A broken invariant or a livelock.
pub fn finish(
    sim: &mut Sim,
    p: &Params,
    report: &mut Report,
    wall: std::time::Instant,
) -> Result<(), SimError> {
    let end = Instant::ZERO + p.duration;
    if sim.now < end {
        sim.run_until_time(end)?;
    }
    let minutes = sim
        .now
        .saturating_duration_since(report.warm_end)
        .as_secs_f64()
        / 60.0;
    let bytes = sim.counters.honest_bytes - report.bytes_at_warm;
    report.bytes_per_node_minute = if minutes > 0.0 {
        bytes as f64 / sim.honest_count().max(1) as f64 / minutes
    } else {
        0.0
    };
    report.virtual_total = sim.now.saturating_duration_since(Instant::ZERO);
    report.wall_total = wall.elapsed();
    report.cpu_total = Sim::process_cpu_time()
        .zip(report.cpu_at_start)
        .map(|(b, a)| b.saturating_sub(a));
    report.steps = sim.counters.steps;
    report.datagrams = sim.counters.honest_datagrams;
    report.digest = sim.trace.digest();
    Ok(())
}

/// Runs every phase.
///
/// # Errors
///
/// A broken invariant, a livelock or a lookup that never ends.
pub fn run(p: &Params) -> Result<Report, SimError> {
    let wall = std::time::Instant::now();
    let (mut sim, mut report) = build_network(p)?;
    let t = std::time::Instant::now();
    let targets = announce(&mut sim, p, &mut report)?;
    report.phases.push(("announces", t.elapsed()));
    let t = std::time::Instant::now();
    let joiners = lookups(&mut sim, p, &mut report, &targets)?;
    report.phases.push(("lookups", t.elapsed()));
    let t = std::time::Instant::now();
    joiner_lookups(&mut sim, p, &mut report, &targets, &joiners)?;
    report.phases.push(("joiners' lookups", t.elapsed()));
    let t = std::time::Instant::now();
    finish(&mut sim, p, &mut report, wall)?;
    report.phases.push(("run on", t.elapsed()));
    Ok(report)
}

fn record_lookup(report: &mut Report, w: &Watched, own_rtt: Duration) {
    let Some((at, outcome)) = &w.finished else {
        return;
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let took = ms(at.saturating_duration_since(w.started));
    report.completion_ms.push(took);
    report
        .completion_own_rtts
        .push(took / ms(own_rtt).max(1e-9));
    report.issuer_rtt_ms.push(ms(own_rtt));
    report.records.push(LookupRecord {
        host: w.host,
        own_rtt_ms: ms(own_rtt),
        completion_ms: took,
        messages: outcome.metrics.messages_sent,
        hops: outcome.metrics.hops,
        responses: outcome.metrics.responses,
        timeouts: outcome.metrics.timeouts,
        found: w.found_expected.is_some(),
    });
    report
        .messages
        .push(f64::from(outcome.metrics.messages_sent));
    report.hops.push(f64::from(outcome.metrics.hops));
    match w.found_expected {
        Some(t) => {
            report.lookups_ok += 1;
            report
                .first_peer_ms
                .push(ms(t.saturating_duration_since(w.started)));
        }
        None => {
            if report.failures.len() < 10 {
                report.failures.push(format!(
                    "host {} lookup {}: {:?} after {:?}, {} peers, {} messages, {} responses, {} timeouts",
                    w.host,
                    w.tag,
                    outcome.status,
                    outcome.metrics.duration,
                    w.peers,
                    outcome.metrics.messages_sent,
                    outcome.metrics.responses,
                    outcome.metrics.timeouts
                ));
            }
        }
    }
}
