//! One `Node` with full stores under floods, in virtual time: what the flooders get, what
//! honest sources get meanwhile, and how many bytes a spoofed victim receives per byte it
//! (seemingly) sent.
//!
//! Run with `cargo bench -p dht-proto --bench hostile`. Prints two tables. Not a timed test:
//! rates are per second of virtual time, at the configured limits (`client`: the defaults;
//! `client+up`: with `upload_rate` 100,000 B/s; `super`: `Limits::super_node()`); the last
//! column is the wall-clock cost per flood datagram on this machine, next to the cost of an
//! honest ping measured in the same run.

mod common;

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant as WallClock;

use common::{announce, exchange, id, ip, query, token, verified_table};
use dht_proto::wire::krpc::{FindNode, Get, GetPeers, Ping, Put, Query, SampleInfohashes};
use dht_proto::{Config, Id, Instant, Limits, Node};

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

/// A node with a table of 400 verified entries, a swarm of 200 peers, 1,000 more info-hashes
/// and a 1,000-byte item; `limits` as given.
fn full_node(limits: Limits) -> Node {
    let mut config = Config::local_testing([3; 32]);
    config.limits = limits;
    let mut node = Node::new(config, Instant::from_secs(1)).expect("config");
    let mut now = verified_table(&mut node, Instant::from_secs(1));
    // Announces, each from its own address with the token it got, 20 ms apart so that an
    // upload budget refills (seeds from even ports); then the item.
    for i in 0..SWARM {
        now += Duration::from_millis(20);
        let from = SocketAddr::new(ip(12, i + 1), 7000 + i as u16);
        announce(&mut node, now, from, swarm(), 6881, from.port() % 2 == 0);
    }
    for i in 0..1000 {
        now += Duration::from_millis(20);
        let from = SocketAddr::new(ip(14, i + 1), 7000);
        announce(&mut node, now, from, id(500_000 + i), 6881, true);
    }
    now += Duration::from_millis(20);
    let from = SocketAddr::new(ip(15, 1), 7000);
    let requester = id(123_456);
    let token = token(&mut node, now, from, requester, swarm());
    let value = item();
    let put = query(Query::Put(Put {
        id: requester,
        token: &token,
        value: &value,
        key: None,
        signature: None,
        seq: None,
        cas: None,
        salt: None,
    }));
    let _ = exchange(&mut node, now, from, &put);
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
