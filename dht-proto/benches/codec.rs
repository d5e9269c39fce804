//! Decode and encode cost of KRPC messages: `dht-proto` against a bare structural validation
//! pass (the practical floor for decoding), a `memcpy` of the encoded bytes (the floor for
//! encoding), `serde_bencode` into owned typed structs and `bt_bencode` into borrowed typed
//! structs, all on the same inputs in the same run. Heap allocations per operation are counted
//! by a counting global allocator.
//!
//! `cargo bench -p dht-proto --bench codec` prints one table. Each figure is the best of
//! several timed rounds (shared machines add noise, never remove it).

use core::hint::black_box;
use core::net::SocketAddr;
use core::time::Duration;
use std::alloc::System;
use std::time::Instant;

use dht_proto::Id;
use dht_proto::wire::bencode::DecodeLimits;
use dht_proto::wire::compact::{NodeInfo, Nodes, Peers, Samples};
use dht_proto::wire::krpc::{
    AnnouncePeer, Body, FindNode, GetPeers, KrpcError, Message, Ping, Query, Response,
};
use serde::{Deserialize, Serialize};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

// ------------------------------------------------------------------------------------------
// Counting allocator
// ------------------------------------------------------------------------------------------

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations(f: &mut dyn FnMut()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

// ------------------------------------------------------------------------------------------
// Timing
// ------------------------------------------------------------------------------------------

/// Best ns per call of `f` over several rounds of about 20 ms each.
fn time(f: &mut dyn FnMut()) -> f64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        if start.elapsed() > Duration::from_millis(20) {
            break;
        }
        iters *= 2;
    }
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

// ------------------------------------------------------------------------------------------
// The practical floor: a bare structural validation pass (grammar and nesting, nothing typed)
// ------------------------------------------------------------------------------------------

fn validate(input: &[u8]) -> bool {
    // Bit i of `dicts`: level i is a dictionary; bit i of `at_value`: a key was read there.
    let (mut depth, mut dicts, mut at_value) = (0u32, 0u64, 0u64);
    let mut i = 0;
    loop {
        let Some(&b) = input.get(i) else {
            return false;
        };
        let in_dict = depth > 0 && dicts & (1 << (depth - 1)) != 0;
        let want_key = in_dict && at_value & (1 << (depth - 1)) == 0;
        if b == b'e' && depth > 0 && (!in_dict || want_key) {
            depth -= 1;
            i += 1;
        } else {
            if want_key && !b.is_ascii_digit() {
                return false;
            }
            match b {
                b'i' => {
                    i += 1;
                    if input.get(i) == Some(&b'-') {
                        i += 1;
                    }
                    let start = i;
                    while input.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    if i == start || i - start > 19 || input.get(i) != Some(&b'e') {
                        return false;
                    }
                    i += 1;
                }
                b'0'..=b'9' => {
                    let mut len = 0usize;
                    while let Some(&d) = input.get(i).filter(|d| d.is_ascii_digit()) {
                        len = len * 10 + usize::from(d - b'0');
                        if len > input.len() {
                            return false;
                        }
                        i += 1;
                    }
                    if input.get(i) != Some(&b':') {
                        return false;
                    }
                    i += 1 + len;
                    if i > input.len() {
                        return false;
                    }
                }
                b'l' | b'd' => {
                    if depth >= 64 {
                        return false;
                    }
                    if in_dict {
                        at_value ^= 1 << (depth - 1);
                    }
                    depth += 1;
                    dicts = (dicts & !(1 << (depth - 1))) | (u64::from(b == b'd') << (depth - 1));
                    at_value &= !(1 << (depth - 1));
                    i += 1;
                    continue;
                }
                _ => return false,
            }
            if in_dict {
                at_value ^= 1 << (depth - 1);
            }
        }
        if depth == 0 {
            return i == input.len();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Typed structs for the serde crates (generic over the byte-string type: owned `ByteBuf` for
// serde_bencode, borrowed `&Bytes` for bt_bencode)
// ------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug)]
#[serde(bound(deserialize = "B: Deserialize<'de>"))]
struct Msg<B> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<Args<B>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<(i64, B)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<Resp<B>>,
    t: B,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<B>,
    y: B,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(bound(deserialize = "B: Deserialize<'de>"))]
struct Args<B> {
    id: B,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    implied_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    info_hash: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<B>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(bound(deserialize = "B: Deserialize<'de>"))]
struct Resp<B> {
    id: B,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodes: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodes6: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    num: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    samples: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sig: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<B>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<B>>,
}

type Owned = Msg<serde_bytes::ByteBuf>;
type Borrowed<'a> = Msg<&'a serde_bytes::Bytes>;

// ------------------------------------------------------------------------------------------
// The messages
// ------------------------------------------------------------------------------------------

struct Data {
    nodes4: Vec<NodeInfo>,
    nodes6: Vec<NodeInfo>,
    peers: Vec<SocketAddr>,
    samples: Vec<Id>,
    key: [u8; 32],
    sig: [u8; 64],
    value: Vec<u8>,
}

fn id(n: u8) -> Id {
    Id::new([n; 20])
}

fn data() -> Data {
    let nodes4 = (0..8u8)
        .map(|i| {
            NodeInfo::new(
                id(i),
                SocketAddr::from(([81, 2, 3, i + 1], 6881 + u16::from(i))),
            )
        })
        .collect();
    let nodes6 = (0..8u16)
        .map(|i| {
            NodeInfo::new(
                id(i as u8 + 100),
                SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 7, i + 1], 6881 + i)),
            )
        })
        .collect();
    let peers = (0..50u8)
        .map(|i| SocketAddr::from(([93, 184, i, 34], 50_000 + u16::from(i))))
        .collect();
    let samples = (0..20u8).map(|i| id(i.wrapping_mul(13))).collect();
    let mut value = b"996:".to_vec();
    value.extend((0..996u32).map(|i| (i % 251) as u8));
    Data {
        nodes4,
        nodes6,
        peers,
        samples,
        key: [0x77; 32],
        sig: [0x30; 64],
        value,
    }
}

