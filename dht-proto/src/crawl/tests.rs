use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::QueryId;
use crate::rng::Rng;
use crate::time::Instant;

fn id(b: u8) -> Id {
    Id::new([b; 20])
}

fn query(method: MethodKind, target: Option<Id>) -> Event {
    Event::QueryReceived {
        from: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 6881),
        id: id(0xee),
        method,
        target,
        announced_port: None,
    }
}

#[test]
fn ids_are_spread_evenly() {
    let mut rng = Rng::new([7; 32]);
    let ids = spread_ids(8, &mut rng);
    let firsts: Vec<u8> = ids.iter().map(|i| i.as_bytes()[0]).collect();
    assert_eq!(firsts, [0, 32, 64, 96, 128, 160, 192, 224]);
    assert!(ids.iter().all(|i| i.as_bytes()[1..4] == [0, 0, 0]));
    assert_ne!(ids[0], ids[1]);
    assert_ne!(
        ids[0].as_bytes()[4..],
        ids[1].as_bytes()[4..],
        "the rest is random"
    );
    assert_eq!(
        spread_ids(8, &mut Rng::new([7; 32])),
        ids,
        "deterministic per seed"
    );
    assert!(spread_ids(0, &mut rng).is_empty());
    assert_eq!(spread_ids(1, &mut rng)[0].as_bytes()[..4], [0; 4]);
    let three = spread_ids(3, &mut rng);
    assert_eq!(three[1].as_bytes()[..4], [0x55, 0x55, 0x55, 0x55]);
    assert_eq!(three[2].as_bytes()[..4], [0xaa, 0xaa, 0xaa, 0xaa]);
}

#[test]
fn the_seen_set_forgets_the_oldest_at_its_cap() {
    let mut seen = SeenSet::new(3, &mut Rng::new([1; 32]));
    assert!(seen.insert(id(1)));
    assert!(!seen.insert(id(1)));
    assert!(seen.insert(id(2)));
    assert!(seen.insert(id(3)));
    assert_eq!((seen.len(), seen.evicted()), (3, 0));
    assert!(seen.insert(id(4)), "full: the oldest goes");
    assert_eq!((seen.len(), seen.evicted()), (3, 1));
    assert!(!seen.contains(&id(1)));
    assert!(seen.contains(&id(2)) && seen.contains(&id(4)));
    assert!(!seen.insert(id(2)), "a repeat does not refresh or evict");
    assert!(seen.insert(id(1)), "forgotten, so new again");
    assert!(!seen.contains(&id(2)));
    assert_eq!(SeenSet::new(0, &mut Rng::new([1; 32])).capacity(), 1);
}

#[test]
fn the_harvester_reports_each_info_hash_once() {
    let mut h = Harvester::new(100, &mut Rng::new([1; 32]));
    let mut out = Vec::new();
    assert_eq!(
        h.observe(&query(MethodKind::GetPeers, Some(id(1))), &mut out),
        1
    );
    assert_eq!(
        h.observe(&query(MethodKind::AnnouncePeer, Some(id(2))), &mut out),
        1
    );
    assert_eq!(
        h.observe(&query(MethodKind::AnnouncePeer, Some(id(1))), &mut out),
        0
    );
    // Targets of other methods are node ids or item keys, not info-hashes.
    assert_eq!(
        h.observe(&query(MethodKind::FindNode, Some(id(3))), &mut out),
        0
    );
    assert_eq!(
        h.observe(&query(MethodKind::SampleInfohashes, Some(id(3))), &mut out),
        0
    );
    assert_eq!(h.observe(&query(MethodKind::GetPeers, None), &mut out), 0);
    let samples = Event::SamplesFound {
        query: QueryId::new(1, 0),
        from: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(5, 6, 7, 8)), 1),
        samples: vec![id(2), id(4), id(5), id(4)],
        num: Some(10),
        interval: Some(300),
        nodes: Vec::new(),
    };
    assert_eq!(h.observe(&samples, &mut out), 2);
    assert_eq!(
        out,
        [
            Found {
                info_hash: id(1),
                how: HowFound::GetPeers
            },
            Found {
                info_hash: id(2),
                how: HowFound::AnnouncePeer
            },
            Found {
                info_hash: id(4),
                how: HowFound::Sample
            },
            Found {
                info_hash: id(5),
                how: HowFound::Sample
            },
        ]
    );
    assert_eq!((h.reported(), h.repeats(), h.seen().len()), (4, 3, 4));
    assert_eq!(h.observe(&Event::RoutingTableEmpty, &mut out), 0);
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(9, 9, 9, last))
}

fn config(rate: u32, burst: u32) -> SendBudgetConfig {
    SendBudgetConfig {
        rate,
        burst,
        ..SendBudgetConfig::default()
    }
}

