//! Building blocks of a crawler's discovery strategy, sans-IO like [`Node`](crate::Node):
//! time is an [`Instant`](crate::Instant) argument and randomness a caller's [`RngCore`].
//!
//! - [`spread_ids`]: node ids spread evenly over the key space, so that a crawler running one
//!   [`Node`](crate::Node) per id sits in many other nodes' routing tables and hears the
//!   `get_peers` and `announce_peer` queries of every region.
//! - [`Harvester`]: the info-hashes in the events of those nodes (incoming `get_peers` and
//!   `announce_peer` queries, BEP 51 samples), each reported once ([`SeenSet`]).
//! - [`SendBudget`]: the crawler's own queries kept to a global rate (default 500 per second)
//!   and at most one per remote IP per second.
//!
//! A limit of the real network: libtorrent keeps one routing entry per IP address and prefers
//! node ids that match their address (BEP 42), and an id derived from an address fixes its first
//! 21 bits, so ids spread over the whole key space from one address are not all kept by such
//! tables. Spread ids still collect queries from the implementations that do keep them, and the
//! BEP 51 traversal ([`Node::sample_infohashes`](crate::Node::sample_infohashes)) reaches every
//! region whatever the tables keep; more addresses, one id each, are the way to be kept
//! everywhere.

mod budget;
mod driver;
mod seen;
mod traverse;

use alloc::vec::Vec;

use rand_core::RngCore;

pub use self::budget::{SendBudget, SendBudgetConfig, Throttled};
pub use self::driver::{CrawlEvent, CrawlStats, CrawlTransmit, Crawler, CrawlerConfig};
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
