//! One contact of the routing table and its BEP 5 status.

use core::net::SocketAddr;
use core::time::Duration;

use crate::id::Id;
use crate::time::Instant;

use super::TableConfig;

/// The BEP 5 status of a contact at a given instant.
///
/// It is computed from the contact's timestamps and failure count every time it is asked for,
/// never stored, so it cannot go stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeStatus {
    /// The node answered one of our queries within the last
    /// [`questionable_after`](TableConfig::questionable_after), or it has answered at some point
    /// and sent us a query within that time.
    Good,
    /// Neither good nor bad: silent for `questionable_after`, or never heard answering.
    Questionable,
    /// The node failed [`max_failures`](TableConfig::max_failures) queries in a row, or failed
    /// one without ever having answered.
    Bad,
}

/// A contact in the routing table (or in a bucket's replacement cache).
///
/// An entry is a record of what we observed: when the node was added, when it last answered
/// one of our queries and last sent us one, how many of our queries in a row it left
/// unanswered, and its smoothed round-trip time. [`Entry::status`] turns that into BEP 5's
/// good / questionable / bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub(crate) id: Id,
    pub(crate) addr: SocketAddr,
    pub(crate) added: Instant,
    last_response: Stamp,
    last_query: Stamp,
    /// When the table last asked for a ping to this node that is not yet answered or failed.
    ping_sent: Stamp,
    /// Smoothed round trip in microseconds, [`NO_RTT`] before the first answer.
    rtt_micros: u32,
    pub(crate) failures: u8,
}

/// An optional instant in 8 bytes (`Option<Instant>` takes 16): a table holds hundreds of
/// entries per node, so their size is most of a node's memory. [`Instant::MAX`] is "none"; an
/// event recorded at that very instant is kept as one millisecond earlier.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp(Instant);

impl Stamp {
    const NONE: Self = Self(Instant::MAX);

    fn get(self) -> Option<Instant> {
        (self.0 != Instant::MAX).then_some(self.0)
    }

    fn at(t: Instant) -> Self {
        if t == Instant::MAX {
            Self(Instant::from_millis(u64::MAX - 1))
        } else {
            Self(t)
        }
    }
}

impl core::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.get().fmt(f)
    }
}

/// [`Entry::rtt_micros`] before the first answer.
const NO_RTT: u32 = u32::MAX;

impl Entry {
    /// A contact we have not heard from yet.
    pub(crate) fn new(id: Id, addr: SocketAddr, now: Instant) -> Self {
        Self {
            id,
            addr,
            added: now,
            last_response: Stamp::NONE,
            last_query: Stamp::NONE,
            ping_sent: Stamp::NONE,
            rtt_micros: NO_RTT,
            failures: 0,
        }
    }

    /// The node's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The node's UDP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When the contact entered the table (or its replacement cache).
    pub fn added(&self) -> Instant {
        self.added
    }

    /// When the node last answered one of our queries, if ever.
    pub fn last_response(&self) -> Option<Instant> {
        self.last_response.get()
    }

    /// When the node last sent us a query, if ever.
    pub fn last_query(&self) -> Option<Instant> {
        self.last_query.get()
    }

    /// When the table asked for a ping to this node that is not yet answered or failed.
    pub(crate) fn ping_sent(&self) -> Option<Instant> {
        self.ping_sent.get()
    }

    /// Records that the table asked for a ping (`Some`) or forgets it (`None`).
    pub(crate) fn set_ping_sent(&mut self, at: Option<Instant>) {
        self.ping_sent = at.map_or(Stamp::NONE, Stamp::at);
    }

    /// Our queries in a row the node left unanswered (reset by an answer).
    pub fn failures(&self) -> u8 {
        self.failures
    }

    /// Smoothed round-trip time of the node's answers (an exponential moving average with
    /// weight 1/8 for each new sample), `None` before its first answer.
    /// Kept in whole microseconds (at most 71 minutes).
    pub fn rtt(&self) -> Option<Duration> {
        (self.rtt_micros != NO_RTT).then(|| Duration::from_micros(u64::from(self.rtt_micros)))
    }

