//! The transmit contract: a buffer of `Limits::max_datagram` bytes always suffices, the node
//! never produces a longer datagram, and a shorter buffer is refused visibly.

use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::tests::{Net, addr, ping_query, seed};
use super::*;
use crate::event::Event;
use crate::wire::encode::Writer;

fn small_datagrams(i: usize) -> Config {
    let mut c = Config::local_testing(seed(i));
    c.limits.max_datagram = 576;
    c.limits.max_reply = 576;
    c.custom_queries = true;
    c
}

/// A bencoded dictionary `{"x": <n bytes>}`.
fn dict_of(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n + 32];
    let mut w = Writer::new(&mut buf);
    w.begin_dict();
    w.bytes(b"x");
    w.bytes(&vec![b'a'; n]);
    w.end();
    let len = w.finish().unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn a_short_buffer_takes_nothing_from_the_queue() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(Config::local_testing(seed(1)), now).unwrap();
    // Nothing queued: nothing to refuse, nothing counted.
    assert_eq!(node.poll_transmit(now, &mut [0u8; 10]), None);
    assert_eq!(node.stats().transmit_buffer_too_small, 0);
    node.ping(now, addr(2)).unwrap();
    let max = node.config().limits.max_datagram;
    let mut short = vec![0u8; max - 1];
    assert_eq!(node.poll_transmit(now, &mut short), None);
    assert_eq!(node.pending_transmits(), 1, "the message is kept");
    assert_eq!(node.stats().transmit_buffer_too_small, 1);
    assert_eq!(node.stats().datagrams_sent, 0);
    let mut buf = vec![0u8; max];
    let t = node
        .poll_transmit(now, &mut buf)
        .expect("sent with a full-size buffer");
    assert_eq!(t.to, addr(2));
    assert_eq!(node.pending_transmits(), 0);
    assert_eq!(node.stats().transmits_too_large, 0);
}

#[test]
fn application_content_that_would_not_fit_is_refused_by_its_command() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(small_datagrams(1), now).unwrap();
    let err = node.send_query(now, addr(2), b"echo", &dict_of(600));
    assert!(
        matches!(err, Err(CommandError::InvalidArgument(_))),
        "{err:?}"
    );
    assert_eq!(node.pending_transmits(), 0);
    let q = node.send_query(now, addr(2), b"echo", &dict_of(400));
    assert!(q.is_ok(), "{q:?}");
    // A 1000-byte item cannot be put in 576-byte datagrams; a small one can (it fails here
    // only for want of contacts).
    let big = PutItem::Immutable([b"1000:".as_slice(), &[b'v'; 1000]].concat());
    let err = node.put_item(now, big);
    assert!(
        matches!(err, Err(CommandError::InvalidArgument(_))),
        "{err:?}"
    );
    let small = PutItem::Immutable(b"3:abc".to_vec());
    assert_eq!(node.put_item(now, small), Err(CommandError::NoContacts));
}

#[test]
fn an_answer_that_would_not_fit_is_refused_and_the_query_stays_answerable() {
    let mut net = Net::new(2, small_datagrams);
    let now = net.now;
    let q = net.nodes[0]
        .send_query(now, addr(1), b"echo", &dict_of(4))
        .unwrap();
    net.drain();
    net.step();
    let handle = net
        .events
        .iter()
        .find_map(|(i, e)| match e {
            Event::CustomQuery { handle, .. } if *i == 1 => Some(*handle),
            _ => None,
        })
        .expect("custom query event");
    let err = net.nodes[1].respond(handle, &dict_of(600));
    assert!(
        matches!(err, Err(CommandError::InvalidArgument(_))),
        "{err:?}"
    );
    net.nodes[1].respond(handle, &dict_of(100)).unwrap();
    let outcome = net.run_until_finished(0, q);
    assert_eq!(outcome.status, crate::event::QueryStatus::Completed);
}

#[test]
fn no_datagram_exceeds_max_datagram() {
    use crate::wire::krpc::{Body, FindNode, Message, Query, Want};
    let now = Instant::from_secs(1);
    let mut node = Node::new(small_datagrams(1), now).unwrap();
    // Eight contacts of each family: a reply with both (8 × 26 + 8 × 38 bytes of nodes plus
    // the envelope) is over 576 bytes.
    for i in 0..8u8 {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i + 1)), 6881);
        let v6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, u16::from(i) + 1)),
            6881,
        );
        node.add_node(now, v4, Some(Id::new([i + 1; 20]))).unwrap();
        node.add_node(now, v6, Some(Id::new([i + 101; 20])))
            .unwrap();
    }
    let mut buf = vec![0u8; 1500];
    while node.poll_transmit(now, &mut buf).is_some() {}
    let query = Message {
        transaction_id: b"aa",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query::FindNode(FindNode {
            id: Id::new([0x77; 20]),
            target: Id::new([0x55; 20]),
            want: Some(Want { v4: true, v6: true }),
        })),
    };
    let mut datagram = [0u8; 200];
    let len = query.encode(&mut datagram).unwrap();
    let from = addr(2);
    let _ = node.handle_datagram(now, from, &datagram[..len]);
    let mut replies = 0;
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        assert!(t.len <= 576, "{} bytes", t.len);
        let msg = Message::decode(&buf[..t.len], &Default::default()).unwrap();
        if t.to == from && matches!(msg.body, Body::Response(_)) {
            replies += 1;
        }
    }
    // The reply is sent within the limit or, if it could not be made to fit, discarded and
    // counted: never sent oversized, never lost uncounted.
    assert_eq!(replies + node.stats().transmits_too_large, 1);
    assert_eq!(node.stats().transmit_buffer_too_small, 0);
}

