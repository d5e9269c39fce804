use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::rng::Rng;

fn v4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i))
}

fn policy(cap: usize) -> Policy {
    Policy {
        cap,
        rate: Some(RateLimit::CLIENT),
        ratio: 3,
        burst_bytes: 4096,
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn keys_are_v4_addresses_and_v6_slash_64s() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(source_key(a), source_key(b));
    assert_ne!(source_key(a), source_key(c));
    let mapped = IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped());
    assert_eq!(source_key(mapped), source_key("1.2.3.4".parse().unwrap()));
    assert_ne!(
        source_key("1.2.3.4".parse().unwrap()),
        source_key("1.2.3.5".parse().unwrap())
    );
    // No IPv4 key equals an IPv6 one, whatever the bits.
    let v6 = IpAddr::V6(Ipv6Addr::from(u128::from(0x0102_0304u32) << 64));
    assert_ne!(source_key(v6), source_key("1.2.3.4".parse().unwrap()));
}

#[test]
fn a_source_gets_its_burst_then_its_rate_then_a_block() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(16), [2; 16]);
    let ip = v4(1);
    for _ in 0..50 {
        assert_eq!(s.admit(t(0), ip, 100, &mut rng), Admit::Yes);
    }
    assert_eq!(s.admit(t(0), ip, 100, &mut rng), Admit::OverBudget);
    // Blocked for five minutes, whatever it does.
    assert_eq!(s.admit(t(1_000), ip, 100, &mut rng), Admit::Blocked);
    assert_eq!(s.admit(t(299_999), ip, 100, &mut rng), Admit::Blocked);
    // Then the bucket has refilled.
    for _ in 0..50 {
        assert_eq!(s.admit(t(300_000), ip, 100, &mut rng), Admit::Yes);
    }
    // Others are not affected.
    assert_eq!(s.admit(t(0), v4(2), 100, &mut rng), Admit::Yes);
}

#[test]
fn a_source_at_its_rate_is_never_refused() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(16), [2; 16]);
    // 5 queries per second for ten minutes: exactly the rate.
    for i in 0..3_000u64 {
        assert_eq!(
            s.admit(t(i * 200), v4(1), 100, &mut rng),
            Admit::Yes,
            "query {i}"
        );
    }
}

#[test]
fn no_rate_limit_admits_everything() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(
        Policy {
            rate: None,
            ..policy(16)
        },
        [2; 16],
    );
    for _ in 0..10_000 {
        assert_eq!(s.admit(t(0), v4(1), 100, &mut rng), Admit::Yes);
    }
}

#[test]
fn the_table_stays_at_its_cap() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(100), [2; 16]);
    for i in 0..10_000 {
        let _ = s.admit(t(u64::from(i)), v4(i), 100, &mut rng);
        assert!(s.len() <= 100);
    }
    assert_eq!(s.len(), 100);
    assert!(s.memory_usage() < 100 * 200, "{} bytes", s.memory_usage());
    let mut none = Sources::new(policy(0), [2; 16]);
    assert_eq!(none.admit(t(0), v4(1), 100, &mut rng), Admit::Yes);
    assert_eq!(none.len(), 0);
}

/// 100,000 spoofed one-shot sources pass through a 1,000-entry table while one address
/// floods: the flooder's block survives every one of them.
#[test]
fn spoofed_sources_cannot_flush_a_flooder() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(1_000), [2; 16]);
    let flooder = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let mut now = 0;
    let mut admitted = 0;
    for i in 0..100_000u32 {
        now += 1;
        let _ = s.admit(t(now), v4(i), 95, &mut rng);
        if s.admit(t(now), flooder, 95, &mut rng) == Admit::Yes {
            admitted += 1;
        }
    }
    // The burst, then nothing: 100 seconds at 1,000 queries/s, blocked all along.
    assert_eq!(admitted, 50);
    assert_eq!(s.len(), 1_000);
}

#[test]
fn verified_sources_survive_spoofed_churn() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(1_000), [2; 16]);
    let honest = v4(999_999);
    s.verify(t(0), honest, &mut rng);
    for i in 0..100_000u32 {
        let _ = s.admit(t(u64::from(i)), v4(i), 95, &mut rng);
    }
    assert_eq!(s.allowance(t(100_000), honest), u64::MAX);
}

#[test]
fn reflection_allows_a_burst_then_three_times_the_input() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(16), [2; 16]);
    let victim = v4(7);
    // Unknown: the burst.
    assert_eq!(s.allowance(t(0), victim), 4096);
    let _ = s.admit(t(0), victim, 100, &mut rng);
    assert_eq!(s.allowance(t(0), victim), 4096);
    s.note_sent(t(0), victim, 4000);
    assert_eq!(s.allowance(t(0), victim), 96);
    // A sustained flood: 100 bytes in every 10 ms for a minute. Whatever we send within the
    // allowance, out stays under 3 × in plus the burst over every 10 seconds.
    let mut sent = 0u64;
    let mut received = 0u64;
    for step in 1..=6_000u64 {
        let now = t(step * 10);
        let _ = s.admit(now, victim, 100, &mut rng);
        received += 100;
        let allow = s.allowance(now, victim);
        let len = allow.min(1_000);
        s.note_sent(now, victim, len as usize);
        sent += len;
    }
    assert!(sent <= 3 * received + 4096 * 6, "{sent} for {received}");
    assert!(
        sent >= 2 * received,
        "{sent} for {received}: the ratio is usable"
    );
    // Silence: after two windows it is a stranger again, with the burst.
    assert_eq!(s.allowance(t(60_000 + 20_000), victim), 4096);
}

