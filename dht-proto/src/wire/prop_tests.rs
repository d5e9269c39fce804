//! Property tests: encode→decode identity for generated messages of every kind, and no panic on
//! arbitrary bytes or on mutations of valid messages.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::prelude::*;

use super::bencode::{DecodeLimits, Value, decode};
use super::compact::{NodeInfo, Nodes, Peers, Samples};
use super::encode::Writer;
use super::krpc::query_reference;
use super::krpc::*;
use crate::fuzzing::{fuzz_bencode, fuzz_krpc};
use crate::id::Id;

/// An owned bencode tree, canonical by construction (sorted unique keys).
#[derive(Clone, Debug)]
enum Tree {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Tree>),
    Dict(BTreeMap<Vec<u8>, Tree>),
}

impl Tree {
    fn write(&self, w: &mut Writer<'_>) {
        match self {
            Tree::Int(i) => w.int(*i),
            Tree::Bytes(b) => w.bytes(b),
            Tree::List(l) => {
                w.begin_list();
                l.iter().for_each(|t| t.write(w));
                w.end();
            }
            Tree::Dict(d) => {
                w.begin_dict();
                for (k, v) in d {
                    w.bytes(k);
                    v.write(w);
                }
                w.end();
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(&mut []);
        self.write(&mut w);
        let mut buf = alloc::vec![0u8; w.len()];
        let mut w = Writer::new(&mut buf);
        self.write(&mut w);
        assert_eq!(w.finish(), Ok(buf.len()));
        buf
    }

    fn matches(&self, v: &Value<'_>) -> bool {
        match (self, v) {
            (Tree::Int(a), Value::Int(b)) => a == b,
            (Tree::Bytes(a), Value::Bytes(b)) => a == b,
            (Tree::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(t, v)| t.matches(&v))
            }
            (Tree::Dict(a), Value::Dict(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((k1, t), (k2, v))| k1 == k2 && t.matches(&v))
            }
            _ => false,
        }
    }
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Tree::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Tree::Bytes),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..6),
                inner,
                0..6
            )
            .prop_map(Tree::Dict),
        ]
    })
}

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 20]>().prop_map(Id::new)
}

fn addr4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
}

fn addr6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>())
        .prop_filter("not IPv4-mapped", |(ip, _)| {
            Ipv6Addr::from(*ip).to_ipv4_mapped().is_none()
        })
        .prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)))
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![addr4(), addr6()]
}

