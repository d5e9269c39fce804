//! `dht db`: read a crawler database (SQLite file or PostgreSQL): totals, and name search.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use dht_std::store::{DbUrl, Stats, Store, StoreError, TorrentRow};
use serde::Serialize;

use crate::Fail;
use crate::output::{Out, Record};

/// The database of `dht crawl` and `dht db` unless `--db` says otherwise.
pub const DEFAULT_DB: &str = "sqlite:dht-crawl.sqlite";

/// The `dht db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Totals: info-hashes, metadata, files, the fetch queue, the last hour and day, the top
    /// sources
    Stats {
        #[command(flatten)]
        db: DbArg,
    },
    /// Search torrent names: every word as a prefix, or a substring when no word matches
    /// (exit 1 if nothing matches)
    Search {
        /// The words to look for
        #[arg(value_name = "TEXT")]
        text: String,
        #[command(flatten)]
        db: DbArg,
        /// Most results to print, most seen first
        #[arg(long, value_name = "N", default_value_t = 20,
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
}

/// Which database to read.
#[derive(Debug, Args)]
pub struct DbArg {
    /// The database: sqlite:PATH (or a path) or postgres://USER:PASSWORD@HOST:PORT/NAME
    #[arg(long, value_name = "URL", default_value = DEFAULT_DB)]
    db: String,
}

impl DbArg {
    fn open(&self) -> Result<(DbUrl, Box<dyn Store>), Fail> {
        let url = DbUrl::parse(&self.db);
        match url.open(false) {
            Ok(store) => Ok((url, store)),
            Err(e @ StoreError::NotFound(_)) => Err(Fail::input(e)),
            Err(e) => Err(Fail::failed(format_args!("{url}: {e}"))),
        }
    }
}

/// Runs a `dht db` subcommand.
pub fn run(json: bool, command: DbCommand) -> Result<ExitCode, Fail> {
    let mut out = Out::new(json, false);
    match command {
        DbCommand::Stats { db } => stats(&mut out, &db),
        DbCommand::Search { text, db, limit } => search(&mut out, &db, &text, limit),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn failed(e: StoreError) -> Fail {
    Fail::failed(e)
}

/// `dht db stats`: one record.
#[derive(Debug, Serialize)]
struct StatsRecord<'a> {
    database: String,
    backend: &'static str,
    schema_version: u32,
    torrents: u64,
    with_metadata: u64,
    files: u64,
    queued: u64,
    leased: u64,
    found_last_hour: u64,
    found_last_day: u64,
    fetched_last_hour: u64,
    fetched_last_day: u64,
    sources: Vec<SourceCount<'a>>,
}

#[derive(Debug, Serialize)]
struct SourceCount<'a> {
    source: &'a str,
    count: u64,
}

impl Record for StatsRecord<'_> {
    const TYPE: &'static str = "db_stats";

    fn text(&self) -> Option<String> {
        let sources: Vec<String> = self
            .sources
            .iter()
            .map(|s| format!("{} {}", s.source, s.count))
            .collect();
        let sources = if sources.is_empty() {
            "-".to_owned()
        } else {
            sources.join(", ")
        };
        Some(format!(
            "database     {} (schema {})\n\
             info-hashes  {} (found {} in the last hour, {} in the last day)\n\
             metadata     {} (fetched {} in the last hour, {} in the last day)\n\
             files        {}\n\
             queue        {} awaiting metadata, {} being fetched\n\
             sources      {sources}",
            self.database,
            self.schema_version,
            self.torrents,
            self.found_last_hour,
            self.found_last_day,
            self.with_metadata,
            self.fetched_last_hour,
            self.fetched_last_day,
            self.files,
            self.queued,
            self.leased,
        ))
    }
}

fn stats(out: &mut Out, db: &DbArg) -> Result<ExitCode, Fail> {
    let (url, mut store) = db.open()?;
    let schema_version = store.schema_version().map_err(failed)?;
    let s: Stats = store.stats(now()).map_err(failed)?;
    out.emit(&StatsRecord {
        database: url.to_string(),
        backend: store.backend(),
        schema_version,
        torrents: s.torrents,
        with_metadata: s.with_metadata,
        files: s.files,
        queued: s.queued,
        leased: s.leased,
        found_last_hour: s.found_last_hour,
        found_last_day: s.found_last_day,
        fetched_last_hour: s.fetched_last_hour,
        fetched_last_day: s.fetched_last_day,
        sources: s
            .sources
            .iter()
            .map(|(source, count)| SourceCount {
                source,
                count: *count,
            })
            .collect(),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `dht db search`: one record per torrent.
#[derive(Debug, Serialize)]
struct TorrentRecord<'a> {
    info_hash: String,
    name: Option<&'a str>,
    total_size: Option<u64>,
    file_count: Option<u64>,
    times_seen: u64,
    first_seen: i64,
    last_seen: i64,
    source: &'a str,
    peers: Option<u32>,
    seeders: Option<u32>,
    leechers: Option<u32>,
    fetched_at: Option<i64>,
}

impl Record for TorrentRecord<'_> {
    const TYPE: &'static str = "torrent";

    fn text(&self) -> Option<String> {
        Some(format!(
            "{}  {:>9}  seen {:>5}  {}",
            self.info_hash,
            self.total_size.map_or_else(|| "-".to_owned(), human_size),
            self.times_seen,
            self.name.unwrap_or("")
        ))
    }
}

impl<'a> TorrentRecord<'a> {
    fn new(t: &'a TorrentRow) -> Self {
        Self {
            info_hash: t.info_hash.to_string(),
            name: t.name.as_deref(),
            total_size: t.total_size,
            file_count: t.file_count,
            times_seen: t.times_seen,
            first_seen: t.first_seen,
            last_seen: t.last_seen,
            source: &t.source,
            peers: t.peers,
            seeders: t.seeders,
            leechers: t.leechers,
            fetched_at: t.fetched_at,
        }
    }
}

fn search(out: &mut Out, db: &DbArg, text: &str, limit: u32) -> Result<ExitCode, Fail> {
    let (_, mut store) = db.open()?;
    let hits = store
        .search(text, usize::try_from(limit).unwrap_or(usize::MAX))
        .map_err(failed)?;
    for t in &hits {
        out.emit(&TorrentRecord::new(t))?;
    }
    if hits.is_empty() {
        return Err(Fail::failed(format_args!(
            "no torrent name matches {text:?}"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// `1536` → `1.5 KiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
        assert_eq!(human_size(u64::MAX), "16384.0 PiB");
    }
}