#[test]
fn verified_destinations_are_not_limited() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(16), [2; 16]);
    s.verify(t(0), v4(3), &mut rng);
    s.note_sent(t(0), v4(3), 1 << 20);
    assert_eq!(s.allowance(t(0), v4(3)), u64::MAX);
}

#[test]
fn windows_slide() {
    let mut w = Windows {
        start: t(0),
        ..Windows::default()
    };
    w.out_cur = 1000;
    w.roll(t(10_000));
    assert_eq!(w.estimate(t(10_000)), (0, 1000));
    assert_eq!(w.estimate(t(15_000)), (0, 500));
    w.roll(t(19_999));
    assert_eq!(w.estimate(t(19_999)).1, 0);
    w.roll(t(40_000));
    assert_eq!(w.estimate(t(40_000)), (0, 0));
}

#[test]
fn buckets_refill_and_cap() {
    let mut b = Bucket::full(2, t(0));
    assert!(b.take(1) && b.take(1) && !b.take(1));
    b.refill(t(500), 2, 2);
    assert!(b.take(1) && !b.take(1));
    b.refill(t(1_000_000), 2, 2);
    assert!(b.take(2) && !b.take(1));
    // Time going backwards adds nothing.
    b.refill(t(0), 2, 2);
    assert!(!b.take(1));
}

/// The slot of the last lookup is remembered: once another source takes that slot, the
/// evicted source must not find the newcomer's state there, and lookups that alternate between
/// sources each find their own.
#[test]
fn a_reused_slot_is_not_found_under_its_old_source() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(1), [2; 16]);
    let (a, b) = (v4(1), v4(2));
    let _ = s.admit(t(0), a, 100, &mut rng);
    s.note_sent(t(0), a, 4000);
    assert_eq!(s.allowance(t(0), a), 96);
    // B takes the only slot: A is a stranger again, and what is sent to A is not charged to B.
    let _ = s.admit(t(0), b, 100, &mut rng);
    assert_eq!(s.allowance(t(0), a), 4096);
    s.note_sent(t(0), a, 4000);
    assert_eq!(s.allowance(t(0), b), 4096);
    s.verify(t(0), a, &mut rng);
    assert_eq!(
        s.allowance(t(0), b),
        4096,
        "B is not verified by A's round trip"
    );

    let mut s = Sources::new(policy(16), [2; 16]);
    for i in 1..=4 {
        let _ = s.admit(t(0), v4(i), 100, &mut rng);
    }
    for round in 0..3u64 {
        for i in 1..=4 {
            s.note_sent(t(0), v4(i), i as usize * 10);
            assert_eq!(
                s.allowance(t(0), v4(i)),
                4096 - (round + 1) * u64::from(i) * 10
            );
        }
    }
}

/// Sources that went quiet are forgotten and their memory given back; a blocked source, a
/// verified one and one still in its reflection window are kept.
#[test]
fn quiet_sources_are_forgotten_and_memory_shrinks() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(4_096), [2; 16]);
    for i in 0..4_000u32 {
        let _ = s.admit(t(0), v4(i), 100, &mut rng);
    }
    let full = s.memory_usage();
    let blocked = v4(10_000);
    for _ in 0..51 {
        let _ = s.admit(t(0), blocked, 100, &mut rng);
    }
    let verified = v4(10_001);
    s.verify(t(0), verified, &mut rng);
    // Idle, but not yet for FORGET_UNVERIFIED: a new source sweeps and keeps them all.
    let _ = s.admit(t(19_000), v4(20_000), 100, &mut rng);
    assert_eq!(s.len(), 4_003);
    // A source we keep sending to (to its window) is not idle in the reflection sense.
    let talked_to = v4(3);
    s.note_sent(t(25_000), talked_to, 500);
    // Past it (and past the next sweep time): the one-shot sources go.
    let _ = s.admit(t(29_500), v4(20_001), 100, &mut rng);
    assert_eq!(
        s.len(),
        5,
        "blocked, verified, talked-to and the two newest"
    );
    assert!(
        s.memory_usage() * 10 < full,
        "{} of {full}",
        s.memory_usage()
    );
    assert_eq!(s.admit(t(30_000), blocked, 100, &mut rng), Admit::Blocked);
    assert_eq!(s.allowance(t(30_000), verified), u64::MAX);
    // The talked-to source's window still counts the 500 bytes sent.
    assert_eq!(s.allowance(t(30_000), talked_to), 4096 - 500);
    // The verified source is forgotten once idle for FORGET_VERIFIED.
    let later = FORGET_VERIFIED.as_millis() as u64 + 1_000;
    let _ = s.admit(t(later), v4(20_002), 100, &mut rng);
    assert_eq!(s.allowance(t(later), verified), 4096);
    // A forgotten source comes back as a fresh entry, with its full burst.
    for _ in 0..50 {
        assert_eq!(s.admit(t(later), v4(7), 100, &mut rng), Admit::Yes);
    }
}

/// Forgetting cannot be used to escape a block: the blocked source is kept however long it
/// stays quiet, until the block ends.
#[test]
fn a_block_outlives_idleness() {
    let mut rng = Rng::new([1; 32]);
    let mut s = Sources::new(policy(16), [2; 16]);
    let ip = v4(1);
    for _ in 0..51 {
        let _ = s.admit(t(0), ip, 100, &mut rng);
    }
    for k in 1..29u64 {
        let _ = s.admit(t(k * 10_000), v4(100 + k as u32), 100, &mut rng);
    }
    assert_eq!(s.admit(t(290_000), ip, 100, &mut rng), Admit::Blocked);
}
