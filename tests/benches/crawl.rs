//! The crawler's throughput on loopback: torrents stored per second with their metadata, from a
//! swarm of generated torrents served by local seeders and announced on a local DHT of our own
//! nodes. Prints one table; nothing is asserted about time.
//!
//! Rows, all measured in the same run on the same torrents:
//! - *baseline: fetch only*: the metadata [`Fetcher`] alone, each torrent's seeder given, at the
//!   crawler's fetch concurrency (the raw fetch rate, no DHT, no database);
//! - *fetch + SQLite*: the same, each result written through a [`Batcher`] into SQLite (the
//!   crawler's storage path without the DHT);
//! - *crawl*: the whole pipeline of `dht crawl` ([`Crawl`]) against a swarm whose nodes have
//!   announced every torrent: a fresh crawler joins, its BEP 51 traversal finds the
//!   info-hashes, the nodes that sampled them give their peers (or a `get_peers` lookup does),
//!   the metadata is fetched and stored. Timed from the crawler's start (joining included) to
//!   the last torrent committed with metadata; once with SQLite, and with PostgreSQL when
//!   `DHT_TEST_POSTGRES_URL` is set (`.ci/postgres.sh`).
//! - *crawl live* (with `CRAWL_BENCH_LIVE=1`, before the others): the torrents are announced
//!   only once the crawler has joined, timed from the first announce: how fast it takes in new
//!   announces, which the nodes' BEP 51 `interval` (our nodes ask for 5 minutes) and the
//!   lookups' 30 s wait bound rather than the crawler's capacity.
//!
//! Run with `nice -n 10 cargo bench -p dht-tests --bench crawl`. Sizes from the environment:
//! `CRAWL_BENCH_TORRENTS` (1000), `CRAWL_BENCH_NODES` (swarm nodes, each on its own loopback
//! address, 250), `CRAWL_BENCH_IDS` (crawler ids, 16), `CRAWL_BENCH_RATE` (crawler queries per
//! second, the default 500), `CRAWL_BENCH_LIVE` (1: add the live row).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dht_proto::{Config, Id};
use dht_std::crawl::{Crawl, CrawlOptions, Status, torrent_record};
use dht_std::metadata::{FetchOptions, Fetcher, FetcherEvent};
use dht_std::store::{Batcher, BatcherConfig, Limits, PostgresStore, SqliteStore, Store};
use dht_std::{Dht, DhtHandle};
use dht_tests::seeder::{Seeder, SeederConfig};
use dht_tests::torrents::Torrent;

