use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::rng::Rng;

const TTL: Duration = Duration::from_secs(30 * 60);

/// BEP 51 `interval` of the sampling tests.
const INTERVAL: Duration = Duration::from_secs(300);

fn ih(n: u32) -> Id {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Id::new(b)
}

fn v4(n: u32, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), port)
}

fn v6(n: u128, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(n)), port)
}

fn sel(family: Family, max_bytes: usize, non_seeds_first: bool) -> Selection {
    Selection {
        family,
        max_bytes,
        non_seeds_first,
    }
}

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn all(store: &PeerStore, now: Instant, info_hash: &Id, family: Family) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    store.peers(
        now,
        info_hash,
        sel(family, usize::MAX, false),
        &mut Rng::new([0; 32]),
        &mut out,
    );
    out
}

/// Every structural invariant of the store.
fn check(store: &PeerStore) {
    assert!(store.swarms.len() <= store.max_info_hashes);
    assert!(store.peer_count <= store.max_stored_peers);
    assert_eq!(store.keys.len(), store.swarms.len());
    assert_eq!(store.by_oldest.len(), store.swarms.len());
    assert_eq!(store.by_weight.len(), store.swarms.len());
    let mut total = 0;
    for (slot, key) in store.keys.iter().enumerate() {
        let swarm = &store.swarms[key];
        assert_eq!(swarm.slot, slot);
        assert!(!swarm.peers.is_empty());
        assert!(swarm.peers.len() <= store.max_peers_per_info_hash);
        assert!(swarm.peers.capacity() <= 2 * swarm.peers.len() + 2);
        assert!(swarm.addrs.capacity() <= 2 * swarm.addrs.len() + 2);
        assert_eq!(
            swarm.addrs,
            swarm
                .peers
                .iter()
                .map(|p| short_key(p.ip))
                .collect::<Vec<_>>(),
            "the address keys follow the peers"
        );
        assert!(
            swarm
                .peers
                .windows(2)
                .all(|w| w[0].announced <= w[1].announced)
        );
        for (i, p) in swarm.peers.iter().enumerate() {
            assert!(
                swarm.peers[..i].iter().all(|q| q.ip != p.ip),
                "duplicate ip"
            );
            assert_eq!(canonical(p.ip), p.ip);
        }
        let oldest = swarm.peers[0].announced;
        let newest = swarm.peers[swarm.peers.len() - 1].announced;
        assert!(store.by_oldest.contains(&(oldest, *key)));
        assert!(store.by_weight.contains(&(swarm.peers.len(), newest, *key)));
        total += swarm.peers.len();
    }
    assert_eq!(total, store.peer_count);
    // The cached sample: distinct stored info-hashes, within its cap.
    assert!(store.sample_cache.len() <= store.sample_cap);
    assert!(store.sample_cache.capacity() <= SAMPLE_CACHE_MAX);
    assert!(
        store
            .sample_cache
            .iter()
            .all(|h| store.swarms.contains_key(h))
    );
    assert!(distinct(&store.sample_cache));
    // Source accounting: every peer is in its source's list, and the loads are indexed.
    let listed = store.sources.check(store.max_per_source, |key, h| {
        store.swarms[h]
            .peers
            .iter()
            .filter(|p| source_key(p.ip) == key)
            .count()
    });
    assert_eq!(listed, store.peer_count);
}

/// The documented worst case: `max_info_hashes × 350 + max_stored_peers × 264 + 1280` bytes.
fn bound(store: &PeerStore) -> usize {
    let peers = store
        .max_stored_peers
        .min(store.max_info_hashes * store.max_peers_per_info_hash);
    store.max_info_hashes * 350 + peers * 264 + 1280
}

fn distinct(ids: &[Id]) -> bool {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted.len() == ids.len()
}

/// The index of `ih(i)`.
fn ih_index(id: &Id) -> usize {
    u32::from_be_bytes(id.as_bytes()[..4].try_into().unwrap()) as usize
}

/// 200 honest single-peer swarms from 200 addresses, then 70,000 announces of random
/// info-hashes from 5 addresses: the honest swarms stay.
#[test]
fn five_flooders_cannot_evict_two_hundred_honest_swarms() {
    for (caps, quota) in [((16_384, 65_536), 256), ((1_000, 2_000), usize::MAX)] {
        let mut s = PeerStore::new(caps.0, 200, caps.1, TTL, [1; 16]).with_source_quota(quota);
        let mut rng = Rng::new([4; 32]);
        for i in 0..200 {
            s.announce(t(1), ih(i), v4(0x0a00_0000 + i, 6881), false);
        }
        for n in 0..70_000u64 {
            let mut h = [0u8; 20];
            rng.fill_bytes(&mut h);
            let flooder = v4(0xc633_6400 + (n % 5) as u32, 6881);
            s.announce(t(2 + n / 100), Id::new(h), flooder, false);
        }
        check(&s);
        let kept = (0..200)
            .filter(|&i| !all(&s, t(800), &ih(i), Family::V4).is_empty())
            .count();
        assert!(
            kept >= 190,
            "caps {caps:?}, quota {quota}: {kept} of 200 honest swarms"
        );
        assert_eq!(kept, 200, "caps {caps:?}: heaviest sources pay first");
        if quota != usize::MAX {
            assert_eq!(s.source_load(v4(0xc633_6400, 1).ip()), quota);
        }
    }
}

