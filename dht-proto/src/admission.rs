//! Per-source admission and reflection accounting: what a node owes to strangers.
//!
//! # Sources
//!
//! A source is an IPv4 address or an IPv6 /64 (one host or one customer network).
//! [`Sources`] keeps, per source,
//!
//! - a **query budget**: a token bucket of [`RateLimit::burst`] queries refilled at
//!   [`RateLimit::per_second`]; a query that finds the bucket empty is refused and blocks the
//!   source for [`RateLimit::block`] (libtorrent: 5 queries/s averaged over 10 s, then 5
//!   minutes);
//! - **reflection windows**: bytes received from it and bytes sent to it, over a sliding
//!   10-second window. Toward a source that never completed a round trip with us (it never
//!   answered one of our queries and never presented a valid token), bytes out stay within the
//!   larger of `ratio ×` bytes in and a small per-destination burst: one query is answered in
//!   full, a spoofed flood is not amplified;
//! - whether it is **verified** (completed a round trip).
//!
//! # The table cannot be flushed
//!
//! The table holds at most `cap` sources; memory grows with the sources actually seen (about
//! 100 bytes each) and shrinks again as they go quiet: a source idle for
//! [`FORGET_UNVERIFIED`] (or [`FORGET_VERIFIED`] once it completed a round trip) whose state is
//! again that of a fresh entry (not blocked, budget refilled, nothing in its windows) is
//! forgotten by a sweep at most every [`SWEEP_EVERY`], made when a new source arrives. Without
//! it every source ever seen would stay until the cap: a node that had talked to 4,096
//! addresses once would keep 400 KB for them forever. A new source when it is full replaces the sampled entry that is closest to
//! a fresh one: idle, its budget refilled, nothing sent to it lately, unverified. A source
//! that floods now (its bucket drained or blocked, or a reflection victim with its window full)
//! is kept over any of those, so a flood of spoofed one-shot sources only replaces other
//! one-shot sources. Sampling uses the node's generator and the map is keyed by the seed, so
//! an attacker can neither predict which entry goes nor aim collisions.

use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

use hashbrown::HashMap;
use rand_core::RngCore;

use crate::config::RateLimit;
use crate::rng::{ChoiceRng, KeyedState, below};
use crate::time::Instant;

/// Length of the reflection window.
pub(crate) const REFLECTION_WINDOW: Duration = Duration::from_secs(10);
/// An unverified source idle this long, and otherwise like a fresh entry, is forgotten.
pub(crate) const FORGET_UNVERIFIED: Duration = Duration::from_secs(20);
/// A verified source idle this long, and otherwise like a fresh entry, is forgotten (and must
/// complete a round trip again). The routing table's own "questionable" age.
pub(crate) const FORGET_VERIFIED: Duration = Duration::from_secs(15 * 60);
/// Shortest time between two sweeps for forgettable sources.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Entries compared when the table is full and one must go.
const EVICTION_SAMPLE: usize = 8;
/// Milli-units per token: buckets count in thousandths so that refills are exact.
const MILLI: u64 = 1000;

/// A source key: the IPv4 address, or the first 64 bits of an IPv6 address, tagged by family.
/// IPv4-mapped IPv6 addresses are IPv4.
pub(crate) fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (1u128 << 64) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (1u128 << 64) | u128::from(u32::from(v4)),
            None => (2u128 << 64) | (u128::from(v6) >> 64),
        },
    }
}

/// A token bucket in thousandths of a token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    milli: u64,
    last: Instant,
}

impl Bucket {
    /// A full bucket of `burst` tokens.
    pub(crate) fn full(burst: u64, now: Instant) -> Self {
        Self {
            milli: burst.saturating_mul(MILLI),
            last: now,
        }
    }

