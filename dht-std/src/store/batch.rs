//! [`Batch`] and [`Batcher`]: what is written in one transaction, and when.

use core::time::Duration;
use std::collections::BTreeMap;
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
        let due =
            self.batch.len() >= self.config.max_batch || self.deadline().is_some_and(|d| now >= d);
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

#[cfg(test)]
mod tests {
    use super::super::{Shard, Source, Stats, TorrentRow};
    use super::*;

    /// Records the size of each committed batch; fails while `failing`.
    #[derive(Debug, Default)]
    struct Recorder {
        commits: Vec<usize>,
        failing: bool,
    }

    impl Store for Recorder {
        fn backend(&self) -> &'static str {
            "recorder"
        }
        fn schema_version(&mut self) -> Result<u32, StoreError> {
            Ok(1)
        }
        fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
            if self.failing {
                return Err(StoreError::NewerSchema { found: 0 });
            }
            self.commits.push(batch.len());
            Ok(())
        }
        fn claim(
            &mut self,
            _: &str,
            _: usize,
            _: Shard,
            _: i64,
            _: Duration,
        ) -> Result<Vec<Id>, StoreError> {
            Ok(Vec::new())
        }
        fn fail(&mut self, _: &[Id], _: i64, _: Duration) -> Result<(), StoreError> {
            Ok(())
        }
        fn release(&mut self, _: &[Id]) -> Result<(), StoreError> {
            Ok(())
        }
        fn release_owner(&mut self, _: &str) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn queue_len(&mut self) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn get(&mut self, _: Id) -> Result<Option<TorrentRow>, StoreError> {
            Ok(None)
        }
        fn stats(&mut self, _: i64) -> Result<Stats, StoreError> {
            Ok(Stats::default())
        }
        fn search(&mut self, _: &str, _: usize) -> Result<Vec<TorrentRow>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn sighting(i: u8, at: i64) -> Sighting {
        Sighting::new(Id::new([i; 20]), Source::GetPeers, at)
    }

    #[test]
    fn sightings_of_one_info_hash_merge() {
        let mut batch = Batch::new();
        batch.sighting(sighting(1, 50));
        batch.sighting(Sighting {
            peers: Some(3),
            ..Sighting::new(Id::new([1; 20]), Source::Sample, 40)
        });
        batch.sighting(sighting(1, 60));
        batch.sighting(sighting(2, 10));
        assert_eq!(batch.len(), 2);
        let rows: Vec<SightingRow> = batch.sighting_rows().collect();
        assert_eq!(
            rows[0],
            SightingRow {
                info_hash: Id::new([1; 20]),
                source: Source::Sample,
                first_seen: 40,
                last_seen: 60,
                times: 3,
                peers: Some(3),
                seeders: None,
                leechers: None,
            }
        );
        assert_eq!(rows[1].info_hash, Id::new([2; 20]), "in info-hash order");
    }

    #[test]
    fn a_write_waits_at_most_the_interval() {
        let t0 = Instant::now();
        let config = BatcherConfig::default();
        let mut b = Batcher::new(Recorder::default(), config);
        assert_eq!(b.deadline(), None);
        assert!(
            !b.poll(t0 + Duration::from_secs(5)).unwrap(),
            "nothing to commit"
        );
        assert!(!b.sighting(sighting(1, 0), t0).unwrap());
        assert_eq!(b.deadline(), Some(t0 + config.interval));
        let just_before = t0 + config.interval - Duration::from_millis(1);
        assert!(!b.sighting(sighting(2, 0), just_before).unwrap());
        assert!(!b.poll(just_before).unwrap());
        assert!(b.poll(t0 + config.interval).unwrap());
        assert_eq!(b.store().commits, [2]);
        assert_eq!((b.pending(), b.commits(), b.deadline()), (0, 1, None));
        // The next batch's clock starts with its first write.
        let t1 = t0 + Duration::from_secs(10);
        b.torrent(
            TorrentRecord {
                info_hash: Id::new([3; 20]),
                name: String::new(),
                total_size: 0,
                files: Vec::new(),
                info: Vec::new(),
                fetched_at: 0,
            },
            t1,
        )
        .unwrap();
        assert_eq!(b.deadline(), Some(t1 + config.interval));
        let store = b.finish().unwrap();
        assert_eq!(store.commits, [2, 1]);
    }

    #[test]
    fn a_full_batch_commits_at_once() {
        let t0 = Instant::now();
        let config = BatcherConfig {
            max_batch: 3,
            ..BatcherConfig::default()
        };
        let mut b = Batcher::new(Recorder::default(), config);
        for i in 0..7 {
            b.sighting(sighting(i, 0), t0).unwrap();
        }
        b.sighting(sighting(6, 0), t0).unwrap();
        assert_eq!(b.store().commits, [3, 3]);
        assert_eq!(
            b.pending(),
            1,
            "a repeated info-hash merges in the open batch"
        );
    }

    #[test]
    fn while_the_database_fails_the_batch_is_kept_up_to_its_cap() {
        let t0 = Instant::now();
        let config = BatcherConfig {
            max_batch: 4,
            ..BatcherConfig::default()
        };
        let mut b = Batcher::new(Recorder::default(), config);
        b.store().failing = true;
        for i in 0..3 {
            b.sighting(sighting(i, 0), t0).unwrap();
        }
        assert!(b.poll(t0 + Duration::from_secs(2)).is_err());
        assert_eq!(b.pending(), 3, "kept for the next try");
        assert!(
            b.sighting(sighting(3, 0), t0).is_err(),
            "full now: commits, fails"
        );
        assert_eq!((b.pending(), b.dropped()), (4, 0));
        for i in 4..10 {
            assert!(b.sighting(sighting(i, 0), t0).is_err());
        }
        assert_eq!(
            (b.pending(), b.dropped()),
            (4, 6),
            "past the cap, writes are dropped"
        );
        b.store().failing = false;
        b.sighting(sighting(10, 0), t0).unwrap();
        assert_eq!(b.store().commits, [4]);
        assert_eq!((b.pending(), b.dropped()), (1, 6));
    }
}
