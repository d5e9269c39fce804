//! `dht crawl`: run the crawler ([`dht_std::crawl::Crawl`]) into a database until a signal or
//! `--duration`, with a live status line on a terminal and one status object per interval with
//! `--json`.

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{self, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use dht_std::crawl::{BySource, Crawl, CrawlError, CrawlOptions, MAX_IDS, Status, Stopper};
use dht_std::store::{DbUrl, Shard, StoreError};
use serde::Serialize;

use crate::db::DEFAULT_DB;
use crate::output::{Out, Record, plural};
use crate::session::contacts;
use crate::{Fail, Join, parse_secs};

/// Arguments of `dht crawl`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database: sqlite:PATH (or a path) or postgres://USER:PASSWORD@HOST:PORT/NAME
    #[arg(long, value_name = "URL", default_value = DEFAULT_DB)]
    db: String,
    /// Node ids to run, one UDP socket each, spread over the key space (or the --shard) [default:
    /// as many as the state file holds, or 8]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=MAX_IDS as i64))]
    ids: Option<u16>,
    /// The crawler's own queries per second, all ids together (at most one per remote IP per
    /// second whatever the rate)
    #[arg(long, value_name = "Q/S", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Metadata fetches at once (each tries up to 4 peers at a time)
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    fetch_concurrency: u16,
    /// get_peers lookups at once (the peers of info-hashes found in BEP 51 samples are first
    /// asked of the nodes that sampled them, with one query each, without a lookup)
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    lookups: u16,
    /// Seconds before a failed fetch (no peer gave the metadata) is tried again, with a new
    /// lookup; after five failures the info-hash leaves the queue
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "600")]
    retry_after: Duration,
    /// Stop after SECS seconds [default: run until SIGINT or SIGTERM]
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Take slice I of N of the key space: the ids sit in it and only its info-hashes are
    /// fetched (crawlers sharing a PostgreSQL database each take one)
    #[arg(long, value_name = "I/N", default_value = "0/1")]
    shard: Shard,
    /// The first socket's address; the others take the next ports (port 0: each an ephemeral
    /// port)
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:0")]
    bind: SocketAddr,
    /// Keep the ids and contacts in FILE (FILE.lock keeps a second crawler off it) [default:
    /// PATH.state beside an SQLite database; dht-crawl.state, or dht-crawl-I-of-N.state with
    /// --shard, for PostgreSQL]
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Seconds between status lines (stderr when not a terminal; stdout objects with --json)
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "5")]
    status_interval: Duration,
    #[command(flatten)]
    join: Join,
}

/// The first record: where the crawler listens and writes.
#[derive(Debug, Serialize)]
struct Started {
    database: String,
    backend: &'static str,
    state: Option<String>,
    shard: String,
    ids: Vec<String>,
    listening: Vec<String>,
    /// Fetches a killed earlier run left unfinished, taken up again.
    resumed: u64,
}

impl Record for Started {
    const TYPE: &'static str = "crawl";
    fn text(&self) -> Option<String> {
        let mut line = format!(
            "crawling with {} on {} into {}",
            plural(self.ids.len() as u64, "id", "ids"),
            self.listening.first().map_or("-", String::as_str),
            self.database
        );
        if self.listening.len() > 1 {
            line.push_str(&format!(" (and {} more ports)", self.listening.len() - 1));
        }
        if self.shard != "0/1" {
            line.push_str(&format!(", shard {}", self.shard));
        }
        if self.resumed > 0 {
            line.push_str(&format!(", resuming {} fetches", self.resumed));
        }
        Some(line)
    }
}

/// Info-hashes by source, in JSON.
#[derive(Debug, Serialize)]
struct Sources {
    get_peers: u64,
    announce_peer: u64,
    sample_infohashes: u64,
}

impl From<BySource> for Sources {
    fn from(s: BySource) -> Self {
        Self {
            get_peers: s.get_peers,
            announce_peer: s.announce_peer,
            sample_infohashes: s.sample,
        }
    }
}

