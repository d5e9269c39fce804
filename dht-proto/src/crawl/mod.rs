//! A crawler's discovery strategy, sans-IO like [`Node`](crate::Node): time is an
//! [`Instant`](crate::Instant) argument and randomness comes from a seed.
//!
//! [`Crawler`] runs one [`Node`](crate::Node) per id (each on its own socket) and combines:
//!
//! - **Many ids** ([`spread_ids`]): ids spread evenly over the key space, kept across restarts
//!   by the application, so the crawler sits in many other nodes' routing tables and hears the
//!   `get_peers` and `announce_peer` queries of every region.
//! - **Passive harvest** ([`Harvester`]): every info-hash in those incoming queries, reported
//!   once ([`SeenSet`]) as [`CrawlEvent::Discovered`].
//! - **A BEP 51 traversal** of the whole key space: every node heard of is asked for
//!   `sample_infohashes` directly (one request, no lookup), with a target in its own
//!   neighbourhood so that its answer lists its closest contacts, which is how the traversal
//!   reaches every node. A node is never asked again before the `interval` it gave; its `num`
//!   decides how much a revisit is worth when more nodes are due than the budget allows (see
//!   [`TraverseConfig`]). The table of nodes is bounded.
//! - **Peers from the holders** ([`CrawlerConfig::ask_holders`]): the node whose samples named
//!   an info-hash stores its peers, so it is asked with one `get_peers` (no lookup), then other
//!   nodes that sampled it; the peer an incoming `announce_peer` names is reported at once.
//! - **A `get_peers` lookup** (with BEP 33 scrape when [`CrawlerConfig::scrape`] is on) for each
//!   info-hash found passively and each one no holder had peers for, with bounded concurrency
//!   and a bounded queue: [`CrawlEvent::Peers`] and [`CrawlEvent::LookupDone`].
//! - **One [`SendBudget`]** for every query of every id: a global rate (default 500 per second)
//!   and at most one query per remote IP per second. Answers to other nodes' queries are not
//!   held back. New work starts only while the budget has room, so queries wait little.
//!
//! **The real network's limits.** libtorrent keeps one routing entry per IP address and
//! prefers node ids that match their address (BEP 42); an id derived from an address fixes its
//! first 21 bits. Many spread ids on one address are therefore not all kept by such tables:
//! at most one of them, and only if it is BEP 42-compliant. The strategy does not depend on
//! being kept: the traversal asks every node directly, whatever its table holds, and the
//! per-IP budget keeps those visits far below libtorrent's per-source limit (5 queries per
//! second). Spread ids still collect queries from the implementations that keep them. To be
//! kept everywhere, run more addresses with one id each (each id already has its own socket),
//! each with a BEP 42-compliant id ([`bep42::generate_id`](crate::bep42::generate_id)): its
//! first 21 bits then follow from the address, and many addresses spread over the key space
//! between them.

mod budget;
mod driver;
mod seen;
mod traverse;

use alloc::vec::Vec;

use rand_core::RngCore;

pub use self::budget::{RESERVATION, SendBudget, SendBudgetConfig, Throttled};
pub use self::driver::{
    CrawlEvent, CrawlStats, CrawlTransmit, Crawler, CrawlerConfig, MAX_HOLDERS,
};
pub use self::seen::SeenSet;
pub use self::traverse::TraverseConfig;

use crate::event::Event;
use crate::id::Id;
use crate::stats::MethodKind;

/// `n` node ids whose first 32 bits are evenly spaced over the key space (id `i` starts at
/// `i * 2^32 / n`), the other 128 bits random. Each id is closest to its own `1/n` of the
/// info-hashes, so together they are near every info-hash.
pub fn spread_ids(n: u32, rng: &mut impl RngCore) -> Vec<Id> {
    (0..n)
        .map(|i| {
            let mut bytes = Id::random(rng).to_bytes();
            let start = (u64::from(i) << 32) / u64::from(n);
            let prefix = u32::try_from(start).unwrap_or(u32::MAX).to_be_bytes();
            for (b, p) in bytes.iter_mut().zip(prefix) {
                *b = p;
            }
            Id::new(bytes)
        })
        .collect()
}

/// How an info-hash was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HowFound {
    /// In a `get_peers` query another node sent us.
    GetPeers,
    /// In an `announce_peer` query another node sent us.
    AnnouncePeer,
    /// In a BEP 51 `sample_infohashes` answer.
    Sample,
}

/// An info-hash seen for the first time (as far as the [`SeenSet`] remembers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// The info-hash.
    pub info_hash: Id,
    /// How.
    pub how: HowFound,
}

/// Turns node events into first sightings of info-hashes: the targets of incoming `get_peers`
/// and `announce_peer` queries (reported by nodes with
/// [`Config::report_queries`](crate::Config::report_queries)) and BEP 51 samples. Every
/// info-hash is reported once while the [`SeenSet`] remembers it.
#[derive(Debug)]
pub struct Harvester {
    seen: SeenSet,
    reported: u64,
    repeats: u64,
}

impl Harvester {
    /// A harvester remembering up to `capacity` info-hashes (see [`SeenSet::new`]).
    pub fn new(capacity: usize, rng: &mut impl RngCore) -> Self {
        Self {
            seen: SeenSet::new(capacity, rng),
            reported: 0,
            repeats: 0,
        }
    }

    /// Appends to `out` the info-hashes of `event` not seen before; returns how many.
    pub fn observe(&mut self, event: &Event, out: &mut Vec<Found>) -> usize {
        let before = out.len();
        match event {
            Event::QueryReceived {
                method,
                target: Some(info_hash),
                ..
            } => {
                let how = match method {
                    MethodKind::GetPeers => HowFound::GetPeers,
                    MethodKind::AnnouncePeer => HowFound::AnnouncePeer,
                    _ => return 0,
                };
                self.offer(*info_hash, how, out);
            }
            Event::SamplesFound { samples, .. } => {
                for info_hash in samples {
                    self.offer(*info_hash, HowFound::Sample, out);
                }
            }
            _ => {}
        }
        out.len() - before
    }

    fn offer(&mut self, info_hash: Id, how: HowFound, out: &mut Vec<Found>) {
        if self.seen.insert(info_hash) {
            self.reported += 1;
            out.push(Found { info_hash, how });
        } else {
            self.repeats += 1;
        }
    }

    /// Info-hashes reported so far.
    pub fn reported(&self) -> u64 {
        self.reported
    }

    /// Sightings of info-hashes already reported.
    pub fn repeats(&self) -> u64 {
        self.repeats
    }

    /// The set of info-hashes remembered.
    pub fn seen(&self) -> &SeenSet {
        &self.seen
    }
}

#[cfg(test)]
mod driver_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod traverse_tests;
