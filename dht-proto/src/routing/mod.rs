//! The routing table: BEP 5 buckets split around the own id, one table per address family.
//!
//! # Shape
//!
//! The table is a list of buckets indexed by depth. Bucket `i` of a table with `n` buckets
//! holds the ids sharing exactly `i` leading bits with the own id (for `i < n - 1`); the last
//! bucket holds every id sharing at least `n - 1` bits, so it contains the own id's range. A new
//! table has one bucket covering the whole space. Only the last bucket ever splits (BEP 5: "when
//! our own node id falls within the range of the bucket"), at most down to 160 buckets.
//!
//! Bucket `i` holds [`TableConfig::bucket_size`] entries (k, 8 by default), or
//! [`TableConfig::far_bucket_size`] for the [`TableConfig::far_buckets`] farthest buckets, which
//! cover the largest ranges. Each bucket has a replacement cache of
//! [`TableConfig::replacement_cache_size`] contacts waiting for a free slot.
//!
//! # Who gets in
//!
//! - A node that answered one of our queries ([`RoutingTable::on_response`]) is verified. It
//!   takes a free slot, replaces a bad entry, splits the own bucket, or displaces an entry that
//!   never answered (that one moves to the replacement cache: BEP 5 gives known good nodes
//!   priority over nodes of unknown status). Otherwise it waits in the replacement cache, and if
//!   the bucket has a questionable entry the table asks for that entry to be pinged
//!   ([`InsertOutcome::PingFirst`]); an entry that then fails enough pings turns bad and the best
//!   waiting contact takes its slot.
//! - A node we only heard of ([`RoutingTable::add_candidate`]) or that only sent us a query
//!   ([`RoutingTable::on_query`]) is unverified. It takes a free slot or the slot of a bad entry,
//!   else waits in the replacement cache; it never displaces a live entry and never splits a
//!   bucket (so made-up ids near the own id cannot deepen the table). Contacts from our own
//!   saved list ([`RoutingTable::import`]) are unverified too but may split the own bucket, so
//!   the table takes its old shape back. The table asks for a verification ping to each
//!   unverified entry
//!   [`TableConfig::verify_after`] after it was added ([`RoutingTable::pings_due`]), unless an
//!   answer arrives first.
//! - The own id never enters; with [`TableConfig::one_node_per_ip`] an IP address has at most
//!   one entry, and in any case an address (IP and port) has at most one. A known id seen at
//!   another address keeps its old address unless the old entry is bad or never answered and the
//!   new address answered a query.
//!
//! # Memory
//!
//! At most 160 buckets of at most 64 entries plus 64 replacements each, and an address index
//! over the entries. With the defaults (k = 8, 8 replacements) a node in a network of ten
//! million holds about 22 buckets, ~170 entries and ~150 replacements of 96 bytes each, and an
//! index pair of 48 bytes per entry (a 24-byte address key and the id, in a sorted vector with
//! at most an eighth spare): some 40 KB.
//!
//! # Time
//!
//! Every input carries `now`. [`RoutingTable::pings_due`] and
//! [`RoutingTable::refresh_targets`] say what to send; [`RoutingTable::next_deadline`] says when
//! to ask again. The table never sends anything itself.

mod bucket;
mod entry;
mod index;
mod table;
#[cfg(test)]
mod tests;
mod view;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use rand_core::RngCore;

use crate::config::{AddressPolicy, Config, MAX_BUCKET_SIZE};
use crate::id::{ID_BITS, Id};
use crate::time::Instant;

use bucket::bucket_mut;
use index::AddrIndex;
use table::{fail_cached, take};

pub use bucket::Bucket;
pub use entry::{Entry, NodeStatus};
pub use view::RoutingTableView;

