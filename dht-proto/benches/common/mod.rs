//! Set-up shared by the benchmarks of a whole `Node`: ids, datagrams, and a node whose table is
//! in the steady state of a running node.

// Each benchmark uses a part.
#![allow(dead_code)]

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use dht_proto::wire::krpc::{AnnouncePeer, Body, GetPeers, Message, Query, Response};
use dht_proto::{Id, Instant, Node};

/// Contacts in the table of [`verified_table`].
pub const TABLE: u32 = 400;

/// A well-spread id for `i`.
pub fn id(i: u32) -> Id {
    let mut bytes = [0u8; 20];
    let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in &mut bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Id::new(bytes)
}

/// `net.x.y.z`, the low three bytes of `i`.
pub fn ip(net: u8, i: u32) -> IpAddr {
    let b = i.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(net, b[1], b[2], b[3]))
}

/// The address of the `i`th contact of [`verified_table`].
pub fn table_addr(i: u32) -> SocketAddr {
    SocketAddr::new(ip(11, i + 1), 6881)
}

/// A message with transaction id `tid`, encoded.
pub fn encode(tid: &[u8], body: Body<'_>) -> Vec<u8> {
    let msg = Message {
        transaction_id: tid,
        version: None,
        ip: None,
        read_only: false,
        body,
    };
    let mut buf = [0u8; 1500];
    let n = msg.encode(&mut buf).expect("fits");
    buf[..n].to_vec()
}

/// A query, encoded.
pub fn query(q: Query<'_>) -> Vec<u8> {
    encode(b"aa", Body::Query(q))
}

/// Sends `data` from `from` and drains the node; returns the bytes sent back to `from` and the
/// last datagram it got.
pub fn exchange(node: &mut Node, now: Instant, from: SocketAddr, data: &[u8]) -> (usize, Vec<u8>) {
    let _ = node.handle_datagram(now, from, data);
    let mut buf = [0u8; 1500];
    let mut total = 0;
    let mut last = Vec::new();
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        if t.to == from {
            total += t.len;
            last = buf[..t.len].to_vec();
        }
    }
    (total, last)
}

/// Sends every datagram the node has queued; each query whose address `responder` knows is
/// answered at once by that id.
pub fn answer_queries(node: &mut Node, now: Instant, responder: impl Fn(SocketAddr) -> Option<Id>) {
    let mut buf = [0u8; 1500];
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        let Ok(Message {
            transaction_id,
            body: Body::Query(_),
            ..
        }) = Message::decode(&buf[..t.len], &Default::default())
        else {
            continue;
        };
        let Some(id) = responder(t.to) else {
            continue;
        };
        let tid = transaction_id.to_vec();
        let reply = encode(&tid, Body::Response(Response::new(id)));
        let _ = node.handle_datagram(now, t.to, &reply);
    }
}

/// Gives the node [`TABLE`] contacts ([`table_addr`], [`id`]) and runs five minutes of its
/// maintenance with every contact answering: the steady state of a running node, where every
/// entry has answered. Returns the time reached.
pub fn verified_table(node: &mut Node, mut now: Instant) -> Instant {
    for i in 0..TABLE {
        let _ = node.add_node(now, table_addr(i), Some(id(i)));
    }
    for _round in 0..20 {
        now += Duration::from_secs(15);
        node.handle_timeout(now);
        answer_queries(node, now, |to| {
            (0..TABLE).find(|&i| table_addr(i) == to).map(id)
        });
        while node.poll_event().is_some() {}
    }
    now
}

/// The token `from` gets with a `get_peers` for `info_hash` from `requester`.
pub fn token(
    node: &mut Node,
    now: Instant,
    from: SocketAddr,
    requester: Id,
    info_hash: Id,
) -> Vec<u8> {
    let get = query(Query::GetPeers(GetPeers {
        id: requester,
        info_hash,
        want: None,
        noseed: false,
        scrape: false,
    }));
    let (_, reply) = exchange(node, now, from, &get);
    let Ok(Message {
        body: Body::Response(r),
        ..
    }) = Message::decode(&reply, &Default::default())
    else {
        panic!("no answer to get_peers");
    };
    r.token
        .expect("a get_peers answer carries a token")
        .to_vec()
}

/// `from` announces itself as a peer of `info_hash` on `port`, with a token it asked for.
pub fn announce(
    node: &mut Node,
    now: Instant,
    from: SocketAddr,
    info_hash: Id,
    port: u16,
    seed: bool,
) {
    let requester = id(123_456);
    let token = token(node, now, from, requester, info_hash);
    let announce = query(Query::AnnouncePeer(AnnouncePeer {
        id: requester,
        info_hash,
        port,
        implied_port: false,
        token: &token,
        seed,
    }));
    let _ = exchange(node, now, from, &announce);
}
