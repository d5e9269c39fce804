//! One `Node` with full stores under floods, in virtual time: what the flooders get, what
//! honest sources get meanwhile, and how many bytes a spoofed victim receives per byte it
//! (seemingly) sent.
//!
//! Run with `cargo bench -p dht-proto --bench hostile`. Prints two tables. Not a timed test:
//! rates are per second of virtual time, at the configured limits (`client`: the defaults;
//! `client+up`: with `upload_rate` 100,000 B/s; `super`: `Limits::super_node()`); the last
//! column is the wall-clock cost per flood datagram on this machine, next to the cost of an
//! honest ping measured in the same run.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::time::Instant as WallClock;

use dht_proto::wire::krpc::{
    AnnouncePeer, Body, FindNode, Get, GetPeers, Message, Ping, Put, Query, Response,
    SampleInfohashes,
};
use dht_proto::{Config, Id, Instant, Limits, Node};

fn id(i: u32) -> Id {
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

fn ip(net: u8, i: u32) -> IpAddr {
    let b = i.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(net, b[1], b[2], b[3]))
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
    let n = msg.encode(&mut buf).expect("fits");
    buf[..n].to_vec()
}

fn query(q: Query<'_>) -> Vec<u8> {
    encode(b"aa", Body::Query(q))
}

/// The queries of the tables, by kind.
struct Kinds {
    ping: Vec<u8>,
    find_node: Vec<u8>,
    get_peers: Vec<u8>,
    scrape: Vec<u8>,
    samples: Vec<u8>,
    get: Vec<u8>,
}

const SWARM: u32 = 200;

fn swarm() -> Id {
    id(999_999)
}

fn item() -> Vec<u8> {
    let v = "x".repeat(995);
    format!("{}:{v}", v.len()).into_bytes()
}

fn kinds() -> Kinds {
    let requester = id(123_456);
    let get_peers = |scrape| {
        query(Query::GetPeers(GetPeers {
            id: requester,
            info_hash: swarm(),
            want: None,
            noseed: false,
            scrape,
        }))
    };
    Kinds {
        ping: query(Query::Ping(Ping { id: requester })),
        find_node: query(Query::FindNode(FindNode {
            id: requester,
            target: id(77),
            want: None,
        })),
        get_peers: get_peers(false),
        scrape: get_peers(true),
        samples: query(Query::SampleInfohashes(SampleInfohashes {
            id: requester,
            target: id(78),
            want: None,
        })),
        get: query(Query::Get(Get {
            id: requester,
            target: dht_proto::bep44::immutable_target(&item()),
            seq: None,
            want: None,
        })),
    }
}

/// Sends `data` from `from` and drains the node; returns the bytes sent back to `from`.
fn exchange(node: &mut Node, now: Instant, from: SocketAddr, data: &[u8]) -> (usize, Vec<u8>) {
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

/// A node with a table of 400 verified entries, a swarm of 200 peers, 1,000 more info-hashes
/// and a 1,000-byte item; `limits` as given.
fn full_node(limits: Limits) -> Node {
    let mut config = Config::local_testing([3; 32]);
    config.limits = limits;
    let mut node = Node::new(config, Instant::from_secs(1)).expect("config");
    let mut now = Instant::from_secs(1);
    let mut buf = [0u8; 1500];
    let table_addr = |i: u32| SocketAddr::new(ip(11, i + 1), 6881);
    for i in 0..400 {
        let _ = node.add_node(now, table_addr(i), Some(id(i)));
    }
    for _ in 0..20 {
        now += Duration::from_secs(15);
        node.handle_timeout(now);
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            let Ok(Message {
                transaction_id,
                body: Body::Query(_),
                ..
            }) = Message::decode(&buf[..t.len], &Default::default())
            else {
                continue;
            };
            let Some(i) = (0..400).find(|&i| table_addr(i) == t.to) else {
                continue;
            };
            let tid = transaction_id.to_vec();
            let reply = encode(&tid, Body::Response(Response::new(id(i))));
            let _ = node.handle_datagram(now, t.to, &reply);
        }
        while node.poll_event().is_some() {}
    }
    // Announces (each from its own address, with the token it got) and the item.
    let requester = id(123_456);
    let store = |node: &mut Node, now: Instant, from: SocketAddr, info_hash: Id, put: bool| {
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
        let token = r.token.expect("token").to_vec();
        let q = if put {
            let value = item();
            query(Query::Put(Put {
                id: requester,
                token: &token,
                value: &value,
                key: None,
                signature: None,
                seq: None,
                cas: None,
                salt: None,
            }))
        } else {
            query(Query::AnnouncePeer(AnnouncePeer {
                id: requester,
                info_hash,
                port: 6881,
                implied_port: false,
                token: &token,
                seed: from.port() % 2 == 0,
            }))
        };
        let _ = exchange(node, now, from, &q);
    };
    for i in 0..SWARM {
        // 20 ms apart, so that an upload budget refills.
        now += Duration::from_millis(20);
        store(
            &mut node,
            now,
            SocketAddr::new(ip(12, i + 1), 7000 + i as u16),
            swarm(),
            false,
        );
    }
    for i in 0..1000 {
        // 20 ms apart, so that an upload budget refills.
        now += Duration::from_millis(20);
        store(
            &mut node,
            now,
            SocketAddr::new(ip(14, i + 1), 7000),
            id(500_000 + i),
            false,
        );
    }
    now += Duration::from_millis(20);
    store(
        &mut node,
        now,
        SocketAddr::new(ip(15, 1), 7000),
        swarm(),
        true,
    );
    assert_eq!(node.stored_peers(), SWARM as usize + 1000);
    assert_eq!(node.stored_items(), 1);
    node
}

