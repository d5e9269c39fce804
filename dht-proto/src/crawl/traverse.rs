//! The BEP 51 traversal's memory of remote nodes: when each may be sampled again, in a bounded
//! table, and which is due next.
//!
//! Every node the crawler hears of (from the `nodes` of sample answers, its own routing tables
//! and the sources of incoming queries) gets an entry, due at once. When a node answers, its
//! next visit is due after its BEP 51 `interval` (never earlier: the node asked for that
//! pause), and its `num` sets what the visit is worth, which decides who goes first when more
//! nodes are due than the budget can ask:
//!
//! - *rich* nodes, holding more info-hashes than one answer carried (each answer is a fresh
//!   random sample, so a revisit shows more), and nodes never asked: first;
//! - nodes that showed all they hold: only new arrivals are left to see: second;
//! - nodes that hold nothing, or have no BEP 51: last.
//!
//! The classes share the requests 4 : 3 : 1 rather than strictly, so that no class starves
//! (a node empty an hour ago may hold new info-hashes now). With budget to spare every node is
//! asked as soon as its interval allows. Nodes that do not answer are retried with back-off
//! and forgotten after [`TraverseConfig::max_failures`]; nodes without BEP 51 are asked again
//! only after [`TraverseConfig::unsupported_retry`].

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
            retry: Duration::from_secs(60),
            max_failures: 2,
            unsupported_retry: Duration::from_secs(3600),
        }
    }
}

/// What a visit to a node is worth (see the module docs): an index into the schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Worth {
    /// More to see, or never asked.
    Rich = 0,
    /// New arrivals only.
    Seen = 1,
    /// Nothing held, or no BEP 51.
    Empty = 2,
}

/// Which class each of 8 consecutive requests prefers: 4 : 3 : 1.
const TURNS: [usize; 8] = [0, 1, 0, 1, 0, 2, 0, 1];

/// A node's place in the schedules: class, due time, serial.
type Slot = (usize, Instant, u64);

/// One remote node.
#[derive(Clone, Copy, Debug)]
struct Remote {
    id: Id,
    /// Its place in the schedules, `None` while a request to it is in flight.
    due: Option<Slot>,
    /// Failures in a row.
    failures: u8,
    /// Whether it has answered with samples.
    answered: bool,
}

/// What a `sample_infohashes` answer said, for [`Traverse::on_answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Samples it carried.
    pub(crate) samples: usize,
    /// Its `num`.
    pub(crate) num: Option<i64>,
    /// Its `interval`, in seconds.
    pub(crate) interval: Option<i64>,
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
    /// Per [`Worth`]: due time, a tie-breaking serial, the address; the first is due next.
    schedules: [BTreeSet<(Instant, u64, SocketAddr)>; 3],
    serial: u64,
    turn: usize,
    in_flight: usize,
    /// Nodes ignored because the table was full.
    pub(crate) dropped: u64,
    /// Nodes forgotten after failing.
    pub(crate) forgotten: u64,
}