fn messages(d: &Data) -> Vec<(&'static str, Message<'_>)> {
    let me = id(0xaa);
    let target = id(0x55);
    let m = |body| Message {
        transaction_id: b"aa",
        version: Some(b"DP\x00\x01"),
        ip: None,
        read_only: false,
        body,
    };
    let q = |q| m(Body::Query(q));
    let r = |r| m(Body::Response(r));
    let mut fn8 = Response::new(me);
    fn8.nodes = Some(Nodes::Slice(&d.nodes4));
    let mut fn6 = Response::new(me);
    fn6.nodes6 = Some(Nodes::Slice(&d.nodes6));
    let mut gp = Response::new(me);
    gp.token = Some(b"\x01\x02\x03\x04\x05\x06\x07\x08");
    gp.values = Some(Peers::Slice(&d.peers));
    let mut get = Response::new(me);
    get.key = Some(&d.key);
    get.signature = Some(&d.sig);
    get.seq = Some(42);
    get.token = Some(b"\x01\x02\x03\x04");
    get.value = Some(&d.value);
    let mut si = Response::new(me);
    si.interval = Some(21_600);
    si.num = Some(1_234);
    si.nodes = Some(Nodes::Slice(&d.nodes4));
    si.samples = Some(Samples::Slice(&d.samples));
    vec![
        ("ping query", q(Query::Ping(Ping { id: me }))),
        ("ping response", r(Response::new(me))),
        (
            "find_node query",
            q(Query::FindNode(FindNode {
                id: me,
                target,
                want: None,
            })),
        ),
        ("find_node resp 8 nodes", r(fn8)),
        ("find_node resp 8 nodes6", r(fn6)),
        (
            "get_peers query",
            q(Query::GetPeers(GetPeers {
                id: me,
                info_hash: target,
                want: None,
                noseed: false,
                scrape: false,
            })),
        ),
        ("get_peers resp 50 values", r(gp)),
        (
            "announce_peer query",
            q(Query::AnnouncePeer(AnnouncePeer {
                id: me,
                info_hash: target,
                port: 6881,
                implied_port: true,
                token: b"\x01\x02\x03\x04\x05\x06\x07\x08",
                seed: false,
            })),
        ),
        (
            "error",
            m(Body::Error(KrpcError {
                code: 203,
                message: b"Protocol Error: bad token",
            })),
        ),
        ("get resp (BEP 44) 1000B v", r(get)),
        ("sample_infohashes resp 20", r(si)),
    ]
}

// ------------------------------------------------------------------------------------------

struct Row {
    name: &'static str,
    len: usize,
    dec: [f64; 4],
    enc: [f64; 4],
    allocs: [usize; 6],
}

