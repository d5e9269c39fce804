//! The peer store: peers announced to this node (`announce_peer`), served back in `get_peers`
//! replies, BEP 33 scrapes and BEP 51 samples.
//!
//! # Rules
//!
//! - One entry per (info-hash, IP address), as BEP 33 requires: a re-announce from the same
//!   address updates the port and the seed flag and refreshes the entry. IPv4-mapped IPv6
//!   addresses are stored as IPv4.
//! - A peer expires `ttl` after its last announce (30 minutes by default, BEP 5).
//! - **Per-info-hash cap** (`max_peers_per_info_hash`): a new peer replaces the info-hash's
//!   least recently announced peer.
//! - **Info-hash cap** (`max_info_hashes`): a new info-hash replaces the stored info-hash with
//!   the fewest peers, the least recently announced one among those. Popular swarms survive a
//!   flood of single-peer info-hashes; new swarms are always admitted, so the store keeps
//!   serving current announces rather than freezing on old ones until they expire.
//! - **Total cap** (`max_stored_peers`): a new peer, when no per-info-hash eviction made room,
//!   replaces the least recently announced peer of the whole store.
//!
//! Announces need a valid token, so every stored address has proved it receives our replies;
//! the caps bound what an attacker with many addresses can occupy.
//!
//! # Memory
//!
//! [`PeerStore::memory_usage`] reports the bytes held. The worst case is about
//! `max_info_hashes × 300 + max_stored_peers × 64` bytes: per info-hash, a hash-table slot at
//! half load (2 × 57 bytes), 20 bytes in the sampling array and two ordered index entries
//! (about 150 bytes with B-tree slack); per peer, 32 bytes, doubled for vector slack (vectors
//! shrink when they fall under half full). With the defaults (16 384 info-hashes, 65 536 peers)
//! that is under 9 MiB.
//!
//! # Cost
//!
//! Announce and lookup hash the info-hash once (keyed SipHash, so chosen info-hashes cannot
//! collide on purpose), scan the info-hash's peers (at most `max_peers_per_info_hash`) and update
//! two ordered indices in `O(log n)`. [`PeerStore::expire`] touches only what expires.
//! [`PeerStore::sample`] costs `O(max²)` for small samples and `O(n)` otherwise. Nothing
//! iterates the hash map, so results depend only on the seed and the inputs.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::mem::size_of;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use hashbrown::HashMap;
use rand_core::RngCore;

use crate::config::Config;
use crate::id::Id;
use crate::rng::{KeyedState, below};
use crate::server::bloom::Bloom;
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
    /// The store held `max_stored_peers` peers: the least recently announced peer of all was
    /// dropped.
    OldestPeer,
}

/// Announced peers per info-hash, bounded, expiring and deterministic.
///
/// ```
/// use core::time::Duration;
/// use dht_proto::{Id, Instant};
/// use dht_proto::internals::peers::{AnnounceOutcome, Family, PeerStore};
/// # struct Counter(u64);
/// # impl rand_core::RngCore for Counter {
/// #     fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
/// #     fn next_u64(&mut self) -> u64 { self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1); self.0 }
/// #     fn fill_bytes(&mut self, dst: &mut [u8]) { for b in dst { *b = (self.next_u64() >> 56) as u8; } }
/// # }
/// # let mut rng = Counter(1);
///
/// let mut store = PeerStore::new(1000, 100, 10_000, Duration::from_secs(1800), [7; 16]);
/// let now = Instant::from_secs(10);
/// let info_hash = Id::new([1; 20]);
/// let peer = "203.0.113.5:6881".parse().unwrap();
/// assert_eq!(store.announce(now, info_hash, peer, false), AnnounceOutcome::Added);
///
/// let mut values = Vec::new();
/// store.peers(now, &info_hash, Family::V4, 1000, &mut rng, &mut values);
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
    max_info_hashes: usize,
    max_peers_per_info_hash: usize,
    max_stored_peers: usize,
    ttl: Duration,
}

