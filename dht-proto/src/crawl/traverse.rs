//! The BEP 51 traversal's memory of remote nodes: when each may be sampled again, in a bounded
//! table, and which is due next.
//!
//! Every node the crawler hears of (from the `nodes` of sample answers, its own routing tables
//! and the sources of incoming queries) gets an entry, due at once. When a node answers, its
//! next visit is set from its BEP 51 `interval` (never earlier: the node asked for that pause)
//! and stretched by what its `num` says a revisit is worth: a node holding more info-hashes
//! than one answer carried is worth returning to as soon as allowed (each answer is a fresh
//! random sample); one that showed all it holds only has new arrivals to show, and one that
//! holds none is worth least. Nodes that do not answer are retried with back-off and forgotten
//! after [`TraverseConfig::max_failures`]; nodes without BEP 51 are asked again rarely.

use core::net::SocketAddr;
use core::time::Duration;

use alloc::collections::BTreeSet;
use hashbrown::HashMap;

use crate::id::Id;
use crate::rng::KeyedState;
use crate::time::Instant;

/// Settings of the BEP 51 traversal (part of
/// [`CrawlerConfig`](super::CrawlerConfig)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraverseConfig {
    /// Remote nodes remembered, with the time each may be sampled again (default 262,144,
    /// about 45 MB). At the cap, newly heard-of nodes are ignored until dead ones (see
    /// [`TraverseConfig::max_failures`]) leave room: an entry is never dropped while its
    /// interval runs, so no node is asked again before its time.
    pub max_nodes: usize,
    /// `sample_infohashes` requests in flight at once (default 128).
    pub max_in_flight: usize,
    /// The pause assumed when an answer has no `interval` (default 300 s).
    pub default_interval: Duration,
    /// The longest pause honoured; larger `interval` values are cut to it (default 6 hours,
    /// the BEP 51 maximum).
    pub max_interval: Duration,
    /// The pause after a node showed every info-hash it holds (`num` no more than the
    /// samples): at least its interval, otherwise this many times it (default 2).
    pub all_seen_factor: u32,
    /// The pause after a node said it holds nothing (`num` 0): this many times its interval
    /// (default 4).
    pub empty_factor: u32,
    /// The first pause after a node did not answer, doubled at each further failure (default
    /// 60 s).
    pub retry: Duration,
    /// Failures in a row after which a node is forgotten (default 2; at least 1).
    pub max_failures: u8,
    /// The pause after a node answered without samples (no BEP 51) or with an error (default
    /// 1 hour).
    pub unsupported_retry: Duration,
}

impl Default for TraverseConfig {
    fn default() -> Self {
        Self {
            max_nodes: 262_144,
            max_in_flight: 128,
            default_interval: Duration::from_secs(300),
            max_interval: Duration::from_secs(6 * 3600),
            all_seen_factor: 2,
            empty_factor: 4,
            retry: Duration::from_secs(60),
            max_failures: 2,
            unsupported_retry: Duration::from_secs(3600),
        }
    }
}

/// One remote node.
#[derive(Clone, Copy, Debug)]
struct Remote {
    id: Id,
    /// Its place in the schedule, `None` while a request to it is in flight.
    due: Option<(Instant, u64)>,
    /// Failures in a row.
    failures: u8,
}

/// How a request ended, for [`Traverse::on_answer`] and [`Traverse::on_failure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer.
    Timeout,
    /// An answer without samples, or an error: no BEP 51 there.
    Unsupported,
}

/// The traversal state: the remembered nodes and their schedule.
#[derive(Debug)]
pub(crate) struct Traverse {
    config: TraverseConfig,
    nodes: HashMap<SocketAddr, Remote, KeyedState>,
    /// Due time, a tie-breaking serial, the address: the first entry is due next.
    schedule: BTreeSet<(Instant, u64, SocketAddr)>,
    serial: u64,
    in_flight: usize,
    /// Nodes ignored because the table was full.
    pub(crate) dropped: u64,
    /// Nodes forgotten after failing.
    pub(crate) forgotten: u64,
}

impl Traverse {
    pub(crate) fn new(mut config: TraverseConfig, key: [u8; 16]) -> Self {
        config.max_failures = config.max_failures.max(1);
        config.all_seen_factor = config.all_seen_factor.max(1);
        config.empty_factor = config.empty_factor.max(1);
        Self {
            config,
            nodes: HashMap::with_hasher(KeyedState::new(key)),
            schedule: BTreeSet::new(),
            serial: 0,
            in_flight: 0,
            dropped: 0,
            forgotten: 0,
        }
    }

    pub(crate) fn config(&self) -> &TraverseConfig {
        &self.config
    }