#[test]
fn a_source_at_its_quota_churns_only_itself() {
    let mut s = PeerStore::new(100, 10, 1000, TTL, [1; 16]).with_source_quota(3);
    let me = v4(7, 1);
    s.announce(t(1), ih(0), v4(8, 1), false);
    for i in 1..=3 {
        assert_eq!(
            s.announce(t(i), ih(i as u32), me, false),
            AnnounceOutcome::Added
        );
    }
    assert_eq!(
        s.announce(t(5), ih(4), me, false),
        AnnounceOutcome::AddedEvicting(Eviction::SourceQuota)
    );
    check(&s);
    assert_eq!(s.source_load(me.ip()), 3);
    assert!(!s.contains(&ih(1)), "its own oldest went");
    assert!(s.contains(&ih(0)) && s.contains(&ih(2)) && s.contains(&ih(4)));
    // A refresh does not count twice and makes the entry the newest.
    assert_eq!(
        s.announce(t(6), ih(2), me, false),
        AnnounceOutcome::Refreshed
    );
    s.announce(t(7), ih(5), me, false);
    assert!(s.contains(&ih(2)) && !s.contains(&ih(3)));
    // One IPv6 /64 is one source.
    let mut s = PeerStore::new(100, 10, 1000, TTL, [1; 16]).with_source_quota(2);
    for i in 0..10u128 {
        s.announce(t(1), ih(0), v6((0x2001_0db8 << 96) | i, 1), false);
    }
    check(&s);
    assert_eq!(s.peer_count(), 2);
    let zero = PeerStore::new(100, 10, 1000, TTL, [1; 16]).with_source_quota(0);
    let mut zero = zero;
    assert_eq!(
        zero.announce(t(1), ih(0), me, false),
        AnnounceOutcome::Refused
    );
}

#[test]
fn a_full_swarm_evicts_its_heaviest_source() {
    let mut s = PeerStore::new(100, 4, 1000, TTL, [1; 16]);
    let heavy = v4(9, 1);
    // The heavy source has peers elsewhere too.
    for i in 1..5 {
        s.announce(t(1), ih(i), heavy, false);
    }
    s.announce(t(2), ih(0), v4(1, 1), false);
    s.announce(t(3), ih(0), heavy, false);
    s.announce(t(4), ih(0), v4(2, 1), false);
    s.announce(t(5), ih(0), v4(3, 1), false);
    s.announce(t(6), ih(0), v4(4, 1), false);
    check(&s);
    let left = all(&s, t(7), &ih(0), Family::V4);
    assert_eq!(left.len(), 4);
    assert!(!left.contains(&heavy), "{left:?}");
    assert!(left.contains(&v4(1, 1)), "the oldest honest peer stays");
}

#[test]
fn peer_is_32_bytes() {
    assert_eq!(size_of::<Peer>(), 32);
}

#[test]
fn announce_then_refresh_updates_port_and_seed() {
    let mut s = PeerStore::new(10, 10, 100, TTL, [1; 16]);
    let h = ih(1);
    assert_eq!(
        s.announce(t(1), h, v4(1, 1000), false),
        AnnounceOutcome::Added
    );
    assert_eq!(
        s.announce(t(2), h, v4(1, 2000), true),
        AnnounceOutcome::Refreshed
    );
    assert_eq!(all(&s, t(3), &h, Family::V4), [v4(1, 2000)]);
    assert_eq!(s.peer_count(), 1);
    let (seeds, peers) = s.scrape(t(3), &h).unwrap();
    assert!(seeds.contains(v4(1, 0).ip()));
    assert!(peers.is_empty());
    check(&s);
}

#[test]
fn mapped_addresses_are_stored_as_ipv4() {
    let mut s = PeerStore::new(10, 10, 100, TTL, [1; 16]);
    let h = ih(1);
    let ip = Ipv4Addr::new(198, 51, 100, 4);
    let mapped = SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), 7);
    s.announce(t(1), h, mapped, false);
    assert_eq!(
        s.announce(t(2), h, SocketAddr::new(IpAddr::V4(ip), 8), false),
        AnnounceOutcome::Refreshed
    );
    assert_eq!(
        all(&s, t(2), &h, Family::V4),
        [SocketAddr::new(IpAddr::V4(ip), 8)]
    );
    assert!(all(&s, t(2), &h, Family::V6).is_empty());
    assert_eq!(Family::of(mapped.ip()), Family::V4);
}

#[test]
fn families_are_separate() {
    let mut s = PeerStore::new(10, 10, 100, TTL, [1; 16]);
    let h = ih(1);
    s.announce(t(1), h, v4(1, 1), false);
    s.announce(t(1), h, v6(0x2001_0db8 << 96 | 5, 2), false);
    assert_eq!(all(&s, t(1), &h, Family::V4), [v4(1, 1)]);
    assert_eq!(
        all(&s, t(1), &h, Family::V6),
        [v6(0x2001_0db8 << 96 | 5, 2)]
    );
}

#[test]
fn peers_expire_after_ttl() {
    let mut s = PeerStore::new(10, 10, 100, TTL, [1; 16]);
    let h = ih(1);
    s.announce(t(100), h, v4(1, 1), false);
    s.announce(t(200), h, v4(2, 1), false);
    assert_eq!(s.next_expiry(), Some(t(100) + TTL));
    let just_before = t(100) + TTL - Duration::from_millis(1);
    assert_eq!(all(&s, just_before, &h, Family::V4).len(), 2);
    // Expired peers are not served even before `expire` runs.
    assert_eq!(all(&s, t(100) + TTL, &h, Family::V4), [v4(2, 1)]);
    s.expire(just_before);
    assert_eq!(s.peer_count(), 2);
    s.expire(t(100) + TTL);
    assert_eq!(s.peer_count(), 1);
    assert_eq!(s.next_expiry(), Some(t(200) + TTL));
    // A re-announce extends the life.
    s.announce(t(1000), h, v4(2, 1), false);
    s.expire(t(200) + TTL);
    assert_eq!(s.peer_count(), 1);
    s.expire(t(1000) + TTL);
    assert!(s.is_empty());
    assert_eq!(s.peer_count(), 0);
    assert_eq!(s.next_expiry(), None);
    assert_eq!(s.scrape(t(1000) + TTL, &h), None);
    check(&s);
}