    /// Whether the node has ever answered one of our queries.
    ///
    /// Contacts learned from other nodes, from an import or from their queries are unverified
    /// until they answer.
    #[inline]
    pub fn is_verified(&self) -> bool {
        self.last_response != Stamp::NONE
    }

    /// The latest time we heard from the node (answer or query), or when it was added if we
    /// never did.
    pub fn last_seen(&self) -> Instant {
        let heard = match (self.last_response(), self.last_query()) {
            (Some(r), Some(q)) => Some(r.max(q)),
            (r, q) => r.or(q),
        };
        heard.unwrap_or(self.added)
    }

    /// The node's BEP 5 status at `now` under `config`.
    ///
    /// - bad: it failed `max_failures` of our queries in a row, or it never answered and failed
    ///   one (a contact nobody has vouched for gets no second chance);
    /// - good: it answered one of our queries less than `questionable_after` ago, or it has
    ///   answered one at some point and sent us a query less than `questionable_after` ago;
    /// - questionable: anything else.
    ///
    /// Times in the future (a clock that went backwards) count as "just now".
    pub fn status(&self, now: Instant, config: &TableConfig) -> NodeStatus {
        if self.is_bad(config) {
            return NodeStatus::Bad;
        }
        match self.questionable_at(config) {
            Some(at) if now < at => NodeStatus::Good,
            _ => NodeStatus::Questionable,
        }
    }

    /// Whether the node is bad. Unlike good and questionable, badness does not depend on time.
    #[inline]
    pub fn is_bad(&self, config: &TableConfig) -> bool {
        self.failures >= config.max_failures.max(1) || (!self.is_verified() && self.failures > 0)
    }

    /// When a good node turns questionable if nothing more is heard from it; `None` for a
    /// node that never answered (it is never good).
    pub(crate) fn questionable_at(&self, config: &TableConfig) -> Option<Instant> {
        let response = self.last_response()?;
        let latest = match self.last_query() {
            Some(q) => response.max(q),
            None => response,
        };
        Some(latest.saturating_add(config.questionable_after))
    }

    /// Records an answer to one of our queries.
    pub(crate) fn record_response(&mut self, now: Instant, rtt: Duration) {
        self.last_response = Stamp::at(later(self.last_response(), now));
        self.failures = 0;
        self.ping_sent = Stamp::NONE;
        let rtt = match self.rtt() {
            // 7/8 of the old estimate plus 1/8 of the sample, in saturating arithmetic.
            Some(old) => (old.saturating_mul(7).saturating_add(rtt)) / 8,
            None => rtt,
        };
        self.rtt_micros =
            u32::try_from(rtt.as_micros()).map_or(NO_RTT - 1, |us| us.min(NO_RTT - 1));
    }

    /// Records a query the node sent us.
    pub(crate) fn record_query(&mut self, now: Instant) {
        self.last_query = Stamp::at(later(self.last_query(), now));
    }

    /// Records a query of ours the node left unanswered.
    pub(crate) fn record_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.ping_sent = Stamp::NONE;
    }

    /// Whether a ping the table asked for is still outstanding at `now`.
    pub(crate) fn ping_pending(&self, now: Instant, config: &TableConfig) -> bool {
        match self.ping_sent() {
            Some(sent) => now < sent.saturating_add(config.ping_timeout),
            None => false,
        }
    }

    /// Preference order for keeping a contact: not bad, then verified, then heard from more
    /// recently. The greatest rank is the best contact.
    pub(crate) fn rank(&self, config: &TableConfig) -> (bool, bool, Instant) {
        (!self.is_bad(config), self.is_verified(), self.last_seen())
    }
}

/// The later of a previous timestamp and `now`: a clock going backwards never moves a record
/// into the past.
fn later(previous: Option<Instant>, now: Instant) -> Instant {
    match previous {
        Some(p) => p.max(now),
        None => now,
    }
}