    /// Nodes remembered.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn place(&mut self, at: Instant, addr: SocketAddr) -> (Instant, u64) {
        self.serial = self.serial.wrapping_add(1);
        self.schedule.insert((at, self.serial, addr));
        (at, self.serial)
    }

    /// A node heard of: remembered and due at `now` if new and there is room. Returns whether
    /// it was new.
    pub(crate) fn learn(&mut self, now: Instant, id: Id, addr: SocketAddr) -> bool {
        if let Some(remote) = self.nodes.get_mut(&addr) {
            remote.id = id;
            return false;
        }
        if self.nodes.len() >= self.config.max_nodes {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        let due = Some(self.place(now, addr));
        self.nodes.insert(
            addr,
            Remote {
                id,
                due,
                failures: 0,
            },
        );
        true
    }

    /// When the next node is due, if any (whether or not a request may go now).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.schedule.first().map(|(t, _, _)| *t)
    }

    /// Takes the node due first if it is due at `now` and a request may go
    /// ([`TraverseConfig::max_in_flight`]): it is in flight until [`Traverse::on_answer`] or
    /// [`Traverse::on_failure`].
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<(SocketAddr, Id)> {
        if self.in_flight >= self.config.max_in_flight {
            return None;
        }
        let &(at, _, addr) = self.schedule.first()?;
        if at > now {
            return None;
        }
        self.schedule.pop_first();
        let remote = self.nodes.get_mut(&addr)?;
        remote.due = None;
        self.in_flight += 1;
        Some((addr, remote.id))
    }

    /// Puts back a node taken by [`Traverse::take_due`] whose request could not be sent, due
    /// at `at`.
    pub(crate) fn put_back(&mut self, at: Instant, addr: SocketAddr) {
        if self.nodes.get(&addr).is_some_and(|r| r.due.is_none()) {
            self.in_flight = self.in_flight.saturating_sub(1);
            let due = Some(self.place(at, addr));
            if let Some(remote) = self.nodes.get_mut(&addr) {
                remote.due = due;
            }
        }
    }

    /// The pause an answer asks for: its `interval` (or the default) within the bounds,
    /// stretched by what `num` says a revisit is worth.
    pub(crate) fn pause(
        &self,
        samples: usize,
        num: Option<i64>,
        interval: Option<i64>,
    ) -> Duration {
        let c = &self.config;
        let interval = match interval {
            Some(secs) => Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
            None => c.default_interval,
        }
        .min(c.max_interval);
        // A revisit needs at least a second, whatever the node says.
        let interval = interval.max(Duration::from_secs(1));
        let samples = i64::try_from(samples).unwrap_or(i64::MAX);
        let factor = match num {
            Some(n) if n <= 0 && samples == 0 => c.empty_factor,
            Some(n) if n > samples => 1,
            // No `num`: assume the answer showed everything.
            _ => c.all_seen_factor,
        };
        interval.saturating_mul(factor)
    }

    /// A node answered with samples: due again after [`Traverse::pause`].
    pub(crate) fn on_answer(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        samples: usize,
        num: Option<i64>,
        interval: Option<i64>,
    ) {
        let pause = self.pause(samples, num, interval);
        self.reschedule(addr, now.saturating_add(pause), true);
    }

    /// A request failed: the node is retried later, or forgotten after too many timeouts.
    pub(crate) fn on_failure(&mut self, now: Instant, addr: SocketAddr, failure: Failure) {
        let Some(remote) = self.nodes.get_mut(&addr) else {
            return;
        };
        if remote.due.is_some() {
            return;
        }
        match failure {
            Failure::Unsupported => {
                let at = now.saturating_add(self.config.unsupported_retry);
                self.reschedule(addr, at, true);
            }
            Failure::Timeout => {
                remote.failures = remote.failures.saturating_add(1);
                let failures = remote.failures;
                if failures >= self.config.max_failures {
                    self.nodes.remove(&addr);
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.forgotten = self.forgotten.saturating_add(1);
                } else {
                    let backoff = self
                        .config
                        .retry
                        .saturating_mul(1 << u32::from(failures.min(16) - 1));
                    self.reschedule(addr, now.saturating_add(backoff), false);
                }
            }
        }
    }

    /// Schedules an in-flight node again at `at`.
    fn reschedule(&mut self, addr: SocketAddr, at: Instant, answered: bool) {
        let in_flight = self.nodes.get(&addr).is_some_and(|r| r.due.is_none());
        if !in_flight {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        let due = Some(self.place(at, addr));
        if let Some(remote) = self.nodes.get_mut(&addr) {
            remote.due = due;
            if answered {
                remote.failures = 0;
            }
        }
    }

    /// When `addr` is due next, if it is remembered and not in flight.
    #[cfg(test)]
    pub(crate) fn due_of(&self, addr: &SocketAddr) -> Option<Instant> {
        self.nodes.get(addr).and_then(|r| r.due).map(|(t, _)| t)
    }
}