/// The reply's length is computed from its fields' sizes on every query: it must equal the
/// encoding's length for every shape a reply takes (both families, IPv4-mapped addresses,
/// empty and long lists, negative and large integers, items, filters, any tid and version).
#[test]
fn computed_reply_length_is_the_encoded_length() {
    use crate::node::out::{OutItem, OutResponse, Signed};
    use crate::server::bloom::Bloom;
    use crate::server::tokens::Tokens;
    use crate::test_rng::TestRng;
    use alloc::boxed::Box;
    use alloc::format;
    use core::net::SocketAddr;

    let mut rng = TestRng(7);
    let tokens = Tokens::new(&mut rng);
    let some_addr = |rng: &mut TestRng| -> SocketAddr {
        let port = rng.below(65_536) as u16;
        match rng.below(3) {
            0 => SocketAddr::new(Ipv4Addr::from(rng.next_u32()).into(), port),
            1 => SocketAddr::new(Ipv4Addr::from(rng.next_u32()).to_ipv6_mapped().into(), port),
            _ => SocketAddr::new(
                Ipv6Addr::from(u128::from(rng.next_u64()) << 64).into(),
                port,
            ),
        }
    };
    let some_int = |rng: &mut TestRng| -> i64 {
        match rng.below(4) {
            0 => rng.below(10) as i64,
            1 => -(rng.below(1000) as i64),
            2 => i64::MIN,
            _ => rng.next_u64() as i64,
        }
    };
    for round in 0..3000 {
        let mut body = OutResponse {
            families: (rng.below(2) == 0, rng.below(2) == 0),
            ..OutResponse::default()
        };
        for _ in 0..rng.below(12) {
            body.nodes.push(&rng.id(), &some_addr(&mut rng));
        }
        for _ in 0..rng.below(12) {
            body.nodes6.push(&rng.id(), &some_addr(&mut rng));
        }
        for _ in 0..[0, 1, 5, 150][rng.below(4)] {
            body.values.push(&some_addr(&mut rng));
        }
        if rng.below(2) == 0 {
            body.token = Some(tokens.issue(some_addr(&mut rng).ip()));
        }
        if rng.below(3) == 0 {
            body.samples = Some((0..rng.below(80)).map(|_| rng.id()).collect());
        }
        if rng.below(3) == 0 {
            body.num = Some(some_int(&mut rng) as u32);
        }
        if rng.below(3) == 0 {
            body.interval = Some(some_int(&mut rng) as u32);
        }
        if rng.below(4) == 0 {
            body.scrape = Some(Box::new((Bloom::new(), Bloom::new())));
        }
        if rng.below(3) == 0 {
            body.seq = Some(some_int(&mut rng));
        }
        if rng.below(3) == 0 {
            let len = rng.below(1000);
            let mutable = rng.below(2) == 0;
            body.item = Some(OutItem {
                value: format!("{len}:{}", "x".repeat(len)).into_bytes().into(),
                signed: mutable.then(|| {
                    Box::new(Signed {
                        key: [1; 32],
                        signature: [2; 64],
                        seq: some_int(&mut rng),
                    })
                }),
            });
        }
        let to = some_addr(&mut rng);
        let tid: Vec<u8> = (0..rng.below(20)).map(|i| i as u8).collect();
        let version = [*b"LT12", *b"\0\0\0\0"][rng.below(2)];
        let version = (rng.below(2) == 0).then_some(version.as_slice());
        let id = rng.id();
        assert_eq!(
            body.encoded_len(to, &tid, version),
            body.dry_run_len(to, &tid, id, version),
            "round {round}: {body:?}"
        );
    }
}

/// A burst of answers grows the transmit queue; once drained it gives the memory back (a
/// node that answered a burst, or refreshed every bucket at once, must not keep the room for
/// it for good).
#[test]
fn a_drained_queue_gives_its_memory_back() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(Config::local_testing(seed(1)), now).unwrap();
    let mut buf = [0u8; 1500];
    let query = ping_query(b"aa", Id::new([7; 20]));
    for i in 0..300u32 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 6881);
        let _ = node.handle_datagram(now, from, &query);
    }
    assert_eq!(node.pending_transmits(), 300);
    assert!(node.transmits.capacity() >= 300);
    let mut sent = 0;
    while node.poll_transmit(now, &mut buf).is_some() {
        sent += 1;
    }
    assert_eq!(sent, 300);
    assert!(
        node.transmits.capacity() <= IDLE_TRANSMITS,
        "{}",
        node.transmits.capacity()
    );
    // The 300 replies' buffers are freed but a few, kept for the next replies.
    assert_eq!(node.spare_replies.len(), SPARE_BUFFERS);
    let kept: usize = node.spare_replies.iter().map(Vec::capacity).sum();
    assert!(
        kept <= SPARE_BUFFERS * node.config.limits.max_reply,
        "{kept}"
    );
    assert!(node.spare_nodes.len() <= SPARE_BUFFERS);
}
