//! The crawler's coverage: a steady-state network in which honest nodes announce info-hashes
//! over the run, a [`Crawler`](dht_proto::crawl::Crawler) with spread ids among them, and the
//! share of the announced info-hashes it discovers, how fast, at what cost in queries, and the
//! load it puts on the honest nodes. Behind the `coverage` binary and `tests/crawl_coverage.rs`.

use core::fmt;
use core::time::Duration;

use dht_proto::crawl::{CrawlStats, CrawlerConfig, HowFound, spread_ids};
use dht_proto::internals::TestRng;
use dht_proto::{Id, Instant, RateLimit};

use crate::invariants::Checks;
use crate::rng::SimRng;
use crate::scenario::{BuildMode, Params, build_network};
use crate::sim::SimError;

/// What the coverage run takes.
#[derive(Clone, Debug)]
pub struct CoverageParams {
    /// The seed.
    pub seed: u64,
    /// Honest nodes.
    pub nodes: u32,
    /// Info-hashes announced, each by one random honest node, at random instants of the run
    /// (all but its last minute, so that the last ones have a chance).
    pub info_hashes: u32,
    /// Virtual time the crawler runs.
    pub duration: Duration,
    /// Crawler ids (one address each).
    pub ids: u32,
    /// The BEP 51 traversal on.
    pub sample: bool,
    /// The crawler's global query rate.
    pub rate: u32,
    /// `get_peers` lookups per discovered info-hash on.
    pub lookups: bool,
}

impl CoverageParams {
    /// `nodes` nodes, `info_hashes` announces over `minutes`, 64 ids, sampling and lookups on,
    /// 500 queries per second.
    pub fn new(seed: u64, nodes: u32, info_hashes: u32, minutes: u64) -> Self {
        Self {
            seed,
            nodes,
            info_hashes,
            duration: Duration::from_secs(minutes * 60),
            ids: 64,
            sample: true,
            rate: 500,
            lookups: true,
        }
    }
}

/// Discovery at one instant of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Virtual time since the crawler started.
    pub at: Duration,
    /// Info-hashes announced so far.
    pub announced: usize,
    /// Of those, discovered by then.
    pub discovered: usize,
}

impl Checkpoint {
    /// `discovered / announced`.
    pub fn share(&self) -> f64 {
        self.discovered as f64 / self.announced.max(1) as f64
    }
}

