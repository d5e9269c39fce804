//! The crawler's storage: what it learns about info-hashes, behind one [`Store`] trait with two
//! backends, [`SqliteStore`] (embedded, the default) and [`PostgresStore`] (one database shared by
//! several crawler processes on several machines).
//!
//! Both backends keep the same versioned schema (migrations run when a database is opened):
//!
//! - `torrents`: one row per info-hash (unique): how it was first found (`source`), first and
//!   last seen, times seen, the latest peer/seeder/leecher counts, and once its metadata is
//!   fetched the name, total size, file count, raw info dictionary and fetch time.
//! - `files`: the files of each torrent (path and size, in the torrent's order).
//! - `queue`: the info-hashes awaiting a metadata fetch. A crawler *claims* a few with a lease
//!   ([`Store::claim`]); a claim that is neither completed ([`Store::write`] with the metadata)
//!   nor failed ([`Store::fail`]) before its lease ends goes back to the queue, so a crawler that
//!   dies loses nothing. On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so concurrent
//!   crawlers never get the same info-hash, and each may take only its [`Shard`] of the key space.
//!
//! Writes go through a [`Batch`]: sightings of one info-hash merge, and a [`Batcher`] commits the
//! batch in one transaction once it is a second old (or full). A crash therefore loses at most
//! the batch being built, and never leaves a half-written one: every commit is atomic.
//! Re-writing what is already stored changes nothing but the sighting counters (upserts).
//!
//! Times are Unix seconds given by the caller, so tests and several machines agree on them
//! (crawlers sharing a PostgreSQL database need clocks within a few seconds of each other: leases
//! last minutes).

mod batch;
mod postgres;
mod shard;
mod sqlite;

use core::fmt;
use core::time::Duration;
use std::path::PathBuf;

use dht_proto::Id;

pub use self::batch::{Batch, Batcher, BatcherConfig};
pub use self::postgres::PostgresStore;
pub use self::shard::{ParseShardError, Shard};
pub use self::sqlite::SqliteStore;

/// The schema version this build writes; a database at a newer version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// How an info-hash was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// Another node asked us for its peers (`get_peers` query).
    GetPeers,
    /// Another node announced itself as its peer (`announce_peer` query).
    AnnouncePeer,
    /// A BEP 51 `sample_infohashes` answer.
    Sample,
    /// Anything else (given by hand, another tool).
    Other,
}

impl Source {
    /// The name stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::GetPeers => "get_peers",
            Self::AnnouncePeer => "announce_peer",
            Self::Sample => "sample_infohashes",
            Self::Other => "other",
        }
    }
}

impl From<dht_proto::crawl::HowFound> for Source {
    fn from(how: dht_proto::crawl::HowFound) -> Self {
        use dht_proto::crawl::HowFound;
        match how {
            HowFound::GetPeers => Self::GetPeers,
            HowFound::AnnouncePeer => Self::AnnouncePeer,
            HowFound::Sample => Self::Sample,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sighting of an info-hash: where and when, with the swarm's size if it was learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// The info-hash.
    pub info_hash: Id,
    /// How it was found.
    pub source: Source,
    /// When (Unix seconds).
    pub at: i64,
    /// Peers known for it (the `values` of `get_peers` answers), if looked up.
    pub peers: Option<u32>,
    /// Seeders (BEP 33 scrape), if known.
    pub seeders: Option<u32>,
    /// Leechers (BEP 33 scrape), if known.
    pub leechers: Option<u32>,
}

impl Sighting {
    /// A sighting without swarm counts.
    pub const fn new(info_hash: Id, source: Source, at: i64) -> Self {
        Self {
            info_hash,
            source,
            at,
            peers: None,
            seeders: None,
            leechers: None,
        }
    }
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// The path, its components joined by `/`.
    pub path: String,
    /// The length in bytes.
    pub size: u64,
}

/// A torrent's metadata, as fetched from a peer and read from its info dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentRecord {
    /// The info-hash (SHA-1 of `info`).
    pub info_hash: Id,
    /// The torrent's name.
    pub name: String,
    /// The sum of the files' lengths.
    pub total_size: u64,
    /// The files, in the torrent's order (one for a single-file torrent).
    pub files: Vec<FileEntry>,
    /// The raw bencoded info dictionary.
    pub info: Vec<u8>,
    /// When it was fetched (Unix seconds).
    pub fetched_at: i64,
}

/// The caps every backend applies to what it stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most info-hashes waiting in the fetch queue; past it new ones are recorded but not queued.
    pub max_queue: u64,
    /// Most files stored per torrent (the first ones; the full count is kept in `file_count`).
    pub max_files: usize,
    /// Longest info dictionary stored (bytes); a longer one keeps its name, size and files only.
    pub max_info_len: usize,
    /// Longest name or file path stored (bytes; longer ones are cut at a character boundary).
    pub max_text_len: usize,
    /// Fetch attempts before an info-hash leaves the queue (until it is seen again).
    pub max_attempts: u32,
}

