//! `Dht` and `DhtHandle` on loopback sockets: the adapter's smoke tests.

use core::net::SocketAddr;
use core::ops::ControlFlow;
use core::time::Duration;
use std::sync::mpsc;

use dht_proto::{Config, Event, Id, QueryStatus};
use dht_std::{Dht, DhtHandle, Error, State};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn spawn() -> DhtHandle {
    DhtHandle::spawn(Dht::bind(loopback(), Config::new(dht_std::os_seed())).unwrap()).unwrap()
}

/// Runs `f` on a thread and fails the test if it takes longer than 20 s.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the test ran for more than 20 s")
}

#[test]
fn handle_commands_on_a_small_swarm() {
    bounded(|| {
        let first = spawn();
        let seed = first.local_addr();
        let nodes: Vec<DhtHandle> = (0..5).map(|_| spawn()).collect();
        for n in &nodes {
            assert!(n.bootstrap(&[seed]).unwrap() >= 1);
        }
        let info = nodes[4].info().unwrap();
        assert!(info.bootstrapped);
        assert_eq!(info.id, nodes[4].id());
        assert!(info.stats.responses_received >= 1);

        let pong = nodes[0].ping(seed).unwrap();
        assert_eq!(pong.id, first.id());
        assert!(pong.rtt < Duration::from_secs(5));

        let info_hash = Id::from([0x5a; 20]);
        let outcome = nodes[1].announce(info_hash, Some(4242)).unwrap();
        assert!(outcome.announced >= 1, "{outcome:?}");

        let mut stream = nodes[3].get_peers(info_hash).unwrap();
        let peers: Vec<SocketAddr> = stream.by_ref().collect();
        assert_eq!(peers, vec!["127.0.0.1:4242".parse().unwrap()]);
        assert!(stream.outcome().is_some());

        let target = nodes[2].id();
        let found = nodes[4].find_node(target).unwrap();
        assert!(found.closest.iter().any(|n| n.id == target), "{found:?}");

        let state: State = nodes[4].state().unwrap();
        assert_eq!(state.id, Some(nodes[4].id()));
        assert!(!state.nodes.is_empty());
    });
}

#[test]
fn ping_of_a_silent_address_times_out() {
    bounded(|| {
        let node = spawn();
        let silent = std::net::UdpSocket::bind(loopback()).unwrap();
        let err = node.ping(silent.local_addr().unwrap()).unwrap_err();
        assert!(
            matches!(err, Error::Query(QueryStatus::TimedOut)),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "no answer in time");
    });
}

#[test]
fn commands_without_contacts_are_refused() {
    let node = spawn();
    let err = node.get_peers(Id::from([1; 20])).unwrap_err();
    assert!(matches!(err, Error::Command(_)), "{err:?}");
}

#[test]
fn subscribers_see_events_and_shutdown_returns_the_dht() {
    bounded(|| {
        let first = spawn();
        let second = spawn();
        let events = second.subscribe().unwrap();
        second.bootstrap(&[first.local_addr()]).unwrap();
        let mut saw_bootstrapped = false;
        while let Ok(e) = events.recv_timeout(Duration::from_secs(5)) {
            if matches!(e, Event::Bootstrapped { .. }) {
                saw_bootstrapped = true;
                break;
            }
        }
        assert!(saw_bootstrapped);
        let dht = second.shutdown().unwrap();
        assert!(dht.node().is_bootstrapped());
        assert!(dht.node().routing_table().contains(&first.id()));
    });
}

#[test]
fn the_blocking_run_loop_drives_two_nodes() {
    bounded(|| {
        let server = spawn();
        let mut dht = Dht::bind(loopback(), Config::new(dht_std::os_seed())).unwrap();
        let q = dht.bootstrap([server.local_addr()]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let finished = dht
            .run_until(Some(deadline), |_, event| match event {
                Event::QueryFinished { query, outcome } if query == q => {
                    ControlFlow::Break(outcome)
                }
                _ => ControlFlow::Continue(()),
            })
            .unwrap()
            .expect("the bootstrap finished");
        assert_eq!(finished.status, QueryStatus::Completed);
        assert!(dht.node().routing_table().contains(&server.id()));
        // Nothing more to do: run_until returns at the deadline.
        let t0 = std::time::Instant::now();
        let none: Option<()> = dht
            .run_until(Some(t0 + Duration::from_millis(50)), |_, _| {
                ControlFlow::Continue(())
            })
            .unwrap();
        assert!(none.is_none());
        assert!(t0.elapsed() >= Duration::from_millis(45));
    });
}

#[test]
fn dual_stack_nodes_talk_over_ipv6() {
    bounded(|| {
        let Ok(v6) = Dht::bind("[::1]:0".parse().unwrap(), Config::new(dht_std::os_seed())) else {
            return; // no IPv6 on this machine
        };
        let server = DhtHandle::spawn(v6).unwrap();
        let client = DhtHandle::spawn(
            Dht::bind("[::1]:0".parse().unwrap(), Config::new(dht_std::os_seed())).unwrap(),
        )
        .unwrap();
        let pong = client.ping(server.local_addr()).unwrap();
        assert_eq!(pong.id, server.id());
    });
}

#[test]
fn an_unspecified_bind_reaches_both_families() {
    bounded(|| {
        let v4 = spawn();
        let Ok(v6) = Dht::bind("[::1]:0".parse().unwrap(), Config::new(dht_std::os_seed())) else {
            return; // no IPv6 on this machine
        };
        let v6 = DhtHandle::spawn(v6).unwrap();
        let mut config = Config::new(dht_std::os_seed());
        config.address_policy = dht_proto::AddressPolicy::ALLOW_ALL;
        let both = Dht::bind("0.0.0.0:0".parse().unwrap(), config).unwrap();
        if both.local_addrs().len() < 2 {
            return; // IPv6 sockets unavailable
        }
        let both = DhtHandle::spawn(both).unwrap();
        assert_eq!(both.ping(v4.local_addr()).unwrap().id, v4.id());
        assert_eq!(both.ping(v6.local_addr()).unwrap().id, v6.id());
        let io = both.info().unwrap().io;
        assert_eq!((io.send_errors, io.unroutable), (0, 0));
    });
}

#[test]
fn the_socket_counters_count_system_calls_and_datagrams() {
    bounded(|| {
        let node = spawn();
        let to = node.local_addr();
        let client = std::net::UdpSocket::bind(loopback()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // 8 pings with distinct transaction ids; every one is answered.
        for t in 0..8u8 {
            let mut ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:a".to_vec();
            ping.extend_from_slice(&[b'0' + t]);
            ping.extend_from_slice(b"1:y1:qe");
            client.send_to(&ping, to).unwrap();
        }
        let mut buf = [0u8; 1500];
        for _ in 0..8 {
            client.recv_from(&mut buf).unwrap();
        }
        let io = node.info().unwrap().io;
        assert!(io.recv_datagrams >= 8, "{io:?}");
        assert!((1..=io.recv_datagrams).contains(&io.recv_calls), "{io:?}");
        assert!(io.send_datagrams >= 8, "{io:?}");
        assert!((1..=io.send_datagrams).contains(&io.send_calls), "{io:?}");
    });
}
