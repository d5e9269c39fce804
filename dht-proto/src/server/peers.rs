//! The peer store: peers announced to this node (`announce_peer`), served back in `get_peers`
//! replies, BEP 33 scrapes and BEP 51 samples.
//!
//! # Rules
//!
//! - One entry per (info-hash, IP address), as BEP 33 requires: a re-announce from the same
//!   address updates the port and the seed flag and refreshes the entry. IPv4-mapped IPv6
//!   addresses are stored as IPv4.
//! - A peer expires `ttl` after its last announce (30 minutes by default, BEP 5).
//! - A peer's **source** is its IPv4 address or its IPv6 /64. The **load** of a source is the
//!   number of peers it has stored, all info-hashes together.
//! - **Per-source quota** (`max_peers_per_source`, [`PeerStore::with_source_quota`]): a source
//!   at its quota makes room with its own least recently announced peer, so a flooding source
//!   only ever churns itself.
//! - **Per-info-hash cap** (`max_peers_per_info_hash`): a new peer replaces the info-hash's
//!   peer of the heaviest source, the least recently announced among equals.
//! - **Info-hash cap** (`max_info_hashes`): a new info-hash takes the place of the oldest
//!   peers of the heaviest source (load 2 or more) until an info-hash is freed; when every
//!   source holds one peer, it replaces the stored info-hash with the fewest peers, the least
//!   recently announced one among those. Popular swarms survive a flood of single-peer
//!   info-hashes; new swarms are always admitted, so the store keeps serving current announces
//!   rather than freezing on old ones until they expire.
//! - **Total cap** (`max_stored_peers`): a new peer, when no other eviction made room,
//!   replaces the least recently announced peer of the heaviest source (load 2 or more), or
//!   else of the whole store.
//!
//! Announces need a valid token, so every stored address has proved it receives our replies
//! and cannot be spoofed; the quotas and heaviest-first eviction keep a few addresses from
//! taking the store from many.
//!
//! # Memory
//!
//! [`PeerStore::memory_usage`] reports the bytes held. The worst case is about
//! `max_info_hashes × 350 + max_stored_peers × 264 + 1280` bytes: per info-hash, a hash-table
//! slot at half load (2 × 81 bytes), 20 bytes in the sampling array and two ordered index
//! entries (about 150 bytes with B-tree slack); per peer, 32 bytes and its 4-byte address key,
//! doubled for vector slack (vectors shrink when they fall under half full), 20 bytes (doubled)
//! in its source's list, and at worst (every peer from its own source) a source's hash-table
//! slots (41 bytes each; the table shrinks when under a quarter full) and, for half of them, an
//! index entry (64 bytes: only sources of two peers or more are indexed); and the cached BEP 51
//! sample, at most [`SAMPLE_CACHE_MAX`] info-hashes (1280 bytes). With the defaults (16 384
//! info-hashes, 65 536 peers) that is under 22 MiB.
//!
//! # Cost
//!
//! Announce and lookup hash the info-hash once (keyed SipHash, so chosen info-hashes cannot
//! collide on purpose), scan the info-hash's peers (at most `max_peers_per_info_hash`) and update
//! two ordered indices in `O(log n)`. [`PeerStore::expire`] touches only what expires.
//! [`PeerStore::sample`] copies `max` info-hashes of its cached sample, drawn again (`O(cap)`,
//! cap at most 64) once per interval; when it draws afresh (a small store, or `max` beyond the
//! cap) it costs `O(max)` for up to 64 and `O(n)` otherwise. Removing an info-hash scans the
//! cached sample (at most 64 entries) when there is one. Nothing iterates the hash map, so
//! results depend only on the seed and the inputs.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::mem::size_of;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use hashbrown::HashMap;
use rand_core::RngCore;

use crate::admission::source_key;
use crate::config::Config;
use crate::id::Id;
use crate::rng::{ChoiceRng, KeyedState, below};
use crate::server::bloom::Bloom;
use crate::server::sources::Loads;
use crate::time::Instant;