/// The routing-table part of [`Config`], so a [`RoutingTable`] can be built and tested alone.
///
/// Out-of-range values are clamped by [`RoutingTable::new`]: sizes to `1..=64` (the replacement
/// cache to `0..=64`, far buckets to at least `bucket_size`), `max_failures` and
/// `refreshes_at_once` to at least 1, `ping_timeout` and `refresh_stagger` to at least 1 ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableConfig {
    /// Entries per bucket, k (BEP 5: 8).
    pub bucket_size: usize,
    /// Entries in each of the `far_buckets` farthest buckets; equal to `bucket_size` disables
    /// the feature.
    pub far_bucket_size: usize,
    /// How many of the farthest buckets (depth `0..far_buckets`) get `far_bucket_size` entries.
    pub far_buckets: usize,
    /// Contacts waiting per bucket for a free slot; 0 disables replacement caches.
    pub replacement_cache_size: usize,
    /// At most one entry per IP address (and always at most one per IP and port).
    pub one_node_per_ip: bool,
    /// A good node not heard from for this long becomes questionable (BEP 5: 15 minutes).
    pub questionable_after: Duration,
    /// Unanswered queries in a row that make a verified node bad.
    pub max_failures: u8,
    /// A bucket unchanged for this long is due for a refresh (BEP 5: 15 minutes).
    pub refresh_interval: Duration,
    /// Most buckets [`RoutingTable::refresh_targets`] returns at once (at least 1); other due
    /// buckets wait, `refresh_stagger` apart per group of this many. A table whose buckets all
    /// came due together (a node back from sleep, a table filled in one go) would otherwise
    /// start a lookup for every bucket at the same instant.
    pub refreshes_at_once: usize,
    /// How far apart the groups of due buckets are refreshed (see `refreshes_at_once`).
    pub refresh_stagger: Duration,
    /// Which remote addresses may enter the table.
    pub address_policy: AddressPolicy,
    /// An unverified entry gets a verification ping this long after it was added, unless it
    /// answered a query meanwhile (a lookup usually contacts it first).
    pub verify_after: Duration,
    /// A ping the table asked for (of a questionable entry, or before replacing one) that is
    /// neither answered nor reported failed after this long may be asked for again.
    pub ping_timeout: Duration,
}

impl TableConfig {
    /// The table settings of a node configuration.
    ///
    /// `verify_after` and `ping_timeout` are twice [`Config::query_timeout`].
    pub fn from_config(c: &Config) -> Self {
        Self {
            bucket_size: c.bucket_size,
            far_bucket_size: c.far_bucket_size,
            far_buckets: c.far_buckets,
            replacement_cache_size: c.replacement_cache_size,
            one_node_per_ip: c.one_node_per_ip,
            questionable_after: c.questionable_after,
            max_failures: c.max_failures,
            refresh_interval: c.bucket_refresh_interval,
            refreshes_at_once: REFRESHES_AT_ONCE,
            refresh_stagger: REFRESH_STAGGER,
            address_policy: c.address_policy,
            verify_after: c.query_timeout.saturating_mul(2),
            ping_timeout: c.query_timeout.saturating_mul(2),
        }
    }

    /// Capacity of the bucket at `depth` (0 = farthest from the own id).
    pub fn bucket_capacity(&self, depth: usize) -> usize {
        if depth < self.far_buckets {
            self.far_bucket_size
        } else {
            self.bucket_size
        }
    }

    /// The same settings with every value in its supported range.
    fn normalized(mut self) -> Self {
        self.bucket_size = self.bucket_size.clamp(1, MAX_BUCKET_SIZE);
        self.far_bucket_size = self
            .far_bucket_size
            .clamp(self.bucket_size, MAX_BUCKET_SIZE);
        self.far_buckets = self.far_buckets.min(ID_BITS);
        self.replacement_cache_size = self.replacement_cache_size.min(MAX_BUCKET_SIZE);
        self.max_failures = self.max_failures.max(1);
        self.ping_timeout = self.ping_timeout.max(Duration::from_millis(1));
        self.refreshes_at_once = self.refreshes_at_once.max(1);
        self.refresh_stagger = self.refresh_stagger.max(Duration::from_millis(1));
        self
    }
}

/// Default of [`TableConfig::refreshes_at_once`].
pub const REFRESHES_AT_ONCE: usize = 2;
/// Default of [`TableConfig::refresh_stagger`].
pub const REFRESH_STAGGER: Duration = Duration::from_secs(5);

impl Default for TableConfig {
    /// The table settings of [`Config::new`].
    fn default() -> Self {
        // The seed plays no part in the table configuration.
        Self::from_config(&Config::new([0; 32]))
    }
}