impl Default for Limits {
    /// One million queued info-hashes (~100 MB of queue rows), 10,000 files and a 10 MiB info
    /// dictionary per torrent, 4 KiB names and paths, five fetch attempts.
    fn default() -> Self {
        Self {
            max_queue: 1_000_000,
            max_files: 10_000,
            max_info_len: 10 << 20,
            max_text_len: 4096,
            max_attempts: 5,
        }
    }
}

/// Totals for `dht db stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Info-hashes known.
    pub torrents: u64,
    /// Of which with metadata.
    pub with_metadata: u64,
    /// Files stored.
    pub files: u64,
    /// Info-hashes waiting in the fetch queue (leased ones included).
    pub queued: u64,
    /// Of which claimed by a crawler right now (lease not yet over).
    pub leased: u64,
    /// Info-hashes first seen in the last hour.
    pub found_last_hour: u64,
    /// Info-hashes first seen in the last 24 hours.
    pub found_last_day: u64,
    /// Metadata fetched in the last hour.
    pub fetched_last_hour: u64,
    /// Metadata fetched in the last 24 hours.
    pub fetched_last_day: u64,
    /// Info-hashes by how they were first found, most first.
    pub sources: Vec<(String, u64)>,
}

/// One info-hash as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentRow {
    /// The info-hash.
    pub info_hash: Id,
    /// How it was first found (a [`Source`] name).
    pub source: String,
    /// First seen (Unix seconds).
    pub first_seen: i64,
    /// Last seen (Unix seconds).
    pub last_seen: i64,
    /// Sightings recorded.
    pub times_seen: u64,
    /// The latest peer count, if looked up.
    pub peers: Option<u32>,
    /// The latest seeder count, if scraped.
    pub seeders: Option<u32>,
    /// The latest leecher count, if scraped.
    pub leechers: Option<u32>,
    /// The name, once the metadata is fetched.
    pub name: Option<String>,
    /// The total size, once the metadata is fetched.
    pub total_size: Option<u64>,
    /// How many files the torrent has (more than `files` holds past [`Limits::max_files`]).
    pub file_count: Option<u64>,
    /// The raw info dictionary, unless it was over [`Limits::max_info_len`].
    pub info: Option<Vec<u8>>,
    /// When the metadata was first fetched (Unix seconds).
    pub fetched_at: Option<i64>,
    /// The stored files ([`Store::get`] fills them; search results leave them empty).
    pub files: Vec<FileEntry>,
}

/// What a storage backend can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// PostgreSQL failed (connection, query, or the server's own error).
    Postgres(::postgres::Error),
    /// The database was written by a newer version of this program.
    NewerSchema {
        /// The database's schema version.
        found: u32,
    },
    /// The SQLite database file does not exist (read-only commands do not create one).
    NotFound(PathBuf),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "SQLite error: {e}"),
            Self::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "PostgreSQL error: {}", db.message()),
                None => write!(f, "PostgreSQL error: {e}"),
            },
            Self::NewerSchema { found } => write!(
                f,
                "the database has schema version {found}, newer than this program's \
                 {SCHEMA_VERSION}"
            ),
            Self::NotFound(path) => write!(f, "no database at {}", path.display()),
        }
    }
}