fn want() -> impl Strategy<Value = Option<Want>> {
    proptest::option::of((any::<bool>(), any::<bool>()).prop_map(|(v4, v6)| Want { v4, v6 }))
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Everything a generated message borrows, owned.
#[derive(Clone, Debug)]
struct Owned {
    t: Vec<u8>,
    version: Option<Vec<u8>>,
    ip: Option<SocketAddr>,
    ro: bool,
    kind: u8,
    ids: [Id; 2],
    flags: [bool; 4],
    port: u16,
    ints: [Option<i64>; 4],
    token: Vec<u8>,
    value: Vec<u8>,
    key: Option<[u8; 32]>,
    sig: [u8; 64],
    salt: Option<Vec<u8>>,
    want: Option<Want>,
    method: Vec<u8>,
    args: Vec<u8>,
    nodes4: Vec<NodeInfo>,
    nodes6: Vec<NodeInfo>,
    peers: Option<Vec<SocketAddr>>,
    samples: Option<Vec<Id>>,
    bloom: Option<[[u8; 256]; 2]>,
    message: Vec<u8>,
}

fn owned() -> impl Strategy<Value = Owned> {
    let head = (
        proptest::collection::vec(any::<u8>(), 1..=MAX_TRANSACTION_ID_LEN),
        proptest::option::of(bytes(6)),
        proptest::option::of(addr()),
        any::<bool>(),
        0u8..11,
        [id(), id()],
        any::<[bool; 4]>(),
        1u16..,
    );
    let mid = (
        [
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
        ],
        bytes(12),
        tree().prop_map(|t| t.encode()),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::collection::vec(any::<u8>(), 64),
        proptest::option::of(bytes(8)),
        want(),
    );
    let tail = (
        "[a-z_]{1,12}".prop_filter("unknown method", |m| {
            ![
                "ping",
                "find_node",
                "get_peers",
                "announce_peer",
                "get",
                "put",
                "sample_infohashes",
            ]
            .contains(&m.as_str())
        }),
        proptest::collection::btree_map(
            "[a-z]{1,6}".prop_filter("no id", |k| k != "id"),
            tree(),
            0..4,
        ),
        proptest::collection::vec((id(), addr4()), 0..9),
        proptest::collection::vec((id(), addr6()), 0..9),
        proptest::option::of(proptest::collection::vec(addr(), 0..12)),
        proptest::option::of(proptest::collection::vec(id(), 0..6)),
        proptest::option::of((any::<u8>(), any::<u8>())),
        bytes(30),
    );
    (head, mid, tail).prop_map(
        |(
            (t, version, ip, ro, kind, ids, flags, port),
            (ints, token, value, key, sig, salt, want),
            (method, args, n4, n6, peers, samples, bloom, message),
        )| {
            let args = Tree::Dict(args.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect());
            Owned {
                t,
                version,
                ip,
                ro,
                kind,
                ids,
                flags,
                port,
                ints,
                token,
                value,
                key,
                sig: sig.try_into().unwrap(),
                salt,
                want,
                method: method.into_bytes(),
                args: args.encode(),
                nodes4: n4.into_iter().map(|(i, a)| NodeInfo::new(i, a)).collect(),
                nodes6: n6.into_iter().map(|(i, a)| NodeInfo::new(i, a)).collect(),
                peers,
                samples,
                bloom: bloom.map(|(a, b)| [[a; 256], [b; 256]]),
                message,
            }
        },
    )
}

impl Owned {
    fn message(&self) -> Message<'_> {
        let [id, target] = self.ids;
        let [f0, f1, f2, _] = self.flags;
        let [i0, i1, i2, i3] = self.ints;
        let body = match self.kind {
            0 => Body::Query(Query::Ping(Ping { id })),
            1 => Body::Query(Query::FindNode(FindNode {
                id,
                target,
                want: self.want,
            })),
            2 => Body::Query(Query::GetPeers(GetPeers {
                id,
                info_hash: target,
                want: self.want,
                noseed: f0,
                scrape: f1,
            })),
            3 => Body::Query(Query::AnnouncePeer(AnnouncePeer {
                id,
                info_hash: target,
                port: self.port,
                implied_port: f0,
                token: &self.token,
                seed: f1,
            })),
            4 => Body::Query(Query::Get(Get {
                id,
                target,
                seq: i0,
                want: self.want,
            })),
            5 => {
                let mutable = self.key.as_ref();
                Body::Query(Query::Put(Put {
                    id,
                    token: &self.token,
                    value: &self.value,
                    key: mutable,
                    signature: mutable.map(|_| &self.sig),
                    seq: mutable.map(|_| i0.unwrap_or(1)),
                    cas: mutable.and(i1),
                    salt: mutable.and(self.salt.as_deref()),
                }))
            }
            6 => Body::Query(Query::SampleInfohashes(SampleInfohashes {
                id,
                target,
                want: self.want,
            })),
            7 => Body::Query(Query::Custom(Custom {
                method: &self.method,
                args: decode(&self.args, &DecodeLimits::default())
                    .unwrap()
                    .as_dict()
                    .unwrap(),
                id: None,
            })),
            8 => Body::Error(KrpcError {
                code: i0.unwrap_or(201),
                message: &self.message,
            }),
            _ => {
                let mut r = Response::new(id);
                r.nodes = f0.then_some(Nodes::Slice(&self.nodes4));
                r.nodes6 = f1.then_some(Nodes::Slice(&self.nodes6));
                r.values = self.peers.as_deref().map(Peers::Slice);
                r.token = f2.then_some(self.token.as_slice());
                r.samples = self.samples.as_deref().map(Samples::Slice);
                r.num = i0;
                r.interval = i1;
                r.seq = i2;
                if i3.is_some() {
                    r.value = Some(&self.value);
                }
                r.key = self.key.as_ref();
                r.signature = self.key.map(|_| &self.sig);
                r.bf_seeds = self.bloom.as_ref().map(|b| &b[0]);
                r.bf_peers = self.bloom.as_ref().map(|b| &b[1]);
                Body::Response(r)
            }
        };
        Message {
            transaction_id: &self.t,
            version: self.version.as_deref(),
            ip: self.ip,
            read_only: self.ro,
            body,
        }
    }
}