    /// Adds what `per_second` earned since the last refill, up to `burst` tokens.
    pub(crate) fn refill(&mut self, now: Instant, per_second: u64, burst: u64) {
        let elapsed = now.as_millis().saturating_sub(self.last.as_millis());
        // Tokens per second × milliseconds = thousandths of a token.
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(per_second))
            .min(burst.saturating_mul(MILLI));
        if now > self.last {
            self.last = now;
        }
    }

    /// Takes `tokens` if the bucket holds them.
    pub(crate) fn take(&mut self, tokens: u64) -> bool {
        let cost = tokens.saturating_mul(MILLI);
        if self.milli >= cost {
            self.milli -= cost;
            true
        } else {
            false
        }
    }

    /// Whole tokens in the bucket.
    pub(crate) fn tokens(&self) -> u64 {
        self.milli / MILLI
    }

    /// Thousandths of a token missing to `burst`.
    fn deficit(&self, burst: u64) -> u64 {
        burst.saturating_mul(MILLI).saturating_sub(self.milli)
    }
}

/// What [`Sources::admit`] decided about a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Within budget.
    Yes,
    /// Over budget now: refused, and the source is blocked.
    OverBudget,
    /// Refused: the source is blocked.
    Blocked,
}

/// Bytes in and out over the current and the previous window.
#[derive(Clone, Copy, Debug, Default)]
struct Windows {
    start: Instant,
    in_cur: u64,
    in_prev: u64,
    out_cur: u64,
    out_prev: u64,
}

impl Windows {
    fn roll(&mut self, now: Instant) {
        let w = REFLECTION_WINDOW;
        if now >= self.start.saturating_add(w.saturating_mul(2)) {
            *self = Self {
                start: now,
                ..Self::default()
            };
        } else if now >= self.start.saturating_add(w) {
            self.in_prev = self.in_cur;
            self.out_prev = self.out_cur;
            self.in_cur = 0;
            self.out_cur = 0;
            self.start = self.start.saturating_add(w);
        }
    }

    /// (bytes in, bytes out) over the last window: the current one plus the part of the
    /// previous one it still overlaps.
    fn estimate(&self, now: Instant) -> (u64, u64) {
        let w = u64::try_from(REFLECTION_WINDOW.as_millis()).unwrap_or(u64::MAX);
        let into = now
            .as_millis()
            .saturating_sub(self.start.as_millis())
            .min(w);
        let weight = w - into;
        let part = |prev: u64| prev.saturating_mul(weight) / w.max(1);
        (
            self.in_cur.saturating_add(part(self.in_prev)),
            self.out_cur.saturating_add(part(self.out_prev)),
        )
    }
}

/// One source's state: about 100 bytes.
#[derive(Clone, Copy, Debug)]
struct Source {
    key: u128,
    /// Its last query or round trip.
    seen: Instant,
    bucket: Bucket,
    blocked_until: Instant,
    windows: Windows,
    verified: bool,
}

/// How [`Sources`] treats strangers (from [`Limits`](crate::Limits)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub(crate) cap: usize,
    pub(crate) rate: Option<RateLimit>,
    pub(crate) ratio: u64,
    pub(crate) burst_bytes: u64,
}

/// The bounded per-source table (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct Sources {
    entries: Vec<Source>,
    index: HashMap<u128, usize, KeyedState>,
    /// Where the last source looked up is: a query's admission, its reply's reflection check
    /// and the bytes sent all look up the same source, and only the first pays for hashing.
    last: usize,
    policy: Policy,
    /// The earliest instant of the next sweep for forgettable sources.
    next_sweep: Instant,
}