/// What the table did with a contact.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsertOutcome {
    /// The contact got a slot in its bucket.
    Inserted,
    /// The node was already in the table; its record was updated (for
    /// [`RoutingTable::add_candidate`]: there was nothing to update).
    Updated,
    /// The contact waits in its bucket's replacement cache.
    Cached,
    /// The contact waits in the replacement cache of a full bucket that has a questionable
    /// entry: send that entry a ping and report the outcome with
    /// [`RoutingTable::on_response`] or [`RoutingTable::on_failure`]. If it fails often enough
    /// to turn bad, the best waiting contact takes its slot.
    PingFirst {
        /// Id of the entry to ping.
        id: Id,
        /// Address of the entry to ping.
        addr: SocketAddr,
    },
    /// The contact was not taken.
    Rejected(RejectReason),
}

/// Why the table refused a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The id is the table's own id.
    OwnId,
    /// The address is refused by [`TableConfig::address_policy`].
    AddressNotAllowed,
    /// The bucket and its replacement cache are full of contacts at least as good.
    BucketFull,
    /// Another id already uses this exact address (IP and port); the node probably changed
    /// its id. The old entry is kept until it turns bad.
    AddressInUse,
    /// Another id already uses this IP address and [`TableConfig::one_node_per_ip`] is set.
    IpInUse,
    /// The id is known at another address that is not bad.
    AddressMismatch,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OwnId => "the own id",
            Self::AddressNotAllowed => "address not allowed by the address policy",
            Self::BucketFull => "bucket and replacement cache full",
            Self::AddressInUse => "address used by another id",
            Self::IpInUse => "IP address used by another id",
            Self::AddressMismatch => "id known at another address",
        })
    }
}

/// A Kademlia routing table for one address family (BEP 5; one table each for IPv4 and IPv6,
/// BEP 32).
///
/// See the module documentation of `routing/mod.rs` for the rules.
///
/// ```
/// use core::time::Duration;
/// use dht_proto::internals::RoutingTable;
/// use dht_proto::{Id, Instant, TableConfig};
///
/// let now = Instant::ZERO;
/// let mut table = RoutingTable::new(Id::ZERO, TableConfig::default(), now);
/// let id = Id::MAX;
/// let addr = "203.0.113.7:6881".parse().unwrap();
/// table.on_response(now, id, addr, Duration::from_millis(40));
/// assert!(table.contains(&id));
///
/// let mut out = Vec::new();
/// table.closest(&Id::MAX, 8, &mut out);
/// assert_eq!(out, [(id, addr)]);
/// ```
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own_id: Id,
    config: TableConfig,
    /// Never empty; index = depth.
    buckets: Vec<Bucket>,
    /// Addresses of the entries (not of the replacement caches), for the per-address and per-IP
    /// rules.
    addrs: AddrIndex,
    len: usize,
    /// The minimum of the buckets' cached deadlines, kept up to date by every `&mut self`
    /// method, so [`next_deadline`](Self::next_deadline) does not walk the table.
    deadline: Instant,
    /// An entry left the table (its address and slot are free) since the last
    /// [`settle`](Self::settle).
    freed: bool,
}

/// An address as the table compares them: IP and port (IPv6 flow info and scope are ignored),
/// as integers, so that the address index compares keys with a few instructions rather than
/// through `IpAddr`'s variants. Ordered by family, then IP, then port: the addresses of one IP
/// are one range.
/// The IP is held as two `u64` halves rather than a `u128`, whose 16-byte alignment would
/// double the key's size (48 bytes instead of 24) in the index's nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct AddrKey {
    v6: bool,
    ip_hi: u64,
    ip_lo: u64,
    port: u16,
}

impl AddrKey {
    /// Whether both keys have the same IP address.
    pub(crate) fn same_ip(&self, other: &Self) -> bool {
        self.v6 == other.v6 && self.ip_hi == other.ip_hi && self.ip_lo == other.ip_lo
    }

    /// The first key of this key's IP (port 0): where its addresses start in key order.
    pub(crate) fn first_of_ip(&self) -> Self {
        Self { port: 0, ..*self }
    }
}

pub(crate) fn key(addr: &SocketAddr) -> AddrKey {
    let (v6, ip) = match addr.ip() {
        IpAddr::V4(ip) => (false, u128::from(u32::from(ip))),
        IpAddr::V6(ip) => (true, u128::from(ip)),
    };
    AddrKey {
        v6,
        ip_hi: (ip >> 64) as u64,
        ip_lo: ip as u64,
        port: addr.port(),
    }
}

