//! The node's guards at their caps: per-source budgets, the reflection rule, the upload
//! budget, table pings caused by strangers, replies within `max_reply`.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::*;
use crate::config::Limits;
use crate::wire::krpc::{
    AnnouncePeer, Body, FindNode, Get, GetPeers, Message, Ping, Put, Query, Response,
};

fn ip(net: u8, i: u32) -> SocketAddr {
    let b = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(net, b[1], b[2], b[3])), 6881)
}

fn id(i: u32) -> Id {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&i.to_be_bytes());
    b[19] = 1;
    Id::new(b)
}

fn encode(tid: &[u8], body: Body<'_>) -> Vec<u8> {
    let msg = Message {
        transaction_id: tid,
        version: None,
        ip: None,
        read_only: false,
        body,
    };
    let mut buf = [0u8; 1500];
    let n = msg.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn q(query: Query<'_>) -> Vec<u8> {
    encode(b"qq", Body::Query(query))
}

fn ping() -> Vec<u8> {
    q(Query::Ping(Ping { id: id(7) }))
}

fn get_peers(info_hash: Id, scrape: bool) -> Vec<u8> {
    q(Query::GetPeers(GetPeers {
        id: id(7),
        info_hash,
        want: None,
        noseed: false,
        scrape,
    }))
}

fn node(limits: impl FnOnce(&mut Limits)) -> Node {
    let mut config = Config::local_testing([9; 32]);
    limits(&mut config.limits);
    Node::new(config, Instant::from_secs(1)).unwrap()
}

/// Everything the node sends now: (to, bytes).
fn drain(node: &mut Node, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        out.push((t.to, buf[..t.len].to_vec()));
    }
    out
}

/// Announces `peers` peers to `info_hash`, each from its own address with its own token.
fn fill_swarm(node: &mut Node, now: Instant, info_hash: Id, peers: u32) {
    for i in 0..peers {
        let from = ip(12, i + 1);
        // A token comes with any get_peers reply; one for another info-hash is small, so it
        // passes even a tight reflection limit.
        let _ = node.handle_datagram(now, from, &get_peers(id(0xfff), false));
        let reply = drain(node, now).pop().unwrap().1;
        let Ok(Message {
            body: Body::Response(r),
            ..
        }) = Message::decode(&reply, &Default::default())
        else {
            panic!("no reply");
        };
        let token = r.token.unwrap().to_vec();
        let announce = q(Query::AnnouncePeer(AnnouncePeer {
            id: id(7),
            info_hash,
            port: 7000,
            implied_port: false,
            token: &token,
            seed: i % 3 == 0,
        }));
        let _ = node.handle_datagram(now, from, &announce);
        drain(node, now);
    }
}

#[test]
fn one_source_gets_its_burst_then_is_blocked() {
    let mut n = node(|_| {});
    let now = Instant::from_secs(100);
    let flooder = ip(20, 1);
    let mut answered = 0;
    for _ in 0..1000 {
        let _ = n.handle_datagram(now, flooder, &ping());
        answered += drain(&mut n, now)
            .iter()
            .filter(|(to, _)| *to == flooder)
            .count();
    }
    assert_eq!(answered, 50);
    assert_eq!(n.stats().dropped(DropReason::RateLimited), 1);
    assert_eq!(n.stats().dropped(DropReason::Blocked), 949);
    // Others are answered meanwhile.
    let _ = n.handle_datagram(now, ip(20, 2), &ping());
    assert_eq!(drain(&mut n, now).len(), 1);
    // Five minutes later the flooder is a stranger again.
    let later = now + Duration::from_secs(301);
    let _ = n.handle_datagram(later, flooder, &ping());
    assert_eq!(drain(&mut n, later).len(), 1);
}

#[test]
fn responses_to_our_queries_are_never_charged() {
    let mut n = node(|_| {});
    let mut now = Instant::from_secs(100);
    let peer = ip(21, 1);
    // The peer floods us and gets blocked.
    for _ in 0..100 {
        let _ = n.handle_datagram(now, peer, &ping());
    }
    drain(&mut n, now);
    assert!(n.stats().dropped(DropReason::Blocked) > 0);
    // We query it 200 times; every answer is taken.
    for round in 0..200u32 {
        let _ = n.ping(now, peer);
        for (to, data) in drain(&mut n, now) {
            let Ok(Message {
                transaction_id,
                body: Body::Query(_),
                ..
            }) = Message::decode(&data, &Default::default())
            else {
                continue;
            };
            assert_eq!(to, peer);
            let tid = transaction_id.to_vec();
            let reply = encode(&tid, Body::Response(Response::new(id(round % 3 + 1000))));
            let d = n.handle_datagram(now, peer, &reply);
            assert_ne!(d, Disposition::Dropped(DropReason::Blocked));
            assert_ne!(d, Disposition::Dropped(DropReason::RateLimited));
        }
        now += Duration::from_millis(10);
    }
    assert!(n.stats().responses_received >= 200);
}