/// A status object (`crawl_status` every interval, `crawl_done` at the end).
#[derive(Debug, Serialize)]
struct StatusRecord {
    uptime_s: u64,
    ids: usize,
    contacts: usize,
    queries_sent: u64,
    queries_per_s: f64,
    throttled: u64,
    found: u64,
    found_by_source: Sources,
    found_last_minute: u64,
    found_last_minute_by_source: Sources,
    lookups_running: usize,
    lookups_queued: usize,
    holders_waiting: usize,
    peers_from_holders: u64,
    fetched: u64,
    fetched_last_minute: u64,
    fetch_failed: u64,
    fetching: usize,
    queue: Option<u64>,
    commits: u64,
    pending_writes: usize,
    dropped_writes: u64,
    store_errors: u64,
}

impl StatusRecord {
    fn new(s: &Status) -> Self {
        Self {
            uptime_s: s.uptime.as_secs(),
            ids: s.ids,
            contacts: s.contacts,
            queries_sent: s.queries_sent,
            queries_per_s: (s.queries_per_sec * 10.0).round() / 10.0,
            throttled: s.throttled,
            found: s.found.total(),
            found_by_source: s.found.into(),
            found_last_minute: s.found_last_minute.total(),
            found_last_minute_by_source: s.found_last_minute.into(),
            lookups_running: s.lookups_running,
            lookups_queued: s.lookups_queued,
            holders_waiting: s.holders_waiting,
            peers_from_holders: s.peers_from_holders,
            fetched: s.fetched,
            fetched_last_minute: s.fetched_last_minute,
            fetch_failed: s.fetch_failed,
            fetching: s.fetching,
            queue: s.queue,
            commits: s.commits,
            pending_writes: s.pending_writes,
            dropped_writes: s.dropped_writes,
            store_errors: s.store_errors,
        }
    }

    /// The one-line summary (the status line, and the text of both records).
    fn line(&self) -> String {
        let m = &self.found_last_minute_by_source;
        let mut line = format!(
            "found {}/min (get_peers {}, announce {}, samples {}), metadata {}/min, \
             {} fetching, queue {}, {} contacts, {:.0} queries/s",
            self.found_last_minute,
            m.get_peers,
            m.announce_peer,
            m.sample_infohashes,
            self.fetched_last_minute,
            self.fetching,
            self.queue.map_or_else(|| "?".to_owned(), |q| q.to_string()),
            self.contacts,
            self.queries_per_s,
        );
        if self.store_errors > 0 {
            line.push_str(&format!(
                ", {}",
                plural(self.store_errors, "database error", "database errors")
            ));
        }
        line
    }
}

/// Each interval's status.
#[derive(Debug, Serialize)]
struct Periodic(StatusRecord);

impl Record for Periodic {
    const TYPE: &'static str = "crawl_status";
    fn text(&self) -> Option<String> {
        Some(format!("dht crawl: {}", self.0.line()))
    }
}

/// The totals at the end.
#[derive(Debug, Serialize)]
struct Done(StatusRecord);

impl Record for Done {
    const TYPE: &'static str = "crawl_done";
    fn text(&self) -> Option<String> {
        let s = &self.0;
        Some(format!(
            "crawled {} s: {} found (get_peers {}, announce {}, samples {}), {} fetched, {} \
             fetches failed, {} queued",
            s.uptime_s,
            s.found,
            s.found_by_source.get_peers,
            s.found_by_source.announce_peer,
            s.found_by_source.sample_infohashes,
            s.fetched,
            s.fetch_failed,
            s.queue.map_or_else(|| "?".to_owned(), |q| q.to_string()),
        ))
    }
}

/// The state file's default place.
fn default_state(url: &DbUrl, shard: Shard) -> PathBuf {
    match url {
        DbUrl::Sqlite(path) => {
            let mut p = path.as_os_str().to_owned();
            p.push(".state");
            p.into()
        }
        DbUrl::Postgres(_) if shard == Shard::ALL => PathBuf::from("dht-crawl.state"),
        DbUrl::Postgres(_) => PathBuf::from(format!(
            "dht-crawl-{}-of-{}.state",
            shard.index(),
            shard.count()
        )),
    }
}