/// The generated torrents' seed.
const SEED: u64 = 2026;
/// The crawler's default fetch concurrency (`dht crawl --fetch-concurrency`).
const FETCH_CONCURRENCY: usize = 64;
/// A crawl row gives up after this long (its row then says how many were stored).
const CRAWL_LIMIT: Duration = Duration::from_secs(300);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// CPU seconds used by this process so far (Linux `/proc`; zero elsewhere).
fn cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (n(11) + n(12)) / 100.0
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("dht-crawl-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway PostgreSQL database beside the one `DHT_TEST_POSTGRES_URL` names.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    fn new() -> Option<Self> {
        let admin = std::env::var("DHT_TEST_POSTGRES_URL").ok()?;
        let name = format!("dht_crawl_bench_{}", std::process::id());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).ok()?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .ok()?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .ok()?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Our own nodes, node `i` on 127.0.`16 + i / 250`.`1 + i % 250` (the crawler sends at most one
/// query per remote IP per second, so each node needs its own address), each beside a seeder
/// of the torrents it announces.
struct Swarm {
    nodes: Vec<DhtHandle>,
    seeders: Vec<Seeder>,
    /// Torrent index -> node index.
    owner: Vec<usize>,
}

impl Swarm {
    fn start(n: usize, torrents: &[Torrent]) -> Self {
        let ip = |i: usize| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                16 + u8::try_from(i / 250).unwrap(),
                1 + u8::try_from(i % 250).unwrap(),
                1,
            ))
        };
        let mut nodes: Vec<DhtHandle> = Vec::with_capacity(n);
        for i in 0..n {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[8..16].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
            let dht = Dht::bind(SocketAddr::new(ip(i), 0), Config::new(seed)).unwrap();
            let node = DhtHandle::spawn(dht).unwrap();
            if let Some(first) = nodes.first() {
                let _ = node.bootstrap(&[first.local_addr()]);
            }
            nodes.push(node);
        }
        let all: Vec<SocketAddr> = nodes.iter().map(DhtHandle::local_addr).collect();
        for node in &nodes {
            let _ = node.bootstrap(&all);
        }
        let owner: Vec<usize> = (0..torrents.len()).map(|i| i % n).collect();
        let config = SeederConfig {
            lifetime: Duration::from_secs(3600),
            ..SeederConfig::default()
        };
        let seeders = (0..n)
            .map(|node| {
                let mine: Vec<Torrent> = torrents
                    .iter()
                    .zip(&owner)
                    .filter(|(_, o)| **o == node)
                    .map(|(t, _)| t.clone())
                    .collect();
                Seeder::spawn(SocketAddr::new(ip(node), 0), &mine, config).unwrap()
            })
            .collect();
        Self {
            nodes,
            seeders,
            owner,
        }
    }

    /// Each node announces its torrents (one thread per node); returns when all have been.
    fn announce(&self, torrents: &[Torrent], only: impl Fn(&Torrent) -> bool + Sync) {
        std::thread::scope(|scope| {
            for (node, handle) in self.nodes.iter().enumerate() {
                let port = self.seeders[node].addr().port();
                let only = &only;
                let owner = &self.owner;
                scope.spawn(move || {
                    for (t, _) in torrents.iter().zip(owner).filter(|(_, o)| **o == node) {
                        if only(t) {
                            let _ = handle.announce(t.info_hash, Some(port));
                        }
                    }
                });
            }
        });
    }
}

struct Row {
    what: String,
    stored: usize,
    total: usize,
    secs: f64,
    /// Stored per second between 10 % and 90 % of the torrents (the steady state).
    steady: Option<f64>,
    cpu: f64,
    note: String,
}

impl Row {
    fn print(&self, baseline: f64) {
        let rate = self.stored as f64 / self.secs;
        println!(
            "| {:<30} | {:>5}/{:<5} | {:>7.1} | {:>9.1} | {:>9} | {:>8.0} | {:>8.2} | {}",
            self.what,
            self.stored,
            self.total,
            self.secs,
            rate,
            self.steady.map_or("-".into(), |s| format!("{s:.1}")),
            self.cpu / self.stored.max(1) as f64 * 1e6,
            rate / baseline,
            self.note
        );
    }
}

