//! The traversal's schedule: intervals honoured, `num` weighed, the table's cap.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::traverse::{Failure, Traverse, TraverseConfig};
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

fn traverse(config: TraverseConfig) -> Traverse {
    Traverse::new(config, [1; 16])
}

#[test]
fn a_node_is_not_asked_again_before_its_interval() {
    let mut t = traverse(TraverseConfig::default());
    assert!(t.learn(at(0), id(1), addr(1)));
    assert_eq!(t.take_due(at(0)), Some((addr(1), id(1))));
    // More info-hashes than samples: back as soon as the interval allows.
    t.on_answer(at(10), addr(1), 20, Some(100), Some(900));
    assert_eq!(t.due_of(&addr(1)), Some(at(910)));
    assert_eq!(t.take_due(at(909)), None);
    // Hearing of it again does not bring it forward.
    assert!(!t.learn(at(500), id(1), addr(1)));
    assert_eq!(t.due_of(&addr(1)), Some(at(910)));
    assert_eq!(t.take_due(at(910)), Some((addr(1), id(1))));
}

#[test]
fn num_decides_how_soon_a_revisit_is_worth_it() {
    let t = traverse(TraverseConfig::default());
    let i = Duration::from_secs(300);
    assert_eq!(t.pause(20, Some(50), Some(300)), i, "more to see");
    assert_eq!(t.pause(5, Some(5), Some(300)), i * 2, "all seen");
    assert_eq!(t.pause(0, Some(0), Some(300)), i * 4, "empty");
    assert_eq!(t.pause(3, None, None), i * 2, "no num, default interval");
    // Hostile values stay within the bounds.
    assert_eq!(
        t.pause(20, Some(i64::MAX), Some(i64::MAX)),
        Duration::from_secs(6 * 3600)
    );
    assert_eq!(t.pause(20, Some(-1), Some(-5)), Duration::from_secs(2));
    assert_eq!(t.pause(0, Some(i64::MIN), Some(0)), Duration::from_secs(4));
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
    t.on_answer(at(1), addr(0), 0, Some(0), Some(300));
    assert_eq!(t.take_due(at(1)), Some((addr(2), id(2))));
    // A request that could not be sent goes back to the schedule.
    t.put_back(at(2), addr(2));
    assert_eq!(t.in_flight(), 1);
    assert_eq!(t.due_of(&addr(2)), Some(at(2)));
}