#[test]
fn a_spoofed_victim_gets_at_most_three_times_what_it_sent() {
    // No per-source budget: the reflection rule alone.
    let mut n = node(|l| l.source_rate = None);
    let start = Instant::from_secs(100);
    let info_hash = id(500);
    fill_swarm(&mut n, start, info_hash, 150);
    let victim = ip(22, 1);
    let query = get_peers(info_hash, false);
    let (mut sent, mut received) = (0usize, 0usize);
    let mut window = Vec::new();
    for step in 0..6_000u64 {
        let now = start + Duration::from_millis(step * 10);
        let _ = n.handle_datagram(now, victim, &query);
        received += query.len();
        let out: usize = drain(&mut n, now)
            .iter()
            .filter(|(to, _)| *to == victim)
            .map(|(_, d)| d.len())
            .sum();
        sent += out;
        window.push((now, out, query.len()));
    }
    // Over every 10-second window: out ≤ max(3 × in, burst) (the sliding estimate allows one
    // reply of slack at a window's edge).
    for (i, &(t0, _, _)) in window.iter().enumerate().step_by(100) {
        let inside = window[i..]
            .iter()
            .take_while(|(t, _, _)| *t < t0 + Duration::from_secs(10));
        let (out, inb) = inside.fold((0, 0), |(o, b), (_, x, y)| (o + x, b + y));
        assert!(
            out <= (3 * inb).max(4096) + 1280,
            "{out} for {inb} at {t0:?}"
        );
    }
    assert!(sent <= 3 * received + 4096, "{sent} for {received}");
    assert!(n.stats().dropped(DropReason::Reflection) > 0);
    // A single query is answered in full, values included.
    let stranger = ip(22, 2);
    let now = start + Duration::from_secs(60);
    let _ = n.handle_datagram(now, stranger, &query);
    let reply = drain(&mut n, now).pop().unwrap();
    assert!(reply.1.len() > 800, "{} bytes", reply.1.len());
}

/// A reply is written at once when the guards allow a whole reply budget; below that its
/// exact length decides: a stranger whose allowance is exactly the reply's length gets it, one
/// byte less and it is refused.
#[test]
fn near_the_reflection_limit_the_exact_length_decides() {
    let now = Instant::from_secs(100);
    let info_hash = id(600);
    let query = get_peers(info_hash, false);
    let stranger = ip(25, 1);
    let reply_to_stranger = |burst: usize| {
        let mut n = node(|l| {
            l.source_rate = None;
            l.reflection_burst = burst;
        });
        fill_swarm(&mut n, now, info_hash, 150);
        let _ = n.handle_datagram(now, stranger, &query);
        let replies: Vec<usize> = drain(&mut n, now)
            .iter()
            .filter(|(to, _)| *to == stranger)
            .map(|(_, d)| d.len())
            .collect();
        (replies, n.stats().dropped(DropReason::Reflection))
    };
    let (replies, refused) = reply_to_stranger(1 << 30);
    assert_eq!((replies.len(), refused), (1, 0));
    let len = replies[0];
    // Below the reply budget, and more than the query earns by itself.
    assert!(len < 1280 && len > 3 * query.len(), "{len}");
    assert_eq!(reply_to_stranger(len), (alloc::vec![len], 0));
    assert_eq!(reply_to_stranger(len - 1), (alloc::vec![], 1));
}

#[test]
fn a_verified_address_is_not_limited_by_the_reflection_rule() {
    let mut n = node(|l| l.source_rate = None);
    let now = Instant::from_secs(100);
    let peer = ip(23, 1);
    let _ = n.ping(now, peer);
    let (_, data) = drain(&mut n, now).pop().unwrap();
    let Ok(Message { transaction_id, .. }) = Message::decode(&data, &Default::default()) else {
        panic!()
    };
    let tid = transaction_id.to_vec();
    let _ = n.handle_datagram(
        now,
        peer,
        &encode(&tid, Body::Response(Response::new(id(1)))),
    );
    let find = q(Query::FindNode(FindNode {
        id: id(7),
        target: id(9),
        want: None,
    }));
    let mut answered = 0;
    for _ in 0..1000 {
        let _ = n.handle_datagram(now, peer, &find);
        answered += drain(&mut n, now).len();
    }
    assert_eq!(answered, 1000);
    assert_eq!(n.stats().dropped(DropReason::Reflection), 0);
}