/// Fetches every torrent from its seeder, `FETCH_CONCURRENCY` at once; with a store, writes
/// each through a batcher and counts what is committed.
fn fetch_all<S: Store>(what: &str, swarm: &Swarm, torrents: &[Torrent], store: Option<S>) -> Row {
    let mut options = FetchOptions::default();
    options.max_connections = FETCH_CONCURRENCY * 4;
    let mut fetcher = Fetcher::new(options).unwrap();
    let mut batcher = store.map(|s| Batcher::new(s, BatcherConfig::default()));
    let (cpu0, start) = (cpu(), Instant::now());
    let (mut started, mut ok, mut failed) = (0, 0, 0);
    let mut marks = (None, None);
    while ok + failed < torrents.len() {
        while started < torrents.len() && fetcher.fetches() < FETCH_CONCURRENCY {
            let t = &torrents[started];
            let seeder = swarm.seeders[swarm.owner[started]].addr();
            fetcher.start(t.info_hash, [seeder]);
            started += 1;
        }
        fetcher.step(Some(Duration::from_millis(100))).unwrap();
        while let Some(e) = fetcher.poll_event() {
            if let FetcherEvent::Finished {
                info_hash, result, ..
            } = e
            {
                match result {
                    Ok(m) => {
                        ok += 1;
                        if let Some(b) = batcher.as_mut() {
                            let record = torrent_record(info_hash, m.info, unix_now());
                            b.torrent(record, Instant::now()).unwrap();
                        }
                    }
                    Err(_) => failed += 1,
                }
                if ok * 10 >= torrents.len() && marks.0.is_none() {
                    marks.0 = Some((Instant::now(), ok));
                }
                if ok * 10 >= torrents.len() * 9 && marks.1.is_none() {
                    marks.1 = Some((Instant::now(), ok));
                }
            }
        }
        if let Some(b) = batcher.as_mut() {
            b.poll(Instant::now()).unwrap();
        }
    }
    if let Some(b) = batcher {
        let mut store = b.finish().unwrap();
        assert_eq!(
            store.stats(unix_now()).unwrap().with_metadata,
            ok as u64,
            "every fetched torrent is stored"
        );
    }
    let secs = start.elapsed().as_secs_f64();
    Row {
        what: what.into(),
        stored: ok,
        total: torrents.len(),
        secs,
        steady: steady(marks),
        cpu: cpu() - cpu0,
        note: if failed > 0 {
            format!("{failed} failed")
        } else {
            String::new()
        },
    }
}

/// When 10 % and 90 % of the torrents were stored, and how many were then.
type Marks = (Option<(Instant, usize)>, Option<(Instant, usize)>);

fn steady(marks: Marks) -> Option<f64> {
    let ((t0, n0), (t1, n1)) = (marks.0?, marks.1?);
    let secs = t1.duration_since(t0).as_secs_f64();
    (secs > 0.0).then(|| (n1 - n0) as f64 / secs)
}