/// What we learned about a node.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Observation {
    /// Somebody told us about it.
    Candidate,
    /// Our own saved contact list has it: like a candidate, but may split the own bucket.
    Import,
    /// It sent us a query.
    Query,
    /// It answered one of ours.
    Response(Duration),
}

impl RoutingTable {
    /// An empty table for the node `own_id`: one bucket covering the whole id space.
    pub fn new(own_id: Id, config: TableConfig, now: Instant) -> Self {
        let config = config.normalized();
        let mut first = Bucket::new(own_id, 0, config.bucket_capacity(0), now);
        first.touch(now, &config);
        let mut table = Self {
            own_id,
            config,
            buckets: alloc::vec![first],
            addrs: AddrIndex::default(),
            len: 0,
            deadline: now,
            freed: false,
        };
        table.sync_deadlines();
        table
    }

    /// Recomputes the deadline of every bucket changed since the last call, and their minimum:
    /// O(k) per changed bucket plus O(buckets).
    fn sync_deadlines(&mut self) {
        let config = &self.config;
        let mut next = Instant::MAX;
        for bucket in &mut self.buckets {
            if bucket.stale {
                bucket.deadline = bucket.compute_deadline(config);
                bucket.stale = false;
            }
            next = next.min(bucket.deadline);
        }
        self.deadline = next;
    }

    /// The id the table is organised around.
    pub fn own_id(&self) -> Id {
        self.own_id
    }

    /// The settings in use (after clamping).
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Number of entries, not counting replacement caches.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A node sent us a query.
    ///
    /// BEP 5 counts a query toward "good" only for a node that has answered one of ours at
    /// some point, so an unknown node enters as an unverified contact (see
    /// [`add_candidate`](Self::add_candidate)). A known entry has its query time updated
    /// ([`InsertOutcome::Updated`]).
    pub fn on_query(&mut self, now: Instant, id: Id, addr: SocketAddr) -> InsertOutcome {
        self.observe(now, id, addr, Observation::Query)
    }

    /// A node answered one of our queries after `rtt`.
    ///
    /// A known entry becomes good, its failures are forgotten and its bucket counts as changed.
    /// An unknown node is inserted by the rules in the [module documentation](self), possibly
    /// splitting buckets; [`InsertOutcome::PingFirst`] asks for a ping to a questionable entry.
    pub fn on_response(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        rtt: Duration,
    ) -> InsertOutcome {
        self.observe(now, id, addr, Observation::Response(rtt))
    }

    /// A query to `addr` went unanswered; `id` is the node's id if it was known when the query
    /// was sent.
    ///
    /// The entry at that address (or that id, if its address matches) counts one more failure;
    /// when it turns bad and a replacement is waiting, the replacement takes its slot, and an
    /// entry that never answered is dropped at once. A bad entry with nobody to replace it
    /// stays (an answer revives it) but is left out of [`closest`](Self::closest).
    pub fn on_failure(&mut self, now: Instant, id: Option<Id>, addr: SocketAddr) {
        self.fail(now, id, addr);
        self.sync_deadlines();
    }

    fn fail(&mut self, now: Instant, id: Option<Id>, addr: SocketAddr) {
        let id = match id {
            Some(id) => id,
            None => match self.addrs.get(&key(&addr)) {
                Some(id) => *id,
                None => {
                    self.fail_cached_address(&addr);
                    return;
                }
            },
        };
        let b = self.bucket_index(&id);
        let config = self.config;
        let Some(bucket) = bucket_mut(&mut self.buckets, b) else {
            return;
        };
        let Some(entry) = bucket.entries.iter_mut().find(|e| e.id == id) else {
            if let Some(pos) = bucket.cache_position(&id) {
                fail_cached(&mut bucket.cache, pos, &addr, &config);
            }
            return;
        };
        if key(&entry.addr) != key(&addr) {
            return;
        }
        entry.record_failure();
        let (bad, verified) = (entry.is_bad(&config), entry.is_verified());
        if bad && (!verified || self.best_promotable(b).is_some()) {
            self.take_entry(b, &id);
            self.settle(now);
        }
    }