#[test]
fn scrape_ignores_expired_peers() {
    let mut s = PeerStore::new(10, 10, 100, TTL, [1; 16]);
    let h = ih(1);
    s.announce(t(0), h, v4(1, 1), true);
    assert!(s.scrape(t(1), &h).is_some());
    assert_eq!(s.scrape(t(0) + TTL, &h), None);
    assert_eq!(s.scrape(t(1), &ih(2)), None);
}

#[test]
fn per_info_hash_cap_evicts_the_oldest_peer() {
    let mut s = PeerStore::new(10, 3, 100, TTL, [1; 16]);
    let h = ih(1);
    for i in 1..=3 {
        assert_eq!(
            s.announce(t(i.into()), h, v4(i, 1), false),
            AnnounceOutcome::Added
        );
    }
    // Peer 1 re-announces and becomes the newest; peer 2 is now the oldest.
    s.announce(t(4), h, v4(1, 1), false);
    assert_eq!(
        s.announce(t(5), h, v4(4, 1), false),
        AnnounceOutcome::AddedEvicting(Eviction::OldestPeerOfInfoHash)
    );
    let mut got = all(&s, t(5), &h, Family::V4);
    got.sort();
    assert_eq!(got, [v4(1, 1), v4(3, 1), v4(4, 1)]);
    assert_eq!(s.peer_count(), 3);
    check(&s);
}

#[test]
fn info_hash_cap_evicts_the_smallest_then_stalest() {
    let mut s = PeerStore::new(3, 10, 100, TTL, [1; 16]);
    s.announce(t(1), ih(1), v4(1, 1), false);
    s.announce(t(2), ih(1), v4(2, 1), false);
    s.announce(t(3), ih(2), v4(3, 1), false);
    s.announce(t(4), ih(3), v4(4, 1), false);
    // ih(2) and ih(3) have one peer each; ih(2) was announced to less recently.
    assert_eq!(
        s.announce(t(5), ih(4), v4(5, 1), false),
        AnnounceOutcome::AddedEvicting(Eviction::InfoHash(ih(2)))
    );
    assert!(!s.contains(&ih(2)));
    assert!(s.contains(&ih(1)) && s.contains(&ih(3)) && s.contains(&ih(4)));
    // Now ih(3) (t=4) and ih(4) (t=5) have one peer; ih(3) goes.
    assert_eq!(
        s.announce(t(6), ih(5), v4(6, 1), false),
        AnnounceOutcome::AddedEvicting(Eviction::InfoHash(ih(3)))
    );
    // ih(1), with two peers, survives any number of single-peer newcomers.
    for i in 10..100 {
        s.announce(t(i.into()), ih(i), v4(i, 1), false);
        assert!(s.contains(&ih(1)));
        assert_eq!(s.len(), 3);
    }
    check(&s);
}

#[test]
fn total_cap_evicts_the_globally_oldest_peer() {
    let mut s = PeerStore::new(10, 10, 4, TTL, [1; 16]);
    s.announce(t(1), ih(1), v4(1, 1), false);
    s.announce(t(2), ih(2), v4(2, 1), false);
    s.announce(t(3), ih(2), v4(3, 1), false);
    s.announce(t(4), ih(3), v4(4, 1), false);
    assert_eq!(
        s.announce(t(5), ih(3), v4(5, 1), false),
        AnnounceOutcome::AddedEvicting(Eviction::OldestPeer)
    );
    // ih(1) lost its only peer and is gone.
    assert!(!s.contains(&ih(1)));
    assert_eq!(s.peer_count(), 4);
    assert_eq!(
        s.announce(t(6), ih(4), v4(6, 1), false),
        AnnounceOutcome::AddedEvicting(Eviction::OldestPeer)
    );
    assert_eq!(all(&s, t(6), &ih(2), Family::V4), [v4(3, 1)]);
    check(&s);
}

#[test]
fn zero_caps_refuse() {
    for (a, b, c) in [(0, 1, 1), (1, 0, 1), (1, 1, 0)] {
        let mut s = PeerStore::new(a, b, c, TTL, [1; 16]);
        assert_eq!(
            s.announce(t(1), ih(1), v4(1, 1), false),
            AnnounceOutcome::Refused
        );
        assert!(s.is_empty());
    }
}

#[test]
fn reply_fits_the_byte_budget_exactly() {
    let mut s = PeerStore::new(10, 400, 1000, TTL, [1; 16]);
    let h = ih(1);
    for i in 0..200 {
        s.announce(t(1), h, v4(i + 1, 1), false);
        s.announce(t(1), h, v6(u128::from(i) + 1, 1), false);
    }
    let mut rng = Rng::new([5; 32]);
    for budget in [0, 7, 8, 9, 100, 1000, 1599, 1600, 5000] {
        let mut out = Vec::new();
        s.peers(t(2), &h, sel(Family::V4, budget, false), &mut rng, &mut out);
        assert_eq!(out.len(), (budget / 8).min(200), "v4 budget {budget}");
        let mut out = Vec::new();
        s.peers(t(2), &h, sel(Family::V6, budget, false), &mut rng, &mut out);
        assert_eq!(out.len(), (budget / 21).min(200), "v6 budget {budget}");
        assert!(out.iter().all(SocketAddr::is_ipv6));
    }
}

#[test]
fn value_costs_match_bencoded_compact_peers() {
    // "6:" + 6 bytes and "18:" + 18 bytes, as they appear inside `values`.
    let enc = |len: usize| alloc::format!("{len}:").len() + len;
    assert_eq!(Family::V4.value_cost(), enc(Family::V4.compact_len()));
    assert_eq!(Family::V6.value_cost(), enc(Family::V6.compact_len()));
}