impl core::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Sqlite(e) => Some(e),
            Self::Postgres(e) => Some(e),
            Self::NewerSchema { .. } | Self::NotFound(_) => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        Self::Postgres(e)
    }
}

/// A storage backend. Every method is one transaction (or one atomic statement).
pub trait Store: Send + fmt::Debug {
    /// The backend's name: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The schema version of the open database.
    ///
    /// # Errors
    /// When the database cannot be read.
    fn schema_version(&mut self) -> Result<u32, StoreError>;

    /// Commits a batch in one transaction: each sighting upserts its info-hash (and queues it
    /// for a fetch while it has no metadata and the queue is under [`Limits::max_queue`]); each
    /// torrent upserts its metadata, replaces its files and leaves the queue.
    ///
    /// # Errors
    /// When the database fails; nothing of the batch is then stored.
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError>;

    /// Claims up to `max` queued info-hashes of `shard` whose lease is over (or never was) for
    /// `owner`, until `now + lease`. Concurrent claimers never get the same info-hash.
    ///
    /// # Errors
    /// When the database fails.
    fn claim(
        &mut self,
        owner: &str,
        max: usize,
        shard: Shard,
        now: i64,
        lease: Duration,
    ) -> Result<Vec<Id>, StoreError>;

    /// Reports failed fetches: those tried [`Limits::max_attempts`] times leave the queue, the
    /// others may be claimed again from `now + retry_after`.
    ///
    /// # Errors
    /// When the database fails.
    fn fail(&mut self, hashes: &[Id], now: i64, retry_after: Duration) -> Result<(), StoreError>;

    /// Gives claims back untried (a crawler stopping cleanly): claimable at once, the attempt
    /// not counted.
    ///
    /// # Errors
    /// When the database fails.
    fn release(&mut self, hashes: &[Id]) -> Result<(), StoreError>;

    /// Gives back every claim of `owner` untried (a crawler restarting after being killed takes
    /// up its own unfinished fetches at once instead of waiting for their leases to end).
    /// Returns how many there were.
    ///
    /// # Errors
    /// When the database fails.
    fn release_owner(&mut self, owner: &str) -> Result<u64, StoreError>;

    /// Info-hashes waiting in the fetch queue (leased ones included).
    ///
    /// # Errors
    /// When the database fails.
    fn queue_len(&mut self) -> Result<u64, StoreError>;

    /// One info-hash with its files, if known.
    ///
    /// # Errors
    /// When the database fails.
    fn get(&mut self, info_hash: Id) -> Result<Option<TorrentRow>, StoreError>;

    /// Totals, with rates over the hour and day before `now`.
    ///
    /// # Errors
    /// When the database fails.
    fn stats(&mut self, now: i64) -> Result<Stats, StoreError>;

    /// Torrents whose name matches `text` (full-text, every word as a prefix; a substring when
    /// that finds nothing), most seen first, at most `limit`.
    ///
    /// # Errors
    /// When the database fails.
    fn search(&mut self, text: &str, limit: usize) -> Result<Vec<TorrentRow>, StoreError>;
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn schema_version(&mut self) -> Result<u32, StoreError> {
        (**self).schema_version()
    }
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        (**self).write(batch)
    }
    fn claim(
        &mut self,
        owner: &str,
        max: usize,
        shard: Shard,
        now: i64,
        lease: Duration,
    ) -> Result<Vec<Id>, StoreError> {
        (**self).claim(owner, max, shard, now, lease)
    }
    fn fail(&mut self, hashes: &[Id], now: i64, retry_after: Duration) -> Result<(), StoreError> {
        (**self).fail(hashes, now, retry_after)
    }
    fn release(&mut self, hashes: &[Id]) -> Result<(), StoreError> {
        (**self).release(hashes)
    }
    fn release_owner(&mut self, owner: &str) -> Result<u64, StoreError> {
        (**self).release_owner(owner)
    }
    fn queue_len(&mut self) -> Result<u64, StoreError> {
        (**self).queue_len()
    }
    fn get(&mut self, info_hash: Id) -> Result<Option<TorrentRow>, StoreError> {
        (**self).get(info_hash)
    }
    fn stats(&mut self, now: i64) -> Result<Stats, StoreError> {
        (**self).stats(now)
    }
    fn search(&mut self, text: &str, limit: usize) -> Result<Vec<TorrentRow>, StoreError> {
        (**self).search(text, limit)
    }
}

