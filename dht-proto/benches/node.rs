//! Incoming queries answered per second by one `Node` on one core: decode + handle + encode of
//! the response, for ping, find_node and get_peers (with 50 stored peers).
//!
//! Run with `cargo bench -p dht-proto --bench node`. Prints one table. The baseline column is
//! measured in the same run: decoding the query and encoding a response of the same shape with
//! the codec alone (the reply decoded beforehand), i.e. the work a node cannot avoid; the ratio is what the node adds on top.

mod common;

use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant as WallClock;

use common::{announce, answer_queries, id, query, verified_table};
use dht_proto::wire::krpc::{FindNode, GetPeers, Message, Ping, Query};
use dht_proto::{Config, Instant, Node};

/// Best of seven rounds of `n` calls of `f`, in ns per call.
fn measure(n: u32, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _round in 0..7 {
        let start = WallClock::now();
        for _ in 0..n {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(n));
    }
    best
}

fn main() {
    let now = Instant::from_secs(1);
    let mut config = Config::local_testing([3; 32]);
    config.limits.max_peers_per_info_hash = 100;
    // One querier at full speed: no per-source query budget (`benches/hostile.rs` measures it).
    config.limits.source_rate = None;
    let mut node = Node::new(config, now).expect("config");
    let mut buf = [0u8; 1500];
    // A table of a few hundred nodes, in the steady state of a running node: every entry has
    // answered (the node's verification pings get their responses).
    let now = verified_table(&mut node, now);
    let verified = node
        .routing_table()
        .iter()
        .filter(|e| e.is_verified())
        .count();
    assert!(
        verified * 10 >= node.routing_table().len() * 9,
        "{verified} verified"
    );
    // 50 peers announced for one info-hash, each from its own address with a valid token.
    let info_hash = id(999_999);
    let requester = id(123_456);
    for i in 0..50u8 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(12, 0, 0, i + 1)), 7000);
        announce(&mut node, now, from, info_hash, 6000 + u16::from(i), false);
    }
    while node.poll_event().is_some() {}
    assert_eq!(node.stored_peers(), 50, "all announces stored");

    let cases: [(&str, Vec<u8>); 3] = [
        ("ping", query(Query::Ping(Ping { id: requester }))),
        (
            "find_node",
            query(Query::FindNode(FindNode {
                id: requester,
                target: id(77),
                want: None,
            })),
        ),
        (
            "get_peers (50 peers)",
            query(Query::GetPeers(GetPeers {
                id: requester,
                info_hash,
                want: None,
                noseed: false,
                scrape: false,
            })),
        ),
    ];
    println!(
        "{:<22} {:>10} {:>13} {:>9} {:>13} {:>7}",
        "query", "ns/query", "queries/s", "reply B", "codec-only ns", "ratio"
    );
    // One querier (a second address would only add table churn to the measurement). It has
    // answered a ping of ours, as the contacts of a running node have, so the reflection rule
    // for strangers does not apply to it.
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(13, 0, 0, 1)), 6881);
    let _ = node.ping(now, from);
    answer_queries(&mut node, now, |_| Some(id(424_242)));
    // An optional argument keeps only the cases whose name contains it (for profiling).
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (name, datagram) in &cases {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        // Take the node's reply once, to replay it in the codec-only baseline.
        let _ = node.handle_datagram(now, from, datagram);
        let mut reply = Vec::new();
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            if t.to == from {
                reply = buf[..t.len].to_vec();
            }
        }
        let node_ns = measure(200_000, || {
            let _ = node.handle_datagram(now, from, black_box(datagram));
            while let Some(t) = node.poll_transmit(now, &mut buf) {
                black_box(&buf[..t.len]);
            }
        });
        let limits = Default::default();
        let mut out = [0u8; 1500];
        let r = Message::decode(&reply, &limits).expect("reply decodes");
        let codec_ns = measure(200_000, || {
            let q = Message::decode(black_box(datagram), &limits).expect("query decodes");
            black_box(&q);
            black_box(black_box(&r).encode(&mut out).expect("fits"));
        });
        println!(
            "{:<22} {:>10.1} {:>13.0} {:>9} {:>13.1} {:>6.2}x",
            name,
            node_ns,
            1e9 / node_ns,
            reply.len(),
            codec_ns,
            node_ns / codec_ns
        );
    }
    let stats = node.stats();
    assert!(
        stats.responses_sent > 3 * 7 * 200_000,
        "every query was answered"
    );
}