/// An address family, to choose between the IPv4 and IPv6 peers of an info-hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (including IPv4-mapped IPv6 addresses).
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`; IPv4-mapped IPv6 addresses are [`Family::V4`].
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// Length of a compact peer (address and port): 6 or 18 bytes.
    pub const fn compact_len(self) -> usize {
        match self {
            Self::V4 => 6,
            Self::V6 => 18,
        }
    }

    /// What one peer costs in a `values` list: the compact peer as a bencoded string, 8 bytes
    /// (`6:` + 6) or 21 bytes (`18:` + 18).
    pub const fn value_cost(self) -> usize {
        match self {
            Self::V4 => 2 + 6,
            Self::V6 => 3 + 18,
        }
    }
}

/// Where [`PeerStore::peers_into`] puts the peers it chooses.
pub(crate) trait PeerSink {
    /// Room for `n` more peers.
    fn reserve_peers(&mut self, n: usize);
    /// Appends the peer at `ip`, `port`.
    fn push_peer(&mut self, ip: IpAddr, port: u16);
    /// The peers held.
    fn peer_count(&self) -> usize;
}

impl PeerSink for Vec<SocketAddr> {
    fn reserve_peers(&mut self, n: usize) {
        self.reserve(n);
    }

    fn push_peer(&mut self, ip: IpAddr, port: u16) {
        self.push(SocketAddr::new(ip, port));
    }

    fn peer_count(&self) -> usize {
        self.len()
    }
}

/// What [`PeerStore::announce`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnnounceOutcome {
    /// A new peer was stored; nothing was evicted.
    Added,
    /// The address was already stored for this info-hash; its port, seed flag and expiry were
    /// updated.
    Refreshed,
    /// A new peer was stored in place of what a cap evicted.
    AddedEvicting(Eviction),
    /// Nothing was stored because a cap is zero.
    Refused,
}

/// What an announce evicted to stay within the caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Eviction {
    /// The info-hash had `max_peers_per_info_hash` peers: its least recently announced peer
    /// was dropped.
    OldestPeerOfInfoHash,
    /// The store had `max_info_hashes` info-hashes: this one, with the fewest peers and the
    /// least recently announced among those, was dropped with its peers.
    InfoHash(Id),
    /// The store held `max_stored_peers` peers: the least recently announced peer of the
    /// heaviest source (or of all) was dropped.
    OldestPeer,
    /// The announcing source was at its quota: its own least recently announced peer was
    /// dropped.
    SourceQuota,
}

/// Which peers [`PeerStore::peers`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The address family of the peers.
    pub family: Family,
    /// Room in bytes, at [`Family::value_cost`] per peer.
    pub max_bytes: usize,
    /// BEP 33 `noseed=1`: fill the room with non-seeds first and add seeds only if room is
    /// left.
    pub non_seeds_first: bool,
}

/// Announced peers per info-hash, bounded, expiring and deterministic.
///
/// ```
/// use core::time::Duration;
/// use dht_proto::{Id, Instant};
/// use dht_proto::internals::peers::{AnnounceOutcome, Family, PeerStore, Selection};
/// # let mut rng = dht_proto::internals::TestRng(1);
///
/// let mut store = PeerStore::new(1000, 100, 10_000, Duration::from_secs(1800), [7; 16]);
/// let now = Instant::from_secs(10);
/// let info_hash = Id::new([1; 20]);
/// let peer = "203.0.113.5:6881".parse().unwrap();
/// assert_eq!(store.announce(now, info_hash, peer, false), AnnounceOutcome::Added);
///
/// let mut values = Vec::new();
/// let selection = Selection { family: Family::V4, max_bytes: 1000, non_seeds_first: false };
/// store.peers(now, &info_hash, selection, &mut rng, &mut values);
/// assert_eq!(values, [peer]);
/// ```
#[derive(Debug)]
pub struct PeerStore {
    swarms: HashMap<Id, Swarm, KeyedState>,
    /// Every stored info-hash, in no meaningful order; `Swarm::slot` is the index. Sampling
    /// picks random indices here instead of iterating the map.
    keys: Vec<Id>,
    /// (announce time of the oldest peer, info-hash): expiry order and the global oldest peer.
    by_oldest: BTreeSet<(Instant, Id)>,
    /// (peer count, newest announce, info-hash): eviction order at the info-hash cap.
    by_weight: BTreeSet<(usize, Instant, Id)>,
    peer_count: usize,
    /// Per source: the info-hashes of its peers.
    sources: Loads,
    max_per_source: usize,
    max_info_hashes: usize,
    max_peers_per_info_hash: usize,
    max_stored_peers: usize,
    ttl: Duration,
    /// The cached BEP 51 sample (see [`PeerStore::sample`]): distinct stored info-hashes, a
    /// uniform random subset in uniformly random order, at most `sample_cap`. Used only while
    /// more than `sample_cap` info-hashes are stored; an info-hash removed from the store is
    /// removed from it.
    sample_cache: Vec<Id>,
    /// When `sample_cache` was drawn; `None` when there is no cached sample.
    sample_drawn: Option<Instant>,
    /// Length of the cached sample, at most [`SAMPLE_CACHE_MAX`].
    sample_cap: usize,
}

/// Most info-hashes in the cached BEP 51 sample of [`PeerStore::sample`] (and the default
/// size of that cache): what a 1280-byte reply holds (64 × 20 bytes).
pub const SAMPLE_CACHE_MAX: usize = 64;

/// The peers of one info-hash.
#[derive(Debug)]
struct Swarm {
    /// Least recently announced first; never empty while stored.
    peers: Vec<Peer>,
    /// [`short_key`] of each of `peers`' addresses, in the same order: an announce finds its
    /// peer by scanning these 4-byte keys, many at a time, instead of the 32-byte peers.
    addrs: Vec<u32>,
    /// Index of the info-hash in `PeerStore::keys`.
    slot: usize,
}