impl Sources {
    pub(crate) fn new(policy: Policy, hasher_key: [u8; 16]) -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::with_hasher(KeyedState::new(hasher_key)),
            last: 0,
            policy,
            next_sweep: Instant::ZERO,
        }
    }

    /// Sources tracked now.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Approximate heap bytes held.
    #[cfg(test)]
    pub(crate) fn memory_usage(&self) -> usize {
        self.entries
            .capacity()
            .saturating_mul(size_of::<Source>())
            .saturating_add(
                self.index
                    .capacity()
                    .saturating_mul(size_of::<(u128, usize)>() + 1),
            )
    }

    /// Charges a query of `len` bytes from `ip` to its budget.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        ip: IpAddr,
        len: usize,
        rng: &mut impl RngCore,
    ) -> Admit {
        let policy = self.policy;
        let Some(s) = self.entry(now, ip, rng) else {
            return Admit::Yes;
        };
        s.windows.roll(now);
        s.windows.in_cur = s.windows.in_cur.saturating_add(len as u64);
        let Some(rate) = policy.rate else {
            return Admit::Yes;
        };
        if s.blocked_until > now {
            return Admit::Blocked;
        }
        s.bucket
            .refill(now, u64::from(rate.per_second), u64::from(rate.burst));
        if s.bucket.take(1) {
            Admit::Yes
        } else {
            s.blocked_until = now.saturating_add(rate.block);
            Admit::OverBudget
        }
    }

    /// `ip` completed a round trip: it answered our query or presented a valid token.
    pub(crate) fn verify(&mut self, now: Instant, ip: IpAddr, rng: &mut impl RngCore) {
        if let Some(s) = self.entry(now, ip, rng) {
            s.verified = true;
        }
    }

    /// Bytes we may still send to `ip` now under the reflection rule (`u64::MAX` when it is
    /// verified).
    #[cfg(test)]
    pub(crate) fn allowance(&mut self, now: Instant, ip: IpAddr) -> u64 {
        let slot = self.slot(ip);
        self.allowance_at(now, slot)
    }

    /// Records `len` bytes sent to `ip` (no entry is made for a source not tracked).
    #[cfg(test)]
    pub(crate) fn note_sent(&mut self, now: Instant, ip: IpAddr, len: usize) {
        let slot = self.slot(ip);
        self.note_sent_at(now, slot, len);
    }

    /// The slot of the entry of `ip`, `None` when it is not tracked: looked up once for both
    /// [`Sources::allowance_at`] and [`Sources::note_sent_at`] of a reply.
    pub(crate) fn slot(&mut self, ip: IpAddr) -> Option<usize> {
        self.find(source_key(ip))
    }

    /// Bytes we may still send now under the reflection rule to the source in `slot` (from
    /// [`Sources::slot`], with no entry added or evicted since); `u64::MAX` when it is
    /// verified.
    pub(crate) fn allowance_at(&mut self, now: Instant, slot: Option<usize>) -> u64 {
        let policy = self.policy;
        let Some(s) = slot.and_then(|i| self.entries.get_mut(i)) else {
            return policy.burst_bytes;
        };
        if s.verified {
            return u64::MAX;
        }
        s.windows.roll(now);
        let (bytes_in, bytes_out) = s.windows.estimate(now);
        bytes_in
            .saturating_mul(policy.ratio)
            .max(policy.burst_bytes)
            .saturating_sub(bytes_out)
    }

    /// Records `len` bytes sent to the source in `slot` (as for [`Sources::allowance_at`]).
    pub(crate) fn note_sent_at(&mut self, now: Instant, slot: Option<usize>, len: usize) {
        if let Some(s) = slot.and_then(|i| self.entries.get_mut(i)) {
            s.windows.roll(now);
            s.windows.out_cur = s.windows.out_cur.saturating_add(len as u64);
        }
    }

    /// The slot of `key`. An entry holds its key, and a key has one slot, so the slot of the
    /// last lookup is checked before the map.
    fn find(&mut self, key: u128) -> Option<usize> {
        if self.entries.get(self.last).is_some_and(|s| s.key == key) {
            return Some(self.last);
        }
        let i = *self.index.get(&key)?;
        self.last = i;
        Some(i)
    }

    /// The entry of `ip`, made (evicting if the table is full) when missing; `None` only when
    /// the cap is zero.
    fn entry(&mut self, now: Instant, ip: IpAddr, rng: &mut impl RngCore) -> Option<&mut Source> {
        let key = source_key(ip);
        if let Some(i) = self.find(key) {
            let s = self.entries.get_mut(i)?;
            if now > s.seen {
                s.seen = now;
            }
            return Some(s);
        }
        if self.policy.cap == 0 {
            return None;
        }
        if now >= self.next_sweep {
            self.sweep(now);
        }
        let burst = self.policy.rate.map_or(0, |r| u64::from(r.burst));
        let fresh = Source {
            key,
            seen: now,
            bucket: Bucket::full(burst, now),
            blocked_until: Instant::ZERO,
            windows: Windows {
                start: now,
                ..Windows::default()
            },
            verified: false,
        };
        let slot = if self.entries.len() < self.policy.cap {
            self.entries.push(fresh);
            self.entries.len() - 1
        } else {
            let victim = self.victim(now, rng);
            let slot = self.entries.get_mut(victim)?;
            self.index.remove(&slot.key);
            *slot = fresh;
            victim
        };
        self.index.insert(key, slot);
        self.last = slot;
        self.entries.get_mut(slot)
    }

    /// Forgets the sources that went quiet (see the [module docs](self)) and gives their memory
    /// back when most of it is unused.
    fn sweep(&mut self, now: Instant) {
        self.next_sweep = now.saturating_add(SWEEP_EVERY);
        let policy = self.policy;
        let before = self.entries.len();
        self.entries.retain_mut(|s| !forgettable(s, now, policy));
        if self.entries.len() == before {
            return;
        }
        self.index.clear();
        for (i, s) in self.entries.iter().enumerate() {
            self.index.insert(s.key, i);
        }
        self.last = 0;
        let len = self.entries.len();
        if self.entries.capacity() > 2 * len + 16 {
            self.entries.shrink_to(len + len / 2);
            self.index.shrink_to(len + len / 2);
        }
    }

    /// The sampled entry most like a fresh one.
    fn victim(&mut self, now: Instant, rng: &mut impl RngCore) -> usize {
        // One draw from `rng` seeds the sample's own generator.
        let rng = &mut ChoiceRng::seeded_from(rng);
        let n = self.entries.len();
        let mut best = (u64::MAX, 0);
        for _ in 0..EVICTION_SAMPLE.min(n) {
            let i = below(rng, n);
            if let Some(s) = self.entries.get_mut(i) {
                let score = keep_score(s, now, self.policy);
                if score < best.0 {
                    best = (score, i);
                }
            }
        }
        best.1
    }
}