/// When the floods start: after the set-up (which ends before 330 s), while every stored peer
/// and the item are still alive.
const START: Instant = Instant::from_secs(400);

/// The defaults a torrent client ships.
fn client() -> Limits {
    Limits::default()
}

/// No per-source budget: what the reflection rule alone does.
fn no_budget() -> Limits {
    let mut limits = Limits::default();
    limits.source_rate = None;
    limits
}

struct Flood {
    name: &'static str,
    /// Flooding sources and datagrams per second from each.
    sources: u32,
    rate: u32,
    /// Whether every datagram comes from a new (spoofed) source.
    spoofed: bool,
}

/// Runs `flood` for 10 s of virtual time while 2,000 honest sources send one `get_peers` each;
/// prints one row.
fn run_flood(limits: Limits, label: &str, flood: &Flood, kinds: &Kinds) {
    let mut node = full_node(limits);
    let start = START;
    let mut buf = [0u8; 1500];
    let seconds = 10u32;
    let mut flood_sent = 0u64;
    let mut flood_answered = 0u64;
    let mut flood_bytes_in = 0u64;
    let mut flood_bytes_out = 0u64;
    let mut honest_sent = 0u64;
    let mut honest_answered = 0u64;
    let mut wall = Duration::ZERO;
    let per_ms = u64::from(flood.sources) * u64::from(flood.rate) / 1000;
    let mut spoof = 0u32;
    for ms in 0..u64::from(seconds) * 1000 {
        let now = start + Duration::from_millis(ms);
        let t = WallClock::now();
        for k in 0..per_ms.max(u64::from(ms % 1000 == 0)) {
            let from = if flood.spoofed {
                spoof = spoof.wrapping_add(1);
                SocketAddr::new(ip(100, spoof % 0x00ff_ffff + 1), 6881)
            } else {
                let s = ((ms * per_ms + k) % u64::from(flood.sources)) as u32;
                SocketAddr::new(ip(101, s + 1), 6881)
            };
            let data = &kinds.get_peers;
            let _ = node.handle_datagram(now, from, data);
            flood_sent += 1;
            flood_bytes_in += data.len() as u64;
            while let Some(t) = node.poll_transmit(now, &mut buf) {
                if t.to == from {
                    flood_answered += 1;
                    flood_bytes_out += t.len as u64;
                }
            }
        }
        wall += t.elapsed();
        // Honest: 2,000 sources, each with one lookup step (a `get_peers`) during the 10 s,
        // 200 per second in all: what the nodes looking up through this one send it.
        if ms % 5 == 0 {
            let h = (ms / 5) as u32;
            let from = SocketAddr::new(ip(102, h + 1), 6881);
            let _ = node.handle_datagram(now, from, &kinds.get_peers);
            honest_sent += 1;
            while let Some(t) = node.poll_transmit(now, &mut buf) {
                if t.to == from {
                    honest_answered += 1;
                }
            }
        }
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
            while node.poll_transmit(now, &mut buf).is_some() {}
        }
        while node.poll_event().is_some() {}
    }
    let per_source = if flood.spoofed {
        "-".to_string()
    } else {
        let rate = flood_answered as f64 / f64::from(seconds) / f64::from(flood.sources);
        format!("{rate:.2}")
    };
    println!(
        "{:<26} {:<10} {:>10} {:>13.0} {:>14} {:>10.1} % {:>9.2}x {:>9.0}",
        flood.name,
        label,
        flood_sent,
        flood_answered as f64 / f64::from(seconds),
        per_source,
        100.0 * honest_answered as f64 / honest_sent.max(1) as f64,
        flood_bytes_out as f64 / flood_bytes_in.max(1) as f64,
        wall.as_nanos() as f64 / flood_sent.max(1) as f64,
    );
}