impl Swarm {
    /// Appends `peer`, growing the vectors by doubling but never beyond `cap`.
    fn push(&mut self, peer: Peer, cap: usize) {
        grow_within(&mut self.peers, cap);
        grow_within(&mut self.addrs, cap);
        self.addrs.push(short_key(peer.ip));
        self.peers.push(peer);
    }

    /// Removes and returns the peer at `i`.
    fn remove(&mut self, i: usize) -> Option<Peer> {
        if i >= self.peers.len() {
            return None;
        }
        if i < self.addrs.len() {
            self.addrs.remove(i);
        }
        Some(self.peers.remove(i))
    }

    /// Where the peer at `ip` is: the keys compared 16 at a time without an early exit inside
    /// a group (so the comparisons vectorize), a match confirmed on the full address.
    fn position_of(&self, ip: IpAddr) -> Option<usize> {
        let key = short_key(ip);
        let same = |i: usize| self.peers.get(i).is_some_and(|p| same_ip(p.ip, ip));
        let mut groups = self.addrs.chunks_exact(16);
        let mut base = 0;
        for group in &mut groups {
            // Whether any key of the group matches: compare and OR-reduce, which vectorizes;
            // only a group with a match is looked at one by one.
            let any = group.iter().fold(0u32, |m, &k| m | u32::from(k == key));
            if any != 0 {
                let found = group
                    .iter()
                    .enumerate()
                    .filter(|&(_, &k)| k == key)
                    .map(|(i, _)| base + i)
                    .find(|&i| same(i));
                if found.is_some() {
                    return found;
                }
            }
            base += 16;
        }
        groups
            .remainder()
            .iter()
            .enumerate()
            .filter(|&(_, &k)| k == key)
            .map(|(i, _)| base + i)
            .find(|&i| same(i))
    }

    /// Gives back memory when the vectors fall under half full.
    fn shrink(&mut self) {
        if self.peers.capacity() > 2 * self.peers.len() + 2 {
            self.peers.shrink_to(self.peers.len());
        }
        if self.addrs.capacity() > 2 * self.addrs.len() + 2 {
            self.addrs.shrink_to(self.addrs.len());
        }
    }
}

/// A 4-byte key of an address for [`Swarm::position_of`]: an IPv4 address itself, an IPv6
/// address folded (equal addresses have equal keys; a match is confirmed on the address).
fn short_key(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let folded = (bits >> 64) as u64 ^ bits as u64;
            (folded >> 32) as u32 ^ folded as u32
        }
    }
}

/// Whether `a` and `b` are the same address (and family).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a == b,
        (IpAddr::V6(a), IpAddr::V6(b)) => a == b,
        _ => false,
    }
}

/// One stored peer: 32 bytes.
#[derive(Clone, Copy, Debug)]
struct Peer {
    ip: IpAddr,
    port: u16,
    seed: bool,
    announced: Instant,
}

impl PeerStore {
    /// An empty store with these caps; `hasher_key` keys the hash map (draw it from the node's
    /// generator).
    ///
    /// A cap of zero makes every announce [`AnnounceOutcome::Refused`]. No per-source quota
    /// until [`PeerStore::with_source_quota`].
    pub fn new(
        max_info_hashes: usize,
        max_peers_per_info_hash: usize,
        max_stored_peers: usize,
        ttl: Duration,
        hasher_key: [u8; 16],
    ) -> Self {
        let mut source_key = hasher_key;
        source_key.reverse();
        Self {
            swarms: HashMap::with_hasher(KeyedState::new(hasher_key)),
            keys: Vec::new(),
            by_oldest: BTreeSet::new(),
            by_weight: BTreeSet::new(),
            peer_count: 0,
            sources: Loads::new(source_key),
            max_per_source: usize::MAX,
            max_info_hashes,
            max_peers_per_info_hash,
            max_stored_peers,
            ttl,
            sample_cache: Vec::new(),
            sample_drawn: None,
            sample_cap: SAMPLE_CACHE_MAX,
        }
    }

    /// An empty store with the caps, quota and `peer_ttl` of `config`, and a cached BEP 51
    /// sample of as many info-hashes as a reply of `limits.max_reply` bytes could hold (at most
    /// [`SAMPLE_CACHE_MAX`]).
    pub fn from_config(config: &Config, hasher_key: [u8; 16]) -> Self {
        Self::new(
            config.limits.max_info_hashes,
            config.limits.max_peers_per_info_hash,
            config.limits.max_stored_peers,
            config.peer_ttl,
            hasher_key,
        )
        .with_source_quota(config.limits.max_peers_per_source)
        .with_sample_cap(config.limits.max_reply / 20)
    }

    /// Sets the most peers one source may have stored (see the [module docs](self)); zero
    /// refuses every announce.
    #[must_use]
    pub fn with_source_quota(mut self, max_per_source: usize) -> Self {
        self.max_per_source = max_per_source;
        self
    }