/// The whole crawler against the swarm, writing to the store `open` opens (twice: one for the
/// crawler, one to watch the commits).
fn crawl<S: Store + Send + 'static>(
    what: &str,
    swarm: &Swarm,
    torrents: &[Torrent],
    state: &Path,
    live: bool,
    source: u8,
    open: impl Fn() -> S,
) -> Row {
    let ids = env("CRAWL_BENCH_IDS", 16);
    let rate = env("CRAWL_BENCH_RATE", 500);
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&std::process::id().to_le_bytes());
    seed[4] = what.len() as u8;
    let mut options = CrawlOptions::new(seed);
    options.ids = Some(ids);
    // Each row's crawler has an address of its own: our nodes remember a source's traffic
    // for 10 s (the reflection limit toward addresses that never completed a round trip with
    // them), so a crawler on the address of the row before would start with that row's
    // account, which a fresh crawler does not have.
    options.bind = SocketAddr::from(([127, 0, 0, source], 0));
    options.bootstrap = swarm.nodes.iter().map(DhtHandle::local_addr).collect();
    options.rate = u32::try_from(rate).unwrap_or(500);
    options.fetch_concurrency = FETCH_CONCURRENCY;
    options.state = Some(state.to_path_buf());
    options.status_interval = Duration::from_millis(500);
    // A lookup that ran before the announce reached the swarm finds no peer: try again soon.
    options.retry_after = Duration::from_secs(3);
    let (cpu_start, started) = (cpu(), Instant::now());
    let crawl = Crawl::start(open(), options).unwrap();
    let stopper = crawl.stopper();
    let (tx, statuses) = mpsc::channel::<Status>();
    let runner = std::thread::spawn(move || {
        let trace = env("CRAWL_BENCH_TRACE", 0) == 1;
        crawl.run(|s| {
            if trace {
                eprintln!(
                    "{:>6.1} s: found {:>5}, fetched {:>5} (failed {}), queries {:>6}, queue {:?}, \
                     fetching {}, lookups {} + {} waiting, holders {} (hits {}), contacts {}",
                    s.uptime.as_secs_f64(),
                    s.found.total(),
                    s.fetched,
                    s.fetch_failed,
                    s.queries_sent,
                    s.queue,
                    s.fetching,
                    s.lookups_running,
                    s.lookups_queued,
                    s.holders_waiting,
                    s.peers_from_holders,
                    s.contacts
                );
            }
            let _ = tx.send(s.clone());
        })
    });
    // Live: wait until the crawler's ids have joined (a few contacts each), then announce.
    // Otherwise the swarm already holds every torrent and the clock runs from the start.
    if live {
        let joined = Instant::now();
        while let Ok(s) = statuses.recv_timeout(Duration::from_secs(30)) {
            if s.contacts >= ids * 4 || joined.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
    }
    let mut watch = open();
    let (cpu0, start) = if live {
        (cpu(), Instant::now())
    } else {
        (cpu_start, started)
    };
    let want: HashMap<Id, &Torrent> = torrents.iter().map(|t| (t.info_hash, t)).collect();
    let announcer = {
        let torrents = torrents.to_vec();
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                if live {
                    swarm.announce(&torrents, |_| true);
                }
            });
            // Sample the commits while the first round of announces runs and after it.
            let mut marks = (None, None);
            let mut first: Option<f64> = None;
            let mut stored = 0usize;
            let mut last_round = Instant::now();
            while start.elapsed() < CRAWL_LIMIT {
                std::thread::sleep(Duration::from_millis(100));
                stored = usize::try_from(watch.stats(unix_now()).unwrap().with_metadata)
                    .unwrap_or(usize::MAX);
                if stored > 0 && first.is_none() {
                    first = Some(start.elapsed().as_secs_f64());
                }
                if stored * 10 >= torrents.len() && marks.0.is_none() {
                    marks.0 = Some((Instant::now(), stored));
                }
                if stored * 10 >= torrents.len() * 9 && marks.1.is_none() {
                    marks.1 = Some((Instant::now(), stored));
                }
                if stored >= torrents.len() {
                    break;
                }
                // What the crawler's ids did not hear of is announced again every 20 s, as
                // peers re-announce on the real DHT.
                if handle.is_finished() && last_round.elapsed() > Duration::from_secs(20) {
                    last_round = Instant::now();
                    let mut missing = Vec::new();
                    for t in &torrents {
                        let row = watch.get(t.info_hash).unwrap();
                        if row.is_none_or(|r| r.fetched_at.is_none()) {
                            missing.push(t.info_hash);
                        }
                    }
                    swarm.announce(&torrents, |t| missing.contains(&t.info_hash));
                }
            }
            (stored, marks, first, start.elapsed().as_secs_f64())
        })
    };
    let (stored, marks, first, secs) = announcer;
    let at = |m: Option<(Instant, usize)>| {
        m.map_or("-".to_string(), |(t, _)| {
            format!("{:.1}", t.duration_since(start).as_secs_f64())
        })
    };
    let timeline = format!(
        "first at {} s, 10 % at {} s, 90 % at {} s",
        first.map_or("-".to_string(), |f| format!("{f:.1}")),
        at(marks.0),
        at(marks.1)
    );
    let cpu_used = cpu() - cpu0;
    stopper.stop();
    let last = runner.join().unwrap().unwrap();
    // Everything stored is right.
    let mut checked = 0;
    for (ih, t) in &want {
        if let Some(row) = watch.get(*ih).unwrap().filter(|r| r.fetched_at.is_some()) {
            assert_eq!(row.name.as_deref(), Some(t.name.as_str()));
            assert_eq!(row.total_size, Some(t.total_size));
            checked += 1;
        }
    }
    assert_eq!(checked, stored.min(want.len()));
    let queries = last.queries_sent as f64 / stored.max(1) as f64;
    eprintln!("{what}: last status {last:?}");
    Row {
        what: what.into(),
        stored,
        total: torrents.len(),
        secs,
        steady: steady(marks),
        cpu: cpu_used,
        note: format!(
            "{timeline}; {queries:.1} queries/torrent, {:.0} queries/s, found: {} get_peers, {} \
             announce_peer, {} samples",
            last.queries_sent as f64 / secs,
            last.found.get_peers,
            last.found.announce_peer,
            last.found.sample
        ),
    }
}

