//! [`Batch`] and [`Batcher`]: what is written in one transaction, and when.

use std::collections::BTreeMap;
use core::time::Duration;
use std::time::Instant;

use dht_proto::Id;

use super::{Sighting, Store, StoreError, TorrentRecord};

/// The writes of one transaction: sightings merged per info-hash, and fetched torrents.
///
/// Both are kept in info-hash order, so every transaction takes its row locks in the same order
/// (two PostgreSQL writers cannot deadlock on each other).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    sightings: BTreeMap<Id, Merged>,
    torrents: BTreeMap<Id, TorrentRecord>,
}

/// Several sightings of one info-hash in a batch.
#[derive(Clone, Copy, Debug)]
struct Merged {
    first: Sighting,
    last_at: i64,
    times: u64,
}

/// One info-hash's sightings in a batch, as a backend writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SightingRow {
    pub info_hash: Id,
    /// The source of the earliest sighting.
    pub source: super::Source,
    pub first_seen: i64,
    pub last_seen: i64,
    pub times: u64,
    /// The latest known counts.
    pub peers: Option<u32>,
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sighting (merged with earlier ones of the same info-hash).
    pub fn sighting(&mut self, s: Sighting) {
        match self.sightings.get_mut(&s.info_hash) {
            Some(m) => {
                if s.at < m.first.at {
                    m.first.source = s.source;
                    m.first.at = s.at;
                }
                m.last_at = m.last_at.max(s.at);
                m.times = m.times.saturating_add(1);
                m.first.peers = s.peers.or(m.first.peers);
                m.first.seeders = s.seeders.or(m.first.seeders);
                m.first.leechers = s.leechers.or(m.first.leechers);
            }
            None => {
                self.sightings.insert(
                    s.info_hash,
                    Merged {
                        first: s,
                        last_at: s.at,
                        times: 1,
                    },
                );
            }
        }
    }

    /// Adds a fetched torrent (replacing one of the same info-hash in this batch).
    pub fn torrent(&mut self, t: TorrentRecord) {
        self.torrents.insert(t.info_hash, t);
    }

    /// Distinct info-hashes sighted plus torrents: what the batch's size is measured in.
    pub fn len(&self) -> usize {
        self.sightings.len() + self.torrents.len()
    }

    /// Whether nothing is in the batch.
    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty() && self.torrents.is_empty()
    }

    /// Empties the batch.
    pub fn clear(&mut self) {
        self.sightings.clear();
        self.torrents.clear();
    }

    /// The merged sightings, in info-hash order.
    pub(super) fn sighting_rows(&self) -> impl Iterator<Item = SightingRow> + '_ {
        self.sightings.values().map(|m| SightingRow {
            info_hash: m.first.info_hash,
            source: m.first.source,
            first_seen: m.first.at,
            last_seen: m.last_at,
            times: m.times,
            peers: m.first.peers,
            seeders: m.first.seeders,
            leechers: m.first.leechers,
        })
    }

    /// The torrents, in info-hash order.
    pub(super) fn torrents(&self) -> impl Iterator<Item = &TorrentRecord> + '_ {
        self.torrents.values()
    }
}

/// When a [`Batcher`] commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatcherConfig {
    /// The longest a write waits in the batch (default 1 s: a `kill -9` loses at most that).
    pub interval: Duration,
    /// The batch size that commits at once (default 10,000 info-hashes). Also the cap: while
    /// the database fails, writes past it are dropped and counted.
    pub max_batch: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            max_batch: 10_000,
        }
    }
}

/// A [`Store`] with a [`Batch`] in front: writes gather until the batch is
/// [`BatcherConfig::interval`] old or [`BatcherConfig::max_batch`] long, then commit in one
/// transaction. Time is given by the caller (`now`), as everywhere in this crate's cores.
#[derive(Debug)]
pub struct Batcher<S> {
    store: S,
    config: BatcherConfig,
    batch: Batch,
    /// When the oldest write of the batch arrived.
    since: Option<Instant>,
    commits: u64,
    dropped: u64,
}

impl<S: Store> Batcher<S> {
    /// A batcher in front of `store`.
    pub fn new(store: S, config: BatcherConfig) -> Self {
        Self {
            store,
            config,
            batch: Batch::new(),
            since: None,
            commits: 0,
            dropped: 0,
        }
    }

    /// Adds a sighting; commits if the batch is now due.
    ///
    /// # Errors
    /// When a due commit fails (the batch is kept for the next try).
    pub fn sighting(&mut self, s: Sighting, now: Instant) -> Result<bool, StoreError> {
        self.make_room()?;
        self.batch.sighting(s);
        self.since.get_or_insert(now);
        self.poll(now)
    }

    /// Adds a fetched torrent; commits if the batch is now due.
    ///
    /// # Errors
    /// When a due commit fails (the batch is kept for the next try).
    pub fn torrent(&mut self, t: TorrentRecord, now: Instant) -> Result<bool, StoreError> {
        self.make_room()?;
        self.batch.torrent(t);
        self.since.get_or_insert(now);
        self.poll(now)
    }

    /// Whether a write fits: a full batch commits first; if that fails, the write is dropped.
    fn make_room(&mut self) -> Result<(), StoreError> {
        if self.batch.len() < self.config.max_batch {
            return Ok(());
        }
        match self.flush() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.dropped += 1;
                Err(e)
            }
        }
    }

    /// Commits if the batch is due (full, or its oldest write is `interval` old). Returns
    /// whether it committed.
    ///
    /// # Errors
    /// When the commit fails (the batch is kept for the next try).
    pub fn poll(&mut self, now: Instant) -> Result<bool, StoreError> {
        let due = self.batch.len() >= self.config.max_batch
            || self.deadline().is_some_and(|d| now >= d);
        if due {
            self.flush()?;
        }
        Ok(due)
    }

    /// When the batch must commit ([`Batcher::poll`] then), if it holds anything.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + self.config.interval)
    }

    /// Commits whatever the batch holds.
    ///
    /// # Errors
    /// When the commit fails (the batch is kept for the next try).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.store.write(&self.batch)?;
        self.batch.clear();
        self.since = None;
        self.commits += 1;
        Ok(())
    }

    /// Writes waiting in the batch.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Writes dropped because the batch was full and the database failing.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The store, for claims and reads.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Commits what is left and gives the store back.
    ///
    /// # Errors
    /// When the last commit fails.
    pub fn finish(mut self) -> Result<S, StoreError> {
        self.flush()?;
        Ok(self.store)
    }
}