    /// Sets the length of the cached BEP 51 sample of [`PeerStore::sample`], at most
    /// [`SAMPLE_CACHE_MAX`] ([`SAMPLE_CACHE_MAX`] by default); zero caches nothing.
    #[must_use]
    pub fn with_sample_cap(mut self, cap: usize) -> Self {
        self.sample_cap = cap.min(SAMPLE_CACHE_MAX);
        self.sample_cache = Vec::new();
        self.sample_drawn = None;
        self
    }

    /// Peers stored from the source of `ip` (its IPv4 address or IPv6 /64).
    pub fn source_load(&self, ip: IpAddr) -> usize {
        self.sources.load(source_key(ip))
    }

    /// Stores (or refreshes) `peer` under `info_hash`, evicting by the rules of the
    /// [module docs](self) when a cap is reached.
    ///
    /// The caller has checked the token and the address policy. `seed` is BEP 33's `seed=1`.
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: Id,
        peer: SocketAddr,
        seed: bool,
    ) -> AnnounceOutcome {
        if self.max_info_hashes == 0 || self.max_peers_per_info_hash == 0 {
            return AnnounceOutcome::Refused;
        }
        if self.max_stored_peers == 0 || self.max_per_source == 0 {
            return AnnounceOutcome::Refused;
        }
        let ip = canonical(peer.ip());
        let port = peer.port();
        let source = source_key(ip);
        // A refresh (the common case for a busy swarm) looks the info-hash up once.
        if let Some(swarm) = self.swarms.get_mut(&info_hash) {
            if let Some(i) = swarm.position_of(ip) {
                let before = index_keys(info_hash, swarm);
                let newest = swarm.peers.last().map_or(now, |p| p.announced.max(now));
                let _ = swarm.remove(i);
                swarm.push(
                    Peer {
                        ip,
                        port,
                        seed,
                        announced: newest,
                    },
                    self.max_peers_per_info_hash,
                );
                let after = index_keys(info_hash, swarm);
                reindex(&mut self.by_oldest, &mut self.by_weight, before, after);
                self.sources.touch(source, info_hash);
                return AnnounceOutcome::Refreshed;
            }
        }
        let mut eviction = None;
        if self.source_load(ip) >= self.max_per_source {
            if let Some(oldest) = self.sources.oldest_of(source) {
                self.remove_peer_of(oldest, source);
                eviction = Some(Eviction::SourceQuota);
            }
        }
        if let Some(swarm) = self.swarms.get(&info_hash) {
            if swarm.peers.len() >= self.max_peers_per_info_hash {
                while self
                    .swarms
                    .get(&info_hash)
                    .is_some_and(|s| s.peers.len() >= self.max_peers_per_info_hash)
                {
                    let Some(victim) = self.heaviest_in(info_hash) else {
                        break;
                    };
                    self.remove_peer_of(info_hash, victim);
                }
                eviction = Some(Eviction::OldestPeerOfInfoHash);
            }
        }
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= self.max_info_hashes {
            // The heaviest source pays first, a few peers at most (its single-peer swarms
            // free a slot at once)...
            for _ in 0..8 {
                if self.swarms.len() < self.max_info_hashes {
                    break;
                }
                let Some((heavy, h)) = self.sources.heaviest() else {
                    break;
                };
                self.remove_peer_of(h, heavy);
                eviction = Some(Eviction::InfoHash(h));
            }
            // ... then the lightest swarm.
            if self.swarms.len() >= self.max_info_hashes {
                if let Some(&(_, _, victim)) = self.by_weight.first() {
                    self.remove_swarm(victim);
                    eviction = Some(Eviction::InfoHash(victim));
                }
            }
        }
        if self.peer_count >= self.max_stored_peers {
            self.evict_oldest_peer();
            eviction = eviction.or(Some(Eviction::OldestPeer));
        }
        let per_hash_cap = self.max_peers_per_info_hash;
        let new_peer = |newest: Option<Instant>| Peer {
            ip,
            port,
            seed,
            announced: newest.map_or(now, |t| t.max(now)),
        };
        if self.swarms.contains_key(&info_hash) {
            self.update_swarm(info_hash, |swarm| {
                let peer = new_peer(swarm.peers.last().map(|p| p.announced));
                swarm.push(peer, per_hash_cap);
            });
        } else {
            let peer = new_peer(None);
            let addrs = alloc::vec![short_key(peer.ip)];
            let peers = alloc::vec![peer];
            let slot = self.keys.len();
            self.keys.push(info_hash);
            let swarm = Swarm { peers, addrs, slot };
            index(
                &mut self.by_oldest,
                &mut self.by_weight,
                info_hash,
                &swarm,
                true,
            );
            self.swarms.insert(info_hash, swarm);
        }
        self.peer_count += 1;
        self.sources.add(source, info_hash);
        match eviction {
            Some(e) => AnnounceOutcome::AddedEvicting(e),
            None => AnnounceOutcome::Added,
        }
    }

    /// Appends to `out` a random subset of the live peers of `info_hash` in
    /// `selection.family`, as many as fit in `selection.max_bytes` of `values` entries at
    /// [`Family::value_cost`] each (the list's own `l` and `e` are the caller's); with
    /// `non_seeds_first`, non-seeds fill the room first.
    ///
    /// Every subset of the largest size that fits is equally likely (within non-seeds, then
    /// seeds, when they are preferred). When all peers fit, all are returned without drawing
    /// from `rng`.
    pub fn peers(
        &self,
        now: Instant,
        info_hash: &Id,
        selection: Selection,
        rng: &mut impl RngCore,
        out: &mut Vec<SocketAddr>,
    ) {
        self.peers_into(now, info_hash, selection, rng, out);
    }

    /// [`PeerStore::peers`] into any [`PeerSink`] (a reply writes them in wire form at once).
    pub(crate) fn peers_into(
        &self,
        now: Instant,
        info_hash: &Id,
        selection: Selection,
        rng: &mut impl RngCore,
        out: &mut impl PeerSink,
    ) {
        let Selection {
            family,
            max_bytes,
            non_seeds_first,
        } = selection;
        if !non_seeds_first {
            self.select(now, info_hash, family, max_bytes, None, rng, out);
            return;
        }
        let before = out.peer_count();
        self.select(now, info_hash, family, max_bytes, Some(false), rng, out);
        let used = (out.peer_count() - before).saturating_mul(family.value_cost());
        let rest = max_bytes.saturating_sub(used);
        self.select(now, info_hash, family, rest, Some(true), rng, out);
    }

    /// BEP 33 scrape filters of the live peers of `info_hash`: (`BFsd` seeds, `BFpe` other
    /// peers), or `None` when no live peer is stored.
    pub fn scrape(&self, now: Instant, info_hash: &Id) -> Option<(Bloom, Bloom)> {
        let swarm = self.swarms.get(info_hash)?;
        let mut seeds = Bloom::new();
        let mut peers = Bloom::new();
        let mut any = false;
        for p in swarm.peers.iter().filter(|p| self.is_live(p, now)) {
            any = true;
            if p.seed {
                seeds.insert(p.ip);
            } else {
                peers.insert(p.ip);
            }
        }
        any.then_some((seeds, peers))
    }

    /// Appends to `out` up to `max` distinct stored info-hashes chosen uniformly at random: the
    /// `samples` of a BEP 51 reply whose `interval` is `interval`. Call [`PeerStore::expire`]
    /// first so that no expired info-hash is offered.
    ///
    /// While more info-hashes are stored than the sample cap ([`PeerStore::with_sample_cap`])
    /// and `max` is within it, replies share one cached sample, as BEP 51's `interval` allows:
    /// the cap's worth of info-hashes drawn uniformly at random and randomly permuted, so that
    /// the first `max` of them, which a reply gets, are themselves a uniform random subset. It
    /// is drawn again when `interval` has passed since it was drawn or when it holds fewer than
    /// `max` (an info-hash removed from the store leaves the cache too, so it is never
    /// offered). Info-hashes announced since the draw wait for the next one. Otherwise (a small
    /// store, or `max` beyond the cap) each call draws afresh and a store of at most `max`
    /// info-hashes returns all of them, the newest included.
    ///
    /// Randomness comes only from `rng`, and only when drawing.
    pub fn sample(
        &mut self,
        now: Instant,
        interval: Duration,
        rng: &mut impl RngCore,
        max: usize,
        out: &mut Vec<Id>,
    ) {
        if self.keys.len() <= self.sample_cap {
            // A small store returns what it holds now, not a snapshot.
            self.sample_cache.clear();
            self.sample_drawn = None;
            return self.draw(rng, max, out);
        }
        if max > self.sample_cap {
            return self.draw(rng, max, out);
        }
        let current = self
            .sample_drawn
            .is_some_and(|drawn| now.saturating_duration_since(drawn) < interval);
        if !current || self.sample_cache.len() < max {
            self.sample_cache.clear();
            let rng = &mut ChoiceRng::seeded_from(rng);
            floyd(&self.keys, self.sample_cap, rng, &mut self.sample_cache);
            // Floyd's order is not uniform: shuffle (Fisher-Yates) so that every prefix is a
            // uniform random subset.
            for i in (1..self.sample_cache.len()).rev() {
                let j = below(rng, i + 1);
                self.sample_cache.swap(i, j);
            }
            self.sample_drawn = Some(now);
        }
        let cached = self.sample_cache.get(..max).unwrap_or(&self.sample_cache);
        out.extend_from_slice(cached);
    }

    /// Appends to `out` up to `max` distinct stored info-hashes chosen uniformly at random,
    /// afresh: all of them when they fit.
    fn draw(&self, rng: &mut impl RngCore, max: usize, out: &mut Vec<Id>) {
        let n = self.keys.len();
        let k = max.min(n);
        if k == n {
            out.extend_from_slice(&self.keys);
        } else if k <= SAMPLE_CACHE_MAX {
            let rng = &mut ChoiceRng::seeded_from(rng);
            floyd(&self.keys, k, rng, out);
        } else {
            let rng = &mut ChoiceRng::seeded_from(rng);
            select_sample(self.keys.iter().copied(), n, k, rng, out);
        }
    }

    /// Drops every peer whose last announce is `ttl` or more before `now`, and every info-hash
    /// left without peers.
    ///
    /// Costs `O(log n)` per info-hash touched plus the peers removed; call it when
    /// [`PeerStore::next_expiry`] is due.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(oldest, info_hash)) = self.by_oldest.first() {
            if oldest.saturating_add(self.ttl) > now {
                break;
            }
            let ttl = self.ttl;
            let mut dead_ips = Vec::new();
            self.update_swarm(info_hash, |swarm| {
                let dead = swarm
                    .peers
                    .iter()
                    .take_while(|p| p.announced.saturating_add(ttl) <= now)
                    .count();
                dead_ips.extend(swarm.peers.drain(..dead).map(|p| p.ip));
                swarm.addrs.drain(..dead.min(swarm.addrs.len()));
            });
            let removed = dead_ips.len();
            for ip in dead_ips {
                self.sources.remove(source_key(ip), info_hash);
            }
            self.peer_count = self.peer_count.saturating_sub(removed);
            if removed == 0 {
                // Unreachable while the index is consistent; never loop on it.
                self.by_oldest.remove(&(oldest, info_hash));
            }
        }
    }

    /// When the next peer expires, or `None` when the store is empty.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_oldest
            .first()
            .map(|(t, _)| t.saturating_add(self.ttl))
    }

    /// Number of stored info-hashes.
    pub fn len(&self) -> usize {
        self.swarms.len()
    }

    /// Whether no info-hash is stored.
    pub fn is_empty(&self) -> bool {
        self.swarms.is_empty()
    }

    /// Number of stored info-hashes (BEP 51's `num`).
    pub fn info_hash_count(&self) -> usize {
        self.swarms.len()
    }

    /// Number of stored peers, all info-hashes together.
    pub fn peer_count(&self) -> usize {
        self.peer_count
    }

    /// Whether `info_hash` has stored peers (possibly expired but not yet removed).
    pub fn contains(&self, info_hash: &Id) -> bool {
        self.swarms.contains_key(info_hash)
    }

    /// Approximate heap bytes held: table slots, vectors at their capacity and index entries.
    pub fn memory_usage(&self) -> usize {
        let table = self
            .swarms
            .capacity()
            .saturating_mul(size_of::<(Id, Swarm)>() + 1);
        let keys = self
            .keys
            .capacity()
            .saturating_add(self.sample_cache.capacity())
            .saturating_mul(size_of::<Id>());
        // B-tree nodes are at least half full: twice the element size bounds the slack.
        let indices = self
            .by_oldest
            .len()
            .saturating_mul(2 * size_of::<(Instant, Id)>())
            + self
                .by_weight
                .len()
                .saturating_mul(2 * size_of::<(usize, Instant, Id)>());
        // `swarms` is only read for the sum; its order does not matter.
        let peers: usize = self
            .keys
            .iter()
            .filter_map(|k| self.swarms.get(k))
            .map(|s| {
                s.peers.capacity().saturating_mul(size_of::<Peer>())
                    + s.addrs.capacity().saturating_mul(size_of::<u32>())
            })
            .sum();
        table + keys + indices + peers + self.sources.memory_usage()
    }

    fn is_live(&self, peer: &Peer, now: Instant) -> bool {
        peer.announced.saturating_add(self.ttl) > now
    }

    /// Selection sampling (Knuth's algorithm S) over the live `family` peers, optionally only
    /// seeds or only non-seeds.
    #[allow(clippy::too_many_arguments)]
    fn select(
        &self,
        now: Instant,
        info_hash: &Id,
        family: Family,
        max_bytes: usize,
        seeds: Option<bool>,
        rng: &mut impl RngCore,
        out: &mut impl PeerSink,
    ) {
        let Some(swarm) = self.swarms.get(info_hash) else {
            return;
        };
        // The liveness test of `is_live` with the TTL converted once, not per peer.
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let now = now.as_millis();
        // Stored addresses are canonical (`announce`): the variant is the family.
        let v4 = family == Family::V4;
        let eligible = |p: &&Peer| {
            p.announced.as_millis().saturating_add(ttl) > now
                && p.ip.is_ipv4() == v4
                && seeds.is_none_or(|s| s == p.seed)
        };
        let n = swarm.peers.iter().filter(eligible).count();
        let k = n.min(max_bytes / family.value_cost());
        // One allocation, not one per doubling: the filtered iterator has no useful size hint.
        out.reserve_peers(k);
        let peers = swarm.peers.iter().filter(eligible);
        if k == n {
            peers.for_each(|p| out.push_peer(p.ip, p.port));
        } else {
            let rng = &mut ChoiceRng::seeded_from(rng);
            let start = out.peer_count();
            let mut chosen = SelectSample::new(n, k);
            peers
                .filter(|_| chosen.next(rng))
                .for_each(|p| out.push_peer(p.ip, p.port));
            debug_assert_eq!(out.peer_count() - start, k);
        }
    }

    /// Applies `change` to the peers of `info_hash` and keeps the indices, the sampling array
    /// and the vector's capacity in step; removes the info-hash if no peer is left.
    fn update_swarm(&mut self, info_hash: Id, change: impl FnOnce(&mut Swarm)) {
        let Some(swarm) = self.swarms.get_mut(&info_hash) else {
            return;
        };
        let before = index_keys(info_hash, swarm);
        change(swarm);
        let after = index_keys(info_hash, swarm);
        reindex(&mut self.by_oldest, &mut self.by_weight, before, after);
        if swarm.peers.is_empty() {
            let slot = swarm.slot;
            self.swarms.remove(&info_hash);
            self.unslot(slot);
            return;
        }
        swarm.shrink();
    }

    /// Removes `info_hash` and its peers.
    fn remove_swarm(&mut self, info_hash: Id) {
        if let Some(swarm) = self.swarms.remove(&info_hash) {
            index(
                &mut self.by_oldest,
                &mut self.by_weight,
                info_hash,
                &swarm,
                false,
            );
            self.peer_count = self.peer_count.saturating_sub(swarm.peers.len());
            for p in &swarm.peers {
                self.sources.remove(source_key(p.ip), info_hash);
            }
            self.unslot(swarm.slot);
        }
    }

    /// Removes the least recently announced peer of `source` under `info_hash`.
    fn remove_peer_of(&mut self, info_hash: Id, source: u128) {
        let mut removed = None;
        self.update_swarm(info_hash, |swarm| {
            if let Some(i) = swarm.peers.iter().position(|p| source_key(p.ip) == source) {
                removed = swarm.remove(i);
            }
        });
        if removed.is_some() {
            self.peer_count = self.peer_count.saturating_sub(1);
            self.sources.remove(source, info_hash);
        }
    }

    /// The source of `info_hash`'s peers with the highest load (the least recently announced
    /// peer's among equals).
    fn heaviest_in(&self, info_hash: Id) -> Option<u128> {
        let swarm = self.swarms.get(&info_hash)?;
        let mut best: Option<(usize, u128)> = None;
        for p in &swarm.peers {
            let key = source_key(p.ip);
            let load = self.sources.load(key);
            if best.is_none_or(|(l, _)| load > l) {
                best = Some((load, key));
            }
        }
        best.map(|(_, key)| key)
    }

    /// Removes index `slot` from the sampling array, moving the last info-hash into it.
    fn unslot(&mut self, slot: usize) {
        if slot >= self.keys.len() {
            return;
        }
        let removed = self.keys.swap_remove(slot);
        // A removed info-hash is never offered again: it leaves the cached sample, whose other
        // info-hashes stay a uniform random subset in random order.
        if let Some(i) = self.sample_cache.iter().position(|&c| c == removed) {
            self.sample_cache.remove(i);
        }
        if let Some(&moved) = self.keys.get(slot) {
            if let Some(s) = self.swarms.get_mut(&moved) {
                s.slot = slot;
            }
        }
        if self.keys.capacity() > 2 * self.keys.len() + 16 {
            self.keys.shrink_to(self.keys.len() + self.keys.len() / 2);
        }
    }

    /// Drops the least recently announced peer of the heaviest source, or of the whole store
    /// when every source holds one peer.
    fn evict_oldest_peer(&mut self) {
        if let Some((heavy, h)) = self.sources.heaviest() {
            self.remove_peer_of(h, heavy);
            return;
        }
        if let Some(&(_, info_hash)) = self.by_oldest.first() {
            let mut removed = None;
            self.update_swarm(info_hash, |swarm| {
                removed = swarm.remove(0);
            });
            if let Some(p) = removed {
                self.peer_count = self.peer_count.saturating_sub(1);
                self.sources.remove(source_key(p.ip), info_hash);
            }
        }
    }
}