/// A comparable rendering of a message that does not depend on whether lists are slices or
/// compact bytes.
fn semantic(m: &Message<'_>) -> String {
    let mut s = format!(
        "t={:?} v={:?} ip={:?} ro={} ",
        m.transaction_id, m.version, m.ip, m.read_only
    );
    match m.body {
        Body::Response(r) => {
            let nodes = |n: Option<Nodes<'_>>| n.map(|n| n.iter().collect::<Vec<_>>());
            s += &format!(
                "r id={:?} nodes={:?} nodes6={:?} values={:?} samples={:?} token={:?} num={:?} \
                 interval={:?} v={:?} k={:?} sig={:?} seq={:?} bf={:?}/{:?}",
                r.id,
                nodes(r.nodes),
                nodes(r.nodes6),
                r.values.map(|v| v.iter().collect::<Vec<_>>()),
                r.samples.map(|v| v.iter().collect::<Vec<_>>()),
                r.token,
                r.num,
                r.interval,
                r.value,
                r.key,
                r.signature.map(|s| s.to_vec()),
                r.seq,
                r.bf_seeds.map(|b| b.to_vec()),
                r.bf_peers.map(|b| b.to_vec()),
            );
        }
        body => s += &format!("{body:?}"),
    }
    s
}

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut buf = alloc::vec![0u8; m.encoded_len()];
    assert_eq!(m.encode(&mut buf), Ok(buf.len()));
    buf
}