fn geomean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0), |(s, n), x| (s + x.ln(), n + 1));
    (sum / f64::from(n)).exp()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it quickly as a smoke test.
    let quick = !std::env::args().any(|a| a == "--bench");
    let d = data();
    let limits = DecodeLimits::default();
    let mut rows = Vec::new();
    for (name, msg) in messages(&d) {
        let mut bytes = vec![0u8; msg.encoded_len()];
        msg.encode(&mut bytes).unwrap();
        let bytes = bytes.as_slice();
        assert!(validate(bytes), "{name}");
        let decoded = Message::decode(bytes, &limits).unwrap();
        assert_eq!(decoded.encoded_len(), bytes.len());
        let owned: Owned = serde_bencode::from_bytes(bytes).unwrap();
        let borrowed: Borrowed<'_> = bt_bencode::from_slice(bytes).unwrap();
        assert_eq!(serde_bencode::to_bytes(&owned).unwrap(), bytes, "{name}");
        assert_eq!(bt_bencode::to_vec(&borrowed).unwrap(), bytes, "{name}");

        let mut out = vec![0u8; 2048];
        // Results are inspected in place (`&`), not moved: moving a large value out would
        // add a memcpy that measures the caller, not the decoder.
        let mut proto_dec = || {
            assert!(black_box(&Message::decode(black_box(bytes), &limits)).is_ok());
        };
        let mut floor_dec = || {
            assert!(black_box(validate(black_box(bytes))));
        };
        let mut serde_dec = || {
            assert!(black_box(&serde_bencode::from_bytes::<Owned>(black_box(bytes))).is_ok());
        };
        let mut bt_dec = || {
            assert!(black_box(&bt_bencode::from_slice::<Borrowed<'_>>(black_box(bytes))).is_ok());
        };
        let mut proto_enc = || {
            black_box(black_box(&msg).encode(&mut out).unwrap());
        };
        let mut copy = vec![0u8; bytes.len()];
        let mut floor_enc = || {
            black_box(&mut copy).copy_from_slice(black_box(bytes));
        };
        let mut serde_enc = || {
            black_box(serde_bencode::to_bytes(black_box(&owned)).unwrap());
        };
        let mut bt_enc = || {
            black_box(bt_bencode::to_vec(black_box(&borrowed)).unwrap());
        };
        let allocs = [
            allocations(&mut proto_dec),
            allocations(&mut proto_enc),
            allocations(&mut serde_dec),
            allocations(&mut serde_enc),
            allocations(&mut bt_dec),
            allocations(&mut bt_enc),
        ];
        let t = |f: &mut dyn FnMut()| {
            if quick {
                f();
                1.0
            } else {
                time(f)
            }
        };
        rows.push(Row {
            name,
            len: bytes.len(),
            dec: [
                t(&mut proto_dec),
                t(&mut floor_dec),
                t(&mut serde_dec),
                t(&mut bt_dec),
            ],
            enc: [
                t(&mut proto_enc),
                t(&mut floor_enc),
                t(&mut serde_enc),
                t(&mut bt_enc),
            ],
            allocs,
        });
    }

    println!(
        "{:<26} {:>5} | {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>7} {:>7} {:>6} {:>6} | {:>9}",
        "message",
        "bytes",
        "dec",
        "valid",
        "serde",
        "bt",
        "/valid",
        "serde/",
        "bt/",
        "enc",
        "memcpy",
        "serde",
        "bt",
        "serde/",
        "bt/",
        "allocs"
    );
    println!(
        "{:<26} {:>5} | {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>7} {:>7} {:>6} {:>6} | {:>9}",
        "", "", "ns", "ns", "ns", "ns", "", "", "", "ns", "ns", "ns", "ns", "", "", "p/s/b d,e"
    );
    for r in &rows {
        let [pd, vd, sd, bd] = r.dec;
        let [pe, me, se, be] = r.enc;
        let a = r.allocs;
        println!(
            "{:<26} {:>5} | {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>6.2} {:>6.1} {:>6.1} | {:>6.1} {:>6.1} {:>7.1} {:>7.1} {:>6.1} {:>6.1} | {}/{} {}/{} {}/{}",
            r.name,
            r.len,
            pd,
            vd,
            sd,
            bd,
            pd / vd,
            sd / pd,
            bd / pd,
            pe,
            me,
            se,
            be,
            se / pe,
            be / pe,
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5]
        );
    }
    let g = |f: &dyn Fn(&Row) -> f64| geomean(rows.iter().map(f));
    println!(
        "geomean: decode dht-proto/validation {:.2}x, serde_bencode/dht-proto {:.1}x, \
         bt_bencode/dht-proto {:.1}x; encode serde_bencode/dht-proto {:.1}x, \
         bt_bencode/dht-proto {:.1}x, dht-proto/memcpy {:.1}x",
        g(&|r| r.dec[0] / r.dec[1]),
        g(&|r| r.dec[2] / r.dec[0]),
        g(&|r| r.dec[3] / r.dec[0]),
        g(&|r| r.enc[2] / r.enc[0]),
        g(&|r| r.enc[3] / r.enc[0]),
        g(&|r| r.enc[0] / r.enc[1]),
    );
    let proto_allocs: usize = rows.iter().map(|r| r.allocs[0] + r.allocs[1]).sum();
    println!("dht-proto heap allocations in all decodes and encodes: {proto_allocs}");
    assert_eq!(proto_allocs, 0);
}