#[test]
fn random_subsets_are_uniform() {
    let mut s = PeerStore::new(10, 20, 1000, TTL, [1; 16]);
    let h = ih(1);
    for i in 0..10 {
        s.announce(t(1), h, v4(i, 1), false);
    }
    let mut rng = Rng::new([6; 32]);
    let mut counts = [0u32; 10];
    for _ in 0..10_000 {
        let mut out = Vec::new();
        s.peers(t(2), &h, sel(Family::V4, 3 * 8, false), &mut rng, &mut out);
        assert_eq!(out.len(), 3);
        let mut ips: Vec<u32> = out
            .iter()
            .map(|a| match a.ip() {
                IpAddr::V4(ip) => u32::from(ip),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 3);
        for ip in ips {
            counts[ip as usize] += 1;
        }
    }
    // Each peer appears in 3000 replies on average; standard deviation about 46.
    for c in counts {
        assert!((2_800..=3_200).contains(&c), "{counts:?}");
    }
}

#[test]
fn noseed_prefers_non_seeds() {
    let mut s = PeerStore::new(10, 20, 1000, TTL, [1; 16]);
    let h = ih(1);
    for i in 0..5 {
        s.announce(t(1), h, v4(i, 1), true);
        s.announce(t(1), h, v4(100 + i, 1), false);
    }
    let mut rng = Rng::new([7; 32]);
    let mut out = Vec::new();
    s.peers(t(2), &h, sel(Family::V4, 4 * 8, true), &mut rng, &mut out);
    assert_eq!(out.len(), 4);
    assert!(
        out.iter()
            .all(|a| a.ip() >= IpAddr::V4(Ipv4Addr::from(100)))
    );
    let mut out = Vec::new();
    s.peers(
        t(2),
        &h,
        sel(Family::V4, 7 * 8 + 7, true),
        &mut rng,
        &mut out,
    );
    assert_eq!(out.len(), 7);
    let non_seeds = out
        .iter()
        .filter(|a| a.ip() >= IpAddr::V4(Ipv4Addr::from(100)))
        .count();
    assert_eq!(non_seeds, 5);
}

/// A store holding info-hashes `0..n`, one peer each, announced at `t(1)`.
fn store_of(n: u32) -> PeerStore {
    let mut s = PeerStore::new(1000, 10, 10_000, TTL, [1; 16]);
    for i in 0..n {
        s.announce(t(1), ih(i), v4(i, 1), false);
    }
    s
}

#[test]
fn sample_returns_distinct_stored_info_hashes() {
    let mut s = store_of(500);
    let mut rng = Rng::new([8; 32]);
    for max in [0, 1, 20, 64, 65, 300, 499, 500, 501, 10_000] {
        let mut out = Vec::new();
        s.sample(t(1), INTERVAL, &mut rng, max, &mut out);
        assert_eq!(out.len(), max.min(500), "max {max}");
        let mut sorted = out.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), out.len(), "distinct, max {max}");
        assert!(out.iter().all(|id| s.contains(id)));
    }
    // Uniform: every info-hash is drawn about equally often, the interval passing between
    // draws so that each is a fresh one.
    let mut counts = alloc::vec![0u32; 500];
    for i in 0..2000 {
        let mut out = Vec::new();
        s.sample(t(1) + INTERVAL * (i + 1), INTERVAL, &mut rng, 20, &mut out);
        for id in out {
            counts[ih_index(&id)] += 1;
        }
    }
    // Expected 80 each, standard deviation about 9.
    assert!(
        counts.iter().all(|&c| (40..=125).contains(&c)),
        "{counts:?}"
    );
    assert_eq!(s.info_hash_count(), 500);
}

/// Replies within the interval share one sample: each gets a prefix of it, as long as it asks
/// for; after the interval, a new draw.
#[test]
fn sample_is_cached_for_the_interval() {
    let mut s = store_of(500);
    let mut rng = Rng::new([8; 32]);
    let draw = |s: &mut PeerStore, rng: &mut Rng, now, max| {
        let mut out = Vec::new();
        s.sample(now, INTERVAL, rng, max, &mut out);
        assert_eq!(out.len(), max, "at {now:?}");
        assert!(distinct(&out));
        assert!(out.iter().all(|id| s.contains(id)));
        out
    };
    let first = draw(&mut s, &mut rng, t(10), 47);
    // Other lengths within the interval: prefixes of one sample of 64.
    let full = draw(&mut s, &mut rng, t(11), 64);
    assert_eq!(full[..47], first[..]);
    for (at, max) in [(12, 0), (100, 1), (200, 30), (309, 59), (309, 47)] {
        assert_eq!(draw(&mut s, &mut rng, t(at), max), full[..max], "max {max}");
    }
    // An info-hash announced meanwhile waits for the next draw.
    s.announce(t(20), ih(9999), v4(9999, 1), false);
    assert_eq!(draw(&mut s, &mut rng, t(21), 64), full);
    // The interval has passed: a new draw, cached in turn.
    let second = draw(&mut s, &mut rng, t(310), 47);
    assert_ne!(second, first);
    assert_eq!(draw(&mut s, &mut rng, t(609), 47), second);
    assert_ne!(draw(&mut s, &mut rng, t(610), 47), second);
    // A longer interval keeps a sample longer; a shorter one redraws sooner.
    let kept = draw(&mut s, &mut rng, t(610), 20);
    let mut out = Vec::new();
    s.sample(t(1000), Duration::from_secs(1000), &mut rng, 20, &mut out);
    assert_eq!(out, kept);
    out.clear();
    s.sample(t(1000), Duration::from_secs(100), &mut rng, 20, &mut out);
    assert_ne!(out, kept);
    check(&s);
    assert!(s.memory_usage() <= bound(&s));
}