/// An `a` dictionary with valid values for every key a method may need, plus known argument
/// keys (possibly repeated) with values of random types and lengths, all in random order.
fn messy_args() -> impl Strategy<Value = Vec<u8>> {
    let value = || {
        prop_oneof![
            (0i64..70_000).prop_map(Tree::Int),
            any::<i64>().prop_map(Tree::Int),
            proptest::sample::select(alloc::vec![0usize, 3, 20, 32, 64])
                .prop_map(|n| Tree::Bytes(alloc::vec![b'x'; n])),
            Just(Tree::List(alloc::vec![Tree::Bytes(b"n4".to_vec())])),
            Just(Tree::Dict(BTreeMap::new())),
        ]
    };
    let id = |b| Tree::Bytes(alloc::vec![b; 20]);
    let base = [
        ("id", id(1)),
        ("target", id(2)),
        ("info_hash", id(3)),
        ("port", Tree::Int(6881)),
        ("token", Tree::Bytes(b"tk".to_vec())),
        ("v", Tree::Int(1)),
    ];
    // Each base key: valid (mostly), of a random type, or absent.
    let base = base.map(|(k, good)| {
        prop_oneof![
            8 => Just(Some((k, good))),
            1 => value().prop_map(move |v| Some((k, v))),
            1 => Just(None),
        ]
    });
    let extra_key = proptest::sample::select(alloc::vec![
        "implied_port",
        "want",
        "noseed",
        "scrape",
        "seed",
        "seq",
        "cas",
        "salt",
        "k",
        "sig",
        "zz",
        "id",
    ]);
    (
        base,
        proptest::collection::vec((extra_key, value()), 0..4),
        any::<proptest::sample::Index>(),
    )
        .prop_map(move |(base, extra, rotate)| {
            let mut entries: Vec<(&str, Tree)> = base.into_iter().flatten().collect();
            entries.extend(extra);
            let by = rotate.index(entries.len().max(1)).min(entries.len());
            entries.rotate_left(by);
            let write = |w: &mut Writer<'_>| {
                w.begin_dict();
                for (k, v) in &entries {
                    w.bytes(k.as_bytes());
                    v.write(w);
                }
                w.end();
            };
            let mut w = Writer::new(&mut []);
            write(&mut w);
            let mut buf = alloc::vec![0u8; w.len()];
            write(&mut Writer::new(&mut buf));
            buf
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The single-pass reader of `a` agrees with the precise two-pass one, errors included.
    #[test]
    fn query_args_fast_path_matches_reference(
        args in messy_args(),
        method in proptest::sample::select(alloc::vec![
            "ping", "find_node", "sample_infohashes", "get_peers", "announce_peer", "get", "put",
            "custom",
        ]),
    ) {
        let mut msg = b"d1:a".to_vec();
        msg.extend_from_slice(&args);
        msg.extend_from_slice(format!("1:q{}:{}1:t2:aa1:y1:qe", method.len(), method).as_bytes());
        let limits = DecodeLimits::default();
        let fast = Message::decode(&msg, &limits).map(|m| m.body);
        match decode(&args, &limits) {
            Ok(Value::Dict(dict)) => {
                let reference = query_reference(method.as_bytes(), dict, 4).map(Body::Query);
                prop_assert_eq!(fast, reference);
            }
            // Adjacent repeats are grammar errors, reported by both.
            other => prop_assert_eq!(fast.map_err(|e| e.kind), other.map(|_| unreachable!()).map_err(|e| e.kind)),
        }
    }

    #[test]
    fn bencode_round_trip(t in tree()) {
        let bytes = t.encode();
        let v = decode(&bytes, &DecodeLimits::default()).unwrap();
        prop_assert!(t.matches(&v));
        let mut buf = alloc::vec![0u8; bytes.len()];
        let mut w = Writer::new(&mut buf);
        w.value(&v);
        prop_assert_eq!(w.finish(), Ok(bytes.len()));
        prop_assert_eq!(&buf, &bytes);
        fuzz_bencode(&bytes);
    }

    #[test]
    fn krpc_round_trip(o in owned()) {
        let m = o.message();
        let bytes = encode(&m);
        let back = Message::decode(&bytes, &DecodeLimits::default());
        prop_assert!(back.is_ok(), "{:?} for {}", back, m);
        let back = back.unwrap();
        prop_assert_eq!(semantic(&back), semantic(&m));
        prop_assert_eq!(encode(&back), bytes.clone());
        if !matches!(m.body, Body::Response(_)) {
            // No slices involved: the typed values are equal too.
            prop_assert_eq!(back, m);
        }
        fuzz_krpc(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        fuzz_bencode(&data);
        fuzz_krpc(&data);
    }

    #[test]
    fn bencode_shaped_bytes_never_panic(
        data in proptest::collection::vec(
            prop_oneof![
                Just(b'd'), Just(b'l'), Just(b'e'), Just(b'i'), Just(b':'), Just(b'-'),
                (b'0'..=b'9'), any::<u8>()
            ],
            0..128,
        )
    ) {
        fuzz_bencode(&data);
        fuzz_krpc(&data);
    }

    #[test]
    fn mutations_never_panic(
        o in owned(),
        ops in proptest::collection::vec((0u8..4, any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&o.message());
        for (op, at, b) in ops {
            let at = at % (bytes.len() + 1);
            match op {
                0 => bytes.truncate(at),
                1 => if let Some(x) = bytes.get_mut(at) { *x ^= 1 << (b % 8) },
                2 => bytes.insert(at, b),
                _ => { bytes.drain(at..(at + usize::from(b % 8)).min(bytes.len())); }
            }
        }
        fuzz_bencode(&bytes);
        fuzz_krpc(&bytes);
    }
}