    /// A contact we have not heard from ourselves: from the `nodes` of an answer, a bootstrap
    /// list or an import.
    ///
    /// It takes a free slot (or a bad entry's) as an unverified entry, or waits in the
    /// replacement cache; it never displaces a live entry and never splits a bucket.
    pub fn add_candidate(&mut self, now: Instant, id: Id, addr: SocketAddr) -> InsertOutcome {
        self.observe(now, id, addr, Observation::Candidate)
    }

    /// Removes the node from the table or its replacement cache; the best waiting replacement
    /// takes a freed slot. Returns whether the node was there.
    pub fn remove(&mut self, id: &Id) -> bool {
        let removed = self.take(id);
        self.sync_deadlines();
        removed
    }

    fn take(&mut self, id: &Id) -> bool {
        let b = self.bucket_index(id);
        if self.take_entry(b, id).is_some() {
            // Without a clock, a promotion counts as a change at the bucket's last change.
            let now = self
                .buckets
                .get(b)
                .map_or(Instant::ZERO, |b| b.last_changed);
            self.settle(now);
            return true;
        }
        let Some(bucket) = bucket_mut(&mut self.buckets, b) else {
            return false;
        };
        match bucket.cache_position(id) {
            Some(pos) => take(&mut bucket.cache, pos).is_some(),
            None => false,
        }
    }

    /// Whether the node is an entry of the table (replacement caches excluded).
    pub fn contains(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    /// The node's entry, if it is in the table (replacement caches excluded).
    pub fn get(&self, id: &Id) -> Option<&Entry> {
        let bucket = self.buckets.get(self.bucket_index(id))?;
        bucket.entries.iter().find(|e| e.id == *id)
    }

    /// The node's status at `now`, if it is in the table.
    pub fn status(&self, now: Instant, id: &Id) -> Option<NodeStatus> {
        self.get(id).map(|e| e.status(now, &self.config))
    }

    /// Writes into `out` (cleared first) the `n` entries nearest to `target` by XOR distance,
    /// nearest first, leaving out bad ones; fewer if the table has fewer.
    ///
    /// Ids are distinct, so the answer is unique. The walk visits buckets in order of distance
    /// to `target` and sorts only the buckets it needs: a few hundred nanoseconds for a full
    /// table and `n = 8`, without allocating once `out` has room.
    pub fn closest(&self, target: &Id, n: usize, out: &mut Vec<(Id, SocketAddr)>) {
        out.clear();
        let config = &self.config;
        self.walk_closest(
            target,
            n,
            |e| !e.is_bad(config),
            |e| out.push((e.id, e.addr)),
        );
    }

    /// Like [`closest`](Self::closest), but yields entries and keeps exactly those for which
    /// `filter` returns true (bad ones included if the filter accepts them).
    ///
    /// For example `|e| e.status(now, table.config()) == NodeStatus::Good` gives BEP 5's
    /// "closest good nodes".
    pub fn closest_entries<'a>(
        &'a self,
        target: &Id,
        n: usize,
        filter: impl FnMut(&Entry) -> bool,
        out: &mut Vec<&'a Entry>,
    ) {
        out.clear();
        self.walk_closest(target, n, filter, |e| out.push(e));
    }

