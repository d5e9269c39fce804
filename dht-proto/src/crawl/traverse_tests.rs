//! The traversal's schedule: intervals honoured, `num` weighed, the table's cap.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::traverse::{Answer, Failure, Traverse, TraverseConfig, Worth};
use crate::id::Id;
use crate::time::Instant;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 6881)
}

fn id(i: u32) -> Id {
    let mut b = [0; 20];
    b[..4].copy_from_slice(&i.to_be_bytes());
    Id::new(b)
}

fn at(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn answer(samples: usize, num: Option<i64>, interval: Option<i64>) -> Answer {
    Answer {
        samples,
        num,
        interval,
    }
}

fn traverse(config: TraverseConfig) -> Traverse {
    Traverse::new(config, [1; 16])
}

#[test]
fn a_node_is_not_asked_again_before_its_interval() {
    let mut t = traverse(TraverseConfig::default());
    assert!(t.learn(at(0), id(1), addr(1)));
    assert_eq!(t.take_due(at(0)), Some((addr(1), id(1))));
    // The first pause is stretched by a random share (here a half) of the interval.
    t.on_answer(at(10), addr(1), answer(20, Some(100), Some(900)), 500_000);
    assert_eq!(t.due_of(&addr(1)), Some(at(1360)));
    assert_eq!(t.take_due(at(1359)), None);
    // Hearing of it again does not bring it forward.
    assert!(!t.learn(at(500), id(1), addr(1)));
    assert_eq!(t.due_of(&addr(1)), Some(at(1360)));
    assert_eq!(t.take_due(at(1360)), Some((addr(1), id(1))));
    // Later pauses are the interval itself (more info-hashes than samples: back when allowed).
    t.on_answer(at(1361), addr(1), answer(20, Some(100), Some(900)), 999_999);
    assert_eq!(t.due_of(&addr(1)), Some(at(2261)));
    assert_eq!(t.take_due(at(2260)), None);
}

#[test]
fn num_decides_what_a_revisit_is_worth() {
    let t = traverse(TraverseConfig::default());
    let i = Duration::from_secs(300);
    assert_eq!(
        t.pause(20, Some(50), Some(300)),
        (i, Worth::Rich),
        "more to see"
    );
    assert_eq!(t.pause(5, Some(5), Some(300)), (i, Worth::Seen), "all seen");
    assert_eq!(t.pause(0, Some(0), Some(300)), (i, Worth::Empty), "empty");
    assert_eq!(
        t.pause(0, None, None),
        (i, Worth::Empty),
        "default interval"
    );
    assert_eq!(t.pause(3, None, Some(60)).1, Worth::Seen);
    // Hostile values stay within the bounds.
    let six_hours = Duration::from_secs(6 * 3600);
    assert_eq!(
        t.pause(20, Some(i64::MAX), Some(i64::MAX)),
        (six_hours, Worth::Rich)
    );
    assert_eq!(
        t.pause(20, Some(-1), Some(-5)),
        (Duration::from_secs(1), Worth::Seen)
    );
    assert_eq!(
        t.pause(0, Some(i64::MIN), Some(0)).0,
        Duration::from_secs(1)
    );
}

#[test]
fn valuable_nodes_go_first_without_starving_the_others() {
    let mut t = traverse(TraverseConfig::default());
    // 30 nodes, a third of each worth, all due again at 300 s.
    for i in 0..30 {
        t.learn(at(0), id(i), addr(i));
        assert!(t.take_due(at(0)).is_some());
    }
    for i in 0..30 {
        let a = match i % 3 {
            0 => answer(20, Some(100), Some(300)),
            1 => answer(5, Some(5), Some(300)),
            _ => answer(0, Some(0), Some(300)),
        };
        t.on_answer(at(0), addr(i), a, 0);
    }
    assert_eq!(t.worth_of(&addr(0)), Some(Worth::Rich as usize));
    assert_eq!(t.worth_of(&addr(1)), Some(Worth::Seen as usize));
    assert_eq!(t.worth_of(&addr(2)), Some(Worth::Empty as usize));
    let first: Vec<u32> = (0..16)
        .map(|_| {
            let (a, _) = t.take_due(at(300)).unwrap();
            match a.ip() {
                IpAddr::V4(v4) => (u32::from(v4) - 0x0a00_0000) % 3,
                IpAddr::V6(_) => unreachable!(),
            }
        })
        .collect();
    let count = |c| first.iter().filter(|&&x| x == c).count();
    // Turns of 4 : 3 : 1.
    assert_eq!((count(0), count(1), count(2)), (8, 6, 2), "{first:?}");
}

#[test]
fn the_table_is_full_at_its_cap_and_dead_nodes_make_room() {
    let config = TraverseConfig {
        max_nodes: 3,
        max_failures: 2,
        ..TraverseConfig::default()
    };
    let mut t = traverse(config);
    for i in 0..3 {
        assert!(t.learn(at(0), id(i), addr(i)));
    }
    assert!(!t.learn(at(0), id(3), addr(3)), "at the cap");
    assert_eq!((t.len(), t.dropped), (3, 1));
    // Node 0 fails twice: retried after 60 s, then forgotten.
    assert_eq!(t.take_due(at(0)), Some((addr(0), id(0))));
    t.on_failure(at(5), addr(0), Failure::Timeout);
    assert_eq!(t.due_of(&addr(0)), Some(at(65)));
    assert_eq!(t.take_due(at(0)), Some((addr(1), id(1))));
    t.on_failure(at(5), addr(1), Failure::Unsupported);
    assert_eq!(
        t.due_of(&addr(1)),
        Some(at(3605)),
        "no BEP 51: asked rarely"
    );
    assert_eq!(t.take_due(at(0)), Some((addr(2), id(2))));
    assert_eq!(t.take_due(at(64)), None);
    assert_eq!(t.take_due(at(65)), Some((addr(0), id(0))));
    t.on_failure(at(70), addr(0), Failure::Timeout);
    assert_eq!((t.len(), t.forgotten), (2, 1));
    assert!(t.learn(at(70), id(3), addr(3)), "room again");
    assert_eq!(t.in_flight(), 1);
}

#[test]
fn requests_in_flight_stop_at_the_cap() {
    let config = TraverseConfig {
        max_in_flight: 2,
        ..TraverseConfig::default()
    };
    let mut t = traverse(config);
    for i in 0..5 {
        t.learn(at(0), id(i), addr(i));
    }
    assert!(t.take_due(at(0)).is_some());
    assert!(t.take_due(at(0)).is_some());
    assert_eq!(t.take_due(at(0)), None, "two in flight");
    t.on_answer(at(1), addr(0), answer(0, Some(0), Some(300)), 0);
    assert_eq!(t.take_due(at(1)), Some((addr(2), id(2))));
    // A request that could not be sent goes back to the schedule.
    t.put_back(at(2), addr(2));
    assert_eq!(t.in_flight(), 1);
    assert_eq!(t.due_of(&addr(2)), Some(at(2)));
}