/// The keys of `swarm` in `PeerStore::by_oldest` and `PeerStore::by_weight` (`None` when it
/// has no peer, hence no entries).
#[allow(clippy::type_complexity)]
fn index_keys(info_hash: Id, swarm: &Swarm) -> Option<((Instant, Id), (usize, Instant, Id))> {
    let (oldest, newest) = (swarm.peers.first()?, swarm.peers.last()?);
    Some((
        (oldest.announced, info_hash),
        (swarm.peers.len(), newest.announced, info_hash),
    ))
}

/// Moves a swarm's index entries from their keys `before` a change to those `after` it; each
/// entry is replaced only when its key moved (a refresh of a peer that is not the oldest
/// leaves `by_oldest` as it was).
#[allow(clippy::type_complexity)]
fn reindex(
    by_oldest: &mut BTreeSet<(Instant, Id)>,
    by_weight: &mut BTreeSet<(usize, Instant, Id)>,
    before: Option<((Instant, Id), (usize, Instant, Id))>,
    after: Option<((Instant, Id), (usize, Instant, Id))>,
) {
    if let Some((oldest, weight)) = before {
        if after.is_none_or(|(o, _)| o != oldest) {
            by_oldest.remove(&oldest);
        }
        if after.is_none_or(|(_, w)| w != weight) {
            by_weight.remove(&weight);
        }
    }
    if let Some((oldest, weight)) = after {
        if before.is_none_or(|(o, _)| o != oldest) {
            by_oldest.insert(oldest);
        }
        if before.is_none_or(|(_, w)| w != weight) {
            by_weight.insert(weight);
        }
    }
}

