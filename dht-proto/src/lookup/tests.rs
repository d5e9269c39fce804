use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
        6881,
    )
}

fn id_from(seed: u64) -> Id {
    let mut b = [0u8; 20];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for byte in &mut b {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    Id::new(b)
}

/// The `n` ids of `net` nearest to `target`.
fn nearest(net: &[Id], target: &Id, n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..net.len()).collect();
    idx.sort_by_key(|&i| net[i].distance(target));
    idx.truncate(n);
    idx
}

#[test]
fn seeds_are_contacted_first_and_become_candidates() {
    let target = id_from(1);
    let mut l = Lookup::new(target, 8, 3, 64);
    l.add_seed(addr(1));
    let c = l.next().unwrap();
    assert_eq!(
        c,
        Contact {
            id: None,
            addr: addr(1)
        }
    );
    assert_eq!(l.finished(), None);
    l.on_response(None, false, id_from(2), addr(1), None);
    assert_eq!(l.finished(), Some(Finish::Converged));
    assert_eq!(l.closest(8).len(), 1);
}

#[test]
fn nobody_answering_is_exhausted() {
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    l.add_candidate(id_from(2), addr(2), 1);
    let c = l.next().unwrap();
    assert_eq!(l.finished(), None);
    l.on_slow(c.id, c.addr);
    assert_eq!(l.finished(), None, "a slow request may still answer");
    l.on_failure(c.id, c.addr, true);
    assert_eq!(l.finished(), Some(Finish::Exhausted));
}

/// A small network: fewer than k nodes exist, one answered, the other is past its short
/// timeout and nothing else is left to ask. The lookup ends now instead of waiting a full
/// timeout for a straggler (found by the interoperability runs: 5 s per lookup).
#[test]
fn with_answers_in_hand_slow_stragglers_are_not_awaited() {
    let target = id_from(1);
    let mut l = Lookup::new(target, 8, 3, 64);
    l.add_candidate(id_from(2), addr(2), 1);
    l.add_candidate(id_from(3), addr(3), 1);
    let a = l.next().unwrap();
    let b = l.next().unwrap();
    l.on_response(a.id, false, a.id.unwrap(), a.addr, None);
    assert_eq!(
        l.finished(),
        None,
        "b may still answer within its short timeout"
    );
    l.on_slow(b.id, b.addr);
    assert_eq!(l.finished(), Some(Finish::Converged));
}

/// A request past the lookup's release time no longer holds the end (the spare that answered
/// takes its place in the result) but still counts toward α: releasing sends nothing more.
#[test]
fn a_late_request_releases_the_end_but_keeps_its_slot() {
    let target = id_from(1);
    let (k, alpha) = (2, 1);
    let net: Vec<Id> = (2..12).map(id_from).collect();
    let mut l = Lookup::new(target, k, alpha, 64);
    for (i, id) in net.iter().enumerate() {
        l.add_candidate(*id, addr(i), 1);
    }
    let order = nearest(&net, &target, net.len());
    let first = l.next().unwrap();
    l.on_response(first.id, false, net[order[0]], first.addr, None);
    // The last round: the second closest and the spares (within α + k in flight).
    let asked: Vec<Contact> = core::iter::from_fn(|| l.next()).collect();
    assert_eq!(asked.len(), alpha + k);
    let (second, spare) = (asked[0], asked[1]);
    assert_eq!(second.id, Some(net[order[1]]));
    l.on_response(spare.id, false, spare.id.unwrap(), spare.addr, None);
    assert_eq!(
        l.finished(),
        None,
        "the second closest is within its release time"
    );
    l.on_release(second.id, second.addr);
    assert_eq!(l.finished(), Some(Finish::Converged));
    let closest: Vec<Id> = l.closest(k).iter().map(|n| n.id).collect();
    assert_eq!(closest, [net[order[0]], spare.id.unwrap()]);
    // Still in α: with the first and the spare answered, two requests remain in flight.
    assert_eq!(l.in_flight(), 2);
    // A late answer still counts (it is nearer than the spare).
    l.on_response(second.id, false, net[order[1]], second.addr, None);
    let closest: Vec<Id> = l.closest(k).iter().map(|n| n.id).collect();
    assert_eq!(closest, [net[order[0]], net[order[1]]]);
}