/// Every prefix of a cached sample is a uniform random subset: the first info-hash alone, and
/// the first five, are each any stored info-hash equally often over fresh draws.
#[test]
fn every_prefix_of_a_fresh_sample_is_uniform() {
    let n = 100;
    let mut s = store_of(n);
    let mut rng = Rng::new([5; 32]);
    let mut first = alloc::vec![0u32; n as usize];
    let mut five = alloc::vec![0u32; n as usize];
    let mut last = alloc::vec![0u32; n as usize];
    for i in 0..4000 {
        let mut out = Vec::new();
        // Past the interval: each call draws again.
        s.sample(t(1) + INTERVAL * (i + 1), INTERVAL, &mut rng, 64, &mut out);
        assert_eq!(out.len(), 64);
        first[ih_index(&out[0])] += 1;
        last[ih_index(&out[63])] += 1;
        for id in &out[..5] {
            five[ih_index(id)] += 1;
        }
    }
    // Expected 40 for one position (standard deviation about 6.3), 200 for five (about 14).
    assert!(first.iter().all(|&c| (12..=75).contains(&c)), "{first:?}");
    assert!(last.iter().all(|&c| (12..=75).contains(&c)), "{last:?}");
    assert!(five.iter().all(|&c| (130..=275).contains(&c)), "{five:?}");
}

/// A store of at most the cap is not cached: every info-hash is returned, the newest included.
#[test]
fn small_store_sample_includes_what_was_just_announced() {
    let mut s = PeerStore::new(1000, 10, 10_000, TTL, [1; 16]);
    let mut rng = Rng::new([8; 32]);
    for i in 0..SAMPLE_CACHE_MAX as u32 {
        s.announce(t(1), ih(i), v4(i, 1), false);
        let mut out = Vec::new();
        s.sample(t(1), INTERVAL, &mut rng, 64, &mut out);
        assert_eq!(out.len(), i as usize + 1);
        assert!(out.contains(&ih(i)), "{i}");
    }
    // Below the cap's worth asked from a small store: a fresh draw each time, as before.
    let mut seen = Vec::new();
    for _ in 0..200 {
        let mut out = Vec::new();
        s.sample(t(2), INTERVAL, &mut rng, 10, &mut out);
        assert_eq!(out.len(), 10);
        assert!(distinct(&out));
        seen.extend(out);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), SAMPLE_CACHE_MAX);
    // A store that shrinks back to the cap forgets its sample: once past the cap again, a
    // new draw (which most often includes the newest info-hash), not the old snapshot.
    let long = TTL * 4;
    let mut scenarios = 0;
    let mut newest_seen = 0;
    for seed in 0..=255u8 {
        let mut s = PeerStore::new(1000, 10, 10_000, TTL, [1; 16]).with_sample_cap(8);
        s.announce(t(1), ih(0), v4(0, 1), false);
        for i in 1..9 {
            s.announce(t(2), ih(i), v4(i, 1), false);
        }
        let mut key = [seed; 32];
        key[0] = 0xa5;
        let mut rng = Rng::new(key);
        let mut cached = Vec::new();
        s.sample(t(3), long, &mut rng, 8, &mut cached);
        if cached.contains(&ih(0)) {
            continue;
        }
        // ih(0), outside the sample, expires: 8 stored, all returned.
        s.expire(t(1) + TTL);
        let mut out = Vec::new();
        s.sample(t(1) + TTL, long, &mut rng, 8, &mut out);
        assert_eq!(out.len(), 8);
        s.announce(t(1) + TTL, ih(100), v4(100, 1), false);
        out.clear();
        s.sample(t(1) + TTL, long, &mut rng, 8, &mut out);
        newest_seen += usize::from(out.contains(&ih(100)));
        scenarios += 1;
        if scenarios == 20 {
            break;
        }
    }
    assert!(scenarios >= 15, "{scenarios}");
    // 8 in 9 expected.
    assert!(
        newest_seen * 3 >= scenarios * 2,
        "{newest_seen} of {scenarios}"
    );
}

/// An info-hash that leaves the store leaves the cached sample: expired or evicted, it is
/// never offered again, and the rest of the sample is still served.
#[test]
fn removed_info_hashes_leave_the_cached_sample() {
    let mut s = PeerStore::new(1000, 10, 10_000, TTL, [1; 16]);
    for i in 0..200 {
        s.announce(t(u64::from(i)), ih(i), v4(i, 1), false);
    }
    let mut rng = Rng::new([8; 32]);
    // An interval longer than the TTL, so that only the removal can change the sample.
    let long = TTL * 4;
    let mut cached = Vec::new();
    s.sample(t(200), long, &mut rng, 64, &mut cached);
    assert_eq!(cached.len(), 64);
    // The first 100 info-hashes expire.
    s.expire(t(99) + TTL);
    assert_eq!(s.len(), 100);
    let survivors: Vec<Id> = cached.iter().copied().filter(|h| s.contains(h)).collect();
    assert!(
        survivors.len() < 64 && survivors.len() >= 10,
        "{}",
        survivors.len()
    );
    check(&s);
    let mut out = Vec::new();
    s.sample(t(100) + TTL, long, &mut rng, 10, &mut out);
    assert_eq!(out, survivors[..10]);
    // More than the survivors: drawn again, from what is stored.
    out.clear();
    s.sample(t(100) + TTL, long, &mut rng, 64, &mut out);
    assert_eq!(out.len(), 64);
    assert!(distinct(&out));
    assert!(out.iter().all(|h| s.contains(h) && ih_index(h) >= 100));

    // Evictions at the info-hash cap, within one interval.
    let mut s = PeerStore::new(100, 10, 10_000, TTL, [1; 16]);
    for i in 0..100 {
        s.announce(t(1), ih(i), v4(i, 1), false);
    }
    let mut redraws = 0;
    let mut previous = Vec::new();
    for i in 100..1000 {
        let mut out = Vec::new();
        s.sample(t(2), INTERVAL, &mut rng, 30, &mut out);
        assert_eq!(out.len(), 30);
        assert!(distinct(&out));
        assert!(out.iter().all(|h| s.contains(h)), "{i}");
        if !previous.is_empty() && out != previous {
            redraws += 1;
        }
        previous = out;
        let outcome = s.announce(t(2), ih(i), v4(i, 1), false);
        assert!(matches!(
            outcome,
            AnnounceOutcome::AddedEvicting(Eviction::InfoHash(_))
        ));
        check(&s);
    }
    // Most evictions miss the sample or leave it long enough; some force a new draw.
    assert!((1..900).contains(&redraws), "{redraws}");
}