impl Traverse {
    pub(crate) fn new(mut config: TraverseConfig, key: [u8; 16]) -> Self {
        config.max_failures = config.max_failures.max(1);
        Self {
            config,
            nodes: HashMap::with_hasher(KeyedState::new(key)),
            schedules: [BTreeSet::new(), BTreeSet::new(), BTreeSet::new()],
            serial: 0,
            turn: 0,
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

    fn place(&mut self, worth: Worth, at: Instant, addr: SocketAddr) -> Slot {
        self.serial = self.serial.wrapping_add(1);
        let class = worth as usize;
        if let Some(schedule) = self.schedules.get_mut(class) {
            schedule.insert((at, self.serial, addr));
        }
        (class, at, self.serial)
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
        let due = Some(self.place(Worth::Rich, now, addr));
        self.nodes.insert(
            addr,
            Remote {
                id,
                due,
                failures: 0,
                answered: false,
            },
        );
        true
    }

    /// When the next node is due, if any (whether or not a request may go now).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.schedules
            .iter()
            .filter_map(|s| s.first().map(|(t, _, _)| *t))
            .min()
    }

    /// Takes a node due at `now`, if a request may go ([`TraverseConfig::max_in_flight`]):
    /// the first due of the class whose turn it is, else of the most valuable class with one
    /// due. It is in flight until [`Traverse::on_answer`] or [`Traverse::on_failure`].
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<(SocketAddr, Id)> {
        if self.in_flight >= self.config.max_in_flight {
            return None;
        }
        let preferred = TURNS.get(self.turn % TURNS.len()).copied().unwrap_or(0);
        let is_due =
            |s: &BTreeSet<(Instant, u64, SocketAddr)>| s.first().is_some_and(|(t, _, _)| *t <= now);
        let class = core::iter::once(preferred)
            .chain(0..self.schedules.len())
            .find(|&c| self.schedules.get(c).is_some_and(is_due))?;
        self.turn = self.turn.wrapping_add(1);
        let (_, _, addr) = self.schedules.get_mut(class)?.pop_first()?;
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
            let due = Some(self.place(Worth::Rich, at, addr));
            if let Some(remote) = self.nodes.get_mut(&addr) {
                remote.due = due;
            }
        }
    }

    /// When an answer lets us come back, and what coming back is worth: its `interval` (or
    /// the default) within the bounds, and its `num` against the samples it carried.
    pub(crate) fn pause(
        &self,
        samples: usize,
        num: Option<i64>,
        interval: Option<i64>,
    ) -> (Duration, Worth) {
        let c = &self.config;
        let interval = match interval {
            Some(secs) => Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
            None => c.default_interval,
        }
        .min(c.max_interval);
        // A revisit needs at least a second, whatever the node says.
        let interval = interval.max(Duration::from_secs(1));
        let samples = i64::try_from(samples).unwrap_or(i64::MAX);
        let worth = match num {
            Some(n) if n > samples => Worth::Rich,
            Some(n) if n <= 0 && samples == 0 => Worth::Empty,
            None if samples == 0 => Worth::Empty,
            // No `num` with samples: assume the answer showed everything.
            _ => Worth::Seen,
        };
        (interval, worth)
    }

    /// A node answered with samples: due again after [`Traverse::pause`]. After its first
    /// answer the pause is stretched by a random share of it (`spread`, in millionths), so
    /// that nodes first asked together are not all due together ever after: the revisits
    /// spread evenly over the interval, and a new info-hash waits for the next visit of one
    /// of the nodes that store it, not for the next wave.
    pub(crate) fn on_answer(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        answer: Answer,
        spread: u32,
    ) {
        let (mut pause, worth) = self.pause(answer.samples, answer.num, answer.interval);
        if let Some(remote) = self.nodes.get_mut(&addr) {
            if !remote.answered {
                remote.answered = true;
                let share = u64::from(spread % 1_000_000);
                let millis = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
                pause += Duration::from_millis(millis.saturating_mul(share) / 1_000_000);
            }
        }
        self.reschedule(addr, worth, now.saturating_add(pause), true);
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
                self.reschedule(addr, Worth::Empty, at, true);
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
                    self.reschedule(addr, Worth::Seen, now.saturating_add(backoff), false);
                }
            }
        }
    }

    /// Schedules an in-flight node again at `at`.
    fn reschedule(&mut self, addr: SocketAddr, worth: Worth, at: Instant, answered: bool) {
        let in_flight = self.nodes.get(&addr).is_some_and(|r| r.due.is_none());
        if !in_flight {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        let due = Some(self.place(worth, at, addr));
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
        self.nodes.get(addr).and_then(|r| r.due).map(|(_, t, _)| t)
    }

    /// The class `addr` is scheduled in, if it is remembered and not in flight.
    #[cfg(test)]
    pub(crate) fn worth_of(&self, addr: &SocketAddr) -> Option<usize> {
        self.nodes.get(addr).and_then(|r| r.due).map(|(c, _, _)| c)
    }
}