/// The release only applies to a request within its short timeout, to candidates only, and
/// a slow or failed request stays so.
#[test]
fn release_after_the_short_timeout_or_to_a_seed_changes_nothing() {
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    l.add_candidate(id_from(2), addr(2), 1);
    l.add_seed(addr(9));
    let seed = l.next().unwrap();
    let c = l.next().unwrap();
    l.on_release(seed.id, seed.addr);
    l.on_slow(c.id, c.addr);
    l.on_release(c.id, c.addr);
    assert_eq!(l.candidates()[0].state, State::Slow);
    assert_eq!(l.in_flight(), 1, "the seed");
}

/// The release time: none before three answers, then the median of the latest
/// [`ANSWER_TIMES`] answer times (× [`RELEASE_PERCENT`]), at least [`MIN_RELEASE`].
#[test]
fn release_time_is_the_median_of_the_latest_answers() {
    let ms = Duration::from_millis;
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    assert_eq!(l.release_after(), None);
    l.on_answer_time(ms(300));
    l.on_answer_time(ms(100));
    assert_eq!(l.release_after(), None, "two answers say too little");
    l.on_answer_time(ms(200));
    let percent = |d: u64| ms(d * u64::from(RELEASE_PERCENT) / 100).max(MIN_RELEASE);
    assert_eq!(l.release_after(), Some(percent(200)));
    // A ring of the latest: after ANSWER_TIMES fast answers the slow ones are forgotten.
    for _ in 0..ANSWER_TIMES {
        l.on_answer_time(ms(60));
    }
    assert_eq!(l.release_after(), Some(percent(60)));
    for _ in 0..ANSWER_TIMES {
        l.on_answer_time(ms(1));
    }
    assert_eq!(l.release_after(), Some(MIN_RELEASE));
    // Saturated: a minute-long answer time does not wrap.
    for _ in 0..ANSWER_TIMES {
        l.on_answer_time(Duration::from_secs(100));
    }
    assert_eq!(l.release_after(), Some(percent(u64::from(u16::MAX))));
}

#[test]
fn slow_requests_let_the_lookup_widen() {
    let mut l = Lookup::new(id_from(1), 8, 2, 64);
    for i in 2..10 {
        l.add_candidate(id_from(i), addr(i as usize), 1);
    }
    let a = l.next().unwrap();
    let _b = l.next().unwrap();
    assert_eq!(l.next(), None, "alpha = 2");
    l.on_slow(a.id, a.addr);
    assert!(l.next().is_some(), "a slow request frees its slot");
}

/// Once a candidate has answered, the last round asks the k closest and
/// [`LAST_ROUND_SPARE`] more at once (within the in-flight cap of α + k); the spares do not
/// hold the end once the k closest have answered.
#[test]
fn the_last_round_asks_spares_that_do_not_hold_the_end() {
    let target = id_from(1);
    let (k, alpha) = (4, 1);
    let net: Vec<Id> = (2..40).map(id_from).collect();
    let mut l = Lookup::new(target, k, alpha, 64);
    for (i, id) in net.iter().enumerate() {
        l.add_candidate(*id, addr(i), 1);
    }
    let order = nearest(&net, &target, net.len());
    let first = l.next().unwrap();
    assert_eq!(first.id, Some(net[order[0]]));
    assert_eq!(l.next(), None, "α = 1 until something answered");
    l.on_response(first.id, false, net[order[0]], first.addr, None);
    let mut asked = Vec::new();
    while let Some(c) = l.next() {
        asked.push(c);
    }
    let want = (k - 1 + LAST_ROUND_SPARE).min(alpha + k);
    assert!(want > k - 1, "more than the k closest are asked");
    assert_eq!(asked.len(), want);
    for (c, &i) in asked.iter().zip(&order[1..]) {
        assert_eq!(c.id, Some(net[i]), "nearest first");
    }
    // The k closest answer; the spares are still out.
    for (c, &i) in asked.iter().zip(&order[1..k]) {
        assert_eq!(l.finished(), None);
        l.on_response(c.id, false, net[i], c.addr, None);
    }
    assert_eq!(l.finished(), Some(Finish::Converged));
    let closest: Vec<Id> = l.closest(k).iter().map(|n| n.id).collect();
    let want: Vec<Id> = order[..k].iter().map(|&i| net[i]).collect();
    assert_eq!(closest, want);
}