/// The peers of one info-hash.
#[derive(Debug)]
struct Swarm {
    /// Least recently announced first; never empty while stored.
    peers: Vec<Peer>,
    /// Index of the info-hash in `PeerStore::keys`.
    slot: usize,
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
    /// A cap of zero makes every announce [`AnnounceOutcome::Refused`].
    pub fn new(
        max_info_hashes: usize,
        max_peers_per_info_hash: usize,
        max_stored_peers: usize,
        ttl: Duration,
        hasher_key: [u8; 16],
    ) -> Self {
        Self {
            swarms: HashMap::with_hasher(KeyedState::new(hasher_key)),
            keys: Vec::new(),
            by_oldest: BTreeSet::new(),
            by_weight: BTreeSet::new(),
            peer_count: 0,
            max_info_hashes,
            max_peers_per_info_hash,
            max_stored_peers,
            ttl,
        }
    }

    /// An empty store with the caps and `peer_ttl` of `config`.
    pub fn from_config(config: &Config, hasher_key: [u8; 16]) -> Self {
        Self::new(
            config.limits.max_info_hashes,
            config.limits.max_peers_per_info_hash,
            config.limits.max_stored_peers,
            config.peer_ttl,
            hasher_key,
        )
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
        if self.max_stored_peers == 0 {
            return AnnounceOutcome::Refused;
        }
        let ip = canonical(peer.ip());
        let port = peer.port();
        if let Some(swarm) = self.swarms.get(&info_hash) {
            if swarm.peers.iter().any(|p| p.ip == ip) {
                self.update_swarm(info_hash, |peers| {
                    let newest = peers.last().map_or(now, |p| p.announced.max(now));
                    if let Some(i) = peers.iter().position(|p| p.ip == ip) {
                        peers.remove(i);
                    }
                    peers.push(Peer {
                        ip,
                        port,
                        seed,
                        announced: newest,
                    });
                });
                return AnnounceOutcome::Refreshed;
            }
        }
        let mut eviction = None;
        if let Some(swarm) = self.swarms.get(&info_hash) {
            if swarm.peers.len() >= self.max_peers_per_info_hash {
                let excess = swarm.peers.len() + 1 - self.max_peers_per_info_hash;
                self.update_swarm(info_hash, |peers| {
                    peers.drain(..excess.min(peers.len()));
                });
                self.peer_count = self.peer_count.saturating_sub(excess);
                eviction = Some(Eviction::OldestPeerOfInfoHash);
            }
        } else if self.swarms.len() >= self.max_info_hashes {
            if let Some(&(_, _, victim)) = self.by_weight.first() {
                self.remove_swarm(victim);
                eviction = Some(Eviction::InfoHash(victim));
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
            self.update_swarm(info_hash, |peers| {
                let peer = new_peer(peers.last().map(|p| p.announced));
                grow_within(peers, per_hash_cap);
                peers.push(peer);
            });
        } else {
            let peers = alloc::vec![new_peer(None)];
            let slot = self.keys.len();
            self.keys.push(info_hash);
            let swarm = Swarm { peers, slot };
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
        match eviction {
            Some(e) => AnnounceOutcome::AddedEvicting(e),
            None => AnnounceOutcome::Added,
        }
    }

    /// Appends to `out` a random subset of the live `family` peers of `info_hash`, as many as
    /// fit in `max_bytes` of `values` entries at [`Family::value_cost`] each (the list's own
    /// `l` and `e` are the caller's).
    ///
    /// Every subset of the largest size that fits is equally likely. When all peers fit, all
    /// are returned without drawing from `rng`.
    pub fn peers(
        &self,
        now: Instant,
        info_hash: &Id,
        family: Family,
        max_bytes: usize,
        rng: &mut impl RngCore,
        out: &mut Vec<SocketAddr>,
    ) {
        self.select(now, info_hash, family, max_bytes, None, rng, out);
    }

    /// Like [`PeerStore::peers`], but fills the budget with non-seeds first and adds seeds only
    /// if room is left: BEP 33's `noseed=1`.
    pub fn peers_preferring_non_seeds(
        &self,
        now: Instant,
        info_hash: &Id,
        family: Family,
        max_bytes: usize,
        rng: &mut impl RngCore,
        out: &mut Vec<SocketAddr>,
    ) {
        let cost = family.value_cost();
        let before = out.len();
        self.select(now, info_hash, family, max_bytes, Some(false), rng, out);
        let used = (out.len() - before).saturating_mul(cost);
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
    /// `samples` of a BEP 51 reply. Call [`PeerStore::expire`] first so that no expired
    /// info-hash is offered.
    pub fn sample(&self, rng: &mut impl RngCore, max: usize, out: &mut Vec<Id>) {
        let n = self.keys.len();
        let k = max.min(n);
        if k == n {
            out.extend_from_slice(&self.keys);
        } else if k <= 64 {
            // Floyd's algorithm: k distinct indices with k draws.
            let mut chosen: Vec<usize> = Vec::with_capacity(k);
            for j in (n - k)..n {
                let t = below(rng, j + 1);
                chosen.push(if chosen.contains(&t) { j } else { t });
            }
            out.extend(chosen.iter().filter_map(|&i| self.keys.get(i).copied()));
        } else {
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
            let mut removed = 0;
            self.update_swarm(info_hash, |peers| {
                let dead = peers
                    .iter()
                    .take_while(|p| p.announced.saturating_add(ttl) <= now)
                    .count();
                peers.drain(..dead);
                removed = dead;
            });
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
        let keys = self.keys.capacity().saturating_mul(size_of::<Id>());
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
            .map(|s| s.peers.capacity().saturating_mul(size_of::<Peer>()))
            .sum();
        table + keys + indices + peers
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
        out: &mut Vec<SocketAddr>,
    ) {
        let Some(swarm) = self.swarms.get(info_hash) else {
            return;
        };
        let eligible = |p: &&Peer| {
            self.is_live(p, now) && Family::of(p.ip) == family && seeds.is_none_or(|s| s == p.seed)
        };
        let n = swarm.peers.iter().filter(eligible).count();
        let k = n.min(max_bytes / family.value_cost());
        // One allocation, not one per doubling: the filtered iterator has no useful size hint.
        out.reserve(k);
        let addrs = swarm
            .peers
            .iter()
            .filter(eligible)
            .map(|p| SocketAddr::new(p.ip, p.port));
        if k == n {
            out.extend(addrs);
        } else {
            select_sample(addrs, n, k, rng, out);
        }
    }

    /// Applies `change` to the peers of `info_hash` and keeps the indices, the sampling array
    /// and the vector's capacity in step; removes the info-hash if no peer is left.
    fn update_swarm(&mut self, info_hash: Id, change: impl FnOnce(&mut Vec<Peer>)) {
        let Some(swarm) = self.swarms.get_mut(&info_hash) else {
            return;
        };
        index(
            &mut self.by_oldest,
            &mut self.by_weight,
            info_hash,
            swarm,
            false,
        );
        change(&mut swarm.peers);
        if swarm.peers.is_empty() {
            let slot = swarm.slot;
            self.swarms.remove(&info_hash);
            self.unslot(slot);
            return;
        }
        if swarm.peers.capacity() > 2 * swarm.peers.len() + 2 {
            swarm.peers.shrink_to(swarm.peers.len());
        }
        index(
            &mut self.by_oldest,
            &mut self.by_weight,
            info_hash,
            swarm,
            true,
        );
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
            self.unslot(swarm.slot);
        }
    }

    /// Removes index `slot` from the sampling array, moving the last info-hash into it.
    fn unslot(&mut self, slot: usize) {
        if slot >= self.keys.len() {
            return;
        }
        self.keys.swap_remove(slot);
        if let Some(&moved) = self.keys.get(slot) {
            if let Some(s) = self.swarms.get_mut(&moved) {
                s.slot = slot;
            }
        }
        if self.keys.capacity() > 2 * self.keys.len() + 16 {
            self.keys.shrink_to(self.keys.len() + self.keys.len() / 2);
        }
    }

    /// Drops the least recently announced peer of the whole store.
    fn evict_oldest_peer(&mut self) {
        if let Some(&(_, info_hash)) = self.by_oldest.first() {
            let mut removed = 0;
            self.update_swarm(info_hash, |peers| {
                if !peers.is_empty() {
                    peers.remove(0);
                    removed = 1;
                }
            });
            self.peer_count = self.peer_count.saturating_sub(removed);
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

/// Appends `k` of the `n` items of `items`, each `k`-subset equally likely (Knuth's algorithm S;
/// the items keep their order).
fn select_sample<T>(
    items: impl Iterator<Item = T>,
    n: usize,
    k: usize,
    rng: &mut impl RngCore,
    out: &mut Vec<T>,
) {
    let mut needed = k;
    for (seen, item) in items.enumerate() {
        if needed == 0 {
            break;
        }
        if below(rng, n.saturating_sub(seen)) < needed {
            out.push(item);
            needed -= 1;
        }
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
