//! `dht db`: read a crawler database (SQLite file or PostgreSQL): totals, and name search.

use std::io::{self, Write as _};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use dht_std::store::{DbUrl, Stats, Store, StoreError, TorrentRow};
use serde::Serialize;

use crate::{Fail, Global};

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
pub fn run(g: &Global, command: DbCommand) -> Result<ExitCode, Fail> {
    match command {
        DbCommand::Stats { db } => stats(g, &db),
        DbCommand::Search { text, db, limit } => search(g, &db, &text, limit),
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

/// `--json` output of `dht db stats`.
#[derive(Debug, Serialize)]
struct StatsLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
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

fn stats(g: &Global, db: &DbArg) -> Result<ExitCode, Fail> {
    let (url, mut store) = db.open()?;
    let schema_version = store.schema_version().map_err(failed)?;
    let s: Stats = store.stats(now()).map_err(failed)?;
    let mut out = io::stdout().lock();
    if g.json {
        let line = StatsLine {
            kind: "db_stats",
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
        };
        writeln!(out, "{}", to_json(&line)?)?;
    } else {
        let sources: Vec<String> = s.sources.iter().map(|(n, c)| format!("{n} {c}")).collect();
        writeln!(out, "database     {url} (schema {schema_version})")?;
        writeln!(
            out,
            "info-hashes  {} (found {} in the last hour, {} in the last day)",
            s.torrents, s.found_last_hour, s.found_last_day
        )?;
        writeln!(
            out,
            "metadata     {} (fetched {} in the last hour, {} in the last day)",
            s.with_metadata, s.fetched_last_hour, s.fetched_last_day
        )?;
        writeln!(out, "files        {}", s.files)?;
        writeln!(
            out,
            "queue        {} awaiting metadata, {} being fetched",
            s.queued, s.leased
        )?;
        let sources = if sources.is_empty() {
            "-".to_owned()
        } else {
            sources.join(", ")
        };
        writeln!(out, "sources      {sources}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--json` output of `dht db search`: one per torrent.
#[derive(Debug, Serialize)]
struct TorrentLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
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

impl<'a> TorrentLine<'a> {
    fn new(t: &'a TorrentRow) -> Self {
        Self {
            kind: "torrent",
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

fn search(g: &Global, db: &DbArg, text: &str, limit: u32) -> Result<ExitCode, Fail> {
    let (_, mut store) = db.open()?;
    let hits = store
        .search(text, usize::try_from(limit).unwrap_or(usize::MAX))
        .map_err(failed)?;
    let mut out = io::stdout().lock();
    for t in &hits {
        if g.json {
            writeln!(out, "{}", to_json(&TorrentLine::new(t))?)?;
        } else {
            writeln!(
                out,
                "{}  {:>9}  seen {:>5}  {}",
                t.info_hash,
                t.total_size.map_or_else(|| "-".to_owned(), human_size),
                t.times_seen,
                t.name.as_deref().unwrap_or("")
            )?;
        }
    }
    out.flush()?;
    if hits.is_empty() {
        return Err(Fail::failed(format_args!(
            "no torrent name matches {text:?}"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(value: &impl Serialize) -> Result<String, Fail> {
    serde_json::to_string(value).map_err(|e| Fail::failed(format_args!("JSON error: {e}")))
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