/// The cached sample is part of the store's memory.
#[test]
fn cached_sample_is_counted_in_memory() {
    let mut s = store_of(500);
    let before = s.memory_usage();
    let mut rng = Rng::new([8; 32]);
    let mut out = Vec::new();
    s.sample(t(1), INTERVAL, &mut rng, 47, &mut out);
    assert!(s.memory_usage() >= before + 64 * size_of::<Id>());
    assert!(s.memory_usage() <= bound(&s));
}

#[test]
fn same_seed_same_results() {
    let run = || {
        let mut s = PeerStore::new(50, 20, 300, TTL, [3; 16]);
        let mut rng = Rng::new([9; 32]);
        let mut log = Vec::new();
        for i in 0..2000u32 {
            let h = ih(below(&mut rng, 80) as u32);
            let out = s.announce(t(u64::from(i)), h, v4(rng.next_u32(), 1), i % 3 == 0);
            log.push(alloc::format!("{out:?}"));
            let mut peers = Vec::new();
            s.peers(
                t(u64::from(i)),
                &h,
                sel(Family::V4, 100, false),
                &mut rng,
                &mut peers,
            );
            log.push(alloc::format!("{peers:?}"));
            let mut sample = Vec::new();
            s.sample(t(u64::from(i)), INTERVAL, &mut rng, 5, &mut sample);
            log.push(alloc::format!("{sample:?}"));
        }
        log
    };
    assert_eq!(run(), run());
}

#[test]
fn flooding_one_info_hash_stays_bounded() {
    let mut s = PeerStore::new(100, 50, 1000, TTL, [1; 16]);
    let h = ih(1);
    for i in 0..100_000u32 {
        s.announce(t(u64::from(i / 100)), h, v4(i, 1), false);
    }
    check(&s);
    assert_eq!(s.peer_count(), 50);
    assert_eq!(s.len(), 1);
    assert!(
        s.memory_usage() <= bound(&s),
        "{} > {}",
        s.memory_usage(),
        bound(&s)
    );
}

#[test]
fn flooding_many_info_hashes_stays_bounded() {
    let mut s = PeerStore::new(2048, 50, 10_000, TTL, [1; 16]);
    let mut rng = Rng::new([2; 32]);
    for i in 0..100_000u32 {
        let h = Id::random(&mut rng);
        s.announce(t(u64::from(i / 100)), h, v4(i, 1), false);
    }
    check(&s);
    assert_eq!(s.len(), 2048);
    assert!(
        s.memory_usage() <= bound(&s),
        "{} > {}",
        s.memory_usage(),
        bound(&s)
    );
}

#[test]
fn flooding_every_cap_at_once_stays_bounded() {
    // Many addresses into a few hundred info-hashes: the total cap binds.
    let mut s = PeerStore::new(512, 64, 8192, TTL, [1; 16]);
    let mut rng = Rng::new([3; 32]);
    for i in 0..200_000u32 {
        let h = ih(below(&mut rng, 600) as u32);
        s.announce(t(u64::from(i / 1000)), h, v4(rng.next_u32(), 1), false);
    }
    check(&s);
    assert_eq!(s.peer_count(), 8192);
    assert!(
        s.memory_usage() <= bound(&s),
        "{} > {}",
        s.memory_usage(),
        bound(&s)
    );
    // Then everything expires and the memory goes back down.
    s.expire(t(10_000));
    check(&s);
    assert!(s.is_empty());
    assert!(s.memory_usage() < 100_000, "{}", s.memory_usage());
}

#[test]
fn default_config_bound_is_under_twenty_two_mib() {
    let s = PeerStore::from_config(&Config::new([0; 32]), [0; 16]);
    assert!(bound(&s) < 22 << 20, "{}", bound(&s));
}