/// One victim address floods the node with `data` (spoofed) at 100 queries/s for 60 s.
fn amplification(limits: Limits, data: &[u8]) -> (usize, f64, f64) {
    let mut node = full_node(limits);
    let victim = SocketAddr::new(ip(103, 1), 6881);
    let start = START;
    let (single, _) = exchange(&mut node, start, victim, data);
    let mut node = full_node(limits_of(&node));
    let mut out = 0u64;
    let mut inb = 0u64;
    for ms in (0..60_000).step_by(10) {
        let now = start + Duration::from_millis(ms);
        let (n, _) = exchange(&mut node, now, victim, data);
        out += n as u64;
        inb += data.len() as u64;
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        while node.poll_event().is_some() {}
    }
    (
        single,
        single as f64 / data.len() as f64,
        out as f64 / inb as f64,
    )
}

fn limits_of(node: &Node) -> Limits {
    node.config().limits.clone()
}

fn main() {
    let kinds = kinds();
    // The cost of one honest query, for comparison with the per-datagram cost of a flood.
    let mut node = full_node(no_budget());
    let from = SocketAddr::new(ip(104, 1), 6881);
    let now = START;
    let mut buf = [0u8; 1500];
    let t = WallClock::now();
    let n = 20_000;
    for i in 0..n {
        let from = SocketAddr::new(ip(104, i % 100 + 1), 6881);
        let _ = node.handle_datagram(now + Duration::from_millis(u64::from(i)), from, &kinds.ping);
        while node.poll_transmit(now, &mut buf).is_some() {}
    }
    let _ = from;
    let ping_ns = t.elapsed().as_nanos() as f64 / f64::from(n);

    println!(
        "{:<26} {:<10} {:>10} {:>13} {:>14} {:>12} {:>10} {:>9}",
        "flood (get_peers)",
        "limits",
        "datagrams",
        "answered/s",
        "per source/s",
        "honest ok",
        "out/in",
        "ns/dgram"
    );
    let floods = [
        Flood {
            name: "1 IP at 10,000/s",
            sources: 1,
            rate: 10_000,
            spoofed: false,
        },
        Flood {
            name: "1,000 IPs at 20/s each",
            sources: 1000,
            rate: 20,
            spoofed: false,
        },
        Flood {
            name: "100,000 spoofed IPs",
            sources: 10_000,
            rate: 1,
            spoofed: true,
        },
    ];
    for flood in &floods {
        run_flood(client(), "client", flood, &kinds);
        let mut capped = client();
        capped.upload_rate = Some(100_000);
        run_flood(capped, "client+up", flood, &kinds);
        run_flood(Limits::super_node(), "super", flood, &kinds);
    }
    println!("(an honest ping costs {ping_ns:.0} ns on this machine)");
    println!();
    println!(
        "{:<26} {:>9} {:>11} {:>16} {:>18}",
        "one spoofed victim", "reply B", "one query", "60 s at 100/s", "same, no budget"
    );
    let rows: [(&str, &[u8]); 6] = [
        ("ping", &kinds.ping),
        ("find_node", &kinds.find_node),
        ("get_peers (200 peers)", &kinds.get_peers),
        ("get_peers scrape", &kinds.scrape),
        ("sample_infohashes", &kinds.samples),
        ("get (1,000-byte item)", &kinds.get),
    ];
    for (name, data) in rows {
        let (reply, one, sustained) = amplification(client(), data);
        let (_, _, no_budget) = amplification(no_budget(), data);
        println!("{name:<26} {reply:>9} {one:>10.2}x {sustained:>15.2}x {no_budget:>17.2}x");
    }
}