/// Adds (`insert`) or removes the index entries of `swarm`.
fn index(
    by_oldest: &mut BTreeSet<(Instant, Id)>,
    by_weight: &mut BTreeSet<(usize, Instant, Id)>,
    info_hash: Id,
    swarm: &Swarm,
    insert: bool,
) {
    let (Some(oldest), Some(newest)) = (swarm.peers.first(), swarm.peers.last()) else {
        return;
    };
    let a = (oldest.announced, info_hash);
    let b = (swarm.peers.len(), newest.announced, info_hash);
    if insert {
        by_oldest.insert(a);
        by_weight.insert(b);
    } else {
        by_oldest.remove(&a);
        by_weight.remove(&b);
    }
}

/// Makes room for one more element, doubling the capacity but never beyond `cap`.
fn grow_within<T>(v: &mut Vec<T>, cap: usize) {
    if v.len() == v.capacity() {
        let room = cap.saturating_sub(v.len()).max(1);
        v.reserve_exact(v.capacity().clamp(1, room));
    }
}

/// Appends `k` (at most [`SAMPLE_CACHE_MAX`]) distinct items of `keys`, each `k`-subset equally
/// likely, with `k` draws (Floyd's algorithm); the order is not uniformly random.
fn floyd(keys: &[Id], k: usize, rng: &mut impl RngCore, out: &mut Vec<Id>) {
    let n = keys.len();
    let k = k.min(n).min(SAMPLE_CACHE_MAX);
    // `j` was never drawn before (every earlier draw is below it).
    let mut drawn = Drawn::new();
    out.reserve(k);
    for j in (n - k)..n {
        let t = below(rng, j + 1);
        let i = if drawn.insert(t) { t } else { j };
        if i == j {
            drawn.insert(j);
        }
        out.extend(keys.get(i).copied());
    }
}