#[test]
fn time_going_backwards_keeps_order() {
    let mut s = PeerStore::new(10, 10, 100, TTL, [1; 16]);
    let h = ih(1);
    s.announce(t(100), h, v4(1, 1), false);
    s.announce(t(50), h, v4(2, 1), false);
    s.announce(t(10), h, v4(1, 1), false);
    check(&s);
    s.expire(t(100) + TTL);
    assert!(s.is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Announce {
        hash: u8,
        ip: u16,
        v6: bool,
        seed: bool,
        dt: u16,
    },
    Expire {
        dt: u16,
    },
    Peers {
        hash: u8,
        v6: bool,
        budget: u16,
    },
    Sample {
        max: u8,
        dt: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), any::<u16>(), any::<bool>(), any::<bool>(), 0u16..400).prop_map(
            |(hash, ip, v6, seed, dt)| Op::Announce { hash: hash % 24, ip: ip % 300, v6, seed, dt }
        ),
        1 => (0u16..2000).prop_map(|dt| Op::Expire { dt }),
        3 => (any::<u8>(), any::<bool>(), 0u16..1400).prop_map(
            |(hash, v6, budget)| Op::Peers { hash: hash % 24, v6, budget }
        ),
        2 => (0u8..16, 0u16..200).prop_map(|(max, dt)| Op::Sample { max, dt }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn invariants_hold_and_replies_fit(
        caps in (1usize..12, 1usize..8, 1usize..60),
        sample_cap in 0usize..10,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let ttl = Duration::from_secs(600);
        let mut s = PeerStore::new(caps.0, caps.1, caps.2, ttl, [4; 16])
            .with_sample_cap(sample_cap);
        let mut rng = Rng::new([4; 32]);
        let mut now = t(0);
        for op in ops {
            match op {
                Op::Announce { hash, ip, v6: is_v6, seed, dt } => {
                    now += Duration::from_secs(dt.into());
                    let addr = if is_v6 { v6(ip.into(), 1) } else { v4(ip.into(), 1) };
                    let out = s.announce(now, ih(hash.into()), addr, seed);
                    prop_assert_ne!(out, AnnounceOutcome::Refused);
                    prop_assert!(s.contains(&ih(hash.into())));
                    prop_assert!(all(&s, now, &ih(hash.into()), Family::of(addr.ip())).contains(&addr));
                }
                Op::Expire { dt } => {
                    now += Duration::from_secs(dt.into());
                    s.expire(now);
                    if let Some(next) = s.next_expiry() {
                        prop_assert!(next > now);
                    }
                }
                Op::Peers { hash, v6: is_v6, budget } => {
                    let family = if is_v6 { Family::V6 } else { Family::V4 };
                    let available = all(&s, now, &ih(hash.into()), family).len();
                    let mut out = Vec::new();
                    s.peers(now, &ih(hash.into()), sel(family, budget.into(), false), &mut rng, &mut out);
                    prop_assert!(out.len() * family.value_cost() <= usize::from(budget));
                    prop_assert_eq!(out.len(), available.min(usize::from(budget) / family.value_cost()));
                }
                Op::Sample { max, dt } => {
                    now += Duration::from_secs(dt.into());
                    let max = usize::from(max);
                    let mut out = Vec::new();
                    s.sample(now, INTERVAL, &mut rng, max, &mut out);
                    prop_assert_eq!(out.len(), max.min(s.len()));
                    prop_assert!(distinct(&out));
                    prop_assert!(out.iter().all(|h| s.contains(h)));
                }
            }
            check(&s);
        }
    }
}

/// Timings at the default caps:
/// `cargo test --release -p dht-proto peers::tests::measure -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, run on demand"]
fn measure() {
    use std::time::Instant as Clock;
    let config = Config::new([0; 32]);
    let mut s = PeerStore::from_config(&config, [1; 16]);
    let mut rng = Rng::new([1; 32]);
    let n = 1_000_000u32;
    let start = Clock::now();
    for i in 0..n {
        let h = ih(below(&mut rng, 20_000) as u32);
        s.announce(t(u64::from(i / 1000)), h, v4(rng.next_u32(), 1), i % 4 == 0);
    }
    let el = start.elapsed();
    std::println!(
        "announce: {:?}/op, len {}, peers {}, mem {} (bound {})",
        el / n,
        s.len(),
        s.peer_count(),
        s.memory_usage(),
        bound(&s)
    );
    let mut out = Vec::new();
    let start = Clock::now();
    for i in 0..100_000u32 {
        out.clear();
        s.peers(
            t(1000),
            &ih(i % 20_000),
            sel(Family::V4, 1000, false),
            &mut rng,
            &mut out,
        );
    }
    std::println!("peers: {:?}/op", start.elapsed() / 100_000);
    let start = Clock::now();
    for _ in 0..100_000u32 {
        out.clear();
        let mut ids = Vec::new();
        s.sample(t(1000), INTERVAL, &mut rng, 50, &mut ids);
    }
    std::println!("sample 50 (cached): {:?}/op", start.elapsed() / 100_000);
    let start = Clock::now();
    for i in 0..100_000u32 {
        let mut ids = Vec::new();
        s.sample(
            t(1000) + INTERVAL * (i + 1),
            INTERVAL,
            &mut rng,
            50,
            &mut ids,
        );
    }
    std::println!("sample 50 (redrawn): {:?}/op", start.elapsed() / 100_000);
    let start = Clock::now();
    for i in 0..100_000u32 {
        let _ = s.scrape(t(1000), &ih(i % 20_000));
    }
    std::println!("scrape: {:?}/op", start.elapsed() / 100_000);
    let start = Clock::now();
    s.expire(t(100_000));
    std::println!("expire all: {:?}", start.elapsed());
    // A swarm at the per-hash cap.
    let mut s = PeerStore::from_config(&config, [1; 16]);
    for i in 0..200 {
        s.announce(t(1), ih(1), v4(i, 1), false);
    }
    let start = Clock::now();
    for i in 0..100_000u32 {
        s.announce(t(2), ih(1), v4(1000 + i, 1), false);
    }
    std::println!(
        "announce into a full 200-peer swarm: {:?}/op",
        start.elapsed() / 100_000
    );
    let start = Clock::now();
    for _ in 0..100_000u32 {
        out.clear();
        s.peers(
            t(2),
            &ih(1),
            sel(Family::V4, 1200, false),
            &mut rng,
            &mut out,
        );
    }
    std::println!(
        "peers from 200 (150 fit): {:?}/op",
        start.elapsed() / 100_000
    );
    let tokens = crate::server::tokens::Tokens::new(&mut rng);
    let start = Clock::now();
    let mut ok = 0;
    for i in 0..1_000_000u32 {
        let tk = tokens.issue(v4(i, 0).ip());
        ok += tokens.verify(v4(i, 0).ip(), tk.as_bytes()) as u32;
    }
    std::println!(
        "token issue+verify: {:?}/op ({ok})",
        start.elapsed() / 1_000_000
    );
    let mut r = Rng::new([0; 32]);
    let start = Clock::now();
    let mut x = 0u64;
    for _ in 0..1_000_000 {
        x ^= r.next_u64();
    }
    std::println!("rng next_u64: {:?}/op ({x})", start.elapsed() / 1_000_000);
}

#[test]
fn random_subsets_skip_expired_and_other_family_peers_and_pairs_are_uniform() {
    // 6 live IPv4 peers, 2 expired ones and 2 IPv6 ones: 2 of the 6 live IPv4 ones per reply.
    let mut s = PeerStore::new(10, 20, 1000, TTL, [1; 16]);
    let h = ih(1);
    for i in 0..2 {
        s.announce(t(0), h, v4(100 + i, 1), false);
    }
    for i in 0..2 {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i + 1);
        s.announce(t(1), h, SocketAddr::new(IpAddr::V6(ip), 1), false);
    }
    for i in 0..6 {
        s.announce(t(1), h, v4(i, 1), false);
    }
    let now = t(0).saturating_add(TTL);
    let mut rng = Rng::new([8; 32]);
    let mut pairs = [[0u32; 6]; 6];
    for _ in 0..15_000 {
        let mut out = Vec::new();
        s.peers(now, &h, sel(Family::V4, 2 * 8, false), &mut rng, &mut out);
        let ips: Vec<usize> = out
            .iter()
            .map(|a| match a.ip() {
                IpAddr::V4(ip) => u32::from(ip) as usize,
                IpAddr::V6(_) => panic!("an IPv6 peer in an IPv4 reply"),
            })
            .collect();
        assert_eq!(ips.len(), 2);
        assert!(ips.iter().all(|&i| i < 6), "an expired peer: {ips:?}");
        assert!(ips[0] < ips[1], "stored order, distinct");
        pairs[ips[0]][ips[1]] += 1;
    }
    // 15 pairs, 1000 expected each; standard deviation about 31.
    for (a, row) in pairs.iter().enumerate() {
        for &c in row.iter().skip(a + 1) {
            assert!((850..=1_150).contains(&c), "{pairs:?}");
        }
    }
}