    /// Every entry (replacement caches excluded), bucket by bucket from the farthest.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    /// The buckets, from the farthest (depth 0, the half of the space without the own id) to
    /// the one holding the own id's range. Their ranges are disjoint and cover the id space.
    pub fn buckets(&self) -> impl ExactSizeIterator<Item = &Bucket> + '_ {
        self.buckets.iter()
    }

    /// The bucket whose range contains `id`.
    pub fn bucket_of(&self, id: &Id) -> Option<&Bucket> {
        self.buckets.get(self.bucket_index(id))
    }

    /// Appends to `out` the pings the table wants sent now:
    ///
    /// - a verification ping to each unverified entry added at least
    ///   [`verify_after`](TableConfig::verify_after) ago;
    /// - in each full bucket with contacts waiting in its replacement cache, one ping at a time
    ///   to a questionable entry, unverified ones first, then the least recently seen (BEP 5).
    ///
    /// Each ping is asked for once until it is answered ([`on_response`](Self::on_response)),
    /// reported failed ([`on_failure`](Self::on_failure)) or
    /// [`ping_timeout`](TableConfig::ping_timeout) passes.
    ///
    /// Only the buckets whose deadline (see [`next_deadline`](Self::next_deadline)) has come
    /// are looked at, so a call costs O(buckets) plus the due buckets' entries.
    pub fn pings_due(&mut self, now: Instant, out: &mut Vec<(Id, SocketAddr)>) {
        if self.deadline > now {
            return;
        }
        let config = self.config;
        for bucket in &mut self.buckets {
            if bucket.deadline > now {
                continue;
            }
            bucket.stale = true;
            for entry in &mut bucket.entries {
                if entry.ping_sent().is_some() && !entry.ping_pending(now, &config) {
                    entry.set_ping_sent(None);
                }
                let verify_at = entry.added.saturating_add(config.verify_after);
                if !entry.is_verified()
                    && entry.failures == 0
                    && entry.ping_sent().is_none()
                    && now >= verify_at
                {
                    entry.set_ping_sent(Some(now));
                    out.push((entry.id, entry.addr));
                }
            }
            if bucket.wants_verification() && !bucket.has_pending_ping(now, &config) {
                let pos = bucket.ping_candidate(now, &config);
                if let Some(entry) = pos.and_then(|p| bucket.entries.get_mut(p)) {
                    entry.set_ping_sent(Some(now));
                    out.push((entry.id, entry.addr));
                }
            }
        }
        self.sync_deadlines();
    }

    /// Appends to `out` a random target inside the range of each bucket that has not changed
    /// for [`refresh_interval`](TableConfig::refresh_interval) (BEP 5: look it up with
    /// `find_node`).
    ///
    /// A bucket returned here is not returned again until another interval passes; a change
    /// (an answer from an entry, a new entry) postpones its refresh by an interval as well.
    /// At most [`refreshes_at_once`](TableConfig::refreshes_at_once) buckets are returned per
    /// call, those due longest first (the farthest first among equals); the others are put off
    /// by [`refresh_stagger`](TableConfig::refresh_stagger) per group of that many, so a table
    /// whose buckets all came due together refreshes a few at a time.
    pub fn refresh_targets(&mut self, now: Instant, rng: &mut impl RngCore, out: &mut Vec<Id>) {
        if self.deadline > now {
            return;
        }
        let interval = self.config.refresh_interval;
        let at_once = self.config.refreshes_at_once.max(1);
        let stagger = self.config.refresh_stagger;
        // Due buckets, longest due first: (due since, index). At most one per bucket.
        let mut due: Vec<(Instant, usize)> = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| now >= b.next_refresh)
            .map(|(i, b)| (b.next_refresh, i))
            .collect();
        due.sort_unstable();
        for (rank, (_, i)) in due.into_iter().enumerate() {
            let Some(bucket) = self.buckets.get_mut(i) else {
                continue;
            };
            bucket.stale = true;
            let group = u32::try_from(rank / at_once).unwrap_or(u32::MAX);
            if group == 0 {
                out.push(Id::random_with_prefix(
                    &bucket.prefix,
                    bucket.prefix_len,
                    rng,
                ));
                bucket.next_refresh = now.saturating_add(interval);
            } else {
                bucket.next_refresh = now.saturating_add(stagger.saturating_mul(group));
            }
        }
        self.sync_deadlines();
    }

    /// The earliest instant at which [`pings_due`](Self::pings_due) or
    /// [`refresh_targets`](Self::refresh_targets) could have something new; `None` if never.
    ///
    /// Right after calling both with `now`, the deadline is later than `now`. Something that
    /// changes the table (an insert, a failure) can make it earlier, even past.
    ///
    /// Each bucket's deadline is cached and recomputed only when the bucket changes, so this
    /// is O(1): a driver may call it after every input.
    pub fn next_deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    /// The contacts worth saving for the next start: entries and verified replacements, bad
    /// ones left out, those that answered most recently first and those that never answered
    /// last (so the good entries come first).
    pub fn export(&self) -> Vec<(Id, SocketAddr)> {
        let config = &self.config;
        let mut all: Vec<&Entry> = self
            .buckets
            .iter()
            .flat_map(|b| {
                let cached = b.cache.iter().filter(|e| e.is_verified());
                b.entries.iter().chain(cached)
            })
            .filter(|e| !e.is_bad(config))
            .collect();
        all.sort_by(|a, b| {
            let (ka, kb) = (a.last_response(), b.last_response());
            // Newest answer first, then never-answered ones; ties by id for determinism.
            kb.cmp(&ka).then_with(|| a.id.cmp(&b.id))
        });
        all.into_iter().map(|e| (e.id, e.addr)).collect()
    }

    /// Adds contacts saved by [`export`](Self::export) as unverified entries; returns how many
    /// were taken into the table or a replacement cache.
    ///
    /// Like [`add_candidate`](Self::add_candidate) they never displace a live entry and get a
    /// verification ping, but they may split the own bucket, so a fresh table takes its old
    /// shape back.
    pub fn import(
        &mut self,
        now: Instant,
        nodes: impl IntoIterator<Item = (Id, SocketAddr)>,
    ) -> usize {
        let mut taken = 0;
        for (id, addr) in nodes {
            if matches!(
                self.observe(now, id, addr, Observation::Import),
                InsertOutcome::Inserted | InsertOutcome::Cached
            ) {
                taken += 1;
            }
        }
        taken
    }

    /// Checks the table's structural invariants: bucket ranges disjoint and covering the id
    /// space, every entry in the bucket covering it, sizes within capacities, no duplicate id,
    /// no own id, one entry per address (per IP when configured), the address index, length and
    /// cached deadlines in sync, and no free slot left while a usable replacement waits.
    ///
    /// For tests, fuzzing and simulations; linear in the table size.
    ///
    /// # Errors
    ///
    /// A description of the first violated invariant.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let last = self.buckets.len().checked_sub(1).ok_or("no bucket")?;
        let mut count = 0;
        let mut seen: BTreeMap<Id, ()> = BTreeMap::new();
        let mut addrs: BTreeMap<AddrKey, Id> = BTreeMap::new();
        for (depth, bucket) in self.buckets.iter().enumerate() {
            let expected = if depth == last {
                (self.own_id, last)
            } else {
                (
                    self.own_id.with_bit(depth, !self.own_id.bit(depth)),
                    depth + 1,
                )
            };
            if bucket.prefix_len != expected.1
                || bucket.prefix.common_prefix_len(&expected.0) < expected.1
            {
                return Err("bucket range is not the one of its depth");
            }
            if bucket.cap != self.config.bucket_capacity(depth) || bucket.entries.len() > bucket.cap
            {
                return Err("bucket over capacity");
            }
            if bucket.cache.len() > self.config.replacement_cache_size {
                return Err("replacement cache over capacity");
            }
            for entry in bucket.entries.iter().chain(bucket.cache.iter()) {
                if entry.id == self.own_id {
                    return Err("own id in the table");
                }
                if !bucket.covers(&entry.id) || self.bucket_index(&entry.id) != depth {
                    return Err("entry outside its bucket's range");
                }
                if seen.insert(entry.id, ()).is_some() {
                    return Err("duplicate id");
                }
            }
            for entry in &bucket.entries {
                count += 1;
                if addrs.insert(key(&entry.addr), entry.id).is_some() {
                    return Err("two entries with one address");
                }
            }
            if bucket.entries.len() < bucket.cap && self.best_promotable(depth).is_some() {
                return Err("free slot while a usable replacement waits");
            }
        }
        if count != self.len {
            return Err("length out of sync");
        }
        let mut next = Instant::MAX;
        for bucket in &self.buckets {
            if bucket.stale || bucket.deadline != bucket.compute_deadline(&self.config) {
                return Err("cached bucket deadline out of date");
            }
            next = next.min(bucket.deadline);
        }
        if next != self.deadline {
            return Err("cached table deadline out of date");
        }
        if !addrs
            .iter()
            .map(|(k, id)| (*k, *id))
            .eq(self.addrs.iter().copied())
        {
            return Err("address index out of sync");
        }
        if self.config.one_node_per_ip {
            let mut ips: BTreeMap<AddrKey, ()> = BTreeMap::new();
            if addrs
                .keys()
                .any(|k| ips.insert(k.first_of_ip(), ()).is_some())
            {
                return Err("two entries with one IP address");
            }
        }
        Ok(())
    }
}