#[test]
fn the_upload_budget_caps_all_replies() {
    let mut n = node(|l| {
        l.source_rate = None;
        l.upload_rate = Some(10_000);
    });
    let start = Instant::from_secs(100);
    let mut bytes = 0;
    // 10,000 sources, one ping each, over 10 seconds.
    for i in 0..10_000u32 {
        let now = start + Duration::from_millis(u64::from(i));
        let _ = n.handle_datagram(now, ip(24, i + 1), &ping());
        bytes += drain(&mut n, now)
            .iter()
            .filter(|(to, _)| to.ip() != IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
            .map(|(_, d)| d.len())
            .sum::<usize>();
    }
    // 10 s at 10,000 B/s plus one second of burst.
    assert!(bytes <= 110_000, "{bytes}");
    assert!(bytes >= 90_000, "{bytes}: the budget is used");
    assert!(n.stats().dropped(DropReason::UploadBudget) > 0);
}

#[test]
fn spoofed_sources_cause_few_table_pings() {
    let mut n = node(|l| l.source_rate = None);
    let start = Instant::from_secs(100);
    let mut pings = 0;
    // 20,000 strangers in 10 s, each with a new id: each would be worth a table ping.
    for i in 0..20_000u32 {
        let now = start + Duration::from_micros(u64::from(i) * 500);
        let query = q(Query::Ping(Ping { id: id(i + 100) }));
        let _ = n.handle_datagram(now, ip(25, i + 1), &query);
        pings += drain(&mut n, now)
            .iter()
            .filter(|(_, d)| {
                matches!(
                    Message::decode(d, &Default::default()),
                    Ok(Message {
                        body: Body::Query(_),
                        ..
                    })
                )
            })
            .count();
    }
    // 10 per second with a burst of 10.
    assert!(pings <= 10 * 10 + 10, "{pings} pings");
    assert!(pings > 0);
}

#[test]
fn a_scrape_of_200_peers_is_answered_within_the_budget() {
    let mut n = node(|l| l.source_rate = None);
    let now = Instant::from_secs(100);
    let info_hash = id(600);
    fill_swarm(&mut n, now, info_hash, 200);
    let asker = ip(26, 1);
    let _ = n.handle_datagram(now, asker, &get_peers(info_hash, true));
    let replies = drain(&mut n, now);
    let (_, reply) = replies.iter().find(|(to, _)| *to == asker).unwrap();
    assert!(reply.len() <= 1280, "{} bytes", reply.len());
    let Ok(Message {
        body: Body::Response(r),
        ..
    }) = Message::decode(reply, &Default::default())
    else {
        panic!("not a response");
    };
    assert!(r.bf_seeds.is_some() && r.bf_peers.is_some());
    let values = r.values.map_or(0, |v| v.len());
    assert!(values >= 40, "{values} values beside the filters");
    assert_eq!(n.stats().transmits_too_large, 0);
}

#[test]
fn values_are_capped_at_max_values() {
    for (cap, want) in [(100, 100), (10, 10)] {
        let mut n = node(|l| {
            l.source_rate = None;
            l.max_values = cap;
        });
        let now = Instant::from_secs(100);
        let info_hash = id(700);
        fill_swarm(&mut n, now, info_hash, 150);
        let asker = ip(27, 1);
        let _ = n.handle_datagram(now, asker, &get_peers(info_hash, false));
        let (_, reply) = drain(&mut n, now).pop().unwrap();
        let Ok(Message {
            body: Body::Response(r),
            ..
        }) = Message::decode(&reply, &Default::default())
        else {
            panic!("not a response");
        };
        assert_eq!(r.values.map_or(0, |v| v.len()), want);
        assert!(reply.len() <= 1280);
    }
}

#[test]
fn a_reply_that_cannot_fit_is_counted_not_sent() {
    let mut n = node(|l| {
        l.source_rate = None;
        l.max_reply = 600;
    });
    let now = Instant::from_secs(100);
    let putter = ip(28, 1);
    let value = {
        let v: String = "x".repeat(995);
        alloc::format!("{}:{v}", v.len()).into_bytes()
    };
    let target = crate::server::items::immutable_target(&value);
    let get = q(Query::Get(Get {
        id: id(7),
        target,
        seq: None,
        want: None,
    }));
    let _ = n.handle_datagram(now, putter, &get);
    let (_, reply) = drain(&mut n, now).pop().unwrap();
    assert!(reply.len() <= 600);
    let Ok(Message {
        body: Body::Response(r),
        ..
    }) = Message::decode(&reply, &Default::default())
    else {
        panic!("not a response");
    };
    let token = r.token.unwrap().to_vec();
    let put = q(Query::Put(Put {
        id: id(7),
        token: &token,
        value: &value,
        key: None,
        signature: None,
        seq: None,
        cas: None,
        salt: None,
    }));
    let _ = n.handle_datagram(now, putter, &put);
    drain(&mut n, now);
    assert_eq!(n.stored_items(), 1);
    // The item alone is bigger than 600 bytes: no reply, and it is counted.
    let d = n.handle_datagram(now, ip(28, 2), &get);
    assert_eq!(d, Disposition::Dropped(DropReason::ReplyTooLarge));
    assert!(drain(&mut n, now).is_empty());
    assert_eq!(n.stats().dropped(DropReason::ReplyTooLarge), 1);
    assert_eq!(n.stats().transmits_too_large, 0);
}

#[test]
fn the_source_table_stays_at_its_cap() {
    let mut n = node(|l| l.max_sources = 500);
    let now = Instant::from_secs(100);
    for i in 0..5_000u32 {
        let _ = n.handle_datagram(now, ip(29, i + 1), &ping());
        drain(&mut n, now);
        assert!(n.tracked_sources() <= 500);
    }
    assert_eq!(n.tracked_sources(), 500);
}

/// Replies reuse the buffers of sent ones: each carries exactly the contacts closest to its own
/// target, nothing left over from the reply before.
#[test]
fn replies_written_into_reused_buffers_hold_only_their_own_contacts() {
    let mut node = node(|l| {
        l.source_rate = None;
        l.reflection_burst = 1 << 30;
    });
    let now = Instant::from_secs(1);
    for i in 0..60 {
        let _ = node.add_node(now, ip(20, i), Some(id(1000 + i * 7919)));
    }
    let mut buf = [0u8; 1500];
    while node.poll_transmit(now, &mut buf).is_some() {}
    let from = ip(30, 1);
    let mut expected = Vec::new();
    for round in 0..30u32 {
        let target = id(round.wrapping_mul(0x9e37_79b9));
        let _ = node.handle_datagram(
            now,
            from,
            &q(Query::FindNode(FindNode {
                id: id(7),
                target,
                want: None,
            })),
        );
        let t = node.poll_transmit(now, &mut buf).expect("a reply");
        let Body::Response(r) = Message::decode(&buf[..t.len], &Default::default())
            .unwrap()
            .body
        else {
            panic!("not a response");
        };
        let got: Vec<Id> = r.nodes.unwrap().iter().map(|n| n.id).collect();
        node.routing_table().closest(&target, 8, &mut expected);
        let want: Vec<Id> = expected.iter().map(|(id, _)| *id).collect();
        assert_eq!(got, want, "round {round}");
        assert!(node.poll_transmit(now, &mut buf).is_none());
    }
}

/// The statistics' kind of a query from its variant is the kind of its method name.
#[test]
fn method_kind_from_the_variant_matches_the_name() {
    use crate::node::serve::method_kind;
    use crate::stats::MethodKind;
    use crate::wire::krpc::{Custom, SampleInfohashes};
    let token = [1u8; 8];
    let custom_args = crate::wire::bencode::Dict::from_validated(b"de");
    let queries = [
        Query::Ping(Ping { id: id(1) }),
        Query::FindNode(FindNode {
            id: id(1),
            target: id(2),
            want: None,
        }),
        Query::GetPeers(GetPeers {
            id: id(1),
            info_hash: id(2),
            want: None,
            noseed: false,
            scrape: false,
        }),
        Query::AnnouncePeer(AnnouncePeer {
            id: id(1),
            info_hash: id(2),
            port: 1,
            implied_port: false,
            token: &token,
            seed: false,
        }),
        Query::SampleInfohashes(SampleInfohashes {
            id: id(1),
            target: id(2),
            want: None,
        }),
        Query::Get(Get {
            id: id(1),
            target: id(2),
            seq: None,
            want: None,
        }),
        Query::Put(Put {
            id: id(1),
            token: &token,
            value: b"1:x",
            key: None,
            signature: None,
            seq: None,
            cas: None,
            salt: None,
        }),
        Query::Custom(Custom {
            method: b"vote",
            args: custom_args,
            id: None,
        }),
        Query::Custom(Custom {
            method: b"ping",
            args: custom_args,
            id: None,
        }),
    ];
    for q in &queries {
        assert_eq!(
            method_kind(q),
            MethodKind::from_name(q.method()),
            "{:?}",
            q.method()
        );
    }
}