/// Whether an entry can be forgotten: idle long enough and back to a fresh entry's state.
fn forgettable(s: &mut Source, now: Instant, policy: Policy) -> bool {
    let ttl = if s.verified {
        FORGET_VERIFIED
    } else {
        FORGET_UNVERIFIED
    };
    if now < s.seen.saturating_add(ttl) || s.blocked_until > now {
        return false;
    }
    if let Some(rate) = policy.rate {
        s.bucket
            .refill(now, u64::from(rate.per_second), u64::from(rate.burst));
        if s.bucket.deficit(u64::from(rate.burst)) > 0 {
            return false;
        }
    }
    s.windows.roll(now);
    s.windows.estimate(now) == (0, 0)
}

/// How much an entry differs from a fresh one: 0 for an idle, refilled, unverified source.
fn keep_score(s: &mut Source, now: Instant, policy: Policy) -> u64 {
    let mut score = 0u64;
    if s.blocked_until > now {
        score |= 1 << 62;
    }
    if s.verified {
        score |= 1 << 61;
    }
    if let Some(rate) = policy.rate {
        s.bucket
            .refill(now, u64::from(rate.per_second), u64::from(rate.burst));
        score = score.saturating_add(s.bucket.deficit(u64::from(rate.burst)));
    }
    s.windows.roll(now);
    let (_, out) = s.windows.estimate(now);
    score.saturating_add(out.min(1 << 40))
}

#[cfg(test)]
mod tests;
