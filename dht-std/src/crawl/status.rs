//! [`Status`]: what a crawl has done, and the bookkeeping of one run behind it.

use core::time::Duration;
use std::collections::VecDeque;
use std::time::Instant;

use dht_proto::Id;

use super::fetch::Fetches;
use super::net::NetStats;
use super::{CLAIM_MIN, MAX_FOUND};
use crate::store::{Batcher, Store, StoreError};

/// Info-hashes by how they were found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BySource {
    /// In incoming `get_peers` queries.
    pub get_peers: u64,
    /// In incoming `announce_peer` queries.
    pub announce_peer: u64,
    /// In BEP 51 samples.
    pub sample: u64,
}

impl BySource {
    /// All sources together.
    pub fn total(&self) -> u64 {
        self.get_peers
            .saturating_add(self.announce_peer)
            .saturating_add(self.sample)
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self {
            get_peers: self.get_peers.saturating_sub(earlier.get_peers),
            announce_peer: self.announce_peer.saturating_sub(earlier.announce_peer),
            sample: self.sample.saturating_sub(earlier.sample),
        }
    }
}

/// What a crawl has done so far.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Status {
    /// Time since the start.
    pub uptime: Duration,
    /// Crawler ids (sockets).
    pub ids: usize,
    /// Contacts in the ids' routing tables together.
    pub contacts: usize,
    /// Queries sent so far.
    pub queries_sent: u64,
    /// Queries sent per second since the previous status.
    pub queries_per_sec: f64,
    /// Queries held back by the send budget so far.
    pub throttled: u64,
    /// New info-hashes found since the start.
    pub found: BySource,
    /// New info-hashes found in the last minute (or since the start, if sooner).
    pub found_last_minute: BySource,
    /// `get_peers` lookups running and waiting.
    pub lookups_running: usize,
    /// Lookups waiting for a slot.
    pub lookups_queued: usize,
    /// Info-hashes found in samples whose holders are still to be asked (or being asked).
    pub holders_waiting: usize,
    /// Info-hashes whose peers came from a holder's answer, without a lookup.
    pub peers_from_holders: u64,
    /// Metadata fetched and stored since the start.
    pub fetched: u64,
    /// Metadata fetched in the last minute (or since the start, if sooner).
    pub fetched_last_minute: u64,
    /// Fetches that failed (every peer failed, no peer, or too slow).
    pub fetch_failed: u64,
    /// Fetches running.
    pub fetching: usize,
    /// Info-hashes in the database's fetch queue (all crawlers'), if it could be read.
    pub queue: Option<u64>,
    /// Transactions committed.
    pub commits: u64,
    /// Writes waiting for the next commit.
    pub pending_writes: usize,
    /// Writes dropped while the database failed.
    pub dropped_writes: u64,
    /// Database errors so far.
    pub store_errors: u64,
}

/// The bookkeeping of one [`Crawl::run`](super::Crawl::run).
#[derive(Debug)]
pub(super) struct Run {
    pub(super) started: Instant,
    pub(super) ids: usize,
    pub(super) concurrency: usize,
    pub(super) fetches: Fetches,
    pub(super) net: NetStats,
    pub(super) found: BySource,
    pub(super) fetched: u64,
    pub(super) fetch_failed: u64,
    /// Failed fetches not yet reported to the store.
    pub(super) failed: Vec<Id>,
    pub(super) next_claim: Instant,
    pub(super) next_overdue_check: Option<Instant>,
    /// A commit failed: the next try waits until then.
    pub(super) commit_backoff: Option<Instant>,
    /// The fetch queue's length and when it was counted.
    pub(super) queue: Option<(Instant, Option<u64>)>,
    pub(super) store_errors: u64,
    /// (time, found, fetched) at earlier statuses, for the per-minute rates.
    pub(super) history: VecDeque<(Instant, BySource, u64)>,
    pub(super) last_queries: (Instant, u64),
}