/// What the coverage run measured.
#[derive(Clone, Debug, Default)]
pub struct CoverageReport {
    /// The parameters' summary.
    pub nodes: u32,
    /// Crawler ids.
    pub ids: u32,
    /// Checkpoints after 10 minutes (if the run is that long) and at the end.
    pub checkpoints: Vec<Checkpoint>,
    /// Announced info-hashes discovered within 10 minutes of their announce.
    pub within_10_min_of_announce: usize,
    /// Announced info-hashes, in all.
    pub announced: usize,
    /// Median time from announce to discovery, of those discovered.
    pub median_delay: Duration,
    /// Discovered (announced ones), by how: passive (`get_peers`, `announce_peer`), BEP 51.
    pub by_passive: usize,
    /// Discovered from BEP 51 samples.
    pub by_sample: usize,
    /// The crawler's counters at the end.
    pub stats: CrawlStats,
    /// Peer searches that ended (lookups, and holders' answers with peers).
    pub lookups_done: u64,
    /// Of those, the ones that found at least one peer.
    pub lookups_with_peers: u64,
    /// Average queries per second of the crawler.
    pub query_rate: f64,
    /// The most queries one honest node got from the crawler in one second.
    pub busiest_per_second: u32,
    /// The most queries one honest node got from the crawler in all, per second of the run.
    pub busiest_average: f64,
    /// Honest nodes the crawler queried.
    pub hosts_queried: usize,
    /// The honest nodes' per-source admission rate (queries per second).
    pub admission_per_second: u32,
    /// Virtual seconds the crawler ran.
    pub seconds: f64,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// Builds the network, starts the crawler, announces, and measures.
///
/// # Errors
///
/// A simulation failure.
pub fn run(c: &CoverageParams) -> Result<CoverageReport, SimError> {
    let wall = std::time::Instant::now();
    let mut p = Params::new(c.seed, c.nodes);
    p.build = BuildMode::Seeded;
    p.warmup = Duration::from_secs(30);
    if c.nodes > 1_000 {
        p.checks = Checks::CHEAP;
    }
    let admission = p
        .node
        .limits
        .source_rate
        .map_or(0, |r: RateLimit| r.per_second);
    let (mut sim, _) = build_network(&p)?;
    let honest: Vec<u32> = sim.honest_hosts().collect();

    let mut rng = SimRng::new(sim.derive(0x6372_6177));
    let ids = spread_ids(c.ids, &mut TestRng(rng.next_u64()));
    let mut seed = [0u8; 32];
    rng.fill(&mut seed);
    let mut config = CrawlerConfig::new(seed);
    config.node = sim.config.node.clone();
    config.sample = c.sample;
    config.budget.rate = c.rate;
    if !c.lookups {
        config.max_lookups = 0;
    }
    sim.add_crawler(config, &ids);
    sim.bootstrap_crawler();
    let start = sim.now;

    // The announces: random honest nodes at random instants (all but the last minute).
    let span = c
        .duration
        .saturating_sub(Duration::from_secs(60))
        .max(Duration::from_secs(1));
    let mut plan: Vec<(Instant, Id, u32)> = (0..c.info_hashes)
        .map(|_| {
            let at = start + Duration::from_millis(rng.below(span.as_millis() as u64));
            let mut bytes = [0u8; 20];
            rng.fill(&mut bytes);
            let h = honest[rng.index(honest.len())];
            (at, Id::new(bytes), h)
        })
        .collect();
    plan.sort_unstable_by_key(|(at, _, _)| *at);

    let mut report = CoverageReport {
        nodes: c.nodes,
        ids: c.ids,
        announced: plan.len(),
        admission_per_second: admission,
        ..CoverageReport::default()
    };
    let end = start + c.duration;
    let ten = start + Duration::from_secs(600);
    let mut next = 0;
    let mut checked_ten = c.duration <= Duration::from_secs(600);
    while sim.now < end {
        let step_end = (sim.now + Duration::from_secs(1)).min(end);
        while let Some(&(at, ih, h)) = plan.get(next) {
            if at > step_end {
                break;
            }
            sim.run_until_time(at)?;
            let now = sim.now;
            if let Some(node) = sim.node_mut(h) {
                let _ = node.announce_peer(now, ih, Some(6881));
            }
            next += 1;
        }
        sim.run_until_time(step_end)?;
        if !checked_ten && sim.now >= ten {
            checked_ten = true;
            report
                .checkpoints
                .push(checkpoint(&sim, &plan[..next], start));
        }
    }
    report
        .checkpoints
        .push(checkpoint(&sim, &plan[..next], start));

    let crawl = sim.crawler();
    let mut delays = Vec::new();
    for (at, ih, _) in &plan {
        if let Some((found, how)) = crawl.and_then(|c| c.discovered.get(ih)) {
            let delay = found.saturating_duration_since(*at);
            delays.push(delay);
            if delay <= Duration::from_secs(600) {
                report.within_10_min_of_announce += 1;
            }
            match how {
                HowFound::Sample => report.by_sample += 1,
                _ => report.by_passive += 1,
            }
        }
    }
    delays.sort_unstable();
    report.median_delay = delays.get(delays.len() / 2).copied().unwrap_or_default();
    report.seconds = sim.now.saturating_duration_since(start).as_secs_f64();
    if let Some(crawl) = crawl {
        report.stats = crawl.crawler.stats();
        report.lookups_done = crawl.lookups_done;
        report.lookups_with_peers = crawl.lookups_with_peers;
        report.query_rate = crawl.load.queries as f64 / report.seconds.max(1.0);
        report.busiest_per_second = crawl.load.max_per_second;
        report.busiest_average = crawl.load.max_total() as f64 / report.seconds.max(1.0);
        report.hosts_queried = crawl.load.hosts();
    }
    report.wall = wall.elapsed();
    Ok(report)
}

fn checkpoint(
    sim: &crate::sim::Sim,
    announced: &[(Instant, Id, u32)],
    start: Instant,
) -> Checkpoint {
    let discovered = sim.crawler().map_or(0, |c| {
        announced
            .iter()
            .filter(|(_, ih, _)| c.discovered.contains_key(ih))
            .count()
    });
    Checkpoint {
        at: sim.now.saturating_duration_since(start),
        announced: announced.len(),
        discovered,
    }
}

impl fmt::Display for CoverageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let found = (self.by_passive + self.by_sample).max(1) as f64;
        let per = |q: u64| q as f64 / found;
        let other = s
            .queries_sent
            .saturating_sub(s.sample_queries)
            .saturating_sub(s.lookup_queries)
            .saturating_sub(s.holder_queries);
        writeln!(
            f,
            "coverage: {} honest nodes, crawler with {} ids, {} info-hashes announced, {:.0} virtual min",
            self.nodes,
            self.ids,
            self.announced,
            self.seconds / 60.0
        )?;
        writeln!(f, "{:<48} {:>14}", "measure", "value")?;
        for c in &self.checkpoints {
            writeln!(
                f,
                "{:<48} {:>13.2}%",
                format!(
                    "discovered at {} min ({} of {} announced)",
                    c.at.as_secs() / 60,
                    c.discovered,
                    c.announced
                ),
                c.share() * 100.0
            )?;
        }
        writeln!(
            f,
            "{:<48} {:>13.2}%",
            "discovered within 10 min of the announce",
            self.within_10_min_of_announce as f64 / self.announced.max(1) as f64 * 100.0
        )?;
        writeln!(
            f,
            "{:<48} {:>12.1} s",
            "median delay announce → discovery",
            self.median_delay.as_secs_f64()
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "discovered passively (get_peers, announce_peer)", self.by_passive
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "discovered by BEP 51 samples", self.by_sample
        )?;
        writeln!(
            f,
            "{:<48} {:>14.1}",
            "queries per discovered info-hash, all",
            per(s.queries_sent)
        )?;
        writeln!(
            f,
            "{:<48} {:>14.1}",
            "  of which BEP 51 sample_infohashes",
            per(s.sample_queries)
        )?;
        writeln!(
            f,
            "{:<48} {:>14.1}",
            "  of which get_peers lookups (+ scrape)",
            per(s.lookup_queries)
        )?;
        writeln!(
            f,
            "{:<48} {:>14.1}",
            "  of which get_peers to holders",
            per(s.holder_queries)
        )?;
        writeln!(
            f,
            "{:<48} {:>14.1}",
            "  of which other (bootstrap, table upkeep)",
            per(other)
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "sample answers / failures",
            format!("{} / {}", s.sample_answers, s.sample_failures)
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "peers searched (lookups + holders) / found",
            format!("{} / {}", self.lookups_done, self.lookups_with_peers)
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "holders asked: peers / none (then a lookup)",
            format!("{} / {}", s.holder_hits, s.holder_misses)
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "nodes known to the traversal", s.known_nodes
        )?;
        writeln!(
            f,
            "{:<48} {:>14.1}",
            "crawler queries per second (average)", self.query_rate
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "honest nodes queried", self.hosts_queried
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "busiest honest node: most queries in 1 s", self.busiest_per_second
        )?;
        writeln!(
            f,
            "{:<48} {:>14.3}",
            "busiest honest node: queries/s over the run", self.busiest_average
        )?;
        writeln!(
            f,
            "{:<48} {:>14}",
            "default per-source admission (queries/s)", self.admission_per_second
        )?;
        write!(f, "{:<48} {:>12.1} s", "wall time", self.wall.as_secs_f64())
    }
}