fn main() {
    let n = env("CRAWL_BENCH_TORRENTS", 1000);
    let nodes = env("CRAWL_BENCH_NODES", 250);
    let torrents = Torrent::set(SEED, n);
    let dir = TempDir::new();
    let t = Instant::now();
    let swarm = Swarm::start(nodes, &torrents);
    let join_secs = t.elapsed().as_secs_f64();
    let mean_info = torrents.iter().map(|t| t.info.len()).sum::<usize>() as f64 / n.max(1) as f64;
    println!(
        "Crawler throughput on loopback: {n} generated torrents (info dictionaries of {mean_info:.0} \
         bytes on average), {nodes} DHT nodes of ours on their own loopback addresses (joined in \
         {join_secs:.1} s), each with a seeder of its torrents; fetch concurrency \
         {FETCH_CONCURRENCY}. Target: 100 torrents stored per second."
    );
    println!();
    println!(
        "| {:<30} | {:>11} | {:>7} | {:>9} | {:>9} | {:>8} | {:>8} | notes",
        "what", "stored", "secs", "stored/s", "10-90 %/s", "CPU µs/t", "vs fetch"
    );
    println!(
        "|{:-<32}|{:-<13}|{:-<9}|{:-<11}|{:-<11}|{:-<10}|{:-<10}|------",
        "", "", "", "", "", "", ""
    );
    let base = fetch_all::<SqliteStore>("baseline: fetch only", &swarm, &torrents, None);
    let base_rate = base.stored as f64 / base.secs;
    base.print(base_rate);
    let path = dir.0.join("fetch.sqlite");
    let store = SqliteStore::open(&path, Limits::default()).unwrap();
    fetch_all("fetch + SQLite", &swarm, &torrents, Some(store)).print(base_rate);

    if env("CRAWL_BENCH_LIVE", 0) == 1 {
        // The torrents are announced once the crawler has joined: how fast it reacts to new
        // announces (bound by the nodes' BEP 51 intervals and the lookups' 30 s wait).
        let path = dir.0.join("live.sqlite");
        let open = || SqliteStore::open(&path, Limits::default()).unwrap();
        crawl(
            "crawl live (SQLite)",
            &swarm,
            &torrents,
            &dir.0.join("live.state"),
            true,
            3,
            open,
        )
        .print(base_rate);
    } else {
        let t = Instant::now();
        swarm.announce(&torrents, |_| true);
        eprintln!(
            "announced {n} torrents in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    // The swarm holds every torrent; a fresh crawler starts (joining included in the time).
    let path = dir.0.join("crawl.sqlite");
    let open = || SqliteStore::open(&path, Limits::default()).unwrap();
    crawl(
        "crawl (SQLite)",
        &swarm,
        &torrents,
        &dir.0.join("a.state"),
        false,
        1,
        open,
    )
    .print(base_rate);
    match PgDb::new() {
        Some(db) => {
            let url = db.url.clone();
            let open = move || PostgresStore::connect(&url, Limits::default()).unwrap();
            crawl(
                "crawl (PostgreSQL)",
                &swarm,
                &torrents,
                &dir.0.join("b.state"),
                false,
                2,
                open,
            )
            .print(base_rate);
        }
        None => println!(
            "| {:<30} | skipped: DHT_TEST_POSTGRES_URL is not set (run under .ci/postgres.sh)",
            "crawl (PostgreSQL)"
        ),
    }
    println!();
    println!(
        "CPU µs/t: CPU time of the whole process (swarm, seeders and crawler alike) per torrent \
         stored. vs fetch: the row's rate over the fetch-only baseline's."
    );
}