impl Run {
    pub(super) fn new(started: Instant, ids: usize, concurrency: usize) -> Self {
        Self {
            started,
            ids,
            concurrency: concurrency.max(1),
            fetches: Fetches::new(MAX_FOUND),
            net: NetStats::default(),
            found: BySource::default(),
            fetched: 0,
            fetch_failed: 0,
            failed: Vec::new(),
            next_claim: started,
            next_overdue_check: None,
            commit_backoff: None,
            queue: None,
            store_errors: 0,
            history: VecDeque::from([(started, BySource::default(), 0)]),
            last_queries: (started, 0),
        }
    }

    pub(super) fn claim_soon(&mut self, now: Instant) {
        self.next_claim = self.next_claim.min(now + CLAIM_MIN);
    }

    pub(super) fn failed(&mut self, info_hash: Id) {
        self.fetch_failed += 1;
        self.failed.push(info_hash);
    }

    pub(super) fn note(&mut self, r: Result<bool, StoreError>) {
        if let Err(e) = r {
            self.store_error(&e);
        }
    }

    pub(super) fn store_error(&mut self, e: &StoreError) {
        self.store_errors += 1;
        // The first error, then one in a hundred: a database that is down must not flood the log.
        if self.store_errors % 100 == 1 {
            log::warn!("database error (retrying): {e}");
        }
    }

    pub(super) fn status<S: Store>(
        &mut self,
        now: Instant,
        queue: Option<u64>,
        b: &Batcher<S>,
    ) -> Status {
        let minute = Duration::from_secs(60);
        // Keep one entry at least a minute old as the base of the rates.
        while self.history.len() > 1
            && self
                .history
                .get(1)
                .is_some_and(|(t, ..)| now.saturating_duration_since(*t) >= minute)
        {
            self.history.pop_front();
        }
        let (found_then, fetched_then) = self
            .history
            .front()
            .map_or((BySource::default(), 0), |(_, f, n)| (*f, *n));
        self.history.push_back((now, self.found, self.fetched));
        let (then, sent_then) = self.last_queries;
        let secs = now.saturating_duration_since(then).as_secs_f64();
        let sent = self.net.queries_sent;
        let queries_per_sec = if secs > 0.0 {
            sent.saturating_sub(sent_then) as f64 / secs
        } else {
            0.0
        };
        self.last_queries = (now, sent);
        Status {
            uptime: now.saturating_duration_since(self.started),
            ids: self.ids,
            contacts: self.net.contacts,
            queries_sent: sent,
            queries_per_sec,
            throttled: self.net.throttled,
            found: self.found,
            found_last_minute: self.found.minus(&found_then),
            lookups_running: self.net.lookups_running,
            lookups_queued: self.net.lookups_queued,
            holders_waiting: self.net.holders_waiting,
            peers_from_holders: self.net.peers_from_holders,
            fetched: self.fetched,
            fetched_last_minute: self.fetched.saturating_sub(fetched_then),
            fetch_failed: self.fetch_failed,
            fetching: self.fetches.running(),
            queue,
            commits: b.commits(),
            pending_writes: b.pending(),
            dropped_writes: b.dropped(),
            store_errors: self.store_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BatcherConfig;

    #[test]
    fn rates_cover_the_last_minute() {
        let t0 = Instant::now();
        let mut run = Run::new(t0, 1, 1);
        let b = Batcher::new(
            crate::store::SqliteStore::open_in_memory(crate::store::Limits::default()).unwrap(),
            BatcherConfig::default(),
        );
        run.found.sample = 5;
        run.fetched = 2;
        let s = run.status(t0 + Duration::from_secs(30), Some(0), &b);
        assert_eq!((s.found_last_minute.sample, s.fetched_last_minute), (5, 2));
        run.found.sample = 8;
        let s = run.status(t0 + Duration::from_secs(70), None, &b);
        assert_eq!(s.found_last_minute.sample, 8, "the base is the start");
        run.found.sample = 9;
        let s = run.status(t0 + Duration::from_secs(100), None, &b);
        assert_eq!(s.found_last_minute.sample, 4, "since the status at 30 s");
        assert_eq!(s.found.total(), 9);
    }
}