/// A dead node among the k closest: its stand-in, asked in the same last round, has answered
/// by the time the dead one's short timeout passes, so the lookup ends then.
#[test]
fn a_spare_stands_in_for_a_dead_node_among_the_closest() {
    let target = id_from(1);
    let k = 4;
    let net: Vec<Id> = (2..40).map(id_from).collect();
    let mut l = Lookup::new(target, k, 1, 64);
    for (i, id) in net.iter().enumerate() {
        l.add_candidate(*id, addr(i), 1);
    }
    let order = nearest(&net, &target, net.len());
    let first = l.next().unwrap();
    l.on_response(first.id, false, net[order[0]], first.addr, None);
    let asked: Vec<Contact> = core::iter::from_fn(|| l.next()).collect();
    // The second closest is dead; everyone else answers.
    let dead = asked[0];
    assert_eq!(dead.id, Some(net[order[1]]));
    for (c, &i) in asked.iter().zip(&order[1..]).skip(1) {
        l.on_response(c.id, false, net[i], c.addr, None);
    }
    assert_eq!(l.finished(), None, "the dead one may still answer");
    l.on_slow(dead.id, dead.addr);
    assert_eq!(l.finished(), Some(Finish::Converged));
    assert_eq!(l.next(), None, "nothing more to ask");
    let closest: Vec<Id> = l.closest(k).iter().map(|n| n.id).collect();
    let want: Vec<Id> = [0, 2, 3, 4].iter().map(|&r| net[order[r]]).collect();
    assert_eq!(closest, want);
}

#[test]
fn candidate_cap_keeps_the_closest() {
    let target = id_from(1);
    let mut l = Lookup::new(target, 2, 1, 4);
    let ids: Vec<Id> = (2..40).map(id_from).collect();
    for (i, id) in ids.iter().enumerate() {
        l.add_candidate(*id, addr(i), 1);
    }
    assert_eq!(l.candidates().len(), 4);
    let mut want: Vec<Distance> = ids.iter().map(|id| id.distance(&target)).collect();
    want.sort();
    let got: Vec<Distance> = l.candidates().iter().map(|c| c.distance).collect();
    assert_eq!(got, want[..4]);
}

#[test]
fn long_tokens_are_not_kept() {
    assert!(TokenBuf::new(&[0; crate::small::MAX_SMALL]).is_some());
    assert!(TokenBuf::new(&[0; crate::small::MAX_SMALL + 1]).is_none());
    assert_eq!(TokenBuf::new(b"abc").unwrap().as_slice(), b"abc");
}

proptest! {
    /// Against a network where every node knows everybody and answers with its k closest, a
    /// lookup never exceeds α + k in flight, queries nobody twice, terminates, and (when nobody fails) finds
    /// exactly the true k closest nodes.
    #[test]
    fn lookup_finds_the_true_closest(
        n in 10usize..120,
        k in 1usize..10,
        alpha in 1usize..5,
        seed in any::<u64>(),
        fail_mask in any::<u64>(),
        with_failures in any::<bool>(),
        order in proptest::collection::vec(any::<u16>(), 0..400),
    ) {
        let net: Vec<Id> = (0..n).map(|i| id_from(seed ^ ((i as u64 + 1) * 7919))).collect();
        let target = id_from(seed.rotate_left(17) ^ 0xabcdef);
        let fails = |i: usize| with_failures && (fail_mask >> (i % 64)) & 1 == 1 && i % 3 == 0;
        let mut l = Lookup::new(target, k, alpha, 64.max(k));
        // Start from three arbitrary nodes.
        for (i, id) in net.iter().enumerate().take(3) {
            l.add_candidate(*id, addr(i), 1);
        }
        let mut queried = BTreeSet::new();
        let mut in_flight: Vec<Contact> = Vec::new();
        let mut steps = 0usize;
        let mut order = order.into_iter();
        loop {
            while let Some(c) = l.next() {
                prop_assert!(queried.insert(c.addr), "queried twice: {:?}", c.addr);
                in_flight.push(c);
            }
            // α, plus the last round: at most the k closest alive beyond it.
            prop_assert!(in_flight.len() <= alpha + k);
            if let Some(f) = l.finished() {
                // Requests still in flight may only be to nodes farther than every one of the k
                // closest that answered: their answers cannot change the result's k nearest
                // unless the network lies, and the lookup does not wait for them.
                let answered: Vec<Id> = l.closest(k).iter().map(|ni| ni.id).collect();
                for c in &in_flight {
                    let Some(d) = c.id.map(|id| id.distance(&target)) else { continue };
                    prop_assert!(answered.len() < k || answered.iter().all(|a| a.distance(&target) < d));
                }
                if !with_failures {
                    prop_assert_eq!(f, Finish::Converged);
                    let got: Vec<Id> = l.closest(k).iter().map(|ni| ni.id).collect();
                    let want: Vec<Id> = nearest(&net, &target, k).iter().map(|&i| net[i]).collect();
                    prop_assert_eq!(got, want);
                }
                break;
            }
            prop_assert!(!in_flight.is_empty(), "not finished, nothing in flight");
            let pick = order.next().map_or(0, usize::from) % in_flight.len();
            let c = in_flight.swap_remove(pick);
            let i = (0..n).find(|&i| addr(i) == c.addr).unwrap();
            if fails(i) {
                l.on_failure(c.id, c.addr, false);
            } else {
                l.on_response(c.id, false, net[i], c.addr, Some(b"tok"));
                for j in nearest(&net, &target, k + 2) {
                    l.add_candidate(net[j], addr(j), 2);
                }
                // Plus some random far nodes, like a real response.
                l.add_candidate(net[(i * 7 + 3) % n], addr((i * 7 + 3) % n), 2);
            }
            steps += 1;
            prop_assert!(steps < 10 * n, "no termination");
        }
    }
}