/// SIGINT and SIGTERM stop the crawl (it then commits and exits); a second one, while the last
/// commit waits for a database that does not answer, exits at once (status 1).
fn install_signals(stopper: Stopper) -> Result<(), Fail> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Fail::failed(format_args!("cannot install signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if signals.next().is_some() {
                stopper.stop();
            }
            if signals.next().is_some() {
                let _ = writeln!(
                    io::stderr(),
                    "dht: second signal: exiting without the last commit"
                );
                std::process::exit(1);
            }
        })?;
    Ok(())
}

/// Runs `dht crawl`.
pub fn run(json: bool, args: Args) -> Result<ExitCode, Fail> {
    let url = DbUrl::parse(&args.db);
    let store = match url.open(true) {
        Ok(store) => store,
        Err(e @ StoreError::Sqlite(_)) => return Err(Fail::input(format_args!("{url}: {e}"))),
        Err(e) => return Err(Fail::failed(format_args!("{url}: {e}"))),
    };
    let backend = store.backend();
    let found = contacts(&args.join, false)?;
    if found.addrs.is_empty() && !args.join.no_bootstrap {
        return Err(Fail::failed(
            "cannot resolve any bootstrap contact (is the network up?); pass --bootstrap \
             HOST:PORT",
        ));
    }
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| default_state(&url, args.shard));
    let mut options = CrawlOptions::new(dht_std::os_seed());
    options.ids = args.ids.map(usize::from);
    options.bind = args.bind;
    options.bootstrap = found.addrs;
    options.allow_local = args.join.allow_local;
    options.rate = args.rate;
    options.fetch_concurrency = usize::from(args.fetch_concurrency);
    options.lookups = usize::from(args.lookups);
    options.retry_after = args.retry_after;
    options.shard = args.shard;
    options.state = Some(state.clone());
    options.duration = args.duration;
    let terminal = !json && io::stderr().is_terminal();
    // The live line is redrawn every second; otherwise a status is only needed when printed.
    options.status_interval = if terminal || args.status_interval.is_zero() {
        Duration::from_secs(1)
    } else {
        args.status_interval
    };
    let crawl = Crawl::start(store, options).map_err(|e| match e {
        CrawlError::State(..) | CrawlError::Bind(_) => Fail::input(e),
        _ => Fail::failed(e),
    })?;
    install_signals(crawl.stopper())?;
    let mut out = Out::new(json, true);
    out.emit(&Started {
        database: url.to_string(),
        backend,
        state: Some(state.display().to_string()),
        shard: args.shard.to_string(),
        ids: crawl.ids().iter().map(ToString::to_string).collect(),
        listening: crawl
            .local_addrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
        resumed: crawl.resumed(),
    })?;
    // Not on a terminal, the crawl reports at --status-interval: each report is printed.
    let print = !args.status_interval.is_zero();
    let mut output_error = None;
    let result = crawl.run(|status| {
        let record = StatusRecord::new(status);
        if terminal {
            out.progress().update(|| record.line());
        } else if print && json {
            if let Err(e) = out.emit(&Periodic(record)) {
                output_error.get_or_insert(e);
            }
        } else if print && let Some(line) = Periodic(record).text() {
            let _ = writeln!(io::stderr(), "{line}");
        }
    });
    out.progress().clear();
    let status = result.map_err(Fail::failed)?;
    if let Some(e) = output_error
        && e.code != 0
    {
        return Err(e);
    }
    out.emit(&Done(StatusRecord::new(&status)))?;
    if status.found.total() == 0 && status.fetched == 0 {
        return Err(Fail::failed("found no info-hash and fetched no metadata"));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_default_beside_the_database() {
        let sqlite = DbUrl::parse("sqlite:/tmp/x.sqlite");
        assert_eq!(
            default_state(&sqlite, Shard::ALL),
            PathBuf::from("/tmp/x.sqlite.state")
        );
        let pg = DbUrl::parse("postgres://h/d");
        assert_eq!(
            default_state(&pg, Shard::ALL),
            PathBuf::from("dht-crawl.state")
        );
        assert_eq!(
            default_state(&pg, Shard::new(1, 3).unwrap()),
            PathBuf::from("dht-crawl-1-of-3.state")
        );
    }
}