/// A refresh finds its peer by the address of its own family among peers of both (an IPv4
/// address whose bits equal an IPv6 peer's is another peer), and moves only that one.
#[test]
fn refresh_finds_its_peer_among_both_families() {
    let mut s = PeerStore::new(10, 100, 1000, TTL, [1; 16]);
    let h = ih(1);
    for i in 1..=20u32 {
        s.announce(t(1), h, v4(i, 1000), false);
        s.announce(t(1), h, v6(u128::from(i), 1000), false);
    }
    assert_eq!(s.peer_count(), 40);
    // The IPv6 address with the bits of v4(5) is another peer than v4(5).
    assert_eq!(
        s.announce(t(2), h, v6(5, 2000), false),
        AnnounceOutcome::Refreshed
    );
    assert_eq!(
        s.announce(t(2), h, v4(7, 3000), false),
        AnnounceOutcome::Refreshed
    );
    assert_eq!(s.peer_count(), 40);
    let v4s = all(&s, t(2), &h, Family::V4);
    let v6s = all(&s, t(2), &h, Family::V6);
    assert!(v4s.contains(&v4(5, 1000)) && v4s.contains(&v4(7, 3000)));
    assert!(!v4s.contains(&v4(7, 1000)));
    assert!(v6s.contains(&v6(5, 2000)) && !v6s.contains(&v6(5, 1000)));
    assert!(v6s.contains(&v6(7, 1000)));
    check(&s);
}

/// The set of drawn indices answers as a set does for up to 64 values, colliding or not.
#[test]
fn drawn_indices_are_a_set() {
    let mut rng = crate::test_rng::TestRng(5);
    for round in 0..200 {
        let mut drawn = Drawn::new();
        let mut model = BTreeSet::new();
        let range = [70, 1000, usize::MAX - 1][round % 3];
        for _ in 0..64 {
            // Draws repeat often in a small range, and patterned values too.
            let i = match rng.below(3) {
                0 => rng.below(range),
                1 => rng.below(8) * 128,
                _ => model.iter().next().copied().unwrap_or(0),
            };
            assert_eq!(drawn.insert(i), model.insert(i), "round {round}, {i}");
        }
    }
}

#[test]
fn announces_find_their_peer_among_colliding_short_keys() {
    // 40 peers (two groups of 16 and a remainder), among them IPv6 addresses whose folded key
    // equals an IPv4 address's and each other's: a refresh must find its own peer only.
    let mut store = PeerStore::new(10, 100, 1000, Duration::from_secs(1800), [5; 16]);
    let h = Id::new([1; 20]);
    let v4 = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    // Folds to the key of 10.0.0.i: the high half is zero, the low half 10.0.0.i.
    let twin = |i: u32| IpAddr::V6(Ipv6Addr::from(u128::from(0x0a00_0000 + i)));
    // The same key again: 10.0.0.i in both halves of the low word cancels, in the high words.
    let triplet = |i: u32| {
        let x = u128::from(0x0a00_0000 + i);
        IpAddr::V6(Ipv6Addr::from((x << 96) | (x << 64) | (x << 32)))
    };
    assert_eq!(short_key(twin(3)), short_key(v4(3)));
    assert_eq!(short_key(triplet(3)), short_key(v4(3)));
    let mut t = Instant::from_secs(1);
    let mut peers = Vec::new();
    for i in 0..14 {
        peers.extend([v4(i), twin(i), triplet(i)]);
    }
    peers.truncate(40);
    for (n, ip) in peers.iter().enumerate() {
        let out = store.announce(t, h, SocketAddr::new(*ip, 1000 + n as u16), false);
        assert_eq!(out, AnnounceOutcome::Added, "{ip}");
    }
    check(&store);
    // Refresh each, oldest first: found (not added) and moved to the end, the others kept.
    for ip in peers.clone() {
        t += Duration::from_secs(1);
        let out = store.announce(t, h, SocketAddr::new(ip, 2000), true);
        assert_eq!(out, AnnounceOutcome::Refreshed, "{ip}");
        let swarm = &store.swarms[&h];
        assert_eq!(swarm.peers.len(), 40);
        assert_eq!(swarm.peers.last().map(|p| (p.ip, p.port)), Some((ip, 2000)));
        check(&store);
    }
}