/// Appends `k` of the `n` items of `items`, each `k`-subset equally likely (Knuth's algorithm S;
/// the items keep their order).
fn select_sample<T>(
    items: impl Iterator<Item = T>,
    n: usize,
    k: usize,
    rng: &mut impl RngCore,
    out: &mut Vec<T>,
) {
    let mut chosen = SelectSample::new(n, k);
    for item in items {
        if !chosen.wanted() {
            break;
        }
        if chosen.next(rng) {
            out.push(item);
        }
    }
}

/// The indices drawn so far by Floyd's algorithm in [`floyd`] (at most 64): an
/// open-addressing set on the stack, so that each draw is checked in O(1) rather than against
/// every earlier one.
struct Drawn {
    slots: [usize; DRAWN_SLOTS],
}

/// Slots of [`Drawn`]: twice the most draws, so probes stay short.
const DRAWN_SLOTS: usize = 128;

impl Drawn {
    fn new() -> Self {
        Self {
            slots: [usize::MAX; DRAWN_SLOTS],
        }
    }

    /// Adds `i` (never `usize::MAX`); `false` if it was there already. With more than
    /// `DRAWN_SLOTS` distinct values it would report a new one as present, which the callers'
    /// 64 draws never reach.
    fn insert(&mut self, i: usize) -> bool {
        // Fibonacci hashing: the top 7 bits of the product.
        let mut at = ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) as usize;
        for _ in 0..DRAWN_SLOTS {
            match self.slots.get_mut(at) {
                Some(slot) if *slot == i => return false,
                Some(slot) if *slot == usize::MAX => {
                    *slot = i;
                    return true;
                }
                _ => at = (at + 1) % DRAWN_SLOTS,
            }
        }
        false
    }
}

/// Knuth's algorithm S, one decision at a time: which of `n` items in turn to take so that `k`
/// are taken, each `k`-subset equally likely.
struct SelectSample {
    /// Items not yet decided.
    left: usize,
    /// Items still to take.
    needed: usize,
}

impl SelectSample {
    fn new(n: usize, k: usize) -> Self {
        Self {
            left: n,
            needed: k.min(n),
        }
    }

    /// Whether an item is still to be taken.
    fn wanted(&self) -> bool {
        self.needed > 0
    }

    /// Whether to take the next item: with probability `needed / left`.
    fn next(&mut self, rng: &mut impl RngCore) -> bool {
        if self.needed == 0 {
            return false;
        }
        let take = below(rng, self.left) < self.needed;
        self.left = self.left.saturating_sub(1);
        if take {
            self.needed -= 1;
        }
        take
    }
}

/// IPv4-mapped IPv6 addresses as IPv4; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests;