#[test]
fn the_global_rate_is_a_token_bucket() {
    let t0 = Instant::from_secs(10);
    let mut b = SendBudget::new(config(100, 5), t0, &mut Rng::new([1; 32]));
    for i in 0..5 {
        assert_eq!(b.try_send(t0, v4(i)), Ok(()));
    }
    // 100 per second: one every 10 ms.
    let until = t0 + Duration::from_millis(10);
    assert_eq!(b.try_send(t0, v4(5)), Err(Throttled::Global { until }));
    assert_eq!(
        b.try_send(t0 + Duration::from_millis(9), v4(5)),
        Err(Throttled::Global { until })
    );
    assert_eq!(b.try_send(until, v4(5)), Ok(()));
    // A long pause refills only up to the burst.
    let later = t0 + Duration::from_secs(60);
    for i in 0..5 {
        assert_eq!(b.try_send(later, v4(100 + i)), Ok(()));
    }
    assert!(matches!(
        b.try_send(later, v4(200)),
        Err(Throttled::Global { .. })
    ));
    assert_eq!((b.sent(), b.throttled()), (11, 3));
    // Time going backwards refills nothing and does not panic.
    assert!(matches!(
        b.try_send(t0, v4(201)),
        Err(Throttled::Global { .. })
    ));
}

#[test]
fn one_query_per_address_per_interval() {
    let t0 = Instant::from_secs(10);
    let mut b = SendBudget::new(SendBudgetConfig::default(), t0, &mut Rng::new([1; 32]));
    assert_eq!(b.try_send(t0, v4(1)), Ok(()));
    let until = t0 + Duration::from_secs(1);
    assert_eq!(
        b.try_send(t0 + Duration::from_millis(999), v4(1)),
        Err(Throttled::PerIp { until })
    );
    assert_eq!(b.try_send(t0, v4(2)), Ok(()), "another address may go");
    assert_eq!(b.ip_ready_at(t0, v4(1)), Some(until));
    assert_eq!(b.ip_ready_at(t0, v4(3)), None, "never asked: ready");
    assert_eq!(b.ip_ready_at(until, v4(1)), None);
    // A query created for an address waits: the address is not ready for another until
    // that one goes (or the reservation lapses), others yield to it, and it goes at once.
    b.reserve(t0, v4(3));
    let lapse = t0 + RESERVATION;
    assert_eq!(b.ip_ready_at(t0, v4(3)), Some(lapse));
    assert!(b.is_reserved(t0, v4(3)));
    assert!(matches!(
        b.try_send_unreserved(t0, v4(3)),
        Err(Throttled::PerIp { .. })
    ));
    assert_eq!(b.try_send(t0 + Duration::from_millis(5), v4(3)), Ok(()));
    assert!(!b.is_reserved(t0, v4(3)));
    assert_eq!(
        b.ip_ready_at(t0 + Duration::from_millis(5), v4(3)),
        Some(until + Duration::from_millis(5))
    );
    b.reserve(t0, v4(4));
    assert_eq!(
        b.ip_ready_at(lapse, v4(4)),
        None,
        "a stale reservation lapses"
    );
    assert_eq!(b.try_send_unreserved(lapse, v4(4)), Ok(()));
    assert_eq!(b.try_send(until, v4(1)), Ok(()));
    // IPv6 counts per /64; an IPv4-mapped address is its IPv4 address.
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(b.try_send(t0, a), Ok(()));
    assert!(matches!(
        b.try_send(t0, same_64),
        Err(Throttled::PerIp { .. })
    ));
    assert_eq!(b.try_send(t0, other_64), Ok(()));
    let mapped = IpAddr::V6(Ipv4Addr::new(9, 9, 9, 2).to_ipv6_mapped());
    assert!(matches!(
        b.try_send(t0, mapped),
        Err(Throttled::PerIp { .. })
    ));
}

#[test]
fn the_address_table_is_capped() {
    let t0 = Instant::from_secs(10);
    let mut b = SendBudget::new(
        SendBudgetConfig {
            max_tracked_ips: 3,
            ..SendBudgetConfig::default()
        },
        t0,
        &mut Rng::new([1; 32]),
    );
    for i in 0..3 {
        assert_eq!(b.try_send(t0, v4(i)), Ok(()));
    }
    assert_eq!(b.try_send(t0, v4(9)), Err(Throttled::TooManyIps));
    assert_eq!(b.tracked_ips(), 3);
    // Once their interval is over, the old addresses are forgotten to make room.
    let later = t0 + Duration::from_secs(1);
    assert_eq!(b.try_send(later, v4(9)), Ok(()));
    assert_eq!(b.tracked_ips(), 1);
}

proptest! {
    /// Whatever the sequence of attempts: no more than `burst + rate * window` queries in any
    /// window, and no two to one address within the interval.
    #[test]
    fn the_budget_holds(steps in proptest::collection::vec((0u64..40, 0u8..6), 1..400)) {
        let cfg = config(50, 5);
        let mut now = Instant::from_secs(1);
        let mut b = SendBudget::new(cfg, now, &mut Rng::new([1; 32]));
        let mut sent: Vec<(Instant, u8)> = Vec::new();
        for (dt, ip) in steps {
            now += Duration::from_millis(dt);
            if b.try_send(now, v4(ip)).is_ok() {
                sent.push((now, ip));
            }
        }
        for (i, &(t, ip)) in sent.iter().enumerate() {
            let window_end = t + Duration::from_secs(1);
            let in_window = sent[i..].iter().filter(|(u, _)| *u < window_end).count();
            prop_assert!(in_window <= 5 + 50, "{} in one second", in_window);
            let again = sent[i + 1..].iter().find(|(_, other)| *other == ip);
            if let Some((u, _)) = again {
                prop_assert!(*u >= window_end, "address {} twice within a second", ip);
            }
        }
    }
}