/// Where a database is: `sqlite:PATH` (or a bare path) or a `postgres://…` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://` or `postgresql://` URL).
    Postgres(String),
}

impl DbUrl {
    /// Parses `sqlite:PATH`, `postgres://…`, `postgresql://…` or a path.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Self::Postgres(s.to_owned())
        } else {
            Self::Sqlite(PathBuf::from(s.strip_prefix("sqlite:").unwrap_or(s)))
        }
    }

    /// Opens the database with default [`Limits`], migrating its schema. An SQLite file is
    /// created when `create`, else it must exist.
    ///
    /// # Errors
    /// When the database cannot be opened, reached or migrated.
    pub fn open(&self, create: bool) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite(path) => {
                if !create && !path.exists() {
                    return Err(StoreError::NotFound(path.clone()));
                }
                Box::new(SqliteStore::open(path, Limits::default())?)
            }
            Self::Postgres(url) => Box::new(PostgresStore::connect(url, Limits::default())?),
        })
    }
}

impl fmt::Display for DbUrl {
    /// The URL without a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// `text` with NUL characters replaced (PostgreSQL text cannot hold them), cut to at most `max`
/// bytes at a character boundary.
fn clean_text(text: &str, max: usize) -> String {
    let mut text = text.replace('\0', "\u{fffd}");
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// The words of a search: runs of letters and digits, lowercased, at most 16.
fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

/// A `LIKE` pattern matching `text` anywhere, with `\` as the escape character.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.trim().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A count as stored (SQL integers are signed 64-bit).
fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count back (a negative one, written by hand, reads as 0).
fn from_sql_int(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A swarm count as stored.
fn to_sql_count(n: Option<u32>) -> Option<i32> {
    n.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// A stored swarm count back.
fn from_sql_count(n: Option<i32>) -> Option<u32> {
    n.map(|n| u32::try_from(n).unwrap_or(0))
}

/// A duration in whole seconds, as stored.
fn secs(d: Duration) -> i64 {
    to_sql_int(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_of_the_harvester() {
        use dht_proto::crawl::HowFound;
        assert_eq!(Source::from(HowFound::GetPeers).as_str(), "get_peers");
        assert_eq!(
            Source::from(HowFound::AnnouncePeer).as_str(),
            "announce_peer"
        );
        assert_eq!(Source::from(HowFound::Sample).as_str(), "sample_infohashes");
    }

    #[test]
    fn db_urls() {
        assert_eq!(
            DbUrl::parse("sqlite:/tmp/x.db"),
            DbUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(DbUrl::parse("x.db"), DbUrl::Sqlite("x.db".into()));
        assert_eq!(
            DbUrl::parse("postgresql://u@h/d"),
            DbUrl::Postgres("postgresql://u@h/d".into())
        );
        assert_eq!(
            DbUrl::parse("postgres://u:pw@h:5/d").to_string(),
            "postgres://u:***@h:5/d"
        );
        assert_eq!(DbUrl::parse("postgres://h/d").to_string(), "postgres://h/d");
    }

    #[test]
    fn text_is_cut_at_a_character_boundary_and_loses_nul() {
        assert_eq!(clean_text("héllo", 2), "h");
        assert_eq!(clean_text("héllo", 3), "hé");
        assert_eq!(clean_text("a\0b", 10), "a\u{fffd}b");
        assert_eq!(clean_text("a\0b", 3), "a");
        assert_eq!(clean_text("", 0), "");
    }

    #[test]
    fn search_words_and_like_patterns() {
        assert_eq!(
            search_words("Ubuntu-22.04 \"desktop\" OR *"),
            ["ubuntu", "22", "04", "desktop", "or"]
        );
        assert!(search_words(" -- ").is_empty());
        assert_eq!(like_pattern(" 50%_a\\ "), "%50\\%\\_a\\\\%");
    }
}