/// A lookup through a single contact survives a lost datagram: the contact is asked again
/// after the timeout, up to `MAX_RETRIES` times.
#[test]
fn a_lone_contact_that_times_out_is_asked_once_more() {
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    l.add_candidate(id_from(2), addr(2), 1);
    let c = l.next().unwrap();
    l.on_slow(c.id, c.addr);
    l.on_timeout(c.id, c.addr, true);
    assert_eq!(
        l.finished(),
        None,
        "the lookup gives the contact a second chance"
    );
    let again = l.next().unwrap();
    assert_eq!(again, c);
    l.on_response(again.id, false, id_from(2), again.addr, None);
    assert_eq!(l.finished(), Some(Finish::Converged));

    // The timeout after the last retry is final.
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    l.add_candidate(id_from(2), addr(2), 1);
    for _ in 0..MAX_RETRIES {
        let c = l.next().unwrap();
        l.on_timeout(c.id, c.addr, false);
        assert_eq!(l.finished(), None);
    }
    let last = l.next().unwrap();
    l.on_timeout(last.id, last.addr, false);
    assert_eq!(l.next(), None);
    assert_eq!(l.finished(), Some(Finish::Exhausted));
}

/// Seeds (ids unknown, as in a bootstrap through one router) get the same second chance.
#[test]
fn a_lone_seed_that_times_out_is_asked_once_more() {
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    l.add_seed(addr(1));
    let c = l.next().unwrap();
    l.on_timeout(None, c.addr, false);
    assert_eq!(l.finished(), None);
    for _ in 0..MAX_RETRIES {
        let again = l.next().unwrap();
        assert_eq!(again, c);
        l.on_timeout(None, again.addr, false);
    }
    assert_eq!(l.next(), None);
    assert_eq!(l.finished(), Some(Finish::Exhausted));
}

/// With α or more other contacts still live, a timeout is a failure at once: no retry where
/// the lookup has others to ask.
#[test]
fn timeouts_are_not_retried_when_enough_contacts_are_live() {
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    for i in 2..7 {
        l.add_candidate(id_from(i), addr(i as usize), 1);
    }
    let c = l.next().unwrap();
    l.on_timeout(c.id, c.addr, false);
    let state = |l: &Lookup| {
        l.candidates()
            .iter()
            .find(|x| x.addr == c.addr)
            .map(|x| x.state)
    };
    assert_eq!(state(&l), Some(State::Failed));
    // An error answer is never retried either, however few contacts are left.
    let mut l = Lookup::new(id_from(1), 8, 3, 64);
    l.add_candidate(id_from(2), addr(2), 1);
    let c = l.next().unwrap();
    l.on_failure(c.id, c.addr, false);
    assert_eq!(l.finished(), Some(Finish::Exhausted));
}
